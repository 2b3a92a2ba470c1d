"""A zip archive's central directory, read as PyTorch reads it: the end record (zip64 too), then
every entry it lists, validated as it is read. Local headers and data are left to the caller
(:mod:`hfa.scan.archive`); nothing here decompresses anything.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MAX_ENTRIES = 1 << 20  # central-directory entries

_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_CENTRAL = b"PK\x01\x02"
_ZIP_END = b"PK\x05\x06"
_ZIP64_END = b"PK\x06\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


class BadZip(Exception):
    """The archive cannot be read as what it claims to be."""


def _find_end(fp: BinaryIO, start: int, end: int) -> tuple[int, tuple[int, ...]]:
    """Offset and fields of the end-of-central-directory record."""
    tail_start = max(start, end - (22 + 0xFFFF))
    fp.seek(tail_start)
    tail = fp.read(end - tail_start)
    i = tail.rfind(_ZIP_END)
    while i >= 0:
        if i + 22 <= len(tail):
            fields = struct.unpack("<4s4H2LH", tail[i : i + 22])
            if i + 22 + fields[7] <= len(tail):
                return tail_start + i, fields[1:]
        i = tail.rfind(_ZIP_END, 0, i)
    raise BadZip("no end-of-central-directory record")


class Member:
    """One entry of the central directory: its name (raw and decoded), flags, method, sizes and local header offset."""

    __slots__ = ("csize", "flags", "local_offset", "method", "name", "raw_name", "usize")

    def __init__(
        self, raw_name: bytes, name: str, flags: int, method: int, csize: int, usize: int, local_offset: int
    ) -> None:
        self.raw_name = raw_name
        self.name = name
        self.flags = flags
        self.method = method
        self.csize = csize
        self.usize = usize
        self.local_offset = local_offset


def central_directory(fp: BinaryIO, start: int, end: int, *, allow_prefix: bool) -> Any:
    """Yield the members the central directory lists (validated as they are read)."""
    eocd, (disk, cd_disk, _n_disk, n_total, cd_size, cd_offset, _comment) = _find_end(fp, start, end)
    if disk != 0 or cd_disk != 0:
        raise BadZip("a multi-disk zip")
    cd_end = eocd
    if eocd - 20 >= start:
        fp.seek(eocd - 20)
        locator = fp.read(20)
        if locator[:4] == _ZIP64_LOCATOR:
            rec_at = eocd - 20 - 56
            if rec_at < start:
                raise BadZip("a zip64 locator without its record")
            fp.seek(rec_at)
            rec = fp.read(56)
            if rec[:4] != _ZIP64_END:
                raise BadZip("a zip64 locator without its record")
            n_total, cd_size, cd_offset = struct.unpack("<QQQ", rec[32:56])
            cd_end = rec_at
    if cd_end == eocd and 0xFFFFFFFF in (cd_size, cd_offset):
        raise BadZip("zip64 sizes without a zip64 record")
    if n_total > MAX_ENTRIES:
        raise BadZip(f"{n_total} entries in the central directory")
    cd_start = cd_end - cd_size
    base = cd_start - cd_offset
    if cd_start < start or base < start:
        raise BadZip("the central directory lies outside the file")
    if base != start and not allow_prefix:
        raise BadZip("the central directory is not where the end record says")
    return _iter_entries(fp, base, cd_start, cd_end, n_total)


def _iter_entries(fp: BinaryIO, base: int, cd_start: int, cd_end: int, n_total: int) -> Any:
    pos = cd_start
    for _ in range(n_total):
        if pos + 46 > cd_end:
            raise BadZip("a truncated central directory")
        fp.seek(pos)
        fixed = fp.read(46)
        if fixed[:4] != _ZIP_CENTRAL:
            raise BadZip("a corrupt central directory entry")
        (flags, method) = struct.unpack("<HH", fixed[8:12])
        csize, usize = struct.unpack("<LL", fixed[20:28])
        nlen, xlen, clen = struct.unpack("<HHH", fixed[28:34])
        local = struct.unpack("<L", fixed[42:46])[0]
        if pos + 46 + nlen + xlen + clen > cd_end:
            raise BadZip("a truncated central directory")
        raw_name = fp.read(nlen)
        extra = fp.read(xlen)
        usize, csize, local = _zip64_extra(extra, usize, csize, local)
        name = raw_name.decode("utf-8", "replace") if flags & 0x800 else raw_name.decode("cp437")
        yield Member(raw_name, name, flags, method, csize, usize, base + local)
        pos += 46 + nlen + xlen + clen
    if pos != cd_end:
        raise BadZip("the central directory holds more than its entry count says")


def _zip64_extra(extra: bytes, usize: int, csize: int, local: int) -> tuple[int, int, int]:
    i = 0
    while i + 4 <= len(extra):
        tag, ln = struct.unpack("<HH", extra[i : i + 4])
        body = extra[i + 4 : i + 4 + ln]
        if tag == 1:
            j = 0
            values = []
            while j + 8 <= len(body):
                values.append(struct.unpack("<Q", body[j : j + 8])[0])
                j += 8
            it = iter(values)
            try:
                if usize == 0xFFFFFFFF:
                    usize = next(it)
                if csize == 0xFFFFFFFF:
                    csize = next(it)
                if local == 0xFFFFFFFF:
                    local = next(it)
            except StopIteration:
                raise BadZip("a truncated zip64 extra field") from None
            return usize, csize, local
        i += 4 + ln
    if 0xFFFFFFFF in (usize, csize, local):
        raise BadZip("zip64 sizes without a zip64 extra field")
    return usize, csize, local
