"""``hfa serve --store s3://BUCKET/PREFIX --upstream URL``: a pull-through mirror whose store is a bucket
shared by replicas (:class:`BucketTarget`, the mirror's :class:`~hfa.server.mirror_store.Target`).

An upstream answer is recorded as ``hfa push`` would write it: the commit's manifest (put-if-absent),
the ref and the card data (:func:`hfa.push.push_metadata`), so every replica serves it. A missing blob
is fetched by one replica: it takes the blob's lease (``leases/<etag>``, written put-if-absent, so of
replicas racing for it exactly one wins; the winner rewrites it every ``LEASE_REFRESH`` seconds while
it fetches), fetches the blob into a local staging folder through hfa's verified download (size and
hash checked, content inspected), uploads it put-if-absent with its ``ChecksumSHA256`` (multipart for
big blobs), and drops the lease and the staging copy. The other replicas wait for the blob to appear
(or the lease to go stale: ``LEASE_STALE`` seconds without a rewrite, a replica that died), then serve
it from the bucket, hashing every byte as any bucket download. Clients of such a blob wait for it
whole: the bytes they get always come from the bucket.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hfa.errors import HfaError
from hfa.server.wire import HttpError

if TYPE_CHECKING:
    from hfa.hub.download import Fetcher
    from hfa.resolve.files import RemoteFile, Resolved
    from hfa.resolve.refs import RepoRef
    from hfa.server.bucket import BucketStore
    from hfa.server.mirror_flight import Flight
    from hfa.server.store import FileEntry
    from hfa.store.local import LocalStore

log = logging.getLogger("hfa.serve")

LEASE_REFRESH = 20.0  # seconds between rewrites of a held lease
LEASE_STALE = 90.0  # a lease not rewritten for this long belongs to a replica that stopped
POLL = 0.5  # seconds between looks for a blob another replica fetches
WAIT = 600.0  # seconds a replica waits for another's fetch


class BucketTarget:
    """A bucket (served by ``store``) as the mirror's target; blobs pass through ``staging`` (local)."""

    def __init__(self, store: BucketStore, staging: Path) -> None:
        self.store = store
        self.s3 = store.s3
        self.staging = Path(staging)

    def recorded(self, ref: RepoRef) -> Resolved | None:
        from hfa.store.s3source import read_manifest

        assert ref.revision is not None
        try:
            return read_manifest(self.s3, ref, ref.revision)
        except HfaError:
            return None

    def record(self, ref: RepoRef, resolved: Resolved) -> None:
        from hfa.push import PushResult, PushTarget, RepoPush, push_metadata

        target = PushTarget(ref, resolved, True, None if ref.pinned else ref.revision_or_default)
        result = PushResult(self.s3.location.url, dry_run=False)
        push_metadata(self.s3, target, RepoPush(ref, resolved.commit, target.revision, len(resolved.files), []), result)
        self.store.forget(ref.repo_type, ref.repo_id)

    def present(self, repo_type: str, repo_id: str, commit: str, path: str) -> bool:
        return False  # no cheap look: the blob is asked for (has)

    def has(self, ref: RepoRef, commit: str, f: RemoteFile) -> bool:
        return self.s3.has(f.etag, f.size)

    def available(self, entry: FileEntry) -> bool:
        try:
            return self.s3.has(entry.etag, entry.size)
        except HfaError:
            return False

    def stream_paths(self, ref: RepoRef, f: RemoteFile) -> tuple[Path | None, Path | None]:
        return None, None  # clients wait for the blob in the bucket

    def fetch_store(self, ref: RepoRef, f: RemoteFile) -> LocalStore:
        from hfa.store.local import LocalStore

        return LocalStore(self.staging / f.etag, ref.repo_type, ref.repo_id)  # a folder per blob fetched

    def fetch(self, flight: Flight, fetcher: Fetcher) -> bool:
        f = flight.f
        lease = self.s3.key("leases", f.etag)
        deadline = time.monotonic() + WAIT
        while not self.s3.put_bytes(lease, _lease_text(), if_absent=True):
            if self.s3.has(f.etag, f.size):
                return False  # another replica fetched it
            if self._stale(lease):
                log.warning("taking over the stale lease %s (its replica stopped fetching)", lease)
                self.s3.delete(lease)
                continue
            if time.monotonic() > deadline:
                raise HttpError(
                    503, "Another replica is still fetching this file upstream; retry", headers={"Retry-After": "5"}
                )
            time.sleep(POLL)
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep, args=(lease, stop), daemon=True)
        keeper.start()
        store = self.fetch_store(flight.ref, f)
        try:
            if self.s3.has(f.etag, f.size):
                return False  # it came in just before this replica won the lease
            outcome = fetcher.fetch_one(f)  # verified and inspected into the staging folder
            path = store.path(f.etag)
            sha256 = f.lfs_sha256 or _sha256(path)
            self.s3.put_blob(f.etag, path, sha256_hex=sha256)  # put-if-absent
            return outcome.downloaded > 0
        finally:
            stop.set()
            keeper.join(timeout=5)
            with contextlib.suppress(HfaError):
                self.s3.delete(lease)
            with contextlib.suppress(OSError):
                shutil.rmtree(self.staging / f.etag)  # the staging copy: the bucket has the blob now

    def _stale(self, lease: str) -> bool:
        """The lease was not rewritten for ``LEASE_STALE`` seconds by the store's clock (what it holds is not
        trusted: a lease naming a time in the future, or no time, would never expire)."""
        age = self.s3.age(lease)
        return age is not None and age > LEASE_STALE

    def _keep(self, lease: str, stop: threading.Event) -> None:
        while not stop.wait(LEASE_REFRESH):
            with contextlib.suppress(HfaError):
                self.s3.put_bytes(lease, _lease_text(), if_absent=False)


def _lease_text() -> bytes:
    """What a lease holds: who took it and when, for people looking at the bucket (its age is its LastModified)."""
    import os
    import socket

    return f"{socket.gethostname()} pid {os.getpid()} at {time.time():.0f}\n".encode()


def _sha256(path: Path) -> str:
    from hfa.cache.hashing import sha256_file

    with path.open("rb") as fp:
        return sha256_file(fp)
