"""Jobs under hostile input and misuse (QA of issue 19 part 4): huge and malformed JSONL, tampered job
folders, racing and signalled workers, another user's jobs, and the server's job routes under attack.
Each test here failed before the fix it covers (or pins a behaviour that was checked by hand)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from helpers import hfa
from test_infer_jobs import (
    _jsonl,
    _loader,
    _submit,
    _until,
    _world,
    blocked_server,
    here,
    served,
    slow,
)

from hfa.errors import ExitCode
from hfa.infer import jobs as jobs_module
from hfa.infer.batch import read_jsonl
from hfa.infer.jobs import JobStore
from hfa.infer.pool import PoolConfig
from hfa.server import HubServer, ServerConfig

__all__ = ["here", "served", "slow"]  # fixtures, shared with test_infer_jobs

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"task": "text-classification", "model": "org/cls"}


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs")


# -- the input ---------------------------------------------------------------------------------------------
def test_a_u2028_inside_a_json_string_is_not_a_line_break(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    line = json.dumps({"id": "a", "inputs": "one\u2028two\x0cthree\x1c"}, ensure_ascii=False)
    path.write_text("\ufeff" + line + "\r\n" + '"b"\n', encoding="utf-8")
    assert read_jsonl(str(path)) == [line, '"b"']
    store = JobStore(tmp_path / "jobs")
    job_id = store.create(read_jsonl(str(path)), SPEC)
    assert store.input_lines(job_id) == [line, '"b"']
    assert store.status(job_id)["counts"]["total"] == 2


def test_an_over_long_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    with open(path, "wb") as fp:
        fp.write(b'"ok"\n')
        fp.truncate(5 + 64 * 1024 * 1024)  # a 64 MiB line of NULs (sparse: cheap to make)
    started = time.monotonic()
    result = hfa("infer", "text-classification", "-m", "org/cls", "--jsonl", str(path), "--submit")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "Line 2 of --jsonl" in result.stderr and "over 16 MiB" in result.stderr
    assert time.monotonic() - started < 20
    assert JobStore().ids() == []


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'"fine"\n"caf\xe9"\n')
    for extra in (["--submit"], []):
        result = hfa("infer", "text-classification", "-m", "org/cls", "--jsonl", str(path), *extra)
        assert result.exit_code == ExitCode.USAGE, result.stderr
        assert "Line 2 of --jsonl" in result.stderr and "not UTF-8" in result.stderr


def test_a_million_lines_are_a_job_and_its_status_stays_cheap(store: JobStore) -> None:
    n = 1_000_000
    job_id = store.create((f'{{"id": {i}, "inputs": "t"}}' for i in range(n)), SPEC)
    folder = store.folder(job_id)
    with open(folder / "output.jsonl", "wb") as fp:
        fp.write(b"".join(b'{"index": %d, "id": %d, "result": 1}\n' % (i, i) for i in range(0, n, 10)))
    started = time.monotonic()
    status = store.status(job_id)
    assert status["counts"] == {"total": n, "completed": n // 10, "failed": 0}
    assert time.monotonic() - started < 15
    assert len(store.input_lines(job_id)) == n


# -- tampered job folders ------------------------------------------------------------------------------------
def test_results_lines_for_other_indexes_are_ignored(store: JobStore) -> None:
    job_id = store.create(['"a"', '"b"'], SPEC)
    (store.folder(job_id) / "output.jsonl").write_text(
        '{"index": 0, "id": 1, "result": 1}\n{"index": 7, "id": "foreign", "result": 2}\n'
        '{"index": true, "id": "bool", "result": 3}\n{"index": -1, "id": "neg", "result": 4}\n'
    )
    assert store.status(job_id)["counts"] == {"total": 2, "completed": 1, "failed": 0}
    assert [line["id"] for line in store.results(job_id)] == [1]


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_a_results_file_that_is_a_fifo_or_a_link_is_not_read(store: JobStore, tmp_path: Path, kind: str) -> None:
    job_id = store.create(['"a"'], SPEC)
    out = store.folder(job_id) / "output.jsonl"
    if kind == "fifo":
        os.mkfifo(out)
    else:
        elsewhere = tmp_path / "elsewhere.jsonl"
        elsewhere.write_text('{"index": 0, "id": "planted", "result": 1}\n')
        out.symlink_to(elsewhere)
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.append(store.status(job_id)["counts"]), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "status blocked on the results file"
    assert seen == [{"total": 1, "completed": 0, "failed": 0}]
    with pytest.raises(jobs_module.LocalError, match=r"not a regular file|Cannot"):
        jobs_module.run_job(store, job_id, lambda r: 1, concurrency=1, parse=lambda lines: iter(()))


def test_a_huge_results_file_is_streamed(store: JobStore) -> None:
    job_id = store.create(['"a"'], SPEC)
    out = store.folder(job_id) / "output.jsonl"
    with open(out, "wb") as fp:
        fp.write(b'{"index": 0, "id": "a", "result": 1}\n')
        fp.truncate(1 << 30)  # 1 GB, mostly a hole: one endless torn line
    status = store.status(job_id)
    assert status["counts"]["completed"] == 1
    jobs_module._cut_torn_tail(out)  # what a resume does: the torn tail goes, the answered line stays
    assert out.read_bytes() == b'{"index": 0, "id": "a", "result": 1}\n'


def test_a_status_record_that_is_a_link_fifo_or_huge_is_a_clear_error(store: JobStore) -> None:
    for make in ("symlink", "fifo", "huge"):
        job_id = store.create(['"a"'], SPEC)
        record = store.folder(job_id) / "status.json"
        record.unlink()
        if make == "symlink":
            record.symlink_to("/etc/passwd")
        elif make == "fifo":
            os.mkfifo(record)
        else:
            with open(record, "wb") as fp:
                fp.truncate(1 << 30)
        shown = hfa("jobs", "status", job_id, env={"HFA_JOBS_DIR": str(store.root)})
        assert shown.exit_code in (ExitCode.USAGE, ExitCode.LOCAL, ExitCode.NOT_FOUND), (make, shown.stderr)
        assert shown.stderr.startswith("Error:") and "internal error" not in shown.stderr
        listed = hfa("jobs", "ls", "--json", env={"HFA_JOBS_DIR": str(store.root)})
        assert listed.exit_code == 0, listed.stderr


# -- another user ------------------------------------------------------------------------------------------
def test_another_user_sees_a_live_worker_and_may_not_cancel(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = store.create(['"a"'], SPEC)
    fd = store.take_lock(job_id)  # a live worker holds it
    assert fd is not None
    store.mark(job_id, status="running")
    real_open = os.open

    def as_other_user(path: Any, flags: int, *args: Any, **kw: Any) -> int:  # 0644 files: read, never write
        if str(path).startswith(str(store.root)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", as_other_user)
    try:
        assert store.status(job_id)["status"] == "running"  # not "died": the reader cannot take the lock
        with pytest.raises(jobs_module.HfaError, match=r"belongs to .*: you may read it, but not cancel it") as info:
            store.cancel(job_id)
        assert info.value.exit_code != ExitCode.INTERNAL
        with pytest.raises(jobs_module.HfaError, match="not resume it"):
            store.take_lock(job_id)
    finally:
        os.close(fd)


# -- workers -------------------------------------------------------------------------------------------------
def test_two_resumes_at_once_one_wins_and_no_line_is_written_twice(
    here: Path, served: tuple[HubServer, str], slow: Any
) -> None:
    _, commit = served
    slow.delay = 0.1
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 12), "--concurrency", "1", "--no-cache")
    store = JobStore()
    _until(lambda: store.status(job_id)["counts"]["completed"] >= 2)
    os.kill(store.status(job_id)["pid"], signal.SIGKILL)
    _until(lambda: store.status(job_id)["status"] == "died", 10)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hfa", "jobs", "resume", job_id], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]  # two processes at once, as two shells would
    errors = [p.communicate(timeout=60)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, ExitCode.USAGE]), errors
    if codes[1]:
        assert any("is running" in e for e in errors)
    assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 0
    raw = (store.folder(job_id) / "output.jsonl").read_text().splitlines()
    indexes = [json.loads(line)["index"] for line in raw]
    assert sorted(indexes) == list(range(12))  # each line once


def test_sigterm_stops_the_worker_gracefully_and_resume_finishes(
    here: Path, served: tuple[HubServer, str], slow: Any
) -> None:
    _, commit = served
    slow.delay = 0.2
    job_id = _submit(commit, _jsonl(here / "in.jsonl", 15), "--concurrency", "1", "--no-cache")
    store = JobStore()
    _until(lambda: store.status(job_id)["counts"]["completed"] >= 2)
    os.kill(store.status(job_id)["pid"], signal.SIGTERM)
    _until(lambda: not store.status(job_id)["worker_alive"], 20)
    status = store.status(job_id)
    assert status["status"] == "died" and "SIGTERM" in (status["error"] or "")
    assert f"hfa jobs resume {job_id}" in status["message"]
    assert hfa("jobs", "resume", job_id).exit_code == 0
    assert hfa("jobs", "wait", job_id, "--timeout", "60").exit_code == 0
    assert [json.loads(x)["id"] for x in hfa("jobs", "results", job_id).stdout.splitlines()] == [
        f"r{i}" for i in range(15)
    ]


def test_cancel_of_a_finished_job_and_wait_on_fifty(store: JobStore) -> None:
    env = {"HFA_JOBS_DIR": str(store.root)}
    ids = [store.create(['"a"'], SPEC) for _ in range(50)]
    for job_id in ids:
        (store.folder(job_id) / "output.jsonl").write_text(f'{{"index": 0, "id": "{job_id}", "result": 1}}\n')
        store.mark(job_id, status="completed")
    cancelled = hfa("jobs", "cancel", ids[0], "--json", env=env)
    assert cancelled.exit_code == 0 and json.loads(cancelled.stdout)["status"] == "completed"
    assert not (store.folder(ids[0]) / "cancel").exists()
    started = time.monotonic()
    waited = hfa("jobs", "wait", *ids, ids[0], "--timeout", "30", "--json", env=env)
    assert waited.exit_code == 0, waited.stderr
    assert len(json.loads(waited.stdout)["jobs"]) == 51
    assert time.monotonic() - started < 20


# -- the server's routes -------------------------------------------------------------------------------------
@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[HubServer]:
    from hfa.server.auth import load_policy

    _world(tmp_path / "c")
    (tmp_path / "auth.toml").write_text(
        '[[tokens]]\nname = "alice"\ntoken = "hf_alice_token_0123456789"\nread = ["org/*"]\n\n'
        '[[tokens]]\nname = "bob"\ntoken = "hf_bob_token_0123456789ab"\nread = ["org/*"]\n',
        encoding="utf-8",
    )
    config = ServerConfig(
        cache_dir=tmp_path / "c",
        infer=PoolConfig(loader=_loader),
        jobs_dir=tmp_path / "jobs",
        auth=load_policy(tmp_path / "auth.toml"),
    )
    with HubServer(config) as srv:
        yield srv


def test_a_job_submitted_with_a_token_is_its_owners(auth_server: HubServer) -> None:
    api = f"{auth_server.url}/api/hfa/jobs"
    alice = {"Authorization": "Bearer hf_alice_token_0123456789"}
    bob = {"Authorization": "Bearer hf_bob_token_0123456789ab"}
    made = httpx.post(api, json={**SPEC, "lines": ['"secret text"']}, headers=alice)
    assert made.status_code == 200, made.text
    job_id = made.json()["id"]
    _until(lambda: httpx.get(f"{api}/{job_id}", headers=alice).json()["status"] == "completed")
    assert httpx.get(f"{api}/{job_id}/results", headers=alice).status_code == 200
    for who in ({}, bob):  # the model is public: before, anyone knowing the id read the results
        for method, path in (("GET", ""), ("GET", "/results"), ("POST", "/cancel")):
            answer = httpx.request(method, f"{api}/{job_id}{path}", headers=who)
            assert answer.status_code in (401, 404), (who, path, answer.status_code)
            assert "secret" not in answer.text
    files = list((auth_server.config.jobs_dir / job_id).iterdir())  # type: ignore[operator]
    assert not any("hf_alice_token" in f.read_text(errors="replace") for f in files if f.is_file())


def test_hostile_bodies_are_refused_and_a_full_server_says_when(tmp_path: Path) -> None:
    with blocked_server(tmp_path, max_jobs=2) as api:
        deep = b'{"task": "text-classification", "lines": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        nested = httpx.post(api, content=deep, headers={"Content-Type": "application/json"})
        assert nested.status_code == 400, nested.text
        port = int(api.split("/api/", 1)[0].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(
                b"POST /api/hfa/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n{" % (1 << 40)
            )
            head = raw.recv(4096)
        assert head.split(b" ", 2)[1] in (b"400", b"413"), head[:200]
        for bad in ("..%2F..%2Fetc%2Fpasswd", "job-..%2F..%2Fx", "../../etc/passwd", "job-" + "0" * 23 + "g"):
            assert httpx.get(f"{api}/{bad}").status_code in (400, 404)
        # a slowloris body does not hold the route: others are answered meanwhile
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow_client:
            slow_client.sendall(
                b"POST /api/hfa/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
            assert httpx.get(f"{api}/job-{'0' * 24}", timeout=10).status_code == 404
            job = {**SPEC, "lines": ['"x"']}
            answers: list[httpx.Response] = []

            def submit() -> None:
                answers.append(httpx.post(api, json=job, timeout=20))

            threads = [threading.Thread(target=submit) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 200, 429], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["Retry-After"].isdigit()


def test_a_record_naming_pid_1_is_never_signalled(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = store.create(['"a"'], SPEC)
    store.mark(job_id, status="running", pid=1)
    sent: list[Any] = []
    monkeypatch.setattr(os, "kill", lambda *args: sent.append(args))
    monkeypatch.setattr(os, "killpg", lambda *args: sent.append(args))
    status = store.status(job_id)
    assert status["status"] == "died" and status["pid"] == 1 and not status["worker_alive"]
    assert store.cancel(job_id)["status"] == "cancelled"
    assert sent == []
