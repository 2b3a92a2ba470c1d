"""Carrying out a ``hfa cache`` plan, safely: the plan and result types, :func:`preview` and :func:`apply`.

Paths are unlinked or ``rmdir``-ed only strictly inside the cache and never through a link;
links and refs go before blobs, and a blob or ``.incomplete`` goes only while holding its
per-blob lock (see :mod:`hfa.cache.plan` for the full list of safety rules).
"""

from __future__ import annotations

import errno
import os
import stat
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.cache.inventory import INCOMPLETE, cache_root, linked_blobs
from hfa.cache.layout import CacheWriter, RepoDir, is_inside

__all__ = [
    "BLOB_KINDS",
    "IN_USE",
    "LOCK_BATCH",
    "PHASE",
    "Plan",
    "Removal",
    "Result",
    "Skipped",
    "UnsafePath",
    "apply",
    "lock_held",
    "preview",
]

LOCK_BATCH = 256  # blob locks held at once while deleting
BLOB_KINDS = ("blob", "incomplete")
# The order removals run in: refs, then links and files, then blobs, then folders.
PHASE = {"ref": 0, "link": 1, "file": 1, "record": 1, "blob": 2, "incomplete": 2, "folder": 3}
IN_USE = "in use: its lock is held (a download is running)"


# -- plans -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """One path to remove: ``kind`` is ref, link, file, record, blob, incomplete or folder."""

    kind: str
    path: Path
    rel: str  # relative to the cache, POSIX
    repo: RepoDir
    reason: str
    size: int = 0  # bytes it frees (each file counted once per plan)

    @property
    def etag(self) -> str | None:
        if self.kind not in BLOB_KINDS:
            return None
        return self.path.name[: -len(INCOMPLETE)] if self.kind == "incomplete" else self.path.name

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.rel,
            "repo": self.repo.label,
            "bytes": self.size,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Skipped:
    item: Removal
    why: str

    def to_json(self) -> dict[str, Any]:
        return {**self.item.to_json(), "skipped_because": self.why}


@dataclass
class Plan:
    action: str  # rm, prune or gc
    cache_dir: Path
    removals: list[Removal] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # known while planning (a download is running)
    revisions: list[str] = field(default_factory=list)  # "org/model@<commit>" of each revision removed
    repos: list[str] = field(default_factory=list)  # repos removed whole

    @property
    def bytes(self) -> int:
        return sum(r.size for r in self.removals)


@dataclass
class Result:
    plan: Plan
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(r.size for r in self.removed)

    @property
    def in_use(self) -> list[Skipped]:
        return [s for s in self.skipped if s.why.startswith("in use")]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("ref", "link", "file", "record", "blob", "incomplete", "folder"), 0)
        for r in self.removed:
            out[r.kind] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.plan.action,
            "cache_dir": str(self.plan.cache_dir),
            "dry_run": self.dry_run,
            "repos_removed": self.plan.repos,
            "revisions_removed": self.plan.revisions,
            "bytes_freed": self.bytes_freed,
            "bytes_in_use": sum(s.item.size for s in self.in_use),
            "counts": self.counts(),
            "removed": [r.to_json() for r in self.removed],
            "skipped": [s.to_json() for s in self.skipped],
            "failed": [s.to_json() for s in self.failed],
        }


def lock_held(path: Path) -> bool:
    """True when another process (or object) holds this lock file. Never creates one."""
    from filelock import FileLock, Timeout

    if not path.is_file() or path.is_symlink():
        return False
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        return False
    lock.release()
    return False


# -- apply ------------------------------------------------------------------------------------------


class UnsafePath(Exception):
    pass


class _Remover:
    """Removes files, links and empty folders strictly inside the cache, never through a link."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = str(cache_root(cache_dir))

    def _check(self, path: Path) -> None:
        text = str(path)
        parent = os.path.dirname(text)
        if not is_inside(self.root, text) or os.path.realpath(parent) != parent:
            raise UnsafePath(f"refusing {text}: it is not directly inside the cache (a folder on the way is a link)")

    def unlink(self, path: Path) -> None:
        self._check(path)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise UnsafePath(f"refusing {path}: a folder where a file was planned")
        os.unlink(path)

    def rmdir(self, path: Path) -> None:
        self._check(path)
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise UnsafePath(f"refusing {path}: not a folder")
        os.rmdir(path)


def preview(plan: Plan) -> Result:
    """What :func:`apply` would do now, without changing anything (and without creating lock files)."""
    result = Result(plan, dry_run=True, skipped=list(plan.skipped))
    for item in plan.removals:
        etag = item.etag
        if etag and lock_held(CacheWriter(plan.cache_dir, item.repo.repo_type, item.repo.repo_id).lock_path(etag)):
            result.skipped.append(Skipped(item, IN_USE))
        else:
            result.removed.append(item)
    return result


def apply(plan: Plan) -> Result:
    """Carry out a plan: links and refs, then blobs under their locks, then folders that are empty."""
    from filelock import Timeout

    remover = _Remover(plan.cache_dir)
    result = Result(plan, dry_run=False, skipped=list(plan.skipped))

    def remove(item: Removal) -> None:
        try:
            if item.kind == "folder":
                remover.rmdir(item.path)
            else:
                remover.unlink(item.path)
        except FileNotFoundError:
            result.skipped.append(Skipped(item, "already gone"))
        except OSError as exc:
            if item.kind == "folder" and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                result.skipped.append(Skipped(item, "not empty (something in it was kept)"))
            else:
                result.failed.append(Skipped(item, exc.strerror or str(exc)))
        except UnsafePath as exc:
            result.failed.append(Skipped(item, str(exc)))
        else:
            result.removed.append(item)

    for item in plan.removals:
        if PHASE[item.kind] < 2:
            remove(item)
    by_repo: dict[RepoDir, list[Removal]] = {}
    for item in plan.removals:
        if item.kind in BLOB_KINDS:
            by_repo.setdefault(item.repo, []).append(item)
    for repo, items in by_repo.items():
        writer = CacheWriter(plan.cache_dir, repo.repo_type, repo.repo_id)
        for start in range(0, len(items), LOCK_BATCH):
            with ExitStack() as held:
                locked: list[Removal] = []
                for item in items[start : start + LOCK_BATCH]:
                    lock = writer.lock(item.etag or "", timeout=0)
                    try:
                        lock.acquire()
                    except Timeout:
                        result.skipped.append(Skipped(item, IN_USE))
                        continue
                    except OSError as exc:
                        result.failed.append(Skipped(item, f"cannot take its lock: {exc.strerror or exc}"))
                        continue
                    held.callback(lock.release)
                    locked.append(item)
                # Under the locks, read the links again: a pull may have linked a blob since planning.
                now = linked_blobs(str(remover.root), repo) if any(i.kind == "blob" for i in locked) else {}
                for item in locked:
                    if item.kind == "blob" and item.path.name in now:
                        result.skipped.append(Skipped(item, f"in use: now linked from {now[item.path.name]}"))
                    else:
                        remove(item)
    for item in plan.removals:
        if item.kind == "folder":
            remove(item)
    return result
