"""hfa.server.store as a library: CacheStore answers the Hub's questions from a cache, read-only."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from hfa.lock.lockfile import Lock
from hfa.server.store import CacheStore, LockScope, tree_oid
from hfa.testing import lfs_pointer_stub, write_repo

from .builders import MODEL_FILES, Built, git_sha1, locked_repo


@pytest.fixture
def store(built: Built) -> CacheStore:
    return CacheStore(built.cache)


def test_repos_lists_every_repo_and_filters_by_type(store: CacheStore) -> None:
    assert [(r.repo_type, r.repo_id) for r in store.repos()] == [("dataset", "org/data"), ("model", "org/model")]
    assert [r.repo_id for r in store.repos("model")] == ["org/model"]
    assert store.repos("space") == []


def test_repo_and_exists(store: CacheStore) -> None:
    repo = store.repo("model", "org/model")
    assert repo is not None and repo.repo_id == "org/model" and repo.tags == {"v1"}
    assert store.exists("dataset", "org/data") and not store.exists("model", "org/data")
    assert store.repo("model", "org/absent") is None and not store.exists("model", "org/absent")


def test_a_symlinked_repo_folder_is_not_served(built: Built, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(built.model.path, elsewhere / "models--evil--repo", symlinks=True)
    (built.cache / "models--evil--repo").symlink_to(elsewhere / "models--evil--repo", target_is_directory=True)
    store = CacheStore(built.cache)
    assert store.repo("model", "evil/repo") is None
    assert "evil/repo" not in [r.repo_id for r in store.repos()]


def test_resolve_branches_tags_qualified_names_and_commits(store: CacheStore, built: Built) -> None:
    repo = store.repo("model", "org/model")
    assert repo is not None
    assert store.refs(repo) == {"main": built.model_commit, "v1": built.model_commit}
    for revision in ("main", "refs/heads/main", "v1", "refs/tags/v1", built.model_commit):
        assert store.resolve(repo, revision) == built.model_commit, revision
    assert store.resolve(repo, "nope") is None
    assert store.resolve(repo, "f" * 40) is None  # a commit with no snapshot
    assert store.default_commit(repo) == built.model_commit


def test_default_commit_without_main_is_the_newest_snapshot(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    old = write_repo(cache, "org/nomain", {"a.txt": b"1"}, branch=None)
    new = write_repo(cache, "org/nomain", {"a.txt": b"2"}, branch=None, parent=old)
    now = os.stat(cache).st_mtime
    snaps = cache / "models--org--nomain" / "snapshots"
    os.utime(snaps / old, (now - 100, now - 100))
    os.utime(snaps / new, (now, now))
    store = CacheStore(cache)
    repo = store.repo("model", "org/nomain")
    assert repo is not None and store.default_commit(repo) == new


def test_snapshot_describes_every_file_with_its_hashes(store: CacheStore, built: Built) -> None:
    repo = store.repo("model", "org/model")
    assert repo is not None
    snap = store.snapshot(repo, built.model_commit)
    assert snap is not None and snap.commit == built.model_commit
    assert snap.date == "2026-01-02T03:04:05.000Z" and snap.title == "commit"
    assert set(snap.files) == set(MODEL_FILES)
    weights = snap.files["model.safetensors"]
    data = MODEL_FILES["model.safetensors"]
    assert weights.lfs_sha256 == hashlib.sha256(data).hexdigest() == weights.etag
    assert weights.blob_id == git_sha1(lfs_pointer_stub(data)) and weights.size == len(data)
    assert weights.pointer_size == len(lfs_pointer_stub(data))
    config = snap.files["config.json"]
    assert (config.blob_id, config.lfs_sha256, config.etag) == (
        git_sha1(MODEL_FILES["config.json"]),
        None,
        config.blob_id,
    )
    assert config.blob_path.read_bytes() == MODEL_FILES["config.json"]
    assert store.snapshot(repo, "f" * 40) is None
    assert store.snapshot(repo, "main") is None  # a name is not a commit


def test_snapshot_never_leads_out_of_the_cache(built: Built, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    snap_dir = built.model_snapshot
    (snap_dir / "leak.txt").symlink_to(outside)
    (snap_dir / "leakdir").symlink_to(tmp_path, target_is_directory=True)
    (snap_dir / "dangling.txt").symlink_to("../../blobs/" + "0" * 40)
    store = CacheStore(built.cache)
    repo = store.repo("model", "org/model")
    assert repo is not None
    snap = store.snapshot(repo, built.model_commit)
    assert snap is not None and set(snap.files) == set(MODEL_FILES)


def test_copied_snapshot_files_are_hashed_like_the_hub(tmp_path: Path) -> None:
    """Files copied into a snapshot (no links, as on Windows) get the hashes the Hub would list."""
    cache = tmp_path / "hub"
    commit = "a" * 40
    snap = cache / "models--org--copied" / "snapshots" / commit
    snap.mkdir(parents=True)
    weights, text = b"\0weights" * 100, b"plain text\n"
    (snap / "w.safetensors").write_bytes(weights)
    (snap / "notes.txt").write_bytes(text)
    store = CacheStore(cache)
    repo = store.repo("model", "org/copied")
    assert repo is not None
    files = store.snapshot(repo, commit).files  # type: ignore[union-attr]
    assert files["w.safetensors"].lfs_sha256 == hashlib.sha256(weights).hexdigest()
    assert (files["notes.txt"].blob_id, files["notes.txt"].lfs_sha256) == (git_sha1(text), None)


def test_a_file_added_to_a_snapshot_is_seen(store: CacheStore, built: Built) -> None:
    repo = store.repo("model", "org/model")
    assert repo is not None
    assert "added/x.txt" not in store.snapshot(repo, built.model_commit).files  # type: ignore[union-attr]
    (built.model_snapshot / "added").mkdir()
    (built.model_snapshot / "added" / "x.txt").symlink_to("../../../blobs/" + git_sha1(MODEL_FILES["config.json"]))
    files = store.snapshot(repo, built.model_commit).files  # type: ignore[union-attr]
    assert files["added/x.txt"].blob_id == git_sha1(MODEL_FILES["config.json"])


def test_card_data_from_readme(store: CacheStore, built: Built) -> None:
    repo = store.repo("model", "org/model")
    assert repo is not None
    card = store.card_data(store.snapshot(repo, built.model_commit))
    assert card["license"] == "mit" and card["pipeline_tag"] == "text-classification"
    assert store.card_data(None) == {}


def test_card_data_is_always_json(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    readme = "---\nlicense: mit\nreleased: 2024-01-02\n1: one\nanchors: &a [1, 2]\nagain: *a\n---\n"
    commit = write_repo(cache, "org/odd", {"README.md": readme})
    store = CacheStore(cache)
    repo = store.repo("model", "org/odd")
    assert repo is not None
    card = store.card_data(store.snapshot(repo, commit))
    assert card["released"] == "2024-01-02" and card["1"] == "one" and card["again"] == [1, 2]
    assert (
        write_repo(cache, "org/nocard", {"a.txt": b"x"})
        and store.card_data(
            store.snapshot(store.repo("model", "org/nocard"), store.default_commit(store.repo("model", "org/nocard")))  # type: ignore[arg-type]
        )
        == {}
    )


def test_downloads_count_from_meta_and_from_serving(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    write_repo(cache, "org/popular", {"a.txt": b"x"}, downloads=41, likes=3)
    store = CacheStore(cache)
    repo = store.repo("model", "org/popular")
    assert repo is not None and store.download_count(repo) == 41
    store.count_download(repo)
    assert store.download_count(repo) == 42
    assert store.download_count(store.repo("model", "org/popular")) == 42  # type: ignore[arg-type]


def test_lock_scope_shows_only_what_the_lock_names(built: Built) -> None:
    write_repo(built.cache, "org/hidden", {"a.txt": b"x"})
    entry = locked_repo("org/model", built.model_commit, {"config.json": MODEL_FILES["config.json"]})
    store = CacheStore(built.cache, LockScope.from_lock(Lock((entry,))))
    assert [r.repo_id for r in store.repos()] == ["org/model"]
    assert store.repo("model", "org/hidden") is None and not store.exists("dataset", "org/data")
    repo = store.repo("model", "org/model")
    assert repo is not None
    assert store.refs(repo) == {"main": built.model_commit}  # the lock's revision only, not the tag v1
    assert store.resolve(repo, "v1") is None and store.resolve(repo, "main") == built.model_commit
    snap = store.snapshot(repo, built.model_commit)
    assert snap is not None and list(snap.files) == ["config.json"]


def test_lock_scope_hides_commits_the_lock_does_not_name(built: Built) -> None:
    other = write_repo(built.cache, "org/model", {"x.txt": b"other"}, branch=None)
    entry = locked_repo("org/model", built.model_commit, MODEL_FILES, revision=built.model_commit)
    store = CacheStore(built.cache, LockScope.from_lock(Lock((entry,))))
    repo = store.repo("model", "org/model")
    assert repo is not None
    assert store.commits(repo) == [built.model_commit] and store.snapshot(repo, other) is None
    assert store.refs(repo) == {}  # pinned by commit: no names
    assert store.repo("dataset", "org/data") is None


def test_tree_oid_is_order_independent() -> None:
    assert tree_oid(["b", "a"]) == tree_oid(["a", "b"]) != tree_oid(["a"])
    assert len(tree_oid([])) == 40


def test_store_changes_nothing_on_disk(built: Built) -> None:
    def listing() -> list[tuple[str, int]]:
        return sorted((str(p), p.lstat().st_mtime_ns) for p in built.cache.rglob("*"))

    before = listing()
    store = CacheStore(built.cache)
    for repo in store.repos():
        commit = store.default_commit(repo)
        assert commit is not None
        store.card_data(store.snapshot(repo, commit))
    assert listing() == before
