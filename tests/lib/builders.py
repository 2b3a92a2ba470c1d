"""Small builders shared by the library tests: a cache made with hfa.testing.write_repo, and locks by hand.

Hashes are computed here from the bytes (not by hfa), so a test that compares them with what
hfa wrote checks hfa against an independent computation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hfa.cache.layout import RepoDir
from hfa.lock.lockfile import Lock, LockedFile, LockedRepo
from hfa.resolve.selection import SelectOptions
from hfa.testing import make_safetensors, model_card, write_repo

DATE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

MODEL_FILES: dict[str, bytes] = {
    "README.md": model_card(license="mit", pipeline_tag="text-classification").encode(),
    "config.json": json.dumps({"model_type": "bert"}).encode(),
    "model.safetensors": make_safetensors({"w": ("F32", [8, 8])}, seed=3),
    "sub/notes.txt": b"nested\n",
}
DATA_FILES: dict[str, bytes] = {"README.md": b"---\nlicense: cc-by-4.0\n---\n", "train.csv": b"a,b\n1,2\n"}


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str) -> bool:
    return path.endswith((".safetensors", ".bin", ".gguf", ".pkl"))


def blob_name(path: str, data: bytes) -> str:
    """The name huggingface_hub gives the blob: sha256 for LFS files, git-sha1 otherwise."""
    return hashlib.sha256(data).hexdigest() if is_lfs(path) else git_sha1(data)


def locked_file(path: str, data: bytes) -> LockedFile:
    if is_lfs(path):
        return LockedFile(path, len(data), "sha256", hashlib.sha256(data).hexdigest())
    return LockedFile(path, len(data), "git-sha1", git_sha1(data))


def locked_repo(
    repo_id: str, commit: str, files: dict[str, bytes], *, repo_type: str = "model", revision: str = "main"
) -> LockedRepo:
    entries = tuple(sorted(locked_file(p, d) for p, d in files.items()))
    return LockedRepo(repo_id, repo_type, revision, commit, SelectOptions(), entries)


@dataclass
class Built:
    """A cache written with write_repo: org/model (main, tag v1) and datasets/org/data."""

    cache: Path
    model_commit: str
    data_commit: str

    @property
    def model(self) -> RepoDir:
        return RepoDir(self.cache, "model", "org/model")

    @property
    def data(self) -> RepoDir:
        return RepoDir(self.cache, "dataset", "org/data")

    @property
    def model_snapshot(self) -> Path:
        return self.model.snapshot(self.model_commit)

    def blob(self, path: str) -> Path:
        return self.model.blobs / blob_name(path, MODEL_FILES[path])

    def lock(self) -> Lock:
        return Lock(
            (
                locked_repo("org/data", self.data_commit, DATA_FILES, repo_type="dataset"),
                locked_repo("org/model", self.model_commit, MODEL_FILES),
            )
        )


def build_cache(cache: Path) -> Built:
    model = write_repo(cache, "org/model", MODEL_FILES, tags=["v1"], date=DATE)
    data = write_repo(cache, "org/data", DATA_FILES, repo_type="dataset", date=DATE)
    return Built(cache, model, data)
