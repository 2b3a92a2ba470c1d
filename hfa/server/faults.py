"""Test-only fault injection for ``hfa serve``: the failures real networks and servers produce.

A :class:`FaultPlan` in :class:`~hfa.server.http.ServerConfig` makes file downloads fail
in chosen ways, a chosen number of times, so tests and benchmarks can prove that clients
retry, resume, or fail cleanly. Not reachable from the command line.

Servers that do not serve ranges as asked (for ranged downloads, :mod:`hfa.hub.ranged`) are kinds
that hit only requests with a ``Range`` header: ``ignore_range`` (a ``200`` with the whole file),
``etag_change`` (another ``ETag``), ``bad_range`` (a ``Content-Range`` other than the one asked
for), ``no_accept_ranges`` (no ``Accept-Ranges``). ``cdn`` redirects a file's GETs to another origin
(``localhost`` for ``127.0.0.1``: the same server) with a signed URL that answers ``403`` after
``expire_after`` GETs, as a CDN's expiring signature does. ``hold`` answers a file only once a GET of
another file (``until``, a glob) has come, or ``delay`` seconds passed (``held`` says which): a test
can tell that a client asks for files at once rather than one after the other. The plan counts the body bytes its
file answers announce, by path (``sent``), so a test can tell what a resume fetched again.

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

RANGE_KINDS = ("ignore_range", "etag_change", "bad_range", "no_accept_ranges")  # only on ranged GETs
KINDS = ("status", "drop", "truncate", "corrupt", "long_length", "slow", "hold", "throttle", "cdn", *RANGE_KINDS)
CDN_PARAM = "hfa-cdn-signature"
BROKEN_BODY = ("drop", "truncate", "corrupt", "long_length")  # kinds that send a wrong body, then close


@dataclass
class Fault:
    kind: str  # one of KINDS
    path: str = "*"  # glob on the repo path of the file
    times: int = 1  # how many GETs it hits; -1 for all
    status: int = 500  # for "status"
    retry_after: str | None = None  # for "status" (e.g. with 429)
    after_bytes: int = 0  # "drop"/"truncate": bytes sent before the connection is cut
    delay: float = 0.0  # "slow": seconds before answering; "hold": the most seconds it waits
    until: str = ""  # "hold": answer once a GET of a file matching this glob has come (or ``delay`` passed)
    rate: int = 0  # "throttle" (and broken bodies, when set): bytes per second for the body
    expire_after: int = 0  # "cdn": GETs one signed URL answers before it is refused with 403 (0: never)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    latency: float = 0.0  # seconds added to every request (benchmarks)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    hits: list[tuple[str, str]] = field(default_factory=list)  # (kind, path) of faults applied
    sent: dict[str, int] = field(default_factory=dict)  # body bytes announced (Content-Length) by file answers 200/206
    started: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, client addr:port) per request
    _signed: dict[str, int] = field(default_factory=dict, repr=False)  # "cdn": GETs each signature answered
    held: list[tuple[str, bool]] = field(default_factory=list)  # "hold": (path, released by the GET it waited for)
    _arrived: list[str] = field(default_factory=list, repr=False)  # file paths GET, in the order they came
    _came: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def arrived(self, path: str) -> None:
        with self._came:
            self._arrived.append(path)
            self._came.notify_all()

    def hold(self, path: str, fault: Fault) -> None:
        """A "hold" fault: wait until a file matching ``fault.until`` has been asked for, at most ``fault.delay``."""
        with self._came:
            came = self._came.wait_for(
                lambda: any(fnmatch.fnmatchcase(p, fault.until) for p in self._arrived), fault.delay
            )
        with self._lock:
            self.held.append((path, bool(came)))

    def started_request(self, peer: str) -> None:
        with self._lock:
            self.started.append((time.monotonic(), peer))

    def count_sent(self, path: str, length: int) -> None:
        with self._lock:
            self.sent[path] = self.sent.get(path, 0) + length

    def use_signature(self, signature: str) -> int:
        """Count one GET of a "cdn" signed URL; return how many it has answered, this one included."""
        with self._lock:
            self._signed[signature] = self._signed.get(signature, 0) + 1
            return self._signed[signature]

    def new_signature(self) -> int:
        with self._lock:
            return sum(1 for k, _ in self.hits if k == "cdn")  # one per redirect

    def take(self, path: str, kinds: tuple[str, ...] = KINDS) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.times != 0 and fnmatch.fnmatchcase(path, fault.path):
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
        peer = f"{environ.get('REMOTE_ADDR')}:{environ.get('REMOTE_PORT')}"
        self.plan.started_request(peer)
        if self.plan.latency:
            time.sleep(self.plan.latency)
        picked: list[Fault] = []
        sizes: list[int] = []  # the Content-Length of the answer (a file wrapper reads past a range)
        get = environ.get("REQUEST_METHOD") == "GET"
        ranged = get and bool(environ.get("HTTP_RANGE"))
        early = self._before(environ, start_response) if get else None
        if early is not None:
            return early
        later = tuple(k for k in KINDS if k not in ("cdn", "ignore_range") and (ranged or k not in RANGE_KINDS))

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            path = environ.get("hfa.file")
            if path and get:
                self.plan.arrived(path)
            fault = self.plan.take(path, later) if path and get else None
            if path and get and status[:3] in ("200", "206"):
                self.plan.count_sent(path, sum(int(v) for k, v in headers if k.lower() == "content-length"))
            if fault is not None and fault.kind in RANGE_KINDS:
                headers = _range_fault(fault.kind, headers)
                fault = None
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault is not None and fault.kind == "hold":
                self.plan.hold(str(path), fault)
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

    def _before(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """Faults decided before the app answers: a CDN's redirect or refusal, a Range ignored."""
        from urllib.parse import parse_qs, quote

        path_info = environ.get("PATH_INFO", "")
        if "/resolve/" not in path_info:
            return None
        repo_path = path_info.split("/resolve/", 1)[1].partition("/")[2]
        signature = parse_qs(environ.get("QUERY_STRING", "")).get(CDN_PARAM)
        if signature:  # a request to the "CDN": answered while its signature is good
            fault = next((f for f in self.plan.faults if f.kind == "cdn"), None)
            uses = self.plan.use_signature(signature[0])
            if fault is not None and fault.expire_after and uses > fault.expire_after:
                self.plan.hits.append(("cdn-expired", repo_path))
                body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
                start_response(
                    "403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                )
                return [body]
        elif (fault := self.plan.take(repo_path, ("cdn",))) is not None:
            number = self.plan.new_signature()
            location = f"http://localhost:{environ.get('SERVER_PORT')}{quote(path_info)}?{CDN_PARAM}={number}"
            start_response("302 Found", [("Location", location), ("Content-Length", "0")])
            return [b""]
        if environ.get("HTTP_RANGE") and self.plan.take(repo_path, ("ignore_range",)) is not None:
            del environ["HTTP_RANGE"]
        return None


def _range_fault(kind: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The answer's headers as a server that does not serve ranges as asked sends them."""
    out = []
    for name, value in headers:
        low = name.lower()
        if kind == "no_accept_ranges" and low == "accept-ranges":
            continue
        if kind == "etag_change" and low == "etag":
            value = '"changed-' + value.strip('"')[:40] + '"'
        if kind == "bad_range" and low == "content-range":
            unit, _, rest = value.partition(" ")
            span, _, total = rest.partition("/")
            first, _, last = span.partition("-")
            value = f"{unit} {int(first) + 1}-{last}/{total}" if first.isdigit() else value
        out.append((name, value))
    return out


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
