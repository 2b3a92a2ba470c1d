"""Big files as parallel ``Range`` requests over separate connections, into the one partial file.

A file of ``Settings.ranged_threshold`` bytes or more (``HFA_RANGED_THRESHOLD``, default 32 MiB)
is cut into ranges of at most ``Settings.range_size`` bytes (``HFA_RANGE_SIZE``, default 16 MiB;
never more than :data:`~hfa.hub.partials.MAX_RANGES` ranges, :func:`~hfa.hub.partials.range_bytes`). The
first range is asked of the endpoint (following its redirect to a CDN, as every download does);
that answer tells whether the server plays along (``206``, ``Accept-Ranges: bytes``, the
``Content-Range`` asked for). Ranges are written with ``pwrite`` at their offsets into the
partial file, which was sized to the whole file first (no second copy).

How many connections is measured, not assumed: the first connection's first range is timed over
``PROBE_BYTES`` or ``PROBE_SECONDS`` (or to its end, if sooner), and more connections are added only
as far as its rate falls short of ``Settings.ranged_target`` (``HFA_RANGED_TARGET``, bytes/s; about
what one core hashes and a fast disk writes). A link that caps each connection (a CDN edge, 40 MB/s)
gets every connection :class:`~hfa.hub.connections.Connections` grants; a link where one connection already reaches the
target (loopback, a fast LAN) keeps one stream, which asks for all the ranges left in one request
and costs the least CPU there. ``HFA_RANGED_TARGET=0`` opens every connection at once. Ranges are
asked of where the first answer's redirect ended.

Every byte is verified before the blob is published: a hashing thread follows the contiguous
prefix of the file as it fills (ranges are handed out in order, so the prefix grows steadily) and
reads it back from the page cache; when the last range lands, only its tail is left to hash.

Resume at range granularity: the ranges complete so far are recorded (atomically, by rename) in
a small JSON record (:mod:`hfa.hub.partials`); the next run fetches only the
others. A partial without a record is one of today's single-stream partials when it is shorter
than the file (its bytes are the file's prefix, resumed), and is fetched again otherwise; a
record that cannot be read is never trusted (the partial is fetched again).

A server that does not play along (a ``200`` or a ``416`` to a ranged request, a changed ``ETag``, a
``Content-Range`` other than the one asked for, no ``Accept-Ranges: bytes``) ends the ranged
attempt with :class:`Fallback`: the caller keeps the contiguous prefix and fetches the rest as
one stream. A signed CDN URL that stops working mid-download (``403`` from a host other than
the endpoint) is resolved through the endpoint again; a URL refused again before it served a
range ends the download. Every request goes through
the one request loop (:meth:`~hfa.hub.requests.Session.send`): its retries and bounds hold for
each range, and a body that breaks off is resumed within its range up to ``HFA_MAX_RETRIES`` times
(a try that brought a quarter of what it asked for, at most a range's worth, does not count). Cancelling the pull
(:class:`~hfa.hub.connections.InFlight`) ends reads blocked on a stalled server at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.errors import AccessDenied, CheckFailed, LocalError, NetworkError
from hfa.hub.classify import error_reason, is_transient
from hfa.hub.connections import Connections, InFlight
from hfa.hub.partials import (
    Segment,
    WriteBehind,
    load_done,
    open_partial,
    plan_segments,
    range_bytes,
    save_record,
)

if TYPE_CHECKING:
    from hfa.hub.client import OnlineHub
    from hfa.resolve.files import RemoteFile

__all__ = ["Fallback", "RangedResult", "connections_for", "fetch_ranged"]

CHUNK = 1 << 20
FLUSH_EVERY = 4 << 20  # written bytes handed to the disk this often (partials.WriteBehind)
PROBE_BYTES = 8 << 20  # the first connection's rate is taken over this much of its body, its first range ...
PROBE_SECONDS = 0.015  # ... or this long, whichever comes first
SAVE_EVERY = 0.05  # seconds between records of progress (a kill loses at most what came in since)
_ALLOW = frozenset({416})  # answered, not raised: a range the server will not serve is a fallback (check)
_CDN_ALLOW = _ALLOW | {403}  # ... and a CDN's refusal, its signed URL expired (expired)


class Fallback(Exception):
    """The server does not serve ranges as asked; args: (why,)."""


class _BodyEnded(Exception):
    """A range's body stopped early; resumed within the range."""


@dataclass
class RangedResult:
    received: int  # bytes that crossed the network
    digest: str  # of the whole file as it now is on disk
    fresh: bool  # every byte hashed came in this run
    connections: int  # the most connections this file used at once
    vouched: bool  # the server's own hash header matched the lock's


class _Claim:
    """The ranges one worker took, ``segments[i]`` to the one that ends at ``end``, filled in order."""

    def __init__(self, segments: list[Segment], i: int, end: int) -> None:
        self.segments = segments
        self.i = i
        self.end = end

    def segment(self) -> Segment:
        """The range being filled (the first of the claim that is not done)."""
        while self.segments[self.i].done and self.segments[self.i].end < self.end:
            self.i += 1
        return self.segments[self.i]

    def at(self) -> int:
        """The first byte the claim lacks (``end`` once it is whole)."""
        s = self.segment()
        return s.start + s.filled if not s.done else self.end


class _Ranged:
    """One ranged download: the shared state of its workers and its hashing thread."""

    def __init__(
        self,
        hub: OnlineHub,
        f: RemoteFile,
        fd: int,
        segments: list[Segment],
        *,
        url: str,
        ref: Any,
        cancel: threading.Event,
        on_bytes: Callable[[int], None],
        save: Callable[[list[Segment], str | None], None],
        validator: str | None,
        inflight: InFlight | None = None,
        limit: int = 1,
        target: int = 0,
    ) -> None:
        self.hub = hub
        self.inflight = inflight or InFlight(cancel)  # the pull's: a cancel ends every read
        self.own = InFlight(threading.Event())  # this file's: once it failed, its other ranges stop at once
        self.f = f
        self.fd = fd
        self.segments = segments
        self.resolve_url = url
        self.url = url  # where ranges are asked: the endpoint at first, then where its redirect ended
        self.resolves_left = 1  # a CDN URL that expires is resolved anew, once until a range is served again
        self.ref = ref
        self.cancel = cancel
        self.on_bytes = on_bytes
        self.save = save
        self.validator = validator
        self.lock = threading.Condition()
        self.next = 0  # segments before this one are taken or done
        self.first_open = 0  # segments before this one are done (the hashed prefix can reach their end)
        self.error: BaseException | None = None
        self.received = 0
        self.active = 0
        self.peak = 0
        self.ready = threading.Event()  # the first answer showed the server serves ranges (or it failed)
        self.index = {seg.start: i for i, seg in enumerate(segments)}
        self.target = target  # bytes/s the connections aim for together (0: every connection at once)
        self.wanted = max(1, limit) if target <= 0 else 1  # connections this file is to use (the probe decides)
        self.decided = threading.Event()  # ... known (or the download ended): helpers wait for it
        if target <= 0:
            self.decided.set()
        self.probe_start: float | None = None  # when the first connection's body began
        self.probe_bytes = 0  # ... and what it has brought since
        self.limit = max(1, limit)
        self.rate = 0.0  # the first connection's measured rate (bytes/s), once decided
        self.saved = time.monotonic()
        self.on_first: Callable[[Any], bool] | None = None  # the caller's checks of the first answer
        self.vouched = False  # ... which said the server's own hash is the lock's

    # -- handing out work ------------------------------------------------------------------
    def take(self) -> Segment | None:
        with self.lock:
            while self.next < len(self.segments):
                s = self.segments[self.next]
                self.next += 1
                if not s.done and not s.taken:
                    s.taken = True
                    return s
            return None

    def has_work(self) -> bool:
        with self.lock:
            return self.error is None and any(not s.done and not s.taken for s in self.segments[self.next :])

    def prefix(self) -> int:
        """Bytes from 0 that are written (call under the lock)."""
        while self.first_open < len(self.segments) and self.segments[self.first_open].done:
            self.first_open += 1
        if self.first_open == len(self.segments):
            return self.f.size
        s = self.segments[self.first_open]
        return s.start + s.filled

    def probed(self, n: int) -> None:
        """The first connection brought ``n`` more bytes while the count is undecided (call under the lock)."""
        now = time.monotonic()
        self.probe_bytes += n
        start = self.probe_start if self.probe_start is not None else now
        if self.probe_bytes >= PROBE_BYTES or now - start >= PROBE_SECONDS:
            self.decide(now)

    def decide(self, now: float) -> None:
        """How many connections: as many as it takes, at the first one's rate, to reach the target (under the lock)."""
        if self.decided.is_set() or self.probe_start is None:
            return
        self.rate = self.probe_bytes / max(now - self.probe_start, 1e-3)
        self.wanted = connections_for(self.rate, self.target, self.limit)
        self.decided.set()

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None or (isinstance(exc, Fallback) and not isinstance(self.error, Fallback)):
                self.error = exc
            self.lock.notify_all()
        self.ready.set()
        self.decided.set()
        self.own.cancel()  # ranges blocked on a stalled server need not be waited for

    # -- a worker: fetch ranges until none is left -----------------------------------------
    def work(self, first: Segment | None = None) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            buffer = bytearray(CHUNK)
            while self.error is None and (s := first or self.take()) is not None:
                first = None
                self.fetch(s, buffer)
                with self.lock:
                    self.lock.notify_all()
                    self.save(self.segments, self.validator)
        except BaseException as exc:
            self.fail(exc)
        finally:
            with self.lock:
                self.active -= 1

    def fetch(self, s: Segment, buffer: bytearray) -> None:
        """``s`` (and, for a worker alone, the untouched ranges after it: :meth:`claim`) to its end: the body
        resumed within what was claimed when it breaks off."""
        retries = self.hub.retry.retries
        tries = 0
        with self.lock:
            claim = self.claim(s)
        while (at := claim.at()) < claim.end:
            if self.cancel.is_set() or self.error is not None:
                raise NetworkError(f"Download of '{self.f.path}' cancelled", "rerun the command to resume")
            asked = min(claim.end - at, claim.segment().size)  # a range's worth, also of a long claim
            try:
                if self.request(claim, buffer):
                    continue
                if claim.at() < claim.end:
                    raise _BodyEnded(f"the body ended at byte {claim.at()} of {claim.end}")
            except (Fallback, AccessDenied, CheckFailed):
                raise
            except Exception as exc:
                if self.cancel.is_set() or self.error is not None:  # its read was ended on purpose: no retry
                    raise NetworkError(
                        f"Download of '{self.f.path}' cancelled", "rerun the command to resume"
                    ) from None
                if not isinstance(exc, _BodyEnded) and not is_transient(exc):
                    raise
                if (claim.at() - at) * 4 >= asked:
                    # A try that brought a quarter of what it asked for (of a range, for one stream's long claim:
                    # a server that cuts each answer after a fixed count serves it as it serves the ranges) is
                    # progress, not a failure: a server that cuts every other answer still delivers (at most
                    # ~log(range, 4/3) tries a range, ~60 for 16 MiB).
                    tries = 0
                    continue
                tries += 1
                if tries > retries:
                    raise NetworkError(
                        f"Download of '{self.f.path}' (bytes {claim.at()}-{claim.end - 1}) kept failing"
                        f" ({tries} tries: {error_reason(exc) if not isinstance(exc, _BodyEnded) else exc})",
                        "check --endpoint / HF_ENDPOINT and the network, then rerun: it resumes where it stopped",
                    ) from None
                self.hub.retry.wait(tries - 1)
        if not self.decided.is_set():
            with self.lock:
                self.decide(time.monotonic())  # the first range ended before the probe did: judged by it

    def claim(self, s: Segment) -> _Claim:
        """What a worker that took ``s`` asks for (call under the lock): ``s`` alone, unless the count is
        decided to be one connection: then the untouched ranges after it too (one request for them all, no
        round trip per range). The ranges claimed are taken at once: no other worker asks for them."""
        i = self.index[s.start]
        end = s.end
        if self.decided.is_set() and self.wanted <= 1:
            for nxt in self.segments[i + 1 :]:
                if nxt.taken or nxt.filled:
                    break
                nxt.taken = True
                end = nxt.end
        return _Claim(self.segments, i, end)

    def request(self, claim: _Claim, buffer: bytearray) -> bool:
        """Ask for what ``claim`` lacks and write what comes; True when the URL was resolved anew (ask again)."""
        from hfa.hub.requests import origin

        first = claim.at()
        last = claim.end - 1
        url = self.url
        cdn = origin(url) != origin(self.hub.settings.endpoint)
        with (
            self.hub.stream(
                url,
                headers={"Range": f"bytes={first}-{last}"},
                ref=self.ref,
                path=self.f.path,
                allow=_CDN_ALLOW if cdn else _ALLOW,
            ) as response,
            self.inflight.track(response),
            self.own.track(response),
        ):
            if response.status_code == 403:
                self.expired(url)
                return True
            self.check(response, first, last)
            with self.lock:
                if self.probe_start is None:
                    self.probe_start = time.monotonic()  # the first answer's headers: the probe's clock starts
            view = memoryview(buffer)
            behind = WriteBehind(self.fd, first, FLUSH_EVERY)
            at = first
            s = claim.segment()
            try:
                while at <= last and not self.cancel.is_set():
                    n = response.readinto(view[: min(len(buffer), s.end - at)])
                    if not n:
                        break
                    done = 0
                    while done < n:
                        done += os.pwrite(self.fd, view[done:n], at + done)
                    at += n
                    behind.wrote(n)
                    with self.lock:
                        s.filled += n
                        self.received += n
                        if not self.decided.is_set():
                            self.probed(n)
                        if s.done and at <= last:
                            s = claim.segment()
                        self.lock.notify_all()
                        if time.monotonic() - self.saved >= SAVE_EVERY:
                            self.saved = time.monotonic()
                            self.save(self.segments, self.validator)
                    self.on_bytes(n)
            finally:
                behind.flush()
        return False

    def expired(self, url: str) -> None:
        """A 403 from the CDN: its signed URL ran out. Resolve it again through the endpoint, once."""
        with self.lock:
            if self.url != url:  # another worker resolved it already
                return
            if self.resolves_left <= 0:
                raise AccessDenied(
                    f"The download URL of '{self.f.path}' was refused (HTTP 403) again after resolving it anew",
                    "rerun the command: it resumes where it stopped",
                )
            self.resolves_left -= 1
            self.url = self.resolve_url

    def check(self, response: Any, first: int, last: int) -> None:
        """The answer is the range asked for, from the same file: else fall back to one stream."""
        size = self.f.size
        if response.status_code != 206:
            raise Fallback(f"the server answered HTTP {response.status_code} to a Range request")
        content_range = (response.headers.get("Content-Range") or "").strip()
        if content_range != f"bytes {first}-{last}/{size}":
            raise Fallback(f"the server answered Content-Range '{content_range[:80]}' to bytes={first}-{last}")
        if response.length is not None and response.length != last + 1 - first:
            raise Fallback(f"the server announced {response.length} bytes for bytes={first}-{last}")
        if self.on_first is not None:
            hook, self.on_first = self.on_first, None
            self.vouched = hook(response)
        etag = response.headers.get("ETag")
        with self.lock:
            if self.url == self.resolve_url:  # a first answer (or one after resolving again): where ranges go
                if "bytes" not in (response.headers.get("Accept-Ranges") or "").lower():
                    raise Fallback("the server does not announce Accept-Ranges: bytes")
                self.url = response.url or self.url
            self.resolves_left = 1  # an answer with the range: a later expiry may be resolved again
            self.ready.set()
            if self.validator is None:
                self.validator = etag
            elif etag != self.validator:
                raise Fallback(f"the file's ETag changed during the download ({self.validator} -> {etag})")

    # -- the hashing thread ----------------------------------------------------------------
    def hash_prefix(self, hasher: Any, stop: threading.Event, on_prefix: Callable[[int], None] | None) -> None:
        """Hash the file from byte 0 as its contiguous prefix grows, read back with ``preadv``."""
        size = self.f.size
        hashed = 0
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while hashed < size:
            with self.lock:
                while (target := self.prefix()) <= hashed:
                    if stop.is_set() or self.error is not None:
                        return
                    self.lock.wait(0.2)
            while hashed < target:
                n = os.preadv(self.fd, [view[: min(CHUNK, target - hashed)]], hashed)
                if n <= 0:
                    raise LocalError(
                        f"The partial file of '{self.f.path}' became shorter than what was written into it",
                        "another program changed the cache (--cache-dir); rerun the command",
                    )
                hasher.update(view[:n])
                hashed += n
                if on_prefix is not None:
                    on_prefix(hashed)


def fetch_ranged(
    hub: OnlineHub,
    f: RemoteFile,
    partial: Path,
    record: Path,
    *,
    ref: Any,
    url: str,
    range_size: int,
    connections: Connections,
    cancel: threading.Event,
    hasher: Any,
    on_bytes: Callable[[int], None],
    check_first: Callable[[Any], bool] | None = None,
    on_prefix: Callable[[int], None] | None = None,
    inflight: InFlight | None = None,
    target: int = 0,
) -> RangedResult:
    """Fetch what the partial lacks as parallel ranges; return what arrived and the whole file's digest.

    ``on_prefix`` is told how many bytes from the start are written and hashed, as that grows (the partial
    is sized to the file at once: a reader following it must not read past that, into holes).

    The calling thread holds one slot of ``connections`` and fetches ranges itself; helper
    threads take more slots while ranges are left, as many as its measured rate says it takes to
    reach ``target`` bytes/s (0: every slot at once). Raises :class:`Fallback` (the partial then
    holds a contiguous prefix and no record) when the server does not serve ranges as asked.
    """
    loaded = load_done(record, partial, f.etag, f.size)
    done, validator = loaded if loaded is not None else ([], None)
    fresh = not done
    segments = plan_segments(f.size, range_bytes(f.size, range_size, connections.limit), done)
    save_record(record, f.etag, f.size, validator, segments)  # first the record: a sized partial never lacks one
    fd = open_partial(partial)
    stop = threading.Event()
    job: _Ranged | None = None
    try:
        if os.fstat(fd).st_size != f.size:
            os.ftruncate(fd, f.size)
        save_lock = threading.Lock()

        def save(segs: list[Segment], valid: str | None) -> None:
            with save_lock:
                save_record(record, f.etag, f.size, valid, segs)

        job = _Ranged(
            hub,
            f,
            fd,
            segments,
            url=url,
            ref=ref,
            cancel=cancel,
            on_bytes=on_bytes,
            save=save,
            validator=validator,
            inflight=inflight,
            limit=connections.limit,
            target=target,
        )
        if on_prefix is not None:
            on_prefix(0)
        hashing: list[_Thread] = []
        helpers: list[_Thread] = []
        try:
            hashing.append(_Thread(_guarded(job, job.hash_prefix), (hasher, stop, on_prefix), "hfa-hash"))
            first = job.take()
            if first is not None:
                job.on_first = check_first
                wanted = min(connections.limit, sum(1 for s in segments if not s.done)) - 1
                for i in range(max(0, wanted)):  # they wait for the count of connections to be decided
                    helpers.append(_Thread(_helper, (job, connections, i + 1), f"hfa-range-{i}"))
                job.work(first)
        except BaseException as exc:
            job.fail(exc)
        finally:
            job.decided.set()  # the first connection finished alone (or failed): waiting helpers stop
            interrupted = _settle(job, helpers)
            stop.set()
            with job.lock:
                job.lock.notify_all()
            interrupted = _settle(job, hashing) or interrupted
        if job.error is not None:
            if not isinstance(job.error, Fallback):
                with suppress(OSError):  # what was written is kept for the rerun (a full disk keeps the last record)
                    save(segments, job.validator)
            raise interrupted or job.error
        if job.prefix() < f.size:  # pragma: no cover - every segment done means the prefix is whole
            raise NetworkError(f"Download of '{f.path}' stopped early", "rerun the command to resume")
        os.fsync(fd)
        return RangedResult(job.received, hasher.hexdigest(), fresh, max(1, job.peak), job.vouched)
    except Fallback as exc:
        exc.received = job.received if job is not None else 0  # type: ignore[attr-defined]
        keep = job.prefix() if job is not None else 0
        os.ftruncate(fd, keep)  # a contiguous prefix: what a single stream resumes from
        record.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def connections_for(rate: float, target: int, limit: int) -> int:
    """Connections for a file whose first one brings ``rate`` bytes/s: as many as reach ``target`` together
    (rounded), 1 to ``limit`` (``target`` 0: ``limit``). One that brings a third of the target keeps the file:
    loopback or a LAN, bound by the connections' CPU (256 MiB on 2 cores: one took 0.24-0.32 s, two 0.56 s)."""
    if target <= 0:
        return max(1, limit)
    if rate * 3 >= target:
        return 1
    return max(1, min(limit, int(target / max(rate, 1.0) + 0.5)))


class _Thread:
    """A thread of one ranged download, started at once, whose end :func:`_settle` waits for."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], name: str) -> None:
        self.through = threading.Event()

        def run() -> None:
            try:
                target(*args)
            finally:
                self.through.set()

        self.thread = threading.Thread(target=run, name=name)
        self.thread.start()


def _settle(job: _Ranged, threads: list[_Thread]) -> BaseException | None:
    """Wait until ``threads`` are through; an exception raised in this thread meanwhile (Ctrl-C's, on the main
    thread) fails the job, so that their reads end at once, and is returned once they are through.

    Never Thread.join under a signal: on CPython 3.10 to 3.12 a Ctrl-C that cuts a join short marks the thread
    stopped while it still runs, and it went on writing into the partial's descriptor after it was closed (a
    number the next file opened reuses)."""
    interrupted: BaseException | None = None
    for t in threads:
        while True:
            try:
                t.through.wait()
                break
            except BaseException as exc:
                interrupted = interrupted or exc
                job.fail(exc)
        t.thread.join()  # through: returns at once
    return interrupted


def _guarded(job: _Ranged, fn: Callable[..., None]) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:
            job.fail(exc)

    return run


def _helper(job: _Ranged, connections: Connections, rank: int) -> None:
    """Once the count is decided and includes this one (``rank`` 1: the second connection), fetch ranges on
    a free slot while any are left. A first connection stalled in its probe is judged by what it brought."""
    while not job.ready.wait(0.05):  # the first answer: where ranges go
        if job.cancel.is_set() or job.error is not None:
            return
    while not job.decided.wait(PROBE_SECONDS / 4):  # how many connections (the clock checked often: ~15 ms)
        with job.lock:
            if job.cancel.is_set() or job.error is not None:
                return
            if job.probe_start is not None and (now := time.monotonic()) - job.probe_start >= PROBE_SECONDS:
                job.decide(now)
    if rank >= job.wanted:
        return
    while job.has_work() and not job.cancel.is_set():
        if connections.try_take(0.05):
            try:
                job.work()
            finally:
                connections.give_back()
            return
    time.sleep(0)
