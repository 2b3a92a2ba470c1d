"""The hfa command: mounts each command's function from one table, lazily, nothing else.

Every command is a module-level function of a module under hfa.cli (``hfa.cli.pull.pull``)
whose parameters are all its options; :data:`COMMANDS` (hfa.cli.commands, with each command's
summary) names them. Command modules stay light
at import; each command imports what it needs when it runs, so ``hfa --help`` starts fast.
``hfa COMMAND ...`` goes further: :func:`main` mounts only that command, and so imports only its
module (typer builds every mounted command's parameters before parsing), ``hfa --version``
none, and anything else (no command, an unknown one, root options first) gets the full app.
``from hfa.cli.app import app`` is the full app.

Command modules evaluate their annotations when imported (no ``from __future__ import
annotations``): typer reads each command's signature twice while it builds the app, and
evaluated the strings anew each time (~10 ms of ``hfa --help``; tests/test_cli_fast.py).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from hfa import __version__
from hfa.cli.commands import APP_HELP, COMMANDS, PASS_THROUGH, SUMMARIES, VERSION_HELP, Group
from hfa.cli.typer_seam import FastCommand, FastGroup

__all__ = ["COMMANDS", "Group", "build", "main", "mount"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hfa {__version__}")
        raise typer.Exit()


def root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help=VERSION_HELP)
    ] = False,
) -> None:
    """Manage Hugging Face Hub assets like packages: find, pin, pull exactly what is needed, verify, work offline.

    Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 not found, 4 access denied,
    5 network, 6 local file system, 7 a job not finished; see docs/cli.md.
    """


def command_help(name: str | None, function: Any) -> str:
    """The help of command ``name``: its summary (hfa.cli.commands) and its function's docstring; for a
    subcommand (``name`` None), the docstring alone, its first paragraph the summary.

    Each paragraph is one line, as typer's rich help wants it: it keeps a paragraph's line breaks
    (after the first), so a docstring wrapped at 100 columns would print ragged in 80.
    """
    doc = inspect.cleandoc(function.__doc__ or "").strip()  # a one-line docstring keeps its closing indent
    doc = "\n\n".join(" ".join(p.split("\n")) for p in doc.split("\n\n"))
    if name is None:
        return doc
    return SUMMARIES[name] + (f"\n\n{doc}" if doc else "")


def mount(app: typer.Typer, name: str) -> None:
    """Mount command ``name`` of :data:`COMMANDS` on ``app`` (importing its module)."""
    module_name, target = COMMANDS[name]
    module = importlib.import_module(f"hfa.cli.{module_name}")
    if isinstance(target, Group):
        group = typer.Typer(help=SUMMARIES[name], no_args_is_help=True, cls=FastGroup)
        for sub, function in target.commands.items():
            sub_function = getattr(module, function)
            settings = {"allow_interspersed_args": False} if (name, sub) in PASS_THROUGH else None
            group.command(sub, cls=FastCommand, help=command_help(None, sub_function), context_settings=settings)(
                sub_function
            )
        app.add_typer(group, name=name)
    else:
        function = getattr(module, target)
        app.command(name, cls=FastCommand, help=command_help(name, function))(function)


def build(names: Sequence[str] = tuple(COMMANDS)) -> typer.Typer:
    """The hfa app with the commands ``names`` (keys of :data:`COMMANDS`) mounted."""
    app = typer.Typer(
        name="hfa",
        cls=FastGroup,
        help=APP_HELP,
        no_args_is_help=True,
        add_completion=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
    app.callback()(root)
    for name in names:
        mount(app, name)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        full = build()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] in COMMANDS:
        build((args[0],))()
    elif args in (["--version"], ["-V"]):
        build(())()
    else:
        build()()
