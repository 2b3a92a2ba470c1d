"""Options shared by every command, the context they resolve to, and the one error mapping.

Common options are accepted after the command name (``hfa pull REPO --cache-dir D``), as
``hf download`` does. Each command declares them as parameters with the aliases below
(``token: TokenOpt = None``), builds its :class:`Ctx` from them with :meth:`Ctx.from_options`,
and runs its body under :func:`guarded`, which maps every error to its message and exit code.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from hfa.config import Settings, url_credentials
from hfa.errors import ExitCode, error_document, from_exception
from hfa.output import Output, OutputClosed, silence, stream_closed

COMMON = "Common options"


@dataclass
class Ctx:
    """What every command gets: resolved settings and the one output object."""

    settings: Settings
    out: Output
    cache_dir_given: bool = False  # --cache-dir was on the command line (not a default or a variable)

    @classmethod
    def from_options(
        cls,
        *,
        endpoint: str | None = None,
        cache_dir: Path | None = None,
        token: str | None = None,
        offline: bool = False,
        json_output: bool = False,
        quiet: int = 0,
        verbose: int = 0,
    ) -> Ctx:
        """The context of a command from its common options (a bad setting ends the command as any error)."""
        out = Output(json_mode=json_output, quiet=quiet, verbose=verbose, stdout=sys.stdout, stderr=sys.stderr)
        out.add_secret(token)
        with guarded(out):
            settings = Settings.resolve(cache_dir=cache_dir, endpoint=endpoint, token=token, offline=offline)
            out.add_secret(settings.token)
            # Messages print endpoints through public_url; should one slip through, its password still does not.
            out.add_secret(url_credentials(settings.endpoint))
        return cls(settings=settings, out=out, cache_dir_given=cache_dir is not None)


EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="Hub endpoint URL. Default: $HF_ENDPOINT, else https://huggingface.co.",
        rich_help_panel=COMMON,
        show_default=False,
    ),
]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="huggingface_hub cache directory. Default: $HF_HUB_CACHE, else $HF_HOME/hub.",
        rich_help_panel=COMMON,
        show_default=False,
        file_okay=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Access token for private and gated repos. Default: $HF_TOKEN, else the `hf auth login` store."
        " Never printed.",
        rich_help_panel=COMMON,
        show_default=False,
    ),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Use only the lock and the local cache; never touch the network. Also $HF_HUB_OFFLINE=1.",
        rich_help_panel=COMMON,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout and nothing else there.", rich_help_panel=COMMON),
]
QuietOpt = Annotated[
    int,
    typer.Option(
        "-q",
        "--quiet",
        count=True,
        help="Less output on stderr; repeatable: -qq for errors only.",
        rich_help_panel=COMMON,
        show_default=False,
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "-v",
        "--verbose",
        count=True,
        help="More output on stderr (debug logs); repeatable.",
        rich_help_panel=COMMON,
        show_default=False,
    ),
]

# Their spellings on the command line (tests/test_cli_contract.py checks them against the options).
COMMON_VALUE_OPTIONS = ("--endpoint", "--cache-dir", "--token")
COMMON_FLAGS = ("--offline", "--json", "-q", "--quiet", "-v", "--verbose")


@contextmanager
def guarded(out: Output) -> Iterator[None]:
    """Run a command body; map every error to its message and exit code in one place.

    stderr gets ``Error: <what> — <how to fix>``; with ``--json``, stdout gets the error
    document too, unless the command's own document is already out (a check that failed
    says so in it). A stdout closed by its reader ends the command quietly (exit 141).
    """
    try:
        yield
    except typer.Exit:
        raise
    except OutputClosed:
        stop_quietly(out)
    except KeyboardInterrupt:
        fail(out, ExitCode.INTERRUPTED, "interrupted")
    except Exception as exc:
        if isinstance(exc, BrokenPipeError) and stream_closed(out.stdout):
            stop_quietly(out)  # a write to stdout that did not go through Output
        err = from_exception(exc)
        debug = os.environ.get("HFA_DEBUG", "").strip() not in ("", "0")
        if debug:
            out.stderr.write(out.redact("".join(traceback.format_exception(exc))))
        if err is None:
            fail(
                out,
                ExitCode.INTERNAL,
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in hfa; rerun with HFA_DEBUG=1 and report the traceback",
            )
        fail(out, err.exit_code, err.message, err.hint, err.details, text=str(err))


def run_guarded(out: Output, body: Callable[[], Any]) -> Any:
    """``body()`` under :func:`guarded`."""
    with guarded(out):
        return body()


def fail(
    out: Output,
    code: ExitCode,
    message: str,
    hint: str | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    text: str | None = None,
) -> NoReturn:
    """Report a failure (stderr; the JSON error document with --json) and exit with ``code``."""
    if out.json_mode and not out.json_written:
        try:
            out.emit_json(error_document(code, message, hint, details))
        except OutputClosed:
            stop_quietly(out)
    out.error(text if text is not None else (f"{message} — {hint}" if hint else message))
    raise typer.Exit(int(code)) from None


def stop_quietly(out: Output | None = None) -> NoReturn:
    """stdout was closed by its reader (``| head``): no message, exit 141 as coreutils' SIGPIPE death."""
    silence(out.stdout if out is not None else sys.stdout)
    raise typer.Exit(int(ExitCode.STDOUT_CLOSED)) from None
