"""hfa.verify as a library: verify_cache, verify_lock and verify_folder on caches built in the test."""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hfa.errors import CheckFailed, UsageError
from hfa.lock.lockfile import Lock
from hfa.resolve.refs import RepoRef
from hfa.scan.model import ScanPolicy, Severity
from hfa.testing import lfs_pointer_stub, write_repo
from hfa.verify import VerifyReport, looks_like_path, verify_cache, verify_folder, verify_lock

from .builders import DATA_FILES, MODEL_FILES, Built

POLICY = ScanPolicy()


def codes(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.code, []).append(f.path)
    return out


def test_clean_cache_has_no_findings_and_hashes_every_blob_once(built: Built) -> None:
    report = verify_cache(built.cache, None, POLICY)
    assert report.findings == []
    assert sorted(report.repos) == ["datasets/org/data", "org/model"]
    assert report.blobs == len(MODEL_FILES) + len(DATA_FILES)
    assert report.bytes_hashed == sum(map(len, MODEL_FILES.values())) + sum(map(len, DATA_FILES.values()))
    assert report.files == len(MODEL_FILES) + len(DATA_FILES)
    assert report.to_refetch == []


def test_corrupt_blob_of_the_same_size_is_critical_and_queued_for_refetch(built: Built) -> None:
    blob = built.blob("model.safetensors")
    data = bytearray(blob.read_bytes())
    data[-3] ^= 1
    blob.write_bytes(bytes(data))
    report = verify_cache(built.cache, None, POLICY, scan=False)
    [finding] = [f for f in report.findings if f.code == "hash.mismatch"]
    assert finding.severity == Severity.CRITICAL
    assert finding.detail["expected"] == blob.name and finding.detail["actual"] != blob.name
    assert finding.detail["used_as"] == [f"org/model@{built.model_commit[:12]}/model.safetensors"]
    assert report.to_refetch == [("model", "org/model", built.model_commit, "model.safetensors")]


def test_broken_and_escaping_links(built: Built, tmp_path: Path) -> None:
    snap = built.model_snapshot
    (snap / "config.json").unlink()
    os.symlink("../../blobs/" + "f" * 40, snap / "config.json")
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    os.symlink(outside, snap / "leak.txt")
    report = verify_cache(built.cache, None, POLICY, scan=False)
    by_code = {f.code: f for f in report.findings}
    assert by_code["cache.broken-link"].severity == Severity.HIGH
    assert by_code["cache.broken-link"].path.endswith("/config.json")
    assert by_code["cache.link-escapes"].severity == Severity.CRITICAL
    assert by_code["cache.link-escapes"].path.endswith("/leak.txt")
    assert ("model", "org/model", built.model_commit, "config.json") in report.to_refetch
    assert report.findings[0].severity == Severity.CRITICAL  # most severe first


def test_what_the_walker_does_not_count_is_reported_never_scanned(built: Built, tmp_path: Path) -> None:
    """hfa.cache.walk's rule: a link into another repo's blobs, a FIFO, folder links; none is read."""
    snap = built.model_snapshot
    data_blob = next(p.name for p in built.data.blobs.iterdir())
    os.symlink(f"../../../{built.data.path.name}/blobs/{data_blob}", snap / "borrowed.txt")
    os.mkfifo(snap / "fifo")
    os.symlink("../../blobs", snap / "blobs-dir")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, snap / "out-dir")
    done: list[VerifyReport] = []
    worker = threading.Thread(target=lambda: done.append(verify_cache(built.cache, [RepoRef("org/model")], POLICY)))
    worker.daemon = True
    worker.start()
    worker.join(30)
    if not done:  # blocked opening the FIFO: release it, then fail
        with contextlib.suppress(OSError):
            os.close(os.open(snap / "fifo", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("verify opened a FIFO in a snapshot and blocked")
    [report] = done
    label = f"org/model@{built.model_commit[:12]}"
    by_path = {f.path: (f.code, f.severity) for f in report.findings}
    assert by_path == {
        f"{label}/borrowed.txt": ("cache.not-a-blob", Severity.HIGH),
        f"{label}/fifo": ("cache.not-a-blob", Severity.HIGH),
        f"{label}/blobs-dir": ("cache.folder-link", Severity.LOW),
        f"{label}/out-dir": ("cache.link-escapes", Severity.CRITICAL),
    }
    assert "folder link leads out of the cache" in next(f.message for f in report.findings if "out-dir" in f.path)
    assert report.files == len(MODEL_FILES)  # only the snapshot's own blobs were scanned
    assert sorted(p for *_, p in report.to_refetch) == ["borrowed.txt", "fifo"]


def test_a_linked_blobs_folder_is_reported_and_not_read(built: Built, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    os.rename(built.model.blobs, moved)
    os.symlink(moved, built.model.blobs)
    report = verify_cache(built.cache, [RepoRef("org/model")], POLICY)
    by_code = codes(report)
    assert by_code["cache.linked-blobs"] == ["org/model/blobs"]
    assert len(by_code["cache.link-escapes"]) == len(MODEL_FILES)  # every link now resolves out of the cache
    assert report.blobs == 0 and report.files == 0


def test_a_lock_file_linked_to_another_repos_blob_is_missing(built: Built) -> None:
    data_blob = next(p.name for p in built.data.blobs.iterdir())
    config = built.model_snapshot / "config.json"
    config.unlink()
    os.symlink(f"../../../{built.data.path.name}/blobs/{data_blob}", config)
    report = verify_lock(built.cache, built.lock(), POLICY, scan=False)
    assert codes(report)["lock.missing-file"] == [f"org/model@{built.model_commit[:12]}/config.json"]


def test_leftovers_dangling_refs_stray_files_and_stale_locks(built: Built) -> None:
    (built.model.blobs / ("a" * 64 + ".incomplete")).write_bytes(b"partial")
    (built.model.blobs / "notes.txt").write_bytes(b"?")
    (built.model.refs / "gone").write_text("b" * 40)
    locks = built.cache / ".locks" / built.model.path.name
    locks.mkdir(parents=True)
    stale, fresh = locks / ("c" * 64 + ".lock"), locks / ("d" * 64 + ".lock")
    stale.write_text("")
    fresh.write_text("")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    report = verify_cache(built.cache, None, POLICY, scan=False)
    severities = {f.code: f.severity for f in report.findings}
    assert severities == {
        "cache.incomplete": Severity.LOW,
        "cache.bad-blob-name": Severity.LOW,
        "cache.dangling-ref": Severity.LOW,
        "cache.stale-lock": Severity.INFO,
    }
    assert codes(report)["cache.stale-lock"] == [f".locks/{locks.name}/{stale.name}"]
    assert report.to_refetch == []


def test_one_repo_one_revision_and_errors_for_what_is_not_cached(built: Built) -> None:
    only = verify_cache(built.cache, [RepoRef("org/data", "dataset")], POLICY)
    assert only.repos == ["datasets/org/data"] and only.blobs == len(DATA_FILES)
    tagged = verify_cache(built.cache, [RepoRef("org/model", revision="v1")], POLICY, scan=False)
    assert tagged.findings == [] and tagged.repos == ["org/model"]
    with pytest.raises(CheckFailed) as exc:
        verify_cache(built.cache, [RepoRef("org/absent")], POLICY)
    assert exc.value.hint == "run `hfa pull org/absent`"
    with pytest.raises(CheckFailed) as exc:
        verify_cache(built.cache, [RepoRef("org/model", revision="nope")], POLICY)
    assert "org/model@nope" in exc.value.message


def test_a_missing_cache_dir_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        verify_cache(tmp_path / "nowhere", None, POLICY)
    assert "does not exist" in exc.value.message


def test_the_content_scan_runs_over_snapshot_files(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    cache = tmp_path / "cache"
    write_repo(cache, "bad/pickle", {"model.pkl": pickle.dumps(Evil(), protocol=2), "config.json": b"{}"})
    report = verify_cache(cache, None, POLICY)
    dangerous = [f for f in report.findings if f.severity >= Severity.CRITICAL]
    assert dangerous and all(f.path.endswith("/model.pkl") for f in dangerous)
    assert not [f for f in verify_cache(cache, None, POLICY, scan=False).findings if f.code.startswith("pickle")]


# -- verify_lock -----------------------------------------------------------------------------------


def test_lock_matching_the_cache_is_clean(built: Built) -> None:
    report = verify_lock(built.cache, built.lock(), POLICY)
    assert report.findings == []
    assert report.repos == ["datasets/org/data@main", "org/model@main"]
    assert report.blobs == len(MODEL_FILES) + len(DATA_FILES)


def test_lock_missing_and_extra_files(built: Built) -> None:
    lock = built.lock()
    model = lock.get("org/model")
    assert model is not None
    fewer = replace(model, files=tuple(f for f in model.files if f.path != "sub/notes.txt"))
    (built.model_snapshot / "config.json").unlink()
    report = verify_lock(built.cache, Lock((fewer,)), POLICY, scan=False)
    assert codes(report) == {
        "lock.missing-file": [f"org/model@{built.model_commit[:12]}/config.json"],
        "lock.extra-file": [f"org/model@{built.model_commit[:12]}/sub/notes.txt"],
    }
    assert report.to_refetch == [("model", "org/model", built.model_commit, "config.json")]


def test_lock_hash_that_the_cached_file_does_not_have(built: Built) -> None:
    model = built.lock().get("org/model")
    assert model is not None
    files = tuple(replace(f, digest="0" * 40) if f.path == "config.json" else f for f in model.files)
    report = verify_lock(built.cache, Lock((replace(model, files=files),)), POLICY, scan=False)
    [finding] = report.findings
    assert (finding.code, finding.severity) == ("hash.mismatch", Severity.CRITICAL)
    assert finding.detail["expected"] == "0" * 40
    assert report.to_refetch == [("model", "org/model", built.model_commit, "config.json")]


def test_lock_naming_a_commit_not_in_the_cache(built: Built) -> None:
    model = built.lock().get("org/model")
    assert model is not None
    report = verify_lock(built.cache, Lock((replace(model, commit="e" * 40),)), POLICY)
    assert [f.code for f in report.findings] == ["lock.missing-repo"]
    assert report.findings[0].severity == Severity.HIGH
    assert sorted(p for *_, p in report.to_refetch) == sorted(MODEL_FILES)


# -- verify_folder ---------------------------------------------------------------------------------


def test_folder_with_an_lfs_stub_lists_the_stub_to_replace(tmp_path: Path) -> None:
    folder = tmp_path / "clone"
    folder.mkdir()
    content = MODEL_FILES["model.safetensors"]
    (folder / "model.safetensors").write_bytes(lfs_pointer_stub(content))
    (folder / "config.json").write_bytes(MODEL_FILES["config.json"])
    report = verify_folder(folder, POLICY)
    assert [f.code for f in report.findings] == ["lfs.pointer-stub"]
    import hashlib

    assert report.stubs == [
        (folder / "model.safetensors", "model.safetensors", hashlib.sha256(content).hexdigest(), len(content))
    ]
    assert report.repos == [str(folder)] and report.files == 2


def test_clean_folder_and_single_file(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    for path, data in MODEL_FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    report = verify_folder(folder, POLICY)
    assert report.findings == [] and report.stubs == [] and report.files == len(MODEL_FILES)
    one = verify_folder(folder / "model.safetensors", POLICY)
    assert one.findings == [] and one.files == 1


def test_looks_like_path_tells_paths_from_repo_ids() -> None:
    for text in ("/abs", "./rel", "../up", "~/home", ".", "a/b/c"):
        assert looks_like_path(text), text
    for text in ("org/model", "datasets/org/data", "org/model@v1", "gpt2"):
        assert not looks_like_path(text), text
