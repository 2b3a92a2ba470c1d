"""hfa.cli.typer_seam steps aside, never errs, when typer's internals are not what it was written for.

Each test simulates a typer release that changed one internal the seam uses, and checks that
commands still parse (with typer's own coercion) and run: a pull from the server, a scan, a
usage error with exit 2.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from hfa.cli import app as app_module
from hfa.cli import typer_seam
from hfa.server import HubServer

runner = CliRunner()


def run(*args: Any) -> Any:
    return runner.invoke(app_module.build(), [str(a) for a in args])


def commands_work(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pulled = run("pull", "org/model", "--endpoint", server.url, "--cache-dir", cache, "--workers", "3", "--json")
    assert pulled.exit_code == 0, pulled.output
    assert json.loads(pulled.stdout)["files"]
    again = run("pull", "org/model", "--offline", "--cache-dir", cache, "-q")
    assert again.exit_code == 0, again.output
    (tmp_path / "model.bin").write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
    scanned = run("scan", tmp_path / "model.bin", "--fail-on", "low", "--json")
    assert scanned.exit_code == 0, scanned.output
    assert json.loads(scanned.stdout)["files_scanned"] == 1
    bad = run("pull", "org/model", "--workers", "0", "--offline")
    assert bad.exit_code == 2 and "--workers" in bad.stderr, bad.output  # typer's own range message
    unknown = run("pull", "--no-such-flag")
    assert unknown.exit_code == 2, unknown.output


def coercers(*args: str) -> dict[str, Any]:
    """The coercer each parameter of ``hfa pull`` holds after parsing ``args``."""
    pull = get_command(app_module.build(("pull",))).commands["pull"]  # type: ignore[attr-defined]
    ctx = typer.Context(pull, info_name="pull")
    pull.parse_args(ctx, list(args))
    return {p.name: getattr(p, typer_seam.RUNTIME_ATTR, None) for p in pull.get_params(ctx)}


def test_the_seam_is_in_use_on_the_typer_it_was_written_for(server: HubServer, tmp_path: Path) -> None:
    assert isinstance(coercers("org/model", "--workers", "3")["workers"], typer_seam.PlainCoercion)
    commands_work(server, tmp_path)


def test_a_typer_without_the_attribute_gets_typers_own_path(
    server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(typer_seam, "RUNTIME_ATTR", "_coercer_of_another_typer")
    assert not any(isinstance(c, typer_seam.PlainCoercion) for c in coercers("org/model", "--workers", "3").values())
    commands_work(server, tmp_path)


def test_parameters_of_another_shape_and_no_build_runtime_param(
    server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other_shape(annotation: Any, info: Any, value: Any) -> Any:
        raise AttributeError("'TypeDescriptor' object has no attribute 'parameter_info'")

    monkeypatch.setattr(typer_seam, "plain_value", other_shape)
    import typer._coercion

    monkeypatch.delattr(typer._coercion, "build_runtime_param")  # `from typer._coercion import ...` fails
    commands_work(server, tmp_path)


def test_a_typer_without_its_vendored_click_errors(
    server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(typer_seam, "click_errors", None)
    commands_work(server, tmp_path)
    usage = run("pull", "--no-such-flag", "--json")
    assert usage.exit_code == 2 and usage.stdout == ""  # typer's message only: no --json document
