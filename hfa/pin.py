"""``hfa pin`` as library calls: add, normalise, upgrade, remove and check lock entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.config import Settings
from hfa.errors import AccessDenied, CheckFailed, HfaError, NotFound, UsageError
from hfa.lock import lockfile
from hfa.lock.lockfile import Lock, LockedFile, LockedRepo, RepoDiff
from hfa.pull import plan
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions

if TYPE_CHECKING:
    from hfa.infer.defaults import TaskChange


def resolve_entry(
    settings: Settings, ref: RepoRef, options: SelectOptions, *, fit_options: bool = False
) -> tuple[LockedRepo, list[str]]:
    """Resolve ``ref`` and apply ``options``: the lock entry it would get.

    ``fit_options``: ``--quant`` applies only if the repo has GGUF files (given once for many repos).
    """
    resolved, selection, warnings, options = plan(settings, ref, options, fit_options=fit_options)
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
    tasks: list[TaskChange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": str(self.lock_path),
            "written": self.written,
            "changes": [c.to_json() for c in self.changes],
            "removed": self.removed,
            "warnings": self.warnings,
            "tasks": [t.to_json() for t in self.tasks],
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
    lock = lockfile.read(lock_path, missing_ok=True)
    result = PinResult(lock_path)
    for request in requests:
        try:
            entry, warnings = resolve_entry(settings, request.ref, request.options, fit_options=request.fit)
        except HfaError as exc:
            raise _naming(exc, request.ref, lock_path if len(requests) > 1 else None) from None
        result.warnings += warnings
        result.changes.append(lockfile.diff(lock.get(request.ref.repo_id, request.ref.repo_type), entry))
        lock = lock.upsert(entry)
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


def _configured_tasks(lock_path: Path) -> dict[str, str]:
    """``[infer.tasks]`` of the ``hfa.toml`` beside the lock (canonical task -> REPO[@REV])."""
    from hfa.infer.defaults import configured_tasks
    from hfa.project import project_for_lock

    project = project_for_lock(lock_path)
    return configured_tasks(project.table("infer"), project.origin or "hfa.toml")


def normalise(lock_path: Path, settings: Settings | None = None) -> PinResult:
    """Rewrite an existing lock in its normal form; without network unless ``[infer.tasks]`` names a
    task whose default is missing or changed (then that one is resolved, and the lock may be created)."""
    configured = _configured_tasks(lock_path)
    lock = lockfile.read(lock_path, missing_ok=bool(configured))
    result = PinResult(lock_path)
    if configured:
        from hfa.infer.defaults import sync_tasks

        if settings is None:
            raise UsageError("resolving [infer.tasks] needs settings", "call normalise(lock_path, settings)")
        lock, result.tasks = sync_tasks(settings, lock, configured)
    result.written = lockfile.write(lock_path, lock)
    return result


def pin_task(settings: Settings, lock_path: Path, task: str, spec: str | None) -> PinResult:
    """``hfa pin --task TASK [REPO[@REV]]``: set one task default (``spec`` None: the endpoint's recommended model)."""
    from hfa.infer.defaults import TaskChange, canonical_task, resolve_default

    lock = lockfile.read(lock_path, missing_ok=True)
    name = canonical_task(task)
    new = resolve_default(settings, name, spec)
    result = PinResult(lock_path, tasks=[TaskChange(name, lock.task(name), new)])
    configured = _configured_tasks(lock_path).get(name)
    if configured is not None and RepoRef.parse(configured).display != new.display:
        result.warnings.append(
            f"hfa.toml maps {name} to {configured}: the next `hfa pin` puts that back (edit [infer.tasks] to keep {new.display})"
        )
    result.written = lockfile.write(lock_path, lock.set_task(new))
    return result


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


def upgrade(settings: Settings, lock_path: Path, refs: list[RepoRef], task: str | None = None) -> PinResult:
    """Re-resolve the asked-for revisions (all, or the named repos; ``task``: only that task default) and
    report what moved. Without names, the task defaults move too (to hfa.toml's model where it names one)."""
    configured = _configured_tasks(lock_path)
    lock = lockfile.read(lock_path, missing_ok=bool(configured))
    result = PinResult(lock_path)
    if task is not None or not refs:
        from hfa.infer.defaults import canonical_task, sync_tasks

        lock, result.tasks = sync_tasks(
            settings, lock, configured, upgrade=True, only=canonical_task(task) if task else None
        )
        if task is not None:
            result.written = lockfile.write(lock_path, lock)
            return result
    for entry in _select_entries(lock, lock_path, refs):
        try:
            fresh, warnings = resolve_entry(settings, entry.ref, entry.selection)
        except HfaError as exc:
            raise _naming(exc, entry.ref, lock_path) from None
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
