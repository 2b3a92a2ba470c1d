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
import stat
import sys
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from hfa.config import Settings
from hfa.errors import ExitCode, from_exception
from hfa.output import Output

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
        help="Less output on stderr (repeat for errors only).",
        rich_help_panel=COMMON,
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option("-v", "--verbose", count=True, help="More output on stderr (debug logs).", rich_help_panel=COMMON),
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


def run_guarded(out: Output, body: Callable[[], Any]) -> Any:
    """Run a command body; map every error to its message and exit code in one place."""
    try:
        return body()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        out.error("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:
        err = from_exception(exc)
        debug = os.environ.get("HFA_DEBUG", "").strip() not in ("", "0")
        if debug:
            out.stderr.write(out.redact("".join(traceback.format_exception(exc))))
        if err is None:
            out.error(
                f"internal error: {type(exc).__name__}: {exc} — this is a bug in hfa; rerun with HFA_DEBUG=1"
                " and report the traceback"
            )
            raise typer.Exit(int(ExitCode.INTERNAL)) from None
        out.error(str(err))
        raise typer.Exit(int(err.exit_code)) from None


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
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != drop]
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


class FastCommand(TyperCommand):
    """A typer command whose plain option values skip pydantic (see above)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _plain_coercion(self.get_params(ctx))
        return super().parse_args(ctx, args)


class FastGroup(TyperGroup):
    """A typer group whose plain option values skip pydantic (see above)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _plain_coercion(self.get_params(ctx))
        return super().parse_args(ctx, args)
