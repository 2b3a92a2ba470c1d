"""``hfa cache``: list, remove, prune and garbage-collect the huggingface_hub cache, safely.

Every destructive command first builds a :class:`Plan` (exactly which paths go, why, and the
bytes), which ``--dry-run`` shows and :func:`apply` carries out. Nothing here prints.

Safety, in one place:

* the cache dir is resolved once; ``/`` and the home directory itself are refused;
* every path is built under the resolved cache, and before anything is removed its folder must
  resolve to itself: no symlinked folder on the way (a symlinked repo folder, ``blobs/`` or
  snapshot folder is never entered), so nothing outside the cache is ever touched;
* files and links are unlinked (a link goes, never its target); folders are ``rmdir``-ed only
  once empty; there is no ``rmtree``;
* snapshot links go before the blobs they point to; a blob or an ``.incomplete`` is deleted only
  while holding its per-blob lock (the one ``hfa pull`` and huggingface_hub take), acquired
  without waiting: a held lock means "in use" and the file is kept and reported; while the
  locks are held the repo's links are read again, and a blob a link now names is kept;
* ``prune`` and ``gc`` leave a repo's snapshots, refs and folders alone while a download into
  it holds a lock (its new snapshot has no ref yet and would look detached).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.cache import HFA_DIR, HFA_META, CacheWriter, RepoDir, iter_repos, parse_repo_folder, repo_folder_name
from hfa.errors import NotFound, UsageError
from hfa.hashing import SHA1_RE, SHA256_RE

INCOMPLETE = ".incomplete"
LOCK_BATCH = 256  # blob locks held at once while deleting
BLOB_KINDS = ("blob", "incomplete")
_PHASE = {"ref": 0, "link": 1, "file": 1, "record": 1, "blob": 2, "incomplete": 2, "folder": 3}
IN_USE = "in use: its lock is held (a download is running)"
BUSY = "in use: a download into this repo is running; run this again when it has finished"


def _is_hash(name: str) -> bool:
    return bool(SHA256_RE.match(name) or SHA1_RE.match(name))


def _inside(root: str, path: str) -> bool:
    return path.startswith(root + os.sep)


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


def _label(repo: RepoDir) -> str:
    return repo.repo_id if repo.repo_type == "model" else f"{repo.repo_type}s/{repo.repo_id}"


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


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _inode(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


def _scan_repo(root: Path, repo: RepoDir) -> RepoScan:
    rs = RepoScan(repo, repo.list_refs(), {}, {}, [])
    for sub in ("blobs", "snapshots", "refs"):
        if (repo.path / sub).is_symlink():
            rs.warnings.append(f"{sub}/ is a link; not followed")
    if _real_dir(repo.blobs):
        for entry in sorted(os.scandir(repo.blobs), key=lambda e: e.name):
            name = entry.name
            partial = name.endswith(INCOMPLETE) and _is_hash(name[: -len(INCOMPLETE)])
            if not (partial or _is_hash(name)):
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
    if _real_dir(repo.snapshots):
        for entry in sorted(os.scandir(repo.snapshots), key=lambda e: e.name):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                rs.snapshots[entry.name] = _scan_snapshot(str(root), Path(entry.path), st)
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
        return BlobFile(path.name, path, st.st_size, _inode(st), st.st_atime, st.st_mtime)
    if not stat.S_ISLNK(st.st_mode):
        return None
    real = os.path.realpath(path)
    if _inside(root, real) and os.path.isfile(real):
        target = os.stat(real)
        return BlobFile(path.name, path, target.st_size, _inode(target), target.st_atime, target.st_mtime, True)
    return BlobFile(path.name, path, 0, None, st.st_atime, st.st_mtime, True, True)


def _is_blobs_folder(root: str, real: str) -> bool:
    repo_folder = os.path.dirname(real)
    return (
        os.path.basename(real) == "blobs"
        and os.path.dirname(repo_folder) == root
        and parse_repo_folder(os.path.basename(repo_folder)) is not None
    )


def _scan_snapshot(root: str, snap: Path, st: os.stat_result) -> SnapshotDir:
    out = SnapshotDir(snap.name, snap, [], st.st_atime, st.st_mtime)
    for dirpath, dirnames, filenames in os.walk(snap):  # never descends into a linked folder
        names = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))] + filenames
        for name in sorted(names):
            entry = _snapshot_entry(root, snap, Path(dirpath, name))
            if entry is not None:
                out.entries.append(entry)
    return out


def _snapshot_entry(root: str, snap: Path, path: Path) -> SnapshotEntry | None:
    try:
        st = os.lstat(path)
        target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    except FileNotFoundError:  # gone while we looked (a pull replacing it)
        return None
    rel = path.relative_to(snap).as_posix()
    if stat.S_ISREG(st.st_mode):
        return SnapshotEntry(rel, path, None, st.st_size, _inode(st), st.st_atime, st.st_mtime)
    if not stat.S_ISLNK(st.st_mode):
        return None
    # The blob a link names is its first hop (the blob may itself be a link, e.g. to a shared store).
    named = os.path.normpath(os.path.join(path.parent, target))
    folder = os.path.realpath(os.path.dirname(named))
    key = os.path.join(folder, os.path.basename(named)) if _is_blobs_folder(root, folder) else None
    escapes = not _inside(root, os.path.realpath(path))
    return SnapshotEntry(rel, path, key, 0, None, st.st_atime, st.st_mtime, escapes)


def _linked_blobs(root: str, repo: RepoDir) -> dict[str, str]:
    """Blob name -> one snapshot entry of ``repo`` that links to it, read now."""
    out: dict[str, str] = {}
    if not _real_dir(repo.snapshots):
        return out
    blobs = str(repo.blobs)
    for snap in repo.snapshots.iterdir():
        if not _real_dir(snap):
            continue
        try:
            entries = _scan_snapshot(root, snap, os.lstat(snap)).entries
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
            "name": _label(self.repo),
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


# -- plans ------------------------------------------------------------------------------------------


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
            "repo": _label(self.repo),
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


@dataclass
class _Decision:
    """What a command wants gone from one repo, before safety and escalation."""

    whole: str | None = None  # reason, when the whole repo goes
    commits: dict[str, str] = field(default_factory=dict)  # snapshot -> reason
    entries: list[tuple[SnapshotEntry, str]] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # ref name -> reason
    blobs: set[str] | None = field(default_factory=set)  # candidate blob names; None: every blob
    incomplete: bool = False
    tidy: bool = False  # also folders that were empty already, and records of revisions already gone


def plan_rm(cache_dir: Path, targets: list[str]) -> Plan:
    """Remove whole repos (``org/name``) or single revisions (``org/name@rev``) and what only they use."""
    scan = scan_cache(cache_dir)
    decisions: dict[str, _Decision] = {}
    for text in targets:
        rs, revision = _find_target(scan, text)
        d = decisions.setdefault(rs.repo.path.name, _Decision())
        if revision is None:
            d.whole = "repo removed"
            continue
        commit = _resolve_revision(rs, revision, text)
        d.commits[commit] = f"revision {revision} removed"
        for name in rs.refs_of(commit):
            d.refs[name] = f"pointed at the removed revision {commit[:12]}"
        if commit in rs.snapshots:
            d.blobs = (d.blobs or set()) | {
                os.path.basename(e.blob_key) for e in rs.snapshots[commit].entries if e.blob_key
            }
    return _build(scan, "rm", decisions, check_busy=False)


def plan_prune(cache_dir: Path) -> Plan:
    """Detached revisions, ``.incomplete`` leftovers, blobs no snapshot links to, empty folders."""
    scan = scan_cache(cache_dir)
    decisions: dict[str, _Decision] = {}
    for rs in scan.repos:
        pinned = set(rs.refs.values())
        d = _Decision(blobs=None, incomplete=True, tidy=True)
        d.commits = {c: "detached revision (no ref points to it)" for c in rs.snapshots if c not in pinned}
        decisions[rs.repo.path.name] = d
    return _build(scan, "prune", decisions, check_busy=True)


def plan_gc(cache_dir: Path, keep: Iterable[Any]) -> Plan:
    """Everything the given locks (:class:`hfa.lockfile.Lock`) do not name."""
    wanted: dict[tuple[str, str], dict[str, set[str]]] = {}
    for lock in keep:
        for entry in lock.repos:
            paths = wanted.setdefault((entry.repo_type, entry.repo_id), {}).setdefault(entry.commit, set())
            paths.update(f.path for f in entry.files)
    scan = scan_cache(cache_dir)
    decisions: dict[str, _Decision] = {}
    for rs in scan.repos:
        d = _Decision(blobs=None, incomplete=True, tidy=True)
        commits = wanted.get((rs.repo.repo_type, rs.repo.repo_id))
        if commits is None:
            d.whole = "not in any kept lock"
        else:
            d.commits = {c: "revision not in any kept lock" for c in rs.snapshots if c not in commits}
            d.refs = {n: "points at a revision that is not kept" for n, c in rs.refs.items() if c not in commits}
            for commit, snap in rs.snapshots.items():
                if commit in commits:
                    d.entries += [
                        (e, "file not in any kept lock") for e in snap.entries if e.rel not in commits[commit]
                    ]
        decisions[rs.repo.path.name] = d
    return _build(scan, "gc", decisions, check_busy=True)


def _find_target(scan: CacheScan, text: str) -> tuple[RepoScan, str | None]:
    from hfa.refs import RepoRef

    name, at, revision = text.strip().partition("@")
    if at and not revision:
        raise UsageError(f"Empty revision in '{text}'", "write REPO to remove a repo, REPO@REV for one revision")
    folder = parse_repo_folder(name) if "--" in name and "/" not in name else None
    if folder is not None:
        repo_type, repo_id = folder
        display = RepoRef(repo_id, repo_type).display
    else:
        ref = RepoRef.parse(text)
        repo_type, repo_id, display = ref.repo_type, ref.repo_id, RepoRef(ref.repo_id, ref.repo_type).display
    path = scan.root / repo_folder_name(repo_id, repo_type)
    if path.is_symlink():
        raise UsageError(
            f"Refusing to delete through {path.name}: the repo folder is a link",
            "remove the link itself with `rm`; hfa never deletes through links",
        )
    rs = scan.find(repo_type, repo_id)
    if rs is None:
        raise NotFound(f"'{display}' is not in the cache {scan.root}", "see what is there with `hfa cache ls`")
    return rs, revision or None


def _resolve_revision(rs: RepoScan, revision: str, text: str) -> str:
    if revision in rs.refs:
        return rs.refs[revision]
    if revision in rs.snapshots:
        return revision
    if len(revision) >= 7 and all(c in "0123456789abcdef" for c in revision):
        matches = [c for c in rs.snapshots if c.startswith(revision)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UsageError(f"'{revision}' matches {len(matches)} revisions of '{text}'", "give more digits")
    raise NotFound(
        f"Revision '{revision}' of '{_label(rs.repo)}' is not in the cache",
        "give a ref or a commit (prefix) that `hfa cache ls` shows",
    )


def _lock_held(path: Path) -> bool:
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


def _busy(root: Path, repo: RepoDir) -> bool:
    folder = root / ".locks" / repo.path.name
    if not _real_dir(folder):
        return False
    return any(_lock_held(p) for p in sorted(folder.glob("*.lock")))


def _build(scan: CacheScan, action: str, decisions: dict[str, _Decision], *, check_busy: bool) -> Plan:
    plan = Plan(action, scan.root)
    root = str(scan.root)
    by_folder = {rs.repo.path.name: rs for rs in scan.repos}
    busy = {name for name, d in decisions.items() if check_busy and _busy(scan.root, by_folder[name].repo)}
    for name in busy:  # keep its snapshots, refs and folders; its blobs are decided by the links left
        d, rs = decisions[name], by_folder[name]
        gone = list(rs.snapshots) if d.whole else list(d.commits)
        for commit in gone:
            snap = rs.snapshots[commit]
            item = Removal("folder", snap.path, _rel(root, snap.path), rs.repo, d.whole or d.commits[commit])
            plan.skipped.append(Skipped(item, BUSY))
        for e, why in d.entries:
            plan.skipped.append(Skipped(Removal("link", e.path, _rel(root, e.path), rs.repo, why), BUSY))
        for ref, why in sorted(d.refs.items()):
            path = rs.repo.refs / ref
            plan.skipped.append(Skipped(Removal("ref", path, _rel(root, path), rs.repo, why), BUSY))
        decisions[name] = _Decision(blobs=None if d.whole else d.blobs, incomplete=d.incomplete)
    for name, d in decisions.items():  # a repo left with no revision goes whole
        rs = by_folder[name]
        if name not in busy and not d.whole and not set(rs.snapshots) - set(d.commits):
            d.whole = "no revision left"
    # Links that stay, in every repo: a blob one of them names is never removed.
    dropped_entries = {str(e.path) for d in decisions.values() for e, _ in d.entries}
    linked: set[str] = set()
    for rs in scan.repos:
        d = decisions.get(rs.repo.path.name, _Decision())
        if d.whole:
            continue
        for commit, snap in rs.snapshots.items():
            if commit not in d.commits:
                linked.update(e.blob_key for e in snap.entries if e.blob_key and str(e.path) not in dropped_entries)
    inodes: set[tuple[int, int]] = set()
    items: list[Removal] = []
    for rs in scan.repos:
        wanted = decisions.get(rs.repo.path.name)
        if wanted is not None:
            items += _repo_removals(root, rs, wanted, linked, inodes, plan, rs.repo.path.name in busy)
    plan.removals = sorted(items, key=lambda r: _PHASE[r.kind])  # stable: folders stay deepest first
    return plan


def _rel(root: str, path: Path | str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _repo_removals(
    root: str,
    rs: RepoScan,
    d: _Decision,
    linked: set[str],
    inodes: set[tuple[int, int]],
    plan: Plan,
    busy: bool,
) -> list[Removal]:
    out: list[Removal] = []
    gone: set[str] = set()

    def add(kind: str, path: Path, reason: str, size: int = 0, inode: tuple[int, int] | None = None) -> None:
        if str(path) in gone:
            return
        parent = os.path.dirname(path)
        if not _inside(root, str(path)) or os.path.realpath(parent) != parent:
            item = Removal(kind, path, _rel(root, path), rs.repo, reason)
            plan.skipped.append(Skipped(item, "refused: a folder on the way is a link"))
            return
        if inode is not None:
            if inode in inodes:
                size = 0
            inodes.add(inode)
        gone.add(str(path))
        out.append(Removal(kind, path, _rel(root, path), rs.repo, reason, size))

    label = _label(rs.repo)
    if d.whole:
        plan.repos.append(label)
        plan.revisions += [f"{label}@{c}" for c in rs.snapshots]
        for kind, path in _walk_repo(rs.repo.path):
            if kind in BLOB_KINDS and rs.key(path.name) in linked:
                plan.skipped.append(
                    Skipped(Removal(kind, path, _rel(root, path), rs.repo, d.whole), "linked from another repo")
                )
                continue
            blob = rs.blobs.get(path.name) if kind == "blob" else None
            size, inode = _size_of(path, blob) if kind in (*BLOB_KINDS, "file") else (0, None)
            add(kind, path, d.whole, size, inode)
        add("folder", rs.repo.path, d.whole)
        return out
    for name, why in sorted(d.refs.items()):
        add("ref", rs.repo.refs / name, why)
    for commit, why in sorted(d.commits.items()):
        plan.revisions.append(f"{label}@{commit}")
        snap = rs.snapshots.get(commit)
        if snap is not None and snap.is_link:
            add("link", snap.path, why)
        elif snap is not None:
            for e in snap.entries:
                add("link" if e.inode is None else "file", e.path, why, e.size, e.inode)
        record = rs.repo.path / HFA_DIR / "trees" / f"{commit}.json"
        if record.is_file() and not record.is_symlink():
            add("record", record, f"record of the removed revision {commit[:12]}")
    trees = rs.repo.path / HFA_DIR / "trees"
    if d.tidy and not busy and _real_dir(trees):
        for record in sorted(trees.glob("*.json")):
            if record.stem not in rs.snapshots and not record.is_symlink():
                add("record", record, "record of a revision no longer in the cache")
    for e, why in d.entries:
        add("link" if e.inode is None else "file", e.path, why, e.size, e.inode)
    candidates = rs.blobs if d.blobs is None else {n: rs.blobs[n] for n in sorted(d.blobs) if n in rs.blobs}
    for name, blob in candidates.items():
        if rs.key(name) not in linked:
            add("blob", blob.path, "no snapshot links to it", blob.size, blob.inode)
    if d.incomplete:
        for part in rs.incomplete:
            add("incomplete", part.path, "partial download left behind", part.size, part.inode)
    if not busy:
        kept = {str(rs.repo.path), str(rs.repo.blobs), str(rs.repo.snapshots)}
        kept |= {str(s.path) for c, s in rs.snapshots.items() if c not in d.commits}
        doomed = tuple(str(s.path) for c, s in rs.snapshots.items() if c in d.commits)
        for folder in _emptied_folders(rs.repo.path, gone, kept, d.tidy, doomed):
            add("folder", Path(folder), "empty folder")
    return out


def _size_of(path: Path, blob: BlobFile | None) -> tuple[int, tuple[int, int] | None]:
    if blob is not None:
        return blob.size, blob.inode
    try:
        st = os.lstat(path)
    except OSError:
        return 0, None
    return (st.st_size, _inode(st)) if stat.S_ISREG(st.st_mode) else (0, None)


def _walk_repo(folder: Path) -> list[tuple[str, Path]]:
    """Everything in a repo folder, deepest first, classified; links are listed, never entered."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        rel_dir = Path(dirpath).relative_to(folder).parts
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames + links):
            out.append((_classify((*rel_dir, name), os.path.islink(os.path.join(dirpath, name))), Path(dirpath, name)))
        if dirpath != str(folder):
            out.append(("folder", Path(dirpath)))
    return out


def _classify(parts: tuple[str, ...], is_link: bool) -> str:
    top, name = parts[0], parts[-1]
    if top == "refs":
        return "ref"
    if top == "snapshots":
        return "link" if is_link else "file"
    if top == "blobs" and len(parts) == 2:
        if _is_hash(name):
            return "blob"
        if name.endswith(INCOMPLETE) and _is_hash(name[: -len(INCOMPLETE)]):
            return "incomplete"
    if top in (HFA_DIR, HFA_META):
        return "record"
    return "file"


def _emptied_folders(top: Path, gone: set[str], kept: set[str], all_empty: bool, doomed: tuple[str, ...]) -> list[str]:
    """Folders under ``top`` that are empty once ``gone`` is removed, deepest first.

    Only folders something was removed from, those inside a removed snapshot (``doomed``),
    or with ``all_empty`` every empty one.
    """
    empty: set[str] = set()
    touched: set[str] = set()
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top, topdown=False):
        children = [os.path.join(dirpath, n) for n in (*dirnames, *filenames)]
        if any(c in gone or c in empty for c in children):
            touched.add(dirpath)
        if dirpath in kept or not all(c in gone or c in empty for c in children):
            continue
        inside = any(dirpath == d or dirpath.startswith(d + os.sep) for d in doomed)
        if all_empty or inside or dirpath in touched:
            empty.add(dirpath)
            out.append(dirpath)
    return out


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
        if not _inside(self.root, text) or os.path.realpath(parent) != parent:
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
        if etag and _lock_held(CacheWriter(plan.cache_dir, item.repo.repo_type, item.repo.repo_id).lock_path(etag)):
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
        if _PHASE[item.kind] < 2:
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
                now = _linked_blobs(str(remover.root), repo) if any(i.kind == "blob" for i in locked) else {}
                for item in locked:
                    if item.kind == "blob" and item.path.name in now:
                        result.skipped.append(Skipped(item, f"in use: now linked from {now[item.path.name]}"))
                    else:
                        remove(item)
    for item in plan.removals:
        if item.kind == "folder":
            remove(item)
    return result
