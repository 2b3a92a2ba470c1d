"""hfa.cache.inventory / cache_ops / cache_delete as a library: list_cache, plan_rm/prune/gc, preview and apply."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from hfa.cache.delete import IN_USE, apply, preview
from hfa.cache.inventory import cache_root, list_cache
from hfa.cache.layout import CacheWriter, RepoDir
from hfa.cache.plan import BUSY, plan_gc, plan_prune, plan_rm
from hfa.errors import NotFound, UsageError
from hfa.lock.lockfile import Lock
from hfa.testing import write_repo

from .builders import blob_name, locked_repo

WEIGHTS = bytes(range(256)) * 64  # 16 KiB, shared by v1 and v2
NOTES = b"shared notes\n"
V1 = {"config.json": b'{"v": 1}', "model.safetensors": WEIGHTS, "notes.txt": NOTES}
V2 = {"config.json": b'{"v": 2}', "model.safetensors": WEIGHTS, "notes.txt": NOTES}
V3 = {"config.json": b'{"v": 3}', "only3.txt": b"detached only\n"}
DATA = {"train.csv": b"a,b\n1,2\n"}
MODEL = "models--org--model"


@dataclass
class Layout:
    cache: Path
    v1: str
    v2: str
    v3: str  # detached: no ref names it
    data: str

    @property
    def repo(self) -> RepoDir:
        return RepoDir(self.cache, "model", "org/model")

    def blob(self, files: dict[str, bytes], path: str) -> Path:
        return self.repo.blobs / blob_name(path, files[path])


@pytest.fixture
def lay(tmp_path: Path) -> Layout:
    cache = tmp_path / "hub"
    v1 = write_repo(cache, "org/model", V1, branch=None, tags=["v1"], message="one")
    v2 = write_repo(cache, "org/model", V2, parent=v1, message="two")
    v3 = write_repo(cache, "org/model", V3, branch=None, parent=v2, message="three")
    data = write_repo(cache, "org/data", DATA, repo_type="dataset")
    return Layout(cache, v1, v2, v3, data)


def tree(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def size(*files: bytes) -> int:
    return sum(len(f) for f in files)


def hold(lay: Layout, blob: str) -> FileLock:
    """The per-blob lock a running download holds."""
    lock = CacheWriter(lay.cache, "model", "org/model").lock(blob)
    lock.acquire()
    return lock


# -- list_cache ------------------------------------------------------------------------------------


def test_list_cache_counts_revisions_refs_and_sizes(lay: Layout) -> None:
    listing = list_cache(lay.cache)
    assert [(r.repo.repo_type, r.repo.repo_id) for r in listing.repos] == [
        ("dataset", "org/data"),
        ("model", "org/model"),
    ]
    model = listing.repos[1]
    revisions = {r.commit: r for r in model.revisions}
    assert set(revisions) == {lay.v1, lay.v2, lay.v3}
    assert revisions[lay.v1].refs == ["v1"] and revisions[lay.v2].refs == ["main"]
    assert revisions[lay.v3].detached and not revisions[lay.v2].detached
    assert model.revisions[-1].commit == lay.v3  # detached last
    assert revisions[lay.v2].files == 3 and revisions[lay.v2].size == size(*V2.values())
    distinct = {V1["config.json"], V2["config.json"], WEIGHTS, NOTES, *V3.values()}
    assert model.files == len(distinct) and model.size == size(*distinct)
    assert listing.size == model.size + size(*DATA.values())
    assert model.dangling_refs == {} and model.incomplete_files == 0
    assert model.last_used[0] is not None


def test_list_cache_reports_dangling_refs_and_partials(lay: Layout) -> None:
    (lay.repo.refs / "gone").write_text("b" * 40)
    (lay.repo.blobs / ("a" * 64 + ".incomplete")).write_bytes(b"12345")
    model = list_cache(lay.cache).repos[1]
    assert model.dangling_refs == {"gone": "b" * 40}
    assert (model.incomplete_files, model.incomplete_bytes) == (1, 5)


def test_list_cache_of_an_empty_or_missing_cache(tmp_path: Path) -> None:
    assert list_cache(tmp_path / "none").repos == []
    assert list_cache(tmp_path).size == 0


def test_root_and_home_are_never_a_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError) as exc:
        cache_root(Path("/"))
    assert "root" in exc.value.message
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(UsageError) as exc:
        plan_prune(tmp_path)
    assert "home directory" in exc.value.message


# -- rm --------------------------------------------------------------------------------------------


def test_rm_a_revision_keeps_blobs_another_revision_uses(lay: Layout) -> None:
    plan = plan_rm(lay.cache, ["org/model@v1"])
    assert plan.revisions == [f"org/model@{lay.v1}"] and plan.repos == []
    blobs = [r.path.name for r in plan.removals if r.kind == "blob"]
    assert blobs == [lay.blob(V1, "config.json").name]
    assert plan.bytes == len(V1["config.json"])
    result = apply(plan)
    assert result.failed == [] and result.bytes_freed == plan.bytes
    assert not lay.repo.snapshot(lay.v1).exists() and not (lay.repo.refs / "v1").exists()
    assert lay.blob(V2, "model.safetensors").is_file()
    assert (lay.repo.snapshot(lay.v2) / "model.safetensors").read_bytes() == WEIGHTS


def test_rm_a_whole_repo_leaves_the_others(lay: Layout) -> None:
    others = {k: v for k, v in tree(lay.cache).items() if not k.startswith((MODEL, ".locks"))}
    plan = plan_rm(lay.cache, ["org/model"])
    assert plan.repos == ["org/model"] and len(plan.revisions) == 3
    result = apply(plan)
    assert result.counts()["folder"] >= 1 and result.failed == []
    assert not (lay.cache / MODEL).exists()
    assert {k: v for k, v in tree(lay.cache).items() if not k.startswith(".locks")} == others


def test_rm_by_commit_prefix_folder_name_and_last_revision(lay: Layout) -> None:
    plan = plan_rm(lay.cache, [f"org/model@{lay.v3[:10]}"])
    assert plan.revisions == [f"org/model@{lay.v3}"]
    whole = plan_rm(lay.cache, ["datasets--org--data"])
    assert whole.repos == ["datasets/org/data"]
    last = plan_rm(lay.cache, [f"datasets/org/data@{lay.data}"])
    assert last.repos == ["datasets/org/data"]  # no revision left: the repo goes whole


def test_rm_bad_targets(lay: Layout) -> None:
    with pytest.raises(NotFound) as exc:
        plan_rm(lay.cache, ["org/absent"])
    assert exc.value.hint and "hfa cache ls" in exc.value.hint
    with pytest.raises(NotFound):
        plan_rm(lay.cache, ["org/model@nope"])
    with pytest.raises(UsageError):
        plan_rm(lay.cache, ["org/model@"])


# -- prune -----------------------------------------------------------------------------------------


def test_prune_removes_detached_revisions_partials_and_orphans(lay: Layout) -> None:
    partial = lay.repo.blobs / ("a" * 64 + ".incomplete")
    partial.write_bytes(b"part")
    orphan = lay.repo.blobs / ("e" * 40)
    orphan.write_bytes(b"nobody links me")
    plan = plan_prune(lay.cache)
    assert plan.revisions == [f"org/model@{lay.v3}"]
    result = apply(plan)
    assert result.failed == []
    assert not lay.repo.snapshot(lay.v3).exists() and not partial.exists() and not orphan.exists()
    assert not lay.blob(V3, "only3.txt").exists()
    assert lay.repo.snapshot(lay.v1).is_dir() and lay.repo.snapshot(lay.v2).is_dir()
    assert plan_prune(lay.cache).removals == []  # nothing left to prune


def test_prune_leaves_a_repo_alone_while_a_download_runs(lay: Layout) -> None:
    lock = hold(lay, "c" * 64)
    try:
        plan = plan_prune(lay.cache)
    finally:
        lock.release()
    skipped = {s.item.rel: s.why for s in plan.skipped}
    assert skipped[f"{MODEL}/snapshots/{lay.v3}"] == BUSY
    assert not any(r.kind == "folder" and lay.v3 in r.rel for r in plan.removals)


# -- gc --------------------------------------------------------------------------------------------


def test_gc_keeps_exactly_what_the_locks_name(lay: Layout) -> None:
    keep = Lock((locked_repo("org/model", lay.v2, {p: V2[p] for p in ("config.json", "model.safetensors")}),))
    plan = plan_gc(lay.cache, [keep])
    assert "datasets/org/data" in plan.repos
    assert sorted(plan.revisions) == sorted(
        [f"org/model@{lay.v1}", f"org/model@{lay.v3}", f"datasets/org/data@{lay.data}"]
    )
    apply(plan)
    snap = lay.repo.snapshot(lay.v2)
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "model.safetensors"]
    assert (snap / "model.safetensors").read_bytes() == WEIGHTS
    assert not lay.blob(V2, "notes.txt").exists()
    assert sorted(lay.repo.list_refs()) == ["main"]
    assert not (lay.cache / "datasets--org--data").exists()


def test_gc_with_no_lock_removes_everything(lay: Layout) -> None:
    apply(plan_gc(lay.cache, []))
    assert list_cache(lay.cache).repos == []


# -- preview and apply ------------------------------------------------------------------------------


def test_preview_changes_nothing_and_matches_apply(lay: Layout) -> None:
    before = tree(lay.cache)
    plan = plan_rm(lay.cache, ["org/model@v1"])
    dry = preview(plan)
    assert dry.dry_run and dry.removed == plan.removals and dry.bytes_freed == plan.bytes
    assert tree(lay.cache) == before
    assert not (lay.cache / ".locks").exists()  # a preview creates no lock file
    done = apply(plan)
    assert not done.dry_run and done.removed == plan.removals


def test_a_blob_whose_lock_is_held_is_kept_and_reported(lay: Layout) -> None:
    only_v1 = lay.blob(V1, "config.json")
    lock = hold(lay, only_v1.name)
    try:
        plan = plan_rm(lay.cache, ["org/model@v1"])
        assert [s.item.path for s in preview(plan).in_use] == [only_v1]
        result = apply(plan)
    finally:
        lock.release()
    assert [(s.item.path, s.why) for s in result.skipped] == [(only_v1, IN_USE)]
    assert only_v1.is_file() and not lay.repo.snapshot(lay.v1).exists()
    assert result.to_json()["bytes_in_use"] == len(V1["config.json"])


def test_a_blob_linked_after_planning_is_kept(lay: Layout) -> None:
    only_v1 = lay.blob(V1, "config.json")
    plan = plan_rm(lay.cache, ["org/model@v1"])
    assert only_v1 in [r.path for r in plan.removals]
    # A pull links the blob into another snapshot between planning and applying.
    (lay.repo.snapshot(lay.v2) / "old-config.json").symlink_to("../../blobs/" + only_v1.name)
    result = apply(plan)
    assert [s.item.path for s in result.skipped] == [only_v1]
    assert result.skipped[0].why.startswith("in use: now linked from")
    assert (lay.repo.snapshot(lay.v2) / "old-config.json").read_bytes() == V1["config.json"]


def test_links_out_of_the_cache_are_removed_never_followed(lay: Layout, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(b"keep me")
    (lay.repo.snapshot(lay.v1) / "evil.txt").symlink_to(secret)
    (lay.repo.snapshot(lay.v1) / "evil-dir").symlink_to(outside, target_is_directory=True)
    result = apply(plan_rm(lay.cache, ["org/model"]))
    assert result.failed == []
    assert not (lay.cache / MODEL).exists()
    assert secret.read_bytes() == b"keep me" and sorted(os.listdir(outside)) == ["secret.bin"]


def test_a_symlinked_repo_folder_is_refused(lay: Layout, tmp_path: Path) -> None:
    fake = tmp_path / "elsewhere" / "models--evil--repo"
    (fake / "snapshots").mkdir(parents=True)
    (lay.cache / "models--evil--repo").symlink_to(fake, target_is_directory=True)
    with pytest.raises(UsageError) as exc:
        plan_rm(lay.cache, ["evil/repo"])
    assert "is a link" in exc.value.message
    assert fake.is_dir()
