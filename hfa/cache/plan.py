"""``hfa cache``: list, remove, prune and garbage-collect the huggingface_hub cache, safely.

Every destructive command first builds a :class:`Plan` (exactly which paths go, why, and the
bytes), which ``--dry-run`` shows and :func:`apply` carries out. Nothing here prints.

This module plans (``plan_rm``, ``plan_prune``, ``plan_gc``); reading the cache lives in
:mod:`hfa.cache.inventory` (``list_cache``) and carrying a plan out in :mod:`hfa.cache.delete`
(``preview``, ``apply``); :mod:`hfa.cache` offers all of them.

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

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.cache.delete import BLOB_KINDS, PHASE, Plan, Removal, Skipped, lock_held
from hfa.cache.hashing import is_blob_name
from hfa.cache.inventory import INCOMPLETE, BlobFile, CacheScan, RepoScan, SnapshotEntry, inode_of, scan_cache
from hfa.cache.layout import HFA_DIR, HFA_META, RepoDir, is_inside, is_real_dir, parse_repo_folder, repo_folder_name
from hfa.errors import NotFound, UsageError

__all__ = ["BUSY", "plan_gc", "plan_prune", "plan_rm"]

BUSY = "in use: a download into this repo is running; run this again when it has finished"


# -- plans ------------------------------------------------------------------------------------------


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
    """Everything the given locks (:class:`hfa.lock.lockfile.Lock`) do not name."""
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
    from hfa.resolve.refs import RepoRef

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
        f"Revision '{revision}' of '{rs.repo.label}' is not in the cache",
        "give a ref or a commit (prefix) that `hfa cache ls` shows",
    )


def _busy(root: Path, repo: RepoDir) -> bool:
    folder = root / ".locks" / repo.path.name
    if not is_real_dir(folder):
        return False
    return any(lock_held(p) for p in sorted(folder.glob("*.lock")))


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
    plan.removals = sorted(items, key=lambda r: PHASE[r.kind])  # stable: folders stay deepest first
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
        if not is_inside(root, str(path)) or os.path.realpath(parent) != parent:
            item = Removal(kind, path, _rel(root, path), rs.repo, reason)
            plan.skipped.append(Skipped(item, "refused: a folder on the way is a link"))
            return
        if inode is not None:
            if inode in inodes:
                size = 0
            inodes.add(inode)
        gone.add(str(path))
        out.append(Removal(kind, path, _rel(root, path), rs.repo, reason, size))

    label = rs.repo.label
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
    if d.tidy and not busy and is_real_dir(trees):
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
    return (st.st_size, inode_of(st)) if stat.S_ISREG(st.st_mode) else (0, None)


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
        if is_blob_name(name):
            return "blob"
        if name.endswith(INCOMPLETE) and is_blob_name(name[: -len(INCOMPLETE)]):
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
