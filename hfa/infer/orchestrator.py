"""The orchestrator as a Python API: ``Orchestrator.from_config(path).run(task, inputs)`` for one call,
``.submit(task, inputs) -> Job`` for a background job (docs/infer.md).

It reads the project's ``hfa.toml`` (``[[infer.providers]]``) and the task defaults of its
``hfa.lock``, and answers through :class:`hfa.infer.session.Session` — the result cache, the
provider chain (:mod:`hfa.infer.chain`), limits and cooldowns — as ``hfa infer`` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.config import Settings
from hfa.errors import UsageError
from hfa.infer.client import DEFAULT_TIMEOUT
from hfa.infer.tasks import Outcome, get_task

if TYPE_CHECKING:  # imported when an Orchestrator is made: `import hfa.infer` stays cheap
    from hfa.infer.jobrun import Job
    from hfa.infer.limits import StateStore
    from hfa.infer.providers import ProviderSpec

__all__ = ["Orchestrator"]


class Orchestrator:
    """``hfa.toml``'s task defaults and providers as a library: ``run(task, inputs)`` for one call.

    Built on :class:`hfa.infer.session.Session` (one per task and model, kept), so the result cache,
    limits and cooldowns behave as ``hfa infer``'s; ``submit()`` runs a batch as a job (hfa.infer.jobrun).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        providers: list[ProviderSpec],
        lock_path: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        use_cache: bool = True,
        state: StateStore | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.lock_path = lock_path
        self.timeout = timeout
        self.use_cache = use_cache
        if state is None:
            import logging

            from hfa.infer.limits import StateStore

            state = StateStore(on_warning=logging.getLogger("hfa.infer").warning)
        self.state = state
        self.on_event = on_event
        self._sessions: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        path: str | Path | None = None,
        *,
        settings: Settings | None = None,
        lock: str | Path | None = None,
        **options: Any,
    ) -> Orchestrator:
        """From a project: ``path`` is its ``hfa.toml`` (or ``pyproject.toml``), or its folder (default: the
        working directory); the lock is ``hfa.lock`` beside it unless ``lock`` names another."""
        from hfa.infer.providers import parse_providers
        from hfa.project import load_project

        base = Path(path) if path is not None else Path.cwd()
        if base.is_file() or base.suffix == ".toml":
            if base.name not in ("hfa.toml", "pyproject.toml"):
                raise UsageError(f"{base}: a project's settings are hfa.toml or pyproject.toml", "pass its folder")
            if not base.exists():
                raise UsageError(f"No settings file at {base}", "pass the folder of your hfa.toml")
            base = base.parent
        project = load_project(base)
        providers = parse_providers(project.table("infer"), project.origin or "hfa.toml")
        lock_path = Path(lock) if lock is not None else base / "hfa.lock"
        return cls(settings or Settings.resolve(), providers=providers, lock_path=lock_path, **options)

    def session(self, task: str, model: str | None = None) -> Any:
        """The Session for ``task`` and ``model`` (None: the lock's task default), made once."""
        from hfa.infer.defaults import default_for
        from hfa.infer.session import Session

        spec = get_task(task)
        if model is None:
            if self.lock_path is None:
                raise UsageError(f"No model given for {spec.name}", "pass model=, or a lock with a task default")
            default = default_for(self.lock_path, spec.name)
            model = f"{default.repo_id}@{default.commit}"
        key = (spec.name, model)
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                found = Session(
                    self.settings,
                    spec,
                    model,
                    timeout=self.timeout,
                    use_cache=self.use_cache,
                    providers=self.providers,
                    state=self.state,
                    on_event=self.on_event,
                )
                self._sessions[key] = found
            return found

    def run(self, task: str, inputs: Any, *, model: str | None = None, **parameters: Any) -> Outcome:
        """One request: ``inputs`` as the task takes them (text; ``{"question", "context"}``; an image path).
        Returns an :class:`~hfa.infer.tasks.Outcome` (``.result``, ``.provider``, ``.fallbacks``, …)."""
        from hfa.infer.tasks import check_parameters, make_inputs

        session = self.session(task, model)
        check_parameters(session.spec, parameters)
        outcome: Outcome = session.cached.run_outcome(session.spec.name, make_inputs(session.spec, inputs), parameters)
        return outcome

    def submit(
        self,
        task: str,
        inputs: Iterable[Any],
        *,
        model: str | None = None,
        concurrency: int = 4,
        **parameters: Any,
    ) -> Job:
        """Run ``inputs`` (each as :meth:`run` takes it, or a batch line ``{"id", "inputs", "parameters"}``)
        as a background job: a detached worker answers them with the batch engine, the providers and
        limits of the project's ``hfa.toml``. Returns the :class:`~hfa.infer.jobrun.Job` at once;
        ``job.wait(timeout)``, then ``job.result()`` (the lines in input order)."""
        import json

        from hfa.infer.defaults import default_for
        from hfa.infer.jobrun import submit_local
        from hfa.infer.jobs import JobStore
        from hfa.infer.tasks import check_parameters

        spec = get_task(task)
        check_parameters(spec, parameters)
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, not {concurrency}", "pass concurrency=4")
        if model is None:
            if self.lock_path is None:
                raise UsageError(f"No model given for {spec.name}", "pass model=, or a lock with a task default")
            default = default_for(self.lock_path, spec.name)
            model = f"{default.repo_id}@{default.commit}"
        lines = [
            json.dumps(item if isinstance(item, dict) and "inputs" in item else {"inputs": item}, ensure_ascii=False)
            for item in inputs
        ]
        job_spec = {
            "task": spec.name,
            "model": model,
            "parameters": parameters,
            "context": None,
            "concurrency": concurrency,
            "timeout": self.timeout,
            "use_cache": self.use_cache,
            "local": False,
            "local_options": {},
            "lock": str(self.lock_path.resolve()) if self.lock_path is not None else None,
        }
        return submit_local(JobStore(), self.settings, lines, job_spec)
