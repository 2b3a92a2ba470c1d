"""The hfa command: mounts one module per command group, nothing else.

Command modules stay light at import; each command imports what it needs when it
runs, so ``hfa --help`` starts fast. ``hfa COMMAND ...`` goes further: :func:`main`
mounts only the module of that command (typer builds every mounted command's
parameters before parsing), ``hfa --version`` none, and anything else (no command,
an unknown one, root options first) gets the full app. ``from hfa.cli.app import app`` is the full app.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from hfa import __version__
from hfa.cli.options import FastGroup

MODULES = (
    "search",
    "info",
    "pin",
    "pull",
    "scan",
    "bundle",
    "serve",
    "cache",
    "infer",
)  # help lists them in this order
# The top-level command names each module mounts; tests/test_cli_fast.py checks it against the modules.
COMMANDS = {
    "search": "search",
    "info": "info",
    "pin": "pin",
    "pull": "pull",
    "scan": "scan",
    "verify": "scan",
    "export": "bundle",
    "import": "bundle",
    "serve": "serve",
    "cache": "cache",
    "infer": "infer",
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hfa {__version__}")
        raise typer.Exit()


def root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print hfa's version and exit.")
    ] = False,
) -> None:
    """Manage Hugging Face Hub assets like packages: find, pin, pull exactly what is needed, verify, work offline.

    Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 not found, 4 access denied,
    5 network, 6 local file system; see docs/cli.md.
    """


def build(modules: Sequence[str] = MODULES) -> typer.Typer:
    """The hfa app with the commands of ``modules`` (names under hfa.cli) mounted."""
    app = typer.Typer(
        name="hfa",
        cls=FastGroup,
        help="Manage Hugging Face Hub assets like packages: find, pin, pull exactly what is needed, verify, work"
        " offline.",
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    for name in modules:
        importlib.import_module(f"hfa.cli.{name}").register(app)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        full = build()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    args = sys.argv[1:]
    module = COMMANDS.get(args[0]) if args else None
    if module:
        build((module,))()
    elif args in (["--version"], ["-V"]):
        build(())()
    else:
        build()()
