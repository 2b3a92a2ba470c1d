"""Small value types of a lock entry: who requires it (``required-by``, lock format 2) and the
facts a policy needs (``facts``). The lock model and its TOML form are in :mod:`hfa.lock.lockfile`."""

from __future__ import annotations

from dataclasses import dataclass

from hfa.resolve.refs import RepoRef

__all__ = ["LockedFacts", "Requirer"]


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
