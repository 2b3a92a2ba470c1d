"""The measured one stream (HFA_RANGED_TARGET reached by the first connection: every range left asked for in
one request) against hostile servers, flaky networks and odd settings: the pull ends, never publishes a wrong
blob, and a rerun fetches only what is missing."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import corrupt_blobs
from hostile_ranges import BIG, HostileFront, interrupt, pull_big, pulled_right, range_headers, send, serve_big

from hfa.errors import ExitCode
from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo

SIZE = 20_000
CONTENT = random.Random(11).randbytes(SIZE)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[HubServer]:
    with serve_big(tmp_path, CONTENT) as srv:
        yield srv


def _pull(url: str, cache: Path, *args: str, **env: str):
    return pull_big(url, cache, *args, target="1", **env)  # the first connection always reaches it: one stream


def _ok(result, cache: Path) -> dict:
    return pulled_right(result, cache, CONTENT)


def _headers(h, first: int, last: int, **extra: str) -> dict[str, str]:
    return range_headers(h, first, last, SIZE, **extra)


def test_a_server_that_cuts_every_answer_after_a_fixed_count_still_delivers(origin, tmp_path: Path) -> None:
    """Each answer breaks off after 400 bytes (less than a quarter of the one stream's long request, more than a
    quarter of a range): progress every try, as it is over ranges, so the pull completes."""

    def answer(h, first, last, data):
        end = min(last + 1, first + 400)
        send(h, 206, _headers(h, first, last), data[first:end], close=True)

    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c")
    doc = _ok(result, tmp_path / "c")
    assert doc["files"][0]["connections"] == 1


def _paths(cache: Path) -> tuple[Path, Path]:
    import hashlib

    folder = cache / "models--org--big"
    etag = hashlib.sha256(CONTENT).hexdigest()
    return folder / "blobs" / f"{etag}.incomplete", folder / ".hfa" / "partials" / f"{etag}.json"


def _recorded(cache: Path) -> list[list[int]]:
    _partial, record = _paths(cache)
    return json.loads(record.read_text())["done"]


def _start(h, first: int, last: int, data: bytes, upto: int) -> None:
    """Headers of a good answer and the body up to byte ``upto`` (exclusive), then nothing more."""
    h.send_response(206)
    for k, v in _headers(h, first, last).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data[first:upto])
    h.wfile.flush()


def test_the_long_request_stalling_ends_the_pull_and_the_rerun_fetches_the_rest(origin, tmp_path: Path) -> None:
    """The first range comes at once; the one request for the rest sends 5000 bytes, then nothing, and asked again
    nothing at all: the pull ends at HF_HUB_DOWNLOAD_TIMEOUT (exit 5), the record holds what the long request
    wrote, the rerun asks only for the rest."""
    release = threading.Event()
    asked: list[tuple[int, int]] = []

    def answer(h, first, last, data):
        asked.append((first, last))
        if last - first + 1 > 1000:  # the long request
            _start(h, first, last, data, first + (5000 if first == 1000 else 0))
            release.wait(30)
            return
        send(h, 206, _headers(h, first, last), data[first : last + 1])

    cache = tmp_path / "c"
    started = time.monotonic()
    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, cache, HF_HUB_DOWNLOAD_TIMEOUT="1", HFA_MAX_RETRIES="0")
        release.set()
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert time.monotonic() - started < 8
    assert asked == [(0, 999), (1000, SIZE - 1), (6000, SIZE - 1)]
    assert _recorded(cache) == [[0, 6000]]
    asked.clear()
    with HostileFront(origin.url, lambda h, a, b, d: send(h, 206, _headers(h, a, b), d[a : b + 1])) as front:
        doc = _ok(_pull(front.url, cache), cache)
    assert doc["files"][0]["bytes_downloaded"] == SIZE - 6000
    assert doc["files"][0]["status"] == "resumed"


# The pull in a child whose record writes are slow once Ctrl-C has come: the final record (what came since the
# last one) is written only if the process waits for the download thread after Ctrl-C, as it must.
_SLOW_RECORD_AFTER_CTRL_C = """
import signal, sys, time
import hfa.hub.ranged as ranged
interrupted = []
def on_int(signum, frame):
    interrupted.append(True)
    raise KeyboardInterrupt
signal.signal(signal.SIGINT, on_int)
save = ranged.save_record
def slow_save(*args, **kwargs):
    if interrupted:
        time.sleep(0.3)
    save(*args, **kwargs)
ranged.save_record = slow_save
from hfa.cli.entry import main
sys.argv[0] = "hfa"
main()
"""


def test_ctrl_c_while_the_long_request_stalls_exits_130_at_once_and_records_what_came(origin, tmp_path: Path) -> None:
    """The long request sends 3000 bytes at once, then nothing; Ctrl-C: exit 130 within a second or so, and the
    record holds the 3000 bytes (the final record, written after Ctrl-C: CPython 3.10-3.12 marked the download
    thread stopped when Ctrl-C cut short the join waiting for it, and the process exited without it)."""
    import os
    import sys

    release = threading.Event()
    stalled = threading.Event()

    def answer(h, first, last, data):
        if last - first + 1 > 1000:
            _start(h, first, last, data, first + 3000)
            stalled.set()
            release.wait(30)
            return
        send(h, 206, _headers(h, first, last), data[first : last + 1])

    env = {
        **os.environ,
        "HFA_RANGED_THRESHOLD": "1",
        "HFA_RANGE_SIZE": "1000",
        "HF_HUB_DOWNLOAD_TIMEOUT": "60",
        "HFA_RANGED_TARGET": "1",
    }
    cache = tmp_path / "c"
    with HostileFront(origin.url, answer) as front:
        cmd = [sys.executable, "-c", _SLOW_RECORD_AFTER_CTRL_C, "pull", "org/big", "--endpoint", front.url]
        # SIGINT once past the last 50 ms record
        code, err, took = interrupt([*cmd, "--cache-dir", str(cache)], env, stalled, release, settle=0.3, wait=8)
    assert code == ExitCode.INTERRUPTED, err
    assert took < 3
    assert _recorded(cache) == [[0, 4000]], err


def test_ctrl_c_while_the_calling_thread_waits_for_stalled_helpers_stops_them(origin, tmp_path: Path) -> None:
    """A file fetched on the main thread (hfa verify --fix): it has fetched every range but one a helper waits on,
    stalled, when Ctrl-C comes. The helper's read is ended and waited for, the record written, then the
    KeyboardInterrupt raised: no thread of the download outlives it (it wrote on into a closed descriptor,
    whose number the next open file reuses)."""
    import signal

    from hfa.config import Settings
    from hfa.hub.client import OnlineHub
    from hfa.hub.download import Fetcher
    from hfa.resolve.refs import RepoRef
    from hfa.store import LocalStore

    release = threading.Event()
    stalled = threading.Event()

    def answer(h, first, last, data):
        if first == 1000:
            _start(h, first, last, data, first + 100)
            stalled.set()
            release.wait(30)
            return
        send(h, 206, _headers(h, first, last), data[first : last + 1])

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    cache = tmp_path / "c"
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        with HostileFront(origin.url, answer) as front:
            settings = Settings(
                cache_dir=cache,
                endpoint=front.url,
                offline=False,
                ranged_threshold=1,
                range_size=1000,
                ranged_target=0,
                max_connections=4,
            )
            hub = OnlineHub(settings)
            ref = RepoRef("org/big")
            resolved = hub.resolve(ref)
            fetcher = Fetcher(hub, LocalStore(cache, "model", "org/big"), ref, resolved.commit, connections=4)

            def ctrl_c() -> None:
                stalled.wait(8)
                time.sleep(0.5)  # the other ranges are in: the main thread waits for the helpers
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

            threading.Thread(target=ctrl_c, daemon=True).start()
            started = time.monotonic()
            try:
                with pytest.raises(KeyboardInterrupt):
                    fetcher.fetch_one(resolved.files[BIG])
                took = time.monotonic() - started
                left = [t.name for t in threading.enumerate() if t.name.startswith(("hfa-range", "hfa-hash"))]
            finally:
                release.set()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert left == []
    assert took < 5
    assert _recorded(cache) == [[0, 1100], [2000, SIZE]]


# -- the long request answered wrong -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "200",
        "416",
        "other_range",
        "other_etag",
        "no_accept_ranges",
        "long_length",
        "extra_bytes",
        "short",
        "chunked_long",
        "chunked_short",
    ],
)
def test_the_long_request_answered_wrong(origin, tmp_path: Path, kind: str) -> None:
    """The timed first range is answered right, the one request for the rest wrong: the file falls back to one
    stream from what is written (or the extra bytes are never read), the right bytes are published."""
    longs: list[int] = []

    def answer(h, first, last, data):
        headers = _headers(h, first, last)
        body = data[first : last + 1]
        if last - first + 1 > 1000 and not longs:
            longs.append(first)
            if kind == "200":
                return send(h, 200, {"Content-Length": str(SIZE), "ETag": h.etag}, data)
            if kind == "416":
                return send(h, 416, {"Content-Range": f"bytes */{SIZE}", "Content-Length": "0"}, b"")
            if kind == "other_range":
                headers["Content-Range"] = f"bytes {first}-{last - 1}/{SIZE}"
            elif kind == "other_etag":
                headers["ETag"] = '"another"'
            elif kind == "no_accept_ranges":
                headers.pop("Accept-Ranges")
            elif kind == "long_length":
                headers["Content-Length"] = str(len(body) + 10)
                body += b"x" * 10
            elif kind == "extra_bytes":  # more than the Content-Length, on a kept-alive connection
                body += b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + b"x" * 5000
            elif kind == "short":
                headers["Content-Length"] = str(len(body) - 1)
                body = body[:-1]
            elif kind.startswith("chunked"):
                headers.pop("Content-Length")
                headers["Transfer-Encoding"] = "chunked"
                raw = body + b"y" * 5000 if kind == "chunked_long" else body[: len(body) // 2]
                body = b"%x\r\n" % len(raw) + raw + b"\r\n0\r\n\r\n"
        send(h, 206, headers, body)

    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c")
    _ok(result, tmp_path / "c")
    assert longs == [1000]
    assert front.ranged <= 4


def test_a_corrupt_byte_in_the_long_request_is_never_published(origin, tmp_path: Path) -> None:
    """One byte flipped deep in the one request for the rest: the hash fails, the file is fetched again (right,
    this time), and both tries count as downloaded (the corrupt one was not); flipped every time, the pull fails
    (exit 1) and no blob is published."""
    flips: list[int] = []
    always = False

    def answer(h, first, last, data):
        body = bytearray(data[first : last + 1])
        if last - first + 1 > 1000 and (always or not flips):
            flips.append(first)
            body[12_345 - first] ^= 1
        send(h, 206, _headers(h, first, last), bytes(body))

    with HostileFront(origin.url, answer) as front:
        doc = _ok(_pull(front.url, tmp_path / "c"), tmp_path / "c")
        assert len(flips) == 1
        assert doc["files"][0]["bytes_downloaded"] == 2 * SIZE  # the corrupt try's bytes crossed the network too
        always = True
        result = _pull(front.url, tmp_path / "c2", HFA_MAX_RETRIES="1")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert corrupt_blobs(tmp_path / "c2") == []
    assert not [b for b in (tmp_path / "c2").glob("*/blobs/*") if not b.name.endswith(".incomplete")]


def test_a_first_answer_with_headers_and_no_body_lets_the_helpers_decide(origin, tmp_path: Path) -> None:
    """The first range's headers come, its body does not: the helpers judge it by the clock (nothing in 15 ms:
    every connection) and fetch the rest; the first range is asked again once its read times out."""
    release = threading.Event()
    firsts: list[int] = []

    def answer(h, first, last, data):
        if first == 0 and not firsts:
            firsts.append(first)
            _start(h, first, last, data, 0)
            release.wait(30)
            return
        send(h, 206, _headers(h, first, last), data[first : last + 1])

    started = time.monotonic()
    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c", HFA_RANGED_TARGET="1000000000", HF_HUB_DOWNLOAD_TIMEOUT="2")
        release.set()
    doc = _ok(result, tmp_path / "c")
    assert doc["files"][0]["connections"] == 4
    assert time.monotonic() - started < 8


# -- resume and odd settings -----------------------------------------------------------------------------


def _seed(cache: Path, done: list[list[int]]) -> None:
    """A partial holding ``done`` (the rest zeros) and its record, as a run killed there leaves them."""
    partial, record = _paths(cache)
    partial.parent.mkdir(parents=True)
    record.parent.mkdir(parents=True)
    data = bytearray(SIZE)
    for a, b in done:
        data[a:b] = CONTENT[a:b]
    partial.write_bytes(bytes(data))
    etag = partial.name.removesuffix(".incomplete")
    record.write_text(json.dumps({"format": 1, "etag": etag, "size": SIZE, "validator": None, "done": done}))


@pytest.mark.parametrize("target", ["1", "0"], ids=["one-stream", "every-connection"])
@pytest.mark.parametrize(
    "done",
    [
        [[0, 3000], [5000, 5500], [9000, SIZE]],  # holes as every connection at once leaves them
        [[0, 6123]],  # one stream cut inside a range
        [[0, 999]],  # the first range but its last byte
        [[1, SIZE]],  # all but the first byte
        [[2500, 2501], [17_000, 17_001]],  # two single bytes
    ],
    ids=["holes", "inside-a-range", "first-range-short", "first-byte", "two-bytes"],
)
def test_a_record_of_either_mode_is_resumed_by_either(origin, tmp_path: Path, done: list[list[int]], target: str):
    cache = tmp_path / "c"
    _seed(cache, done)
    asked: list[tuple[int, int]] = []

    def answer(h, first, last, data):
        asked.append((first, last))
        send(h, 206, _headers(h, first, last), data[first : last + 1])

    with HostileFront(origin.url, answer) as front:
        doc = _ok(_pull(front.url, cache, HFA_RANGED_TARGET=target), cache)
    had = sum(b - a for a, b in done)
    assert doc["files"][0]["bytes_downloaded"] == SIZE - had
    assert sum(b + 1 - a for a, b in asked) == SIZE - had  # nothing asked twice, nothing recorded asked again
    if target == "1":  # the timed range, then one request per hole left
        holes = [(a, b) for (_, a), (b, _) in zip([[0, 0], *done], [*done, [SIZE, SIZE]], strict=True) if b > a]
        assert len(asked) <= len(holes) + 1


@pytest.mark.parametrize(
    ("env", "requests"),
    [
        ({"HFA_MAX_CONNECTIONS": "1"}, 2),  # --connections 1: timed, then the rest in one request
        ({"HFA_MAX_CONNECTIONS": "1", "HFA_RANGED_TARGET": "0"}, 1),  # nothing to measure: one request
        ({"HFA_MAX_CONNECTIONS": "1", "HFA_RANGED_TARGET": "1000000000000"}, 2),
        ({"HFA_RANGE_SIZE": str(SIZE)}, 1),  # one range: the first is the whole file
        ({"HFA_RANGE_SIZE": str(10 * SIZE)}, 1),
        ({"HFA_RANGED_THRESHOLD": "0"}, None),  # every file ranged
        ({"HFA_RANGE_SIZE": str(SIZE - 1)}, 2),  # a first range of all but the last byte
    ],
    ids=[
        "connections-1",
        "connections-1-target-0",
        "connections-1-huge-target",
        "one-range",
        "range-over-size",
        "threshold-0",
        "last-byte-alone",
    ],
)
def test_odd_settings_with_the_measured_path(origin, tmp_path: Path, env: dict[str, str], requests: int | None):
    asked: list[tuple[int, int]] = []

    def answer(h, first, last, data):
        asked.append((first, last))
        send(h, 206, _headers(h, first, last), data[first : last + 1])

    with HostileFront(origin.url, answer) as front:
        doc = _ok(_pull(front.url, tmp_path / "c", **env), tmp_path / "c")
    assert doc["files"][0]["connections"] == 1
    if requests is not None:
        assert len(asked) == requests, asked
    assert sum(b + 1 - a for a, b in asked) == SIZE


def test_a_long_request_that_trickles_is_cut_by_the_min_speed_rule(origin, tmp_path: Path) -> None:
    """The rest dripped at ~200 bytes/s (each try less than a quarter of a range): cut after HFA_MIN_SPEED_TIME,
    asked again HFA_MAX_RETRIES times, then exit 5, the timed range recorded. (What dripped into a read the rule
    cut short before it filled is not kept: a read asks for up to a range's rest, 1 MiB at most.)"""
    stop = threading.Event()

    def answer(h, first, last, data):
        if last - first + 1 <= 1000:
            return send(h, 206, _headers(h, first, last), data[first : last + 1])
        _start(h, first, last, data, first)
        for at in range(first, last + 1, 20):
            if stop.wait(0.1):
                return
            h.wfile.write(data[at : min(at + 20, last + 1)])
            h.wfile.flush()

    cache = tmp_path / "c"
    started = time.monotonic()
    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, cache, HFA_MIN_SPEED="1024", HFA_MIN_SPEED_TIME="1", HFA_MAX_RETRIES="1")
        stop.set()
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "slower than 1024 bytes/s" in result.stderr
    assert time.monotonic() - started < 8
    assert _recorded(cache) == [[0, 1000]]


def test_a_failure_ends_the_wait_for_a_lock_another_process_holds(tmp_path: Path) -> None:
    """Another download of one blob holds its lock (hf download, another pull) when another file of the pull
    fails: the pull ends with that failure at once, not once the other download is done (its worker waited
    on the lock, which nothing cancelled)."""
    import hashlib
    import os
    import subprocess
    import sys

    from filelock import FileLock

    from hfa.server.faults import Fault, FaultPlan

    write_repo(tmp_path / "served", "org/two", {BIG: CONTENT, "config.json": b"{}"}, lfs={BIG: True})
    plan = FaultPlan([Fault("status", path="config.json", status=404, times=-1)])
    cache = tmp_path / "c"
    locks = cache / ".locks" / "models--org--two"
    locks.mkdir(parents=True)
    env = {**os.environ, "HFA_RANGED_THRESHOLD": "1", "HFA_RANGE_SIZE": "1000"}
    with (
        HubServer(ServerConfig(cache_dir=tmp_path / "served", faults=plan)) as srv,
        FileLock(str(locks / f"{hashlib.sha256(CONTENT).hexdigest()}.lock")),
    ):
        cmd = [sys.executable, "-m", "hfa", "pull", "org/two", "--endpoint", srv.url, "--cache-dir", str(cache)]
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=8)
        except subprocess.TimeoutExpired:
            pytest.fail("the pull waited for the lock another process holds")
    assert done.returncode == ExitCode.NOT_FOUND, done.stderr
    assert "config.json" in done.stderr
    assert time.monotonic() - started < 6


@pytest.mark.parametrize("threshold", ["1", "100000"], ids=["ranged", "one-stream-below-threshold"])
def test_ctrl_c_while_the_server_holds_back_its_headers_exits_within_a_second(
    origin, tmp_path: Path, threshold: str
) -> None:
    """The file's GET is sent and its answer never starts (nothing can cancel a wait for headers): Ctrl-C exits
    130 after the second the other downloads get to write their records, not at HF_HUB_DOWNLOAD_TIMEOUT (a
    ranged pull waited for it; a thread left waiting no longer keeps the process)."""
    import os
    import sys

    release = threading.Event()
    asked = threading.Event()

    def hold(h, *args) -> bool:
        asked.set()
        release.wait(30)
        return True

    env = {**os.environ, "HFA_RANGED_THRESHOLD": threshold, "HFA_RANGE_SIZE": "1000", "HF_HUB_DOWNLOAD_TIMEOUT": "30"}
    with HostileFront(origin.url, hold, whole=hold) as front:
        cmd = [sys.executable, "-m", "hfa", "pull", "org/big", "--endpoint", front.url, "--cache-dir", str(tmp_path)]
        code, err, took = interrupt(cmd, env, asked, release, settle=0.3, wait=6)
    assert code == ExitCode.INTERRUPTED, err
    assert took < 2.5
