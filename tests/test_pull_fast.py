"""`hfa pull` of a sharded repo: only the shards the index names; a warm pull skips what is already in the
snapshot (no lock, no thread) and relinks what is in the blobs only; failures leave only verified files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import corrupt_blobs, hfa, snapshot_listing

from hfa.server import HubServer, ServerConfig
from hfa.server.faults import Fault, FaultPlan
from hfa.testing import make_safetensors, write_repo

REPO = "org/sharded"
FOLDER = "models--org--sharded"


def _sharded(index: dict[str, Any] | bytes | None = None) -> dict[str, bytes | str]:
    shards = {
        f"model-0000{i}-of-00003.safetensors": make_safetensors({f"layer.{i}": ("F32", [8, 8])}, seed=i)
        for i in (1, 2, 3)
    }
    weight_map = {"layer.1": "model-00001-of-00003.safetensors", "layer.2": "model-00002-of-00003.safetensors"}
    doc = index if index is not None else {"metadata": {"total_size": 1}, "weight_map": weight_map}
    return {
        "config.json": json.dumps({"model_type": "bert"}),
        "tokenizer.json": json.dumps({"version": "1.0"}),
        "README.md": "# sharded\n",
        "notes/extra.txt": "small file\n",
        "model.safetensors.index.json": doc if isinstance(doc, bytes) else json.dumps(doc),
        **shards,
    }


@pytest.fixture
def sharded(tmp_path: Path) -> Iterator[tuple[HubServer, FaultPlan]]:
    write_repo(tmp_path / "served", REPO, _sharded())
    write_repo(tmp_path / "served", "org/bad-index", _sharded(b"{not json"))
    plan = FaultPlan()
    with HubServer(ServerConfig(cache_dir=tmp_path / "served", faults=plan)) as srv:
        yield srv, plan


def _pull(srv: HubServer, cache: Path, repo: str = REPO, *args: str) -> Any:
    return hfa("pull", repo, "--endpoint", srv.url, "--cache-dir", cache, "--json", *args)


def test_sharded_pull_fetches_the_referenced_shards_and_everything_else(
    sharded: tuple[HubServer, FaultPlan], tmp_path: Path
) -> None:
    srv, _ = sharded
    cache = tmp_path / "cache"
    result = _pull(srv, cache)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    want = {
        "README.md",
        "config.json",
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model.safetensors.index.json",
        "notes/extra.txt",
        "tokenizer.json",
    }
    assert {f["path"]: f["status"] for f in doc["files"]} == dict.fromkeys(sorted(want), "downloaded")
    assert [s["path"] for s in doc["skipped"]] == ["model-00003-of-00003.safetensors"]
    assert doc["requests"] == 1 + len(want)
    assert set(snapshot_listing(cache, FOLDER, doc["commit"])) == want
    assert corrupt_blobs(cache) == []

    again = json.loads(_pull(srv, cache).stdout)
    assert {f["path"]: f["status"] for f in again["files"]} == dict.fromkeys(sorted(want), "cached")
    assert again["requests"] == 1 and again["bytes_downloaded"] == 0


def test_a_file_in_the_blobs_but_not_the_snapshot_is_linked(
    sharded: tuple[HubServer, FaultPlan], tmp_path: Path
) -> None:
    srv, _ = sharded
    cache = tmp_path / "cache"
    commit = json.loads(_pull(srv, cache).stdout)["commit"]
    snap = cache / FOLDER / "snapshots" / commit
    (snap / "config.json").unlink()
    (snap / "model.safetensors.index.json").unlink()
    doc = json.loads(_pull(srv, cache).stdout)
    assert {f["status"] for f in doc["files"]} == {"cached"} and doc["requests"] == 1
    assert (snap / "config.json").is_symlink() and (snap / "model.safetensors.index.json").is_symlink()


def test_a_bad_index_fails_the_pull_and_leaves_only_verified_files(
    sharded: tuple[HubServer, FaultPlan], tmp_path: Path
) -> None:
    srv, _ = sharded
    cache = tmp_path / "cache"
    result = _pull(srv, cache, "org/bad-index")
    assert result.exit_code == 1
    assert "model.safetensors.index.json" in result.stderr
    assert corrupt_blobs(cache) == []
    assert not list(cache.glob("*/blobs/*.incomplete"))
    assert not (cache / "models--org--bad-index" / "refs" / "main").exists()


def test_a_failing_download_fetched_ahead_fails_the_pull(sharded: tuple[HubServer, FaultPlan], tmp_path: Path) -> None:
    srv, plan = sharded
    plan.faults.append(Fault("status", path="tokenizer.json", status=404, times=99))
    cache = tmp_path / "cache"
    result = _pull(srv, cache)
    assert result.exit_code != 0
    assert "tokenizer.json" in result.stderr
    assert corrupt_blobs(cache) == []


def test_the_index_is_read_while_the_other_files_download(sharded: tuple[HubServer, FaultPlan], tmp_path: Path) -> None:
    """The files the index cannot change are fetched at once: the index answer waits for config.json's GET
    (it would wait in vain, for 10 s, if the pull read the index before asking for anything else)."""
    srv, plan = sharded
    plan.faults.append(Fault("hold", path="model.safetensors.index.json", until="config.json", delay=10.0))
    cache = tmp_path / "cache"
    result = _pull(srv, cache)
    assert result.exit_code == 0, result.stderr
    assert plan.held == [("model.safetensors.index.json", True)]
    doc = json.loads(result.stdout)
    assert {f["path"] for f in doc["files"]} == {
        "config.json",
        "tokenizer.json",
        "README.md",
        "notes/extra.txt",
        "model.safetensors.index.json",
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
    }
    assert {f["status"] for f in doc["files"]} == {"downloaded"}
    assert doc["requests"] == 8  # the listing and one GET per file: nothing fetched twice


def test_a_bad_index_lets_the_files_already_coming_finish(sharded: tuple[HubServer, FaultPlan], tmp_path: Path) -> None:
    """config.json is on its way when the index turns out broken: it is finished and verified, not cut off;
    no shard is fetched."""
    srv, plan = sharded
    plan.faults.append(Fault("hold", path="model.safetensors.index.json", until="config.json", delay=10.0))
    plan.faults.append(Fault("slow", path="config.json", delay=0.3))
    cache = tmp_path / "cache"
    result = _pull(srv, cache, "org/bad-index")
    assert result.exit_code == 1
    assert "model.safetensors.index.json" in result.stderr
    assert plan.held == [("model.safetensors.index.json", True)]
    assert corrupt_blobs(cache) == []
    assert not list(cache.glob("*/blobs/*.incomplete"))
    assert not any("safetensors" in p and "index" not in p for _, p in srv.requests if "/resolve/" in p)


def test_progress_counts_every_file_the_pull_fetches(sharded: tuple[HubServer, FaultPlan], tmp_path: Path) -> None:
    """Files start before the totals are known (the index is still being read): the progress is told the
    totals of everything fetched, the index included, and every byte and file, in that order."""
    from hfa.config import Settings
    from hfa.pull import pull
    from hfa.resolve.refs import RepoRef
    from hfa.resolve.selection import SelectOptions

    srv, _ = sharded
    events: list[tuple[str, int]] = []

    class Recorder:
        def start(self, total_bytes: int, total_files: int) -> None:
            events.append(("start", total_bytes))
            events.append(("files", total_files))

        def advance(self, nbytes: int) -> None:
            events.append(("bytes", nbytes))

        def file_done(self, outcome: Any) -> None:
            events.append(("done", 1))

        def big_file(self, f: Any) -> Any:
            return lambda n: None

    settings = Settings.resolve(cache_dir=tmp_path / "cache", endpoint=srv.url)
    result = pull(settings, RepoRef.parse(REPO), SelectOptions(), progress=Recorder())
    total = sum(f.size for f in result.files)
    assert events[:2] == [("start", total), ("files", 7)]
    assert sum(n for kind, n in events if kind == "bytes") == total
    assert sum(n for kind, n in events if kind == "done") == 7
