"""A hostile front for ranged downloads: forwards everything to a real ``hfa serve`` except the
file GETs with a ``Range`` header, which a test's ``answer(handler, first, last, data)`` answers (and
those without one, when a ``whole(handler)`` is given and returns True: it answered them).

And what the tests of hostile ranged servers share: the origin serving ``org/big`` (:func:`serve_big`),
a small-range pull of it (:func:`pull_big`), its checks (:func:`pulled_right`), and range headers."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from helpers import corrupt_blobs, hfa

from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo

Answer = Callable[[Any, int, int, bytes], None]


class HostileFront:
    def __init__(self, upstream: str, answer: Answer, whole: Callable[[Any], bool] | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.answer = answer
        self.whole = whole  # the file GETs without a Range header: answered by it when it returns True
        self.ranged = 0
        self.lock = threading.Lock()
        self.headers_seen: list[dict[str, str]] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                front._forward(self, "HEAD")

            def do_GET(self) -> None:
                with front.lock:
                    front.headers_seen.append(dict(self.headers))
                rng = self.headers.get("Range")
                if rng and "/resolve/" in self.path and rng.startswith("bytes=") and "-" in rng:
                    a, _, b = rng[6:].partition("-")
                    status, headers, body = front._fetch("GET", self.path, {})
                    if status == 200 and b:
                        with front.lock:
                            front.ranged += 1
                        self.etag = headers.get("ETag", "")
                        front.answer(self, int(a), int(b), body)
                        return
                if not rng and "/resolve/" in self.path and front.whole is not None and front.whole(self):
                    return
                front._forward(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _fetch(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request(method, path, headers=headers)
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def _forward(self, h: Any, method: str) -> None:
        keep = {k: v for k, v in h.headers.items() if k.lower() in ("range", "authorization", "accept")}
        status, headers, body = self._fetch(method, h.path, keep)
        h.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("connection", "transfer-encoding", "server", "date"):
                h.send_header(k, v)
        h.end_headers()
        if method == "GET":
            h.wfile.write(body)

    def __enter__(self) -> HostileFront:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(h: Any, status: int, headers: dict[str, str], body: bytes, close: bool = False) -> None:
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k, v)
    if close:
        h.send_header("Connection", "close")
        h.close_connection = True
    h.end_headers()
    h.wfile.write(body)
    h.wfile.flush()


BIG = "weights.safetensors"


@contextmanager
def serve_big(tmp_path: Path, content: bytes) -> Iterator[HubServer]:
    """An ``hfa serve`` of ``org/big``, one LFS file ``BIG`` holding ``content``."""
    root = tmp_path / "served"
    write_repo(root, "org/big", {BIG: content}, lfs={BIG: True})
    with HubServer(ServerConfig(cache_dir=root)) as srv:
        yield srv


def pull_big(url: str, cache: Path, *args: str, target: str, **env: str) -> Any:
    """``hfa pull org/big --json`` in 1000-byte ranges over at most 4 connections; ``target``: HFA_RANGED_TARGET
    (``"0"`` every connection at once, ``"1"`` the measured one stream)."""
    base = {
        "HFA_RANGED_THRESHOLD": "1",
        "HFA_RANGE_SIZE": "1000",
        "HFA_MAX_CONNECTIONS": "4",
        "HFA_MAX_RETRIES": "2",
        "HFA_RANGED_TARGET": target,
    }
    return hfa("pull", "org/big", "--endpoint", url, "--cache-dir", str(cache), "--json", *args, env={**base, **env})


def pulled_right(result: Any, cache: Path, content: bytes) -> dict[str, Any]:
    """The pull exited 0 with ``content`` in its snapshot and no corrupt blob; its JSON document."""
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == content
    assert corrupt_blobs(cache) == []
    return doc


def range_headers(h: Any, first: int, last: int, size: int, **extra: str) -> dict[str, str]:
    """The headers of a right answer to ``bytes=first-last`` of a ``size``-byte file."""
    return {
        "Content-Range": f"bytes {first}-{last}/{size}",
        "Content-Length": str(last + 1 - first),
        "Accept-Ranges": "bytes",
        "ETag": h.etag,
        **extra,
    }


def interrupt(
    cmd: list[str],
    env: dict[str, str],
    reached: threading.Event,
    release: threading.Event,
    *,
    settle: float,
    wait: float,
) -> tuple[int, str, float]:
    """Run ``cmd``, send it SIGINT ``settle`` seconds after ``reached`` is set (by the front's answer), and wait at
    most ``wait`` seconds for it to end; ``release`` then lets the front's held answers go. (exit code, stderr,
    seconds from SIGINT to exit). A process still running at the end is killed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert reached.wait(30), "the pull never reached the point to interrupt"
        time.sleep(settle)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=wait)
        took = time.monotonic() - started
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode("utf-8", "replace"), took
