"""The download workers of one pull: files go in while they run, outcomes come out as they finish.

``hfa pull`` knows most of what it fetches (configs, tokenizer, the shard index) as soon as the
listing is in; only the shards wait for the index to be read. A :class:`Batch` takes files at
any time (:meth:`Batch.add`), so the certain files are fetched while the index is, and the
shards join the same workers when the index has been read: the index costs no round trip of
its own before the rest starts (bench/bench_pull.py, docs/pull.md "Figures").

Each worker thread takes the next file (in the order they were added: largest first within one
:meth:`~Batch.add`), keeps its connection slot (and its keep-alive connection) while more
files may come, and gives the slot back once the batch is closed and nothing is left to start,
so a big file's range helpers can use it. The first failure cancels the rest: files not yet
started are dropped, running downloads stop at their next chunk (their partials stay for a
resume), and :meth:`~Batch.finish` raises that first failure once every worker has settled.
Ctrl-C cancels them too, and is raised once they have written their partials' records, or after
:data:`CANCEL_GRACE` seconds: a worker left waiting where nothing cancels it (a server's headers)
is a daemon thread, which never keeps the process.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hfa.hub.download import Fetcher, FetchOutcome
    from hfa.resolve.files import RemoteFile

__all__ = ["CANCEL_GRACE", "Batch"]

CANCEL_GRACE = 1.0  # seconds cancelled workers get to end their reads and write their partials' records


class Batch:
    """Files fetched by up to ``fetcher.workers`` threads (at most the connection bound) as they are added."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        self.limit = max(1, min(fetcher.workers, fetcher.connections.limit))
        self._cond = threading.Condition()
        self._queue: deque[RemoteFile] = deque()
        self._open = True
        self._idle = 0  # workers waiting for a file
        self._threads: list[threading.Thread] = []
        self._running = 0  # workers not yet through (the waits count these, never Thread.join: see _wait)
        self._results: dict[str, FetchOutcome] = {}
        self._failure: BaseException | None = None
        self._give_up: float | None = None  # once cancelled: when the waits for the workers end (CANCEL_GRACE)

    def add(self, files: list[RemoteFile]) -> None:
        """Queue ``files`` (largest first) behind those already queued; start workers as they are needed."""
        if not files:
            return
        with self._cond:
            if not self._open:
                raise RuntimeError("files added to a closed batch")
            self._queue.extend(sorted(files, key=lambda f: (-f.size, f.path)))
            wanted = max(0, min(self.limit - len(self._threads), len(self._queue) - self._idle))
            self._running += wanted
            self._cond.notify_all()
        for i in range(wanted):
            thread = threading.Thread(target=self._work, name=f"hfa-fetch_{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            try:
                thread.start()
            except BaseException:
                with self._cond:
                    self._running -= wanted - i  # never to run: not waited for
                    self._threads.remove(thread)
                    self._cond.notify_all()
                raise

    def result(self, path: str) -> FetchOutcome:
        """The outcome of ``path`` (added before), waiting for it; the batch's first failure if there is one."""
        with self._cond:
            self._cond.wait_for(lambda: path in self._results or self._failure is not None)
            outcome = self._results.get(path)
        if outcome is None:
            self.abort()
            assert self._failure is not None
            raise self._failure
        return outcome

    def finish(self) -> dict[str, FetchOutcome]:
        """Close the batch, wait for every file; {path: outcome}, or the first failure raised."""
        with self._cond:
            self._open = False
            self._cond.notify_all()
        self._wait()  # Ctrl-C meanwhile: the workers are cancelled (their partials stay), then it is raised
        if self._failure is not None:
            raise self._failure
        return dict(self._results)

    def abort(self, cancel: bool = True) -> None:
        """Drop what has not started, cancel what runs (it stops at its next chunk; with ``cancel=False`` it
        finishes, verified), and wait for the workers (cancelled: at most :data:`CANCEL_GRACE` seconds)."""
        if cancel:
            self._cancel()
        with self._cond:
            self._open = False
            self._queue.clear()
            self._cond.notify_all()
        self._wait()

    def _cancel(self) -> None:
        if self._give_up is None:
            self._give_up = time.monotonic() + CANCEL_GRACE
        self.fetcher.cancel()

    def _wait(self) -> None:
        """Wait until every worker is through; once they are cancelled, at most until ``CANCEL_GRACE`` seconds
        after. A Ctrl-C meanwhile cancels them, and is raised after that wait.

        Waited for on the condition, never with Thread.join: on CPython 3.10 to 3.12 a Ctrl-C that cuts a join
        short marks the thread stopped while it still runs (threading's _wait_for_tstate_lock releases the lock
        the thread holds), so nothing waited for it, and the process exited before the download thread wrote
        what had come since its last record. A worker still not through after the grace waits where nothing
        cancels it (a connect, a server's headers, a retry's pause: all bounded by the timeouts); it is a daemon
        thread, so it never keeps the process from exiting."""

        def through() -> bool:
            with self._cond:
                left = None if self._give_up is None else max(0.0, self._give_up - time.monotonic())
                return self._cond.wait_for(lambda: self._running == 0, left)

        try:
            done = through()
        except BaseException:  # Ctrl-C
            self._cancel()
            through()
            raise
        if done:
            for thread in self._threads:
                thread.join()  # through already: returns at once

    def _next(self) -> RemoteFile | None:
        with self._cond:
            self._idle += 1
            self._cond.wait_for(lambda: self._queue or not self._open or self._failure is not None)
            self._idle -= 1
            if self._failure is not None or not self._queue:
                return None
            return self._queue.popleft()

    def _work(self) -> None:
        fetcher = self.fetcher
        try:
            while (f := self._next()) is not None:
                try:
                    outcome = fetcher.fetch_in_pool(f)
                except BaseException as exc:
                    with self._cond:
                        if self._failure is None:
                            self._failure = exc
                        self._queue.clear()
                        self._cond.notify_all()
                    fetcher.cancel()
                    return
                with self._cond:
                    self._results[f.path] = outcome
                    self._cond.notify_all()
        finally:
            fetcher.release_slot()  # nothing left for this worker: its slot goes to range helpers
            with self._cond:
                self._running -= 1
                self._cond.notify_all()
