"""``hfa pin`` as library calls: add, normalise, upgrade, remove and check lock entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa import lockfile
from hfa.config import Settings
from hfa.errors import AccessDenied, CheckFailed, HfaError, NotFound, UsageError
from hfa.lockfile import Lock, LockedFile, LockedRepo, RepoDiff
from hfa.pull import plan
from hfa.refs import RepoRef
from hfa.select import SelectOptions


def resolve_entry(settings: Settings, ref: RepoRef, options: SelectOptions) -> tuple[LockedRepo, list[str]]:
    """Resolve ``ref`` and apply ``options``: the lock entry it would get."""
    resolved, selection, warnings = plan(settings, ref, options)
    files = tuple(sorted(LockedFile.from_remote(resolved.files[p]) for p in selection.selected))
    entry = LockedRepo(
        repo_id=ref.repo_id,
        repo_type=ref.repo_type,
        revision=ref.revision_or_default,
        commit=resolved.commit,
        selection=options,
        files=files,
    )
    return entry, warnings


@dataclass
class PinResult:
    lock_path: Path
    changes: list[RepoDiff] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    written: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": str(self.lock_path),
            "written": self.written,
            "changes": [c.to_json() for c in self.changes],
            "removed": self.removed,
            "warnings": self.warnings,
        }


def pin(settings: Settings, lock_path: Path, ref: RepoRef, options: SelectOptions) -> PinResult:
    lock = lockfile.read(lock_path, missing_ok=True)
    entry, warnings = resolve_entry(settings, ref, options)
    change = lockfile.diff(lock.get(ref.repo_id, ref.repo_type), entry)
    written = lockfile.write(lock_path, lock.upsert(entry))
    return PinResult(lock_path, [change], written=written, warnings=warnings)


def normalise(lock_path: Path) -> PinResult:
    lock = lockfile.read(lock_path, missing_ok=True)
    return PinResult(lock_path, written=lockfile.write(lock_path, lock))


def remove(lock_path: Path, ref: RepoRef) -> PinResult:
    lock = lockfile.read(lock_path)
    if lock.get(ref.repo_id, ref.repo_type) is None:
        raise UsageError(f"'{ref.display}' is not in {lock_path}", "see the repos it holds with `hfa pin --check`")
    written = lockfile.write(lock_path, lock.remove(ref.repo_id, ref.repo_type))
    return PinResult(lock_path, removed=[ref.display], written=written)


def _select_entries(lock: Lock, lock_path: Path, refs: list[RepoRef]) -> list[LockedRepo]:
    if not refs:
        return list(lock.repos)
    entries = []
    for ref in refs:
        entry = lock.get(ref.repo_id, ref.repo_type)
        if entry is None:
            raise UsageError(f"'{ref.display}' is not in {lock_path}", f"add it with `hfa pin {ref.display}`")
        entries.append(entry)
    return entries


def upgrade(settings: Settings, lock_path: Path, refs: list[RepoRef]) -> PinResult:
    """Re-resolve the asked-for revisions (all, or the named repos) and report what moved."""
    lock = lockfile.read(lock_path)
    result = PinResult(lock_path)
    for entry in _select_entries(lock, lock_path, refs):
        fresh, warnings = resolve_entry(settings, entry.ref, entry.selection)
        result.warnings += warnings
        result.changes.append(lockfile.diff(entry, fresh))
        lock = lock.upsert(fresh)
    result.written = lockfile.write(lock_path, lock)
    return result


@dataclass
class CheckResult:
    lock_path: Path
    drift: list[RepoDiff]
    checked: int

    @property
    def current(self) -> bool:
        return not any(d.moved for d in self.drift)

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": str(self.lock_path),
            "current": self.current,
            "checked": self.checked,
            "drift": [d.to_json() for d in self.drift if d.moved],
        }


def check(settings: Settings, lock_path: Path, refs: list[RepoRef]) -> CheckResult:
    """Compare every entry with upstream; write nothing."""
    lock = lockfile.read(lock_path)
    entries = _select_entries(lock, lock_path, refs)
    drift: list[RepoDiff] = []
    for entry in entries:
        try:
            fresh, _ = resolve_entry(settings, entry.ref, entry.selection)
        except (NotFound, AccessDenied, CheckFailed, UsageError) as exc:
            drift.append(
                RepoDiff(
                    repo=entry.display.split("@")[0],
                    revision=entry.revision,
                    old_commit=entry.commit,
                    new_commit=None,
                    error=exc.message,
                )
            )
            continue
        except HfaError:
            raise
        drift.append(lockfile.diff(entry, fresh))
    return CheckResult(lock_path, drift, len(entries))
