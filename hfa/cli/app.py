"""The hfa command: mounts one module per command group, nothing else.

Command modules stay light at import; each command imports what it needs when it
runs, so ``hfa --help`` starts fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hfa import __version__
from hfa.cli import bundle, cache, infer, info, pin, pull, scan, search, serve

app = typer.Typer(
    name="hfa",
    help="Manage Hugging Face Hub assets like packages: find, pin, pull exactly what is needed, verify, work offline.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hfa {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print hfa's version and exit.")
    ] = False,
) -> None:
    """Manage Hugging Face Hub assets like packages: find, pin, pull exactly what is needed, verify, work offline.

    Exit codes: 0 ok, 1 a check failed, 2 usage error, 3 not found, 4 access denied,
    5 network, 6 local file system; see docs/cli.md.
    """


for module in (search, info, pin, pull, scan, bundle, serve, cache, infer):
    module.register(app)


def main() -> None:
    app()
