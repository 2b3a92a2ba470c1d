"""``hfa verify --fix``: fetch again what a verification found missing or corrupt, and replace
Git-LFS pointer stubs in a plain folder by the content they stand for — always verified."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path
from typing import Any

from hfa.cache.hashing import git_sha1, lfs_pointer
from hfa.config import Settings
from hfa.errors import UsageError
from hfa.hub.download import Fetcher
from hfa.resolve.files import RemoteFile
from hfa.resolve.refs import RepoRef
from hfa.store import LocalStore
from hfa.verify import VerifyReport


def repair(
    settings: Settings, report: VerifyReport, *, lock: Path | None, folder: Path | None, repo: str | None
) -> list[str]:
    """Fix what ``report`` found; returns one line per action. Needs the network."""
    from hfa.hub.client import OnlineHub

    if folder is not None:
        if not report.stubs:
            return []
        hub = OnlineHub(settings)
        return _replace_stubs(hub, report, folder, repo)
    if not report.to_refetch:
        return []
    hub = OnlineHub(settings)
    locked: dict[tuple[str, str, str], dict[str, RemoteFile]] = {}
    if lock is not None:
        from hfa.lock import lockfile

        for entry in lockfile.read(lock).repos:
            locked[(entry.repo_type, entry.repo_id, entry.commit)] = entry.remote_files()
    lines: list[str] = []
    groups: dict[tuple[str, str, str], set[str]] = {}
    for repo_type, repo_id, commit, path in report.to_refetch:
        groups.setdefault((repo_type, repo_id, commit), set()).add(path)
    for (repo_type, repo_id, commit), paths in sorted(groups.items()):
        ref = RepoRef(repo_id, repo_type, commit)
        files = locked.get((repo_type, repo_id, commit))
        if files is None:
            files = hub.resolve(ref).files  # the lock's hashes win when there is a lock
        store = LocalStore(settings.cache_dir, repo_type, repo_id)
        fetcher = Fetcher(hub, store, ref, commit)
        for path in sorted(paths):
            f = files.get(path)
            if f is None:
                lines.append(f"cannot fix {ref.display}/{path}: not in the repo's file list")
                continue
            with store.lock(f.etag):
                blob = store.path(f.etag)
                if blob.exists() and not _blob_ok(blob):
                    blob.unlink()  # corrupt: never served again
            fetcher.fetch_one(f)
            lines.append(f"fixed {ref.display}/{path}: fetched and verified ({f.hash_algo})")
    return lines


def _blob_ok(blob: Path) -> bool:
    from hfa.verify import hash_blob

    return hash_blob(blob)[0] == blob.name


class _FolderStore:
    """A :class:`~hfa.store.BlobStore` of one file in a plain folder: the Fetcher replaces a stub with verified bytes."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest

    def has(self, etag: str, size: int) -> bool:
        return False  # the stub is there: always fetched

    def path(self, etag: str) -> Path:
        return self.dest

    def lock(self, etag: str, *, cancel: threading.Event | None = None) -> Any:
        return contextlib.nullcontext()

    def partial(self, etag: str) -> Path:
        return self.dest.with_name(f".{self.dest.name}.hfa-partial")

    def partial_record(self, etag: str) -> Path:
        return self.dest.with_name(f".{self.dest.name}.hfa-partial.json")

    def publish(self, etag: str, source: Path, *, keep_source: bool = False) -> Path:
        os.replace(source, self.dest)
        return self.dest

    def link(self, commit: str, relpath: str, etag: str) -> Path:
        return self.dest  # a plain folder has no snapshots: the file is where it belongs

    def linked(self, commit: str, relpath: str, etag: str, size: int) -> bool:
        return False


def _replace_stubs(hub: Any, report: VerifyReport, folder: Path, repo: str | None) -> list[str]:
    ref, commit = _origin(folder, repo)
    if commit is None:
        commit = hub.resolve(ref).commit
    elif ref.revision is None:
        ref = RepoRef(ref.repo_id, ref.repo_type, commit)  # an error names the clone's commit, not "main"
    lines: list[str] = []
    for file, rel, oid, size in report.stubs:
        f = RemoteFile(rel, size, git_sha1(lfs_pointer(oid, size)), oid)
        fetcher = Fetcher(hub, _FolderStore(file), ref, commit)
        fetcher.fetch_one(f)  # verified against the pointer's oid before it replaces the stub
        lines.append(f"replaced LFS stub {rel} with its {size}-byte content (sha256 {oid[:12]}… verified)")
    return lines


def _origin(folder: Path, repo: str | None) -> tuple[RepoRef, str | None]:
    """The repo a folder was cloned from (--repo, else .git/config) and the commit it is at."""
    from hfa.gitmeta import read_head, read_origin_url

    root = folder if folder.is_dir() else folder.parent
    head = read_head(root)
    commit = head.commit if head is not None else None
    if repo:
        return RepoRef.parse(repo), commit
    url = read_origin_url(root)
    if url is None:
        raise UsageError(
            f"Cannot tell which repo {folder} came from", "pass --repo org/name (and the folder at its commit)"
        )
    match = re.search(r"(?:https?://[^/]+/|@[^:]+:)(datasets/|spaces/)?([\w.\-]+(?:/[\w.\-]+)??)(?:\.git)?/?$", url)
    if not match:
        raise UsageError(f"Cannot read a Hub repo id from the remote '{url}'", "pass --repo org/name")
    prefix = match.group(1) or ""
    return RepoRef.parse(prefix + match.group(2)), commit
