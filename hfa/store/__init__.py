"""Where blobs live, behind one interface: :class:`BlobStore`, implemented by the local cache.

A blob is a file's content named by its hash (the listing's etag: sha256 for LFS files,
git-sha1 otherwise). What writes blobs (:mod:`hfa.hub.download`, :mod:`hfa.bundle`) and what
reads them goes through a store of one repository: it asks whether a blob is there, takes the
blob's lock, fills a partial file, publishes it once verified (by rename: never half-written),
and links it into a snapshot. :class:`~hfa.store.local.LocalStore` is the huggingface_hub cache
(``blobs/``, ``snapshots/``, the same per-blob locks); a pull-through mirror plugs in as
another implementation, without new branches in its callers.

An S3-compatible bucket is the shared store of a fleet (docs/fleet.md), imported only when
used (boto3): :mod:`hfa.store.s3` (``S3Store``: blobs by hash, put-if-absent with checksums,
manifests, refs and card data) is written by :mod:`hfa.push` and read by
:mod:`hfa.store.s3source` (``S3Source``, the :class:`~hfa.resolve.source.Source` of
``hfa pull --from``), which fills a :class:`LocalStore` with verified bytes. It has no local
partial files, locks or snapshot links to offer, so it is not itself a :class:`BlobStore`.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from hfa.store.local import LocalStore

__all__ = ["BlobStore", "LocalStore"]


class BlobStore(Protocol):
    """The blobs of one repository, and its snapshots' links to them."""

    def has(self, etag: str, size: int) -> bool:
        """The blob is published with this size."""
        ...

    def path(self, etag: str) -> Path:
        """Where the published blob is read (it may not exist)."""
        ...

    def lock(self, etag: str, *, cancel: threading.Event | None = None) -> AbstractContextManager[Any]:
        """Held while a blob is checked, fetched, published or linked: no other writer (or gc) races. A set
        ``cancel`` ends the wait for it (another process holds it) with :class:`~hfa.errors.NetworkError`."""
        ...

    def partial(self, etag: str) -> Path:
        """Where the bytes of a blob being fetched go until they are verified (kept for a resume)."""
        ...

    def partial_record(self, etag: str) -> Path:
        """Where a ranged download records which ranges of the partial are complete (see hfa.hub.ranged)."""
        ...

    def publish(self, etag: str, source: Path, *, keep_source: bool = False) -> Path:
        """Make the verified bytes at ``source`` the blob ``etag`` in one step; return its path.

        ``source`` is moved, or with ``keep_source`` linked or copied (it stays).
        """
        ...

    def link(self, commit: str, relpath: str, etag: str) -> Path:
        """Make ``relpath`` of snapshot ``commit`` the blob ``etag``."""
        ...

    def linked(self, commit: str, relpath: str, etag: str, size: int) -> bool:
        """``relpath`` of snapshot ``commit`` is the blob ``etag``, published with this size."""
        ...
