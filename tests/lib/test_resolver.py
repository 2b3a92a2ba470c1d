"""hfa.resolve.resolver as a library: resolve_offline, snapshot_files, read_cached and check_subfolder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hfa.cache.layout import CacheWriter
from hfa.errors import CheckFailed, UsageError
from hfa.resolve.files import RemoteFile
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import check_subfolder, read_cached, resolve_offline, snapshot_files

from .builders import DATA_FILES, MODEL_FILES, Built, git_sha1

MODEL = RepoRef("org/model")


def test_resolve_offline_from_a_snapshot_without_a_record(built: Built) -> None:
    resolved, complete = resolve_offline(built.cache, MODEL)
    assert complete is False  # write_repo leaves no hfa record of the full file list
    assert resolved.commit == built.model_commit and resolved.source == "cache"
    assert set(resolved.files) == set(MODEL_FILES)
    weights = resolved.files["model.safetensors"]
    assert weights.lfs_sha256 == hashlib.sha256(MODEL_FILES["model.safetensors"]).hexdigest()
    assert weights.size == len(MODEL_FILES["model.safetensors"])
    config = resolved.files["config.json"]
    assert (config.blob_id, config.lfs_sha256) == (git_sha1(MODEL_FILES["config.json"]), None)
    assert resolved.card_data.get("license") == "mit"


def test_resolve_offline_by_tag_commit_and_repo_type(built: Built) -> None:
    assert resolve_offline(built.cache, RepoRef("org/model", revision="v1"))[0].commit == built.model_commit
    pinned = RepoRef("org/model", revision=built.model_commit)
    assert resolve_offline(built.cache, pinned)[0].commit == built.model_commit
    data, _ = resolve_offline(built.cache, RepoRef("org/data", "dataset"))
    assert set(data.files) == set(DATA_FILES) and data.commit == built.data_commit
    with pytest.raises(CheckFailed):  # a dataset is not a model of the same name
        resolve_offline(built.cache, RepoRef("org/data"))


def test_resolve_offline_uses_the_full_record_when_there_is_one(built: Built) -> None:
    writer = CacheWriter(built.cache, "model", "org/model")
    extra = RemoteFile("big.bin", 10, "a" * 40, "b" * 64)
    resolved, _ = resolve_offline(built.cache, MODEL)
    writer.write_tree_record(built.model_commit, [f.to_json() for f in [*resolved.files.values(), extra]])
    again, complete = resolve_offline(built.cache, MODEL)
    assert complete is True
    assert again.files["big.bin"] == extra
    assert set(again.files) == set(MODEL_FILES) | {"big.bin"}


def test_resolve_offline_errors_name_the_pull_to_run(built: Built, tmp_path: Path) -> None:
    with pytest.raises(CheckFailed) as exc:
        resolve_offline(built.cache, RepoRef("org/absent"))
    assert "is not in the cache" in exc.value.message
    assert exc.value.hint and "`hfa pull org/absent`" in exc.value.hint
    with pytest.raises(CheckFailed) as exc:
        resolve_offline(built.cache, RepoRef("org/model", revision="v9"))
    assert "Revision 'v9'" in exc.value.message and "hfa pull org/model@v9" in (exc.value.hint or "")
    with pytest.raises(CheckFailed):
        resolve_offline(built.cache, RepoRef("org/model", revision="c" * 40))


def test_a_ref_that_is_not_a_commit_is_refused(built: Built) -> None:
    (built.model.refs / "main").write_text("../../../etc")
    with pytest.raises(CheckFailed):
        resolve_offline(built.cache, MODEL)


def test_snapshot_files_ignores_links_out_of_blobs_and_plain_files(built: Built, tmp_path: Path) -> None:
    snap = built.model_snapshot
    outside = tmp_path / ("a" * 40)  # named like a blob, but outside blobs/
    outside.write_text("secret")
    os.symlink(outside, snap / "leak.txt")
    (snap / "plain.txt").write_text("not a link")
    os.symlink("../../blobs/" + "f" * 40, snap / "dangling.txt")
    os.symlink(str(tmp_path), snap / "linked_dir")
    files = snapshot_files(built.model, built.model_commit)
    assert set(files) == set(MODEL_FILES)
    assert files["sub/notes.txt"].blob_id == git_sha1(MODEL_FILES["sub/notes.txt"])


def test_snapshot_files_of_a_missing_commit_is_empty(built: Built) -> None:
    assert snapshot_files(built.model, "d" * 40) == {}


def test_read_cached_returns_bytes_only_for_a_blob_of_the_right_size(built: Built) -> None:
    resolved, _ = resolve_offline(built.cache, MODEL)
    config = resolved.files["config.json"]
    assert read_cached(built.cache, MODEL, config) == MODEL_FILES["config.json"]
    assert read_cached(built.cache, MODEL, RemoteFile("config.json", config.size + 1, config.blob_id)) is None
    assert read_cached(built.cache, MODEL, RemoteFile("x", 3, "e" * 40)) is None
    assert read_cached(built.cache, RepoRef("org/other"), config) is None


def test_check_subfolder() -> None:
    assert check_subfolder(None) is None
    assert check_subfolder("/unet/") == "unet"
    assert check_subfolder("a/b") == "a/b"
    for bad in ("../x", "a/../../b"):
        with pytest.raises(UsageError) as exc:
            check_subfolder(bad)
        assert "Invalid --subfolder" in exc.value.message
