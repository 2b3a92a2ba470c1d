"""hfa.scan.targets: what `hfa scan NAME...` scans, without the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfa.errors import UsageError
from hfa.scan.targets import targets


def test_names_are_files_folders_a_cache_a_repo_folder_or_a_cached_repo(pulled: Path, tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "a.bin").write_bytes(b"x")
    whole, whole_cached = targets(pulled, [])
    assert whole and whole_cached == {t.display for t in whole}
    assert targets(pulled, [str(pulled)])[1] == whole_cached  # the cache, named as a folder
    repo_folder = pulled / "models--org--model"
    by_folder = targets(pulled, [str(repo_folder)])
    by_id = targets(pulled, ["org/model"])
    assert {t.display for t in by_folder[0]} == {t.display for t in by_id[0]} == by_id[1]
    assert by_id[1] <= whole_cached
    files, cached = targets(pulled, [str(tmp_path / "loose"), str(tmp_path / "loose" / "a.bin")])
    assert len(files) == 2 and cached == set()


def test_a_name_that_is_nothing_is_a_usage_error_saying_what_to_give(pulled: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="neither a file nor a folder nor a repo id"):
        targets(pulled, ["no such file!"])
    with pytest.raises(UsageError, match="not in the cache") as info:
        targets(pulled, ["org/absent"])
    assert "hfa pull org/absent" in (info.value.hint or "")
    with pytest.raises(UsageError, match="No cache"):
        targets(tmp_path / "nothing", [])
