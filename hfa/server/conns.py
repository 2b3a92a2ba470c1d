"""Bounds on connections for ``hfa serve``: a deadline for each request head, a cap on connections.

A client gets ``timeout`` seconds, counted from when the server starts waiting (a new
connection, or the end of the previous response on a kept-alive one), to deliver a whole
request line and headers; trickling a byte at a time does not extend it. Once a request is
in, every read and write must make progress within ``timeout`` (an inactivity timeout, as
waitress's ``channel_timeout``: a slow client that keeps reading is served, a stalled one is
dropped).

At most ``max_connections`` connections are served at once, one thread each. When a new one
arrives at the cap, the connection that has waited longest for its request head (idle
keep-alive, or a stalled client) is shut down to make room, so stalled clients cannot lock
others out; when every connection is busy answering a request, the newcomer gets a quick 503
with ``Retry-After`` (huggingface_hub retries it) and no thread.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time

log = logging.getLogger("hfa.serve")

DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_CONNECTIONS = 256
_FDS_RESERVED = 64  # descriptors kept for the listening socket, logs, the cache's files
_EVICTING_MAX = 64  # connections shut down but whose threads have not yet ended

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


class ConnectionLimiter:
    """Admits, tracks and (at the cap) evicts connections. Thread-safe."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._waiting_since: dict[socket.socket, float | None] = {}  # None: busy with a request
        self._evicted: set[socket.socket] = set()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._waiting_since)

    def admit(self, sock: socket.socket) -> bool:
        """Called on the accepting thread: True to serve ``sock``, False to refuse it."""
        with self._lock:
            if len(self._waiting_since) - len(self._evicted) >= self.max_connections:
                victim = self._longest_waiting()
                if victim is None or len(self._evicted) >= _EVICTING_MAX:
                    return False
                self._evicted.add(victim)
                with contextlib.suppress(OSError):
                    victim.shutdown(socket.SHUT_RDWR)  # its thread's read returns at once; it ends
            self._waiting_since[sock] = time.monotonic()
            return True

    def _longest_waiting(self) -> socket.socket | None:
        waiting = [(since, id(s), s) for s, since in self._waiting_since.items() if since is not None]
        waiting = [w for w in waiting if w[2] not in self._evicted]
        return min(waiting)[2] if waiting else None

    def waiting(self, sock: socket.socket, is_waiting: bool) -> None:
        """A handler starts (True) or ends (False) waiting for a request head."""
        with self._lock:
            if sock in self._waiting_since:
                self._waiting_since[sock] = time.monotonic() if is_waiting else None

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._waiting_since.pop(sock, None)
            self._evicted.discard(sock)


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


class DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads share one deadline while ``deadline`` is set.

    Outside a deadline every read waits at most ``timeout`` for data (inactivity).
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self.timeout = timeout
        self.deadline: float | None = None
        self._current = timeout
        sock.settimeout(timeout)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wait = self.timeout
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("the request head did not arrive in time")
        if wait != self._current:
            self._sock.settimeout(wait)
            self._current = wait
        return self._sock.recv_into(buffer)

    def fileno(self) -> int:
        return self._sock.fileno()


def send_all(sock: socket.socket, data: memoryview) -> None:
    """Send everything; each ``send`` waits at most the socket's timeout for room (inactivity).

    ``socket.sendall`` would instead count the timeout over the whole buffer, dropping a client
    slower than buffer/timeout however steadily it reads.
    """
    while data:
        sent = sock.send(data)
        data = data[sent:]
