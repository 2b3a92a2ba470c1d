"""What every hfa command promises at the command line, whatever the command does.

Positional arguments stay arguments on every supported Python; help reads like a CLI's
(no type labels on flags, usage lines in capitals); a closed stdout ends quietly; options
put before the command name get a hint; and ``--json`` holds on failure too: one JSON
document on stdout for every exit code.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, get_origin

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from hfa.cli.app import app
from hfa.cli.options import rewrite_signature

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def click_command(*path: str) -> Any:
    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


# -- 1. optional positional arguments (Python 3.10 turned them into options) ---------------------

OPTIONAL_POSITIONALS = [
    ("pull", "repo"),
    ("pin", "repos"),
    ("search", "query"),
    ("scan", "targets"),
    ("verify", "target"),
    ("export", "repos"),
]


@pytest.mark.parametrize(("command", "name"), OPTIONAL_POSITIONALS)
def test_optional_positionals_are_arguments(command: str, name: str) -> None:
    params = {p.name: p for p in click_command(command).params}
    assert params[name].param_type_name == "argument"
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert f"--{name} " not in result.stdout
    assert f"--{name}\n" not in result.stdout


@pytest.mark.parametrize("command", ["pull", "search", "verify"])
def test_a_positional_is_accepted(command: str, tmp_path: Any) -> None:
    # Offline, nothing is reached: what matters is that parsing takes the positional.
    target = str(tmp_path) if command == "verify" else "org/model"
    result = invoke(command, target, "--offline", "--cache-dir", str(tmp_path / "c"))
    assert "unexpected extra argument" not in result.stderr
    assert result.exit_code != 2, result.stderr


def _fn(ctx: object, repo: Annotated[str | None, typer.Argument(help="R")] = None) -> None:
    """A command whose optional argument defaults to None."""


def test_rewrite_signature_keeps_annotated_as_written() -> None:
    def wrapper(**kw: Any) -> None: ...

    rewrite_signature(wrapper, _fn, "ctx", [])
    param = inspect.signature(wrapper).parameters["repo"]
    # Python 3.10's get_type_hints made this Optional[Annotated[...]] and typer lost the Argument.
    assert get_origin(param.annotation) is Annotated
    assert isinstance(param.annotation.__metadata__[0], typer.models.ArgumentInfo)
