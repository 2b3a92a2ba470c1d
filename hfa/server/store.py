"""A read-only view of a huggingface_hub cache as the Hub would describe it.

The store answers "which repos, which refs, which files at which commit, with which
hashes" from the cache layout alone (blob names are the hashes) plus the optional
``.hfa.json`` sidecar. A snapshot file is served only if it passes the cache's one containment
rule (:mod:`hfa.cache.walk`): a link to a blob of the repo being served, or a plain copy; metadata
is read only from regular files inside the repo's folder. It never follows a link out of the repo.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from hfa.cache.hashing import (
    COMMIT_RE,
    SHA1_RE,
    SHA256_RE,
    git_sha1,
    git_sha1_file,
    is_lfs_path,
    lfs_pointer,
    sha256_file,
)
from hfa.cache.layout import HFA_META, REPO_ID_RE, RepoDir, iter_repos, repo_folder_name
from hfa.cache.walk import BLOB, FOLDER_LINK, walk_snapshot
from hfa.resolve.card import parse_card

log = logging.getLogger("hfa.serve")
_MAX_WARNED = 10_000  # paths remembered so each unreadable file is logged once


class Unreadable:
    """Logs, once per path, a file or folder the server should serve but cannot read."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, path: Path, exc: OSError) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        with self._lock:
            if str(path) in self._seen:
                return
            if len(self._seen) < _MAX_WARNED:
                self._seen.add(str(path))
        fix = (
            f"make the cache readable by the user hfa serve runs as (uid {os.getuid()}), "
            f"e.g. chmod -R a+rX {self.cache_dir}"
            if isinstance(exc, PermissionError)
            else "check the disk and the cache"
        )
        log.warning("cannot read %s (%s): it is not served; %s", path, exc.strerror or exc, fix)


MAX_META = 1024 * 1024  # bytes of .hfa.json read
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # no link, and a FIFO never blocks


def read_regular_file(path: Path, limit: int, on_error: Callable[[Path, OSError], None] | None = None) -> bytes | None:
    """At most ``limit`` bytes of ``path`` if it is a regular file (not a link, FIFO or device).

    ``on_error`` hears why an existing file could not be opened (a permission, say).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if on_error is not None and exc.errno != errno.ELOOP:
            on_error(path, exc)
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:  # judged before a file object refuses a folder
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as fp:
        return fp.read(limit)


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    blob_path: Path | None  # real path of the content, inside the cache (None: in a bucket)
    blob_id: str  # git sha1 of what git stores (the pointer text for LFS files)
    lfs_sha256: str | None  # set for LFS files

    @property
    def etag(self) -> str:
        """What huggingface_hub names the blob by."""
        return self.lfs_sha256 or self.blob_id

    @property
    def pointer_size(self) -> int:
        assert self.lfs_sha256 is not None
        return len(lfs_pointer(self.lfs_sha256, self.size))


@dataclass
class Snapshot:
    commit: str
    files: dict[str, FileEntry]
    date: str
    title: str
    card: dict[str, Any] | None = None  # card data, when the store read it with the file list (a bucket)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    meta: dict[str, Any] = field(default_factory=dict)
    repo_dir: RepoDir | None = None  # its folder, for a repo of a cache

    @property
    def tags(self) -> set[str]:
        return set(self.meta.get("tags", []) or [])


def _iso_mtime(path: Path) -> str:
    try:
        ts = path.stat().st_mtime
    except OSError:
        ts = 0
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class LockScope:
    """``hfa serve --lock``: only the repos, commits and files a lock names are visible."""

    commits: dict[tuple[str, str], dict[str, frozenset[str]]]  # (type, id) -> commit -> paths
    revisions: dict[tuple[str, str], dict[str, str]]  # (type, id) -> revision name -> commit

    @classmethod
    def from_lock(cls, lock: Any) -> LockScope:
        commits: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
        revisions: dict[tuple[str, str], dict[str, str]] = {}
        for entry in lock.repos:
            key = (entry.repo_type, entry.repo_id)
            commits.setdefault(key, {})[entry.commit] = frozenset(f.path for f in entry.files)
            if entry.revision != entry.commit:
                revisions.setdefault(key, {})[entry.revision] = entry.commit
        return cls(commits, revisions)


class ServedStore(Protocol):
    """What the request handler (hfa.server.handler) asks of a store: :class:`CacheStore` (a cache) and
    :class:`hfa.server.bucket.BucketStore` (a bucket written by ``hfa push``)."""

    def repos(self, repo_type: str | None = None) -> list[Repo]: ...
    def repo(self, repo_type: str, repo_id: str) -> Repo | None: ...
    def exists(self, repo_type: str, repo_id: str) -> bool: ...
    def refs(self, repo: Repo) -> dict[str, str]: ...
    def commits(self, repo: Repo) -> list[str]: ...
    def resolve(self, repo: Repo, revision: str) -> str | None: ...
    def default_commit(self, repo: Repo) -> str | None: ...
    def snapshot(self, repo: Repo, commit: str) -> Snapshot | None: ...
    def card_data(self, snap: Snapshot | None) -> dict[str, Any]: ...
    def count_download(self, repo: Repo) -> None: ...
    def download_count(self, repo: Repo) -> int: ...
    def blob_url(self, entry: FileEntry, path: str) -> str | None: ...
    def open_file(
        self, environ: dict[str, Any], entry: FileEntry, path: str, snap: Snapshot, start: int, length: int
    ) -> Iterable[bytes]: ...


class CacheStore:
    """Answers the Hub's questions from a cache directory. Thread-safe, read-only.

    What the request handler asks of a store (:mod:`hfa.server.bucket` answers the same from a bucket):
    ``repos``, ``repo``, ``exists``, ``refs``, ``commits``, ``resolve``, ``default_commit``, ``snapshot``,
    ``card_data``, ``count_download``, ``download_count``; :class:`hfa.server.downloads.ServedCache` adds
    ``blob_url`` and ``open_file`` (the file bodies) to make it a :class:`ServedStore`.
    """

    def __init__(self, cache_dir: Path, scope: LockScope | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.scope = scope
        self._hash_memo: dict[tuple[str, int, int], tuple[str, str | None]] = {}
        self._snap_memo: dict[tuple[str, str], tuple[float, Snapshot]] = {}
        self._lock = threading.Lock()
        self.downloads: dict[tuple[str, str], int] = {}
        self.unreadable = Unreadable(self.cache_dir)

    # -- repositories --------------------------------------------------------
    def repos(self, repo_type: str | None = None) -> list[Repo]:
        return [
            self._load(rd)
            for rd in iter_repos(self.cache_dir)
            if (repo_type is None or rd.repo_type == repo_type) and self._in_scope(rd.repo_type, rd.repo_id)
        ]

    def _in_scope(self, repo_type: str, repo_id: str) -> bool:
        """``repo_id`` is one a cache can hold (a client's name of 5,000 characters is not: the file system
        would refuse its folder name) and the lock, if any, names it."""
        if not REPO_ID_RE.match(repo_id) or ".." in repo_id or "--" in repo_id:
            return False
        return self.scope is None or (repo_type, repo_id) in self.scope.commits

    def repo(self, repo_type: str, repo_id: str) -> Repo | None:
        if not self._in_scope(repo_type, repo_id):
            return None
        rd = RepoDir(self.cache_dir, repo_type, repo_id)
        folder = self.cache_dir / repo_folder_name(repo_id, repo_type)
        if not folder.is_dir() or folder.is_symlink() or not rd.snapshots.is_dir():
            return None
        return self._load(rd)

    def exists(self, repo_type: str, repo_id: str) -> bool:
        if not self._in_scope(repo_type, repo_id):
            return False
        return (self.cache_dir / repo_folder_name(repo_id, repo_type) / "snapshots").is_dir()

    def _load(self, rd: RepoDir) -> Repo:
        raw = read_regular_file(rd.path / HFA_META, MAX_META, self.unreadable)  # the repo folder itself is never a link
        try:
            meta = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError, RecursionError):
            meta = {}
        return Repo(rd.repo_type, rd.repo_id, meta if isinstance(meta, dict) else {}, rd)

    def count_download(self, repo: Repo) -> None:
        key = (repo.repo_type, repo.repo_id)
        with self._lock:
            self.downloads[key] = self.downloads.get(key, 0) + 1

    def download_count(self, repo: Repo) -> int:
        base = repo.meta.get("downloads", 0)
        return (base if isinstance(base, int) else 0) + self.downloads.get((repo.repo_type, repo.repo_id), 0)

    # -- refs ------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, str]:
        if self.scope is not None:  # the lock's revisions, at the lock's commits
            return dict(self.scope.revisions.get((repo.repo_type, repo.repo_id), {}))
        refs = _dir(repo).list_refs(on_error=self.unreadable)
        return {name: sha for name, sha in refs.items() if COMMIT_RE.match(sha)}

    def commits(self, repo: Repo) -> list[str]:
        try:
            present = _dir(repo).list_commits()
        except OSError as exc:
            self.unreadable(_dir(repo).snapshots, exc)
            present = []
        if self.scope is None:
            return present
        allowed = self.scope.commits.get((repo.repo_type, repo.repo_id), {})
        return [c for c in present if c in allowed]

    def resolve(self, repo: Repo, revision: str) -> str | None:
        """Branch, tag, ``refs/heads/x``, ``refs/tags/x``, ``refs/pr/N`` or a commit -> commit."""
        commits = self.commits(repo)
        if COMMIT_RE.match(revision):
            return revision if revision in commits else None
        refs = self.refs(repo)
        for name in (revision, revision.removeprefix("refs/heads/"), revision.removeprefix("refs/tags/")):
            sha = refs.get(name)
            if sha and sha in commits:
                return sha
        return None

    def default_commit(self, repo: Repo) -> str | None:
        sha = self.resolve(repo, "main")
        if sha:
            return sha
        commits = self.commits(repo)
        if not commits:
            return None
        # No main: the newest snapshot stands for the default branch.
        return max(commits, key=lambda c: (_dir(repo).snapshot(c).stat().st_mtime, c))

    # -- snapshots -------------------------------------------------------------
    def snapshot(self, repo: Repo, commit: str) -> Snapshot | None:
        snap_dir = _dir(repo).snapshot(commit)
        if not COMMIT_RE.match(commit) or not snap_dir.is_dir() or commit not in self.commits(repo):
            return None
        key = (str(_dir(repo).path), commit)
        stamp = self.snapshot_stamp(repo, snap_dir)
        with self._lock:
            memo = self._snap_memo.get(key)
        if memo and memo[0] == stamp:
            return memo[1]
        files = self.snapshot_files(repo, snap_dir)
        if self.scope is not None:
            allowed = self.scope.commits[(repo.repo_type, repo.repo_id)][commit]
            files = {p: e for p, e in files.items() if p in allowed}
        info = (repo.meta.get("commits") or {}).get(commit) or {}
        snap = Snapshot(
            commit=commit,
            files=files,
            date=str(info.get("date") or _iso_mtime(snap_dir)),
            title=str(info.get("title") or ""),
        )
        with self._lock:
            self._snap_memo[key] = (stamp, snap)
        return snap

    def snapshot_stamp(self, repo: Repo, snap_dir: Path) -> float:
        """What changes when the snapshot's file list may have changed (its folders' mtimes)."""
        return _tree_stamp(snap_dir)

    def snapshot_files(self, repo: Repo, snap_dir: Path) -> dict[str, FileEntry]:
        files: dict[str, FileEntry] = {}
        for found in walk_snapshot(_dir(repo), snap_dir.name, on_error=self.unreadable):
            if found.real is None:
                if found.kind != FOLDER_LINK:
                    log.warning(
                        "skipping %s/%s: it leads out of the repo's blobs or is broken", repo.repo_id, found.rel
                    )
                continue
            entry = self._entry(found.rel, found.real, found.kind == BLOB)
            if entry is not None:
                files[found.rel] = entry
        return files

    def _entry(self, rel: str, real: Path, linked: bool) -> FileEntry | None:
        try:
            st = real.stat()
        except OSError as exc:
            self.unreadable(real, exc)
            return None
        name = real.name
        if linked and SHA256_RE.match(name):
            return FileEntry(rel, st.st_size, real, git_sha1(lfs_pointer(name, st.st_size)), name)
        if linked and SHA1_RE.match(name):
            return FileEntry(rel, st.st_size, real, name, None)
        # A copied (not linked) snapshot file, as on systems without symlinks: hash it once.
        key = (str(real), st.st_size, st.st_mtime_ns)
        with self._lock:
            memo = self._hash_memo.get(key)
        if memo is None:
            with real.open("rb") as fp:
                head = fp.read(8000)
            if is_lfs_path(rel, st.st_size, head):
                with real.open("rb") as fp:
                    sha = sha256_file(fp)
                memo = (git_sha1(lfs_pointer(sha, st.st_size)), sha)
            else:
                with real.open("rb") as fp:
                    memo = (git_sha1_file(fp, st.st_size), None)
            with self._lock:
                self._hash_memo[key] = memo
        return FileEntry(rel, st.st_size, real, memo[0], memo[1])

    # -- cards -----------------------------------------------------------------
    def card_data(self, snap: Snapshot | None) -> dict[str, Any]:
        if snap is None or "README.md" not in snap.files:
            return {}
        entry = snap.files["README.md"]
        raw = read_regular_file(entry.blob_path, 4 * 1024 * 1024, self.unreadable) if entry.blob_path else None
        if raw is None:
            return {}
        return jsonable(parse_card(raw).data, ())


def _dir(repo: Repo) -> RepoDir:
    assert repo.repo_dir is not None, "a repo of a cache"
    return repo.repo_dir


def jsonable(value: Any, path: tuple[int, ...]) -> Any:
    """Card data as JSON can carry it: YAML also gives dates, bytes, odd keys and alias cycles."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if id(value) in path or len(path) > 64:  # an alias cycle, or absurd depth
        return None
    inner = (*path, id(value))
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): jsonable(v, inner) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, inner) for v in value]
    if hasattr(value, "isoformat"):  # date, datetime
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _tree_stamp(snap_dir: Path) -> float:
    """A cheap change marker: newest mtime among the snapshot's directories."""
    newest = 0.0
    for dirpath, _dirs, _files in os.walk(snap_dir, followlinks=False):
        with contextlib.suppress(OSError):
            newest = max(newest, os.stat(dirpath).st_mtime_ns)
    return newest


def tree_oid(paths: list[str]) -> str:
    return hashlib.sha1("\n".join(sorted(paths)).encode()).hexdigest()
