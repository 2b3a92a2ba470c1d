"""The one snapshot walker and its containment rule; everything that reads a snapshot uses it.

**The rule.** A snapshot file counts only if it resolves to a regular file directly inside this
repo's own ``blobs/`` folder, named like a hash (:data:`BLOB`), or is a regular file with no link
anywhere on its way (:data:`COPY`: huggingface_hub copies where symlinks are unavailable, and
``hfa serve`` serves copies). The cache root is resolved once; the repo's folders are derived from
it by name and never resolved, so a linked repo folder, ``blobs/`` or ``snapshots/`` cannot widen
what counts as inside: nothing in another repo's ``blobs/``, elsewhere in the cache or outside it
counts.

Everything else is yielded too, with what is wrong, so ``hfa verify`` can report it and every
other reader skips it (``entry.counts`` is False):

* :data:`ESCAPES` -- a link (to a file or a folder) that leads out of the cache;
* :data:`DANGLING` -- a link to nothing (or a loop of links);
* :data:`NOT_A_BLOB` -- leads somewhere inside the cache that is not a blob of this repo (another
  repo's blobs, a file elsewhere, a FIFO or device, a name that is not a hash), or is itself
  neither a regular file nor a link;
* :data:`FOLDER_LINK` -- a link to a folder inside the cache: never entered.

Linked folders are never entered. A snapshot folder reached through a link (the repo folder,
``snapshots/`` or the snapshot folder itself is one) yields a single entry for itself, with
``rel`` empty, and nothing inside it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hfa.cache.hashing import is_blob_name
from hfa.cache.layout import RepoDir, is_inside

__all__ = [
    "BLOB",
    "COPY",
    "COUNTED",
    "DANGLING",
    "ESCAPES",
    "FOLDER_LINK",
    "NOT_A_BLOB",
    "SnapshotFile",
    "snapshot_file",
    "walk_snapshot",
]

BLOB = "blob"
COPY = "copy"
ESCAPES = "escapes"
DANGLING = "dangling"
NOT_A_BLOB = "not-a-blob"
FOLDER_LINK = "folder-link"
COUNTED = (BLOB, COPY)

OnError = Callable[[Path, OSError], None]  # told of a folder or file that exists but cannot be read


@dataclass(frozen=True)
class SnapshotFile:
    """One entry of a snapshot folder and what the containment rule makes of it."""

    rel: str  # POSIX path inside the snapshot ("" for the snapshot folder itself)
    path: Path  # the entry as found in the snapshot folder, not resolved
    kind: str  # BLOB, COPY, or what is wrong: ESCAPES, DANGLING, NOT_A_BLOB, FOLDER_LINK
    real: Path | None  # the file it stands for: set only when it counts (BLOB, COPY)
    resolved: str  # where it leads, every link resolved (for messages)
    lstat: os.stat_result  # the entry's own status (a link's, not its target's)
    link: str | None = None  # a link's own text (``os.readlink``)
    folder: bool = False  # it is a link to a folder (or the snapshot folder itself, reached by a link)

    @property
    def counts(self) -> bool:
        """It passes the rule: a blob of this repo, or a plain copy."""
        return self.kind in COUNTED

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.lstat.st_mode)


class _Places:
    """Where things must be for one snapshot: derived by name from the resolved cache root."""

    def __init__(self, repo: RepoDir, commit: str) -> None:
        self.cache = os.path.realpath(repo.cache_dir)
        repo_root = os.path.join(self.cache, repo.path.name)
        self.blobs = os.path.join(repo_root, "blobs")
        self.top = os.path.join(repo_root, "snapshots", commit)

    def classify(self, path: Path, rel: str, st: os.stat_result, on_error: OnError | None) -> SnapshotFile:
        """What the rule makes of one entry (not a real folder) whose own status is ``st``."""
        text = str(path)
        real = os.path.realpath(text)
        if stat.S_ISREG(st.st_mode):
            if real == os.path.join(self.top, *rel.split("/")):
                return SnapshotFile(rel, path, COPY, Path(real), real, st)
            kind = NOT_A_BLOB if is_inside(self.cache, real) else ESCAPES  # a link on its way (a race)
            return SnapshotFile(rel, path, kind, None, real, st)
        if not stat.S_ISLNK(st.st_mode):  # a FIFO, socket or device in the snapshot
            return SnapshotFile(rel, path, NOT_A_BLOB, None, real, st)
        try:
            link: str | None = os.readlink(text)
        except OSError:
            link = None
        try:
            target: os.stat_result | None = os.stat(real)
        except OSError as exc:
            target = None
            if on_error is not None and not isinstance(exc, FileNotFoundError) and is_inside(self.cache, real):
                on_error(Path(real), exc)
        folder = target is not None and stat.S_ISDIR(target.st_mode)
        if not is_inside(self.cache, real):
            kind = ESCAPES
        elif target is None:
            kind = DANGLING
        elif folder:
            kind = FOLDER_LINK
        elif (
            os.path.dirname(real) == self.blobs
            and is_blob_name(os.path.basename(real))
            and stat.S_ISREG(target.st_mode)
        ):
            return SnapshotFile(rel, path, BLOB, Path(real), real, st, link)
        else:
            kind = NOT_A_BLOB
        return SnapshotFile(rel, path, kind, None, real, st, link, folder)

    def linked_top(self, snap: Path, st: os.stat_result) -> SnapshotFile | None:
        """The snapshot folder as one entry when a link is on its way to it; None when it is a plain folder."""
        real = os.path.realpath(snap)
        if real == self.top:
            return None
        try:
            link = os.readlink(snap) if stat.S_ISLNK(st.st_mode) else None
        except OSError:
            link = None
        kind = FOLDER_LINK if is_inside(self.cache, real) else ESCAPES
        return SnapshotFile("", snap, kind, None, real, st, link, True)


def _valid_commit(commit: str) -> bool:
    return (
        bool(commit) and commit not in (".", "..") and "/" not in commit and os.sep not in commit and "\0" not in commit
    )


def walk_snapshot(repo: RepoDir, commit: str, on_error: OnError | None = None) -> Iterator[SnapshotFile]:
    """Every entry of ``snapshots/<commit>`` (files, links, special files; not real folders), sorted by ``rel``.

    Nothing when the snapshot does not exist. ``on_error(path, exc)`` hears of a folder or a
    blob that exists but cannot be read (a permission); the walk goes on without it.
    """
    if not _valid_commit(commit):
        return
    places = _Places(repo, commit)
    snap = repo.snapshot(commit)
    try:
        st = os.lstat(snap)
    except OSError as exc:
        if on_error is not None and not isinstance(exc, FileNotFoundError):
            on_error(snap, exc)
        return
    top = places.linked_top(snap, st)
    if top is not None:
        yield top
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    found: list[SnapshotFile] = []
    folders = [(snap, "")]
    while folders:
        folder, prefix = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            if on_error is not None and not isinstance(exc, FileNotFoundError):
                on_error(folder, exc)
            continue
        for entry in entries:
            try:
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # gone while we looked (a pull replacing it)
                continue
            except OSError as exc:
                if on_error is not None:
                    on_error(Path(entry.path), exc)
                continue
            rel = prefix + entry.name
            if stat.S_ISDIR(est.st_mode):
                folders.append((Path(entry.path), rel + "/"))
            else:
                found.append(places.classify(Path(entry.path), rel, est, on_error))
    found.sort(key=lambda e: e.rel)
    yield from found


def snapshot_file(repo: RepoDir, commit: str, rel: str) -> SnapshotFile | None:
    """The one entry ``rel`` of ``snapshots/<commit>`` as :func:`walk_snapshot` yields it; None if it yields none.

    None for an entry that does not exist, is a real folder, or sits behind a linked folder (the
    walker never enters one), and for a ``rel`` that is not a plain relative path.
    """
    from hfa.cache.layout import check_relpath
    from hfa.errors import UsageError

    if not _valid_commit(commit):
        return None
    try:
        parts = check_relpath(rel).parts
    except UsageError:
        return None
    places = _Places(repo, commit)
    snap = repo.snapshot(commit)
    path = snap.joinpath(*parts)
    if os.path.realpath(path.parent) != os.path.join(places.top, *parts[:-1]):
        return None  # a link on the way: the snapshot folder or a folder inside it
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    return places.classify(path, rel, st, None)
