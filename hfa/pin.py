"""``hfa pin`` as library calls: add, normalise, upgrade, remove and check lock entries.

Pinning a repository pins its closure (:mod:`hfa.closure`): every repository it requires is an
entry of its own whose ``required-by`` names who needs it and why. A dependency already in the
lock is kept where it is (``--upgrade`` moves it); an entry nothing direct requires any more is
dropped when the lock is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.config import Settings
from hfa.errors import AccessDenied, CheckFailed, HfaError, NotFound, UsageError
from hfa.lock import lockfile
from hfa.lock.diff import RepoDiff, diff
from hfa.lock.lockfile import Lock, LockedFile, LockedRepo, Requirer
from hfa.pull import open_source, plan
from hfa.resolve.deps import Dependencies, DependencyError, Requirement
from hfa.resolve.files import RemoteFile
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions

if TYPE_CHECKING:
    from hfa.infer.defaults import TaskChange, TaskDrift
    from hfa.resolve.source import Source

Key = tuple[str, str]


def resolve_entry(
    settings: Settings,
    ref: RepoRef,
    options: SelectOptions,
    *,
    fit_options: bool = False,
    source: Source | None = None,
) -> tuple[LockedRepo, list[str]]:
    """Resolve ``ref`` and apply ``options``: the lock entry it would get.

    ``fit_options``: ``--quant`` applies only if the repo has GGUF files (given once for many repos).
    """
    entry, warnings, _ = _resolve(settings, ref, options, fit_options=fit_options, source=source, deps=False)
    return entry, warnings


def _resolve(
    settings: Settings, ref: RepoRef, options: SelectOptions, *, fit_options: bool, source: Source | None, deps: bool
) -> tuple[LockedRepo, list[str], Dependencies]:
    """The entry of ``ref``, the warnings, and (with ``deps``) what it requires."""
    from hfa.closure import requirements
    from hfa.policy.facts import record_facts

    source = source or open_source(settings)
    resolved, selection, warnings, options = plan(settings, ref, options, fit_options=fit_options, source=source)
    found = requirements(source, resolved) if deps else Dependencies()
    warnings += [f"{ref.repo_id}: {note}" for note in found.notes]
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
    return entry, warnings, found


def _enforce(lock_path: Path, entries: list[LockedRepo], result: PinResult, tasks: Sequence[TaskChange] = ()) -> None:
    """Refuse (PolicyViolation, the lock untouched) entries, and task defaults resolved here (``tasks``),
    that the policy beside the lock forbids; exceptions that clear a violation become warnings."""
    from hfa.policy import enforce, load_policy

    fresh = [c.new for c in tasks if c.new is not c.old]  # a default kept as it was is not judged again
    cleared = enforce(load_policy(lock_path), entries, doing=f"{lock_path} left unchanged", tasks=fresh)
    result.warnings += [f"policy: {v.text()}" for v in cleared]


@dataclass
class PinResult:
    lock_path: Path
    changes: list[RepoDiff] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    written: bool = False
    warnings: list[str] = field(default_factory=list)
    required_by: dict[str, list[Requirer]] = field(default_factory=dict)  # repo -> who requires it, and why
    tasks: list[TaskChange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": str(self.lock_path),
            "written": self.written,
            "changes": [
                {**c.to_json(), "required_by": [r.to_json() for r in self.required_by.get(c.repo, [])]}
                for c in self.changes
            ],
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


def pin(settings: Settings, lock_path: Path, ref: RepoRef, options: SelectOptions, *, deps: bool = True) -> PinResult:
    return pin_many(settings, lock_path, [PinRequest(ref, options)], deps=deps)


def pin_many(settings: Settings, lock_path: Path, requests: list[PinRequest], *, deps: bool = True) -> PinResult:
    """Resolve every request (and, with ``deps``, its closure), then write the lock once: all or nothing.

    A repo that fails raises its error, naming the repo (and, for a dependency, who requires
    it), and the lock is left as it was.
    """
    from hfa.policy import load_policy

    lock = lockfile.read(lock_path, missing_ok=True)
    load_policy(lock_path)  # a broken policy fails (exit 2) before any request
    return _closure(settings, lock_path, lock, requests, deps=deps, upgrading=False)


def _closure(
    settings: Settings, lock_path: Path, lock: Lock, requests: list[PinRequest], *, deps: bool, upgrading: bool
) -> PinResult:
    """Resolve ``requests`` and what they require, rewrite the ``required-by`` of what was resolved, write once.

    Pinning keeps a dependency the lock already holds at a compatible revision (not resolved
    again); upgrading resolves every repository it reaches.
    """
    from hfa.closure import Walk

    source = open_source(settings)
    result = PinResult(lock_path)
    asked = {r.ref.key: r for r in requests}
    fresh: dict[Key, LockedRepo] = {}
    expanded: set[Key] = set()
    several = lock_path if len(requests) > 1 else None

    def visit(ref: RepoRef) -> list[Requirement] | None:
        key = ref.key
        request, existing = asked.get(key), lock.get(*key)
        if request is None and existing is not None and not upgrading:
            if ref.revision in (None, existing.revision, existing.commit):
                return None  # a dependency already pinned: kept where it is
            others = {r.key for r in existing.required_by} - set(asked) - set(fresh)
            if existing.direct or others:
                who = "you pinned it" if existing.direct else f"{', '.join(k[0] for k in sorted(others))} requires it"
                raise DependencyError(
                    f"{ref.display} is required, but the lock holds {existing.display} ({who})",
                    f"pin {ref.repo_id} at one revision that suits both, or pin with --no-deps",
                )
        options = request.options if request else existing.selection if existing else SelectOptions()
        try:
            entry, warnings, found = _resolve(
                settings, ref, options, fit_options=bool(request and request.fit), source=source, deps=deps
            )
        except HfaError as exc:
            raise (_naming(exc, ref, several) if request else exc) from None
        fresh[key] = entry
        result.warnings += warnings
        if not deps:
            return []
        expanded.add(key)
        return found.requires

    walk = Walk(visit, revision_of=lambda repo_id: e.revision if (e := lock.get(repo_id)) else None)
    try:
        walk.run([r.ref for r in requests])
    except HfaError as exc:
        if several is not None and "left unchanged" not in exc.message:
            exc.message += f" ({several} left unchanged)"
            exc.args = (exc.message,)
        raise
    # Who requires what: the edges of every repository resolved here are replaced by the new ones.
    edges = {r.key: {q for q in r.required_by if q.key not in expanded} for r in lock.repos}
    for edge in walk.edges:
        edges.setdefault(edge.target.key, set()).add(
            Requirer(edge.requirer.repo_id, edge.requirer.repo_type, edge.requirement.reason)
        )
    new = lock
    for key, entry in fresh.items():
        old = lock.get(*key)
        direct = (old.direct if old else True) if upgrading else (key in asked or bool(old and old.direct))
        result.changes.append(diff(old, entry))
        new = new.upsert(replace(entry, direct=direct))
    new = replace(new, repos=tuple(replace(r, required_by=tuple(edges.get(r.key, ()))) for r in new.repos))
    new, dropped = _reachable(new)
    result.removed = [r.display for r in dropped]
    for change in result.changes:
        kept = new.get(*_split(change.repo))
        if kept is not None and kept.required_by:
            result.required_by[change.repo] = list(kept.required_by)
    # The policy beside the lock judges every entry resolved here, dependencies included.
    _enforce(lock_path, [new.get(*key) or entry for key, entry in fresh.items()], result)
    result.written = lockfile.write(lock_path, new)
    return result


def _split(display: str) -> Key:
    return RepoRef.parse(display).key


def _reachable(lock: Lock) -> tuple[Lock, list[LockedRepo]]:
    """``lock`` without the entries no direct entry requires (directly or not), and those entries."""
    keep = {r.key for r in lock.repos if r.direct}
    todo = list(keep)
    while todo:
        key = todo.pop()
        for r in lock.repos:
            if r.key not in keep and any(q.key == key for q in r.required_by):
                keep.add(r.key)
                todo.append(r.key)
    dropped = [r for r in lock.repos if r.key not in keep]
    kept = tuple(
        replace(r, required_by=tuple(q for q in r.required_by if q.key in keep)) for r in lock.repos if r.key in keep
    )
    return replace(lock, repos=kept), dropped


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
        _enforce(lock_path, [], result, result.tasks)
    result.written = lockfile.write(lock_path, lock)
    return result


def pin_task(settings: Settings, lock_path: Path, task: str, spec: str | None) -> PinResult:
    """``hfa pin --task TASK [REPO[@REV]]``: set one task default (``spec`` None: the endpoint's recommended model)."""
    from hfa.infer.defaults import TaskChange, canonical_task, resolve_default

    lock = lockfile.read(lock_path, missing_ok=True)
    name = canonical_task(task)
    new = resolve_default(settings, name, spec)
    result = PinResult(lock_path, tasks=[TaskChange(name, lock.task(name), new)])
    _enforce(lock_path, [], result, result.tasks)
    configured = _configured_tasks(lock_path).get(name)
    if configured is not None and RepoRef.parse(configured).display != new.display:
        result.warnings.append(
            f"hfa.toml maps {name} to {configured}: the next `hfa pin` puts that back (edit [infer.tasks] to keep {new.display})"
        )
    result.written = lockfile.write(lock_path, lock.set_task(new))
    return result


def remove(lock_path: Path, ref: RepoRef) -> PinResult:
    return remove_many(lock_path, [ref])


def remove_many(lock_path: Path, refs: list[RepoRef]) -> PinResult:
    """Drop the named entries, and the dependencies nothing left requires; all or nothing.

    An entry that another entry (not removed with it) requires is refused, naming who requires it.
    """
    lock = lockfile.read(lock_path)
    keys = {ref.key for ref in refs}
    for ref in refs:
        entry = lock.get(ref.repo_id, ref.repo_type)
        if entry is None:
            raise UsageError(f"'{ref.display}' is not in {lock_path}", "see the repos it holds with `hfa pin --check`")
        needed = [q for q in entry.required_by if q.key not in keys and lock.get(*q.key) is not None]
        if needed:
            who = ", ".join(f"{q.display} ({q.reason})" for q in needed)
            raise UsageError(
                f"{ref.display} is required by {who}",
                f"remove that too (`hfa pin --remove {needed[0].display} {ref.display}`), or leave it",
            )
    left = replace(lock, repos=tuple(r for r in lock.repos if r.key not in keys))
    left = replace(
        left,
        repos=tuple(replace(r, required_by=tuple(q for q in r.required_by if q.key not in keys)) for r in left.repos),
    )
    left, dropped = _reachable(left)
    written = lockfile.write(lock_path, left)
    removed = [ref.display for ref in refs] + [r.display for r in dropped]
    return PinResult(lock_path, removed=removed, written=written)


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


def upgrade(
    settings: Settings, lock_path: Path, refs: list[RepoRef], *, deps: bool = True, task: str | None = None
) -> PinResult:
    """Re-resolve the asked-for revisions (all, or the named repos; ``task``: only that task default) and
    report what moved. Without names, the task defaults move too (to hfa.toml's model where it names one).

    With ``deps``, each one's closure is resolved again too (all: from every direct entry), and
    dependencies nothing requires any more are dropped; without, just the entries.
    """
    from hfa.policy import load_policy

    configured = _configured_tasks(lock_path)
    lock = lockfile.read(lock_path, missing_ok=bool(configured))
    load_policy(lock_path)  # a broken policy fails (exit 2) before any request
    tasks: list[TaskChange] = []
    if task is not None or not refs:
        from hfa.infer.defaults import canonical_task, sync_tasks

        lock, tasks = sync_tasks(settings, lock, configured, upgrade=True, only=canonical_task(task) if task else None)
        if task is not None:
            result = PinResult(lock_path, tasks=tasks)
            _enforce(lock_path, [], result, tasks)
            result.written = lockfile.write(lock_path, lock)
            return result
    entries = _select_entries(lock, lock_path, refs)
    if deps and not refs:
        entries = [e for e in entries if e.direct]
    requests = [PinRequest(e.ref, e.selection) for e in entries]
    judged = PinResult(lock_path)
    _enforce(lock_path, [], judged, tasks)  # before _closure writes the lock
    result = _closure(settings, lock_path, lock, requests, deps=deps, upgrading=True)
    result.tasks = tasks
    result.warnings = judged.warnings + result.warnings
    return result


@dataclass
class CheckResult:
    lock_path: Path
    drift: list[RepoDiff]
    checked: int
    tasks: list[TaskDrift] = field(default_factory=list)  # the task defaults, checked the same way

    @property
    def current(self) -> bool:
        return not any(d.moved for d in self.drift) and not any(t.moved for t in self.tasks)

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": str(self.lock_path),
            "current": self.current,
            "checked": self.checked,
            "drift": [d.to_json() for d in self.drift if d.moved],
            "tasks_checked": len(self.tasks),
            "task_drift": [t.to_json() for t in self.tasks if t.moved],
        }


def check(settings: Settings, lock_path: Path, refs: list[RepoRef]) -> CheckResult:
    """Compare every entry, and every task default, with upstream; write nothing."""
    lock = lockfile.read(lock_path)
    defaults = {t.repo_id for t in lock.tasks}
    named = [r for r in refs if lock.get(r.repo_id, r.repo_type) is not None or r.repo_id not in defaults]
    entries = _select_entries(lock, lock_path, named) if named or not refs else []
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
        drift.append(diff(entry, fresh))
    from hfa.infer.defaults import check_tasks

    tasks = check_tasks(settings, lock, _configured_tasks(lock_path), {r.repo_id for r in refs} if refs else None)
    return CheckResult(lock_path, drift, len(entries), tasks)
