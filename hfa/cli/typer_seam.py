"""The one place hfa reaches into typer's internals, and how it steps aside when they change.

Two things, both on the command classes every hfa command is mounted with (:class:`FastCommand`,
:class:`FastGroup`; hfa.cli.app mounts them):

**Start-up: plain option values coerced without pydantic.** typer 0.29 coerces the value of every
non-bool parameter of the invoked command, defaults included, through a pydantic TypeAdapter it
builds on first use. Importing pydantic and building those adapters costs ~100 ms on every hfa
run: more than a warm `hfa pull --lock` needs for its own work, and typer has no setting to skip
them. So the commands pre-fill each parameter's lazily built coercer (the private attribute
:data:`RUNTIME_ATTR` of typer.core's parameters, read through ``get_runtime_param().coerce``) with
:class:`PlainCoercion`. It returns what typer's adapter returns for the plain cases hfa's options
produce (str; int/float in bounds; a Path passing its checks; lists of those) and hands every
other value, and so every error message, to typer's own coercer, built only then.

**Parsing: help that reads like a CLI's, usage errors that honour --json.** Flags show bare
(no ``<bool>``), arguments in capitals (REPO, [REPOS]...), a list's type as its items' (``<str>``,
not ``<list[str]>``); a usage error click raises while
parsing prints, besides typer's message, the --json error document on stdout when --json is on
the command line; a common option put before the command name gets a hint. This needs click's
exception classes, which typer 0.29 vendors as the private ``typer._click``.

**When typer differs.** pyproject bounds typer to the releases this is tested on
(tests/test_cli_fast.py compares PlainCoercion with typer's coercion on every parameter of every
command). Should another typer still be installed: a parameter without the attribute is left to
typer; a descriptor of another shape, or a missing ``typer._coercion``, sends the value to
typer's own path (tests/test_typer_seam.py simulates both); without ``typer._click`` the usage
errors are typer's own, without the --json document. Never an error of hfa's making.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.core import TyperCommand, TyperGroup

from hfa.cli.options import COMMON_FLAGS, COMMON_VALUE_OPTIONS, stop_quietly
from hfa.errors import ExitCode, error_document
from hfa.output import Output, OutputClosed, stream_closed

click_errors: Any
try:
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - another typer: its own usage errors, without the --json document
    click_errors = None

RUNTIME_ATTR = "_runtime_param"  # typer.core's lazily built coercer of a parameter (None until first use)

MISS: Any = object()
_INT = re.compile(r"[0-9]{1,18}")
_FLOAT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")


# -- start-up: plain option values coerced without pydantic ------------------------------------------


def plain_value(annotation: Any, info: Any, value: Any) -> Any:
    """``value`` coerced as typer's adapter would for ``annotation``; :data:`MISS` when not a plain case."""
    if info.parser is not None:
        return MISS
    if typing.get_origin(annotation) is list:
        if not isinstance(value, (list, tuple)):
            return MISS
        (item,) = typing.get_args(annotation)
        out = [plain_value(item, info, v) for v in value]
        return MISS if any(v is MISS for v in out) else out
    if annotation is str:
        return value if type(value) is str else MISS
    if annotation is int or annotation is float:
        if type(value) is annotation:
            number = value
        elif type(value) is str and (_INT if annotation is int else _FLOAT).fullmatch(value):
            number = annotation(value)
        else:
            return MISS
        if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
            return MISS  # typer's message, or its clamping
        return number
    if annotation is Path and info.path_type is None and not info.resolve_path and not info.allow_dash:
        if isinstance(value, Path):
            path = value
        elif type(value) is str and value:
            path = Path(value)
        else:
            return MISS
        try:
            st = os.stat(path)
        except OSError:
            return MISS if info.exists else path
        if (not info.file_okay and stat.S_ISREG(st.st_mode)) or (not info.dir_okay and stat.S_ISDIR(st.st_mode)):
            return MISS
        if (info.readable and not os.access(path, os.R_OK)) or (info.writable and not os.access(path, os.W_OK)):
            return MISS
        return path
    return MISS


def typers_coercion(param: Any) -> Any:
    """typer's own coercer of ``param`` (what it would have built without this module)."""
    try:
        from typer._coercion import build_runtime_param

        return build_runtime_param(param.type_descriptor)
    except (ImportError, AttributeError):
        setattr(param, RUNTIME_ATTR, None)
        return param.get_runtime_param()


class PlainCoercion:
    """Stands in for typer's coercer of one parameter; builds typer's own for anything not plain."""

    def __init__(self) -> None:
        self.typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.typer is None:
            try:
                if value is None:
                    return () if (param.multiple or param.nargs == -1) else None
                desc = param.type_descriptor
                coerced = plain_value(desc.annotation, desc.parameter_info, value)
            except AttributeError:  # a typer whose parameters look otherwise: its own path, from now on
                coerced = MISS
            if coerced is not MISS:
                return coerced
            self.typer = typers_coercion(param)
        return self.typer.coerce(value, param=param, ctx=ctx)


def use_plain_coercion(params: list[Any]) -> None:
    """Fill each parameter's unbuilt coercer with a :class:`PlainCoercion` (only where typer has one to fill)."""
    for param in params:
        if getattr(param, RUNTIME_ATTR, MISS) is None and hasattr(param, "get_runtime_param"):
            setattr(param, RUNTIME_ATTR, PlainCoercion())


# -- parsing: help that reads like a CLI's, usage errors that honour --json ---------------------------


def show_plainly(params: list[Any]) -> list[Any]:
    for param in params:
        if param.param_type_name == "option" and (param.is_flag or param.count) and param.metavar is None:
            param.metavar = ""  # no `<bool>` / `<int>`: a flag, repeatable where its help says so
        elif param.param_type_name == "argument" and param.metavar is None:
            param.metavar = (param.name or "arg").upper() + ("..." if param.nargs != 1 else "")
        if (getattr(param, "multiple", False) or param.nargs != 1) and callable(
            getattr(param, "display_type_rich", None)
        ):
            param.display_type_rich = _ElementType(param.display_type_rich)
    return params


class _ElementType:
    """A list parameter's type as its items' (``<str>``, ``<path>``), not Python's ``<list[str]>``: the
    option's help says it repeats, an argument's name ends in ``...``. Any other text as typer gives it."""

    __slots__ = ("typers",)

    def __init__(self, typers: Callable[..., Any]) -> None:
        self.typers = typers

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        text = self.typers(*args, **kwargs)
        match = re.fullmatch(r"<list\[(\w+)\]>", text) if isinstance(text, str) else None
        return f"<{match[1].lower()}>" if match else text


def usage_pieces(cmd: Any, ctx: Any) -> list[str]:
    pieces = [cmd.options_metavar] if cmd.options_metavar else []
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument":
            many = param.nargs != 1
            name = param.metavar.removesuffix("...") if many else param.metavar
            pieces.append((name if param.required else f"[{name}]") + ("..." if many else ""))
        else:
            pieces.extend(param.get_usage_pieces(ctx))
    return pieces


def json_seen(args: list[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def token_values(args: list[str]) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        if arg == "--token" and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith("--token="):
            values.append(arg.partition("=")[2])
    return values


def options_after_command(args: list[str]) -> str:
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


def report_usage_error(exc: Any, ctx: Any, args: list[str], *, root: bool = False) -> Any:
    """The click error typer will print; with --json on the command line, the error document is out first."""
    if getattr(exc, "hfa_reported", False):
        return exc
    usage_error, no_such_option = click_errors.UsageError, click_errors.NoSuchOption
    message, hint = exc.format_message(), None
    if root and isinstance(exc, no_such_option) and exc.option_name in (*COMMON_VALUE_OPTIONS, *COMMON_FLAGS):
        message = f"No such option: {exc.option_name}"  # not click's "Possible options: --version"
        hint = f"options go after the command name: `{options_after_command(args)}`"
        exc = usage_error(f"{message} — {hint}", ctx=exc.ctx)
    elif isinstance(exc, usage_error):
        path = ctx.command_path if ctx is not None and ctx.command_path else "hfa"
        hint = f"see `{path} --help`"
    out = Output(json_mode=True, stdout=sys.stdout, stderr=sys.stderr)
    for secret in (*token_values(args), os.environ.get("HF_TOKEN")):
        out.add_secret(secret)
    if out.redact(exc.format_message()) != exc.format_message():
        exc = usage_error(out.redact(exc.format_message()), ctx=getattr(exc, "ctx", None))
    message, hint = out.redact(message), hint and out.redact(hint)
    exc.hfa_reported = True
    if json_seen(args):
        try:
            code = ExitCode(exc.exit_code)
        except ValueError:
            code = ExitCode.USAGE
        try:
            out.emit_json(error_document(code, message, hint))
        except OutputClosed:
            stop_quietly(out)
    return exc


def _is_click_error(exc: BaseException) -> bool:
    return click_errors is not None and isinstance(exc, click_errors.ClickException)


def parse(
    cmd: Any, parse_args: Callable[[Any, list[str]], list[str]], ctx: Any, args: list[str], root: bool
) -> list[str]:
    use_plain_coercion(cmd.get_params(ctx))
    given = list(args)  # click's parser consumes the list it is given
    try:
        return parse_args(ctx, args)
    except BrokenPipeError:
        if stream_closed(sys.stdout):  # --help or --version into a closed pipe
            stop_quietly()
        raise
    except SystemExit as exc:
        # rich, which prints --help, meets a closed stdout by pointing it at /dev/null and exiting 1
        if exc.code == 1 and isinstance(exc.__context__, BrokenPipeError):
            stop_quietly()
        raise
    except Exception as exc:
        if _is_click_error(exc):
            raise report_usage_error(exc, ctx, given, root=root) from None
        raise


class FastCommand(TyperCommand):
    """A typer command whose plain option values skip pydantic, with hfa's help and usage errors (see above)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return parse(self, super().parse_args, ctx, args, root=False)

    def get_params(self, ctx: Any) -> list[Any]:
        return show_plainly(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return usage_pieces(self, ctx)


class FastGroup(TyperGroup):
    """A typer group whose plain option values skip pydantic, with hfa's help and usage errors (see above)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return parse(self, super().parse_args, ctx, args, root=ctx.parent is None)

    def get_params(self, ctx: Any) -> list[Any]:
        return show_plainly(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*usage_pieces(self, ctx), self.subcommand_metavar]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        given = list(args)
        try:
            return super().resolve_command(ctx, args)
        except Exception as exc:  # no such command
            if _is_click_error(exc):
                raise report_usage_error(exc, ctx, given) from None
            raise
