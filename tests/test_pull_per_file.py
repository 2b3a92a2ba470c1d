"""What a pull pays per file stays per file (issue 18: 50 small files are bound by hfa's own CPU).

A cold pull of many small files checks each cache folder it writes into once, not once per file:
the repo, ``blobs/``, ``snapshots/<commit>/`` and each folder inside it are checked to be real
folders (never links) and made once per pull, and the snapshot's links still point where
huggingface_hub expects them. Counted by wrapping ``os.lstat`` and ``os.mkdir``, not timed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import hfa

from hfa.server import HubServer
from hfa.server.http import ServerConfig
from hfa.testing import write_repo

N = 40
FOLDER = "models--org--many"


@pytest.fixture
def many(tmp_path: Path) -> Iterator[HubServer]:
    files: dict[str, bytes | str] = {"config.json": "{}"}
    for i in range(N):
        files[f"data/part-{i:02d}.txt" if i % 2 else f"part-{i:02d}.txt"] = f"part {i}\n" * (i + 1)
    write_repo(tmp_path / "served", "org/many", files)
    with HubServer(ServerConfig(cache_dir=tmp_path / "served")) as srv:
        yield srv


def _counting(monkeypatch: pytest.MonkeyPatch, cache: Path) -> tuple[Counter, Counter]:
    lstats: Counter = Counter()
    mkdirs: Counter = Counter()
    lstat, mkdir = os.lstat, os.mkdir
    root = str(cache)

    def counted_lstat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        text = os.fsdecode(path)
        if text.startswith(root) or text.startswith("c/"):
            lstats[os.path.relpath(text, root)] += 1
        return lstat(path, *args, **kwargs)

    def counted_mkdir(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        mkdirs[os.path.relpath(os.fsdecode(path), root)] += 1
        return mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", counted_lstat)
    monkeypatch.setattr(os, "mkdir", counted_mkdir)
    return lstats, mkdirs


def test_a_cold_pull_checks_and_makes_each_folder_once(
    many: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    lstats, mkdirs = _counting(monkeypatch, cache)
    argv = ["--endpoint", many.url, "--cache-dir", str(cache), "--json", "--workers", "2"]
    result = hfa("pull", "org/many", *argv)
    monkeypatch.undo()
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["files"]) == N + 1 and {f["status"] for f in doc["files"]} == {"downloaded"}
    commit = doc["commit"]
    snap = f"{FOLDER}/snapshots/{commit}"
    for folder in (FOLDER, f"{FOLDER}/blobs", snap, f"{snap}/data"):
        # Checked when each of the 2 workers first uses it, and walked through by the few realpath
        # checks of the snapshot's folders and refs: about 15, however many files; a check per file
        # counted 400 here.
        assert lstats[folder] <= N // 2, (folder, lstats[folder])
        assert mkdirs[folder] <= 4, (folder, mkdirs[folder])  # by each worker, and the pull itself
    for i in range(N):
        name = f"data/part-{i:02d}.txt" if i % 2 else f"part-{i:02d}.txt"
        link = cache / snap / name
        depth = name.count("/")
        blob = os.readlink(link)
        assert blob.startswith("../" * (depth + 2) + "blobs/"), blob  # relative, as huggingface_hub makes it
        assert link.read_text() == f"part {i}\n" * (i + 1)


def test_a_folder_made_a_link_before_the_pull_is_still_refused(many: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (cache / FOLDER).mkdir(parents=True)
    (cache / FOLDER / "blobs").symlink_to(elsewhere)
    result = hfa("pull", "org/many", "--endpoint", many.url, "--cache-dir", str(cache))
    assert result.exit_code != 0
    assert "it is a link or a file, not a folder" in result.stderr
    assert list(elsewhere.iterdir()) == []
