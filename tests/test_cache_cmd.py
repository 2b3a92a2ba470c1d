"""`hfa cache ls/rm/prune/gc` on caches pulled from `hfa serve`: what goes, what stays, and safety."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import World
from filelock import FileLock
from helpers import corrupt_blobs, hfa, snapshot_listing

from hfa.cache.layout import CacheWriter
from hfa.errors import ExitCode
from hfa.server import HubServer

MODEL = "models--org--model"
DATA = "datasets--org--data"
DEAD = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def template(server: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """org/model (main and v1.0) and datasets/org/data, pulled once per module."""
    cache = tmp_path_factory.mktemp("cache-template") / "hub"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(cache.parent / "home"))
        mp.delenv("HF_TOKEN", raising=False)
        for repo in ("org/model", "org/model@v1.0", "datasets/org/data"):
            result = hfa("pull", repo, "--endpoint", server.url, "--cache-dir", str(cache))
            assert result.exit_code == 0, result.stderr
    return cache


@pytest.fixture
def cache(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "hub"
    shutil.copytree(template, copy, symlinks=True)
    return copy


def run(cache: Path, *args: str):
    return hfa("cache", *args, "--cache-dir", str(cache))


def run_json(cache: Path, *args: str) -> dict:
    result = run(cache, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def tree(root: Path) -> dict[str, str]:
    """Every path under root -> what it is (link target, file content hash, or folder)."""
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


def blob_names(cache: Path, folder: str = MODEL) -> set[str]:
    return {p.name for p in (cache / folder / "blobs").iterdir()}


def blob_of(cache: Path, commit: str, path: str, folder: str = MODEL) -> str:
    return snapshot_listing(cache, folder, commit)[path]


# -- ls -------------------------------------------------------------------------------------------


def test_ls_json(cache: Path, world: World) -> None:
    v1, v2 = world.commits["org/model@v1"], world.commits["org/model@v2"]
    (cache / MODEL / ".hfa.json").write_text("{}")  # hfa's sidecars are not repos and not files
    (cache / ".hfa").mkdir()
    doc = run_json(cache, "ls")
    assert [(r["type"], r["id"]) for r in doc["repos"]] == [("dataset", "org/data"), ("model", "org/model")]
    data, model = doc["repos"]
    assert [(r["commit"], r["refs"], r["detached"], r["files"]) for r in model["revisions"]] == [
        (v2, ["main"], False, 4),
        (v1, ["v1.0"], False, 4),
    ]
    # README, safetensors and notes are shared by both revisions: 5 blobs, each counted once.
    blobs = list((cache / MODEL / "blobs").iterdir())
    assert model["files"] == len(blobs) == 5
    assert model["size"] == sum(p.stat().st_size for p in blobs)
    assert model["revisions"][0]["size"] < model["size"]
    assert data["files"] == 2 and data["revisions"][0]["refs"] == ["main"]
    assert doc["totals"] == {
        "repos": 2,
        "revisions": 3,
        "files": 7,
        "size": model["size"] + data["size"],
        "incomplete_bytes": 0,
    }
    assert model["last_used_source"] in ("accessed", "modified")
    assert model["last_used"] == max(model["last_accessed"], model["last_modified"])
    assert "atime" in doc["last_used"] and "mtime" in doc["last_used"]


def test_ls_counts_shared_blobs_once_and_shows_detached(cache: Path, world: World) -> None:
    v1 = world.commits["org/model@v1"]
    (cache / MODEL / "refs" / "v1.0").unlink()
    big = max((cache / MODEL / "blobs").iterdir(), key=lambda p: p.stat().st_size)
    os.link(big, cache / DATA / "blobs" / big.name)  # the same bytes in two repos (hard link)
    doc = run_json(cache, "ls")
    data, model = doc["repos"]
    assert data["size"] > big.stat().st_size
    assert doc["totals"]["size"] == model["size"] + data["size"] - big.stat().st_size
    detached = [r for r in model["revisions"] if r["detached"]]
    assert [r["commit"] for r in detached] == [v1]


def test_ls_table(cache: Path, world: World) -> None:
    result = run(cache, "ls")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["type", "repo", "revisions", "files", "size", "last used"]
    model = next(line.split("\t") for line in lines if "\torg/model\t" in line)
    assert model[0] == "model" and model[3] == "5"
    assert f"{world.commits['org/model@v2'][:12]} (main)" in model[2]
    assert f"{world.commits['org/model@v1'][:12]} (v1.0)" in model[2]
    assert model[5].endswith(("(accessed)", "(modified)"))
    assert lines[-1].startswith("Total: 2 repo(s), 3 revision(s), 7 file(s)")


def test_ls_empty_and_missing_cache(tmp_path: Path) -> None:
    result = run(tmp_path / "nothing-here", "ls")
    assert result.exit_code == 0 and result.stdout == ""
    assert "No repos" in result.stderr
    assert json.loads(run(tmp_path / "nothing-here", "ls", "--json").stdout)["repos"] == []


# -- rm -------------------------------------------------------------------------------------------


def test_rm_repo(cache: Path) -> None:
    size = run_json(cache, "ls")["repos"][0]["size"]
    doc = run_json(cache, "rm", "datasets/org/data")
    assert not (cache / DATA).exists()
    assert (cache / MODEL / "snapshots").is_dir()
    assert doc["repos_removed"] == ["datasets/org/data"] and doc["bytes_freed"] == size
    assert doc["counts"]["blob"] == 2 and doc["skipped"] == [] and doc["failed"] == []
    assert [r["id"] for r in run_json(cache, "ls")["repos"]] == ["org/model"]


def test_rm_revision_keeps_shared_blobs(cache: Path, world: World) -> None:
    v1, v2 = world.commits["org/model@v1"], world.commits["org/model@v2"]
    before = snapshot_listing(cache, MODEL, v2)
    only_v1 = blob_of(cache, v1, "config.json")
    assert (cache / MODEL / ".hfa" / "trees" / f"{v1}.json").is_file()
    (cache / MODEL / "snapshots" / v1 / "empty" / "folder").mkdir(parents=True)
    (cache / MODEL / "snapshots" / v2 / "untouched").mkdir()  # rm leaves other empty folders to prune
    result = run(cache, "rm", "org/model@v1.0")
    assert result.exit_code == 0, result.stderr
    assert not (cache / MODEL / "snapshots" / v1).exists()
    assert not (cache / MODEL / "refs" / "v1.0").exists()
    assert not (cache / MODEL / ".hfa" / "trees" / f"{v1}.json").exists()
    assert (cache / MODEL / ".hfa" / "trees" / f"{v2}.json").is_file()
    assert blob_names(cache) == set(before.values())  # only v1's own config blob went
    assert only_v1 not in blob_names(cache)
    assert snapshot_listing(cache, MODEL, v2) == before
    assert (cache / MODEL / "snapshots" / v2 / "untouched").is_dir()
    assert corrupt_blobs(cache) == []
    assert f"removed blob       {MODEL}/blobs/{only_v1}" in result.stdout
    assert "Freed" in result.stderr and "1 revision(s)" in result.stderr
    verify = hfa("verify", "org/model", "--cache-dir", str(cache), "--json")
    assert verify.exit_code == 0, verify.stdout
    assert json.loads(verify.stdout)["counts"]["low"] == 0


def test_rm_revision_by_commit_prefix_and_last_revision_removes_repo(cache: Path, world: World) -> None:
    v1, v2 = world.commits["org/model@v1"], world.commits["org/model@v2"]
    assert run(cache, "rm", f"org/model@{v1[:10]}").exit_code == 0
    assert not (cache / MODEL / "snapshots" / v1).exists()
    doc = run_json(cache, "rm", "org/model@main")
    assert doc["revisions_removed"] == [f"org/model@{v2}"] and doc["repos_removed"] == ["org/model"]
    assert not (cache / MODEL).exists()


def test_rm_bad_input(cache: Path) -> None:
    unknown = run(cache, "rm", "org/nothing")
    assert unknown.exit_code == ExitCode.NOT_FOUND
    assert "'org/nothing' is not in the cache" in unknown.stderr and "hfa cache ls" in unknown.stderr
    no_rev = run(cache, "rm", "org/model@v9")
    assert no_rev.exit_code == ExitCode.NOT_FOUND and "Revision 'v9'" in no_rev.stderr
    for bad in ("../etc", "org/model@", "a--b/c"):
        result = run(cache, "rm", bad)
        assert result.exit_code == ExitCode.USAGE, (bad, result.stderr)
    assert run(cache, "rm").exit_code == ExitCode.USAGE
    assert (cache / MODEL / "refs" / "v1.0").is_file() and (cache / DATA).is_dir()


# -- prune ----------------------------------------------------------------------------------------


def _make_garbage(cache: Path) -> dict[str, Path]:
    """A detached revision (v1.0's ref gone), an .incomplete leftover, an orphan blob, an empty folder."""
    (cache / MODEL / "refs" / "v1.0").unlink()
    partial = cache / MODEL / "blobs" / ("ab" * 32 + ".incomplete")
    partial.write_bytes(b"x" * 1000)
    data = b"nobody links to me\n"
    orphan = cache / DATA / "blobs" / hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    orphan.write_bytes(data)
    detached_empty = cache / DATA / "snapshots" / ("0" * 40)
    detached_empty.mkdir()
    empty = cache / DATA / "refs" / "old"
    empty.mkdir()
    return {"partial": partial, "orphan": orphan, "empty": empty, "detached_empty": detached_empty}


def test_prune(cache: Path, world: World) -> None:
    v1, v2 = world.commits["org/model@v1"], world.commits["org/model@v2"]
    garbage = _make_garbage(cache)
    only_v1 = blob_of(cache, v1, "config.json")
    expected = 1000 + garbage["orphan"].stat().st_size + (cache / MODEL / "blobs" / only_v1).stat().st_size
    kept_v2 = snapshot_listing(cache, MODEL, v2)
    doc = run_json(cache, "prune")
    assert doc["bytes_freed"] == expected
    assert doc["revisions_removed"] == [f"datasets/org/data@{'0' * 40}", f"org/model@{v1}"]
    assert all(not path.exists() for path in garbage.values())
    assert (
        not (cache / MODEL / "snapshots" / v1).exists()
        and not (cache / MODEL / ".hfa" / "trees" / f"{v1}.json").exists()
    )
    assert snapshot_listing(cache, MODEL, v2) == kept_v2 and blob_names(cache) == set(kept_v2.values())
    assert (cache / DATA / "refs" / "main").is_file()
    # Nothing left to prune.
    again = run(cache, "prune")
    assert again.exit_code == 0 and again.stdout == "" and "Nothing to remove" in again.stderr


def test_prune_human_output(cache: Path) -> None:
    garbage = _make_garbage(cache)
    result = run(cache, "prune")
    assert result.exit_code == 0, result.stderr
    assert f"removed incomplete {MODEL}/blobs/{garbage['partial'].name} (1.0 KB)  [partial download left behind]" in (
        result.stdout
    )
    assert "[detached revision (no ref points to it)]" in result.stdout
    assert "[no snapshot links to it]" in result.stdout
    assert result.stderr.startswith("Freed ")


def test_dry_run_changes_nothing(cache: Path, tmp_path: Path, server: HubServer) -> None:
    _make_garbage(cache)
    lock = tmp_path / "hfa.lock"
    assert hfa("pin", "org/model", "--endpoint", server.url, "--lock", str(lock)).exit_code == 0
    before = tree(cache)
    for args in (["prune"], ["rm", "org/model"], ["rm", "org/model@main"], ["gc", "--keep-lock", str(lock)]):
        doc = run_json(cache, *args, "--dry-run")
        assert doc["dry_run"] is True and doc["removed"] and doc["bytes_freed"] > 0, args
        human = run(cache, *args, "--dry-run")
        assert human.exit_code == 0 and "would remove" in human.stdout and "nothing was removed" in human.stderr
        assert tree(cache) == before, args
    # The dry run showed exactly what the real run then removes.
    dry = run_json(cache, "prune", "--dry-run")
    real = run_json(cache, "prune")
    assert real["removed"] == dry["removed"] and real["bytes_freed"] == dry["bytes_freed"]
    assert tree(cache) != before


# -- gc -------------------------------------------------------------------------------------------


def test_gc_keeps_only_what_the_lock_names(cache: Path, world: World, tmp_path: Path, server: HubServer) -> None:
    v1, v2 = world.commits["org/model@v1"], world.commits["org/model@v2"]
    lock = tmp_path / "hfa.lock"
    pinned = hfa("pin", "org/model", "--config-only", "--endpoint", server.url, "--lock", str(lock))
    assert pinned.exit_code == 0, pinned.stderr
    _make_garbage(cache)
    doc = run_json(cache, "gc", "--keep-lock", str(lock))
    assert doc["repos_removed"] == ["datasets/org/data"]
    assert f"org/model@{v1}" in doc["revisions_removed"]
    assert sorted(os.listdir(cache / MODEL / "snapshots")) == [v2]
    assert sorted(os.listdir(cache / MODEL / "refs")) == ["main"]
    assert set(snapshot_listing(cache, MODEL, v2)) == {"README.md", "config.json"}
    assert len(blob_names(cache)) == 2 and not (cache / MODEL / "snapshots" / v2 / "sub").exists()
    assert not (cache / DATA).exists()
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [MODEL]
    # What the lock names is all still there: offline pull and verify agree.
    offline = hfa("pull", "--offline", "--lock", str(lock), "--cache-dir", str(cache), "--endpoint", DEAD, "--json")
    assert offline.exit_code == 0, offline.stderr
    assert json.loads(offline.stdout)["requests"] == 0
    verified = hfa("verify", "--lock", str(lock), "--cache-dir", str(cache), "--json")
    assert verified.exit_code == 0, verified.stdout
    assert json.loads(verified.stdout)["findings"] == []
    whole = hfa("verify", "--cache-dir", str(cache), "--json")
    assert whole.exit_code == 0 and json.loads(whole.stdout)["findings"] == []
    assert run_json(cache, "gc", "--keep-lock", str(lock))["removed"] == []


def test_gc_with_two_locks_keeps_both(cache: Path, world: World, tmp_path: Path, server: HubServer) -> None:
    a, b = tmp_path / "a.lock", tmp_path / "b.lock"
    assert hfa("pin", "org/model@v1.0", "--endpoint", server.url, "--lock", str(a)).exit_code == 0
    assert hfa("pin", "datasets/org/data", "--endpoint", server.url, "--lock", str(b)).exit_code == 0
    before_v1 = snapshot_listing(cache, MODEL, world.commits["org/model@v1"])
    doc = run_json(cache, "gc", "--keep-lock", str(a), "--keep-lock", str(b))
    assert doc["repos_removed"] == [] and doc["revisions_removed"] == [f"org/model@{world.commits['org/model@v2']}"]
    assert snapshot_listing(cache, MODEL, world.commits["org/model@v1"]) == before_v1
    assert sorted(os.listdir(cache / MODEL / "refs")) == ["v1.0"]
    assert (cache / DATA / "refs" / "main").is_file()


def test_gc_needs_a_lock(cache: Path, tmp_path: Path) -> None:
    result = run(cache, "gc")
    assert result.exit_code == ExitCode.USAGE
    assert "--keep-lock" in result.stderr and result.stdout == ""
    missing = run(cache, "gc", "--keep-lock", str(tmp_path / "nope.lock"))
    assert missing.exit_code == ExitCode.USAGE and "No lock file" in missing.stderr
    assert (cache / DATA).is_dir()


# -- safety -------------------------------------------------------------------------------------------


def _hold(cache: Path, blob: str) -> FileLock:
    """Hold the per-blob lock a running download would hold."""
    path = CacheWriter(cache, "model", "org/model").lock_path(blob)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    lock.acquire()
    return lock


def test_held_blob_lock_is_skipped_and_reported(cache: Path, world: World) -> None:
    v1 = world.commits["org/model@v1"]
    only_v1 = blob_of(cache, v1, "config.json")
    lock = _hold(cache, only_v1)
    try:
        dry = run_json(cache, "rm", "org/model@v1.0", "--dry-run")
        assert [s["path"] for s in dry["skipped"]] == [f"{MODEL}/blobs/{only_v1}"]
        result = run(cache, "rm", "org/model@v1.0")
        assert result.exit_code == 0, result.stderr
        assert f"Warning: kept {MODEL}/blobs/{only_v1}: in use" in result.stderr
        assert (cache / MODEL / "blobs" / only_v1).is_file()  # kept
        assert not (cache / MODEL / "snapshots" / v1).exists()  # the rest went
        doc = run_json(cache, "prune")
        assert [(s["path"], s["skipped_because"][:6]) for s in doc["skipped"]] == [
            (f"{MODEL}/blobs/{only_v1}", "in use")
        ]
        assert doc["bytes_in_use"] == (cache / MODEL / "blobs" / only_v1).stat().st_size
    finally:
        lock.release()
    assert run_json(cache, "prune")["removed"][0]["path"] == f"{MODEL}/blobs/{only_v1}"


def test_running_download_keeps_its_snapshot_and_partial(cache: Path, world: World) -> None:
    """While a pull holds a lock in a repo, prune leaves its (ref-less, so 'detached') snapshots alone."""
    v1 = world.commits["org/model@v1"]
    garbage = _make_garbage(cache)
    lock = _hold(cache, garbage["partial"].name.removesuffix(".incomplete"))
    try:
        doc = run_json(cache, "prune")
    finally:
        lock.release()
    assert garbage["partial"].exists() and (cache / MODEL / "snapshots" / v1).is_dir()
    why = {s["path"]: s["skipped_because"] for s in doc["skipped"]}
    assert why[f"{MODEL}/snapshots/{v1}"].startswith("in use: a download into this repo is running")
    assert why[f"{MODEL}/blobs/{garbage['partial'].name}"].startswith("in use: its lock is held")
    assert not garbage["orphan"].exists()  # other repos are pruned as usual
    assert run_json(cache, "prune")["revisions_removed"] == [f"org/model@{v1}"]


def test_links_out_of_the_cache_are_never_followed(cache: Path, world: World, tmp_path: Path) -> None:
    v1 = world.commits["org/model@v1"]
    outside = tmp_path / "outside"
    outside.mkdir()
    secret, other = outside / "secret.bin", outside / "other.txt"
    secret.write_bytes(b"keep me")
    other.write_bytes(b"keep me too")
    (cache / MODEL / "blobs" / ("cd" * 32)).symlink_to(secret)
    (cache / MODEL / "snapshots" / v1 / "evil.txt").symlink_to(other)
    (cache / MODEL / "snapshots" / v1 / "evil-dir").symlink_to(outside, target_is_directory=True)
    ls = run_json(cache, "ls")
    model = ls["repos"][1]
    assert any("links out of the cache" in w for w in model["warnings"])
    result = run(cache, "rm", "org/model@v1.0")
    assert result.exit_code == 0, result.stderr
    assert not (cache / MODEL / "snapshots" / v1).exists()
    prune = run_json(cache, "prune")
    assert f"{MODEL}/blobs/{'cd' * 32}" in [r["path"] for r in prune["removed"]]
    assert not (cache / MODEL / "blobs" / ("cd" * 32)).is_symlink()
    assert secret.read_bytes() == b"keep me" and other.read_bytes() == b"keep me too"
    assert sorted(os.listdir(outside)) == ["other.txt", "secret.bin"]


def test_symlinked_folders_are_never_entered(cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    fake = outside / "models--evil--repo"
    (fake / "blobs").mkdir(parents=True)
    (fake / "snapshots").mkdir()
    (fake / "blobs" / ("ef" * 32)).write_bytes(b"not yours")
    (cache / "models--evil--repo").symlink_to(fake, target_is_directory=True)
    # A repo whose blobs/ folder is a link out of the cache.
    shutil.move(str(cache / DATA / "blobs"), outside / "data-blobs")
    (cache / DATA / "blobs").symlink_to(outside / "data-blobs", target_is_directory=True)
    before = tree(outside)
    assert [r["id"] for r in run_json(cache, "ls")["repos"]] == ["org/data", "org/model"]
    refused = run(cache, "rm", "evil/repo")
    assert refused.exit_code == ExitCode.USAGE and "is a link" in refused.stderr
    assert run(cache, "prune").exit_code == 0
    whole = run(cache, "rm", "datasets/org/data")
    assert whole.exit_code == 0, whole.stderr
    assert not (cache / DATA).exists()  # the link itself went, not what it points to
    assert tree(outside) == before


def test_refuses_root_and_home_as_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "keep.txt").write_text("x")
    for args in (["prune", "--cache-dir", "/"], ["gc", "--keep-lock", "x", "--cache-dir", "/"]):
        result = hfa("cache", *args)
        assert result.exit_code == ExitCode.USAGE and "Refusing" in result.stderr, result.stderr
    result = hfa("cache", "prune", "--cache-dir", str(home), env={"HOME": str(home)})
    assert result.exit_code == ExitCode.USAGE and "home directory" in result.stderr
    assert (home / "keep.txt").exists()


def test_prune_during_a_running_pull_breaks_nothing(tmp_path: Path) -> None:
    """A pull of a new revision runs in another process (its big file throttled) while prune runs."""
    import subprocess
    import sys
    import time

    from conftest import build_world

    from hfa.server import ServerConfig
    from hfa.server.faults import Fault, FaultPlan

    world = build_world(tmp_path / "slow")
    plan = FaultPlan([Fault("throttle", path="big.bin", rate=1_500_000, times=-1)])
    cache = tmp_path / "hub"
    with HubServer(ServerConfig(cache_dir=world.cache_dir, faults=plan)) as srv:
        assert hfa("pull", "org/model", "--endpoint", srv.url, "--cache-dir", str(cache)).exit_code == 0
        args = ["pull", "org/model@refs/pr/1", "--all", "--endpoint", srv.url, "--cache-dir", str(cache)]
        proc = subprocess.Popen([sys.executable, "-m", "hfa", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while not list((cache / MODEL / "blobs").glob("*.incomplete")):
                assert proc.poll() is None and time.monotonic() < deadline, "the pull never started its download"
                time.sleep(0.02)
            new = [p.name for p in (cache / MODEL / "snapshots").iterdir()]
            doc = run_json(cache, "prune")
            assert proc.poll() is None, "the pull finished before prune ran; throttle it more"
        finally:
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    pr = (cache / MODEL / "refs" / "refs" / "pr" / "1").read_text()
    assert pr in new  # its snapshot existed, ref-less, while prune ran
    why = {s["path"]: s["skipped_because"] for s in doc["skipped"]}
    assert why[f"{MODEL}/snapshots/{pr}"].startswith("in use")
    assert any(p.endswith(".incomplete") and w.startswith("in use") for p, w in why.items())
    assert doc["removed"] == []
    assert "big.bin" in snapshot_listing(cache, MODEL, pr)
    verify = hfa("verify", "--cache-dir", str(cache), "--json")
    assert verify.exit_code == 0 and json.loads(verify.stdout)["findings"] == [], verify.stdout


def test_a_blob_linked_after_planning_is_kept(cache: Path, world: World) -> None:
    """The race a plan cannot see: a pull links an orphan blob between plan and apply."""
    import hfa.cache as cache_ops

    v1, v2 = world.commits["org/model@v1"], world.commits["org/model@v2"]
    assert run(cache, "rm", "org/model@v1.0").exit_code == 0
    data = b"relinked\n"
    orphan = cache / MODEL / "blobs" / hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    orphan.write_bytes(data)
    plan = cache_ops.plan_prune(cache)
    assert [r.rel for r in plan.removals] == [f"{MODEL}/blobs/{orphan.name}"]
    CacheWriter(cache, "model", "org/model").link(v2, "late.txt", orphan.name)  # what fetch_one does
    result = cache_ops.apply(plan)
    assert result.removed == [] and result.skipped[0].why.startswith("in use: now linked from")
    assert (cache / MODEL / "snapshots" / v2 / "late.txt").read_bytes() == data
    assert v1 not in os.listdir(cache / MODEL / "snapshots")


@pytest.mark.parametrize("sub", ["ls", "rm", "prune", "gc"])
def test_subcommands_have_help_and_common_options(sub: str) -> None:
    result = hfa("cache", sub, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--cache-dir", "--json", "--quiet", "--verbose") + (("--dry-run",) if sub != "ls" else ()):
        assert option in result.stdout, f"cache {sub} lacks {option}"


def test_cache_sees_and_clears_inference_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "results"
    monkeypatch.setenv("HFA_INFER_CACHE", str(root))
    (root / "ab").mkdir(parents=True)
    (root / "ab" / ("ab" + "0" * 62 + ".json")).write_text('{"result": [1, 2]}')
    listed = hfa("cache", "ls", "--cache-dir", str(tmp_path / "hub"), "--json")
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout)["inference_results"]["entries"] == 1
    dry = hfa("cache", "clear-results", "--dry-run", "--json")
    assert json.loads(dry.stdout)["entries"] == 1 and (root / "ab").exists()
    done = hfa("cache", "clear-results")
    assert done.exit_code == 0 and "Removed 1 cached inference result" in done.stderr
    again = hfa("cache", "ls", "--cache-dir", str(tmp_path / "hub"), "--json")
    assert json.loads(again.stdout)["inference_results"]["entries"] == 0
