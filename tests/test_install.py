"""hfa installs as a tool: a wheel and an sdist build (`make dist`), and the README's pip, pipx and
uv commands install them into fresh environments whose hfa pulls from `hfa serve`.

The installs fetch hfa's dependencies from the configured package index, each into a fresh
environment, so these tests take some seconds each (bounded by timeouts).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import World

from hfa import __version__
from hfa.server import HubServer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
INSTALL_TIMEOUT = 300

pytestmark = pytest.mark.slow


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    """A child environment that cannot see this checkout: no PYTHONPATH, a home of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HOME=str(tmp / "home"), XDG_CACHE_HOME=str(tmp / "home" / ".cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run from the sandbox home, never from this checkout (`python -c` would import hfa from the cwd)."""
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        argv, env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _source_copy(dest: Path) -> Path:
    """What a clone holds that the build needs (the checkout itself stays free of build/ and *.egg-info)."""
    shutil.copytree(ROOT / "hfa", dest / "hfa", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel (and, with `build` installed as `make dist` has it, the sdist), as `make dist` builds them."""
    root = tmp_path_factory.mktemp("dist")
    src = _source_copy(root / "src")
    out = root / "dist"
    env = _env(root)
    if importlib.util.find_spec("build") is not None:
        _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)], env)
    else:
        if os.environ.get("CI"):
            pytest.fail("`make test` installs build (the dev extra): `make dist` needs it")
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)], env)
    wheels = list(out.glob("*.whl"))
    assert [w.name for w in wheels] == [f"hfa-{__version__}-py3-none-any.whl"]
    built = {"wheel": wheels[0], "src": src}
    sdists = list(out.glob("*.tar.gz"))
    if sdists:
        built["sdist"] = sdists[0]
    return built


def _pull_with(hfa_bin: Path, tmp: Path, server: HubServer, world: World, env: dict[str, str]) -> None:
    """The installed hfa, from its own environment, pulls a repo from hfa serve into a cache."""
    version = _run([str(hfa_bin), "--version"], env)
    assert __version__ in version.stdout
    cache = tmp / "cache"
    _run([str(hfa_bin), "pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache), "-q"], env)
    snap = next((cache / "models--org--model" / "snapshots").iterdir())
    assert (snap / "config.json").read_bytes() == world.contents["org/model@v2"]["config.json"]


def test_wheel_holds_every_package_and_the_sdist_builds_it(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = whl.namelist()
    packages = sorted(p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "hfa").rglob("__init__.py"))
    for package in packages:
        assert f"{package}/__init__.py" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    assert "sdist" in dist, "build is not installed: `make test` installs it (the dev extra)"
    import tarfile

    with tarfile.open(dist["sdist"]) as tar:
        members = tar.getnames()
    assert any(m.endswith("/pyproject.toml") for m in members) and any(m.endswith("/README.md") for m in members)


@pytest.mark.parametrize("what", ["wheel", "clone"])
def test_pip_install_into_a_fresh_venv_then_pull(
    tmp_path: Path, dist: dict[str, Path], server: HubServer, world: World, what: str
) -> None:
    """`pip install dist/hfa-*.whl` and `pip install .` in a clone: a venv with nothing but hfa and its deps."""
    env = _env(tmp_path)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env)  # this pip installs into it: faster
    target = dist["wheel"] if what == "wheel" else dist["src"]
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(target)], env)
    _pull_with(venv / "bin" / "hfa", tmp_path, server, world, env)
    where = _run([str(venv / "bin" / "python"), "-c", "import hfa; print(hfa.__file__)"], env).stdout
    assert where.startswith(str(venv)), where  # its own copy, not this checkout


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `make test` installs it (the dev extra)")
    return found


def test_pipx_install_then_pull(tmp_path: Path, dist: dict[str, Path], server: HubServer, world: World) -> None:
    pipx = _tool("pipx")
    env = _env(
        tmp_path,
        PIPX_HOME=str(tmp_path / "pipx"),
        PIPX_BIN_DIR=str(tmp_path / "bin"),
        PIPX_MAN_DIR=str(tmp_path / "man"),
        PIPX_DEFAULT_PYTHON=sys.executable,
    )
    _run([pipx, "install", str(dist["wheel"])], env)
    _pull_with(tmp_path / "bin" / "hfa", tmp_path, server, world, env)


def test_uv_tool_install_then_pull(tmp_path: Path, dist: dict[str, Path], server: HubServer, world: World) -> None:
    uv = _tool("uv")
    env = _env(
        tmp_path,
        UV_TOOL_DIR=str(tmp_path / "tools"),
        UV_TOOL_BIN_DIR=str(tmp_path / "bin"),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",  # this Python, never a download
    )
    _run([uv, "tool", "install", "--python", sys.executable, str(dist["wheel"])], env)
    _pull_with(tmp_path / "bin" / "hfa", tmp_path, server, world, env)


def test_readme_install_section_names_what_works() -> None:
    """The README tells someone who only wants hfa how to install it; no doc offers `pip install hfa` from PyPI."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    for command in ("pipx install", "uv tool install", "pip install", "make dist", "download.pytorch.org/whl/cpu"):
        assert command in install, command
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\ndist:" in makefile and "-m build" in makefile
    for doc in ("README.md", "docs/ci.md", "docs/air-gapped.md", "docs/infer.md", "docs/serve.md"):
        text = (ROOT / doc).read_text(encoding="utf-8")
        for unpublished in ("pip install hfa\n", "pip install hfa ", "pip download hfa"):
            assert unpublished not in text, (doc, unpublished)
