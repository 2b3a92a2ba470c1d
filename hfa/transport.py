"""HTTP/1.1 for :mod:`hfa.hub`, with the standard library only: what the hot paths send through.

``hfa pull`` spends its time in two places this module owns: one small JSON request (the
listing) and the file downloads. huggingface_hub's client (httpx2, httpcore2, its header
builder) costs ~50 ms of imports and ~1 ms of CPU per request before the first byte moves
(bench/bench_pull.py), so :class:`~hfa.hub.OnlineHub` sends those requests here instead:

* keep-alive connections, one pool per thread (a download worker reuses its connection for
  every file it fetches; a reused connection the server has meanwhile closed is replaced
  once, silently, as urllib3 does);
* TLS verified with the CA bundle httpx would use (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``,
  else certifi's), loaded only when an ``https://`` URL is first opened;
* proxies from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``,
  read as urllib reads them; ``https://`` through a ``CONNECT`` tunnel), credentials in the
  proxy URL sent as ``Proxy-Authorization`` to the proxy only;
* a request id (``X-Amzn-Trace-Id``) on every request, as huggingface_hub sends;
* bodies read into the caller's buffer (:meth:`Response.readinto`): no copy per chunk.

Redirects are never followed here, and no header is added that the caller did not give
(but the request id): the caller decides what a redirect may carry, so a token never
reaches another origin by accident. Retries are the caller's too (hfa's retry policy).
Every failure is an ``OSError`` or an ``http.client.HTTPException``.
"""

from __future__ import annotations

import http.client
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

# A reused connection that the server closed while it sat in the pool fails on first use in
# one of these ways; the request has then not been seen by the server and is sent once more.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

_TLS_LOCK = threading.Lock()
_TLS: Any = None


def tls_context() -> Any:
    """Verified TLS with the CA bundle httpx uses (SSL_CERT_FILE / SSL_CERT_DIR, else certifi's)."""
    global _TLS
    with _TLS_LOCK:
        if _TLS is None:
            import ssl

            cafile = os.environ.get("SSL_CERT_FILE")
            capath = os.environ.get("SSL_CERT_DIR")
            if not cafile and not capath:
                try:
                    import certifi

                    cafile = certifi.where()
                except ImportError:  # pragma: no cover - certifi comes with httpx
                    cafile = None
            _TLS = ssl.create_default_context(cafile=cafile, capath=capath)
        return _TLS


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL the environment names for ``scheme://host``, or None (also when NO_PROXY matches).

    urllib's own rules (``getproxies``, ``proxy_bypass``); urllib is imported only when a
    ``*_proxy`` variable is set, or on macOS and Windows where proxies live in the system settings.
    """
    if sys.platform.startswith("linux") and not any(k.lower().endswith("_proxy") for k in os.environ):
        return None
    import urllib.request

    proxies = urllib.request.getproxies()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or urllib.request.proxy_bypass(host):
        return None
    if "://" not in url:
        url = "http://" + url
    return url


def _request_id() -> str:
    """A random (version 4) UUID, as huggingface_hub's ``X-Amzn-Trace-Id``, without importing uuid."""
    raw = os.urandom(16).hex()
    variant = "89ab"[int(raw[16], 16) & 3]
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-{variant}{raw[17:20]}-{raw[20:]}"


class Response:
    """One response: status, headers, and a body read once, in order. Close it (or use ``with``)."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection, pool: _Pool, key: Any) -> None:
        self._raw = raw
        self._conn: http.client.HTTPConnection | None = conn
        self._pool = pool
        self._key = key
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive .get()

    @property
    def is_redirect(self) -> bool:
        return self.status_code in (301, 302, 303, 307, 308) and "Location" in self.headers

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` as far as the body goes; 0 at its end (also when the server cut it short)."""
        return self._raw.readinto(buffer)

    def read(self, limit: int | None = None) -> bytes:
        """The rest of the body (at most ``limit`` bytes + 1, so a caller can tell it was longer)."""
        if limit is None:
            return self._raw.read()
        return self._raw.read(limit + 1)

    def iter_bytes(self, chunk: int = 1 << 20) -> Iterator[bytes]:
        while data := self._raw.read(chunk):
            yield data

    def close(self) -> None:
        """Give the connection back when the body was read to its end and the server keeps it open."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._raw.isclosed() and not self._raw.will_close and self._raw.length in (None, 0):
            self._pool.put(self._key, conn)
        else:
            self._raw.close()
            conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pool(threading.local):
    """This thread's idle keep-alive connections, by (scheme, host, port, proxy)."""

    def __init__(self) -> None:
        self.idle: dict[Any, http.client.HTTPConnection] = {}

    def take(self, key: Any) -> http.client.HTTPConnection | None:
        return self.idle.pop(key, None)

    def put(self, key: Any, conn: http.client.HTTPConnection) -> None:
        old = self.idle.pop(key, None)
        if old is not None:
            old.close()
        self.idle[key] = conn


_POOL = _Pool()


def _proxy_auth(proxy: str) -> str | None:
    """``Proxy-Authorization`` for credentials written in the proxy URL, else None."""
    p = urlsplit(proxy)
    if p.username is None:
        return None
    import base64

    cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
    return "Basic " + base64.b64encode(cred).decode("ascii")


def _connect(scheme: str, host: str, port: int, proxy: str | None, timeout: float | None) -> http.client.HTTPConnection:
    """A new, unopened connection for the target (through the proxy, if any)."""
    if not proxy:
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=tls_context())
        return http.client.HTTPConnection(host, port, timeout=timeout)
    p = urlsplit(proxy)
    p_host, p_port = p.hostname or "", p.port or (443 if p.scheme == "https" else 80)
    if scheme == "https":
        if p.scheme == "https":
            raise http.client.InvalidURL(
                f"a TLS proxy ({p.scheme}://{p_host}) cannot tunnel TLS here: give the proxy as http://"
            )
        # CONNECT through the proxy, then TLS with the target's name: the proxy sees no request header
        conn = http.client.HTTPSConnection(p_host, p_port, timeout=timeout, context=tls_context())
        auth = _proxy_auth(proxy)
        conn.set_tunnel(host, port, headers={"Proxy-Authorization": auth} if auth else None)
        return conn
    if p.scheme == "https":
        return http.client.HTTPSConnection(p_host, p_port, timeout=timeout, context=tls_context())
    return http.client.HTTPConnection(p_host, p_port, timeout=timeout)


def open_url(method: str, url: str, headers: dict[str, str], *, timeout: float | None = 30.0) -> Response:
    """Send one request (no body) and return the response, its body unread. Never follows a redirect."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise http.client.InvalidURL(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    proxy = proxy_for(scheme, host)
    key = (scheme, host, port, proxy)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if proxy and scheme == "http":
        target = f"http://{parts.netloc}{target}"  # absolute form: the proxy forwards it
    sent = {**headers, "X-Amzn-Trace-Id": headers.get("X-Amzn-Trace-Id") or _request_id()}
    if proxy and scheme == "http" and (auth := _proxy_auth(proxy)):
        sent["Proxy-Authorization"] = auth  # a forwarding proxy reads it; it never reaches the origin
    conn = _POOL.take(key)
    reused = conn is not None
    while True:
        if conn is None:
            conn = _connect(scheme, host, port, proxy, timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            raw = conn.getresponse()
        except _STALE:
            conn.close()
            if not reused:
                raise
            conn, reused = None, False  # the server closed it while idle: once more, fresh
            continue
        except BaseException:
            conn.close()
            raise
        return Response(raw, conn, _POOL, key)


def close_idle() -> None:
    """Close this thread's idle connections (tests; a long-lived process between jobs)."""
    for conn in _POOL.idle.values():
        conn.close()
    _POOL.idle.clear()
