"""Small value types of a lock entry: who requires it (``required-by``, lock format 2) and the
facts a policy needs (``facts``). The lock model and its TOML form are in :mod:`hfa.lock.lockfile`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hfa.resolve.refs import RepoRef

__all__ = ["LockedFacts", "Requirer", "requirement_problem"]


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
