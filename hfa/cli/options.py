"""Options shared by every command, and the decorator that mounts a command with them.

Common options are accepted after the command name (``hfa pull REPO --cache-dir D``),
as ``hf download`` does. A command function receives them already resolved as one
:class:`Ctx` argument named ``ctx``; it never sees the raw flags.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import shlex
import stat
import sys
import traceback
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer._click.exceptions import ClickException, NoSuchOption, UsageError
from typer.core import TyperCommand, TyperGroup

from hfa.config import Settings, url_credentials
from hfa.errors import ExitCode, error_document, from_exception
from hfa.output import Output, OutputClosed, silence, stream_closed

F = TypeVar("F", bound=Callable[..., Any])

COMMON = "Common options"


@dataclass
class Ctx:
    """What every command gets: resolved settings and the one output object."""

    settings: Settings
    out: Output
    cache_dir_given: bool = False  # --cache-dir was on the command line (not a default or a variable)


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

_COMMON_PARAMS: list[tuple[str, Any, Any]] = [
    ("endpoint", EndpointOpt, None),
    ("cache_dir", CacheDirOpt, None),
    ("token", TokenOpt, None),
    ("offline", OfflineOpt, False),
    ("json_output", JsonOpt, False),
    ("quiet", QuietOpt, 0),
    ("verbose", VerboseOpt, 0),
]
_COMMON_NAMES = [name for name, _, _ in _COMMON_PARAMS]
# Their spellings on the command line (tests/test_cli_contract.py checks them against the options).
COMMON_VALUE_OPTIONS = ("--endpoint", "--cache-dir", "--token")
COMMON_FLAGS = ("--offline", "--json", "-q", "--quiet", "-v", "--verbose")


def run_guarded(out: Output, body: Callable[[], Any]) -> Any:
    """Run a command body; map every error to its message and exit code in one place.

    stderr gets ``Error: <what> — <how to fix>``; with ``--json``, stdout gets the error
    document too, unless the command's own document is already out (a check that failed
    says so in it). A stdout closed by its reader ends the command quietly (exit 141).
    """
    try:
        return body()
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


def make_context(
    *,
    endpoint: str | None,
    cache_dir: Path | None,
    token: str | None,
    offline: bool,
    json_output: bool,
    quiet: int,
    verbose: int,
) -> Ctx:
    out = Output(json_mode=json_output, quiet=quiet, verbose=verbose, stdout=sys.stdout, stderr=sys.stderr)
    out.add_secret(token)

    def build() -> Ctx:
        settings = Settings.resolve(cache_dir=cache_dir, endpoint=endpoint, token=token, offline=offline)
        out.add_secret(settings.token)
        # Messages print endpoints through public_url; should one slip through, its password still does not.
        out.add_secret(url_credentials(settings.endpoint))
        return Ctx(settings=settings, out=out, cache_dir_given=cache_dir is not None)

    return run_guarded(out, build)  # type: ignore[no-any-return,unused-ignore]


def rewrite_signature(
    wrapper: Callable[..., Any], fn: Callable[..., Any], drop: str, extra: list[tuple[str, Any, Any]], *,
    keyword_only: bool = False,
) -> None:  # fmt: skip
    """Show typer ``fn``'s parameters, less ``drop``, plus ``extra`` (name, annotation, default) keyword-only ones.

    typer builds a command's options from the signature and annotations it sees on the
    function it is given; ``wrapper`` takes the ``extra`` values and calls ``fn``.
    """
    # eval_str resolves the string annotations `from __future__ import annotations` leaves, as
    # written: typing.get_type_hints on Python 3.10 wraps a None-defaulted Annotated[...] in
    # Optional[...], which hides its typer.Argument and turns the argument into an option.
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != drop]
    if keyword_only:
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    added = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d) for n, a, d in extra]
    wrapper.__dict__.pop("__wrapped__", None)  # typer must see this signature, not fn's
    wrapper.__signature__ = sig.replace(parameters=own + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}


def command(app: typer.Typer, name: str, **kwargs: Any) -> Callable[[F], F]:
    """Mount ``fn(ctx: Ctx, ...)`` on ``app`` as ``name``, adding the common options."""

    def decorator(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(**kw: Any) -> Any:
            ctx = make_context(**{n: kw.pop(n) for n in _COMMON_NAMES})
            return run_guarded(ctx.out, lambda: fn(ctx, **kw))

        rewrite_signature(wrapper, fn, "ctx", _COMMON_PARAMS, keyword_only=True)
        app.command(name, cls=FastCommand, **kwargs)(wrapper)
        return fn

    return decorator


# -- start-up: plain option values coerced without pydantic ------------------------------------------
#
# typer 0.29 coerces the value of every non-bool parameter of the invoked command, defaults
# included, through a pydantic TypeAdapter it builds on first use. Importing pydantic and
# building those adapters costs ~100 ms on every hfa run: more than a warm `hfa pull --lock`
# needs for its own work. typer has no setting to skip them, so this is the one place hfa
# reaches into typer's internals: FastCommand pre-fills each parameter's lazily built coercer
# (typer.core._TyperParameter._runtime_param, used through get_runtime_param().coerce) with
# _PlainCoercion. That returns what typer's adapter returns for the plain cases hfa's options
# produce (str; int/float in bounds; an existing-or-not Path passing its checks; lists of
# those) and hands every other value, and so every error message, to typer's own coercer,
# built only then. tests/test_cli_fast.py compares the two on every parameter of every hfa
# command and fails when typer changes what this relies on.

_MISS: Any = object()
_INT = re.compile(r"[0-9]{1,18}")
_FLOAT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")


def plain_value(annotation: Any, info: Any, value: Any) -> Any:
    """``value`` coerced as typer's adapter would for ``annotation``; ``_MISS`` when not a plain case."""
    if info.parser is not None:
        return _MISS
    if typing.get_origin(annotation) is list:
        if not isinstance(value, (list, tuple)):
            return _MISS
        (item,) = typing.get_args(annotation)
        out = [plain_value(item, info, v) for v in value]
        return _MISS if any(v is _MISS for v in out) else out
    if annotation is str:
        return value if type(value) is str else _MISS
    if annotation is int or annotation is float:
        if type(value) is annotation:
            number = value
        elif type(value) is str and (_INT if annotation is int else _FLOAT).fullmatch(value):
            number = annotation(value)
        else:
            return _MISS
        if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
            return _MISS  # typer's message, or its clamping
        return number
    if annotation is Path and info.path_type is None and not info.resolve_path and not info.allow_dash:
        if isinstance(value, Path):
            path = value
        elif type(value) is str and value:
            path = Path(value)
        else:
            return _MISS
        try:
            st = os.stat(path)
        except OSError:
            return _MISS if info.exists else path
        if (not info.file_okay and stat.S_ISREG(st.st_mode)) or (not info.dir_okay and stat.S_ISDIR(st.st_mode)):
            return _MISS
        if (info.readable and not os.access(path, os.R_OK)) or (info.writable and not os.access(path, os.W_OK)):
            return _MISS
        return path
    return _MISS


class _PlainCoercion:
    """Stands in for typer's RuntimeParam of one parameter; builds typer's own for anything not plain."""

    def __init__(self) -> None:
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if (param.multiple or param.nargs == -1) else None
        desc = param.type_descriptor
        coerced = plain_value(desc.annotation, desc.parameter_info, value)
        if coerced is not _MISS:
            return coerced
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(desc)
        return self._typer.coerce(value, param=param, ctx=ctx)


def _plain_coercion(params: list[Any]) -> None:
    for param in params:
        if getattr(param, "_runtime_param", _MISS) is None and hasattr(param, "type_descriptor"):
            param._runtime_param = _PlainCoercion()


# -- parsing: help that reads like a CLI's, usage errors that honour --json ---------------------------
#
# typer labels every parameter with its type (`--dry-run <bool>`, `-v <int>`) and writes
# arguments as `{repo}`. hfa's commands show flags bare and arguments in capitals (REPO,
# [REPOS]...). A usage error click raises while parsing (unknown option, bad value, no such
# command) prints, besides typer's message on stderr, the --json error document on stdout
# when --json is on the command line; a common option put before the command name gets a hint.


def _show_plainly(params: list[Any]) -> list[Any]:
    for param in params:
        if param.param_type_name == "option" and (param.is_flag or param.count) and param.metavar is None:
            param.metavar = ""  # no `<bool>` / `<int>`: a flag, repeatable where its help says so
        elif param.param_type_name == "argument" and param.metavar is None:
            param.metavar = (param.name or "arg").upper() + ("..." if param.nargs != 1 else "")
    return params


def _usage_pieces(cmd: Any, ctx: Any) -> list[str]:
    pieces = [cmd.options_metavar] if cmd.options_metavar else []
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument":
            many = param.nargs != 1
            name = param.metavar.removesuffix("...") if many else param.metavar
            pieces.append((name if param.required else f"[{name}]") + ("..." if many else ""))
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


def _json_seen(args: list[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def _token_values(args: list[str]) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        if arg == "--token" and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith("--token="):
            values.append(arg.partition("=")[2])
    return values


def _options_after_command(args: list[str]) -> str:
    """``args`` (root options first) rewritten with the common options after the command; tokens masked."""
    lead: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        name, eq, _ = args[i].partition("=")
        if name == "--token":
            lead += ["--token=***"] if eq else ["--token", "***"]
            i += 1 if eq else 2
        elif name in COMMON_VALUE_OPTIONS and not eq:
            lead += args[i : i + 2]
            i += 2
        else:
            lead.append(args[i])
            i += 1
    rest = args[i:] or ["COMMAND"]
    cut = rest.index("--") if "--" in rest else len(rest)
    words = ["hfa", *rest[:cut], *lead, *rest[cut:]]
    return " ".join(w if w in ("***", "--token=***") else shlex.quote(w) for w in words)


def _report_usage_error(exc: ClickException, ctx: Any, args: list[str], *, root: bool = False) -> ClickException:
    """The error typer will print; with --json on the command line, the error document is out first."""
    if getattr(exc, "hfa_reported", False):
        return exc
    message, hint = exc.format_message(), None
    if root and isinstance(exc, NoSuchOption) and exc.option_name in (*COMMON_VALUE_OPTIONS, *COMMON_FLAGS):
        message = f"No such option: {exc.option_name}"  # not click's "Possible options: --version"
        hint = f"options go after the command name: `{_options_after_command(args)}`"
        exc = UsageError(f"{message} — {hint}", ctx=exc.ctx)
    elif isinstance(exc, UsageError):
        path = ctx.command_path if ctx is not None and ctx.command_path else "hfa"
        hint = f"see `{path} --help`"
    out = Output(json_mode=True, stdout=sys.stdout, stderr=sys.stderr)
    for secret in (*_token_values(args), os.environ.get("HF_TOKEN")):
        out.add_secret(secret)
    if out.redact(exc.format_message()) != exc.format_message():
        exc = UsageError(out.redact(exc.format_message()), ctx=getattr(exc, "ctx", None))
    message, hint = out.redact(message), hint and out.redact(hint)
    exc.hfa_reported = True  # type: ignore[attr-defined]
    if _json_seen(args):
        try:
            code = ExitCode(exc.exit_code)
        except ValueError:
            code = ExitCode.USAGE
        try:
            out.emit_json(error_document(code, message, hint))
        except OutputClosed:
            stop_quietly(out)
    return exc


def _parse(cmd: Any, parse: Callable[[Any, list[str]], list[str]], ctx: Any, args: list[str], root: bool) -> list[str]:
    _plain_coercion(cmd.get_params(ctx))
    given = list(args)  # click's parser consumes the list it is given
    try:
        return parse(ctx, args)
    except ClickException as exc:
        raise _report_usage_error(exc, ctx, given, root=root) from None
    except BrokenPipeError:
        if stream_closed(sys.stdout):  # --help or --version into a closed pipe
            stop_quietly()
        raise
    except SystemExit as exc:
        # rich, which prints --help, meets a closed stdout by pointing it at /dev/null and exiting 1
        if exc.code == 1 and isinstance(exc.__context__, BrokenPipeError):
            stop_quietly()
        raise


class FastCommand(TyperCommand):
    """A typer command whose plain option values skip pydantic, with hfa's help and usage errors (see above)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return _parse(self, super().parse_args, ctx, args, root=False)

    def get_params(self, ctx: Any) -> list[Any]:
        return _show_plainly(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self, ctx)


class FastGroup(TyperGroup):
    """A typer group whose plain option values skip pydantic, with hfa's help and usage errors (see above)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return _parse(self, super().parse_args, ctx, args, root=ctx.parent is None)

    def get_params(self, ctx: Any) -> list[Any]:
        return _show_plainly(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        given = list(args)
        try:
            return super().resolve_command(ctx, args)
        except ClickException as exc:  # no such command
            raise _report_usage_error(exc, ctx, given) from None
