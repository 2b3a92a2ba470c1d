"""pyproject, README, lint settings and CI agree on the lowest supported Python, and CI runs it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lowest() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^requires-python = ">=(\d+\.\d+)"', text, re.M)
    assert match, 'pyproject.toml must say requires-python = ">=3.X"'
    return match.group(1)


def test_pyproject_lint_settings_and_readme_name_the_same_lowest_version() -> None:
    version = lowest()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'target-version = "py{version.replace(".", "")}"' in pyproject  # ruff
    assert f'python_version = "{version}"' in pyproject  # mypy
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"hfa supports Python {version} and newer" in readme
    assert f"Python {version}, the lowest supported" in readme


def test_ci_runs_the_suite_on_the_lowest_version_after_the_main_run() -> None:
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    steps = [s for s in steps if s.startswith("make ")]
    assert steps == ["make test", "make lint", "make test-lowest"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test-lowest:", makefile, re.M)
    assert "scripts/lowest_python.sh" in makefile


def test_lowest_python_is_found_or_missing_loudly(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "lowest_python.sh"
    # Nowhere to look: a clear message and a failure, never an empty answer CI would skip on.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "no-pyenv")}
    missing = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert f"no Python {lowest()} found" in missing.stderr and "pyenv install" in missing.stderr
    # A pyenv shim on PATH that refuses to run is passed over; pyenv's newest patch release wins.
    version = lowest()
    fake = f"#!/bin/sh\necho {version}\n"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / f"python{version}"
    shim.write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
    for patch in ("2", "13", "9"):
        python = tmp_path / "pyenv" / "versions" / f"{version}.{patch}" / "bin" / f"python{version}"
        python.parent.mkdir(parents=True)
        python.write_text(fake)
    for path in [shim, *tmp_path.glob("pyenv/versions/*/bin/python*")]:
        path.chmod(0o755)
    env.update(PATH=f"{bindir}{os.pathsep}{env['PATH']}", PYENV_ROOT=str(tmp_path / "pyenv"))
    found = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(tmp_path / "pyenv" / "versions" / f"{version}.13" / "bin" / f"python{version}")
