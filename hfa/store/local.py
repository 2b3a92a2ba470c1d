"""The local huggingface_hub cache as a :class:`~hfa.store.BlobStore`: ``blobs/<etag>``, relative snapshot links.

:class:`LocalStore` is the cache's :class:`~hfa.cache.layout.CacheWriter` (refs, hfa's tree
records, every path checked to stay in the cache) with the blob interface on top.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from hfa.cache.layout import CacheWriter

__all__ = ["LocalStore"]


class LocalStore(CacheWriter):
    """One repository of the local cache, as a blob store."""

    def has(self, etag: str, size: int) -> bool:
        return self.has_blob(etag, size)

    def path(self, etag: str) -> Path:
        return self.blob_path(etag)

    def partial(self, etag: str) -> Path:
        partial = self.partial_path(etag)
        self.make_folder(partial.parent)
        return partial

    def partial_record(self, etag: str) -> Path:
        return self.partial_record_path(etag)

    def publish(self, etag: str, source: Path, *, keep_source: bool = False) -> Path:
        dest = self.blob_path(etag)
        self.make_folder(dest.parent)
        if not keep_source:
            os.replace(source, dest)
            return dest
        tmp = dest.with_name(f".{etag}.import")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        return dest

    def linked(self, commit: str, relpath: str, etag: str, size: int) -> bool:
        return self.linked_ok(commit, relpath, etag, size)
