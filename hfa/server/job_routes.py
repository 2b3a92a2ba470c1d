"""``hfa serve --infer``: jobs over HTTP, the routes ``hfa infer --submit --endpoint-url URL`` and
``hfa jobs … --endpoint-url URL`` use (docs/serve.md, "Jobs"):

* ``POST /api/hfa/jobs``              submit: ``{"task", "model", "parameters", "context", "lines": […]}``
  → 200 ``{"id", "status"}``;
* ``GET  /api/hfa/jobs/{id}``         its status (``hfa jobs status --json``'s document);
* ``GET  /api/hfa/jobs/{id}/results`` its result lines in input order (``application/x-ndjson``),
  409 while it runs;
* ``POST /api/hfa/jobs/{id}/cancel``  stop sending its requests; its status.

Jobs run in the server's process (at most ``max_jobs`` at once; 429 with ``Retry-After`` beyond),
with the model pool that answers ``/models/…``, and are kept as :mod:`hfa.infer.jobs` folders under
``jobs_dir`` (a job the server was running when it stopped is finished when it starts again).
Bounds: the body (``MAX_JOB_BODY``), the lines (``MAX_JOB_LINES``). ``--auth`` applies: submitting,
and reading a job, need a token that may read its model.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.errors import HfaError, UsageError
from hfa.infer.jobs import JOB_ID_RE, TERMINAL, JobCancelled, JobStore, run_job
from hfa.server.wire import HttpError

if TYPE_CHECKING:
    from hfa.infer.modelfiles import ModelFiles
    from hfa.server.handler import Request

log = logging.getLogger("hfa.serve")

MAX_JOB_BODY = 16 * 1024 * 1024
MAX_JOB_LINES = 10_000
MAX_JOBS = 2
REFUSED_TASKS = ("image-classification", "text-to-image")  # their inputs are files of the client


class ServerJobs:
    """The jobs one server runs: a store, a bounded set of running jobs, and the pool they use."""

    def __init__(self, service: Any, root: Path, *, max_jobs: int = MAX_JOBS) -> None:
        self.service = service  # hfa.server.infer_routes.InferenceService
        self.store = JobStore(root)
        self.max_jobs = max_jobs
        self.running: set[str] = set()
        self.stopping = False
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_jobs, thread_name_prefix="hfa-job")
        for job_id in self.store.ids():  # what the last run left unfinished
            try:
                if self.store.status(job_id)["status"] == "died":
                    self._start(job_id, force=True)
            except HfaError as exc:
                log.warning("job %s cannot be resumed: %s", job_id, exc)

    def submit(self, doc: dict[str, Any], model: ModelFiles, *, owner: str | None = None) -> dict[str, Any]:
        from hfa.infer.tasks import get_task

        task = get_task(doc["task"]).name
        lines = [line if isinstance(line, str) else json.dumps(line) for line in doc["lines"]]
        spec = {
            "task": task,
            "model": model.repo_id,
            "commit": model.commit,
            "parameters": doc.get("parameters") or {},
            "context": doc.get("context"),
            "concurrency": doc.get("concurrency") or 4,
        }
        if owner is not None:
            spec["owner"] = owner  # the token's name (--auth), never the token
        with self._lock:
            if len(self.running) >= self.max_jobs:
                raise HttpError(
                    429,
                    f"This server runs at most {self.max_jobs} job(s) at once; try again later",
                    None,
                    {"Retry-After": "30"},
                )
            job_id = self.store.create(lines, spec)
            self._start(job_id)
        return {"id": job_id, "status": "queued"}

    def _start(self, job_id: str, *, force: bool = False) -> None:
        fd = self.store.take_lock(job_id)
        if fd is None:
            return
        self.running.add(job_id)
        self._pool.submit(self._run, job_id, fd)

    def _run(self, job_id: str, fd: int) -> None:
        import os

        try:
            self._work(job_id)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self.store.mark(
                job_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000], finished_at=time.time()
            )
        finally:
            os.close(fd)
            with self._lock:
                self.running.discard(job_id)

    def _work(self, job_id: str) -> None:
        from hfa.infer.batch import parse_lines
        from hfa.infer.modelfiles import client_view
        from hfa.infer.pool import Loading
        from hfa.infer.tasks import get_task

        spec = self.store.spec(job_id)
        task = get_task(spec["task"])
        try:
            model = self.model_files(spec["model"], spec["commit"])
        except HfaError as exc:
            self.store.mark(job_id, status="failed", error=str(exc), finished_at=time.time())
            return
        pool, config = self.service.pool, self.service.config

        def handle(request: Any) -> Any:
            deadline = time.monotonic() + config.max_wait
            while True:
                if self.stopping:
                    raise JobCancelled("the server is stopping")
                try:
                    engine = pool.engine(model, task.name, wait=min(5.0, config.max_wait))
                    break
                except Loading:
                    if time.monotonic() >= deadline:
                        raise
            return client_view(task.name, engine.run(request.inputs, request.parameters))

        def parse(lines: list[str]) -> Any:
            return parse_lines(lines, task, dict(spec.get("parameters") or {}), context=spec.get("context"))

        concurrency = int(spec.get("concurrency") or 4)
        run_job(self.store, job_id, handle, concurrency=concurrency, parse=parse, stop=lambda: self.stopping)

    def model_files(self, repo_id: str, commit: str) -> ModelFiles:
        from hfa.errors import NotFound
        from hfa.infer.modelfiles import ModelFiles

        store = self.service.store
        repo = store.repo("model", repo_id)
        snap = store.snapshot(repo, commit) if repo is not None else None
        if snap is None:
            raise NotFound(f"Model {repo_id} at {commit} is no longer served", "submit the job again")
        files = {path: entry.blob_path for path, entry in snap.files.items() if entry.blob_path is not None}
        return ModelFiles(repo_id, commit, files, store.card_data(snap))

    def close(self) -> None:
        self.stopping = True
        self._pool.shutdown(wait=True, cancel_futures=True)


def handle(request: Request, segs: list[str]) -> bool:
    """Answer ``/api/hfa/jobs…`` and return True; False when ``segs`` is not a job route."""
    if segs[:3] != ["api", "hfa", "jobs"]:
        return False
    jobs: ServerJobs | None = request.server.jobs
    if jobs is None:
        raise HttpError(404, "Jobs need hfa serve --infer")
    rest, method = segs[3:], request.command
    if not rest and method == "POST":
        _submit(request, jobs)
    elif rest and method in ("GET", "HEAD", "POST"):
        job_id = rest[0]
        if not JOB_ID_RE.fullmatch(job_id):
            raise HttpError(400, "Not a job id (job- and 24 hex digits)")
        if not (jobs.store.root / job_id / "status.json").is_file():
            raise HttpError(404, f"No job {job_id} here")
        _may_read(request, jobs.store.spec(job_id))
        if rest[1:] == [] and method != "POST":
            request.send_json(jobs.store.status(job_id))
        elif rest[1:] == ["results"] and method != "POST":
            _results(request, jobs, job_id)
        elif rest[1:] == ["cancel"] and method == "POST":
            request.send_json(jobs.store.cancel(job_id))
        else:
            raise HttpError(404, "Not found")
    else:
        raise HttpError(405, "Method not allowed")
    return True


def _may_read(request: Request, spec: dict[str, Any]) -> None:
    """--auth: reading a job needs what reading its model's files needs; and a job submitted with a token
    is its owner's (the token's name is recorded, never the token): another token, or none, gets 404."""
    repo_id = spec.get("model")
    if not isinstance(repo_id, str):
        raise HttpError(404, "Not found")
    _repo, rule = request.repo_or_error("model", repo_id, files=True)
    owner = spec.get("owner")
    if owner is not None and (rule is None or rule.name != owner):
        raise HttpError(401 if request.token() is None else 404, "No such job for this token")


def _owner(request: Request) -> str | None:
    """The name of the token that submits a job (--auth), recorded as the job's owner."""
    auth = request.server.config.auth
    rule = auth.who(request.token()) if auth is not None else None
    return rule.name if rule is not None else None


def _submit(request: Request, jobs: ServerJobs) -> None:
    from hfa.infer.tasks import get_task
    from hfa.server.infer_routes import InferHandler, served_model

    declared = (request.headers.get("Content-Length") or "").strip()
    if not declared.isascii() or not declared.isdigit():
        raise HttpError(411, "Send the job as a JSON body with a Content-Length")
    if int(declared) > MAX_JOB_BODY:
        raise HttpError(413, f"A job is at most {MAX_JOB_BODY // (1 << 20)} MiB; split it")
    try:
        doc = json.loads(request.read_body(int(declared)) or b"null")
    except (ValueError, RecursionError):
        raise HttpError(400, "The body is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("task"), str) or not isinstance(doc.get("lines"), list):
        raise HttpError(400, 'Send {"task": "…", "model": "org/name", "lines": [{"inputs": …}, …]}')
    if len(doc["lines"]) > MAX_JOB_LINES:
        raise HttpError(413, f"A job has at most {MAX_JOB_LINES} lines; split it")
    if any(isinstance(line, str) and ("\n" in line or "\r" in line) for line in doc["lines"]):
        raise HttpError(400, '"lines" are JSON-lines text (one line each) or JSON objects')
    if not isinstance(doc.get("parameters") or {}, dict):
        raise HttpError(400, '"parameters" must be a JSON object')
    concurrency = doc.get("concurrency") or 4
    if not isinstance(concurrency, int) or not 1 <= concurrency <= 16:
        raise HttpError(400, '"concurrency" must be a number from 1 to 16')
    try:
        task = get_task(doc["task"]).name
    except UsageError as exc:
        raise HttpError(400, str(exc)) from None
    if task in REFUSED_TASKS:
        raise HttpError(
            400, f"{task} is not accepted as a job here: its inputs are files; run it with hfa infer --jsonl"
        )
    repo_id = doc.get("model") or jobs.service.only_model()
    if not isinstance(repo_id, str) or not repo_id:
        raise HttpError(400, 'Name the model: "model": "org/name"')
    handler: InferHandler = request
    try:
        model = served_model(handler, jobs.service, repo_id)
        jobs.service.pool.check(model)
    except HfaError as exc:
        from hfa.errors import NotFound
        from hfa.infer.modelfiles import ModelRefused

        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, ModelRefused) else 400
        raise HttpError(status, str(exc)) from None
    request.send_json(jobs.submit({**doc, "task": task, "concurrency": concurrency}, model, owner=_owner(request)))


def _results(request: Request, jobs: ServerJobs, job_id: str) -> None:
    status = jobs.store.status(job_id)
    if status["status"] not in (*TERMINAL, "died"):
        raise HttpError(409, f"Job {job_id} is {status['status']}; wait for it first")
    body = b"".join(
        (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8") for line in jobs.store.results(job_id)
    )
    request.respond(200, [], body, "application/x-ndjson")


__all__ = ["MAX_JOBS", "MAX_JOB_BODY", "MAX_JOB_LINES", "ServerJobs", "handle"]
