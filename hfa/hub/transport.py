"""HTTP/1.1 for :mod:`hfa.hub.client`, with the standard library only: what the hot paths send through.

``hfa pull`` spends its time in two places this module owns: one small JSON request (the
listing) and the file downloads. huggingface_hub's client (httpx2, httpcore2, its header
builder) costs ~50 ms of imports and ~1 ms of CPU per request before the first byte moves
(bench/bench_pull.py), so :class:`~hfa.hub.client.OnlineHub` sends those requests here instead:

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

Every wait is bounded here, at the one place bytes arrive (each ``recv`` of a response,
headers and body alike, see :class:`Bounds`): ``timeout`` for any one read, the whole answer
by ``deadline`` when one is given (hfa's API requests), the headers within ``timeout`` of
the request, and a body that keeps going but slower than ``min_speed`` bytes/s over
``speed_time`` seconds (a server dripping a byte now and then) is cut off. Each ends in a
``TimeoutError`` that says which bound it hit.

Redirects are never followed here, and no header is added that the caller did not give
(but the request id): the caller decides what a redirect may carry, so a token never
reaches another origin by accident. Retries are the caller's too (hfa's retry policy).
Every failure is an ``OSError`` or an ``http.client.HTTPException`` (a malformed URL is
``http.client.InvalidURL``).
"""

from __future__ import annotations

import http.client
import io
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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


def _names_a_proxy(variable: str) -> bool:
    name = variable.lower()
    return name.endswith("_proxy") and name != "no_proxy"


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL the environment names for ``scheme://host``, or None (also when NO_PROXY matches).

    urllib's own rules (``getproxies``, ``proxy_bypass``); urllib is imported only when a
    ``*_proxy`` variable other than ``no_proxy`` is set, or on macOS and Windows where proxies
    live in the system settings.
    """
    if sys.platform.startswith("linux") and not any(_names_a_proxy(k) for k in os.environ):
        return None  # no proxy to use (a NO_PROXY alone names none): as urllib would answer
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


@dataclass(frozen=True)
class Bounds:
    """How long one request may take: what :func:`open_url` enforces on every read.

    ``timeout``: seconds any one read (and the connect) may wait, and the headers may take
    in all; ``deadline``: a ``time.monotonic()`` instant by which the whole answer, body
    included, must have arrived (None: no overall bound); ``min_speed``: bytes/s the body
    must keep up over every ``speed_time`` seconds (0: no such rule).
    """

    timeout: float | None = 30.0
    deadline: float | None = None
    min_speed: int = 0
    speed_time: float = 30.0


class _Guard:
    """Enforces :class:`Bounds` on one response, called around each ``recv``."""

    __slots__ = ("body", "bounds", "sock", "until", "why", "window_bytes", "window_start")

    def __init__(self, bounds: Bounds, sock: Any) -> None:
        self.bounds = bounds
        self.sock = sock
        now = time.monotonic()
        self.until: float | None = None
        self.why = ""
        if bounds.timeout is not None:
            self.until, self.why = now + bounds.timeout, f"no complete headers within {bounds.timeout:g} s"
        if bounds.deadline is not None and (self.until is None or bounds.deadline < self.until):
            self.until, self.why = bounds.deadline, "no complete answer before the deadline"
        self.body = False
        self.window_start = now
        self.window_bytes = 0

    def start_body(self) -> None:
        """The headers are in: from now on the deadline (if any) and the speed rule hold."""
        self.body = True
        self.until = self.bounds.deadline
        self.why = "no complete answer before the deadline"
        self.window_start = time.monotonic()
        self.window_bytes = 0
        if self.until is None and self.sock is not None:
            self.sock.settimeout(self.bounds.timeout)

    def before(self) -> None:
        if self.until is None:
            return
        left = self.until - time.monotonic()
        if left <= 0:
            raise TimeoutError(self.why)
        timeout = self.bounds.timeout
        self.sock.settimeout(left if timeout is None else min(timeout, left))

    def timed_out(self) -> str:
        """What a read that timed out ran into."""
        if self.bounds.timeout is None or (self.until is not None and time.monotonic() >= self.until - 0.01):
            return self.why
        return f"no byte within {self.bounds.timeout:g} s"

    def after(self, n: int) -> None:
        if not self.body or not self.bounds.min_speed:
            return
        self.window_bytes += n
        now = time.monotonic()
        elapsed = now - self.window_start
        if elapsed >= self.bounds.speed_time:
            if self.window_bytes < self.bounds.min_speed * elapsed:
                raise TimeoutError(
                    f"the body came slower than {self.bounds.min_speed} bytes/s"
                    f" ({self.window_bytes} bytes in {elapsed:.0f} s)"
                )
            self.window_start, self.window_bytes = now, 0


class _GuardedReader(io.RawIOBase):
    """The socket's reader with the guard's checks around every read."""

    def __init__(self, raw: Any, guard: _Guard) -> None:
        self._raw = raw
        self._guard = guard

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._guard.before()
        try:
            n = self._raw.readinto(buffer)
        except TimeoutError:
            raise TimeoutError(self._guard.timed_out()) from None
        if n:
            self._guard.after(n)
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _GuardedResponse(http.client.HTTPResponse):
    """``http.client``'s response reading through :class:`_GuardedReader`."""

    def __init__(self, sock: Any, *args: Any, guard: _Guard, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        guard.sock = sock
        raw = self.fp.detach()  # the socket's own reader, unread: wrapped, never closed twice
        self.fp = io.BufferedReader(_GuardedReader(raw, guard))
        self.guard = guard


class Response:
    """One response: status, headers, and a body read once, in order. Close it (or use ``with``)."""

    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection, pool: _Pool, key: Any) -> None:
        self._raw = raw
        self._conn: http.client.HTTPConnection | None = conn
        self._pool = pool
        self._key = key
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive .get()
        self.url = ""  # the URL this answers (set by open_url): where a redirect chain ended

    @property
    def length(self) -> int | None:
        """Body bytes still to come by ``Content-Length``; None when the length is not announced."""
        length: int | None = self._raw.length
        return length

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

    def abort(self) -> None:
        """From another thread: end a read of the body blocked on the network at once (Ctrl-C). The body then
        ends early, and the connection is closed, never reused."""
        import socket
        from contextlib import suppress

        conn = self._conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

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


def _parse(url: str) -> tuple[Any, str, str, int]:
    """(parts, scheme, host, port) of an http(s) URL; a malformed one is ``InvalidURL``."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:  # "Invalid IPv6 URL", a port out of range or not a number
        raise http.client.InvalidURL(f"{exc}: {redact(url)!r}") from None
    if scheme not in ("http", "https") or not host:
        raise http.client.InvalidURL(f"not an http(s) URL: {redact(url)!r}")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise http.client.InvalidURL(f"a URL with spaces, control or non-ASCII characters: {redact(url)!r}")
    return parts, scheme, host, port


def redact(url: str, limit: int = 200) -> str:
    """``url`` fit for a message: no ``user:password@``, at most ``limit`` characters."""
    head, sep, rest = url.partition("://")
    if sep:
        netloc, slash, tail = rest.partition("/")
        url = head + sep + netloc.rpartition("@")[2] + slash + tail
    return url if len(url) <= limit else url[: limit - 1] + "…"


def open_url(
    method: str, url: str, headers: dict[str, str], *, timeout: float | None = 30.0, bounds: Bounds | None = None
) -> Response:
    """Send one request (no body) and return the response, its body unread. Never follows a redirect.

    ``bounds`` (else ``Bounds(timeout)``) limits every wait of this request and its response.
    """
    bounds = bounds or Bounds(timeout)
    parts, scheme, host, port = _parse(url)
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
        guard = _Guard(bounds, None)
        timeout = bounds.timeout
        if guard.until is not None:  # connect and send within what is left, too
            left = max(0.001, guard.until - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        if conn is None:
            conn = _connect(scheme, host, port, proxy, timeout)
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        conn.response_class = _response_class(guard)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            raw = conn.getresponse()
            guard.start_body()
        except _STALE:
            conn.close()
            if not reused:
                raise
            conn, reused = None, False  # the server closed it while idle: once more, fresh
            continue
        except BaseException:
            conn.close()
            raise
        response = Response(raw, conn, _POOL, key)
        response.url = url
        return response


def _response_class(guard: _Guard) -> Any:
    def make(sock: Any, *args: Any, **kwargs: Any) -> _GuardedResponse:
        return _GuardedResponse(sock, *args, guard=guard, **kwargs)

    return make


def close_idle() -> None:
    """Close this thread's idle connections (tests; a long-lived process between jobs)."""
    for conn in _POOL.idle.values():
        conn.close()
    _POOL.idle.clear()
