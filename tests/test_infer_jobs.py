"""Jobs (issue 19 part 4): ``hfa infer --jsonl FILE --submit``, ``hfa jobs …``, ``Orchestrator.submit``, and
the same jobs over HTTP through ``hfa serve --infer``, end to end on loopback.

Local jobs run in real detached worker processes against a counting stub Inference API (:class:`Slow`)
reached as an ``[[infer.providers]]`` endpoint, so the orchestrator's chain is what answers; model
commits resolve on a real in-process ``hfa serve``. Server-side jobs run in a real ``hfa serve
--infer`` (in-process :class:`HubServer` over HTTP) whose engine is a scripted stub (no torch, so the
test is fast; the model pool, the routes and the job store are the real ones), and one test runs a
tiny real model through the same routes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from helpers import hfa

from hfa.infer.jobs import JobStore
from hfa.infer.pool import PoolConfig
from hfa.server import HubServer, ServerConfig
from hfa.testing import make_safetensors, model_card, write_repo

ROOT = Path(__file__).resolve().parents[1]
ANSWER = [{"label": "POSITIVE", "score": 0.75}, {"label": "NEGATIVE", "score": 0.25}]


class Slow:
    """An Inference API that answers every POST after ``delay`` seconds and counts what it was sent."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.inputs: list[Any] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                with stub.lock:
                    stub.inputs.append(body.get("inputs") if isinstance(body, dict) else body)
                time.sleep(stub.delay)
                data = json.dumps([ANSWER]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def posts(self) -> int:
        with self.lock:
            return len(self.inputs)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeEngine:
    def __init__(self, model: Any, task: str) -> None:
        self.task = task

    def run(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        if inputs == "boom":
            raise RuntimeError("the forward pass failed")
        time.sleep(0.01)
        return [ANSWER]

    def close(self) -> None:
        pass


def _loader(model: Any, task: str, *, allow_pickle: bool, trust_remote_code: bool) -> FakeEngine:
    return FakeEngine(model, task)


def _world(root: Path) -> str:
    weights = make_safetensors({"w": ("F32", [4])})
    return write_repo(
        root, "org/cls", {"README.md": model_card(pipeline_tag="text-classification"), "model.safetensors": weights}
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HubServer, str]]:
    """A real ``hfa serve --infer`` (scripted engine) holding org/cls; and org/cls's commit."""
    commit = _world(tmp_path / "served")
    config = ServerConfig(
        cache_dir=tmp_path / "served", infer=PoolConfig(loader=_loader), jobs_dir=tmp_path / "srvjobs"
    )
    with HubServer(config) as srv:
        yield srv, commit


@contextmanager
def blocked_server(root: Path, max_jobs: int) -> Iterator[str]:
    """A real ``hfa serve --infer`` holding org/cls whose engine answers nothing until the block ends
    (its jobs stay running: the server is full at ``max_jobs``); its jobs API URL."""
    gate = threading.Event()

    class Blocked(FakeEngine):
        def run(self, inputs: Any, parameters: dict[str, Any]) -> Any:
            gate.wait(30)
            return [ANSWER]

    _world(root / "c")
    config = ServerConfig(
        cache_dir=root / "c",
        infer=PoolConfig(loader=lambda m, t, **_: Blocked(m, t)),
        jobs_dir=root / "jobs",
        max_jobs=max_jobs,
    )
    try:
        with HubServer(config) as srv:
            yield f"{srv.url}/api/hfa/jobs"
    finally:
        gate.set()


@pytest.fixture
def slow() -> Iterator[Slow]:
    stub = Slow()
    yield stub
    stub.close()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: tuple[HubServer, str], slow: Slow) -> Iterator[Path]:
    """Work in tmp_path, whose hfa.toml sends requests to the stub; commits resolve on the served hub.
    Any worker still alive at the end is killed (they are this test's own processes)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", served[0].url)
    (tmp_path / "hfa.toml").write_text(
        f'[[infer.providers]]\nname = "stub"\nkind = "endpoint"\nurl = "{slow.url}"\npriority = 1\n', encoding="utf-8"
    )
    yield tmp_path
    store = JobStore()
    for status in store.statuses():
        if status.get("worker_alive") and status.get("pid"):
            os.kill(status["pid"], signal.SIGKILL)


def _jsonl(path: Path, n: int, *, bad: bool = False) -> Path:
    lines = [json.dumps({"id": f"r{i}", "inputs": f"text {i}"}) for i in range(n)]
    if bad:
        lines.insert(1, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _submit(commit: str, jsonl: Path, *args: str) -> str:
    result = hfa(
        "infer", "text-classification", "-m", f"org/cls@{commit}", "--jsonl", str(jsonl), "--submit", "--json", *args
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"id", "status"} and doc["status"] == "queued"
    return str(doc["id"])


def _until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- local jobs ------------------------------------------------------------------------------------------
def test_submit_returns_at_once_then_wait_and_results_in_input_order(
    here: Path, served: tuple[HubServer, str], slow: Slow
) -> None:
    _, commit = served
    slow.delay = 0.05
    started = time.monotonic()
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 8, bad=True), "--concurrency", "3")
    assert time.monotonic() - started < 10
    waited = hfa("jobs", "wait", job_id, "--timeout", "60")
    assert waited.exit_code == 1, waited.stderr  # one line is malformed: as `hf jobs wait`, exit 1
    assert "1 of 9 line(s) failed" in waited.stderr
    results = hfa("jobs", "results", job_id)
    assert results.exit_code == 1
    lines = [json.loads(line) for line in results.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["r0", 2, *[f"r{i}" for i in range(1, 8)]]
    assert "not JSON" in lines[1]["error"]
    assert all(line["result"] == ANSWER and line["provider"] == "stub" for line in lines if "error" not in line)
    assert slow.posts == 8
    status = hfa("jobs", "status", job_id, "--json")
    doc = json.loads(status.stdout)
    assert doc["status"] == "completed" and doc["counts"] == {"total": 9, "completed": 8, "failed": 1}
    assert {"id", "status", "task", "model", "counts", "created_at", "started_at", "finished_at", "pid",
            "worker_alive", "error", "message"} <= set(doc)  # fmt: skip
    assert doc["task"] == "text-classification" and doc["model"] == f"org/cls@{commit}" and not doc["worker_alive"]
    listed = json.loads(hfa("jobs", "ls", "--json").stdout)
    assert [j["id"] for j in listed["jobs"]] == [job_id]


def test_a_job_survives_kill_9_of_its_worker_and_resumes_without_asking_again(
    here: Path, served: tuple[HubServer, str], slow: Slow
) -> None:
    _, commit = served
    slow.delay = 0.3
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 10), "--concurrency", "1", "--no-cache")
    store = JobStore()
    _until(lambda: store.status(job_id)["counts"]["completed"] >= 3)
    pid = store.status(job_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    _until(lambda: store.status(job_id)["status"] == "died", 10)
    shown = hfa("jobs", "status", job_id)
    assert "died" in shown.stdout and f"hfa jobs resume {job_id}" in shown.stdout
    answered = store.status(job_id)["counts"]["completed"]
    assert answered < 10
    sent = slow.posts
    resumed = hfa("jobs", "resume", job_id, "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 0
    lines = [json.loads(line) for line in hfa("jobs", "results", job_id).stdout.splitlines()]
    assert [line["id"] for line in lines] == [f"r{i}" for i in range(10)]
    # Only the lines not answered were sent again (at most the one in flight when the worker died).
    assert slow.posts - sent == 10 - answered
    assert slow.posts <= 11
    assert sorted(set(slow.inputs)) == sorted(f"text {i}" for i in range(10))
    again = hfa("jobs", "resume", job_id)  # nothing left to do
    assert again.exit_code == 0 and "completed" in again.stdout


def test_a_torn_last_line_is_cut_and_its_request_answered_again(here: Path, served: tuple[HubServer, str]) -> None:
    _, commit = served
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 3))
    assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 0
    store = JobStore()
    out = store.folder(job_id) / "output.jsonl"
    data = out.read_bytes()
    out.write_bytes(
        data[: data.rfind(b"\n", 0, len(data) - 1) + 1] + b'{"index": 2, "id": "r2", "res'
    )  # as kill -9 leaves it
    store.mark(job_id, status="running")
    assert store.status(job_id)["status"] == "died"
    assert store.status(job_id)["counts"]["completed"] == 2
    assert hfa("jobs", "resume", job_id).exit_code == 0
    assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 0
    assert [json.loads(line)["id"] for line in hfa("jobs", "results", job_id).stdout.splitlines()] == ["r0", "r1", "r2"]


def test_cancel_stops_sending_and_wait_timeout_exits_7(here: Path, served: tuple[HubServer, str], slow: Slow) -> None:
    _, commit = served
    slow.delay = 0.3
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 30), "--concurrency", "1")
    early = hfa("jobs", "wait", job_id, "--timeout", "0.5", "--json")
    assert early.exit_code == 7
    assert json.loads(early.stdout)["error"]["code"] == "pending"
    assert hfa("jobs", "results", job_id).exit_code == 7
    cancelled = hfa("jobs", "cancel", job_id, "--json")
    assert cancelled.exit_code == 0
    assert json.loads(cancelled.stdout)["status"] in ("cancelling", "cancelled")
    done = hfa("jobs", "wait", job_id, "--timeout", "30", "--json")
    assert done.exit_code == 1
    assert json.loads(done.stdout)["jobs"][0]["status"] == "cancelled"
    sent = slow.posts
    assert sent < 30
    time.sleep(0.5)
    assert slow.posts == sent  # nothing more is sent
    lines = [json.loads(line) for line in hfa("jobs", "results", job_id).stdout.splitlines()]
    assert len(lines) <= sent and all("result" in line for line in lines)


@pytest.mark.parametrize("bad", ["../etc", "job-../../x", "job-" + "0" * 23 + "/", "JOB-" + "a" * 24, "x" * 300])
def test_bad_job_ids_are_usage_errors(here: Path, bad: str) -> None:
    for command in (("status", bad), ("results", bad), ("cancel", bad), ("resume", bad), ("wait", bad)):
        result = hfa("jobs", *command)
        assert result.exit_code == 2, (command, result.stderr)
        assert "is not a job id" in result.stderr and "hfa jobs ls" in result.stderr
    assert not (here / "etc").exists()


def test_an_unknown_job_is_not_found(here: Path) -> None:
    result = hfa("jobs", "status", "job-" + "0" * 24)
    assert result.exit_code == 3 and "No job job-000" in result.stderr


def test_submit_needs_jsonl(here: Path, served: tuple[HubServer, str]) -> None:
    result = hfa("infer", "text-classification", "-m", "org/cls", "-i", "x", "--submit")
    assert result.exit_code == 2 and "--submit runs a --jsonl batch" in result.stderr


def test_job_files_are_readable_by_others_under_umask_022(here: Path, served: tuple[HubServer, str]) -> None:
    _, commit = served
    old = os.umask(0o022)
    try:
        job_id = _submit(commit, _jsonl(here / "in.jsonl", 2, bad=True))
        assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 1
    finally:
        os.umask(old)
    folder = JobStore().folder(job_id)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    names = {p.name for p in folder.iterdir()}
    assert {
        "input.jsonl",
        "spec.json",
        "status.json",
        "output.jsonl",
        "errors.jsonl",
        "worker.lock",
        "worker.log",
    } <= names
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_no_token_is_written_to_a_job(here: Path, served: tuple[HubServer, str]) -> None:
    _, commit = served
    token = "hf_jobs_secret_token_0123456789"
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 1), "--token", token)
    assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 0
    for path in JobStore().folder(job_id).iterdir():
        assert token.encode() not in path.read_bytes(), path.name


def test_the_python_api_submits_and_waits(here: Path, served: tuple[HubServer, str], slow: Slow) -> None:
    from hfa.errors import Pending
    from hfa.infer import Orchestrator

    assert hfa("pin", "--task", "text-classification", "org/cls").exit_code == 0
    orchestrator = Orchestrator.from_config(here / "hfa.toml", timeout=30)
    slow.delay = 0.2
    job = orchestrator.submit("sentiment-analysis", ["I love it", {"id": "b", "inputs": "meh"}, "ok"], concurrency=1)
    assert job.id.startswith("job-")
    with pytest.raises(Pending):
        job.result()
    status = job.wait(timeout=60)
    assert status["status"] == "completed" and status["counts"]["completed"] == 3
    assert [line["id"] for line in job.result()] == [1, "b", 3]
    assert all(line["result"] == ANSWER for line in job.result())
    assert job.status()["counts"]["failed"] == 0


# -- jobs through hfa serve --infer ----------------------------------------------------------------
def test_submit_wait_results_through_hfa_serve_infer(here: Path, served: tuple[HubServer, str]) -> None:
    srv, _ = served
    path = here / "in.jsonl"
    path.write_text('{"id": "a", "inputs": "x"}\n\n"bare"\n{"inputs": "boom"}\n{oops\n', encoding="utf-8")
    submitted = hfa("infer", "text-classification", "-m", "org/cls", "--jsonl", str(path), "--submit",
                    "--endpoint-url", srv.url, "--json")  # fmt: skip
    assert submitted.exit_code == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    waited = hfa("jobs", "wait", job_id, "--endpoint-url", srv.url, "--timeout", "60")
    assert waited.exit_code == 1 and "2 of 4 line(s) failed" in waited.stderr
    results = hfa("jobs", "results", job_id, "--endpoint-url", srv.url)
    lines = [json.loads(line) for line in results.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", 3, 4, 5]  # ids default to line numbers, as a local batch's
    assert lines[0]["result"] == ANSWER and lines[1]["result"] == ANSWER
    assert "forward pass failed" in lines[2]["error"] and "not JSON" in lines[3]["error"]
    status = json.loads(hfa("jobs", "status", job_id, "--endpoint-url", srv.url, "--json").stdout)
    assert status["status"] == "completed" and status["counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert hfa("jobs", "status", job_id).exit_code == 3  # not one of this machine's jobs


def test_server_job_routes_are_bounded_and_checked(
    here: Path, served: tuple[HubServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hfa.server import job_routes

    srv, _ = served
    api = f"{srv.url}/api/hfa/jobs"
    assert httpx.get(f"{api}/..%2F..%2Fetc").status_code in (400, 404)
    assert httpx.get(f"{api}/job-zz").status_code == 400
    assert httpx.get(f"{api}/job-{'0' * 24}").status_code == 404
    ok = {"task": "text-classification", "model": "org/cls", "lines": ['"x"']}
    assert httpx.post(api, json={**ok, "model": "org/none"}).status_code == 404
    assert httpx.post(api, json={**ok, "task": "dancing"}).status_code == 400
    assert httpx.post(api, json={**ok, "task": "image-classification"}).status_code == 400
    assert httpx.post(api, json={**ok, "lines": ["a\nb"]}).status_code == 400
    assert httpx.post(api, content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    monkeypatch.setattr(job_routes, "MAX_JOB_LINES", 2)
    assert httpx.post(api, json={**ok, "lines": ["a", "b", "c"]}).status_code == 413
    monkeypatch.setattr(job_routes, "MAX_JOB_BODY", 100)
    big = httpx.post(api, json={**ok, "lines": ["x" * 200]})
    assert big.status_code == 413 and "at most" in big.json()["error"]
    monkeypatch.setattr(job_routes, "MAX_JOB_BODY", 1 << 20)
    first = httpx.post(api, json=ok)
    assert first.status_code == 200 and first.json()["status"] == "queued"
    job_id = first.json()["id"]
    _until(lambda: httpx.get(f"{api}/{job_id}").json()["status"] == "completed")
    body = httpx.get(f"{api}/{job_id}/results")
    assert body.headers["Content-Type"] == "application/x-ndjson"
    line = json.loads(body.text)
    assert line["id"] == 1 and line["result"] == ANSWER
    assert httpx.post(f"{api}/{job_id}/cancel").json()["status"] == "completed"
    assert httpx.delete(f"{api}/{job_id}").status_code == 405


def test_a_full_server_answers_429(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with blocked_server(tmp_path, max_jobs=1) as api:
        job = {"task": "text-classification", "model": "org/cls", "lines": ['"x"']}
        assert httpx.post(api, json=job).status_code == 200
        refused = httpx.post(api, json=job)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "30"


def test_auth_applies_to_server_jobs(tmp_path: Path) -> None:
    from hfa.server.auth import load_policy

    _world(tmp_path / "c")
    (tmp_path / "auth.toml").write_text(
        '[repos]\n"org/cls" = "private"\n\n[[tokens]]\ntoken = "hf_reader_token_0123456789"\nread = ["org/cls"]\n',
        encoding="utf-8",
    )
    config = ServerConfig(
        cache_dir=tmp_path / "c",
        infer=PoolConfig(loader=_loader),
        jobs_dir=tmp_path / "jobs",
        auth=load_policy(tmp_path / "auth.toml"),
    )
    with HubServer(config) as srv:
        api = f"{srv.url}/api/hfa/jobs"
        job = {"task": "text-classification", "model": "org/cls", "lines": ['"x"']}
        assert httpx.post(api, json=job).status_code in (401, 404)
        good = {"Authorization": "Bearer hf_reader_token_0123456789"}
        made = httpx.post(api, json=job, headers=good)
        assert made.status_code == 200, made.text
        job_id = made.json()["id"]
        assert httpx.get(f"{api}/{job_id}").status_code in (401, 404)
        assert httpx.get(f"{api}/{job_id}", headers=good).status_code == 200


def test_a_job_left_running_when_the_server_stopped_is_finished_when_it_starts(tmp_path: Path) -> None:
    commit = _world(tmp_path / "c")
    store = JobStore(tmp_path / "jobs")
    spec = {"task": "text-classification", "model": "org/cls", "commit": commit}
    job_id = store.create(['"a"', '"b"'], spec)
    store.mark(job_id, status="running")  # as a server stopped mid-job leaves it: no one holds its lock
    assert store.status(job_id)["status"] == "died"
    config = ServerConfig(cache_dir=tmp_path / "c", infer=PoolConfig(loader=_loader), jobs_dir=tmp_path / "jobs")
    with HubServer(config) as srv:
        _until(lambda: store.status(job_id)["status"] == "completed")
        doc = httpx.get(f"{srv.url}/api/hfa/jobs/{job_id}").json()
        assert doc["counts"] == {"total": 2, "completed": 2, "failed": 0}


def test_a_job_runs_a_tiny_real_model_in_a_hfa_serve_infer_process(
    tiny_cache: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hfa serve --infer` as its own process with the real engine (the infer extra): a tiny sentiment model."""
    cache, _commits = tiny_cache
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "in.jsonl"
    path.write_text('"I love this movie"\n{"id": "b", "inputs": "dreadful"}\n', encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(cache), "--port", "0", "--infer",
         "--infer-models", "tiny/bert-sentiment", "--infer-max-models", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")
        submitted = hfa("infer", "sentiment-analysis", "-m", "tiny/bert-sentiment", "--jsonl", str(path), "--submit",
                        "--endpoint-url", url, "--json")  # fmt: skip
        assert submitted.exit_code == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["id"]
        assert hfa("jobs", "wait", job_id, "--endpoint-url", url, "--timeout", "120").exit_code == 0
        lines = [json.loads(line) for line in hfa("jobs", "results", job_id, "--endpoint-url", url).stdout.splitlines()]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [line["id"] for line in lines] == [1, "b"]
    for line in lines:
        assert {item["label"] for item in line["result"]} <= {"POSITIVE", "NEGATIVE"}


def test_hostile_job_files_are_clear_errors(here: Path, served: tuple[HubServer, str]) -> None:
    _, commit = served
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 1))
    assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 0
    folder = JobStore().folder(job_id)
    (folder / "output.jsonl").write_bytes(b'[1]\n{"index": "x"}\n\xff\xfe\n' + (folder / "output.jsonl").read_bytes())
    assert [json.loads(line)["id"] for line in hfa("jobs", "results", job_id).stdout.splitlines()] == ["r0"]
    (folder / "status.json").write_bytes(b"\x00not json")
    shown = hfa("jobs", "status", job_id)
    assert shown.exit_code == 6 and "is not a job record" in shown.stderr
    listed = hfa("jobs", "ls", "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)["jobs"][0]["status"] == "unreadable"


def test_a_server_stopped_mid_job_finishes_it_when_it_starts_again(tmp_path: Path) -> None:
    class Steady(FakeEngine):
        def run(self, inputs: Any, parameters: dict[str, Any]) -> Any:
            time.sleep(0.05)
            return [ANSWER]

    _world(tmp_path / "c")
    config = ServerConfig(
        cache_dir=tmp_path / "c", infer=PoolConfig(loader=lambda m, t, **_: Steady(m, t)), jobs_dir=tmp_path / "jobs"
    )
    store = JobStore(tmp_path / "jobs")
    lines = [json.dumps({"id": f"r{i}", "inputs": f"t{i}"}) for i in range(40)]
    with HubServer(config) as srv:
        job = {"task": "text-classification", "model": "org/cls", "lines": lines, "concurrency": 1}
        job_id = httpx.post(f"{srv.url}/api/hfa/jobs", json=job).json()["id"]
        _until(lambda: store.status(job_id)["counts"]["completed"] >= 2)
    stopped = store.status(job_id)
    assert stopped["status"] == "died" and stopped["counts"]["failed"] == 0 and stopped["counts"]["completed"] < 40
    with HubServer(config) as srv:
        _until(lambda: store.status(job_id)["status"] == "completed")
        results = httpx.get(f"{srv.url}/api/hfa/jobs/{job_id}/results").text.splitlines()
    assert [json.loads(line)["id"] for line in results] == [f"r{i}" for i in range(40)]
    assert all("result" in json.loads(line) for line in results)


def test_an_image_writing_task_is_not_a_job(here: Path) -> None:
    (here / "in.jsonl").write_text('"a cat"\n', encoding="utf-8")
    result = hfa("infer", "text-to-image", "-m", "org/cls", "--jsonl", "in.jsonl", "--submit")
    assert result.exit_code == 2 and "hfa infer text-to-image --jsonl FILE --output DIR" in result.stderr
    assert JobStore().ids() == []
