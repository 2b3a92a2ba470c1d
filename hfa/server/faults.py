"""Test-only fault injection for ``hfa serve``: the failures real networks and servers produce.

A :class:`FaultPlan` in :class:`~hfa.server.http.ServerConfig` makes file downloads fail
in chosen ways, a chosen number of times, so tests and benchmarks can prove that clients
retry, resume, or fail cleanly. Not reachable from the command line.
"""

from __future__ import annotations

import fnmatch
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO

KINDS = ("status", "drop", "truncate", "corrupt", "long_length", "slow", "throttle")


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
    from hfa.server.conns import send_all

    fp.seek(start)
    data = fp.read(length)
    if fault.kind in ("drop", "truncate"):
        data = data[: min(fault.after_bytes, max(0, length - 1))]
    elif fault.kind == "corrupt" and data:
        data = bytes([data[0] ^ 0xFF]) + data[1:]
    send_all(sock, memoryview(data))
    if fault.kind == "drop":
        sock.shutdown(socket.SHUT_RDWR)
