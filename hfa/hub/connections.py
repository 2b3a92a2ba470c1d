"""What a pull holds while it downloads: one bound on its connections, and the responses in flight.

:class:`Connections` is the one bound on the connections a pull (or the mirror) holds at once,
shared by file workers and the range helpers of big files (:mod:`hfa.hub.ranged`).
:class:`InFlight` tracks the responses being read, so cancelling a pull ends reads blocked on a
stalled server at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hfa.errors import NetworkError

__all__ = ["Connections", "InFlight"]


class Connections:
    """One bound on the connections a pull holds at once, shared by file workers and range helpers.

    A file worker :meth:`hold`\\ s a slot while it has files to fetch (its one keep-alive
    connection lives in it); a range helper :meth:`try_take`\\ s one for as long as it fetches
    ranges. Whoever gives a slot back first closes its thread's idle connections, so the
    slots count sockets.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._free = self.limit
        self._cond = threading.Condition()
        self._held = threading.local()

    def _take(self, timeout: float | None) -> bool:
        with self._cond:
            if not self._cond.wait_for(lambda: self._free > 0, timeout):
                return False
            self._free -= 1
            return True

    def _give(self) -> None:
        from hfa.hub.transport import close_idle

        close_idle()
        with self._cond:
            self._free += 1
            self._cond.notify()

    def hold(self, cancel: threading.Event) -> bool:
        """Take a slot for this thread to keep (until :meth:`release_held`); False if it holds one already."""
        if getattr(self._held, "slot", False):
            return False
        while not self._take(0.2):
            if cancel.is_set():
                raise NetworkError("Download cancelled", "rerun the command to resume")
        self._held.slot = True
        return True

    def release_held(self) -> None:
        if getattr(self._held, "slot", False):
            self._held.slot = False
            self._give()

    def try_take(self, timeout: float) -> bool:
        return self._take(timeout)

    def give_back(self) -> None:
        self._give()


class InFlight:
    """The responses a pull is reading, so that cancelling it (Ctrl-C, a failure) ends their blocked reads at
    once rather than after ``HF_HUB_DOWNLOAD_TIMEOUT`` seconds of a stalled server."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel_event = cancel
        self._lock = threading.Lock()
        self._live: set[Any] = set()

    @contextmanager
    def track(self, response: Any) -> Iterator[Any]:
        with self._lock:
            self._live.add(response)
            if self.cancel_event.is_set():
                response.abort()
        try:
            yield response
        finally:
            with self._lock:
                self._live.discard(response)

    def cancel(self) -> None:
        """Set the pull's cancel event and end every read in flight."""
        with self._lock:
            self.cancel_event.set()
            for response in self._live:
                response.abort()
