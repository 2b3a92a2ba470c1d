"""``hfa pin`` as library calls: add, normalise, upgrade, remove and check lock entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.config import Settings
from hfa.errors import AccessDenied, CheckFailed, HfaError, NotFound, UsageError
from hfa.lock import lockfile
from hfa.lock.lockfile import Lock, LockedFile, LockedRepo, RepoDiff
from hfa.pull import open_source, plan
from hfa.resolve.files import RemoteFile
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions


def resolve_entry(
    settings: Settings, ref: RepoRef, options: SelectOptions, *, fit_options: bool = False
) -> tuple[LockedRepo, list[str]]:
    """Resolve ``ref`` and apply ``options``: the lock entry it would get.

    ``fit_options``: ``--quant`` applies only if the repo has GGUF files (given once for many repos).
    """
    from hfa.policy.facts import record_facts

    source = open_source(settings)
    resolved, selection, warnings, options = plan(settings, ref, options, fit_options=fit_options, source=source)
    files = tuple(sorted(LockedFile.from_remote(resolved.files[p]) for p in selection.selected))

    def read(f: RemoteFile) -> bytes | None:
        try:
            return source.read_small(ref, resolved, f)
        except CheckFailed:  # offline, and not in the cache
            return None

    entry = LockedRepo(
        repo_id=ref.repo_id,
        repo_type=ref.repo_type,
        revision=ref.revision_or_default,
        commit=resolved.commit,
        selection=options,
        files=files,
        # Offline, the cache cannot say whether the Hub gates the repo: no facts rather than a wrong one
        # (a policy check then reads what the cache knows and fails closed on the rest).
        facts=record_facts(resolved, selection.selected, read) if resolved.source != "cache" else None,
    )
    return entry, warnings


def _enforce(lock_path: Path, entries: list[LockedRepo], result: PinResult) -> None:
    """Refuse (PolicyViolation, the lock untouched) entries the policy beside the lock forbids;
    exceptions that clear a violation become warnings, so the output shows them."""
    from hfa.policy import enforce, load_policy

    cleared = enforce(load_policy(lock_path), entries, doing=f"{lock_path} left unchanged")
    result.warnings += [f"policy: {v.text()}" for v in cleared]


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


@dataclass(frozen=True)
class PinRequest:
    """One repo to pin and its selection; ``fit`` applies ``--quant`` only where the repo has GGUF files."""

    ref: RepoRef
    options: SelectOptions
    fit: bool = False


def pin(settings: Settings, lock_path: Path, ref: RepoRef, options: SelectOptions) -> PinResult:
    return pin_many(settings, lock_path, [PinRequest(ref, options)])


def pin_many(settings: Settings, lock_path: Path, requests: list[PinRequest]) -> PinResult:
    """Resolve every request, then write the lock once: all or nothing.

    A repo that fails raises its error, naming the repo, and the lock is left as it was.
    """
    from hfa.policy import load_policy

    lock = lockfile.read(lock_path, missing_ok=True)
    load_policy(lock_path)  # a broken policy fails (exit 2) before any request
    result = PinResult(lock_path)
    entries: list[LockedRepo] = []
    for request in requests:
        try:
            entry, warnings = resolve_entry(settings, request.ref, request.options, fit_options=request.fit)
        except HfaError as exc:
            raise _naming(exc, request.ref, lock_path if len(requests) > 1 else None) from None
        result.warnings += warnings
        result.changes.append(lockfile.diff(lock.get(request.ref.repo_id, request.ref.repo_type), entry))
        lock = lock.upsert(entry)
        entries.append(entry)
    _enforce(lock_path, entries, result)
    result.written = lockfile.write(lock_path, lock)
    return result


def _naming(exc: HfaError, ref: RepoRef, unchanged: Path | None) -> HfaError:
    """``exc`` with the repo it is about in its message (and, for several repos, that the lock was kept)."""
    if ref.repo_id not in exc.message:
        exc.message = f"{ref.display}: {exc.message}"
    if unchanged is not None:
        exc.message += f" ({unchanged} left unchanged)"
    exc.args = (exc.message,)
    return exc


def normalise(lock_path: Path) -> PinResult:
    """Rewrite an existing lock in its normal form, without network."""
    lock = lockfile.read(lock_path)
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
    from hfa.policy import load_policy

    lock = lockfile.read(lock_path)
    load_policy(lock_path)  # a broken policy fails (exit 2) before any request
    result = PinResult(lock_path)
    fresh_entries: list[LockedRepo] = []
    for entry in _select_entries(lock, lock_path, refs):
        try:
            fresh, warnings = resolve_entry(settings, entry.ref, entry.selection)
        except HfaError as exc:
            raise _naming(exc, entry.ref, lock_path) from None
        result.warnings += warnings
        result.changes.append(lockfile.diff(entry, fresh))
        lock = lock.upsert(fresh)
        fresh_entries.append(fresh)
    _enforce(lock_path, fresh_entries, result)
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
