"""Test-only fault injection for ``hfa serve``: the failures real networks and servers produce.

A :class:`FaultPlan` in :class:`~hfa.server.http.ServerConfig` makes file downloads fail
in chosen ways, a chosen number of times, so tests and benchmarks can prove that clients
retry, resume, or fail cleanly. Not reachable from the command line.

The plan is carried out by :class:`FaultMiddleware`, a WSGI middleware that
:func:`hfa.server.wsgi.create_app` wraps around the app when the config has a plan: the production
app has no fault branches. It keys on ``environ["hfa.file"]``, which the app sets on a file answer.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hfa.server.wire import header_safe

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
    rate: int = 0  # "throttle" (and broken bodies, when set): bytes per second for the body

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


class FaultMiddleware:
    """Wraps the WSGI app: the plan's latency before every request, and on file downloads (GET) the
    fault the plan picks for the path: an error status, a delay, or a broken or throttled body."""

    def __init__(self, app: Callable[..., Iterable[bytes]], plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.plan.latency:
            time.sleep(self.plan.latency)
        picked: list[Fault] = []
        sizes: list[int] = []  # the Content-Length of the answer (a file wrapper reads past a range)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            path = environ.get("hfa.file")
            fault = self.plan.take(path) if path and environ.get("REQUEST_METHOD") == "GET" else None
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault is not None and fault.kind == "status":
                message = f"Injected HTTP {fault.status}"
                body = json.dumps({"error": message}).encode()
                errors = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
                errors.append(("X-Error-Message", header_safe(message)))
                if fault.retry_after:
                    errors.append(("Retry-After", fault.retry_after))
                picked.append(fault)
                return start_response(f"{fault.status} Injected", errors)
            elif fault is not None and fault.kind == "long_length":
                headers = [(k, str(int(v) + 17) if k == "Content-Length" else v) for k, v in headers]
                picked.append(fault)  # promise more than will come
            elif fault is not None:
                picked.append(fault)
                sizes.extend(int(v) for k, v in headers if k.lower() == "content-length")
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)
        if not picked or picked[0].kind == "long_length":
            return body
        fault = picked[0]
        if fault.kind == "status":
            _close(body)
            return [json.dumps({"error": f"Injected HTTP {fault.status}"}).encode()]
        return _faulty(fault, body, sizes[0] if sizes else None)


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _faulty(fault: Fault, body: Iterable[bytes], size: int | None) -> Iterator[bytes]:
    """The body as a broken network or server sends it; a short body makes the engine close the connection."""
    try:
        data = b"".join(body)[:size]
    finally:
        _close(body)
    if fault.kind in ("drop", "truncate"):
        data = data[: min(fault.after_bytes, max(0, len(data) - 1))]
    elif fault.kind == "corrupt" and data:
        data = bytes([data[0] ^ 0xFF]) + data[1:]
    if not fault.rate:  # "throttle", or a broken body sent slowly (rate set)
        yield data
        return
    step = max(1, fault.rate // 20)
    for i in range(0, len(data), step):
        chunk = data[i : i + step]
        yield chunk
        time.sleep(len(chunk) / max(1, fault.rate))
