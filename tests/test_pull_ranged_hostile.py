"""Ranged downloads against hostile servers: whatever a server sends for a range, the pull ends
(never hangs), never exits 70, and never publishes a wrong blob."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import corrupt_blobs
from hostile_ranges import HostileFront, interrupt, pull_big, pulled_right, range_headers, send, serve_big

from hfa.errors import ExitCode
from hfa.server import HubServer

SIZE = 20_000
CONTENT = random.Random(5).randbytes(SIZE)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[HubServer]:
    with serve_big(tmp_path, CONTENT) as srv:
        yield srv


def _pull(url: str, cache: Path, *args: str, **env: str):
    return pull_big(
        url, cache, *args, target="0", **env
    )  # every connection at once (test_pull_ranged tests the measured count)


def _ok(result, cache: Path) -> dict:
    return pulled_right(result, cache, CONTENT)


def _no_blob(cache: Path) -> None:
    assert corrupt_blobs(cache) == []
    assert not [b for b in cache.glob("*/blobs/*") if not b.name.endswith(".incomplete")]


def _range_headers(h, first: int, last: int, data: bytes, **extra: str) -> dict[str, str]:
    return range_headers(h, first, last, len(data), **extra)


def test_416_to_every_range_falls_back_to_one_stream(origin, tmp_path: Path) -> None:
    def answer(h, first, last, data):
        send(h, 416, {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{len(data)}", "Content-Length": "0"}, b"")

    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c")
    _ok(result, tmp_path / "c")


@pytest.mark.parametrize(
    "kind", ["long_length", "other_total", "multipart", "chunked_long", "chunked_short", "shifted", "trailing_garbage"]
)
def test_wrong_206_answers_never_publish_wrong_bytes(origin, tmp_path: Path, kind: str) -> None:
    def answer(h, first, last, data):
        headers = _range_headers(h, first, last, data)
        body = data[first : last + 1]
        if kind == "long_length":
            headers["Content-Length"] = str(len(body) + 10)
            body += b"x" * 10
        elif kind == "other_total":
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data) + 1}"
        elif kind == "multipart":
            headers.pop("Content-Range")
            headers["Content-Type"] = "multipart/byteranges; boundary=XX"
            body = (
                b"--XX\r\nContent-Range: bytes %d-%d/%d\r\n\r\n" % (first, last, len(data)) + body + b"\r\n--XX--\r\n"
            )
            headers["Content-Length"] = str(len(body))
        elif kind.startswith("chunked"):
            headers.pop("Content-Length")
            headers["Transfer-Encoding"] = "chunked"
            raw = body + b"y" * 500 if kind == "chunked_long" else body[: (len(body) + 1) // 2]
            body = b"%x\r\n" % len(raw) + raw + b"\r\n0\r\n\r\n"
        elif kind == "trailing_garbage":  # more bytes than the Content-Length, on a kept-alive connection
            body += b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + b"x" * 50
        elif kind == "shifted":  # the right Content-Range, other bytes
            body = data[first + 1 : last + 2].ljust(len(body), b"z")
        send(h, 206, headers, body)

    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c")
    assert result.exit_code != ExitCode.INTERNAL, result.stderr
    if kind == "shifted":
        assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
        _no_blob(tmp_path / "c")
    else:
        _ok(result, tmp_path / "c")


def test_an_etag_that_flips_every_range(origin, tmp_path: Path) -> None:
    count = iter(range(10**6))

    def answer(h, first, last, data):
        send(h, 206, _range_headers(h, first, last, data, ETag=f'"v{next(count)}"'), data[first : last + 1])

    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c")
    _ok(result, tmp_path / "c")


def test_a_range_that_stalls_forever_ends_the_pull(origin, tmp_path: Path) -> None:
    release = threading.Event()

    def answer(h, first, last, data):
        headers = _range_headers(h, first, last, data)
        if first == 5000:  # one range sends half, then nothing
            h.send_response(206)
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data[first : first + 100])
            h.wfile.flush()
            release.wait(60)
            return
        send(h, 206, headers, data[first : last + 1])

    started = time.monotonic()
    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c", HF_HUB_DOWNLOAD_TIMEOUT="1", HFA_MAX_RETRIES="1")
        release.set()
    took = time.monotonic() - started
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert took < 20
    _no_blob(tmp_path / "c")


def test_every_other_range_dropped(origin, tmp_path: Path) -> None:
    count = iter(range(10**6))

    def answer(h, first, last, data):
        headers = _range_headers(h, first, last, data)
        if next(count) % 2:
            send(h, 206, headers, data[first : first + (last - first) // 3], close=True)
        else:
            send(h, 206, headers, data[first : last + 1])

    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c")
    _ok(result, tmp_path / "c")


def _cdn_front(origin: HubServer, cdn_answer):
    """Ranged GETs to 127.0.0.1 are redirected to localhost (another origin: a CDN), answered by ``cdn_answer``."""

    def answer(h, first, last, data):
        if h.headers.get("Host", "").startswith("127.0.0.1"):
            port = h.server.server_address[1]
            send(
                h,
                302,
                {"Location": f"http://localhost:{port}{h.path}?sig={random.random()}", "Content-Length": "0"},
                b"",
            )
        else:
            cdn_answer(h, first, last, data)

    return HostileFront(origin.url, answer)


def test_the_token_never_follows_a_range_to_another_host(origin, tmp_path: Path) -> None:
    def cdn(h, first, last, data):
        send(h, 206, _range_headers(h, first, last, data), data[first : last + 1])

    with _cdn_front(origin, cdn) as front:
        result = _pull(front.url, tmp_path / "c", "--token", "hf_secret_token_123")
    _ok(result, tmp_path / "c")
    to_cdn = [h for h in front.headers_seen if h.get("Host", "").startswith("localhost")]
    assert len(to_cdn) >= 2
    assert not [h for h in to_cdn if "Authorization" in h or "authorization" in h]
    assert "hf_secret_token_123" not in result.stdout + result.stderr


def test_a_cdn_that_always_refuses_ends_the_pull(origin, tmp_path: Path) -> None:
    def cdn(h, first, last, data):
        send(h, 403, {"Content-Length": "9"}, b"forbidden")

    with _cdn_front(origin, cdn) as front:
        result = _pull(front.url, tmp_path / "c")
    assert result.exit_code == ExitCode.ACCESS_DENIED, result.stderr
    assert front.ranged <= 4 * 3
    _no_blob(tmp_path / "c")


def test_a_cdn_that_refuses_after_serving_a_range_each_time_ends(origin, tmp_path: Path) -> None:
    """Each fresh signed URL serves one range, then refuses: progress every time, so the pull completes."""
    used: dict[str, int] = {}

    def cdn(h, first, last, data):
        sig = h.path.rpartition("sig=")[2]
        used[sig] = used.get(sig, 0) + 1
        if used[sig] > 1:
            send(h, 403, {"Content-Length": "9"}, b"forbidden")
        else:
            send(h, 206, _range_headers(h, first, last, data), data[first : last + 1])

    with _cdn_front(origin, cdn) as front:
        result = _pull(front.url, tmp_path / "c")
    assert result.exit_code in (0, ExitCode.ACCESS_DENIED), result.stderr
    if result.exit_code == 0:
        _ok(result, tmp_path / "c")
    assert front.ranged < 200


# -- hostile local state ---------------------------------------------------------------------------


def _paths_of(cache: Path) -> tuple[Path, Path]:
    import hashlib

    folder = cache / "models--org--big"
    etag = hashlib.sha256(CONTENT).hexdigest()
    return folder / "blobs" / f"{etag}.incomplete", folder / ".hfa" / "partials" / f"{etag}.json"


def _paths(cache: Path) -> tuple[Path, Path]:
    partial, record = _paths_of(cache)
    partial.parent.mkdir(parents=True)
    record.parent.mkdir(parents=True)
    return partial, record


def _pull_bounded(url: str, cache: Path, seconds: float = 30, **env: str):
    """The pull on a thread: a hang fails the test instead of blocking the suite."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(_pull(url, cache, **env)), daemon=True)
    t.start()
    t.join(seconds)
    assert out, "the pull hung"
    return out[0]


@pytest.mark.parametrize("kind", ["fifo", "link_to_fifo", "link_outside", "dev_zero", "folder"])
def test_a_record_that_is_no_regular_file_is_not_trusted(origin, tmp_path: Path, kind: str) -> None:
    import os

    cache = tmp_path / "c"
    partial, record = _paths(cache)
    partial.write_bytes(b"\0" * SIZE)
    outside = tmp_path / "outside.json"
    etag = partial.name.removesuffix(".incomplete")
    outside.write_text(json.dumps({"format": 1, "etag": etag, "size": SIZE, "validator": None, "done": [[0, SIZE]]}))
    if kind == "fifo":
        os.mkfifo(record)
    elif kind == "link_to_fifo":
        os.mkfifo(tmp_path / "fifo")
        record.symlink_to(tmp_path / "fifo")
    elif kind == "link_outside":
        record.symlink_to(outside)
    elif kind == "dev_zero":
        record.symlink_to("/dev/zero")
    else:
        record.mkdir()
    result = _pull_bounded(origin.url, cache)
    if kind == "folder":  # not hfa's to remove: a clear error
        assert result.exit_code == ExitCode.LOCAL, result.stderr
        assert "Is a directory" in result.stderr and str(record) in result.stderr
    else:
        _ok(result, cache)
    assert outside.exists()


@pytest.mark.parametrize("kind", ["fifo", "link_outside"])
@pytest.mark.parametrize("threshold", ["1", "100000"])
def test_a_partial_that_is_no_regular_file_is_not_written_through(
    origin, tmp_path: Path, kind: str, threshold: str
) -> None:
    import os

    cache = tmp_path / "c"
    partial, _record = _paths(cache)
    outside = tmp_path / "precious.bin"
    outside.write_bytes(b"keep me")
    if kind == "fifo":
        os.mkfifo(partial)
    else:
        partial.symlink_to(outside)
    result = _pull_bounded(origin.url, cache, HFA_RANGED_THRESHOLD=threshold)  # ranged, and one stream
    _ok(result, cache)
    assert outside.read_bytes() == b"keep me"


def test_a_full_disk_is_a_clear_error_and_the_rerun_resumes(origin, tmp_path: Path, monkeypatch) -> None:
    """ENOSPC mid-download (os.pwrite, then the record's write): exit 6 naming it, no blob, no stray
    file; once there is room, the rerun fetches only what the record lacks. Two connections: each range is
    recorded as it completes (one stream records what it wrote every 50 ms, test_pull_ranged's kill test)."""
    import errno
    import os

    cache = tmp_path / "c"
    real_pwrite = os.pwrite
    real_write_text = Path.write_text
    written = 0

    def pwrite(fd, data, offset):
        nonlocal written
        if written >= 7000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written += len(data)
        return real_pwrite(fd, data, offset)

    def write_text(self, text, *args, **kwargs):
        if written >= 7000 and self.name.endswith(".tmp"):
            real_write_text(self, text[:10], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, text, *args, **kwargs)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(Path, "write_text", write_text)
    result = _pull(origin.url, cache, HFA_MAX_CONNECTIONS="2")
    assert result.exit_code == ExitCode.LOCAL, result.stderr
    assert "No space left on device" in result.stderr
    _no_blob(cache)
    assert not list(cache.rglob("*.tmp"))
    _partial, record = _paths_of(cache)
    # the last record that fit: 5 or 6 ranges (a range done on one connection was recorded, or not, as the
    # other's write reached the limit first: the run's last record, and the rest, did not fit)
    had = sum(b - a for a, b in json.loads(record.read_text())["done"])
    assert 5000 <= had <= 7000
    monkeypatch.undo()
    result = _pull(origin.url, cache, HFA_MAX_CONNECTIONS="2")
    doc = _ok(result, cache)
    assert doc["files"][0]["bytes_downloaded"] == SIZE - had
    assert doc["files"][0]["status"] == "resumed"


def test_ctrl_c_with_a_range_stalled_exits_at_once(origin, tmp_path: Path) -> None:
    """A read blocked on a server that stopped sending ends when Ctrl-C comes, not at HF_HUB_DOWNLOAD_TIMEOUT."""
    import os
    import sys

    release = threading.Event()
    answered = threading.Event()

    def answer(h, first, last, data):
        h.send_response(206)
        for k, v in _range_headers(h, first, last, data).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data[first : first + 10])
        h.wfile.flush()
        answered.set()
        release.wait(60)

    env = {
        **os.environ,
        "HFA_RANGED_THRESHOLD": "1",
        "HFA_RANGE_SIZE": "1000",
        "HF_HUB_DOWNLOAD_TIMEOUT": "60",
        "HFA_RANGED_TARGET": "0",
    }
    with HostileFront(origin.url, answer) as front:
        cmd = [sys.executable, "-m", "hfa", "pull", "org/big", "--endpoint", front.url, "--cache-dir", str(tmp_path)]
        code, err, took = interrupt(cmd, env, answered, release, settle=0.5, wait=30)
    assert code == ExitCode.INTERRUPTED, err
    assert took < 5
    _no_blob(tmp_path)


def test_a_fallback_does_not_wait_for_a_stalled_range(origin, tmp_path: Path) -> None:
    """One range stalls, another answers 200 (no ranges after all): the file falls back to one stream at once,
    without waiting HF_HUB_DOWNLOAD_TIMEOUT for the stalled read."""
    release = threading.Event()

    def answer(h, first, last, data):
        if first == 0:
            send(h, 206, _range_headers(h, first, last, data), data[first : last + 1])
        elif first == 1000:
            h.send_response(206)
            for k, v in _range_headers(h, first, last, data).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data[first : first + 10])
            h.wfile.flush()
            release.wait(60)
        else:
            time.sleep(0.5)  # the stalled range is in flight by now
            send(h, 200, {"Content-Length": str(len(data)), "ETag": h.etag}, data)

    started = time.monotonic()
    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c", HF_HUB_DOWNLOAD_TIMEOUT="30", HFA_MAX_CONNECTIONS="2")
        release.set()
    _ok(result, tmp_path / "c")
    assert time.monotonic() - started < 15
