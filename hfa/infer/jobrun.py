"""Running jobs (:mod:`hfa.infer.jobs`): the detached worker, submitting and resuming, and :class:`Job`.

``submit_local`` writes the job, takes its worker lock and starts ``python -m hfa.infer.jobrun ID``
in a new session (stdin from /dev/null, stdout and stderr to the job's ``worker.log``), handing it
the locked descriptor: the job survives the submitting process, and a job about to start never
looks dead. The worker answers the lines with today's batch engine through a
:class:`hfa.infer.session.Session` (result cache, providers with fallback, limits) and exits.

A token is never written to the job's files: the worker gets it in its environment (``HF_TOKEN``),
as it gets ``HF_ENDPOINT`` and ``HF_HUB_CACHE``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from hfa.config import Settings
from hfa.errors import CheckFailed, HfaError, Pending, UsageError
from hfa.infer.jobs import TERMINAL, JobStore, check_job_id

__all__ = ["Job", "JobBackend", "resume", "spawn", "submit_local", "wait_all"]


class JobBackend(Protocol):
    """Where jobs live: this machine's :class:`~hfa.infer.jobs.JobStore`, or a server's (``RemoteJobs``)."""

    def status(self, job_id: str) -> dict[str, Any]: ...

    def results(self, job_id: str) -> list[dict[str, Any]]: ...

    def cancel(self, job_id: str) -> dict[str, Any]: ...


class Job:
    """A submitted job: ``id``, ``status()``, ``wait(timeout)``, ``result()``, ``cancel()``."""

    def __init__(self, job_id: str, backend: JobBackend) -> None:
        self.id = check_job_id(job_id)
        self.backend = backend

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def status(self) -> dict[str, Any]:
        """The status document: ``status``, ``counts`` (total, completed, failed), times, ``error``."""
        return self.backend.status(self.id)

    def wait(self, timeout: float | None = None, *, poll: float = 0.2) -> dict[str, Any]:
        """Wait until the job is done (completed, failed, cancelled, or its worker died); its status.
        :class:`hfa.errors.Pending` (exit 7) when ``timeout`` seconds pass first."""
        return wait_all([self], timeout, poll=poll)[0]

    def result(self) -> list[dict[str, Any]]:
        """The result lines in input order, as ``hfa infer --jsonl`` prints them (``{"id", "result"}`` or
        ``{"id", "error"}``). :class:`hfa.errors.Pending` if the job is not done yet."""
        status = self.status()
        if status["status"] not in (*TERMINAL, "died"):
            counts = status["counts"]
            raise Pending(
                f"Job {self.id} is {status['status']}: {counts['completed'] + counts['failed']} of"
                f" {counts['total']} line(s) done",
                f"wait for it first: hfa jobs wait {self.id}",
            )
        return self.backend.results(self.id)

    def cancel(self) -> dict[str, Any]:
        return self.backend.cancel(self.id)


def wait_all(jobs: list[Job], timeout: float | None, *, poll: float = 0.2) -> list[dict[str, Any]]:
    """Wait for every job to be done; their statuses. Pending (exit 7) after ``timeout`` seconds."""
    if timeout is not None and timeout < 0:
        raise UsageError(f"--timeout must be positive, not {timeout:g}", "pass seconds, e.g. --timeout 600")
    deadline = None if timeout is None else time.monotonic() + timeout
    done: dict[str, dict[str, Any]] = {}
    delay = min(poll, 0.05)
    while True:
        for job in jobs:
            if job.id not in done:
                status = job.status()
                if status["status"] in (*TERMINAL, "died"):
                    done[job.id] = status
        if len(done) == len({job.id for job in jobs}):
            return [done[job.id] for job in jobs]
        if deadline is not None and time.monotonic() >= deadline:
            left = [job.id for job in jobs if job.id not in done]
            raise Pending(
                f"{len(left)} job(s) still running after {timeout:g}s: {', '.join(left)}",
                f"wait longer: hfa jobs wait {' '.join(left)} --timeout 3600",
                details={"pending": left},
            )
        time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(poll * 5, delay * 1.5)


def outcome_error(statuses: list[dict[str, Any]]) -> CheckFailed | None:
    """The error for ``hfa jobs wait`` (exit 1) when any job or line failed; None when all succeeded."""
    problems = []
    for status in statuses:
        counts = status["counts"]
        if status["status"] == "completed" and not counts["failed"]:
            continue
        if status["status"] == "completed":
            problems.append(f"{status['id']}: {counts['failed']} of {counts['total']} line(s) failed")
        elif status["status"] == "died":
            problems.append(f"{status['id']}: worker died")
        else:
            problems.append(
                f"{status['id']}: {status['status']}" + (f" ({status['error']})" if status["error"] else "")
            )
    if not problems:
        return None
    return CheckFailed(
        "; ".join(problems),
        'see `hfa jobs results ID` (failed lines carry "error"); `hfa jobs resume ID` finishes a dead worker\'s job',
    )


# -- local jobs --------------------------------------------------------------------------------------
def submit_local(store: JobStore, settings: Settings, lines: Iterable[str], spec: dict[str, Any]) -> Job:
    """Write a job and start its worker; the :class:`Job` at once."""
    job_id = store.create(lines, spec)
    fd = store.take_lock(job_id)
    assert fd is not None  # a new job: nobody else holds its lock
    spawn(store, job_id, fd, settings)
    return Job(job_id, store)


def resume(store: JobStore, job_id: str, settings: Settings) -> dict[str, Any]:
    """Start a worker for a job whose worker died (or that was cancelled): it answers only the lines
    not answered yet. Its status."""
    status = store.status(job_id)
    if status["status"] == "completed":
        return status
    fd = store.take_lock(job_id)
    if fd is None:
        raise UsageError(
            f"Job {job_id} is running (worker pid {status['pid']})", f"wait for it: hfa jobs wait {job_id}"
        )
    folder = store.folder(job_id)
    (folder / "cancel").unlink(missing_ok=True)
    store.mark(job_id, status="queued", error=None, finished_at=None)
    spawn(store, job_id, fd, settings)
    return store.status(job_id)


def spawn(store: JobStore, job_id: str, fd: int, settings: Settings) -> int:
    """Start the worker of ``job_id`` in its own session, handing it the locked descriptor ``fd``
    (closed here); its pid."""
    folder = store.folder(job_id)
    env = dict(os.environ)
    env["HF_HUB_CACHE"] = str(settings.cache_dir)
    env["HF_ENDPOINT"] = settings.endpoint
    env["HFA_JOBS_DIR"] = str(store.root)
    if settings.token:
        env["HF_TOKEN"] = settings.token
    if settings.offline:
        env["HF_HUB_OFFLINE"] = "1"
    source = Path(__file__).resolve().parents[2]
    if (source / "pyproject.toml").is_file():  # a source checkout: the worker runs this very hfa
        env["PYTHONPATH"] = str(source) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log = os.open(folder / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hfa.infer.jobrun", job_id, str(fd)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=str(folder),
            pass_fds=(fd,),
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log)
        os.close(fd)
    store.mark(job_id, pid=proc.pid)
    return proc.pid


def _session(settings: Settings, spec: dict[str, Any]) -> Any:
    """The Session the worker answers with, as ``hfa infer`` would build it from the job's spec."""
    from hfa.infer.session import Session
    from hfa.infer.tasks import get_task

    local = bool(spec.get("local"))
    local_options: dict[str, Any] = dict(spec.get("local_options") or {})
    lock = Path(spec["lock"]) if spec.get("lock") else None
    providers: list[Any] = []
    if lock is not None and not local:
        from hfa.infer.providers import parse_providers
        from hfa.project import project_for_lock

        project = project_for_lock(lock)
        providers = parse_providers(project.table("infer"), project.origin or "hfa.toml")
    if local and lock is not None and lock.is_file():
        from hfa.lock import lockfile

        local_options["lock"] = lockfile.read(lock)
    return Session(
        settings,
        get_task(spec["task"]),
        spec.get("model"),
        local=local,
        timeout=float(spec.get("timeout") or 300.0),
        use_cache=bool(spec.get("use_cache", True)),
        local_options=local_options,
        providers=providers,
    )


def work(store: JobStore, job_id: str, stop: Any = lambda: False) -> dict[str, Any]:
    """Answer the job (the caller holds its worker lock): build its session, run the lines. Its status.
    ``stop()`` true: send nothing more, keep what was answered, leave the job to resume."""
    from hfa.infer.batch import parse_lines
    from hfa.infer.tasks import get_task

    spec = store.spec(job_id)
    try:
        settings = Settings.resolve()
        task = get_task(spec["task"])
        session = _session(settings, spec)
    except HfaError as exc:
        store.mark(job_id, status="failed", error=str(exc), finished_at=time.time())
        return store.status(job_id)
    params = dict(spec.get("parameters") or {})
    context = spec.get("context")

    def handle(request: Any) -> Any:
        return session.cached.run_outcome(task.name, request.inputs, request.parameters)

    def parse(lines: list[str]) -> Any:
        return parse_lines(lines, task, params, context=context)

    from hfa.infer.jobs import run_job

    return run_job(store, job_id, handle, concurrency=int(spec.get("concurrency") or 4), parse=parse, stop=stop)


def main(argv: list[str]) -> int:
    """``python -m hfa.infer.jobrun ID FD``: the worker (FD is the job's locked worker lock)."""
    import signal
    import threading

    job_id, fd = check_job_id(argv[0]), int(argv[1])
    store = JobStore()
    stopping = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        # SIGTERM stops it gracefully: nothing more is sent, the answers in flight are written, the job
        # is left to `hfa jobs resume` (a second SIGTERM ends it at once).
        stopping.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, on_term)
    try:
        status = work(store, job_id, stopping.is_set)
        if stopping.is_set() and status["status"] not in TERMINAL:
            store.mark(job_id, error=f"the worker was stopped (SIGTERM); finish it with `hfa jobs resume {job_id}`")
            status = store.status(job_id)
    except Exception as exc:  # said in the job's status; the traceback goes to worker.log
        store.mark(job_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000], finished_at=time.time())
        raise
    finally:
        os.close(fd)
    print(f"job {job_id}: {status['status']} {status['counts']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
