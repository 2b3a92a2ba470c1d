"""Fault tests: what breaking networks and lying servers do to `hfa pull` — and never to the cache."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import World, build_world
from helpers import corrupt_blobs, hfa

from hfa.errors import ExitCode
from hfa.server import HubServer, ServerConfig
from hfa.server.faults import Fault, FaultPlan
from hfa.testing import write_repo

FOLDER = "models--org--model"
BIG = "model.safetensors"


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[HubServer, FaultPlan, World]]:
    world = build_world(tmp_path / "faulty")
    plan = FaultPlan()
    with HubServer(ServerConfig(cache_dir=world.cache_dir, faults=plan)) as srv:
        yield srv, plan, world


def pull(srv: HubServer, cache: Path, *args: str, retries: str = "3"):
    return hfa(
        "pull",
        "org/model",
        *args,
        "--endpoint",
        srv.url,
        "--cache-dir",
        str(cache),
        "--json",
        env={"HFA_MAX_RETRIES": retries},
    )


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", path=BIG, status=500, times=2),
        Fault("status", path=BIG, status=503, times=1),
        Fault("status", path=BIG, status=429, retry_after="1", times=1),
        Fault("drop", path=BIG, after_bytes=1000, times=2),
        Fault("truncate", path=BIG, after_bytes=2048, times=1),
        Fault("long_length", path=BIG, times=1),
        Fault("corrupt", path=BIG, times=1),
        Fault("slow", path=BIG, delay=0.3, times=1),
    ],
    ids=lambda f: f.kind + (f"-{f.status}" if f.kind == "status" else ""),
)
def test_transient_faults_are_retried(faulty, tmp_path: Path, fault: Fault) -> None:
    srv, plan, world = faulty
    plan.faults.append(fault)
    cache = tmp_path / "cache"
    started = time.monotonic()
    result = pull(srv, cache)
    assert result.exit_code == 0, result.stderr
    assert plan.hits, "the fault was never applied"
    snap = cache / FOLDER / "snapshots" / world.commits["org/model@v2"]
    assert (snap / BIG).read_bytes() == world.contents["org/model@v2"][BIG]
    assert corrupt_blobs(cache) == []
    assert not list(cache.glob("*/blobs/*.incomplete"))
    if fault.retry_after:
        assert time.monotonic() - started >= 1.0  # Retry-After honoured


@pytest.mark.parametrize(
    "fault",
    [None, Fault("corrupt", path=BIG, times=1), Fault("drop", path=BIG, after_bytes=3000, times=1)],
    ids=["clean", "corrupt", "drop"],
)
def test_pipelined_hashing_verifies_every_byte(faulty, tmp_path: Path, monkeypatch, fault: Fault | None) -> None:
    """Large bodies are hashed on a second thread: small chunks here, so many buffers circulate."""
    import hfa.hub.download

    monkeypatch.setattr(hfa.hub.download, "PIPELINE_MIN", 0)
    monkeypatch.setattr(hfa.hub.download, "CHUNK", 512)
    srv, plan, world = faulty
    if fault is not None:
        plan.faults.append(fault)
    cache = tmp_path / "cache"
    result = pull(srv, cache)
    assert result.exit_code == 0, result.stderr
    content = world.contents["org/model@v2"][BIG]
    assert len(content) > 4 * 512  # several chunks in flight
    snap = cache / FOLDER / "snapshots" / world.commits["org/model@v2"]
    assert (snap / BIG).read_bytes() == content
    assert corrupt_blobs(cache) == []
    if fault is not None:
        assert plan.hits == [(fault.kind, BIG)]


def test_pipelined_hashing_refuses_persistent_bad_bytes(faulty, tmp_path: Path, monkeypatch) -> None:
    import hfa.hub.download

    monkeypatch.setattr(hfa.hub.download, "PIPELINE_MIN", 0)
    monkeypatch.setattr(hfa.hub.download, "CHUNK", 512)
    srv, plan, world = faulty
    plan.faults.append(Fault("corrupt", path=BIG, times=-1))
    cache = tmp_path / "cache"
    result = pull(srv, cache, retries="1")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert BIG in result.stderr
    assert corrupt_blobs(cache) == []
    # The bad bytes are never kept; other files cut short by the failure may leave partials to resume.
    bad = hashlib.sha256(world.contents["org/model@v2"][BIG]).hexdigest()
    assert not list(cache.glob(f"*/blobs/{bad}*"))


def test_persistent_wrong_content_length_never_corrupts(faulty, tmp_path: Path) -> None:
    """A server that always over-announces Content-Length: either the verified bytes land, or a clean failure."""
    srv, plan, world = faulty
    plan.faults.append(Fault("long_length", path=BIG, times=-1))
    cache = tmp_path / "cache"
    result = pull(srv, cache, retries="1")
    assert result.exit_code in (0, ExitCode.NETWORK), result.stderr
    assert corrupt_blobs(cache) == []
    if result.exit_code == 0:
        snap = cache / FOLDER / "snapshots" / world.commits["org/model@v2"]
        assert (snap / BIG).read_bytes() == world.contents["org/model@v2"][BIG]


def test_persistent_bad_bytes_fail_cleanly(faulty, tmp_path: Path) -> None:
    srv, plan, _world = faulty
    plan.faults.append(Fault("corrupt", path=BIG, times=-1))
    cache = tmp_path / "cache"
    result = pull(srv, cache, retries="2")
    assert result.exit_code in (ExitCode.CHECK_FAILED, ExitCode.NETWORK), result.stderr
    assert BIG in result.stderr
    assert json.loads(result.stdout)["error"]["exit_code"] == result.exit_code  # --json: the error document
    assert corrupt_blobs(cache) == []
    blobs = [p.name for p in (cache / FOLDER / "blobs").iterdir()] if (cache / FOLDER / "blobs").exists() else []
    sha = hashlib.sha256(_world_bytes(srv)).hexdigest()
    assert sha not in blobs, "a corrupt blob was published"


def _world_bytes(srv: HubServer) -> bytes:
    store = srv.store
    repo = store.repo("model", "org/model")
    assert repo is not None
    commit = store.resolve(repo, "main")
    snap = store.snapshot(repo, commit)  # type: ignore[arg-type]
    return snap.files[BIG].blob_path.read_bytes()  # type: ignore[union-attr]


def test_corrupt_mismatch_exits_1_naming_the_file(faulty, tmp_path: Path) -> None:
    srv, plan, _ = faulty
    plan.faults.append(Fault("corrupt", path=BIG, times=-1))
    result = pull(srv, tmp_path / "cache", retries="1")
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert f"'{BIG}' does not match its sha256" in result.stderr


def test_persistent_500_is_network_error(faulty, tmp_path: Path) -> None:
    srv, plan, _ = faulty
    plan.faults.append(Fault("status", path=BIG, status=500, times=-1))
    result = pull(srv, tmp_path / "cache", retries="1")
    assert result.exit_code == ExitCode.NETWORK
    assert "HTTP 500" in result.stderr


def _partial(cache: Path, content: bytes, data: bytes) -> tuple[Path, str]:
    """A leftover ``blobs/<sha>.incomplete`` holding ``data`` for ``content``; return (blobs, sha)."""
    sha = hashlib.sha256(content).hexdigest()
    blobs = cache / FOLDER / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha}.incomplete").write_bytes(data)
    return blobs, sha


def test_resume_from_partial_across_runs(faulty, tmp_path: Path) -> None:
    srv, _plan, world = faulty
    cache = tmp_path / "cache"
    content = world.contents["org/model@v2"][BIG]
    blobs, sha = _partial(cache, content, content[: len(content) // 2])
    srv.reset_requests()
    result = pull(srv, cache)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    entry = next(f for f in doc["files"] if f["path"] == BIG)
    assert entry["status"] == "resumed"
    assert (blobs / sha).read_bytes() == content
    assert not (blobs / f"{sha}.incomplete").exists()
    assert doc["bytes_downloaded"] < sum(f["size"] for f in doc["files"])


def test_wrong_partial_is_discarded_and_restarted(faulty, tmp_path: Path) -> None:
    srv, _plan, world = faulty
    cache = tmp_path / "cache"
    content = world.contents["org/model@v2"][BIG]
    blobs, sha = _partial(cache, content, b"\xff" * (len(content) // 2))
    result = pull(srv, cache)
    assert result.exit_code == 0, result.stderr
    assert (blobs / sha).read_bytes() == content
    assert corrupt_blobs(cache) == []


def test_partial_the_server_cannot_resume_is_restarted(faulty, tmp_path: Path) -> None:
    srv, plan, world = faulty
    cache = tmp_path / "cache"
    content = world.contents["org/model@v2"][BIG]
    blobs, sha = _partial(cache, content, content[:100])
    plan.faults.append(Fault("status", path=BIG, status=416, times=1))  # Range Not Satisfiable
    result = pull(srv, cache)
    assert result.exit_code == 0, result.stderr
    assert plan.hits == [("status", BIG)]
    assert (blobs / sha).read_bytes() == content
    assert corrupt_blobs(cache) == []


def test_local_file_errors_are_reported_as_local_not_retried(faulty, tmp_path: Path) -> None:
    srv, _plan, _world = faulty
    cache = tmp_path / "cache"
    (cache / FOLDER).mkdir(parents=True)
    (cache / FOLDER / "blobs").write_text("a file where the blobs folder belongs")
    srv.reset_requests()
    result = pull(srv, cache)
    assert result.exit_code == ExitCode.LOCAL, result.stderr
    assert "blobs" in result.stderr and "Traceback" not in result.stderr
    assert not [p for m, p in srv.requests if "/resolve/" in p]  # nothing fetched to be thrown away


def test_unsafe_paths_from_server_are_refused(tmp_path: Path) -> None:
    """A server listing '..' paths: nothing is written outside the cache."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sha1 = "0" * 40
    body = json.dumps(
        {"id": "evil/repo", "sha": "a" * 40, "siblings": [{"rfilename": "../../escape.txt", "size": 3, "blobId": sha1}]}
    ).encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cache = tmp_path / "deep" / "cache"
        result = hfa(
            "pull",
            "evil/repo",
            "--all",
            "--endpoint",
            f"http://127.0.0.1:{srv.server_address[1]}",
            "--cache-dir",
            str(cache),
        )
    finally:
        srv.shutdown()
        srv.server_close()
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "unsafe path" in result.stderr
    assert not list(tmp_path.rglob("escape.txt"))


# -- processes -------------------------------------------------------------------------------------


def _big_world(root: Path, size: int) -> tuple[Path, bytes]:
    rng = random.Random(7)
    block = rng.randbytes(1 << 16)
    content = (block * (size // len(block) + 1))[:size]
    cache = root / "served"
    write_repo(
        cache,
        "org/big",
        {"config.json": b"{}", "weights.safetensors": content, "other.safetensors": content[: size // 3]},
    )
    return cache, content


def _pull_cmd(url: str, cache: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hfa",
        "pull",
        "org/big",
        "--endpoint",
        url,
        "--cache-dir",
        str(cache),
        "--json",
        "--workers",
        "2",
    ]


def test_kill_at_random_points_then_resume(tmp_path: Path) -> None:
    """SIGKILL a pull many times: never a corrupt blob; the rerun completes and reuses partial bytes."""
    served, content = _big_world(tmp_path, 24 * 1024 * 1024)
    plan = FaultPlan()
    plan.faults.append(Fault("throttle", path="*", rate=8 * 1024 * 1024, times=-1))
    cache = tmp_path / "cache"
    env = {**os.environ, "HFA_MAX_RETRIES": "2"}
    rng = random.Random(1)
    saw_partial = False
    with HubServer(ServerConfig(cache_dir=served, faults=plan)) as srv:
        for _ in range(6):
            proc = subprocess.Popen(
                _pull_cmd(srv.url, cache), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(rng.uniform(0.8, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert corrupt_blobs(cache) == []
            saw_partial = saw_partial or bool(list(cache.glob("*/blobs/*.incomplete")))
        plan.faults.clear()
        done = subprocess.run(_pull_cmd(srv.url, cache), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert corrupt_blobs(cache) == []
    snap = Path(doc["snapshot"])
    assert (snap / "weights.safetensors").read_bytes() == content
    assert saw_partial, "no kill landed mid-download: the test did not test anything"
    assert doc["bytes_downloaded"] < doc["bytes_total"], "the rerun did not reuse what earlier runs fetched"


def test_concurrent_processes_pull_the_same_repo(tmp_path: Path) -> None:
    served, content = _big_world(tmp_path, 8 * 1024 * 1024)
    cache = tmp_path / "cache"
    with HubServer(ServerConfig(cache_dir=served)) as srv:
        procs = [
            subprocess.Popen(_pull_cmd(srv.url, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        gets = [path for method, path in srv.requests if method == "GET" and path.endswith("weights.safetensors")]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert Path(json.loads(out)["snapshot"], "weights.safetensors").read_bytes() == content
    assert corrupt_blobs(cache) == []
    assert len(gets) == 1, "the per-blob lock must stop a second download of the same blob"


def test_write_behind_hands_every_written_range_to_the_disk_in_order(monkeypatch, tmp_path: Path) -> None:
    import hfa.hub.partials

    calls: list[tuple[int, int, int, int]] = []
    monkeypatch.setattr(hfa.hub.partials, "_SFR", lambda fd, start, n, flags: calls.append((fd, start, n, flags)) or 0)
    behind = hfa.hub.partials.WriteBehind(7, 1000, 100)  # resuming at byte 1000
    for n in (60, 60, 30, 99, 1, 5):
        behind.wrote(n)
    assert calls == [
        (7, 1000, 120, 2),
        (7, 1120, 129, 2),
    ]  # contiguous, from the resume offset; the tail waits for fsync


def test_write_behind_is_a_no_op_without_sync_file_range(monkeypatch) -> None:
    import hfa.hub.partials

    monkeypatch.setattr(hfa.hub.partials, "_SFR", False)
    behind = hfa.hub.partials.WriteBehind(7, 0, 100)
    behind.wrote(1 << 40)  # would call nothing, raise nothing
    assert behind.call is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_sync_file_range_is_found_and_accepts_a_file(monkeypatch, tmp_path: Path) -> None:
    import hfa.hub.partials

    monkeypatch.setattr(hfa.hub.partials, "_SFR", None)
    call = hfa.hub.partials.sync_file_range()
    assert call is not None
    with (tmp_path / "f").open("wb", buffering=0) as fp:
        fp.write(b"x" * 8192)
        assert call(fp.fileno(), 0, 8192, 2) == 0


def test_hf_hub_download_timeout_bounds_a_silent_server(faulty, tmp_path: Path) -> None:
    srv, plan, _ = faulty
    plan.faults.append(Fault("slow", path=BIG, delay=4.0, times=-1))
    result = hfa(
        "pull", "org/model", "--endpoint", srv.url, "--cache-dir", str(tmp_path / "c"),
        env={"HF_HUB_DOWNLOAD_TIMEOUT": "1", "HFA_MAX_RETRIES": "0"},
    )  # fmt: skip
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert BIG in result.stderr
    assert corrupt_blobs(tmp_path / "c") == []


@pytest.mark.parametrize("var", ["HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT"])
@pytest.mark.parametrize("value", ["soon", "0", "-5", "0.5", "inf", "nan"])
def test_a_bad_timeout_variable_is_a_usage_error(tmp_path: Path, var: str, value: str) -> None:
    result = hfa(
        "pull", "org/model", "--endpoint", "http://127.0.0.1:9", "--cache-dir", str(tmp_path), env={var: value}
    )
    assert result.exit_code == ExitCode.USAGE
    assert var in result.stderr and "seconds" in result.stderr
