"""One upstream fetch of one blob by the mirror (:class:`Flight`), and what its waiting clients read
while it runs (:class:`GrowingFile`).

A flight runs on its own thread, so no client's request carries it: the fetch goes on when the
client that caused it leaves. Clients of the same blob meanwhile read the partial file the fetch
writes (``blobs/<etag>.incomplete``) as it grows, through :func:`hfa.server.downloads.verified_body`:
every byte is hashed from the first, and the last chunk is held back until the whole blob matched its
size and hash. When the fetch fails (corrupt or unsafe bytes, a broken upstream) or what was read
does not hash right, the body ends short of its ``Content-Length``: the connection is closed and the
client's own size check fails; the mirror caches nothing (the fetch never publishes such bytes).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.errors import AccessDenied, GatedRepo, HfaError, NetworkError, RepoNotFound, RevisionNotFound
from hfa.server.wire import HttpError

if TYPE_CHECKING:
    from hfa.resolve.files import RemoteFile, Resolved
    from hfa.resolve.refs import RepoRef

log = logging.getLogger("hfa.serve")

WAIT = 600.0  # seconds a request waits for a fetch to start sending, or (small files) to finish
STALL = 120.0  # seconds a streaming reader waits for the next bytes before it gives up (and cuts)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class FetchFailed(Exception):
    """The fetch a reader followed failed: the reader ends its body short."""


class Flight:
    """The fetch of blob ``f.etag`` for ``ref`` at ``resolved.commit``, run by ``run`` (a target's fetch)
    on a thread of its own. ``error`` is the answer for clients once it failed."""

    def __init__(
        self,
        ref: RepoRef,
        resolved: Resolved,
        f: RemoteFile,
        partial: Path | None,
        blob: Path | None,
        run: Callable[[Flight], None],
        on_end: Callable[[Flight], None],
    ) -> None:
        self.ref = ref
        self.resolved = resolved
        self.f = f
        self.partial = partial  # where the bytes arrive (None: not streamable, wait for the end)
        self.blob = blob  # where they are once published
        self.received = 0
        self.prefix = 0  # bytes from the start of the partial that are written (readers never read past it)
        self.error: HttpError | None = None
        self.done = threading.Event()
        self._cond = threading.Condition()
        self._run = run
        self._on_end = on_end

    def start(self) -> None:
        threading.Thread(target=self._main, name=f"hfa-mirror-{self.f.etag[:12]}", daemon=True).start()

    def _main(self) -> None:
        try:
            self._run(self)
        except HttpError as err:
            self.error = err
        except NetworkError as exc:
            log.warning("upstream broke off fetching %s/%s: %s", self.ref.repo_id, self.f.path, exc.message)
            self.error = HttpError(
                503,
                f"The upstream Hub broke off and this mirror has no copy: {exc.message}",
                headers={"Retry-After": "5"},
            )
        except HfaError as exc:
            self.error = upstream_error(exc)
        except Exception:  # a bug: answer 500 rather than leave the clients waiting
            log.exception("fetching %s/%s from upstream failed", self.ref.repo_id, self.f.path)
            self.error = HttpError(500, "Internal server error while fetching from upstream")
        finally:
            with self._cond:
                self.done.set()
                self._cond.notify_all()
            self._on_end(self)

    def arrived(self, n: int) -> None:
        """The fetch wrote ``n`` more bytes into the partial file (the fetcher's ``on_bytes``)."""
        with self._cond:
            self.received += n
            self._cond.notify_all()

    def written(self, prefix: int) -> None:
        """The first ``prefix`` bytes of the partial file are written (the fetcher's ``on_prefix``)."""
        with self._cond:
            self.prefix = prefix
            self._cond.notify_all()

    def wait_ready(self, whole: bool) -> None:
        """Until the fetch has sent bytes (``whole``: until it ended); HttpError if it failed or took too long."""
        deadline = time.monotonic() + WAIT
        with self._cond:
            while not self.done.is_set() and (whole or self.partial is None or self.received == 0):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HttpError(
                        503, "The mirror is still fetching this file upstream; retry", headers={"Retry-After": "5"}
                    )
                self._cond.wait(min(left, 1.0))
        if self.error is not None:
            raise self.error

    def wait_more(self, seen: int, timeout: float) -> None:
        """Until the written prefix grew past ``seen`` bytes, the fetch ended, or ``timeout`` seconds passed."""
        with self._cond:
            if self.prefix <= seen and not self.done.is_set():
                self._cond.wait(timeout)


def _open(path: Path | None, buffered: bool = True) -> Any:
    """``path`` open for reading (unbuffered: a partial file, whose holes a read-ahead would keep), or None."""
    if path is None:
        return None
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | _NOFOLLOW), "rb", buffering=-1 if buffered else 0)
    except OSError:
        return None


class GrowingFile:
    """The bytes of a flight's blob from the start, as they arrive: ``read(n)`` waits for bytes while
    the fetch runs and raises :class:`FetchFailed` when it fails; after a successful fetch it finishes
    from the published blob (the fetch may have started its file again). Hand it to ``verified_body``,
    which checks what was read against the blob's hash."""

    def __init__(self, flight: Flight) -> None:
        self.flight = flight
        self.fp: Any = None
        self.pos = 0
        self._finishing = False

    def read(self, n: int) -> bytes:
        flight = self.flight
        last_progress = time.monotonic()
        while True:
            seen = flight.prefix
            done = flight.done.is_set()
            if self.fp is None and not done:
                self.fp = _open(flight.partial, buffered=False)
            if self.fp is not None:
                # Only what is written: a ranged fetch sizes its partial to the file first, holes and all.
                ready = n if self._finishing else min(n, seen - self.pos)
                data: bytes = self.fp.read(ready) if ready > 0 else b""
                if data:
                    self.pos += len(data)
                    return data
            if done:
                if flight.error is not None:
                    raise FetchFailed(flight.error.message)
                if self._finishing:
                    return b""
                self._finishing = True  # what was read so far is a prefix; the rest comes from the blob
                blob = _open(flight.blob)
                if blob is None:
                    raise FetchFailed("the fetched blob is gone")
                blob.seek(self.pos)
                self.close()
                self.fp = blob
                continue
            if time.monotonic() - last_progress > STALL:
                raise FetchFailed(f"no bytes from upstream for {STALL:.0f} s")
            flight.wait_more(seen, 0.5)
            if flight.prefix != seen:
                last_progress = time.monotonic()

    def close(self) -> None:
        if self.fp is not None:
            self.fp.close()
            self.fp = None


def upstream_error(exc: HfaError) -> HttpError:
    """What the client is answered for an upstream failure: the Hub's own error codes where they apply."""
    if isinstance(exc, GatedRepo):
        return HttpError(403, exc.message, "GatedRepo")
    if isinstance(exc, RepoNotFound):
        return HttpError(404, exc.message, "RepoNotFound")
    if isinstance(exc, RevisionNotFound):
        return HttpError(404, exc.message, "RevisionNotFound")
    if isinstance(exc, AccessDenied):
        return HttpError(403, exc.message)
    if type(exc).__name__ == "UnsafeContent":  # this mirror's policy, not a fault: 403, which clients do not retry
        return HttpError(403, f"The mirror refused to serve this file: {exc.message}")
    # corrupt or unsafe upstream bytes, an invalid answer: a bad gateway, nothing cached
    return HttpError(502, f"The mirror refused the upstream's answer: {exc.message}")
