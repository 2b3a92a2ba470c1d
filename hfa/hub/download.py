"""Parallel, resumable downloads into a blob store, every byte verified while it streams.

Files are fetched in parallel (``workers``), under one bound on the connections held at once
(:class:`~hfa.hub.connections.Connections`, ``--connections`` / ``HFA_MAX_CONNECTIONS``). A file of
``HFA_RANGED_THRESHOLD`` bytes or more is itself fetched as parallel ranges
(:mod:`hfa.hub.ranged`), sharing that bound; a smaller one, or one whose server does not serve
ranges as asked, as one stream. A file is fetched into its :class:`~hfa.store.BlobStore`'s partial file (in the local cache
``blobs/<etag>.incomplete``, under the per-blob file lock huggingface_hub takes), hashed as it
arrives (sha256 for LFS files, git-sha1 otherwise), and published (in the cache: renamed to
``blobs/<etag>``) only when the digest matches the listing. A partial file left by an interrupted run is re-hashed and continued with a ``Range`` request; a
partial whose bytes turn out wrong is discarded. Nothing unverified is ever published.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.config import DEFAULT_MAX_CONNECTIONS, public_url
from hfa.errors import CheckFailed, HfaError, LockMismatch, NetworkError, from_exception
from hfa.hub.classify import error_reason, is_transient
from hfa.resolve.files import RemoteFile
from hfa.resolve.refs import RepoRef

if TYPE_CHECKING:
    from hfa.hub.batch import Batch
    from hfa.hub.client import OnlineHub
    from hfa.hub.connections import Connections
    from hfa.hub.partials import WriteBehind
    from hfa.store import BlobStore

CHUNK = 1 << 20
PIPELINE_MIN = 16 * CHUNK  # bodies this large are hashed on a second thread while they stream
WRITE_BEHIND = 32 * CHUNK  # and handed to the disk every this many bytes (hfa.hub.partials.WriteBehind)
_RESUME_STATUSES = frozenset({416})  # answered, not raised: fetch handles them
DEFAULT_WORKERS = 16  # I/O-bound: many small files want many connections (bench/bench_pull.py)
_POSITIONAL_IO = hasattr(os, "pwrite") and hasattr(os, "preadv")  # what ranged downloads write and hash with


class HashMismatch(CheckFailed):
    """The bytes received do not hash to what the listing says."""

    actual: str | None = None  # the digest of what arrived, when the whole body did
    vouched: bool = False  # the server's own hash header named the expected digest
    received: int = 0  # bytes that crossed the network for the attempt it ends (counted as downloaded all the same)


class _Fallback(Exception):
    """Ranges did not work for this file: fetch it as one stream. Args: (bytes received, why)."""


class _BodyEnded(Exception):
    """The body stopped before the listed size, or announced another: resume. Args: (bytes received, why)."""


@dataclass(frozen=True)
class FetchOutcome:
    path: str
    etag: str
    size: int
    status: str  # "cached", "downloaded" or "resumed"
    downloaded: int  # bytes that crossed the network for it
    seconds: float = 0.0  # wall time of its download
    connections: int = 0  # the most connections it used at once (0: none, it was cached)


def _etag(value: str | None) -> str | None:
    """A hash header's value without ``W/`` and quotes, if it is a hex digest (as huggingface_hub reads it)."""
    if not value:
        return None
    value = value.strip().removeprefix("W/").strip('"').lower()
    return value if len(value) in (40, 64) and all(c in "0123456789abcdef" for c in value) else None


def new_hasher(f: RemoteFile) -> Any:
    import hashlib  # only when something is hashed: a warm pull never loads OpenSSL

    return hashlib.sha256() if f.lfs_sha256 else hashlib.sha1(b"blob %d\0" % f.size)


def expected_digest(f: RemoteFile) -> str:
    return f.lfs_sha256 or f.blob_id


def verify_bytes(f: RemoteFile, data: bytes) -> None:
    h = new_hasher(f)
    h.update(data)
    if len(data) != f.size or h.hexdigest() != expected_digest(f):
        raise HashMismatch(
            f"'{f.path}' does not match its {f.hash_algo} {expected_digest(f)}",
            "the endpoint served different bytes; nothing was written",
        )


class Fetcher:
    def __init__(
        self,
        hub: OnlineHub | Callable[[], OnlineHub],
        store: BlobStore,
        ref: RepoRef,
        commit: str,
        *,
        workers: int = DEFAULT_WORKERS,
        on_bytes: Callable[[int], None] | None = None,
        on_file: Callable[[FetchOutcome], None] | None = None,
        inspect: Callable[[RemoteFile, Path], None] | None = None,
        locked: bool = False,
        connections: int | Connections = DEFAULT_MAX_CONNECTIONS,
        on_big_file: Callable[[RemoteFile], Callable[[int], None]] | None = None,
        on_prefix: Callable[[int], None] | None = None,
    ) -> None:
        from hfa.hub.connections import Connections, InFlight

        self._hub = hub  # or what makes it, called when a byte must cross the network
        # The expected hashes come from a lock: a server that disagrees is reported at once
        # (LockMismatch), not retried as corrupt bytes.
        self.locked = locked
        self.store = store
        self.ref = ref
        self.commit = commit
        self.workers = max(1, workers)
        self.on_bytes = on_bytes or (lambda n: None)
        self.on_file = on_file or (lambda o: None)
        self.inspect = inspect  # called on verified bytes before they are published; may raise
        self._cancel = threading.Event()
        self._inflight = InFlight(self._cancel)  # set the event through it: blocked reads end at once
        # A count, or a bound shared with other fetchers (the mirror's, across its flights).
        self.connections = connections if isinstance(connections, Connections) else Connections(connections)
        self.on_big_file = on_big_file  # a ranged file starts: what counts its bytes (its own progress line)
        # Told how many bytes from the start of the partial file are written, as that grows (a reader following
        # the partial while it fills, the mirror's: a ranged partial is sized to the file, holes and all).
        self.on_prefix = on_prefix
        self._worker = threading.local()  # .pool: this thread is one of a batch's workers

    @property
    def hub(self) -> OnlineHub:
        if callable(self._hub):
            self._hub = self._hub()
        return self._hub

    # -- many files ----------------------------------------------------------------
    def fetch_all(self, files: list[RemoteFile]) -> list[FetchOutcome]:
        """Fetch every file (largest first) in parallel; raise the first failure after the others settle."""
        if not files:
            return []
        batch = self.start()
        try:
            batch.add(files)
            results = batch.finish()
        except BaseException:
            batch.abort()
            raise
        return [results[f.path] for f in sorted(files, key=lambda f: f.path)]

    def start(self) -> Batch:
        """Workers that fetch files as they are added (:class:`~hfa.hub.batch.Batch`): a pull adds the files
        it is sure of while it reads the shard index, and the shards once it has."""
        from hfa.hub.batch import Batch
        from hfa.hub.transport import close_idle

        close_idle()  # this thread's listing connection: the workers' connections are all the bound counts
        return Batch(self)

    def fetch_in_pool(self, f: RemoteFile) -> FetchOutcome:
        """``fetch_one`` on a batch's worker: it keeps its connection slot (and connection) between files."""
        self._worker.pool = True
        return self.fetch_one(f)

    def release_slot(self) -> None:
        """This worker has nothing left to start: its slot goes to the range helpers of big files."""
        self.connections.release_held()

    def cancel(self) -> None:
        """Stop running downloads now: reads blocked on a stalled server end at once (not at their timeout),
        the others at their next chunk; their partials stay for a resume."""
        self._inflight.cancel()

    def check(self, files: list[RemoteFile]) -> None:
        """Whether ``files`` can be fetched: from an endpoint, any listed file can (its answer tells)."""

    # -- one file ------------------------------------------------------------------
    def fetch_one(self, f: RemoteFile) -> FetchOutcome:
        store = self.store
        # Under the blob's lock, so `hfa cache prune/gc` cannot remove the blob between check and link.
        with store.lock(f.etag, cancel=self._cancel):  # a cancel ends a wait for another process's download
            if store.has(f.etag, f.size):
                outcome = FetchOutcome(f.path, f.etag, f.size, "cached", 0)
            else:
                outcome = self._download(f)
            store.link(self.commit, f.path, f.etag)
        self.on_file(outcome)
        return outcome

    def _download(self, f: RemoteFile) -> FetchOutcome:
        import time

        took = self.connections.hold(self._cancel)  # a worker keeps it; a direct call gives it back after
        started = time.monotonic()
        try:
            downloaded, used, resumed = self._download_held(f)
        finally:
            if took and not getattr(self._worker, "pool", False):
                self.connections.release_held()
        status = "resumed" if resumed else "downloaded"
        return FetchOutcome(f.path, f.etag, f.size, status, downloaded, time.monotonic() - started, used)

    def _download_held(self, f: RemoteFile) -> tuple[int, int, bool]:
        """(bytes received, connections used, resumed) of a verified, published download."""
        from hfa.hub.partials import drop_odd_partial

        partial = self.store.partial(f.etag)
        record = self.store.partial_record(f.etag)
        mismatches = 0
        transient = 0
        downloaded = 0
        resumed = drop_odd_partial(partial)
        retries = self.hub.retry.retries
        settings = self.hub.settings
        ranged = f.size >= max(1, settings.ranged_threshold) and _POSITIONAL_IO
        while True:
            if self._cancel.is_set():
                raise NetworkError(f"Download of '{f.path}' cancelled", "rerun the command to resume")
            try:
                if ranged:
                    received, used, fresh = self._ranged_attempt(f, partial, record)
                    return downloaded + received, used, resumed and not fresh  # a partial not trusted: downloaded
                downloaded += self._attempt(f, partial, record)
                return downloaded, 1, resumed
            except _Fallback as exc:
                downloaded += exc.args[0]
                ranged = False  # the server does not serve ranges as asked: one stream, from the prefix kept
            except HashMismatch as exc:
                downloaded += exc.received
                partial.unlink(missing_ok=True)
                record.unlink(missing_ok=True)
                if self.locked and exc.actual is not None and not exc.vouched:
                    raise LockMismatch(
                        self._repo_name, f.path, f"{f.hash_algo}:{expected_digest(f)}", f"{f.hash_algo}:{exc.actual}"
                    ) from None
                mismatches += 1
                resumed = False
                if mismatches > retries:
                    raise HashMismatch(
                        f"'{f.path}' does not match its {f.hash_algo} {expected_digest(f)}"
                        f" ({mismatches} downloads tried)",
                        "the endpoint serves corrupt bytes; nothing corrupt was written to the cache",
                    ) from None
            except _BodyEnded as exc:
                downloaded += exc.args[0] if exc.args else 0
                transient += 1
                if transient > retries:
                    why = f": {exc.args[1]}" if len(exc.args) > 1 else ""
                    raise NetworkError(
                        f"Download of '{f.path}' kept breaking off ({transient} tries){why}",
                        "rerun the command: it resumes where it stopped",
                    ) from None
                self.hub.retry.wait(transient - 1)
            except HfaError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    err = from_exception(exc)
                    if err is None:
                        raise
                    raise err from exc
                transient += 1
                if transient > retries:
                    raise NetworkError(
                        f"Download of '{f.path}' from {public_url(self.hub.settings.endpoint)} failed"
                        f" ({type(exc).__name__}: {error_reason(exc)})",
                        "check --endpoint / HF_ENDPOINT and the network, then rerun: it resumes where it stopped",
                    ) from None
                self.hub.retry.wait(transient - 1)

    def _attempt(self, f: RemoteFile, partial: Path, record: Path) -> int:
        """One request; returns the bytes received. Publishes the blob when the digest matches."""
        from hfa.cache.layout import open_regular
        from hfa.hub.partials import drop_odd_partial, open_partial

        hasher = new_hasher(f)
        offset = 0
        try:  # never through a link, never a FIFO: a retry's partial may have been swapped since the first try
            fd, st = open_regular(partial)
        except FileNotFoundError:
            pass
        except OSError:  # a link (ELOOP) or no regular file: removed (a folder: exit 6), then downloaded afresh
            drop_odd_partial(partial)
        else:
            with os.fdopen(fd, "rb") as fp:
                if st.st_size > f.size:
                    partial.unlink()
                else:
                    while chunk := fp.read(CHUNK):
                        hasher.update(chunk)
                    offset = st.st_size
        received = 0
        vouched = False
        fresh = offset == 0  # every byte hashed comes from this request
        if self.on_prefix is not None:
            self.on_prefix(offset)
        if offset < f.size:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            url = self.hub.file_url(self.ref, self.commit, f.path)
            with (
                self.hub.stream(url, headers=headers, ref=self.ref, path=f.path, allow=_RESUME_STATUSES) as response,
                self._inflight.track(response),
            ):
                vouched = self._check_answer(f, response.headers)
                if response.status_code == 416:  # the partial is no prefix of this file: start again
                    raise HashMismatch(f"'{f.path}' cannot be resumed from byte {offset}")
                if offset and response.status_code != 206:
                    offset = 0
                    fresh = True
                    hasher = new_hasher(f)
                    if self.on_prefix is not None:
                        self.on_prefix(0)
                elif offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                    raise _BodyEnded(0, f"the server answered no range from byte {offset}")
                if response.length is not None and response.length != f.size - offset:
                    # known before a byte is read: never wait for bytes that are not coming
                    raise _BodyEnded(
                        0, f"the server announced {response.length} bytes, the listing says {f.size - offset}"
                    )
                # never through a link; a prefix kept is a partial that must still be there (ENOENT: exit 6)
                with os.fdopen(open_partial(partial, create=not offset), "r+b", buffering=0) as fp:
                    fp.seek(offset)
                    fp.truncate()
                    try:
                        received = self._receive(f, response, fp, hasher, offset)
                        offset += received
                    finally:
                        os.fsync(fp.fileno())
            if offset < f.size:
                raise _BodyEnded(received, f"the body ended at byte {offset} of {f.size}")
        try:
            self._publish(f, partial, record, hasher.hexdigest(), fresh, vouched)
        except HashMismatch as exc:
            exc.received = received
            raise
        return received

    def _publish(self, f: RemoteFile, partial: Path, record: Path, digest: str, fresh: bool, vouched: bool) -> None:
        """Publish the partial when ``digest`` (of all of it) is the listing's; else HashMismatch."""
        if digest != expected_digest(f):
            mismatch = HashMismatch(f"'{f.path}' does not match its {f.hash_algo}")
            mismatch.actual = digest if fresh else None
            mismatch.vouched = vouched
            raise mismatch
        if self.inspect is not None:
            try:
                self.inspect(f, partial)
            except BaseException:
                partial.unlink(missing_ok=True)  # refused content never stays, not even as a partial
                raise
        self.store.publish(f.etag, partial)
        record.unlink(missing_ok=True)

    def _ranged_attempt(self, f: RemoteFile, partial: Path, record: Path) -> tuple[int, int, bool]:
        """Fetch what the partial lacks as parallel ranges; publish when verified.

        Returns (bytes received, connections, fresh: no byte of an earlier run was kept).
        """
        from hfa.hub.ranged import Fallback, fetch_ranged

        count = self.on_big_file(f) if self.on_big_file is not None else None

        def on_bytes(n: int) -> None:
            self.on_bytes(n)
            if count is not None:
                count(n)

        try:
            result = fetch_ranged(
                self.hub,
                f,
                partial,
                record,
                ref=self.ref,
                url=self.hub.file_url(self.ref, self.commit, f.path),
                range_size=self.hub.settings.range_size,
                connections=self.connections,
                cancel=self._cancel,
                hasher=new_hasher(f),
                on_bytes=on_bytes,
                check_first=lambda response: self._check_answer(f, response.headers),
                on_prefix=self.on_prefix,
                inflight=self._inflight,
                target=self.hub.settings.ranged_target,
            )
        except Fallback as exc:
            raise _Fallback(getattr(exc, "received", 0), str(exc)) from None
        try:
            self._publish(f, partial, record, result.digest, result.fresh, result.vouched)
        except HashMismatch as exc:
            exc.received = result.received
            raise
        return result.received, result.connections, result.fresh

    def _check_answer(self, f: RemoteFile, headers: Any) -> bool:
        """The answer is from the commit asked for (and, from a lock, of the lock's hash); True if it vouches."""
        served_commit = headers.get("X-Repo-Commit")
        if served_commit and served_commit != self.commit:
            raise CheckFailed(
                f"The endpoint served '{f.path}' from commit {served_commit}, not {self.commit}",
                "check --endpoint",
            )
        return self._check_lock(f, headers) if self.locked else False

    @property
    def _repo_name(self) -> str:
        return RepoRef(self.ref.repo_id, self.ref.repo_type).display

    def _check_lock(self, f: RemoteFile, headers: Any) -> bool:
        """Before the body: the server's own hash of the file (X-Linked-Etag, else ETag) against the lock's.

        Raises LockMismatch when they differ; True when the server vouches for the lock's hash.
        """
        linked = _etag(headers.get("X-Linked-Etag"))
        if linked is not None:
            served = f"sha256:{linked}"
        elif (plain := _etag(headers.get("ETag"))) is not None and len(plain) == 40:
            served = f"git-sha1:{plain}"
        else:
            return False
        locked = f"{f.hash_algo}:{expected_digest(f)}"
        if served != locked:
            raise LockMismatch(self._repo_name, f.path, locked, served)
        return True

    def _receive(self, f: RemoteFile, response: Any, fp: Any, hasher: Any, offset: int) -> int:
        """Copy the body to ``fp`` and ``hasher``; return the bytes received.

        The body is read straight into reused buffers (no bytes object per chunk). A large
        body is hashed on a second thread while the next chunk arrives (reading, writing and
        hashing all release the GIL), so verifying costs little wall time beside the transfer.
        """
        remaining = f.size - offset
        if remaining < PIPELINE_MIN:
            return self._copy(f, response, fp, remaining, _Inline(hasher, min(CHUNK, remaining) or 1))
        from hfa.hub.partials import WriteBehind

        with _Pipelined(hasher) as hashing:
            return self._copy(f, response, fp, remaining, hashing, WriteBehind(fp.fileno(), offset, WRITE_BEHIND))

    def _copy(
        self,
        f: RemoteFile,
        response: Any,
        fp: Any,
        remaining: int,
        hashing: _Inline | _Pipelined,
        behind: WriteBehind | None = None,
    ) -> int:
        """Read the body into a free buffer, write it, hand it on to be hashed; until the body ends."""
        received = 0
        while not self._cancel.is_set():
            buffer = hashing.take()
            view = memoryview(buffer)
            n = response.readinto(view)
            if not n:
                hashing.give_back(buffer)
                break
            if n > remaining - received:
                hashing.give_back(buffer)
                raise HashMismatch(f"'{f.path}' is longer than its listed size {f.size}")
            chunk = view[:n]
            done = 0
            while done < n:  # a raw file may take less than asked
                done += fp.write(chunk[done:])
            hashing.hand_off(buffer, n)
            if behind is not None:
                behind.wrote(n)
            received += n
            self.on_bytes(n)
            if self.on_prefix is not None:
                self.on_prefix(f.size - remaining + received)
            if received == remaining:
                if response.readinto(bytearray(1)):  # a body longer than listed: never published
                    raise HashMismatch(f"'{f.path}' is longer than its listed size {f.size}")
                break
        return received


class _Inline:
    """Hash on the receiving thread, through one reused buffer (small files)."""

    def __init__(self, hasher: Any, size: int) -> None:
        self.hasher = hasher
        self.buffer = bytearray(size)

    def take(self) -> bytearray:
        return self.buffer

    def give_back(self, buffer: bytearray) -> None:
        pass

    def hand_off(self, buffer: bytearray, n: int) -> None:
        self.hasher.update(memoryview(buffer)[:n])


class _Pipelined:
    """Hash chunks on a helper thread, in order, while the receiving thread fills the next buffer.

    Three buffers circulate: one being filled, one being hashed, one spare. A buffer goes back
    to the free queue only once hashed, so no byte is ever overwritten before it is hashed.
    Use it as a context manager: leaving it waits for the last chunk to be hashed.
    """

    def __init__(self, hasher: Any) -> None:
        import queue
        import threading

        self.hasher = hasher
        self.free: Any = queue.SimpleQueue()
        self.full: Any = queue.SimpleQueue()
        for _ in range(3):
            self.free.put(bytearray(CHUNK))
        self.error: BaseException | None = None
        self.worker = threading.Thread(target=self._hash_loop, name="hfa-hash", daemon=True)

    def take(self) -> bytearray:
        buffer: bytearray = self.free.get()
        return buffer

    def give_back(self, buffer: bytearray) -> None:
        self.free.put(buffer)

    def hand_off(self, buffer: bytearray, n: int) -> None:
        self.full.put((buffer, n))

    def _hash_loop(self) -> None:
        while True:
            item = self.full.get()
            if item is None:
                return
            buffer, n = item
            try:
                if self.error is None:
                    self.hasher.update(memoryview(buffer)[:n])
            except BaseException as exc:  # pragma: no cover - hashing a buffer does not fail
                self.error = exc
            self.free.put(buffer)

    def __enter__(self) -> _Pipelined:
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.full.put(None)
        self.worker.join()
        if self.error is not None:
            raise self.error
