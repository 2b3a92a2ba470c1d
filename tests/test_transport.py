"""hfa.hub.transport: keep-alive, stale connections, proxies from the environment, TLS only when asked."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hfa.config import Settings
from hfa.errors import EntryNotFound, NetworkError
from hfa.hub import transport
from hfa.hub.classify import is_transient
from hfa.hub.client import OnlineHub
from hfa.hub.requests import RetryPolicy
from hfa.resolve.refs import RepoRef


class Recorder:
    """What a loopback server saw: connections opened, and (request line target, headers) per request."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []


@contextmanager
def origin(*, close_silently: bool = False, body: bytes = b"hello", tls: Any = None) -> Iterator[tuple[str, Recorder]]:
    """An HTTP/1.1 server (HTTPS with the ``tls`` server context); with ``close_silently`` it drops
    each connection after answering, without saying so."""
    rec = Recorder()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            rec.connections += 1

        def do_GET(self) -> None:
            rec.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            if self.command == "CONNECT":
                self.send_response(403)  # a proxy refusing the tunnel: no TLS needed to see what was asked
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if close_silently:
                self.wfile.flush()
                self.close_connection = True  # like an idle timeout: no "Connection: close" was sent

        do_CONNECT = do_GET

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{srv.server_address[1]}", rec
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(autouse=True)
def fresh_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    transport.close_idle()
    yield
    transport.close_idle()


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with transport.open_url("GET", url, headers or {}) as response:
        assert response.status_code == 200
        return response.read()


def test_one_thread_reuses_one_connection() -> None:
    with origin() as (url, rec):
        assert [get(f"{url}/f{i}") for i in range(5)] == [b"hello"] * 5
    assert rec.connections == 1
    assert len(rec.requests) == 5


def test_each_thread_has_its_own_connection() -> None:
    with origin() as (url, rec):
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda: results.extend(get(f"{url}/x") for _ in range(3))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [b"hello"] * 6
    assert rec.connections == 2


def test_unread_body_is_never_pooled() -> None:
    with origin(body=b"x" * 100_000) as (url, rec):
        with transport.open_url("GET", url, {}) as response:
            assert response.readinto(bytearray(10)) == 10  # stops early: the rest is still on the wire
        assert get(url) == b"x" * 100_000
    assert rec.connections == 2


def test_connection_closed_while_idle_is_replaced_silently() -> None:
    with origin(close_silently=True) as (url, rec):
        assert get(f"{url}/a") == b"hello"
        assert get(f"{url}/b") == b"hello"  # the pooled connection is dead: sent again, fresh, no error
    assert [path for _, path, _ in rec.requests] == ["/a", "/b"]
    assert rec.connections == 2


def test_a_fresh_connection_failure_is_raised() -> None:
    with pytest.raises(ConnectionRefusedError):
        transport.open_url("GET", "http://127.0.0.1:9/x", {})


def test_request_ids_are_unique_and_kept_when_given() -> None:
    with origin() as (url, rec):
        get(url)
        get(url)
        get(url, {"X-Amzn-Trace-Id": "given-id"})
    ids = [headers["x-amzn-trace-id"] for _, _, headers in rec.requests]
    assert len(set(ids[:2])) == 2
    import uuid

    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids[:2])
    assert ids[2] == "given-id"


def test_plain_http_never_loads_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "_TLS", None)
    with origin() as (url, _):
        get(url)
    assert transport._TLS is None  # loading the CA bundle costs ~17 ms: only for https


def test_not_http_is_refused() -> None:
    with pytest.raises(http.client.InvalidURL):
        transport.open_url("GET", "file:///etc/passwd", {})


def test_http_proxy_gets_the_absolute_url_and_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    with origin() as (proxy, rec):
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://user:p%40ss@"))
        assert get("http://hub.invalid:8080/api/models?x=1", {"Authorization": "Bearer hf_t"}) == b"hello"
    _, target, headers = rec.requests[0]
    assert target == "http://hub.invalid:8080/api/models?x=1"
    assert headers["host"] == "hub.invalid:8080"
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()


def test_no_proxy_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with origin() as (proxy, via_proxy), origin() as (url, direct):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert get(url) == b"hello"
    assert via_proxy.requests == [] and len(direct.requests) == 1


def test_https_through_a_proxy_is_a_connect_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    with origin() as (proxy, rec):
        monkeypatch.setenv("HTTPS_PROXY", proxy.replace("http://", "http://me:secret@"))
        with pytest.raises(OSError, match="Tunnel connection failed: 403"):
            transport.open_url("GET", "https://hub.invalid/api/models", {"Authorization": "Bearer hf_never_to_proxy"})
    method, target, headers = rec.requests[0]
    assert (method, target) == ("CONNECT", "hub.invalid:443")
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"me:secret").decode()
    assert "authorization" not in headers  # the tunnel carries the request; the proxy never sees the token


def test_a_tls_proxy_for_https_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.invalid:3128")
    with pytest.raises(http.client.InvalidURL, match="give the proxy as http://"):
        transport.open_url("GET", "https://hub.invalid/x", {})


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (http.client.IncompleteRead(b""), True),
        (http.client.RemoteDisconnected(), True),
        (OSError(101, "Network is unreachable"), True),
        (PermissionError(13, "Permission denied", "/cache/blobs/x.incomplete"), False),
        (OSError(28, "No space left on device", "/cache/blobs/x.incomplete"), False),
        (http.client.InvalidURL("x"), False),
        (ValueError("x"), False),
    ],
)
def test_only_network_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def _hub(url: str) -> OnlineHub:
    settings = Settings(cache_dir=Path("/nonexistent"), endpoint=url, offline=False, token=None)
    return OnlineHub(settings, retry=RetryPolicy(retries=0), sleep=lambda s: None)


def test_stream_names_the_missing_file() -> None:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        ref = RepoRef("org/model")
        with (
            pytest.raises(EntryNotFound, match=r"weights\.bin"),
            _hub(url).stream(f"{url}/x", ref=ref, path="weights.bin"),
        ):
            pass
        with pytest.raises(NetworkError, match="HTTP 404"), _hub(url).stream(f"{url}/x"):
            pass
    finally:
        srv.shutdown()
        srv.server_close()


# -- TLS -------------------------------------------------------------------------------------------
@pytest.fixture
def https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Recorder, Path]]:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setattr(transport, "_TLS", None)  # built again from the environment the test sets
    try:
        with origin(body=b'{"sha": "x"}', tls=server_ctx) as (url, rec):
            yield url, rec, ca_file
    finally:
        transport.close_idle()
        transport._TLS = None


def test_https_verifies_with_ssl_cert_file_and_keeps_the_connection(https, monkeypatch) -> None:
    url, rec, ca_file = https
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    assert get(f"{url}/a") == b'{"sha": "x"}'
    assert get(f"{url}/b") == b'{"sha": "x"}'
    assert rec.connections == 1  # keep-alive over TLS too
    assert transport._TLS is not None


def test_https_with_an_untrusted_certificate_fails_at_once(https, monkeypatch, tmp_path: Path) -> None:
    import ssl

    import trustme

    url, rec, _ = https
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with pytest.raises(ssl.SSLCertVerificationError):
        transport.open_url("GET", f"{url}/a", {})
    sleeps: list[float] = []
    settings = Settings(cache_dir=Path("/nonexistent"), endpoint=url, offline=False, token="hf_secret_token_9")
    hub = OnlineHub(settings, retry=RetryPolicy(retries=3), sleep=sleeps.append)
    with pytest.raises(NetworkError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed") as err:
        hub.get_json(f"{url}/api/models/a/b")
    assert sleeps == []  # a refused certificate is not retried
    assert "hf_secret_token_9" not in str(err.value)
    assert rec.requests == []  # no request (and so no token) ever crossed an unverified connection


def test_pull_from_an_endpoint_with_an_untrusted_certificate_exits_5(https, monkeypatch, tmp_path: Path) -> None:
    import trustme
    from helpers import hfa

    url, _, _ = https
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    result = hfa("pull", "org/model", "--endpoint", url, "--cache-dir", str(tmp_path / "c"), "--token", "hf_tls_tok_1")
    assert result.exit_code == 5, result.stderr
    assert "TLS with the endpoint failed" in result.stderr and "SSL_CERT_FILE" in result.stderr
    assert "Traceback" not in result.stderr and "hf_tls_tok_1" not in result.stderr + result.stdout


def test_a_certificate_failure_mid_download_is_a_network_error() -> None:
    import ssl

    from hfa.errors import from_exception

    err = from_exception(ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get local issuer"))
    assert isinstance(err, NetworkError) and "SSL_CERT_FILE" in (err.hint or "")
    bad = from_exception(http.client.InvalidURL("nonnumeric port"))
    assert isinstance(bad, NetworkError)


def test_a_whole_pull_goes_through_an_http_proxy(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A forwarding proxy (absolute-form requests) between hfa and `hfa serve`: every request crosses it."""
    from helpers import corrupt_blobs, hfa

    seen: list[str] = []

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.path)
            target = http.client.HTTPConnection(self.headers["Host"], timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "host")}
            parts = urlsplit(self.path)
            target.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
            answer = target.getresponse()
            body = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            target.close()

        def log_message(self, *a: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        cache = tmp_path / "cache"
        result = hfa("pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache), "--json")
        assert result.exit_code == 0, result.stderr
    finally:
        proxy.shutdown()
        proxy.server_close()
    files = json.loads(result.stdout)["files"]
    assert seen and all(path.startswith(server.url + "/") for path in seen)  # absolute form: a real proxy hop
    assert sum("/resolve/" in path for path in seen) == len(files)  # every download crossed the proxy
    assert corrupt_blobs(cache) == []
