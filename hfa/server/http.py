"""``hfa serve`` as a running server: its configuration and the :class:`HubServer` that runs the WSGI
app (hfa.server.wsgi) on waitress.

Why waitress: measured on 2 cores (issue 14), it sends 1 GiB to curl as fast as gunicorn's sendfile
(0.34-0.40 s against 0.31-0.42 s) and faster than granian (0.49-0.64 s) or ``http.server``
(0.66-0.76 s); unlike gunicorn it needs no buffering proxy in front against stalled clients (its
channels are asynchronous, a stalled client holds no thread); it is pure Python, one process, and
runs on every platform. Threads run the app; the I/O loop reads requests and writes answers.

How file bodies go out: waitress sends a ``wsgi.file_wrapper`` body by reading ``SO_SNDBUF`` bytes
(4 MiB on loopback) from the file for every send and dropping what the socket did not take (about
two thirds): 1 GiB to curl at 743 MB/s and 0.36 CPU s/GiB, half of ``http.server``'s speed. The
engine gives the app :class:`FileBody` as its ``wsgi.file_wrapper`` instead: 256 KiB ``pread``s, each
byte read once, the rest of a chunk sent from memory next time; 2,170 MB/s and 0.15 s/GiB, 1.07x
``http.server`` (bench/bench_serve.py, docs/serve.md "Sizing"). ``HFA_SERVE_SENDFILE=1`` sends them
with ``os.sendfile`` instead (Linux; slower to a client on the same host, see :func:`file_wrapper`).
Either way the bytes are those from the file's position when the app returned it (a Range's
start), at most its Content-Length; a file that ends early closes the connection.

Configured for a hostile network:

- ``timeout``: a connection with no request running and no byte moved for ``timeout`` seconds is
  closed (waitress' ``channel_timeout``: an idle keep-alive, a stalled client, a client that stopped
  reading a download); a request head must also arrive whole within ``timeout`` of its first byte,
  so trickling a byte at a time does not keep it open.
- ``max_connections`` (waitress' ``connection_limit``, lowered to fit the open-file limit): at the cap
  the connection that has waited longest without a request makes room for the newcomer, so stalled
  clients cannot lock others out; when all are busy answering, the newcomer gets a quick 503 with
  ``Retry-After`` (huggingface_hub retries it).
- request line and headers at most 64 KiB, request bodies at most 64 MiB.
- :meth:`HubServer.request_stop` (``hfa serve`` on SIGTERM): stop accepting, let answers in flight
  finish within ``grace`` seconds, then close.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from hfa.server.config import DEFAULT_TIMEOUT, ServerConfig
from hfa.server.handler import SERVER
from hfa.server.wsgi import HubApp, create_app

__all__ = ["FileBody", "HubServer", "SendfileBody", "ServerConfig", "fd_bound_connections", "file_wrapper"]

log = logging.getLogger("hfa.serve")

MAX_HEADER = 64 * 1024
MAX_BODY = 64 * 1024 * 1024 + 1024  # the largest inference request (hfa.server.infer_routes.MAX_BODY)
_FDS_RESERVED = 64  # descriptors kept for the listening socket, logs, the cache's files
_TICK = 0.2  # seconds between checks of timeouts and of a stop request
SEND_CHUNK = 256 << 10  # bytes read from an answer's file or buffer for one send (waitress: SO_SNDBUF, up to 4 MiB)
SENDFILE_MAX = 16 << 20  # bytes asked of one os.sendfile (the kernel sends what the socket buffer takes)
# Answers the app streams (a bucket's or an upstream's bytes, 1 MiB chunks): the app's thread waits
# while more than OUTBUF_HIGH is queued on its connection, and a queue is kept in memory up to
# OUTBUF_OVERFLOW (beyond, waitress spills it to a temporary file). waitress' defaults, 16 MiB and
# 1 MiB, wrote every streamed byte to a temporary file and read it back (a 1 MiB chunk already
# overflows): 0.74-0.77 CPU s per GiB streamed to curl against 0.27-0.29 s with these. A buffer then
# holds under OUTBUF_HIGH + one chunk (< 2 MiB), never spilled; a connection at most two of them.
OUTBUF_HIGH = 1 << 20
OUTBUF_OVERFLOW = 2 << 20
_DISCONNECTED = frozenset(
    {errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED, errno.EPIPE, errno.EBADF}
)
USE_SENDFILE = sys.platform.startswith("linux") and hasattr(os, "sendfile")

_REFUSED_BODY = b'{"error": "Too many connections; retry shortly"}'
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Retry-After: 1\r\n"
    b"X-Error-Message: Too many connections; retry shortly\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_REFUSED_BODY), _REFUSED_BODY)
)


def fd_bound_connections(wanted: int) -> int:
    """``wanted``, lowered so that every connection (a socket and a file served) fits the fd limit."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not POSIX
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - _FDS_RESERVED) // 2))


class FileSlice:
    """What :meth:`SendfileBody.get` hands waitress to send: ``count`` bytes of ``fd`` from ``offset``."""

    __slots__ = ("count", "fd", "offset")

    def __init__(self, fd: int, offset: int, count: int) -> None:
        self.fd, self.offset, self.count = fd, offset, count

    def __len__(self) -> int:
        return self.count


class FileBody(ReadOnlyFileBasedBuffer):
    """``wsgi.file_wrapper`` under :class:`HubServer`: a file body that waitress sends from the file's
    position when it calls :meth:`prepare` (the app seeks to a Range's start first), at most the
    answer's Content-Length. It keeps its own offset (nothing else moves the file's position under it)
    and reads with ``os.pread``, :data:`SEND_CHUNK` bytes at a time, each byte once: the part of a
    chunk the socket did not take is sent from memory next time, not read again (waitress' own
    buffer reads ``SO_SNDBUF`` bytes for every send and drops what was not sent)."""

    def __init__(self, file: Any, block_size: int = SEND_CHUNK) -> None:
        super().__init__(file, block_size)
        self.offset = 0
        self._chunk = memoryview(b"")  # bytes of the file from self.offset, read and not yet sent

    def prepare(self, size: int | None = None) -> int:
        self.offset = self.file.tell()
        left = max(0, os.fstat(self.file.fileno()).st_size - self.offset)
        self.remain = left if size is None else min(left, size)
        return int(self.remain)

    def get(self, numbytes: int = -1, skip: bool = False) -> Any:
        if not self._chunk:
            self._chunk = memoryview(os.pread(self.file.fileno(), min(self.remain, SEND_CHUNK), self.offset))
        return self._chunk  # empty when the file ended early (HubChannel.send then closes the connection)

    def skip(self, numbytes: int, allow_prune: int = 0) -> None:
        if numbytes > self.remain:
            raise ValueError(f"Can't skip {numbytes} bytes in buffer of {self.remain} bytes")
        self.offset += numbytes
        self.remain -= numbytes
        self._chunk = self._chunk[numbytes:]

    def close(self) -> None:
        self._chunk = memoryview(b"")
        super().close()


class SendfileBody(FileBody):
    """A :class:`FileBody` that :class:`HubChannel` sends with ``os.sendfile`` (Linux): no copy through
    Python (see :func:`file_wrapper`)."""

    def get(self, numbytes: int = -1, skip: bool = False) -> FileSlice:
        return FileSlice(self.file.fileno(), self.offset, min(self.remain, SENDFILE_MAX))


def file_wrapper() -> type[FileBody]:
    """The file body class of a new :class:`HubServer`: :class:`FileBody`, or :class:`SendfileBody` with
    ``HFA_SERVE_SENDFILE=1`` on Linux. Copying is the default because it measured faster: to curl on
    loopback, 1 GiB at 2,170 MB/s copied against 1,479 MB/s with sendfile (9 rounds, 2 cores; the
    receiver then reads the bytes from memory instead of the CPU's cache), with about the same server
    CPU (0.15-0.16 s/GiB). Over a real network sendfile may save the server's copy; not measured here."""
    wanted = os.environ.get("HFA_SERVE_SENDFILE", "").strip().lower() in ("1", "true", "yes")
    return SendfileBody if wanted and USE_SENDFILE else FileBody


class FileEndedEarly(OSError):
    """A file body's file is shorter than the answer promised (it shrank after it was opened)."""


class HubChannel(HTTPChannel):
    """waitress' connection, noting when the request head now being read began to arrive; it sends
    :class:`SendfileBody` bodies with ``os.sendfile`` and reads other buffers :data:`SEND_CHUNK` at a time."""

    head_since: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sendbuf_len = SEND_CHUNK

    def send(self, data: Any, do_close: bool = True) -> int:
        if not isinstance(data, FileSlice):
            if not data:  # waitress reads only buffers with bytes left: nothing read is a file that ended early
                raise self._ended_early()
            return int(super().send(data, do_close))
        try:
            sent = os.sendfile(self.socket.fileno(), data.fd, data.offset, data.count)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return 0
            if exc.errno in _DISCONNECTED:
                if do_close:
                    self.handle_close()
                return 0
            raise
        if sent == 0 and data.count:
            raise self._ended_early()
        return sent

    def _ended_early(self) -> FileEndedEarly:
        # The file ended before the Content-Length: stop (waitress closes the connection on an OSError)
        # rather than be told "writable" and find nothing to send, again and again until the timeout.
        log.warning("a file being sent ended before its Content-Length; closing the connection")
        return FileEndedEarly(errno.EIO, "file ended early")

    def received(self, data: bytes) -> bool:
        if self.request is None and data:
            self.head_since = time.time()
        done = super().received(data)
        if self.request is None or self.request.headers_finished:
            self.head_since = None
        return bool(done)

    def handle_close(self) -> None:
        # Read what the client sent and we did not (a refused request's rest): closing over unread
        # bytes resets the connection, and the client may then lose the answer it was sent.
        with contextlib.suppress(OSError, AttributeError):
            self.socket.setblocking(False)
            for _ in range(16):
                if not self.socket.recv(65536):
                    break
        super().handle_close()

    def idle(self) -> bool:
        """No request running or queued and nothing left to send: free to close."""
        return not self.requests and not self.total_outbufs_len and not self.will_close

    def arriving(self) -> bool:
        """Bytes wait in the socket that the loop will read next (a request sent on a connection that
        looked idle): closing now would drop that request unanswered, and the client would retry it."""
        if not self.readable():
            return False  # the loop does not read them (an answer still to send): no reason to wait
        try:
            return bool(self.socket.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)))
        except OSError:  # nothing there (EWOULDBLOCK), or a broken socket
            return False


class HubWSGIServer(TcpWSGIServer):
    """waitress' TCP server with hfa's timeouts (float seconds, a head deadline) and its eviction at the cap."""

    channel_class = HubChannel
    timeout = DEFAULT_TIMEOUT
    _next_check = 0.0

    def readable(self) -> bool:
        now = time.time()
        if now >= self._next_check:
            self._next_check = now + _TICK
            self.maintenance(now)
        return bool(self.accepting)

    def maintenance(self, now: float) -> None:
        cutoff = now - self.timeout
        for channel in list(self.active_channels.values()):
            stale = channel.last_activity < cutoff  # idle, stalled, or not reading what it is sent
            slow_head = channel.head_since is not None and channel.head_since < cutoff  # a trickled head
            if not channel.requests and (stale or slow_head) and (slow_head or not channel.arriving()):
                # closed here, in the loop: a client that reads nothing never makes its socket
                # writable, so waitress' own `will_close` would wait for a write that never comes
                channel.handle_close()

    def handle_accept(self) -> None:
        if len(self.active_channels) >= self.adj.connection_limit:
            waiting = [c for c in self.active_channels.values() if c.idle() and not c.arriving()]
            if waiting:
                victim = min(waiting, key=lambda c: c.head_since or c.last_activity)
                log.info("closing a waiting connection from %s to make room", victim.addr[0] if victim.addr else "-")
                victim.handle_close()
            else:
                with contextlib.suppress(OSError):
                    pair = self.accept()
                    if pair is not None:
                        log.warning("refused a connection from %s: every connection is busy", pair[1][0])
                        refuse(pair[0])
                return
        super().handle_accept()

    def busy(self) -> int:
        """Connections with a request running or an answer left to send."""
        return sum(1 for c in list(self.active_channels.values()) if not c.idle())


def refuse(sock: socket.socket) -> None:
    """Answer 503 without reading the request (a non-blocking send into an empty buffer), then close."""
    try:
        sock.setblocking(False)
        sock.send(REFUSED)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()


class HubServer:
    """A running (or ready to run) server: the WSGI app on waitress. Use as a context manager in tests."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.app = create_app(config)
        inner = self.app
        while not isinstance(inner, HubApp):  # under the test-only fault middleware
            inner = inner.app  # type: ignore[attr-defined]
        self.hub: HubApp = inner
        self.store = inner.store
        cap = fd_bound_connections(config.max_connections)
        if cap < config.max_connections:
            log.warning("serving at most %d connections at once (the open-file limit allows no more)", cap)
        adj = Adjustments(
            host=config.host,
            port=config.port,
            threads=config.threads,
            connection_limit=cap,
            channel_timeout=max(1, int(config.timeout + 0.999)),
            cleanup_interval=1,
            outbuf_high_watermark=OUTBUF_HIGH,
            outbuf_overflow=OUTBUF_OVERFLOW,
            max_request_header_size=MAX_HEADER,
            max_request_body_size=MAX_BODY,
            ident=SERVER,
            asyncore_use_poll=True,  # select() cannot watch descriptors past 1024
            log_socket_errors=False,  # clients that leave are not the server's errors
            expose_tracebacks=False,
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(config.threads)
        self._map: dict[int, Any] = {}
        self._dispatcher = dispatcher
        self._file_wrapper = file_wrapper()
        self._server = HubWSGIServer(
            self._engine_app, self._map, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0]
        )
        self._server.timeout = config.timeout
        self._stop = threading.Event()
        self._grace = 0.0
        self._thread: threading.Thread | None = None
        self._closed = False

    def _engine_app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The app, given :class:`FileBody` or :class:`SendfileBody` as its ``wsgi.file_wrapper``."""
        environ["wsgi.file_wrapper"] = self._file_wrapper
        return self.app(environ, start_response)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request served so far, as (method, path without query)."""
        return self.hub.requests()

    def reset_requests(self) -> None:
        self.hub.reset_requests()

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._server.active_channels)

    @property
    def url(self) -> str:
        host, port = str(self._server.effective_host), self._server.effective_port
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`request_stop` (or :meth:`stop`); then drain within the grace period and close."""
        while not self._stop.is_set():
            wasyncore.loop(timeout=_TICK, use_poll=True, map=self._map, count=1)
        self._drain()

    def request_stop(self, grace: float | None = None) -> None:
        """Ask the serve loop to stop: no new connections; answers in flight get ``grace`` seconds. Signal-safe."""
        self._grace = self.config.grace if grace is None else grace
        self._stop.set()

    def _drain(self) -> None:
        server = self._server
        server.accepting = False
        with contextlib.suppress(OSError, KeyError):
            server.del_channel()
            server.socket.close()
        deadline = time.monotonic() + self._grace
        while time.monotonic() < deadline:
            for channel in list(server.active_channels.values()):
                if channel.idle():
                    channel.handle_close()
            if not server.active_channels:
                break
            wasyncore.loop(timeout=_TICK, use_poll=True, map=self._map, count=1)
        left = len(server.active_channels)
        if left and self._grace:
            log.warning("closing %d connections still busy after the %.0f s grace period", left, self._grace)
        self.close()

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.serve_forever, name="hfa-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace: float = 0.0) -> None:
        """Stop a server started with :meth:`start`: answers in flight get ``grace`` seconds."""
        self.request_stop(grace)
        if self._thread is not None:
            self._thread.join(timeout=grace + 10)
        self.close()

    def close(self) -> None:
        """Close every connection and the socket, end the threads, release the inference models.
        For a server whose loop is not running (never started, or returned)."""
        if self._closed:
            return
        self._closed = True
        wasyncore.close_all(self._map, ignore_all=True)
        self._dispatcher.shutdown(cancel_pending=True, timeout=5)
        self.hub.close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
