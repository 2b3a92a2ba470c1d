"""The suite runs in a sandbox home: nothing it does lands in the user's real home or cache.

conftest.py points HOME, XDG_CACHE_HOME and HF_HOME at a session directory before anything
is imported, and fails the session if the real ~/.cache/huggingface gained an entry.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REAL_HF_HOME, REAL_HOME, real_hf_home_listing


def _inside(path: str | Path, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def test_home_and_hf_home_are_not_the_real_ones(tmp_path: Path) -> None:
    assert Path.home() != REAL_HOME and _inside(Path.home(), tmp_path)
    assert not _inside(os.environ["HF_HOME"], REAL_HOME)
    assert not _inside(os.environ["XDG_CACHE_HOME"], REAL_HOME)


def test_paths_read_once_at_import_point_into_the_session_sandbox() -> None:
    """huggingface_hub (and transformers, where remote code is copied) fix HF_HOME when first imported."""
    from huggingface_hub import constants

    assert not _inside(constants.HF_HOME, REAL_HOME) and not _inside(constants.HF_HOME, REAL_HF_HOME)
    if importlib.util.find_spec("transformers") is not None:
        code = "from transformers.dynamic_module_utils import HF_MODULES_CACHE; print(HF_MODULES_CACHE)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
        assert not _inside(out.stdout.strip(), REAL_HOME), out.stdout
        assert not _inside(out.stdout.strip(), REAL_HF_HOME), out.stdout


def test_real_hf_home_listing_sees_new_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session-end check itself: a new file under the watched folder is noticed."""
    import conftest

    monkeypatch.setattr(conftest, "REAL_HF_HOME", tmp_path)
    before = real_hf_home_listing()
    (tmp_path / "modules" / "transformers_modules").mkdir(parents=True)
    (tmp_path / "modules" / "transformers_modules" / "modeling_evil.py").write_text("")
    assert real_hf_home_listing() - before == {
        "modules",
        "modules/transformers_modules",
        "modules/transformers_modules/modeling_evil.py",
    }
