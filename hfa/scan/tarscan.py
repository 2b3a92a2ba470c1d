"""Tar archives: every member sniffed, and PyTorch's legacy tar checkpoint walked as torch reads it.

``torch.save(..., _use_new_zipfile_serialization=False)`` in old versions wrote a tar of three
members, and ``torch.load`` still tries any file that opens as a tar this way first:

* ``storages``: a pickle (the count), then per storage a pickle ``(key, location, storage type)``
  followed by an int64 element count and the raw elements; then a pickle of storage views;
* ``tensors``: a pickle (the count), then per tensor a pickle ``(key, storage id, type)``
  followed by int32 ndim, 4 pad bytes, ndim int64 sizes, ndim int64 strides, an int64 offset;
* ``pickle``: the model pickle.

Every pickle of that walk is scanned; a layout the walk cannot follow leaves pickles unlocated,
so it is a finding (``archive.malformed``, high). Other members are sniffed like zip members,
and pandas' ``read_pickle`` of a ``.tar`` (its one file) is covered by the same rule as for zips.
Link members that a loader would extract and open are findings. tarfile parses the headers; no
member is ever extracted.
"""

from __future__ import annotations

import struct
import tarfile

from hfa.scan.legacytorch import STORAGE_ELEMENT_SIZE
from hfa.scan.limits import MAX_DEPTH, MAX_MEMBERS, MEMBER_COST
from hfa.scan.model import Severity
from hfa.scan.pickles import Global
from hfa.scan.sniff import says_pickle, unsafe_name
from hfa.scan.streams import Window

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from hfa.scan.archive import FileScan

LEGACY_MEMBERS = ("storages", "tensors", "pickle")
MAX_NDIM = 64
MAX_HEADER_READ = 16 << 20  # tarfile reads long names and PAX headers whole: no more than this at once


class _Headers(Window):
    """The archive as tarfile sees it: any one read larger than MAX_HEADER_READ is refused."""

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0 or n > MAX_HEADER_READ:
            raise OSError(f"a tar header larger than {MAX_HEADER_READ} bytes")
        return super().read(n)


def scan_tar(fp: BinaryIO, display: str, out: FileScan, start: int, end: int, depth: int, expect: bool) -> bool:
    if depth > MAX_DEPTH:
        out.add(Severity.HIGH, "archive.too-deep", f"containers nested more than {MAX_DEPTH} deep", display)
        return True
    view: Any = _Headers(fp, start, end)
    members: list[tarfile.TarInfo] = []
    try:
        with tarfile.open(fileobj=view, mode="r:") as tar:
            for info in tar:
                if len(members) >= MAX_MEMBERS or not out.work.charge(MEMBER_COST):
                    out.too_costly(display, f"more than {len(members)} tar members")
                    break
                members.append(info)
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeError, OverflowError) as exc:
        out.malformed(f"a tar archive that cannot be read ({exc})", display)  # still scan the members read
    names = [m.name for m in members]
    legacy = "storages" in names or "tensors" in names  # torch unpickles storages before it looks for pickle
    files = [m for m in members if m.isfile()]
    sole = expect and len(files) == 1
    for m in members:
        if out.work.exhausted:
            break
        path = f"{display}!{m.name}"
        if unsafe_name(m.name):
            out.unsafe_name(path, m.name)
        wanted = (legacy and m.name in LEGACY_MEMBERS) or sole or says_pickle(m.name)
        if m.issym() or m.islnk():
            if wanted:
                out.add(
                    Severity.HIGH,
                    "archive.link-member",
                    f"cannot be proven safe: a link to {m.linkname!r}; a loader that extracts it reads that file",
                    path,
                    target=m.linkname,
                )
            continue
        if not m.isfile():
            continue
        if m.sparse is not None or m.type == tarfile.GNUTYPE_SPARSE:
            if wanted:
                out.add(Severity.HIGH, "archive.unsupported", "cannot be proven safe: a sparse tar member", path)
            continue
        data_start = start + m.offset_data
        data_end = data_start + m.size
        if data_end > end:
            out.malformed("a member's data runs past the end of the archive", path, offset=m.offset_data)
            continue
        member: Any = Window(fp, data_start, data_end)
        if legacy and m.name in ("storages", "tensors"):
            _LegacyWalk(member, path, out, m.size).run(m.name)
        else:
            out.dispatch(member, path, 0, m.size, depth + 1, False, expect=wanted)
    return True


class _LegacyWalk:
    """The ``storages`` or ``tensors`` member of a legacy tar checkpoint, read as torch reads it."""

    def __init__(self, fp: BinaryIO, display: str, out: FileScan, size: int) -> None:
        self.fp = fp
        self.display = display
        self.out = out
        self.size = size
        self.pos = 0
        self.index = 0  # pickles read so far

    def pickle(self) -> Any:
        """Scan the pickle at pos; its stop value, or raise _Lost when the walk cannot go on."""
        rep = self.out.pickles(self.fp, self.display, start=self.pos, end=self.size, max_pickles=1, collect=True,
                               first_index=self.index, trailing=False)  # fmt: skip
        if not rep.complete:
            raise _Lost("")  # the pickle scan has said why
        if rep.pickles != 1:
            raise _Lost("a pickle of the layout is missing")
        self.index += 1
        self.pos = rep.end
        return rep.stop_values[0] if rep.stop_values else None

    def raw(self, n: int) -> bytes:
        self.fp.seek(self.pos)
        data = self.fp.read(n)
        if len(data) != n:
            raise _Lost(f"the member ends inside raw data at {self.pos}")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Lost(f"raw data of {n} bytes at {self.pos} runs past the end of the member")
        self.pos += n

    def count(self, what: str) -> int:
        n = self.pickle()
        if type(n) is not int or n < 0 or n > self.size:
            raise _Lost(f"the {what} count is not a number the scanner can follow")
        return n

    def run(self, name: str) -> None:
        try:
            self.storages() if name == "storages" else self.tensors()
        except _Lost as exc:
            if str(exc):
                self.out.malformed(
                    f"a legacy torch tar member whose layout the scan cannot follow ({exc}): "
                    "pickles after this point are not located",
                    self.display,
                    offset=self.pos,
                )
            return
        if self.pos < self.size:
            self.out.malformed(f"{self.size - self.pos} bytes after the layout ends", self.display, offset=self.pos)

    def storages(self) -> None:
        for _ in range(self.count("storage")):
            args = self.pickle()
            kind = args[2] if isinstance(args, tuple) and len(args) == 3 else None
            element = STORAGE_ELEMENT_SIZE.get(kind.name) if isinstance(kind, Global) else None
            if element is None:
                raise _Lost("a storage whose type the scanner cannot size")
            (numel,) = struct.unpack("<q", self.raw(8))
            if numel < 0 or numel > self.size:
                raise _Lost(f"a storage of {numel} elements")
            self.skip(numel * element)
        self.pickle()  # the storage views

    def tensors(self) -> None:
        for _ in range(self.count("tensor")):
            self.pickle()
            (ndim,) = struct.unpack("<i", self.raw(4))
            if not 0 <= ndim <= MAX_NDIM:
                raise _Lost(f"a tensor of {ndim} dimensions")
            self.skip(4 + 16 * ndim + 8)


class _Lost(Exception):
    """The walk cannot locate the next pickle (an empty message: the pickle scan said why)."""
