"""Reading the huggingface_hub cache for ``hfa cache``: repos, revisions, blobs, sizes and last use.

Nothing here changes the cache or follows a link out of it; :mod:`hfa.cache.plan` plans removals
from what this reads, and :mod:`hfa.cache.delete` carries them out.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.cache.hashing import is_blob_name
from hfa.cache.layout import RepoDir, is_inside, is_real_dir, iter_repos, parse_repo_folder
from hfa.cache.walk import ESCAPES, SnapshotFile, walk_snapshot
from hfa.errors import UsageError

__all__ = [
    "INCOMPLETE",
    "BlobFile",
    "CacheScan",
    "Listing",
    "RepoInfo",
    "RepoScan",
    "RevisionInfo",
    "SnapshotDir",
    "SnapshotEntry",
    "cache_root",
    "inode_of",
    "linked_blobs",
    "list_cache",
    "scan_cache",
]

INCOMPLETE = ".incomplete"


def cache_root(cache_dir: Path) -> Path:
    """The cache dir, resolved; refuses ``/`` and the home directory itself."""
    real = os.path.realpath(cache_dir)
    home = os.path.realpath(os.path.expanduser("~"))
    if real == os.path.realpath(os.sep) or real == home:
        raise UsageError(
            f"Refusing to treat {real} as a cache: it is the {'root' if real == os.sep else 'home'} directory",
            "pass --cache-dir (or HF_HUB_CACHE) pointing at a huggingface_hub cache, e.g. ~/.cache/huggingface/hub",
        )
    return Path(real)


# -- scanning ------------------------------------------------------------------------------------


@dataclass
class BlobFile:
    """An entry of ``blobs/``: a blob named by its hash, or a ``<hash>.incomplete`` partial."""

    name: str
    path: Path
    size: int  # bytes it occupies in the cache (0 for a link leading out of it)
    inode: tuple[int, int] | None
    atime: float
    mtime: float
    is_link: bool = False
    escapes: bool = False

    @property
    def etag(self) -> str:
        return self.name[: -len(INCOMPLETE)] if self.name.endswith(INCOMPLETE) else self.name


@dataclass
class SnapshotEntry:
    """A file of a snapshot: normally a link to a blob."""

    rel: str
    path: Path
    blob_key: str | None  # where it points: "<real blobs folder>/<name>" in this cache, else None
    size: int  # regular files only (a link frees nothing)
    inode: tuple[int, int] | None
    atime: float
    mtime: float
    escapes: bool = False


@dataclass
class SnapshotDir:
    commit: str
    path: Path
    entries: list[SnapshotEntry]
    atime: float
    mtime: float
    is_link: bool = False


@dataclass
class RepoScan:
    repo: RepoDir
    refs: dict[str, str]
    snapshots: dict[str, SnapshotDir]
    blobs: dict[str, BlobFile]
    incomplete: list[BlobFile]
    warnings: list[str] = field(default_factory=list)

    def key(self, blob: str) -> str:
        return os.path.join(str(self.repo.blobs), blob)

    def refs_of(self, commit: str) -> list[str]:
        return sorted(name for name, value in self.refs.items() if value == commit)


@dataclass
class CacheScan:
    root: Path
    repos: list[RepoScan]

    def blob_index(self) -> dict[str, BlobFile]:
        return {rs.key(name): b for rs in self.repos for name, b in rs.blobs.items()}

    def find(self, repo_type: str, repo_id: str) -> RepoScan | None:
        return next((r for r in self.repos if (r.repo.repo_type, r.repo.repo_id) == (repo_type, repo_id)), None)


def scan_cache(cache_dir: Path) -> CacheScan:
    """Every repo of the cache, read without following any link out of it."""
    root = cache_root(cache_dir)
    return CacheScan(root, [_scan_repo(root, repo) for repo in iter_repos(root)])


def inode_of(st: os.stat_result) -> tuple[int, int]:
    """What tells one file from another: (device, inode)."""
    return (st.st_dev, st.st_ino)


def _scan_repo(root: Path, repo: RepoDir) -> RepoScan:
    rs = RepoScan(repo, repo.list_refs(), {}, {}, [])
    for sub in ("blobs", "snapshots", "refs"):
        if (repo.path / sub).is_symlink():
            rs.warnings.append(f"{sub}/ is a link; not followed")
    if is_real_dir(repo.blobs):
        for entry in sorted(os.scandir(repo.blobs), key=lambda e: e.name):
            name = entry.name
            partial = name.endswith(INCOMPLETE) and is_blob_name(name[: -len(INCOMPLETE)])
            if not (partial or is_blob_name(name)):
                continue
            blob = _blob_file(str(root), Path(entry.path))
            if blob is None:
                continue
            if partial:
                rs.incomplete.append(blob)
            else:
                rs.blobs[name] = blob
                if blob.escapes:
                    rs.warnings.append(f"blobs/{name} links out of the cache; its size is not counted")
    if is_real_dir(repo.snapshots):
        for entry in sorted(os.scandir(repo.snapshots), key=lambda e: e.name):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                rs.snapshots[entry.name] = _scan_snapshot(str(root), repo, Path(entry.path), st)
            elif stat.S_ISLNK(st.st_mode):
                rs.warnings.append(f"snapshots/{entry.name} is a link; not followed")
                rs.snapshots[entry.name] = SnapshotDir(entry.name, Path(entry.path), [], st.st_atime, st.st_mtime, True)
    return rs


def _blob_file(root: str, path: Path) -> BlobFile | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:  # gone while we looked (a pull publishing it)
        return None
    if stat.S_ISREG(st.st_mode):
        return BlobFile(path.name, path, st.st_size, inode_of(st), st.st_atime, st.st_mtime)
    if not stat.S_ISLNK(st.st_mode):
        return None
    real = os.path.realpath(path)
    if is_inside(root, real) and os.path.isfile(real):
        target = os.stat(real)
        return BlobFile(path.name, path, target.st_size, inode_of(target), target.st_atime, target.st_mtime, True)
    return BlobFile(path.name, path, 0, None, st.st_atime, st.st_mtime, True, True)


def _is_blobs_folder(root: str, real: str) -> bool:
    repo_folder = os.path.dirname(real)
    return (
        os.path.basename(real) == "blobs"
        and os.path.dirname(repo_folder) == root
        and parse_repo_folder(os.path.basename(repo_folder)) is not None
    )


def _scan_snapshot(root: str, repo: RepoDir, snap: Path, st: os.stat_result) -> SnapshotDir:
    out = SnapshotDir(snap.name, snap, [], st.st_atime, st.st_mtime)
    for found in walk_snapshot(repo, snap.name):  # never enters a linked folder
        entry = _snapshot_entry(root, found)
        if entry is not None:
            out.entries.append(entry)
    return out


def _snapshot_entry(root: str, found: SnapshotFile) -> SnapshotEntry | None:
    st = found.lstat
    if stat.S_ISREG(st.st_mode):
        return SnapshotEntry(found.rel, found.path, None, st.st_size, inode_of(st), st.st_atime, st.st_mtime)
    if not found.is_link or not found.rel:
        return None
    # The blob a link names is its first hop (the blob may itself be a link): what removing it would break.
    named = os.path.normpath(os.path.join(found.path.parent, found.link or ""))
    folder = os.path.realpath(os.path.dirname(named))
    key = os.path.join(folder, os.path.basename(named)) if _is_blobs_folder(root, folder) else None
    escapes = found.kind == ESCAPES
    return SnapshotEntry(found.rel, found.path, key, 0, None, st.st_atime, st.st_mtime, escapes)


def linked_blobs(root: str, repo: RepoDir) -> dict[str, str]:
    """Blob name -> one snapshot entry of ``repo`` that links to it, read now."""
    out: dict[str, str] = {}
    if not is_real_dir(repo.snapshots):
        return out
    blobs = str(repo.blobs)
    for snap in repo.snapshots.iterdir():
        if not is_real_dir(snap):
            continue
        try:
            entries = _scan_snapshot(root, repo, snap, os.lstat(snap)).entries
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.blob_key and os.path.dirname(entry.blob_key) == blobs:
                out.setdefault(os.path.basename(entry.blob_key), f"{snap.name[:12]}/{entry.rel}")
    return out


# -- ls ---------------------------------------------------------------------------------------------


@dataclass
class RevisionInfo:
    commit: str
    refs: list[str]
    files: int
    size: int

    @property
    def detached(self) -> bool:
        return not self.refs

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "refs": self.refs,
            "detached": self.detached,
            "files": self.files,
            "size": self.size,
        }


@dataclass
class RepoInfo:
    repo: RepoDir
    revisions: list[RevisionInfo]
    dangling_refs: dict[str, str]
    files: int  # blobs and plain files stored
    size: int  # bytes on disk, each file once
    incomplete_files: int
    incomplete_bytes: int
    last_accessed: float | None
    last_modified: float | None
    warnings: list[str]

    @property
    def last_used(self) -> tuple[float | None, str | None]:
        """The later of the latest access and the latest modification, and which one it was."""
        if self.last_accessed is None or self.last_modified is None:
            return None, None
        if self.last_accessed > self.last_modified:
            return self.last_accessed, "accessed"
        return self.last_modified, "modified"

    def to_json(self) -> dict[str, Any]:
        used, source = self.last_used
        return {
            "type": self.repo.repo_type,
            "id": self.repo.repo_id,
            "name": self.repo.label,
            "folder": self.repo.path.name,
            "revisions": [r.to_json() for r in self.revisions],
            "dangling_refs": self.dangling_refs,
            "files": self.files,
            "size": self.size,
            "incomplete": {"files": self.incomplete_files, "bytes": self.incomplete_bytes},
            "last_accessed": _iso(self.last_accessed),
            "last_modified": _iso(self.last_modified),
            "last_used": _iso(used),
            "last_used_source": source,
            "warnings": self.warnings,
        }


@dataclass
class Listing:
    cache_dir: Path
    repos: list[RepoInfo]
    size: int  # every file once, also when hard-linked or linked from several repos

    def to_json(self) -> dict[str, Any]:
        return {
            "cache_dir": str(self.cache_dir),
            "repos": [r.to_json() for r in self.repos],
            "totals": {
                "repos": len(self.repos),
                "revisions": sum(len(r.revisions) for r in self.repos),
                "files": sum(r.files for r in self.repos),
                "size": self.size,
                "incomplete_bytes": sum(r.incomplete_bytes for r in self.repos),
            },
            "last_used": "the latest access (atime) or modification (mtime) of the repo's blobs and snapshot"
            " entries, whichever is later; last_used_source says which",
        }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def list_cache(cache_dir: Path) -> Listing:
    scan = scan_cache(cache_dir)
    index = scan.blob_index()
    seen: set[tuple[int, int]] = set()
    total = 0
    repos: list[RepoInfo] = []
    for rs in scan.repos:
        mine: dict[tuple[int, int], int] = {}
        stamps: list[tuple[float, float]] = []
        for b in [*rs.blobs.values(), *rs.incomplete]:
            stamps.append((b.atime, b.mtime))
            if b.inode:
                mine[b.inode] = b.size
        revisions = []
        for commit, snap in rs.snapshots.items():
            stamps.append((snap.atime, snap.mtime))
            used: dict[tuple[int, int], int] = {}
            for e in snap.entries:
                stamps.append((e.atime, e.mtime))
                blob = index.get(e.blob_key) if e.blob_key else None
                if blob is not None and blob.inode:
                    used[blob.inode] = blob.size
                if e.inode:
                    used[e.inode] = mine[e.inode] = e.size
            revisions.append(RevisionInfo(commit, rs.refs_of(commit), len(snap.entries), sum(used.values())))
        for inode, size in mine.items():
            if inode not in seen:
                seen.add(inode)
                total += size
        revisions.sort(key=lambda r: (r.detached, r.refs, r.commit))
        repos.append(
            RepoInfo(
                repo=rs.repo,
                revisions=revisions,
                dangling_refs={n: c for n, c in sorted(rs.refs.items()) if c not in rs.snapshots},
                files=len(rs.blobs) + sum(1 for s in rs.snapshots.values() for e in s.entries if e.inode),
                size=sum(mine.values()),
                incomplete_files=len(rs.incomplete),
                incomplete_bytes=sum(b.size for b in rs.incomplete),
                last_accessed=max((a for a, _ in stamps), default=None),
                last_modified=max((m for _, m in stamps), default=None),
                warnings=rs.warnings,
            )
        )
    return Listing(scan.root, repos, total)
