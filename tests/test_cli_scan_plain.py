"""`hfa scan` with plain arguments runs without typer (hfa.cli.scanning.scan_plain) and writes
exactly what the full CLI writes; everything else falls through to the full CLI."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from helpers import run_entry

from hfa.testing import lfs_pointer_stub

ROOT = Path(__file__).resolve().parent.parent


def _run(module: str, argv: list[str], cwd: Path) -> tuple[int, str, str, bool]:
    return run_entry(module, argv, cwd)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "model.bin").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    (clean / "config.json").write_text("{}")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "modeling.py").write_text("x = 1\n")  # medium
    (tmp_path / "stub.safetensors").write_bytes(lfs_pointer_stub(b"abc"))  # high
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Evil(), protocol=2))  # critical
    (tmp_path / "allow.toml").write_text('allow = ["mypkg.Safe"]\n')
    return tmp_path


PLAIN = [
    ["clean/model.bin"],
    ["clean", "--json"],
    ["clean", "-q"],
    ["code", "clean", "-v"],
    ["code", "--json", "--sarif", "out.sarif"],
    ["stub.safetensors", "--fail-on", "critical", "--sarif=out.sarif"],
    ["clean", "--allowlist", "allow.toml", "-q", "-q"],
    ["evil.pkl"],  # a finding at or above --fail-on: reported and exit 1, scanned once
    ["code", "--fail-on=medium", "--json"],
    ["evil.pkl", "--sarif", "out.sarif", "-v"],
]
FULL = [
    ["missing.bin"],
    ["clean", "--fail-on", "severe"],
    ["clean", "--sarif", "clean"],  # a folder as --sarif
    ["clean", "--help"],
    ["clean", "--cache-dir", "elsewhere"],
    ["-qq", "clean"],
    [],
]


@pytest.mark.parametrize("argv", PLAIN + FULL, ids=lambda argv: " ".join(argv) or "no-args")
def test_plain_path_writes_what_the_full_cli_writes(files: Path, argv: list[str]) -> None:
    sarif = files / "out.sarif"
    fast = _run("hfa.cli.entry", ["scan", *argv], files)
    fast_sarif = sarif.read_bytes() if sarif.exists() else None
    sarif.unlink(missing_ok=True)
    full = _run("hfa.cli.app", ["scan", *argv], files)
    full_sarif = sarif.read_bytes() if sarif.exists() else None
    assert fast[:3] == full[:3]
    assert fast_sarif == full_sarif
    assert full[3] is True
    assert fast[3] is (argv not in PLAIN), "typer was loaded" if fast[3] else "the plain path ran"


def test_console_script_takes_the_plain_path() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the backport hfa depends on there
        import tomli as tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["hfa"] == "hfa.cli.entry:main"
    assert (ROOT / "hfa" / "__main__.py").read_text().startswith("from hfa.cli.entry import main")


def test_the_plain_path_reads_the_options_of_the_typer_command() -> None:
    """One table: each option the plain path parses is the typer command's option of that name."""
    from typer.main import get_command

    from hfa.cli.app import build
    from hfa.cli.scanning import PLAIN_COMMON, SCAN_OPTIONS

    scan = get_command(build(("scan",))).commands["scan"]  # type: ignore[attr-defined]
    options = {p.name: set(p.opts) for p in scan.params if p.param_type_name == "option"}
    for name, option in SCAN_OPTIONS.items():
        assert options[name] == {option.flag}, name
    for flag, name in PLAIN_COMMON.items():
        assert flag in options[name], flag
    declined = set(options) - set(SCAN_OPTIONS) - set(PLAIN_COMMON.values())
    assert declined == {"endpoint", "cache_dir", "token", "offline"}  # these go to the full CLI
