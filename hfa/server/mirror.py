"""``hfa serve --upstream URL``: a verified pull-through mirror.

Two things come from upstream when the served store lacks them:

- **Answers** (:meth:`Mirror.ensure`, for repo info, revision, tree, paths-info and files): the
  revision is resolved upstream (one repo-info call: the commit and every file's size and hash) and
  recorded in the store (:mod:`hfa.server.mirror_store`: in a cache, the snapshot folder, hfa's record
  of the commit's full file list and the ref; in a bucket, the manifest, ref and card data), so the
  served listings name every file of the commit, fetched or not. A branch or tag is asked again after
  ``ttl`` seconds; a commit's answer is kept for good (and, once recorded, never asked for again).
- **Blobs** (:meth:`Mirror.fill`): fetched through hfa's verified download (the one ``hfa pull``
  uses: size and hash checked, the content inspected before it is published), one :class:`Flight` per
  blob at a time on a thread of its own (single flight: other clients join it; across processes the
  cache's per-blob file lock, across replicas of a bucket a lease object). Clients of a big blob are
  streamed its bytes as they arrive (:mod:`hfa.server.mirror_flight`); small ones wait for it whole.

Offline first: when the upstream cannot be reached, what the store holds is served (a branch by its
last recorded commit) and the rest gets a 503. Only the mirror's own token is sent upstream.
``--lock``: only the locked commits and files are asked for. Known-dangerous pickles are refused (403,
never cached) unless ``--allow-unsafe``; bytes that do not match their hash get a 502 (nothing
cached). Either refusal is remembered for ``REFUSED_FOR`` seconds, so retries do not fetch again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hfa.cache.hashing import COMMIT_RE
from hfa.errors import HfaError, NetworkError, UsageError
from hfa.hub.connections import Connections
from hfa.server.mirror_flight import WAIT, Flight, upstream_error
from hfa.server.wire import HttpError

if TYPE_CHECKING:
    from hfa.hub.source import HubSource
    from hfa.resolve.files import RemoteFile, Resolved
    from hfa.resolve.refs import RepoRef
    from hfa.server.config import ServerConfig
    from hfa.server.mirror_store import Target
    from hfa.server.store import FileEntry, LockScope

log = logging.getLogger("hfa.serve")

__all__ = ["REFUSED_FOR", "STREAM_MIN", "Mirror", "upstream_error"]

REFUSED_FOR = 30.0  # seconds a refused blob (corrupt or unsafe upstream) is answered from memory
STREAM_MIN = 8 << 20  # blobs this big are streamed to clients while they arrive; smaller ones are waited for
MAX_FLIGHTS = 64  # blobs fetched at once; more get a 503 with Retry-After


def askable(revision: str) -> bool:
    """``revision`` is a commit or a name git accepts for a ref: the only revisions asked upstream (and
    recorded in the store as ``refs/<revision>``, which must not name ``..`` or a ``.lock``)."""
    from hfa.cache.layout import check_ref_name

    if COMMIT_RE.fullmatch(revision):
        return True
    try:
        check_ref_name(revision)
    except UsageError:
        return False
    return True


class UpstreamBusy(HttpError):
    """Every slot for requests waiting on the upstream is taken: what the store holds is still answered."""


class _Resolving:
    """One upstream resolve of a revision under way: the requests that wait for it get its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Resolved | None = None
        self.error: BaseException | None = None


class Mirror:
    """Fetches what the served store lacks from the upstream Hub, verified. Thread-safe."""

    def __init__(self, config: ServerConfig, scope: LockScope | None, target: Target) -> None:
        from hfa import config as cfg
        from hfa.hub.source import HubSource

        assert config.upstream is not None
        self.settings = cfg.Settings(
            cache_dir=config.cache_dir,
            endpoint=cfg.normalize_endpoint(config.upstream),
            offline=False,
            token=config.upstream_token,  # the mirror's own token only (never HF_TOKEN, never a client's)
            # the bounds of every upstream answer, from the same variables as hfa pull (docs/pull.md); one
            # bound on the upstream connections of all the mirror's fetches at once (see _run)
            **cfg.env_bounds(),
        )
        self.source: HubSource = HubSource(self.settings)
        self.target = target
        self.ttl = config.ttl
        self.scope = scope
        self.allow_unsafe = config.allow_unsafe
        self._answers: dict[tuple[str, str, str | None], tuple[float | None, Resolved]] = {}
        self._recorded: dict[tuple[str, str, str | None, str], float | None] = {}
        self._lock = threading.Lock()
        self._refused: dict[str, tuple[float, HttpError]] = {}  # etag -> (until, answer): no refetch per retry
        self._connections: Connections | None = None  # shared by every fetch: made from the settings on first use
        self._flights: dict[str, Flight] = {}
        self._resolving: dict[tuple[str, str, str | None], _Resolving] = {}
        # requests that may wait on the upstream at once: the other threads (a quarter, at least 2) keep
        # serving what the store holds
        self._waiting = threading.BoundedSemaphore(max(1, config.threads - max(2, config.threads // 4)))

    @contextmanager
    def _upstream_wait(self) -> Iterator[None]:
        """Hold one of the few slots for a request that waits on the upstream; none free: 503 at once.

        A slow or silent upstream (or many requests for what it lacks) thus never holds every thread of
        the server: the others keep answering from the store."""
        if not self._waiting.acquire(blocking=False):
            raise UpstreamBusy(
                503, "The mirror is busy waiting on the upstream Hub; retry", headers={"Retry-After": "5"}
            )
        try:
            yield
        finally:
            self._waiting.release()

    # -- answers -------------------------------------------------------------------------
    def resolved(self, ref: RepoRef) -> Resolved:
        """The upstream's answer for ``ref``: a commit's kept (and read back from the store once recorded
        there), a branch's or tag's for ``ttl`` seconds. One upstream call per revision at a time: the
        requests that come meanwhile get its outcome, answer or error (single flight)."""
        key = (ref.repo_type, ref.repo_id, ref.revision)
        with self._lock:
            hit = self._answers.get(key)
            if hit is not None and (hit[0] is None or hit[0] > time.monotonic()):
                return hit[1]
            flight = self._resolving.get(key)
            owner = flight is None
            if flight is None:
                flight = self._resolving[key] = _Resolving()
        if not owner:
            with self._upstream_wait():
                if not flight.done.wait(WAIT):
                    raise HttpError(
                        503, "The mirror is busy resolving this revision upstream; retry", headers={"Retry-After": "5"}
                    )
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            resolved = self.target.recorded(ref) if ref.pinned else None
            if resolved is None:
                with self._upstream_wait():
                    resolved = self.source.resolve(ref)[0]
            with self._lock:
                if len(self._answers) > 100_000:
                    self._answers.clear()
                self._answers[key] = (None if ref.pinned else time.monotonic() + self.ttl, resolved)
                self._answers[(ref.repo_type, ref.repo_id, resolved.commit)] = (None, resolved)
            flight.result = resolved
            return resolved
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._resolving.pop(key, None)
            flight.done.set()

    def _record(self, ref: RepoRef, resolved: Resolved) -> None:
        """Make the store list ``resolved`` (and name it by ``ref``'s revision), once per ``ttl``."""
        key = (ref.repo_type, ref.repo_id, ref.revision, resolved.commit)
        until = self._recorded.get(key, 0.0)
        if until is None or until > time.monotonic():
            return
        try:
            self.target.record(ref, resolved)
        except UsageError as exc:  # a revision name the store cannot hold as a ref
            raise HttpError(404, f"Invalid rev id: {ref.revision} ({exc.message})", "RevisionNotFound") from None
        except HfaError as exc:  # the store refused the write (no write access, a full disk) or is down
            log.error("cannot record %s@%s in the store: %s", ref.repo_id, resolved.commit[:12], exc)
            raise HttpError(
                503 if isinstance(exc, NetworkError) else 502,
                f"The mirror cannot record this revision in its store: {exc.message}",
                headers={"Retry-After": "5"},
            ) from None
        with self._lock:
            if len(self._recorded) > 100_000:
                self._recorded.clear()
            self._recorded[key] = None if ref.pinned else time.monotonic() + self.ttl

    def _locked_commit(self, repo_type: str, repo_id: str, revision: str, path: str | None) -> str | None:
        """Under ``--lock``: the locked commit ``revision`` names, if the lock names it (and ``path`` there)."""
        assert self.scope is not None
        key = (repo_type, repo_id)
        commit = self.scope.revisions.get(key, {}).get(revision, revision)
        allowed = self.scope.commits.get(key, {}).get(commit)
        return commit if allowed is not None and (path is None or path in allowed) else None

    def ensure(self, repo_type: str, repo_id: str, revision: str | None) -> HttpError | None:
        """Make the store know ``revision`` (None: the default branch) of the repo, asking upstream when
        its answer is not fresh. Returns the error to answer if the store cannot answer after all (the
        upstream is unreachable, or does not know the repo or revision): the store's own answer wins."""
        from hfa.resolve.refs import RepoRef

        if self.scope is not None:
            locked = self._locked_commit(repo_type, repo_id, revision or "main", None)
            if locked is None:
                return None  # not locked: the store answers as without a mirror
            revision = locked
        if revision is not None and not askable(revision):
            return None  # no Hub has such a revision: the store answers, the upstream is not asked
        try:
            ref = RepoRef(repo_id, repo_type, revision)
            self._record(ref, self.resolved(ref))
        except HttpError as err:
            return err
        except NetworkError as exc:
            log.warning("upstream unreachable for %s@%s: %s", repo_id, revision or "(default)", exc.message)
            return HttpError(503, f"The upstream Hub cannot be reached and this mirror has no copy: {exc.message}")
        except HfaError as exc:
            return upstream_error(exc)
        return None

    # -- blobs ---------------------------------------------------------------------------
    def fill(self, repo_type: str, repo_id: str, revision: str, path: str) -> HttpError | None:
        """Make the store hold ``path`` at ``revision`` if the upstream has it, or be fetching it (a big
        blob: once its first bytes arrived, so clients can be streamed them).

        Raises HttpError for what the upstream answers (not found, gated, corrupt or unsafe bytes);
        returns the error to answer if the store cannot serve the file (the upstream is unreachable).
        """
        from hfa.resolve.refs import RepoRef

        if self.scope is not None:
            locked = self._locked_commit(repo_type, repo_id, revision, path)
            if locked is None:
                return None  # not locked: the store answers as without a mirror
            revision = locked
        if path.startswith("/") or ".." in path.split("/") or not askable(revision):
            return None  # never a path or revision the upstream can have: the store answers it
        if COMMIT_RE.match(revision) and self.target.present(repo_type, repo_id, revision, path):
            return None  # a commit's file never changes: no need to ask
        try:
            ref = RepoRef(repo_id, repo_type, revision)
            resolved = self.resolved(ref)
            f = resolved.files.get(path)
            if f is None:
                raise HttpError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": resolved.commit})
            self._record(ref, resolved)
            if not self.target.has(ref, resolved.commit, f):
                flight = self._flight(ref, resolved, f)
                with self._upstream_wait():
                    flight.wait_ready(whole=f.size < STREAM_MIN or flight.partial is None)
        except UpstreamBusy as err:
            return err  # the store answers if it can
        except HttpError:
            raise
        except NetworkError as exc:
            log.warning("upstream unreachable for %s@%s/%s: %s", repo_id, revision, path, exc.message)
            return HttpError(503, f"The upstream Hub cannot be reached and this mirror has no copy: {exc.message}")
        except HfaError as exc:
            raise upstream_error(exc) from None
        return None

    def _flight(self, ref: RepoRef, resolved: Resolved, f: RemoteFile) -> Flight:
        """The running fetch of ``f``'s blob, started if there is none; a refusal remembered is raised."""
        with self._lock:
            refused = self._refused.get(f.etag)
            if refused is not None and refused[0] > time.monotonic():
                raise refused[1]
            flight = self._flights.get(f.etag)
            if flight is None:
                if len(self._flights) >= MAX_FLIGHTS:
                    raise HttpError(
                        503, "The mirror is fetching many files upstream; retry", headers={"Retry-After": "5"}
                    )
                partial, blob = self.target.stream_paths(ref, f)
                flight = Flight(ref, resolved, f, partial, blob, self._run, self._ended)
                self._flights[f.etag] = flight
                flight.start()
        return flight

    def _run(self, flight: Flight) -> None:
        from hfa.hub.download import HashMismatch
        from hfa.pull import UnsafeContent, content_inspector
        from hfa.resolve.source import FetchOptions

        ref, f = flight.ref, flight.f
        with self._lock:  # every flight's files and ranges count against one bound, not 16 each
            if self._connections is None:
                self._connections = Connections(self.settings.max_connections)
        fetcher = self.source.fetcher(
            self.target.fetch_store(ref, f),
            ref,
            flight.resolved.commit,
            FetchOptions(
                retry=f"hfa pull {ref.display}",
                inspect=content_inspector([], self.allow_unsafe),
                on_bytes=flight.arrived,
                on_prefix=flight.written,  # a ranged partial is sized to the file: stream its written prefix
                connections=self._connections,
            ),
        )
        try:
            fetched = self.target.fetch(flight, fetcher)
        except (UnsafeContent, HashMismatch) as exc:
            answer = upstream_error(exc)
            with self._lock:
                self._refused[f.etag] = (time.monotonic() + REFUSED_FOR, answer)
            log.warning("refused %s/%s from upstream: %s", ref.repo_id, f.path, exc.message)
            raise answer from None
        if fetched:
            log.info(
                "fetched %s@%s/%s from upstream (%d bytes)", ref.repo_id, flight.resolved.commit[:12], f.path, f.size
            )

    def _ended(self, flight: Flight) -> None:
        with self._lock:
            if self._flights.get(flight.f.etag) is flight:
                del self._flights[flight.f.etag]

    def running(self, etag: str) -> Flight | None:
        """The fetch of blob ``etag`` under way, if any."""
        with self._lock:
            return self._flights.get(etag)

    def stream(self, entry: FileEntry) -> Any:
        """A reader of ``entry``'s blob as its fetch writes it (:class:`~hfa.server.mirror_flight.GrowingFile`);
        HttpError when no fetch of it runs (it failed: its answer, or 503)."""
        from hfa.server.mirror_flight import GrowingFile

        flight = self.running(entry.etag)
        if flight is None or flight.partial is None:
            with self._lock:
                refused = self._refused.get(entry.etag)
            if refused is not None and refused[0] > time.monotonic():
                raise refused[1]
            raise HttpError(503, "The mirror could not fetch this file upstream; retry", headers={"Retry-After": "5"})
        return GrowingFile(flight)
