"""Small value types of a lock: a locked file, who requires an entry (``required-by``, lock format 2), the
facts a policy needs (``facts``) and a task default (``[[task]]``) with its own. The lock model and its TOML form are in :mod:`hfa.lock.lockfile`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hfa.cache.hashing import git_sha1, lfs_pointer
from hfa.resolve.files import RemoteFile
from hfa.resolve.refs import RepoRef

__all__ = ["LockedFacts", "LockedFile", "Requirer", "TaskDefault", "TaskFacts", "requirement_problem"]


@dataclass(frozen=True, order=True)
class Requirer:
    """An entry that needs another (``required-by``), and where it says so."""

    repo_id: str
    repo_type: str
    reason: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.repo_id, self.repo_type)

    @property
    def display(self) -> str:
        return RepoRef(self.repo_id, self.repo_type).display

    def to_json(self) -> dict[str, str]:
        return {"repo": self.display, "reason": self.reason}


@dataclass(frozen=True)
class LockedFacts:
    """What a policy needs to know that the file list does not say, recorded at pin time.

    ``license``: the card's licence ids (lowercase; empty when the card names none);
    ``gated``: the Hub gates the repo; ``remote_code``: loading it runs the repo's code
    (``auto_map`` in config.json, or selected ``*.py`` files).
    """

    license: tuple[str, ...] = ()
    gated: bool = False
    remote_code: bool = False


@dataclass(frozen=True, order=True)
class LockedFile:
    path: str
    size: int
    algo: str  # "sha256" (LFS files) or "git-sha1"
    digest: str

    @property
    def hash(self) -> str:
        return f"{self.algo}:{self.digest}"

    @classmethod
    def from_remote(cls, f: RemoteFile) -> LockedFile:
        if f.lfs_sha256:
            return cls(f.path, f.size, "sha256", f.lfs_sha256)
        return cls(f.path, f.size, "git-sha1", f.blob_id)

    def to_remote(self) -> RemoteFile:
        if self.algo == "sha256":
            return RemoteFile(self.path, self.size, git_sha1(lfs_pointer(self.digest, self.size)), self.digest)
        return RemoteFile(self.path, self.size, self.digest)


@dataclass(frozen=True)
class TaskFacts:
    """A task default as the policy sees it, recorded at pin time: the repo's facts, and of the files
    ``hfa pull`` fetches for it (the default selection) their total ``size`` and the ``pickles``
    among them (with their hashes, so ``pickle = "scan"`` finds them in the cache)."""

    facts: LockedFacts
    size: int
    pickles: tuple[LockedFile, ...] = ()


@dataclass(frozen=True, order=True)
class TaskDefault:
    """The model ``hfa infer TASK`` runs when no ``--model`` is given, pinned (``[[task]]``, version 2)."""

    task: str  # the canonical task name (aliases are resolved before pinning)
    repo_id: str
    revision: str
    commit: str
    # what the policy needs (``facts``); None: a lock written before they were recorded, or an offline pin
    facts: TaskFacts | None = field(default=None, compare=False)

    @property
    def pinned_ref(self) -> RepoRef:
        return RepoRef(self.repo_id, "model", self.commit)

    @property
    def display(self) -> str:
        return RepoRef(self.repo_id, "model", self.revision).display


def requirement_problem(repos: Sequence[Any]) -> tuple[Any, str] | None:
    """The first entry whose ``required-by`` no writer of hfa could have written, and what is wrong.

    ``repos`` are lock entries (``key``, ``display``, ``required_by``, ``direct``). hfa writes
    ``required-by`` only for entries it keeps, and drops an entry nothing pinned by name needs;
    a hand-edited lock can say otherwise, and then ``hfa pin --upgrade`` or ``--remove`` would
    drop entries silently (a cycle of dependencies that nothing pinned by name needs: all of them).
    """
    keys = {r.key for r in repos}
    for r in repos:
        for q in r.required_by:
            if q.key == r.key:
                return r, "`required-by` names the entry itself"
            if q.key not in keys:
                return r, f"`required-by` names {q.display}, which the lock does not hold"
    reached = {r.key for r in repos if r.direct}
    grown = True
    while grown:
        grown = False
        for r in repos:
            if r.key not in reached and any(q.key in reached for q in r.required_by):
                reached.add(r.key)
                grown = True
    for r in repos:
        if r.key not in reached:
            return (
                r,
                "only a dependency (no `direct = true`), but nothing pinned by name requires it (a cycle of `required-by`?)",
            )
    return None
