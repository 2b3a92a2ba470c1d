"""Test-only fault injection for ``hfa serve``: the failures real networks and servers produce.

A :class:`FaultPlan` in :class:`~hfa.server.http.ServerConfig` makes file downloads fail
in chosen ways, a chosen number of times, so tests and benchmarks can prove that clients
retry, resume, or fail cleanly. Not reachable from the command line.

The plan is carried out by :class:`FaultyHandler`, which :class:`~hfa.server.http.HubServer`
uses in place of :class:`~hfa.server.handler.Handler` when the config has a plan: the production
handler has no fault branches.
"""

from __future__ import annotations

import fnmatch
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from hfa.server.conns import send_all
from hfa.server.handler import Handler
from hfa.server.wire import HttpError

if TYPE_CHECKING:
    import io

    from hfa.server.store import FileEntry, Repo, Snapshot

KINDS = ("status", "drop", "truncate", "corrupt", "long_length", "slow", "throttle")
BROKEN_BODY = ("drop", "truncate", "corrupt", "long_length")  # kinds that send a wrong body, then close


@dataclass
class Fault:
    kind: str  # one of KINDS
    path: str = "*"  # glob on the repo path of the file
    times: int = 1  # how many GETs it hits; -1 for all
    status: int = 500  # for "status"
    retry_after: str | None = None  # for "status" (e.g. with 429)
    after_bytes: int = 0  # "drop"/"truncate": bytes sent before the connection is cut
    delay: float = 0.0  # "slow": seconds before answering
    rate: int = 0  # "throttle": bytes per second for the body

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    latency: float = 0.0  # seconds added to every request (benchmarks)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    hits: list[tuple[str, str]] = field(default_factory=list)  # (kind, path) of faults applied

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times != 0 and fnmatch.fnmatchcase(path, fault.path):
                    if fault.times > 0:
                        fault.times -= 1
                    self.hits.append((fault.kind, path))
                    return fault
        return None


def send_throttled(sock: socket.socket, fp: BinaryIO, start: int, length: int, rate: int) -> None:
    """Send ``length`` bytes from ``start`` at about ``rate`` bytes per second."""
    fp.seek(start)
    step = max(1, rate // 20)
    left = length
    while left > 0:
        data = fp.read(min(step, left))
        if not data:
            break
        sock.sendall(data)
        left -= len(data)
        time.sleep(len(data) / max(1, rate))


def send_faulty(sock: socket.socket, fault: Fault, fp: BinaryIO, start: int, length: int) -> None:
    """Send a body the way a broken network or server would; the caller then closes the connection."""
    fp.seek(start)
    data = fp.read(length)
    if fault.kind in ("drop", "truncate"):
        data = data[: min(fault.after_bytes, max(0, length - 1))]
    elif fault.kind == "corrupt" and data:
        data = bytes([data[0] ^ 0xFF]) + data[1:]
    send_all(sock, memoryview(data))
    if fault.kind == "drop":
        sock.shutdown(socket.SHUT_RDWR)


class FaultyHandler(Handler):
    """:class:`~hfa.server.handler.Handler` carrying out the server's :class:`FaultPlan`: the plan's
    latency before every request, and on file downloads (GET) the fault the plan picks for the path."""

    fault: Fault | None = None  # the fault of the download being sent

    def plan(self) -> FaultPlan:
        plan = self.server.config.faults
        if plan is None:  # pragma: no cover - HubServer uses this handler only with a plan
            raise RuntimeError("FaultyHandler needs ServerConfig.faults")
        return plan

    def route(self, head: bool) -> None:
        latency = self.plan().latency
        if latency:
            time.sleep(latency)
        super().route(head)

    def send_file(self, repo: Repo, snap: Snapshot, entry: FileEntry, path: str, head: bool) -> None:
        fault = None if head else self.plan().take(path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
        elif fault is not None and fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            raise HttpError(fault.status, f"Injected HTTP {fault.status}", headers=extra)
        self.fault = fault
        try:
            super().send_file(repo, snap, entry, path, head)
        finally:
            self.fault = None

    def send_header(self, keyword: str, value: str) -> None:
        if keyword == "Content-Length" and self.fault is not None and self.fault.kind == "long_length":
            value = str(int(value) + 17)  # promise more than will come
        super().send_header(keyword, value)

    def send_body(self, fp: io.BufferedReader, start: int, length: int) -> int:
        fault = self.fault
        if fault is not None and fault.kind in BROKEN_BODY:
            send_faulty(self.connection, fault, fp, start, length)
            self.close_connection = True
            return length
        if fault is not None and fault.kind == "throttle":
            send_throttled(self.connection, fp, start, length, fault.rate)
            return length
        return super().send_body(fp, start, length)
