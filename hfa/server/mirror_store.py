"""Where a mirror (hfa.server.mirror) puts what it fetches: a :class:`Target`.

- :class:`CacheTarget` (``hfa serve --upstream URL --cache-dir DIR``): the served cache. An answer is
  recorded as the commit's snapshot folder, hfa's record of its full file list and the ref; a blob
  is fetched into ``blobs/<etag>.incomplete`` (which waiting clients read as it grows) and published
  by rename. :class:`MirrorCache` serves that cache: it lists every recorded file of a commit, fetched
  or not, and streams a file whose fetch is running.
- :class:`hfa.server.mirror_bucket.BucketTarget` (``--store s3://...``): a bucket shared by replicas.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hfa.errors import HfaError
from hfa.server.downloads import ServedCache, verified_body
from hfa.server.store import FileEntry, Repo, Snapshot
from hfa.server.wire import HttpError

if TYPE_CHECKING:
    from hfa.hub.download import Fetcher
    from hfa.resolve.files import RemoteFile, Resolved
    from hfa.resolve.refs import RepoRef
    from hfa.server.mirror import Mirror
    from hfa.server.mirror_flight import Flight
    from hfa.store.local import LocalStore

log = logging.getLogger("hfa.serve")


class Target(Protocol):
    """What the mirror asks of the store it fills."""

    def recorded(self, ref: RepoRef) -> Resolved | None:
        """The complete answer recorded for commit ``ref.revision``, if any (then upstream is not asked)."""
        ...

    def record(self, ref: RepoRef, resolved: Resolved) -> None:
        """Make the store list ``resolved``'s files at its commit, and name it by ``ref``'s revision."""
        ...

    def present(self, repo_type: str, repo_id: str, commit: str, path: str) -> bool:
        """``path`` of ``commit`` is served already (cheap; no upstream)."""
        ...

    def has(self, ref: RepoRef, commit: str, f: RemoteFile) -> bool:
        """``f`` can be served at ``commit`` without a fetch."""
        ...

    def available(self, entry: FileEntry) -> bool:
        """The listed file ``entry`` can be served now (its bytes are there)."""
        ...

    def stream_paths(self, ref: RepoRef, f: RemoteFile) -> tuple[Path | None, Path | None]:
        """Where a fetch of ``f`` writes (the partial file) and publishes; (None, None): not streamable."""
        ...

    def fetch_store(self, ref: RepoRef, f: RemoteFile) -> LocalStore:
        """The local store the fetcher of ``f`` writes into."""
        ...

    def fetch(self, flight: Flight, fetcher: Fetcher) -> bool:
        """Fetch ``flight.f`` (verified) into the store; True if bytes crossed the network."""
        ...


class CacheTarget:
    """The served cache as the mirror's target."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)

    def _store(self, repo_type: str, repo_id: str) -> LocalStore:
        from hfa.store.local import LocalStore

        return LocalStore(self.cache_dir, repo_type, repo_id)

    def recorded(self, ref: RepoRef) -> Resolved | None:
        from hfa.resolve.resolver import resolve_offline

        try:
            resolved, complete = resolve_offline(self.cache_dir, ref)
        except (HfaError, OSError, ValueError):
            return None
        return resolved if complete else None

    def record(self, ref: RepoRef, resolved: Resolved) -> None:
        store = self._store(ref.repo_type, ref.repo_id)
        store.check_folders(store.repo.path, store.repo.snapshots)
        store.repo.snapshot(resolved.commit).mkdir(parents=True, exist_ok=True)
        store.write_tree_record(resolved.commit, [f.to_json() for f in resolved.files.values()])
        if not ref.pinned:
            store.write_ref(ref.revision_or_default, resolved.commit)

    def present(self, repo_type: str, repo_id: str, commit: str, path: str) -> bool:
        return os.path.lexists(self._store(repo_type, repo_id).repo.snapshot(commit) / path)

    def has(self, ref: RepoRef, commit: str, f: RemoteFile) -> bool:
        return self._store(ref.repo_type, ref.repo_id).linked(commit, f.path, f.etag, f.size)

    def available(self, entry: FileEntry) -> bool:
        return entry.blob_path is not None and entry.blob_path.is_file()

    def stream_paths(self, ref: RepoRef, f: RemoteFile) -> tuple[Path | None, Path | None]:
        store = self._store(ref.repo_type, ref.repo_id)
        return store.partial(f.etag), store.path(f.etag)

    def fetch_store(self, ref: RepoRef, f: RemoteFile) -> LocalStore:
        return self._store(ref.repo_type, ref.repo_id)

    def fetch(self, flight: Flight, fetcher: Fetcher) -> bool:
        # under the blob's file lock: a fetch of it by another process (hfa serve, hfa pull) is waited for
        return fetcher.fetch_one(flight.f).downloaded > 0


class MirrorCache(ServedCache):
    """The cache of ``hfa serve --upstream``: every file recorded for a commit is listed, fetched or not
    (a file not fetched yet names the blob it will be); such a file is streamed while its fetch runs."""

    mirror: Mirror | None = None

    def snapshot_stamp(self, repo: Repo, snap_dir: Path) -> float:
        from hfa.cache.layout import CacheWriter

        record = CacheWriter(self.cache_dir, repo.repo_type, repo.repo_id).tree_record_path(snap_dir.name)
        try:
            recorded = record.stat().st_mtime_ns
        except OSError:
            recorded = 0
        return super().snapshot_stamp(repo, snap_dir) + recorded

    def snapshot_files(self, repo: Repo, snap_dir: Path) -> dict[str, FileEntry]:
        from hfa.cache.layout import CacheWriter
        from hfa.resolve.files import RemoteFile

        files = super().snapshot_files(repo, snap_dir)
        writer = CacheWriter(self.cache_dir, repo.repo_type, repo.repo_id)
        for doc in writer.read_tree_record(snap_dir.name) or []:
            try:
                f = RemoteFile.from_json(doc)
                blob = writer.blob_path(f.etag)
            except (HfaError, KeyError, TypeError, ValueError):
                continue
            if f.path not in files:
                files[f.path] = FileEntry(f.path, f.size, blob, f.blob_id, f.lfs_sha256)
        return files

    def open_file(
        self, environ: dict[str, Any], entry: FileEntry, path: str, snap: Snapshot, start: int, length: int
    ) -> Iterable[bytes]:
        if self.mirror is None or entry.blob_path is None or os.path.lexists(entry.blob_path):
            return super().open_file(environ, entry, path, snap, start, length)
        try:
            body = self.mirror.stream(entry)
        except HttpError:
            if os.path.lexists(entry.blob_path):  # the fetch ended between the two looks
                return super().open_file(environ, entry, path, snap, start, length)
            raise
        if length == 0:
            body.close()
            return [b""]

        def failed(what: str, exc: BaseException | None) -> None:
            log.warning(
                "cut the download of '%s' (commit %s) streamed while fetched upstream: %s",
                path, snap.commit[:12], str(exc) if exc is not None else what,
            )  # fmt: skip

        return verified_body(body, entry, start, length, failed)
