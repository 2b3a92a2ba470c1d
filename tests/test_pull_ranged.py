"""Parallel ranged downloads (hfa.hub.ranged): right bytes at every boundary, resume by range,
fallbacks for servers that do not serve ranges as asked, one bound on connections.

Thresholds and range sizes are made small through the environment (HFA_RANGED_THRESHOLD,
HFA_RANGE_SIZE), so the files stay small and the tests fast.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import corrupt_blobs, hfa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfa.errors import ExitCode
from hfa.hub.partials import MAX_RANGES, RECORD_LIMIT, load_done, plan_segments, range_bytes
from hfa.hub.ranged import connections_for
from hfa.server import HubServer, ServerConfig
from hfa.server.faults import Fault, FaultPlan
from hfa.testing import write_repo

BIG = "weights.safetensors"
_names = itertools.count()


def _content(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def _env(threshold: int, range_size: int, connections: int | None = None, retries: str = "3") -> dict[str, str]:
    env = {
        "HFA_RANGED_THRESHOLD": str(threshold),
        "HFA_RANGE_SIZE": str(range_size),
        "HFA_MAX_RETRIES": retries,
        "HFA_RANGED_TARGET": "0",  # every connection at once: the tests of the adaptive count set their own
    }
    if connections is not None:
        env["HFA_MAX_CONNECTIONS"] = str(connections)
    return env


def _pull(srv: HubServer, repo: str, cache: Path, env: dict[str, str], *args: str):
    return hfa("pull", repo, "--endpoint", srv.url, "--cache-dir", str(cache), "--json", *args, env=env)


def _file(doc: dict, path: str = BIG) -> dict:
    return next(f for f in doc["files"] if f["path"] == path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HubServer, FaultPlan, Path]]:
    plan = FaultPlan()
    root = tmp_path / "served"
    root.mkdir()
    with HubServer(ServerConfig(cache_dir=root, faults=plan)) as srv:
        yield srv, plan, root


def _repo(root: Path, content: bytes) -> str:
    repo = f"org/r{next(_names)}"
    write_repo(root, repo, {BIG: content}, lfs={BIG: True})
    return repo


# -- the plan of ranges ----------------------------------------------------------------------------


@given(
    size=st.integers(1, 5000),
    range_size=st.integers(1, 700),
    cuts=st.lists(st.integers(0, 5000), max_size=8),
)
def test_segments_cover_the_file_in_order(size: int, range_size: int, cuts: list[int]) -> None:
    points = sorted({min(c, size) for c in cuts})
    done = [(a, b) for a, b in zip(points[::2], points[1::2], strict=False) if a < b]
    segments = plan_segments(size, range_size, done)
    pos = 0
    for s in segments:
        assert s.start == pos and s.end > s.start
        pos = s.end
        if (s.start, s.end) in done:
            assert s.done
        else:
            assert s.filled == 0 and s.size <= range_size
            assert s.start // range_size == (s.end - 1) // range_size  # never across a multiple of range_size
    assert pos == size


# -- reassembly over the network -------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_ranges_reassemble_to_the_right_bytes_around_every_boundary(served, tmp_path: Path, data) -> None:
    srv, plan, root = served
    range_size = data.draw(st.integers(1, 300), label="range_size")
    k = data.draw(st.integers(1, 6), label="ranges")
    size = max(1, k * range_size + data.draw(st.sampled_from([-1, 0, 1]), label="delta"))
    connections = data.draw(st.integers(1, 6), label="connections")
    # every connection at once; one stream after the timed first range; the timed first range, then all
    target = data.draw(st.sampled_from(["0", "1", "1000000000000"]), label="target")
    content = _content(size, seed=size)
    repo = _repo(root, content)
    cache = tmp_path / f"cache-{repo[6:]}"
    result = _pull(srv, repo, cache, {**_env(1, range_size, connections), "HFA_RANGED_TARGET": target})
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    f = _file(doc)
    assert f["bytes_downloaded"] == size and 1 <= f["connections"] <= connections
    assert plan.sent[BIG] >= size
    plan.sent.clear()
    assert corrupt_blobs(cache) == []
    assert not list(cache.glob("*/blobs/*.incomplete")) and not list(cache.glob("*/.hfa/partials/*"))


def test_below_the_threshold_one_stream(served, tmp_path: Path) -> None:
    srv, _plan, root = served
    content = _content(5000)
    repo = _repo(root, content)
    result = _pull(srv, repo, tmp_path / "c", _env(5001, 100))
    assert result.exit_code == 0, result.stderr
    assert _file(json.loads(result.stdout))["connections"] == 1
    assert len([p for m, p in srv.requests if m == "GET" and p.endswith(BIG)]) == 1


# -- resume ----------------------------------------------------------------------------------------


def _blob_paths(cache: Path, repo: str, content: bytes) -> tuple[Path, Path]:
    import hashlib

    folder = cache / ("models--" + repo.replace("/", "--"))
    etag = hashlib.sha256(content).hexdigest()
    return folder / "blobs" / f"{etag}.incomplete", folder / ".hfa" / "partials" / f"{etag}.json"


def test_a_single_stream_partial_is_resumed_by_ranges(served, tmp_path: Path) -> None:
    srv, plan, root = served
    content = _content(10_000)
    repo = _repo(root, content)
    cache = tmp_path / "c"
    partial, record = _blob_paths(cache, repo, content)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(content[:3333])  # what today's one-stream pull leaves: a prefix, no record
    result = _pull(srv, repo, cache, _env(1, 1000))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert _file(doc)["status"] == "resumed"
    assert plan.sent[BIG] == 10_000 - 3333
    assert not partial.exists() and not record.exists()


@pytest.mark.parametrize("record_text", [b"{not json", b'{"format": 1}', b"", None])
def test_a_ranged_partial_without_a_good_record_is_fetched_again(served, tmp_path: Path, record_text) -> None:
    srv, plan, root = served
    content = _content(10_000)
    repo = _repo(root, content)
    cache = tmp_path / "c"
    partial, record = _blob_paths(cache, repo, content)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 10_000)  # a ranged partial (sized to the file, holes), never to be trusted
    if record_text is not None:
        record.parent.mkdir(parents=True)
        record.write_bytes(record_text)
    result = _pull(srv, repo, cache, _env(1, 1000))
    assert result.exit_code == 0, result.stderr
    assert (Path(json.loads(result.stdout)["snapshot"]) / BIG).read_bytes() == content
    assert plan.sent[BIG] == 10_000
    assert _file(json.loads(result.stdout))["status"] == "downloaded"  # nothing of the partial was kept


@pytest.mark.parametrize("change", ["truncated", "extended", "other_size_record"])
def test_a_partial_changed_between_runs_is_not_trusted(served, tmp_path: Path, change: str) -> None:
    srv, plan, root = served
    content = _content(10_000)
    repo = _repo(root, content)
    cache = tmp_path / "c"
    partial, record = _blob_paths(cache, repo, content)
    partial.parent.mkdir(parents=True)
    record.parent.mkdir(parents=True)
    etag = partial.name.removesuffix(".incomplete")
    size = 10_000 + (1 if change == "other_size_record" else 0)
    record.write_text(json.dumps({"format": 1, "etag": etag, "size": size, "validator": None, "done": [[0, 5000]]}))
    partial.write_bytes({"truncated": b"\0" * 4000, "extended": b"\0" * 10_001}.get(change, b"\0" * 10_000))
    result = _pull(srv, repo, cache, _env(1, 1000))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert plan.sent[BIG] == 10_000 == _file(doc)["bytes_downloaded"]
    assert corrupt_blobs(cache) == []


def test_a_record_claiming_wrong_bytes_fails_the_hash_and_nothing_wrong_is_published(served, tmp_path: Path) -> None:
    srv, _plan, root = served
    content = _content(10_000)
    repo = _repo(root, content)
    cache = tmp_path / "c"
    partial, record = _blob_paths(cache, repo, content)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\1" * 10_000)
    record.parent.mkdir(parents=True)
    etag = partial.name.removesuffix(".incomplete")
    record.write_text(json.dumps({"format": 1, "etag": etag, "size": 10_000, "validator": None, "done": [[0, 10_000]]}))
    result = _pull(srv, repo, cache, _env(1, 1000))
    assert result.exit_code == 0, result.stderr  # the hash refused the lie; fetched again, verified
    assert (Path(json.loads(result.stdout)["snapshot"]) / BIG).read_bytes() == content
    assert corrupt_blobs(cache) == []


def test_load_done_refuses_records_that_do_not_fit(tmp_path: Path) -> None:
    partial, record = tmp_path / "p", tmp_path / "r.json"
    partial.write_bytes(b"x" * 100)
    for done in ([[0, 101]], [[50, 40]], [[0, 60], [50, 70]], [["a", 3]]):
        record.write_text(json.dumps({"format": 1, "etag": "e", "size": 100, "validator": None, "done": done}))
        assert load_done(record, partial, "e", 100) is None
        assert not partial.exists() and not record.exists()
        partial.write_bytes(b"x" * 100)
    record.write_text(json.dumps({"format": 1, "etag": "e", "size": 100, "validator": "v", "done": [[0, 10]]}))
    assert load_done(record, partial, "e", 100) == ([(0, 10)], "v")


def _pull_cmd(url: str, cache: Path, repo: str) -> list[str]:
    return [sys.executable, "-m", "hfa", "pull", repo, "--endpoint", url, "--cache-dir", str(cache), "--json"]


@pytest.mark.parametrize("target", ["0", "1"], ids=["every-connection", "one-stream"])
def test_kill_at_random_points_then_resume_fetches_only_missing_ranges(served, tmp_path: Path, target: str) -> None:
    """SIGKILL a ranged pull at random points: never a wrong blob; the rerun fetches exactly what the record lacks.
    Over 4 connections, and over the one stream a first connection that reaches HFA_RANGED_TARGET keeps."""
    srv, plan, root = served
    size = 16 * 1024 * 1024  # 4 connections at 1 MB/s each: over 4 s, more than the kills below leave it
    content = _content(size)
    repo = _repo(root, content)
    plan.faults.append(Fault("throttle", path=BIG, rate=1024 * 1024, times=-1))  # 1 MB/s per range answer
    cache = tmp_path / "cache"
    env = {**os.environ, **_env(1, 256 * 1024, 4, retries="2"), "HFA_RANGED_TARGET": target}
    rng = random.Random(3)
    partial, record = _blob_paths(cache, repo, content)
    saw_record = False
    for _ in range(3):
        cmd = _pull_cmd(srv.url, cache, repo)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 1.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert corrupt_blobs(cache) == []
        saw_record = saw_record or record.exists()
    assert saw_record, "no kill landed mid-download: the test did not test anything"
    loaded = load_done(record, partial, partial.name.removesuffix(".incomplete"), size) if record.exists() else None
    had = sum(b - a for a, b in loaded[0]) if loaded else 0
    assert had > 0
    plan.faults.clear()
    plan.sent.clear()
    done = subprocess.run(_pull_cmd(srv.url, cache, repo), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert corrupt_blobs(cache) == []
    assert plan.sent[BIG] == size - had, "the rerun fetched again what the record said was there"
    assert _file(doc)["bytes_downloaded"] == size - had


# -- servers that do not play along ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("ignore_range", path=BIG, times=-1),
        Fault("ignore_range", path=BIG, times=1),
        Fault("no_accept_ranges", path=BIG, times=-1),
        Fault("bad_range", path=BIG, times=-1),
        Fault("bad_range", path=BIG, times=1),
        Fault("etag_change", path=BIG, times=1),
    ],
    ids=lambda f: f"{f.kind}-{'always' if f.times < 0 else 'once'}",
)
@pytest.mark.parametrize("target", ["0", "1"], ids=["every-connection", "measured-one-stream"])
def test_servers_that_do_not_serve_ranges_get_one_stream(served, tmp_path: Path, fault: Fault, target: str) -> None:
    srv, plan, root = served
    content = _content(20_000)
    repo = _repo(root, content)
    plan.faults.append(dataclasses.replace(fault))  # a copy: the plan counts down its `times`
    result = _pull(srv, repo, tmp_path / "c", {**_env(1, 1000, 4), "HFA_RANGED_TARGET": target})
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert plan.hits, "the fault was never applied"
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert _file(doc)["connections"] == 1  # fell back to one stream
    plain = [p for m, p in srv.requests if m == "GET" and p.endswith(BIG)]
    # the first ranged answer, those in flight on the 4 connections when one gave it away, then one stream
    assert len(plain) <= 1 + 4 + 1
    assert corrupt_blobs(tmp_path / "c") == []


@pytest.mark.parametrize("target", ["0", "1"], ids=["every-connection", "measured-one-stream"])
def test_an_expiring_cdn_url_is_resolved_again(served, tmp_path: Path, target: str) -> None:
    srv, plan, root = served
    content = _content(20_000)
    repo = _repo(root, content)
    # one stream asks twice (its timed first range, then the rest): its signed URL expires after one GET
    plan.faults.append(Fault("cdn", path=BIG, times=-1, expire_after=1 if target == "1" else 2))
    result = _pull(srv, repo, tmp_path / "c", {**_env(1, 1000, 3), "HFA_RANGED_TARGET": target})
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert ("cdn-expired", BIG) in plan.hits and sum(1 for k, _ in plan.hits if k == "cdn") >= 2
    assert _file(doc)["connections"] == (1 if target == "1" else 3)


def test_corrupt_ranges_fail_the_hash_and_are_fetched_again(served, tmp_path: Path) -> None:
    srv, plan, root = served
    content = _content(20_000)
    repo = _repo(root, content)
    plan.faults.append(Fault("corrupt", path=BIG, times=1))
    result = _pull(srv, repo, tmp_path / "c", _env(1, 1000, 4))
    assert result.exit_code == 0, result.stderr
    assert (Path(json.loads(result.stdout)["snapshot"]) / BIG).read_bytes() == content
    plan.faults[:] = [Fault("corrupt", path=BIG, times=-1)]
    result = _pull(srv, _repo(root, _content(20_000, 9)), tmp_path / "c2", _env(1, 1000, 4, retries="1"))
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "does not match" in result.stderr
    assert not [b for b in (tmp_path / "c2").glob("*/blobs/*") if not b.name.endswith(".incomplete")]


def test_a_range_that_breaks_off_is_resumed_within_the_range(served, tmp_path: Path) -> None:
    srv, plan, root = served
    content = _content(20_000)
    repo = _repo(root, content)
    plan.faults.append(Fault("drop", path=BIG, after_bytes=300, times=3))
    result = _pull(srv, repo, tmp_path / "c", _env(1, 1000, 4))
    assert result.exit_code == 0, result.stderr
    assert (Path(json.loads(result.stdout)["snapshot"]) / BIG).read_bytes() == content
    assert plan.sent[BIG] < 20_000 + 3 * 1000  # only the broken ranges' rest was asked again


# -- how many connections: measured ---------------------------------------------------------------


@given(
    rate=st.floats(0, 1e12, allow_nan=False),
    faster=st.floats(1, 100),
    target=st.integers(0, 10**12),
    limit=st.integers(1, 256),
)
def test_connections_for_a_rate_stay_in_bounds_and_fall_as_the_rate_rises(
    rate: float, faster: float, target: int, limit: int
) -> None:
    n = connections_for(rate, target, limit)
    assert 1 <= n <= limit
    assert connections_for(rate * faster, target, limit) <= n  # a faster first connection never gets more
    assert connections_for(rate, 0, limit) == limit  # 0: every connection at once


def test_connections_for_the_figures_of_docs_pull() -> None:
    target = 1_000_000_000
    assert connections_for(40e6, target, 16) == 16  # a CDN edge capping each connection at 40 MB/s
    assert connections_for(300e6, target, 16) == 3
    assert connections_for(340e6, target, 16) == 1  # a third of the target: loopback, a LAN: one stream
    assert connections_for(900e6, target, 16) == 1
    assert connections_for(0, target, 16) == 16  # a first connection that brought nothing yet


def test_a_first_connection_that_reaches_the_target_keeps_the_file_to_itself(served, tmp_path: Path) -> None:
    """One stream: its first range is timed, then every range left is asked for in one request."""
    srv, plan, root = served
    content = _content(50_000)
    repo = _repo(root, content)
    result = _pull(srv, repo, tmp_path / "c", {**_env(1, 1000, 4), "HFA_RANGED_TARGET": "1"})
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert _file(doc)["connections"] == 1
    gets = [p for m, p in srv.requests if m == "GET" and p.endswith(BIG)]
    assert len(gets) == 2, gets  # the timed first range, then the other 49 in one request
    assert plan.sent[BIG] == len(content)


def test_a_capped_first_connection_gets_every_connection_granted(served, tmp_path: Path) -> None:
    srv, plan, root = served
    content = _content(200_000)
    repo = _repo(root, content)
    plan.faults.append(Fault("throttle", path=BIG, rate=400_000, times=-1))  # ~0.15 s with 4 connections
    result = _pull(srv, repo, tmp_path / "c", {**_env(1, 10_000, 4), "HFA_RANGED_TARGET": "1000000000"})
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert _file(doc)["connections"] == 4  # 1 GB/s wanted, ~0.4 MB/s per connection: all 4
    assert plan.sent[BIG] == len(content)


# -- one bound on connections ----------------------------------------------------------------------


@pytest.mark.parametrize("bound", [2, 5])
def test_the_connection_bound_holds_for_files_and_ranges_together(tmp_path: Path, monkeypatch, bound: int) -> None:
    """Sockets open at once never exceed --connections, counted by the client (connect to close) and by the
    server (a connection is open at least from its first request to its last); the big file used several."""
    import http.client

    plan = FaultPlan()
    plan.faults.append(Fault("throttle", path="*.safetensors", rate=2 * 1024 * 1024, times=-1))
    root = tmp_path / "served"
    big = _content(400_000)
    files: dict[str, bytes | str] = {BIG: big, "config.json": "{}"}
    for i in range(8):
        files[f"extra-{i}.safetensors"] = _content(20_000, seed=i)
    write_repo(root, "org/mix", files)
    lock = threading.Lock()
    open_now = 0
    client_peak = 0
    connect, close = http.client.HTTPConnection.connect, http.client.HTTPConnection.close

    def counted_connect(self) -> None:
        nonlocal open_now, client_peak
        connect(self)
        with lock:
            self._counted = True
            open_now += 1
            client_peak = max(client_peak, open_now)

    def counted_close(self) -> None:
        nonlocal open_now
        with lock:
            if getattr(self, "_counted", False):
                self._counted = False
                open_now -= 1
        close(self)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", counted_connect)
    monkeypatch.setattr(http.client.HTTPConnection, "close", counted_close)
    with HubServer(ServerConfig(cache_dir=root, faults=plan)) as srv:
        result = _pull(srv, "org/mix", tmp_path / "c", _env(100_000, 20_000), "--connections", str(bound))
    spans: dict[str, list[float]] = {}
    for when, peer in plan.started:
        spans.setdefault(peer, [when, when])[1] = when
    edges = sorted([(a, 0) for a, _ in spans.values()] + [(b, 1) for _, b in spans.values()])  # opens first on ties
    server_peak = max(itertools.accumulate(1 if kind == 0 else -1 for _, kind in edges))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == big
    assert 2 <= client_peak <= bound
    assert 2 <= server_peak <= bound
    assert 2 <= _file(doc)["connections"] <= bound


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HFA_MAX_CONNECTIONS", "0"),
        ("HFA_MAX_CONNECTIONS", "many"),
        ("HFA_MAX_CONNECTIONS", "abc"),
        ("HFA_MAX_CONNECTIONS", "-1"),
        ("HFA_MAX_CONNECTIONS", "100000"),  # a thread and a socket each: refused as --connections 100000 is
        ("HFA_RANGE_SIZE", "0"),
        ("HFA_RANGED_THRESHOLD", "-1"),
        ("HFA_RANGED_TARGET", "-1"),
        ("HFA_RANGED_TARGET", "fast"),
        ("HFA_RANGED_TARGET", "1e9"),
        ("HFA_RANGED_TARGET", "1" + "0" * 400),  # int, but no float: connections_for overflowed (exit 70)
        ("HFA_RANGED_TARGET", "9" * 5000),  # more digits than int() takes: a ValueError (exit 70)
        ("HFA_RANGED_THRESHOLD", "9" * 5000),
        ("HF_HUB_DOWNLOAD_TIMEOUT", "1000000000000"),  # no socket takes it: OverflowError (exit 70)
        ("HFA_MIN_SPEED_TIME", "1" + "0" * 400),
        ("HFA_MAX_RETRIES", "-1"),  # int() took it, and it meant 0
        ("HFA_MAX_RETRIES", "1_0"),  # int() took it as 10
        ("HFA_MAX_RETRIES", "101"),
        ("HFA_MAX_RETRIES", "9" * 5000),
    ],
    ids=lambda v: v if len(v) < 30 else f"{v[:3]}...{len(v)}-digits",
)
def test_bad_settings_exit_2_naming_the_variable(tmp_path: Path, name: str, value: str) -> None:
    result = hfa(
        "pull", "org/x", "--cache-dir", str(tmp_path / "c"), "--endpoint", "http://127.0.0.1:9", env={name: value}
    )
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert name in result.stderr and f"set {name}=" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "257", "100000", "abc"])
def test_connections_option_is_bounded(tmp_path: Path, value: str) -> None:
    result = hfa("pull", "org/x", "--connections", value, "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == ExitCode.USAGE
    assert "--connections" in result.stderr


def test_load_done_refuses_hostile_records_without_failing(tmp_path: Path) -> None:
    """Deeply nested, oversized, or holding more intervals than any run writes: not trusted, never an error."""
    partial, record = tmp_path / "p", tmp_path / "r.json"
    many = [[2 * i, 2 * i + 1] for i in range(5 * MAX_RANGES)]
    for text in (
        b"[" * 200_000,
        b'{"format": 1, "done": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b" " * (RECORD_LIMIT + 10),
        json.dumps({"format": 1, "etag": "e", "size": 10 * MAX_RANGES, "validator": None, "done": many}).encode(),
    ):
        partial.write_bytes(b"x" * 10 * MAX_RANGES)
        record.write_bytes(text)
        assert load_done(record, partial, "e", 10 * MAX_RANGES) is None
        assert not partial.exists() and not record.exists()


@pytest.mark.parametrize("size", [1, 1000, 64 << 20, 10 << 30, 1 << 40])
@pytest.mark.parametrize("range_size", [1, 1000, 16 << 20])
@pytest.mark.parametrize("connections", [1, 16, 256])
def test_a_file_is_cut_into_a_bounded_number_of_ranges(size: int, range_size: int, connections: int) -> None:
    """HFA_RANGE_SIZE=1 on a 1 TB file must not plan a trillion ranges (memory, requests)."""
    cut = range_bytes(size, range_size, connections)
    assert cut >= 1 and -(-size // cut) <= MAX_RANGES
    assert cut <= max(range_size, -(-size // MAX_RANGES))  # HFA_RANGE_SIZE is the largest range unless too many
    if size < (1 << 30):
        assert len(plan_segments(size, cut, [])) <= MAX_RANGES


def test_two_pulls_of_one_big_file_at_once_fetch_it_once(served, tmp_path: Path) -> None:
    srv, plan, root = served
    size = 4 * 1024 * 1024
    content = _content(size)
    repo = _repo(root, content)
    plan.faults.append(Fault("throttle", path=BIG, rate=2 * 1024 * 1024, times=-1))  # ~0.5 s with 4 connections
    cache = tmp_path / "cache"
    env = {**os.environ, **_env(1, 256 * 1024, 4)}
    procs = [
        subprocess.Popen(_pull_cmd(srv.url, cache, repo), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()
        assert (Path(json.loads(out)["snapshot"]) / BIG).read_bytes() == content
    statuses = sorted(_file(json.loads(out))["status"] for out, _ in outs)
    assert statuses == ["cached", "downloaded"]  # one waited on the blob's lock, then found it there
    assert plan.sent[BIG] == size
    assert corrupt_blobs(cache) == []


def test_ctrl_c_mid_ranged_pull_exits_130_and_the_rerun_resumes(served, tmp_path: Path) -> None:
    srv, plan, root = served
    size = 8 * 1024 * 1024
    content = _content(size)
    repo = _repo(root, content)
    plan.faults.append(Fault("throttle", path=BIG, rate=1024 * 1024, times=-1))  # 4 connections: ~2 s
    cache = tmp_path / "cache"
    partial, record = _blob_paths(cache, repo, content)
    env = {**os.environ, **_env(1, 256 * 1024, 4)}
    proc = subprocess.Popen(_pull_cmd(srv.url, cache, repo), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (record.exists() and partial.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err.decode()
    assert time.monotonic() - started < 5  # no waiting for ranges in flight to finish
    assert "Traceback" not in err.decode()
    assert corrupt_blobs(cache) == []
    loaded = load_done(record, partial, partial.name.removesuffix(".incomplete"), size)
    assert loaded is not None
    had = sum(b - a for a, b in loaded[0])
    assert 0 < had < size
    plan.faults.clear()
    plan.sent.clear()
    result = _pull(srv, repo, cache, _env(1, 256 * 1024, 4))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    f = _file(doc)
    assert f["status"] == "resumed" and f["bytes_downloaded"] == size - had == plan.sent[BIG]
    assert f["seconds"] > 0 and 1 <= f["connections"] <= 4


def test_a_big_file_fetched_again_keeps_one_progress_line() -> None:
    """A ranged file whose bytes failed the hash is fetched again: its line starts over, no stale line stays."""
    from rich.console import Console
    from rich.progress import Progress

    from hfa.cli.pull import RichProgress
    from hfa.hub.download import FetchOutcome
    from hfa.resolve.files import RemoteFile

    progress = Progress(console=Console(file=open(os.devnull, "w")))  # noqa: SIM115
    bars = RichProgress(progress)
    bars.start(1000, 1)
    f = RemoteFile(path=BIG, size=1000, blob_id="0" * 40, lfs_sha256="1" * 64)
    bars.big_file(f)(600)
    bars.big_file(f)(1000)  # the second try
    assert len(progress.tasks) == 2  # the files line and one line for the big file
    assert progress.tasks[1].completed == 1000
    bars.file_done(FetchOutcome(BIG, "1" * 64, 1000, "downloaded", 1600))
    assert len(progress.tasks) == 1


def test_a_partial_cut_short_while_hashing_is_a_local_error(tmp_path: Path) -> None:
    """Another program truncating the partial under a ranged download: exit 6 naming it, never 70."""
    import hashlib

    from hfa.errors import LocalError
    from hfa.hub.connections import Connections
    from hfa.hub.ranged import _Ranged

    fd = os.open(tmp_path / "p", os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, 100)
        job = _Ranged(
            None,  # type: ignore[arg-type]
            type("F", (), {"path": BIG, "size": 1000})(),  # type: ignore[arg-type]
            fd,
            plan_segments(1000, 1000, [(0, 1000)]),
            url="http://x",
            ref=None,
            cancel=threading.Event(),
            on_bytes=lambda n: None,
            save=lambda s, v: None,
            validator=None,
        )
        assert Connections(1).limit == 1
        with pytest.raises(LocalError, match="shorter"):
            job.hash_prefix(hashlib.sha256(), threading.Event(), None)
    finally:
        os.close(fd)


def test_quiet_ranged_pull_prints_only_the_snapshot(served, tmp_path: Path) -> None:
    srv, _plan, root = served
    content = _content(20_000)
    repo = _repo(root, content)
    cache = tmp_path / "c"
    result = hfa("pull", repo, "--endpoint", srv.url, "--cache-dir", str(cache), "-q", env=_env(1, 1000, 4))
    assert result.exit_code == 0, result.stderr
    snapshot = Path(result.stdout.strip())
    assert (snapshot / BIG).read_bytes() == content
    assert not [line for line in result.stderr.splitlines() if BIG in line and "Warning" not in line]
    assert "files 0/" not in result.stderr and "/s" not in result.stderr
