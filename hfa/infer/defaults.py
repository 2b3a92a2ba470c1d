"""Task defaults: which model ``hfa infer TASK`` runs when no ``--model`` is given, pinned in the lock.

``[infer.tasks]`` in ``hfa.toml`` maps tasks (or their aliases) to ``REPO[@REV]``; ``hfa pin`` resolves
each to a commit and records it in ``hfa.lock`` as a ``[[task]]`` entry (lock version 2), and
``hfa pin --task TASK [REPO[@REV]]`` sets one directly (without REPO: the model the endpoint's
``/api/tasks`` recommends, chosen as huggingface_hub chooses it, the first of ``widgetModels``). Once
pinned, a default never changes silently: only ``hfa pin --upgrade`` (or a changed ``hfa.toml``)
moves it. Reading a default needs no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfa.config import Settings
from hfa.errors import CheckFailed, NotFound, UsageError, command_text
from hfa.lock.lockfile import Lock, TaskDefault, TaskFacts
from hfa.resolve.refs import RepoRef

__all__ = [
    "TaskChange",
    "TaskDrift",
    "check_tasks",
    "configured_tasks",
    "default_for",
    "defaults_to_pull",
    "recommended_model",
    "resolve_default",
    "sync_tasks",
]


@dataclass(frozen=True)
class TaskChange:
    """What pinning did to one task default."""

    task: str
    old: TaskDefault | None
    new: TaskDefault

    @property
    def moved(self) -> bool:
        return self.old != self.new

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "repo": self.new.repo_id,
            "revision": self.new.revision,
            "old_commit": self.old.commit if self.old else None,
            "new_commit": self.new.commit,
            "old_repo": self.old.repo_id if self.old else None,
        }

    def line(self) -> str:
        if self.old is None:
            return f"+ task {self.task} → {self.new.display} {self.new.commit}"
        if not self.moved:
            return f"= task {self.task} → {self.new.display} {self.new.commit} (unchanged)"
        return (
            f"~ task {self.task}: {self.old.display} {self.old.commit[:12]} → {self.new.display} {self.new.commit[:12]}"
        )


def canonical_task(name: str) -> str:
    from hfa.infer.tasks import get_task

    return get_task(name).name


def configured_tasks(infer_table: dict[str, Any], origin: str = "hfa.toml") -> dict[str, str]:
    """``[infer.tasks]`` as {canonical task: "REPO[@REV]"}; every entry checked (UsageError naming it)."""
    raw = infer_table.get("tasks", {})
    if not isinstance(raw, dict):
        raise UsageError(f"[infer.tasks] in {origin} must be a table", 'write e.g. sentiment-analysis = "org/model"')
    out: dict[str, str] = {}
    for name, spec in raw.items():
        try:
            task = canonical_task(str(name))
        except UsageError as exc:
            raise UsageError(f"[infer.tasks] in {origin}: {exc.message}", exc.hint) from None
        if not isinstance(spec, str):
            raise UsageError(
                f"[infer.tasks] {name} in {origin} must be a string", f'write {name} = "org/model" or "org/model@v1"'
            )
        ref = _model_ref(spec, f"[infer.tasks] {name} in {origin}")
        if task in out and out[task] != ref.display:
            raise UsageError(f"[infer.tasks] in {origin} names two models for {task}", "keep one of them")
        out[task] = ref.display
    return out


def _model_ref(spec: str, where: str) -> RepoRef:
    try:
        ref = RepoRef.parse(spec)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", exc.hint) from None
    if ref.repo_type != "model":
        raise UsageError(f"{where}: '{spec}' is a {ref.repo_type}; inference runs models", "name a model: org/name")
    return ref


def recommended_model(settings: Settings, task: str) -> str:
    """The model the endpoint recommends for ``task``: the first ``widgetModels`` entry of ``/api/tasks``."""
    from hfa.hub.client import OnlineHub

    doc = OnlineHub(settings).get_json(f"{settings.endpoint}/api/tasks")
    if not isinstance(doc, dict):
        raise CheckFailed(
            "The endpoint answered /api/tasks with something that is not a task table", "check --endpoint"
        )
    entry = doc.get(task)
    models = entry.get("widgetModels") if isinstance(entry, dict) else None
    first = models[0] if isinstance(models, list) and models else None
    if not isinstance(first, str) or not first:
        raise NotFound(
            f"The endpoint recommends no model for {task}",
            f"name one: {command_text('hfa', 'pin', '--task', task, 'org/model')}",
        )
    return first


def resolve_default(settings: Settings, task: str, spec: str | None) -> TaskDefault:
    """``spec`` (or the endpoint's recommended model) resolved to a commit, as a task default, with the
    facts a policy judges (:class:`~hfa.lock.lockfile.TaskFacts`): the repo's licence, gating and remote
    code, and the size and pickles of the files ``hfa pull`` fetches for it (the default selection)."""
    task = canonical_task(task)
    ref = _model_ref(spec if spec is not None else recommended_model(settings, task), f"the model for {task}")
    commit, facts = _resolve_with_facts(settings, ref)
    return TaskDefault(task, ref.repo_id, ref.revision_or_default, commit, facts)


def _resolve_with_facts(settings: Settings, ref: RepoRef) -> tuple[str, TaskFacts | None]:
    from hfa.errors import CheckFailed
    from hfa.lock.lockfile import LockedFile
    from hfa.policy.facts import record_facts
    from hfa.pull import open_source, plan
    from hfa.resolve.files import RemoteFile
    from hfa.resolve.kinds import classify
    from hfa.resolve.selection import SelectOptions

    source = open_source(settings)
    resolved, selection, _, _ = plan(settings, ref, SelectOptions(), need_quant=False, source=source)
    if resolved.source == "cache":  # offline: the cache cannot say whether the Hub gates it (as for a repo)
        return resolved.commit, None

    def read(f: RemoteFile) -> bytes | None:
        try:
            return source.read_small(ref, resolved, f)
        except CheckFailed:
            return None

    chosen = [resolved.files[p] for p in selection.selected]
    pickles = tuple(sorted(LockedFile.from_remote(f) for f in chosen if classify(f.path) == "pickle"))
    facts = record_facts(resolved, selection.selected, read)
    return resolved.commit, TaskFacts(facts, sum(f.size for f in chosen), pickles)


def sync_tasks(
    settings: Settings, lock: Lock, configured: dict[str, str], *, upgrade: bool = False, only: str | None = None
) -> tuple[Lock, list[TaskChange]]:
    """Bring the lock's task defaults in line with ``configured`` (``[infer.tasks]``).

    A configured task whose default is missing or names another model or revision is resolved;
    one that matches is kept as it is (no network) unless ``upgrade``; with ``upgrade``, defaults
    set with ``--task`` alone (not in ``hfa.toml``) are re-resolved at their revision too.
    ``only``: just this task.
    """
    changes: list[TaskChange] = []
    names = sorted(set(configured) | ({t.task for t in lock.tasks} if upgrade else set()))
    if only is not None:
        names = [n for n in names if n == only]
    for task in names:
        old = lock.task(task)
        spec = configured.get(task)
        if spec is None:
            assert old is not None
            spec = old.display
        ref = RepoRef.parse(spec)
        same = old is not None and (old.repo_id, old.revision) == (ref.repo_id, ref.revision_or_default)
        if same and not upgrade:
            assert old is not None
            changes.append(TaskChange(task, old, old))
            continue
        new = resolve_default(settings, task, spec)
        changes.append(TaskChange(task, old, new))
        lock = lock.set_task(new)
    return lock, changes


def default_for(lock_path: Path, task: str) -> TaskDefault:
    """The lock's default for ``task`` (no network); UsageError naming ``hfa pin --task`` when there is none."""
    from hfa.lock import lockfile

    name = canonical_task(task)
    hint = f"pass --model org/name, or pin a default: {command_text('hfa', 'pin', '--task', name)}"
    lock = lockfile.read(lock_path, missing_ok=True)
    default = lock.task(name)
    if default is None:
        raise UsageError(f"No model given and {lock_path} has no default for {name}", hint)
    return default


@dataclass(frozen=True)
class TaskDrift:
    """``hfa pin --check`` on one task default: its revision now resolves to ``new_commit``, or cannot be
    resolved (``error``), or ``hfa.toml`` names another model or revision (``configured``)."""

    task: str
    repo: str  # the default as pinned: REPO@REV
    old_commit: str | None
    new_commit: str | None
    error: str | None = None
    configured: str | None = None

    @property
    def moved(self) -> bool:
        return bool(self.error or self.configured or self.old_commit != self.new_commit)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "repo": self.repo,
            "old_commit": self.old_commit,
            "new_commit": self.new_commit,
            "error": self.error,
            "configured": self.configured,
        }

    def line(self) -> str:
        old = self.old_commit[:12] if self.old_commit else "(none)"
        head = f"task {self.task}: "
        if self.configured:
            held = f"the lock holds {self.repo}" if self.old_commit else "the lock has no default"
            return head + f"hfa.toml names {self.configured}, {held} (`hfa pin` resolves it)"
        if self.error:
            return head + f"{self.repo}: locked {old}, upstream: {self.error}"
        new = self.new_commit[:12] if self.new_commit else "(none)"
        return head + f"{self.repo}: {old} → {new}"


def check_tasks(
    settings: Settings, lock: Lock, configured: dict[str, str], repos: set[str] | None = None
) -> list[TaskDrift]:
    """Each task default of ``lock`` (and each task ``configured`` in ``[infer.tasks]``) against upstream:
    its revision resolved again (writes nothing). ``repos``: only the defaults of these repo ids."""
    from hfa.errors import AccessDenied
    from hfa.pull import open_source

    source = open_source(settings)
    out: list[TaskDrift] = []
    for task in sorted({t.task for t in lock.tasks} | set(configured)):
        old = lock.task(task)
        spec = configured.get(task)
        wanted = RepoRef.parse(spec) if spec is not None else None
        if repos is not None and not ({old.repo_id if old else None, wanted.repo_id if wanted else None} & repos):
            continue
        if wanted is not None and (
            old is None or (old.repo_id, old.revision) != (wanted.repo_id, wanted.revision_or_default)
        ):
            out.append(TaskDrift(task, old.display if old else "", old.commit if old else None, None, configured=spec))
            continue
        assert old is not None
        try:
            resolved, _ = source.resolve(RepoRef(old.repo_id, "model", old.revision))
        except (NotFound, AccessDenied, CheckFailed, UsageError) as exc:
            out.append(TaskDrift(task, old.display, old.commit, None, error=exc.message))
            continue
        out.append(TaskDrift(task, old.display, old.commit, resolved.commit))
    return out


def defaults_to_pull(lock: Lock, providers: list[Any], *, every: bool = False) -> list[tuple[TaskDefault, str]]:
    """The task defaults whose files ``hfa pull`` fetches, and why: with ``every`` (``--tasks``) all of
    them, else those an enabled ``local`` provider of ``hfa.toml`` runs (its ``tasks``/``models`` admit
    them). A default whose repo the lock pins at the same commit is pulled as that entry already."""
    out: list[tuple[TaskDefault, str]] = []
    for default in lock.tasks:
        entry = lock.get(default.repo_id)
        if entry is not None and entry.commit == default.commit:
            continue
        if every:
            out.append((default, "--tasks"))
            continue
        runner = next(
            (p for p in providers if p.kind == "local" and p.serves(default.task, default.repo_id) is None), None
        )
        if runner is not None:
            out.append((default, f"provider '{runner.name}' runs it in-process"))
    return out
