"""``hfa serve --upstream`` against an upstream that answers slowly or never: the mirror keeps serving what
it holds, and requests for the same revision share one upstream call (and its failure)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo


@pytest.fixture
def silent_upstream() -> Iterator[tuple[str, list[socket.socket]]]:
    """An upstream that accepts connections and never answers (counts them)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    listener.close()


def _status(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0  # the client gave up


def test_a_silent_upstream_does_not_stop_the_mirror_serving_its_cache(  # type: ignore[no-untyped-def]
    silent_upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, accepted = silent_upstream
    monkeypatch.setenv("HFA_API_DEADLINE", "6")  # the mirror gives up on the upstream after 6 s
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    cache = tmp_path / "mirror"
    write_repo(cache, "org/cached", {"config.json": "{}"})
    with HubServer(ServerConfig(cache_dir=cache, upstream=url, threads=4)) as mirror:
        # clients that give up after 1 s ask for 12 repos the mirror lacks (3 revisions each of 4 repos)
        asks = [f"{mirror.url}/api/models/org/m{i % 4}" for i in range(12)]
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda u: _status(u, 1), asks))
            # meanwhile what the cache holds is answered at once
            start = time.monotonic()
            assert _status(f"{mirror.url}/api/models?search=cached", 10) == 200
            assert _status(f"{mirror.url}/org/cached/resolve/main/config.json", 10) == 200
            assert time.monotonic() - start < 3
        # one upstream call per repo at a time, never one per waiting request
        assert len(accepted) <= 4
        # the one upstream call is bounded by HFA_API_DEADLINE: its error reaches the client
        start = time.monotonic()
        assert _status(f"{mirror.url}/api/models/org/m0", 30) == 503
        assert time.monotonic() - start < 15


def _redirecting_upstream(location: str) -> tuple[str, object]:
    """An upstream whose repo info is fine and whose every file answer redirects to ``location``."""
    import hashlib
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    data = b"hello\n"
    info = {
        "id": "org/m",
        "sha": "a" * 40,
        "siblings": [
            {"rfilename": "w.bin", "size": len(data), "blobId": "b" * 40,
             "lfs": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
        ],
    }  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/api/"):
                body = json.dumps(info).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
            else:
                body = b""
                self.send_response(302)
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://2852039166/x", "http://[::ffff:169.254.169.254]/x"],
)
def test_an_upstream_redirect_to_a_metadata_address_is_refused(  # type: ignore[no-untyped-def]
    location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    url, server = _redirecting_upstream(location)
    try:
        with HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=url)) as mirror:
            try:
                urllib.request.urlopen(f"{mirror.url}/org/m/resolve/main/w.bin", timeout=30)
                raise AssertionError("served")
            except urllib.error.HTTPError as err:
                assert err.code == 502 and "link-local" in err.read().decode()
    finally:
        server.shutdown()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("169.254.169.254", True), ("2852039166", True), ("0xa9.0xfe.0xa9.0xfe", True), ("169.254.169.254.", True),
        ("::ffff:169.254.169.254", True), ("[fe80::1]", True), ("fe80::1%eth0", True),
        ("127.0.0.1", False), ("10.0.0.1", False), ("huggingface.co", False), ("cdn-lfs.hf.co", False), ("", False),
    ],
)  # fmt: skip
def test_link_local_knows_every_spelling(host: str, expected: bool) -> None:
    from hfa.hub.requests import link_local

    assert link_local(host) is expected


def test_a_redirect_from_a_link_local_endpoint_to_itself_is_followed() -> None:
    from hfa.hub.requests import follow

    assert follow("http://169.254.1.2:8080/a", "/b") == "http://169.254.1.2:8080/b"


@pytest.mark.parametrize("revision", ["..%2F..%2F..%2Fblobs%2Fx", "a%2F.%2Fb", "x.lock", "main%2F", "a..b"])
def test_a_revision_no_hub_has_is_never_asked_upstream(revision: str, tmp_path: Path) -> None:
    """Revisions become ``refs/<revision>`` keys in the store: one git refuses is answered by the store
    alone (not found), never asked upstream, never written."""
    url, server = _redirecting_upstream("http://127.0.0.1:9/")  # it would answer any revision
    asked = []
    handler = server.RequestHandlerClass  # type: ignore[attr-defined]
    original = handler.do_GET

    def counting(self) -> None:  # type: ignore[no-untyped-def]
        asked.append(self.path)
        original(self)

    handler.do_GET = counting
    try:
        with HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=url)) as mirror:
            assert _status(f"{mirror.url}/api/models/org/m/revision/{revision}", 10) in (401, 404)  # not found
            assert _status(f"{mirror.url}/org/m/resolve/{revision}/w.bin", 10) in (401, 404)
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert asked == []
    assert not list((tmp_path / "mirror").rglob("refs/*"))


def test_a_store_that_refuses_the_record_is_a_502_not_a_missing_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store the mirror may not write (a read-only bucket identity, a full disk): the client is told the
    mirror cannot record it, and the operator sees why, instead of a 404 'Invalid rev id: None'."""
    from hfa.errors import AccessDenied
    from hfa.server.mirror_store import CacheTarget

    def refuse(self, ref, resolved) -> None:  # type: ignore[no-untyped-def]
        raise AccessDenied("the bucket refused to write s3://b/p/repos/models/org/m/commits/x.json (AccessDenied)")

    monkeypatch.setattr(CacheTarget, "record", refuse)
    url, server = _redirecting_upstream("http://127.0.0.1:9/")
    try:
        with HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=url)) as mirror:
            for route in ("/api/models/org/m", "/org/m/resolve/main/w.bin"):
                try:
                    urllib.request.urlopen(mirror.url + route, timeout=10)
                    raise AssertionError("served")
                except urllib.error.HTTPError as err:
                    body = err.read().decode()
                    assert err.code == 502 and "cannot record" in body and "Invalid rev id" not in body, body
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert "refused to write" in caplog.text


def test_wsgi_factory_reads_the_ttl_from_env(tmp_path: Path) -> None:
    """A mirror under gunicorn or waitress-serve is configured as `hfa serve --upstream URL --ttl N` is."""
    from hfa.errors import UsageError
    from hfa.server.wsgi import config_from_env

    env = {"HFA_SERVE_CACHE": str(tmp_path), "HFA_SERVE_UPSTREAM": "http://127.0.0.1:9/", "HFA_SERVE_TTL": "60"}
    assert config_from_env(env).ttl == 60.0
    for bad in ("soon", "-1", "inf", "nan"):
        with pytest.raises(UsageError, match="HFA_SERVE_TTL"):
            config_from_env({**env, "HFA_SERVE_TTL": bad})


@pytest.mark.parametrize("mirror", [False, True], ids=["cache", "mirror"])
def test_a_repo_id_too_long_for_a_file_name_is_not_found_not_a_500(tmp_path: Path, mirror: bool) -> None:
    cache = tmp_path / "cache"
    write_repo(cache, "org/cached", {"config.json": "{}"})
    config = ServerConfig(cache_dir=cache, upstream="http://127.0.0.1:9" if mirror else None)
    long = "a" * 300
    with HubServer(config) as srv:
        for route in (
            f"/api/models/{long}",
            f"/api/models/org/{long}",
            f"/{long}/resolve/main/config.json",
            f"/org/{long}/resolve/main/config.json",
            f"/api/datasets/{long}/tree/main",
            f"/{long}",
        ):
            assert _status(srv.url + route, 10) in (401, 404), route
        assert _status(f"{srv.url}/org/cached/resolve/main/config.json", 10) == 200
