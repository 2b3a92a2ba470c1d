"""Options shared by every command, the context they resolve to, and the one error mapping.

Common options are accepted after the command name (``hfa pull REPO --cache-dir D``), as
``hf download`` does. Each command declares them as parameters with the aliases below
(``token: TokenOpt = None``), builds its :class:`Ctx` from them with :meth:`Ctx.from_options`,
and runs its body under :func:`guarded`, which maps every error to its message and exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from hfa.cli import context
from hfa.errors import ExitCode
from hfa.output import Output

COMMON = "Common options"


class Ctx(context.Ctx):
    """What every command gets (:class:`hfa.cli.context.Ctx`); under typer, a command ends with typer's Exit."""

    stop = typer.Exit


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


def guarded(out: Output) -> AbstractContextManager[None]:
    """Run a command body; map every error to its message and exit code in one place
    (:func:`hfa.cli.context.guarded`, ending with typer's Exit)."""
    return context.guarded(out, typer.Exit)


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
    context.fail(out, code, message, hint, details, text=text, stop=typer.Exit)


def stop_quietly(out: Output | None = None) -> NoReturn:
    """stdout was closed by its reader (``| head``): no message, exit 141 as coreutils' SIGPIPE death."""
    context.stop_quietly(out, typer.Exit)
