"""hfa serve on its engine (issue 14 §1): the WSGI factory, graceful SIGTERM, many clients at once,
stalled connections. The conformance suite (test_server_conformance.py) covers the Hub contract."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import World
from huggingface_hub import hf_hub_download

from hfa.server import HubServer, ServerConfig
from hfa.server.wsgi import create_app
from hfa.testing import write_repo


def _call(app, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[str, dict, bytes]:
    """Run a WSGI app once, as a minimal WSGI server without a file wrapper would."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path.partition("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    for key, value in (headers or {}).items():
        environ["HTTP_" + key.upper().replace("-", "_")] = value
    got: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return got["status"], got["headers"], data


def test_the_factory_serves_the_hub_contract_to_any_wsgi_server(world: World) -> None:
    app = create_app(ServerConfig(cache_dir=world.cache_dir))
    status, headers, body = _call(app, "/org/model/resolve/main/config.json")
    assert status == "200 OK" and body == world.contents["org/model@v2"]["config.json"]
    assert headers["X-Repo-Commit"] == world.commits["org/model@v2"] and headers["X-Request-Id"]
    status, headers, body = _call(app, "/org/model/resolve/main/config.json", headers={"Range": "bytes=1-3"})
    assert status.startswith("206") and body == world.contents["org/model@v2"]["config.json"][1:4]
    status, headers, body = _call(app, "/org/model/resolve/main/nope.json", method="HEAD")
    assert status.startswith("404") and headers["X-Error-Code"] == "EntryNotFound" and body == b""
    status, headers, _ = _call(app, "/api/models/org/model", headers={"X-Request-Id": "abc-123"})
    assert status == "200 OK" and headers["X-Request-Id"] == "abc-123"


def test_the_factory_reads_its_config_from_the_environment(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFA_SERVE_CACHE", str(world.cache_dir))
    app = create_app()
    status, _, body = _call(app, "/org/model/resolve/main/config.json")
    assert status == "200 OK" and body == world.contents["org/model@v2"]["config.json"]


def _serve(cache: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    argv = [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(cache), "--port", "0", "-q", *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().decode().strip()


def test_sigterm_lets_a_download_in_flight_finish_then_exits_0(tmp_path: Path) -> None:
    data = os.urandom(4 * 1024 * 1024)
    write_repo(tmp_path / "cache", "org/big", {"big.bin": data})
    proc, url = _serve(tmp_path / "cache", "--grace", "20")
    try:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.sendall(b"GET /org/big/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = sock.recv(65536)
            proc.send_signal(signal.SIGTERM)
            start = time.monotonic()
            while True:  # a slow reader: ~4 MiB in about 2 s
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
                time.sleep(0.03)
            assert time.monotonic() - start > 0.5, "the download was not in flight when SIGTERM came"
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        assert proc.wait(timeout=20) == 0
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection((host, int(port)), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_with_no_download_exits_at_once(world: World) -> None:
    proc, _url = _serve(world.cache_dir)
    try:
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - start < 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_50_concurrent_clients_all_get_verified_bytes(tmp_path: Path) -> None:
    """Issue 14's figure: 50 concurrent `hf download` clients of a 200 MB model all get verified bytes.
    Measured here (2026-12-07, 2 cores, load average 3-4, the clients in this process beside the server):
    32 s. The clients write and hash 10 GB on the same 2 cores as the server; one cut for not reading
    within --timeout under load resumes, so a few extra GETs are allowed."""
    data = os.urandom(200_000_000)
    write_repo(tmp_path / "cache", "org/big", {"model.safetensors": data})
    want = hashlib.sha256(data).hexdigest()
    with HubServer(ServerConfig(cache_dir=tmp_path / "cache")) as srv:

        def one(i: int) -> str:
            path = hf_hub_download(
                "org/big", "model.safetensors", endpoint=srv.url, cache_dir=tmp_path / f"c{i}", token=False
            )
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            Path(path).unlink()  # keep the disk use bounded
            return digest

        start = time.monotonic()
        with ThreadPoolExecutor(50) as pool:
            digests = list(pool.map(one, range(50)))
        assert digests == [want] * 50
        assert time.monotonic() - start < 300
        gets = sum(1 for m, p in srv.requests if m == "GET" and p.endswith("model.safetensors"))
        assert gets >= 50


def test_300_stalled_clients_do_not_stop_a_download_and_are_closed_after_the_timeout(
    world: World, tmp_path: Path
) -> None:
    with HubServer(ServerConfig(cache_dir=world.cache_dir, timeout=2.0)) as srv:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        stalled = []
        try:
            for _ in range(300):
                s = socket.create_connection((host, int(port)), timeout=10)
                s.sendall(b"GET /org/model/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n")
                stalled.append(s)
            start = time.monotonic()
            path = hf_hub_download("org/model", "config.json", endpoint=srv.url, cache_dir=tmp_path / "c", token=False)
            assert Path(path).read_bytes() == world.contents["org/model@v2"]["config.json"]
            assert time.monotonic() - start < 2
            deadline = time.monotonic() + 8
            while srv.connections and time.monotonic() < deadline:
                time.sleep(0.1)
            assert srv.connections == 0, "stalled clients were not closed after the timeout"
            stalled[0].settimeout(1)
            assert stalled[0].recv(100) == b""  # closed by the server
        finally:
            for s in stalled:
                s.close()


def test_the_access_log_names_each_request_with_status_size_and_id(world: World) -> None:
    import logging

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("hfa.serve")
    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        app = create_app(ServerConfig(cache_dir=world.cache_dir))
        _call(app, "/org/model/resolve/main/config.json?x=1", headers={"X-Request-Id": "req-7"})
        _call(app, "/org/model/resolve/main/nope.json")
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    size = len(world.contents["org/model@v2"]["config.json"])
    assert records[0].endswith(f'"GET /org/model/resolve/main/config.json" 200 {size} req-7')
    assert '"GET /org/model/resolve/main/nope.json" 404 ' in records[1]


def _loop(srv: HubServer, until: object, seconds: float = 10.0) -> None:
    """Turn the server's I/O loop by hand (it is not started) until ``until()`` holds."""
    from waitress import wasyncore

    deadline = time.monotonic() + seconds
    while not until() and time.monotonic() < deadline:  # type: ignore[operator]
        wasyncore.loop(timeout=0.05, use_poll=True, map=srv._map, count=1)


def _answer(sock: socket.socket, srv: HubServer) -> bytes:
    got = b""
    sock.setblocking(False)

    def complete() -> bool:
        nonlocal got
        with contextlib.suppress(BlockingIOError):
            got += sock.recv(65536)
        return b"\r\n\r\n" in got and got.endswith(b"}")

    _loop(srv, complete)
    return got


@pytest.mark.parametrize("how", ["timeout", "eviction"])
def test_a_request_arriving_on_an_idle_connection_is_not_dropped(world: World, how: str) -> None:
    """The race behind a conformance test's extra retry: a keep-alive connection that looked idle (timed
    out, or the eviction victim at the connection cap) was closed while a request on it waited in the
    socket, unread by the loop: the request was dropped unanswered and the client had to retry it."""
    srv = HubServer(ServerConfig(cache_dir=world.cache_dir, timeout=1.0, max_connections=1))
    server = srv._server
    request = b"GET /api/whoami-v2 HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        first = socket.create_connection((host, int(port)))
        _loop(srv, lambda: len(server.active_channels) == 1)
        first.sendall(request)
        assert b" 401 " in _answer(first, srv).split(b"\r\n")[0]  # answered; the connection stays open, idle
        [channel] = server.active_channels.values()
        channel.last_activity -= 60  # idle for long
        first.sendall(request)  # the next request is on its way, not yet read by the loop
        time.sleep(0.1)
        if how == "timeout":
            server.maintenance(time.time())
        else:  # a newcomer at the cap of one connection
            second = socket.create_connection((host, int(port)))
            _loop(srv, lambda: False, seconds=0.3)
            second.close()
        assert b" 401 " in _answer(first, srv).split(b"\r\n")[0]  # the request that was arriving is answered
        first.close()
    finally:
        srv.close()


def _get_head(sock: socket.socket, path: str) -> tuple[bytes, bytes]:
    """Send a GET and read until the end of the answer's head: (head, the body bytes read with it)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the head ended: {got!r}"
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    return head, body


@pytest.mark.parametrize("ranged", [False, True])
@pytest.mark.parametrize("sendfile", [True, False])
def test_file_bodies_are_the_exact_bytes_asked_for_across_many_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ranged: bool, sendfile: bool
) -> None:
    """File answers go out with os.sendfile (hfa.server.http.SendfileBody), or read a chunk at a time
    (FileBody); small slices make one answer take many sends, partial ones among them. A Range answer
    starts at the range and stops at its end."""
    import hfa.server.http as engine

    monkeypatch.setattr(engine, "SENDFILE_MAX", 100_003)
    monkeypatch.setattr(engine, "SEND_CHUNK", 100_003)
    monkeypatch.setenv("HFA_SERVE_SENDFILE", "1" if sendfile else "0")
    data = os.urandom(3 * 1024 * 1024 + 7)
    write_repo(tmp_path / "cache", "org/big", {"big.bin": data})
    start, end = (12_345, 2_500_000) if ranged else (0, len(data) - 1)
    with HubServer(ServerConfig(cache_dir=tmp_path / "cache")) as srv:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            extra = f"Range: bytes={start}-{end}\r\n" if ranged else ""
            sock.sendall(
                f"GET /org/big/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode()
            )
            got = b""
            while chunk := sock.recv(1 << 20):
                got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206" if ranged else b"HTTP/1.1 200")
    assert f"Content-Length: {end - start + 1}".encode() in head
    assert body == data[start : end + 1]


@pytest.mark.parametrize("sendfile", [True, False])
def test_a_file_that_shrinks_while_it_is_sent_closes_the_connection_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sendfile: bool
) -> None:
    """The client gets a short body and the connection is closed at once; before, the engine found
    nothing more to send, was told the socket was writable, again and again, until the timeout."""
    monkeypatch.setenv("HFA_SERVE_SENDFILE", "1" if sendfile else "0")
    data = os.urandom(32 * 1024 * 1024)
    write_repo(tmp_path / "cache", "org/big", {"big.bin": data})
    blob = next(p for p in (tmp_path / "cache").rglob("blobs/*") if p.stat().st_size == len(data))
    with HubServer(ServerConfig(cache_dir=tmp_path / "cache", timeout=30)) as srv:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            head, body = _get_head(sock, "/org/big/resolve/main/big.bin")
            assert head.startswith(b"HTTP/1.1 200")
            os.truncate(blob, 1024 * 1024)  # the blob shrinks under the open descriptor
            start = time.monotonic()
            while chunk := sock.recv(65536):
                body += chunk
            assert time.monotonic() - start < 5, "the connection stayed open after its file ended"
    # A short body (the client's size check fails). Its bytes past the cut are not checked: the
    # socket buffer holds sendfile's references to the file's pages, and the kernel zeroes those.
    assert len(body) < len(data) and body[:65536] == data[:65536]


def test_sendfile_only_when_asked_for_and_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    import hfa.server.http as engine

    monkeypatch.setattr(engine, "USE_SENDFILE", True)
    assert engine.file_wrapper() is engine.FileBody
    monkeypatch.setenv("HFA_SERVE_SENDFILE", "1")
    assert engine.file_wrapper() is engine.SendfileBody
    monkeypatch.setattr(engine, "USE_SENDFILE", False)  # not Linux
    assert engine.file_wrapper() is engine.FileBody


def _rss(pid: int) -> int:
    """Resident memory of a process in bytes (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_50_slow_readers_of_a_big_file_all_progress_and_the_server_memory_stays_bounded(tmp_path: Path) -> None:
    """50 clients read a 64 MiB file at ~1 MiB/s each (8 threads): every one of them moves, a normal
    client still downloads the file at once, and the server's resident memory grows by less than
    48 MiB (a file answer holds a descriptor, not a buffer: waitress' queue for it stays empty)."""
    data = os.urandom(64 * 1024 * 1024)
    write_repo(tmp_path / "cache", "org/big", {"big.bin": data})
    proc, url = _serve(tmp_path / "cache", "--threads", "8", "--max-connections", "200")
    host, port = url.removeprefix("http://").rsplit(":", 1)
    socks: list[socket.socket] = []
    try:
        rss_before = _rss(proc.pid)
        read = [0] * 50
        for _ in range(50):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            socks.append(s)
            _head, body = _get_head(s, "/org/big/resolve/main/big.bin")
            read[len(socks) - 1] += len(body)
        peak = rss_before
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # each client: 64 KiB every ~60 ms
            for i, s in enumerate(socks):
                read[i] += len(s.recv(65536))
            peak = max(peak, _rss(proc.pid))
            time.sleep(0.05)
        assert min(read) > 512 * 1024, f"a slow reader did not move: {min(read)} bytes"
        start = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())",
             f"{url}/org/big/resolve/main/big.bin"],
            capture_output=True, timeout=60, check=True, env={**os.environ, "NO_PROXY": "*"},
        ).stdout  # fmt: skip
        assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
        assert time.monotonic() - start < 30
        peak = max(peak, _rss(proc.pid))
        assert peak - rss_before < 48 * 1024 * 1024, f"server RSS grew by {(peak - rss_before) >> 20} MiB"
    finally:
        for s in socks:
            s.close()
        proc.kill()
        proc.wait()


def test_a_streamed_answer_to_a_client_that_does_not_read_is_queued_in_memory_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer the app streams (as a bucket's bytes are, 1 MiB at a time) to a client that reads
    nothing: the app is held once ~1 MiB is queued (waitress' default let 16 MiB pile up), and the
    queue never goes to a temporary file (waitress' default wrote every streamed byte to one)."""
    from waitress import buffers

    spilled: list[int] = []
    real_init = buffers.TempfileBasedBuffer.__init__

    def spy(self: object, *args: object, **kwargs: object) -> None:
        spilled.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(buffers.TempfileBasedBuffer, "__init__", spy)
    produced = [0]
    size = 64 * 1024 * 1024

    def streaming_app(environ: dict, start_response: Callable[..., object]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", str(size))])

        def body() -> Iterator[bytes]:
            chunk = b"x" * (1024 * 1024)
            for _ in range(size // len(chunk)):
                produced[0] += len(chunk)
                yield chunk

        return body()

    srv = HubServer(ServerConfig(cache_dir=tmp_path, timeout=30))
    srv.app = streaming_app
    with srv:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            head, _ = _get_head(sock, "/anything")
            assert head.startswith(b"HTTP/1.1 200")
            time.sleep(1.5)  # the app fills what the sockets and the queue take, then waits
            # the queue (1 MiB and a chunk) plus what the kernel's socket buffers hold (<= 8 MiB here)
            assert produced[0] <= 12 * 1024 * 1024, f"{produced[0] >> 20} MiB produced for a client reading nothing"
    assert not spilled, "a streamed answer was queued in a temporary file"
