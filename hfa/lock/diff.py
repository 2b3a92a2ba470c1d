"""What moved between two lock entries: the diff ``hfa pin --upgrade`` prints and ``--check`` reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfa.lock.lockfile import LockedRepo

__all__ = ["RepoDiff", "diff"]


@dataclass
class RepoDiff:
    """What moved between a locked entry and a fresh resolution (or between two entries)."""

    repo: str
    revision: str
    old_commit: str | None
    new_commit: str | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # path, old hash, new hash
    error: str | None = None
    selection_changed: bool = False

    @property
    def moved(self) -> bool:
        return bool(
            self.error
            or self.old_commit != self.new_commit
            or self.added
            or self.removed
            or self.changed
            or self.selection_changed
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "revision": self.revision,
            "old_commit": self.old_commit,
            "new_commit": self.new_commit,
            "added": self.added,
            "removed": self.removed,
            "changed": [{"path": p, "old": o, "new": n} for p, o, n in self.changed],
            "selection_changed": self.selection_changed,
            "error": self.error,
        }

    def lines(self) -> list[str]:
        """A readable diff."""
        old = self.old_commit[:12] if self.old_commit else "(none)"
        new = self.new_commit[:12] if self.new_commit else "(none)"
        head = f"{self.repo}@{self.revision}: "
        if self.error:
            out = [head + f"locked {old}, upstream: {self.error}"]
        elif self.old_commit != self.new_commit:
            out = [head + f"{old} → {new}"]
        else:
            out = [head + f"{old} (same commit)"]
        if self.selection_changed:
            out.append("  * selection options changed")
        out += [f"  + {p}" for p in self.added]
        out += [f"  - {p}" for p in self.removed]
        out += [f"  ~ {p} ({o} → {n})" for p, o, n in self.changed]
        return out


def diff(old: LockedRepo | None, new: LockedRepo) -> RepoDiff:
    before = {f.path: f for f in old.files} if old else {}
    after = {f.path: f for f in new.files}
    return RepoDiff(
        repo=new.ref.display.split("@")[0],
        revision=new.revision,
        old_commit=old.commit if old else None,
        new_commit=new.commit,
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        changed=sorted(
            (p, _short(before[p].hash), _short(after[p].hash))
            for p in set(before) & set(after)
            if (before[p].hash, before[p].size) != (after[p].hash, after[p].size)
        ),
        selection_changed=old is not None and old.selection != new.selection,
    )


def _short(h: str) -> str:
    algo, _, digest = h.partition(":")
    return f"{algo}:{digest[:12]}"
