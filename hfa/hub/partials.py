"""The partial file of a ranged download and its record of which ranges are written.

The record (``.hfa/partials/<hash>.json``, :meth:`~hfa.store.BlobStore.partial_record`) is small
JSON, replaced in one rename; it is read bounded (``RECORD_LIMIT`` bytes, nesting 4 deep), never
through a link nor from a FIFO or a device, and trusted only when it names this file and fits the
partial (:func:`load_done`); else the partial is fetched again. Neither is ever written through a
link (:func:`open_partial`, :func:`drop_odd_partial`). The final hash, not the record, vouches for
the bytes.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfa.cache.layout import open_regular

__all__ = [
    "MAX_RANGES",
    "MIN_RANGE",
    "RANGES_PER_CONNECTION",
    "RECORD_FORMAT",
    "RECORD_LIMIT",
    "Segment",
    "WriteBehind",
    "discard",
    "drop_odd_partial",
    "intervals",
    "load_done",
    "open_partial",
    "plan_segments",
    "range_bytes",
    "read_record",
    "save_record",
    "sync_file_range",
]

# A file is cut into about RANGES_PER_CONNECTION ranges per connection (handed out in order, so the hashed
# prefix keeps up and the connections finish together), of MIN_RANGE to Settings.range_size bytes: a range
# costs a request, a round trip on a real link. 256 MiB, 16 connections, median of 5 (loopback / 40 MB/s per
# connection): 1 range per connection 1.05 / 1.30 s, 2: 0.91 / 1.08 s, 4: 0.62 / 0.93 s; one stream 0.86 s.
MIN_RANGE = 4 << 20
RANGES_PER_CONNECTION = 4
MAX_RANGES = (
    4096  # ranges one file is cut into at most: a tiny HFA_RANGE_SIZE is raised to fit (bounded memory, requests)
)
RECORD_FORMAT = 1
RECORD_LIMIT = 4 << 20  # a record longer than this is not read (a 1 TB file in 16 MiB ranges takes ~1 MB)


@dataclass
class Segment:
    start: int
    end: int  # exclusive
    filled: int = 0  # bytes written from ``start`` on, contiguous
    taken: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def done(self) -> bool:
        return self.filled >= self.size


def range_bytes(size: int, range_size: int, connections: int) -> int:
    """How big the ranges of a ``size``-byte file are: about :data:`RANGES_PER_CONNECTION` per connection, of
    :data:`MIN_RANGE` to ``range_size`` bytes, and never more than :data:`MAX_RANGES` of them."""
    spread = -(-size // (max(1, connections) * RANGES_PER_CONNECTION))
    return max(1, min(range_size, max(MIN_RANGE, spread)), -(-size // MAX_RANGES))


def plan_segments(size: int, range_size: int, done: list[tuple[int, int]]) -> list[Segment]:
    """Segments covering ``[0, size)`` in order: each done interval as one filled segment, the rest cut
    at multiples of ``range_size``."""
    segments: list[Segment] = []
    pos = 0
    for a, b in [*sorted(done), (size, size)]:
        while pos < a:
            cut = min(a, (pos // range_size + 1) * range_size)
            segments.append(Segment(pos, cut))
            pos = cut
        if b > a:
            segments.append(Segment(a, b, b - a))
            pos = b
    return segments


def intervals(segments: list[Segment]) -> list[list[int]]:
    """The bytes written, merged into [start, end) intervals: each segment's filled prefix (a range is
    written in order, so a range cut off by a kill keeps what it had)."""
    out: list[list[int]] = []
    for s in segments:
        if s.filled <= 0:
            continue
        end = s.start + min(s.filled, s.size)
        if out and out[-1][1] == s.start:
            out[-1][1] = end
        else:
            out.append([s.start, end])
    return out


def load_done(record: Path, partial: Path, etag: str, size: int) -> tuple[list[tuple[int, int]], str | None] | None:
    """(done intervals, validator) a partial can be resumed from, or None: start again (both are removed).

    No record: a partial shorter than the file is a single-stream prefix, kept; one of the full
    size may be a ranged partial with holes, fetched again. A record that cannot be read, names
    another file, or does not fit the partial, is never trusted.
    """
    try:
        st = partial.lstat()
    except FileNotFoundError:
        record.unlink(missing_ok=True)
        return [], None
    if not stat.S_ISREG(st.st_mode):  # a link, a FIFO: never read from nor written through
        discard(record, partial)
        return None
    try:
        raw = read_record(record)
    except FileNotFoundError:
        if st.st_size < size:
            return ([(0, st.st_size)] if st.st_size else []), None
        discard(record, partial)
        return None
    except OSError:
        discard(record, partial)
        return None
    from hfa import jsonsafe

    try:
        doc: Any = jsonsafe.loads(raw, max_depth=4) if len(raw) <= RECORD_LIMIT else None
        ok = (
            isinstance(doc, dict)
            and doc.get("format") == RECORD_FORMAT
            and doc.get("etag") == etag
            and doc.get("size") == size
            and st.st_size == size
        )
        done = [(int(a), int(b)) for a, b in doc["done"]] if ok else []
        validator = doc.get("validator") if ok else None
    except (ValueError, TypeError, KeyError):
        discard(record, partial)
        return None
    if not ok or not (validator is None or isinstance(validator, str)):
        discard(record, partial)
        return None
    if len(done) > 4 * MAX_RANGES:  # more than any run of hfa records: not worth planning around
        discard(record, partial)
        return None
    pos = 0
    for a, b in done:
        if not pos <= a < b <= size:
            discard(record, partial)
            return None
        pos = b
    return done, validator


def read_record(record: Path) -> bytes:
    """At most ``RECORD_LIMIT + 1`` bytes of the record, a regular file, never waiting: a link, a FIFO or a
    device there is an OSError (the record is not trusted)."""
    fd, _ = open_regular(record)
    with os.fdopen(fd, "rb") as fp:
        return fp.read(RECORD_LIMIT + 1)


def open_partial(partial: Path, *, create: bool = True) -> int:
    """The partial file opened for writing in place; never through a link (a partial is no link, and one that
    is is removed first, by :func:`load_done` or :func:`drop_odd_partial`), never a FIFO. ``create=False``: the
    partial whose prefix is kept must still be there (a new empty one would keep zeros, not that prefix)."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | (os.O_CREAT if create else 0)
    fd = os.open(partial, flags, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(partial))
    return fd


def discard(record: Path, partial: Path) -> None:
    record.unlink(missing_ok=True)
    partial.unlink(missing_ok=True)


def save_record(record: Path, etag: str, size: int, validator: str | None, segments: list[Segment]) -> None:
    """The record, replaced in one rename (no fsync: the final hash, not the record, vouches for the bytes)."""
    import json

    doc = {"format": RECORD_FORMAT, "etag": etag, "size": size, "validator": validator, "done": intervals(segments)}
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, record)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written record behind
        raise


def drop_odd_partial(partial: Path) -> bool:
    """Remove a partial that is no regular file (a link, a FIFO): never read from (it may never end) nor
    written through (it may point out of the cache). True when a regular partial is there to resume."""
    try:
        mode = partial.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        partial.unlink()  # a folder there is an error (exit 6): not hfa's to remove
        return False
    return True


class WriteBehind:
    """Start writing a large file to disk while it downloads, so the fsync before publishing is short.

    Every ``every`` bytes written from ``offset`` on, Linux's ``sync_file_range(SYNC_FILE_RANGE_WRITE)``
    queues the range just written for write-back without waiting for it (PostgreSQL's
    ``*_flush_after`` does the same). Elsewhere, or if the call is refused, it does nothing: the
    fsync still makes the blob durable before it is published; this only moves the disk's work
    earlier. Without it a ranged pull of 256 MiB spent ~0.15 s in its final fsync (a disk that
    writes ~750 MB/s).
    """

    def __init__(self, fd: int, offset: int, every: int) -> None:
        self.fd = fd
        self.start = offset
        self.every = every
        self.pending = 0
        self.call = sync_file_range()

    def wrote(self, n: int) -> None:
        self.pending += n
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        """Hand what was written since the last call to the disk now (the end of a range)."""
        if self.pending and self.call is not None:
            self.call(self.fd, self.start, self.pending, 2)  # SYNC_FILE_RANGE_WRITE; errors ignored
        self.start += self.pending
        self.pending = 0


_SFR: Any = None


def sync_file_range() -> Any:
    """libc's sync_file_range on Linux (ctypes, loaded once), else None."""
    global _SFR
    if _SFR is None:
        _SFR = False
        import sys

        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _SFR = fn
            except (OSError, AttributeError):  # pragma: no cover - a libc without it
                _SFR = False
    return _SFR or None
