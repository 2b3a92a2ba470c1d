"""``hfa serve --upstream URL``: a verified pull-through mirror.

When a file is asked for that the cache lacks, :meth:`Mirror.fill` resolves the revision upstream
and fetches the file through hfa's verified download (:class:`hfa.hub.download.Fetcher`, the same one
``hfa pull`` uses: size and hash checked, the content inspected before it is published) into the
served cache; the handler then serves it from there like any cached file.

- Single flight: one fetch per blob at a time in this process (a lock per etag; the others wait for
  it, then find the blob), and across processes the cache's per-blob file lock.
- Revision answers: a branch or tag is asked again after ``ttl`` seconds; a commit's answer is kept.
- Offline first: a file already in the snapshot of a commit is served without asking upstream; when
  the upstream cannot be reached, what the cache holds is served and the rest gets a 503 (the
  official client does not retry a HEAD that fails so, and falls back to its own cache).
- Only the mirror's own token (``--upstream-token-file``) is sent upstream, never a client's.
- ``--lock``: only the locked commits and files are fetched.
- Known-dangerous pickles are refused (403, never cached) unless ``--allow-unsafe``; bytes that do not
  match their hash get a 502 (nothing cached). Either refusal is remembered for ``REFUSED_FOR``
  seconds, so the client's retries do not fetch the bad bytes again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from hfa.cache.hashing import COMMIT_RE
from hfa.errors import AccessDenied, GatedRepo, HfaError, NetworkError, RepoNotFound, RevisionNotFound
from hfa.server.wire import HttpError

if TYPE_CHECKING:
    from hfa.hub.source import HubSource
    from hfa.resolve.files import Resolved
    from hfa.resolve.refs import RepoRef
    from hfa.server.config import ServerConfig
    from hfa.server.store import LockScope

log = logging.getLogger("hfa.serve")

REFUSED_FOR = 30.0  # seconds a refused blob (corrupt or unsafe upstream) is answered from memory
WAIT = 600.0  # seconds a request waits for another's fetch of the same blob


class Mirror:
    """Fetches what the served cache lacks from the upstream Hub, verified. Thread-safe."""

    def __init__(self, config: ServerConfig, scope: LockScope | None) -> None:
        from hfa.config import Settings, normalize_endpoint
        from hfa.hub.source import HubSource

        assert config.upstream is not None
        self.cache_dir = config.cache_dir
        self.settings = Settings(
            cache_dir=config.cache_dir,
            endpoint=normalize_endpoint(config.upstream),
            offline=False,
            token=config.upstream_token,
        )
        self.source: HubSource = HubSource(self.settings)
        self.ttl = config.ttl
        self.scope = scope
        self.allow_unsafe = config.allow_unsafe
        self._answers: dict[tuple[str, str, str | None], tuple[float | None, Resolved]] = {}
        self._locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self._refused: dict[str, tuple[float, HttpError]] = {}  # etag -> (until, answer): no refetch per retry

    def _flight(self, key: tuple[Any, ...]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def resolved(self, ref: RepoRef) -> Resolved:
        """The upstream's answer for ``ref``: a commit's kept, a branch's or tag's for ``ttl`` seconds."""
        key = (ref.repo_type, ref.repo_id, ref.revision)
        lock = self._flight(("resolve", *key))
        if not lock.acquire(timeout=WAIT):
            raise HttpError(
                503, "The mirror is busy resolving this revision upstream; retry", headers={"Retry-After": "5"}
            )
        try:
            hit = self._answers.get(key)
            if hit is not None and (hit[0] is None or hit[0] > time.monotonic()):
                return hit[1]
            resolved = self.source.resolve(ref)[0]
            with self._lock:
                self._answers[key] = (None if ref.pinned else time.monotonic() + self.ttl, resolved)
                self._answers[(ref.repo_type, ref.repo_id, resolved.commit)] = (None, resolved)
            return resolved
        finally:
            lock.release()

    def _locked_commit(self, repo_type: str, repo_id: str, revision: str, path: str) -> str | None:
        """Under ``--lock``: the locked commit ``revision`` names, if the lock names ``path`` there."""
        assert self.scope is not None
        key = (repo_type, repo_id)
        commit = self.scope.revisions.get(key, {}).get(revision, revision)
        allowed = self.scope.commits.get(key, {}).get(commit)
        return commit if allowed is not None and path in allowed else None

    def fill(self, repo_type: str, repo_id: str, revision: str, path: str) -> HttpError | None:
        """Make the cache hold ``path`` at ``revision`` if the upstream has it.

        Raises HttpError for what the upstream answers (not found, gated, corrupt or unsafe bytes);
        returns the error to answer if the cache cannot serve the file (the upstream is unreachable).
        """
        from hfa.resolve.refs import RepoRef
        from hfa.store.local import LocalStore

        if self.scope is not None:
            locked = self._locked_commit(repo_type, repo_id, revision, path)
            if locked is None:
                return None  # not locked: the store answers as without a mirror
            revision = locked
        if path.startswith("/") or ".." in path.split("/"):
            return None  # never a path the upstream can list: the store answers it
        store = LocalStore(self.cache_dir, repo_type, repo_id)
        pinned = bool(COMMIT_RE.match(revision))
        if pinned and os.path.lexists(store.repo.snapshot(revision) / path):
            return None  # a commit's file never changes: no need to ask
        ref = RepoRef(repo_id, repo_type, revision)
        try:
            resolved = self.resolved(ref)
            f = resolved.files.get(path)
            if f is None:
                raise HttpError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": resolved.commit})
            if not store.linked(resolved.commit, path, f.etag, f.size):
                self._fetch(store, ref, resolved, f)
            if not pinned:
                try:
                    store.write_ref(revision, resolved.commit)
                except HfaError as exc:  # a revision name the cache cannot hold as a ref
                    raise HttpError(404, f"Invalid rev id: {revision} ({exc.message})", "RevisionNotFound") from None
        except HttpError:
            raise
        except NetworkError as exc:
            log.warning("upstream unreachable for %s@%s/%s: %s", repo_id, revision, path, exc.message)
            return HttpError(503, f"The upstream Hub cannot be reached and this mirror has no copy: {exc.message}")
        except HfaError as exc:
            raise upstream_error(exc) from None
        return None

    def _fetch(self, store: Any, ref: RepoRef, resolved: Resolved, f: Any) -> None:
        from hfa.hub.download import HashMismatch
        from hfa.pull import UnsafeContent, content_inspector

        lock = self._flight(("blob", f.etag))
        if not lock.acquire(timeout=WAIT):
            raise HttpError(503, "The mirror is still fetching this file upstream; retry", headers={"Retry-After": "5"})
        try:
            refused = self._refused.get(f.etag)
            if refused is not None and refused[0] > time.monotonic():
                raise refused[1]
            fetcher = self.source.fetcher(
                store,
                ref,
                resolved.commit,
                retry=f"hfa pull {ref.display}",
                workers=1,
                inspect=content_inspector([], self.allow_unsafe),
            )
            try:
                outcome = fetcher.fetch_one(f)  # under the blob's file lock: a fetch in another process is waited for
            except (UnsafeContent, HashMismatch) as exc:
                answer = upstream_error(exc)
                self._refused[f.etag] = (time.monotonic() + REFUSED_FOR, answer)
                log.warning("refused %s/%s from upstream: %s", ref.repo_id, f.path, exc.message)
                raise answer from None
            store.repo.snapshot(resolved.commit).mkdir(parents=True, exist_ok=True)
            store.write_tree_record(resolved.commit, [x.to_json() for x in resolved.files.values()])
            if outcome.downloaded:
                log.info("fetched %s@%s/%s from upstream (%d bytes)", ref.repo_id, resolved.commit[:12], f.path, f.size)
        finally:
            lock.release()


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
