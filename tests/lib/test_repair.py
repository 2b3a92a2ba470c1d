"""hfa.repair as a library: fetch again what a verification found missing or corrupt, replace LFS stubs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import World

from hfa.config import Settings
from hfa.errors import UsageError
from hfa.hub.download import HashMismatch
from hfa.lock import lockfile
from hfa.pin import pin
from hfa.pull import pull, pull_locked
from hfa.repair import repair
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions
from hfa.scan.model import ScanPolicy
from hfa.server import HubServer
from hfa.testing import lfs_pointer_stub
from hfa.verify import VerifyReport, verify_cache, verify_folder, verify_lock

from .builders import blob_name

MODEL = RepoRef("org/model")
POLICY = ScanPolicy()
DEAD = "http://127.0.0.1:9"


def snapshot(settings: Settings, world: World) -> Path:
    return settings.cache_dir / "models--org--model" / "snapshots" / world.commits["org/model@v2"]


def blob(settings: Settings, world: World, path: str) -> Path:
    data = world.contents["org/model@v2"][path]
    return settings.cache_dir / "models--org--model" / "blobs" / blob_name(path, data)


def test_a_corrupt_blob_is_fetched_again_and_verified(online: Settings, world: World) -> None:
    pull(online, MODEL, SelectOptions())
    weights = blob(online, world, "model.safetensors")
    weights.write_bytes(b"\0" * weights.stat().st_size)
    report = verify_cache(online.cache_dir, None, POLICY, scan=False)
    assert report.to_refetch
    lines = repair(online, report, lock=None, folder=None, repo=None)
    commit = world.commits["org/model@v2"]
    assert lines == [f"fixed org/model@{commit}/model.safetensors: fetched and verified (sha256)"]
    assert weights.read_bytes() == world.contents["org/model@v2"]["model.safetensors"]
    assert verify_cache(online.cache_dir, None, POLICY, scan=False).findings == []


def test_a_missing_blob_behind_a_link_is_fetched_again(online: Settings, world: World) -> None:
    pull(online, MODEL, SelectOptions())
    blob(online, world, "config.json").unlink()
    report = verify_cache(online.cache_dir, None, POLICY, scan=False)
    assert [f.code for f in report.findings] == ["cache.broken-link"]
    lines = repair(online, report, lock=None, folder=None, repo=None)
    assert len(lines) == 1 and "config.json" in lines[0] and "(git-sha1)" in lines[0]
    assert (snapshot(online, world) / "config.json").read_bytes() == world.contents["org/model@v2"]["config.json"]


def test_nothing_to_fix_needs_no_network(cache: Path) -> None:
    dead = Settings.resolve(cache_dir=cache, endpoint=DEAD)
    assert repair(dead, VerifyReport(), lock=None, folder=None, repo=None) == []
    assert repair(dead, VerifyReport(), lock=None, folder=cache, repo=None) == []


def test_a_path_the_repo_does_not_have_cannot_be_fixed(online: Settings, world: World) -> None:
    commit = world.commits["org/model@v2"]
    report = VerifyReport(to_refetch=[("model", "org/model", commit, "not/there.txt")])
    lines = repair(online, report, lock=None, folder=None, repo=None)
    assert lines == [f"cannot fix org/model@{commit}/not/there.txt: not in the repo's file list"]


def test_with_a_lock_the_locked_files_are_restored(online: Settings, world: World, tmp_path: Path) -> None:
    lock_path = tmp_path / "hfa.lock"
    pin(online, lock_path, MODEL, SelectOptions(config_only=True))
    lock = lockfile.read(lock_path)
    pull_locked(online, list(lock.repos))
    (snapshot(online, world) / "README.md").unlink()
    report = verify_lock(online.cache_dir, lock, POLICY, scan=False)
    assert [f.code for f in report.findings] == ["lock.missing-file"]
    lines = repair(online, report, lock=lock_path, folder=None, repo=None)
    assert len(lines) == 1 and "README.md" in lines[0]
    assert verify_lock(online.cache_dir, lock, POLICY, scan=False).findings == []


def clone(root: Path, world: World, *, origin: str | None = "https://huggingface.co/org/model") -> Path:
    """A git clone made without git-lfs: model.safetensors is a pointer stub."""
    (root / ".git").mkdir(parents=True)
    if origin is not None:
        (root / ".git" / "config").write_text(f'[remote "origin"]\n\turl = {origin}\n')
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "refs" / "heads").mkdir(parents=True)
    (root / ".git" / "refs" / "heads" / "main").write_text(world.commits["org/model@v2"] + "\n")
    files = world.contents["org/model@v2"]
    (root / "model.safetensors").write_bytes(lfs_pointer_stub(files["model.safetensors"]))
    (root / "config.json").write_bytes(files["config.json"])
    return root


def test_lfs_stubs_in_a_clone_are_replaced_by_verified_content(online: Settings, world: World, tmp_path: Path) -> None:
    folder = clone(tmp_path / "clone", world)
    report = verify_folder(folder, POLICY)
    assert [s[1] for s in report.stubs] == ["model.safetensors"]
    lines = repair(online, report, lock=None, folder=folder, repo=None)
    assert len(lines) == 1 and lines[0].startswith("replaced LFS stub model.safetensors")
    assert (folder / "model.safetensors").read_bytes() == world.contents["org/model@v2"]["model.safetensors"]
    assert verify_folder(folder, POLICY).findings == []
    assert sorted(p.name for p in folder.iterdir()) == [".git", "config.json", "model.safetensors"]


def test_the_repo_can_be_named_when_the_clone_does_not_say(online: Settings, world: World, tmp_path: Path) -> None:
    folder = clone(tmp_path / "clone", world, origin=None)
    report = verify_folder(folder, POLICY)
    with pytest.raises(UsageError) as exc:
        repair(online, report, lock=None, folder=folder, repo=None)
    assert "Cannot tell which repo" in exc.value.message and "--repo" in (exc.value.hint or "")
    lines = repair(online, report, lock=None, folder=folder, repo="org/model")
    assert len(lines) == 1
    assert (folder / "model.safetensors").read_bytes() == world.contents["org/model@v2"]["model.safetensors"]


def test_an_origin_that_is_no_hub_repo_is_refused(online: Settings, world: World, tmp_path: Path) -> None:
    folder = clone(tmp_path / "clone", world, origin="file:///srv/git")
    report = verify_folder(folder, POLICY)
    with pytest.raises(UsageError) as exc:
        repair(online, report, lock=None, folder=folder, repo=None)
    assert "Cannot read a Hub repo id" in exc.value.message
    assert (folder / "model.safetensors").read_bytes() == lfs_pointer_stub(
        world.contents["org/model@v2"]["model.safetensors"]
    )


def test_a_stub_for_content_the_server_does_not_have_is_left_alone(
    server: HubServer, world: World, tmp_path: Path
) -> None:
    folder = clone(tmp_path / "clone", world)
    stub = lfs_pointer_stub(b"content nobody has")
    (folder / "model.safetensors").write_bytes(stub)
    report = verify_folder(folder, POLICY)
    settings = Settings.resolve(cache_dir=tmp_path / "c", endpoint=server.url)
    with pytest.raises(HashMismatch) as exc:  # the server's bytes do not match the pointer's oid
        repair(settings, report, lock=None, folder=folder, repo=None)
    assert "'model.safetensors' does not match its sha256" in exc.value.message
    assert (folder / "model.safetensors").read_bytes() == stub
    assert sorted(p.name for p in folder.iterdir()) == [".git", "config.json", "model.safetensors"]
