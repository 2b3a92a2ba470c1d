"""The context every command gets and the one error mapping, free of typer.

:mod:`hfa.cli.options` gives them to the typer commands, where a command ends with typer's
``Exit``; the plain paths of the console script (``hfa scan``, ``hfa pull``, ``hfa verify`` with
plain arguments, see :mod:`hfa.cli.entry`) use them as they are, where it ends with
``SystemExit``: the same message, document and exit code either way. ``stop`` is the exception
class that ends a command (called with the exit code).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

from hfa.config import Settings, url_credentials
from hfa.errors import ExitCode, error_document, from_exception
from hfa.output import Output, OutputClosed, silence, stream_closed

__all__ = ["Ctx", "PlainArgs", "fail", "guarded", "parse_plain", "stop_quietly"]

C = TypeVar("C", bound="Ctx")


@dataclass
class Ctx:
    """What every command gets: resolved settings and the one output object."""

    settings: Settings
    out: Output
    cache_dir_given: bool = False  # --cache-dir was on the command line (not a default or a variable)
    stop: ClassVar[type[BaseException]] = SystemExit  # what ends the command with an exit code

    @classmethod
    def from_options(
        cls: type[C],
        *,
        endpoint: str | None = None,
        cache_dir: Path | None = None,
        token: str | None = None,
        offline: bool = False,
        json_output: bool = False,
        quiet: int = 0,
        verbose: int = 0,
    ) -> C:
        """The context of a command from its common options (a bad setting ends the command as any error)."""
        out = Output(json_mode=json_output, quiet=quiet, verbose=verbose, stdout=sys.stdout, stderr=sys.stderr)
        out.add_secret(token)
        with guarded(out, cls.stop):
            settings = Settings.resolve(cache_dir=cache_dir, endpoint=endpoint, token=token, offline=offline)
            out.add_secret(settings.token)
            # Messages print endpoints through public_url; should one slip through, its password still does not.
            out.add_secret(url_credentials(settings.endpoint))
        return cls(settings=settings, out=out, cache_dir_given=cache_dir is not None)


@contextmanager
def guarded(out: Output, stop: type[BaseException] = SystemExit) -> Iterator[None]:
    """Run a command body; map every error to its message and exit code in one place.

    stderr gets ``Error: <what> — <how to fix>``; with ``--json``, stdout gets the error
    document too, unless the command's own document is already out (a check that failed
    says so in it). A stdout closed by its reader ends the command quietly (exit 141).
    """
    try:
        yield
    except stop:
        raise
    except OutputClosed:
        stop_quietly(out, stop)
    except KeyboardInterrupt:
        fail(out, ExitCode.INTERRUPTED, "interrupted", stop=stop)
    except Exception as exc:
        if isinstance(exc, BrokenPipeError) and stream_closed(out.stdout):
            stop_quietly(out, stop)  # a write to stdout that did not go through Output
        err = from_exception(exc)
        debug = os.environ.get("HFA_DEBUG", "").strip() not in ("", "0")
        if debug:
            import traceback  # only with HFA_DEBUG: every command imports this module

            out.stderr.write(out.redact("".join(traceback.format_exception(exc))))
        if err is None:
            fail(
                out,
                ExitCode.INTERNAL,
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in hfa; rerun with HFA_DEBUG=1 and report the traceback",
                stop=stop,
            )
        fail(out, err.exit_code, err.message, err.hint, err.details, text=str(err), stop=stop)


def fail(
    out: Output,
    code: ExitCode,
    message: str,
    hint: str | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    text: str | None = None,
    stop: type[BaseException] = SystemExit,
) -> NoReturn:
    """Report a failure (stderr; the JSON error document with --json) and exit with ``code``."""
    if out.json_mode and not out.json_written:
        try:
            out.emit_json(error_document(code, message, hint, details))
        except OutputClosed:
            stop_quietly(out, stop)
    out.error(text if text is not None else (f"{message} — {hint}" if hint else message))
    raise stop(int(code)) from None


def stop_quietly(out: Output | None = None, stop: type[BaseException] = SystemExit) -> NoReturn:
    """stdout was closed by its reader (``| head``): no message, exit 141 as coreutils' SIGPIPE death."""
    silence(out.stdout if out is not None else sys.stdout)
    raise stop(int(ExitCode.STDOUT_CLOSED)) from None


@dataclass
class PlainArgs:
    """The arguments of a command run without typer (:mod:`hfa.cli.entry`), as :func:`parse_plain` read them."""

    counts: dict[str, int]  # each flag's parameter name -> how often it was given
    values: dict[str, str]  # each value option's parameter name -> its value
    positionals: list[str]


def parse_plain(
    argv: list[str], flags: Mapping[str, str], options: Mapping[str, str], positional: Callable[[str], bool] = bool
) -> PlainArgs | None:
    """Read ``argv`` for a plain path: ``flags`` and ``options`` map each spelling to the command's parameter
    name; an option takes its value as ``--opt V`` or ``--opt=V``, at most once. None for anything else
    (another option, ``--help``, ``--``, a repeated or empty value, an argument ``positional`` refuses):
    the full CLI then runs the command and says what is wrong."""
    counts = dict.fromkeys(flags.values(), 0)
    values: dict[str, str] = {}
    positionals: list[str] = []
    args = iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        if arg in flags:
            counts[flags[arg]] += 1
        elif flag in options and options[flag] not in values:
            value = value if eq else next(args, "")
            if not value or value.startswith("-"):
                return None
            values[options[flag]] = value
        elif arg.startswith("-") or not positional(arg):
            return None
        else:
            positionals.append(arg)
    return PlainArgs(counts, values, positionals)
