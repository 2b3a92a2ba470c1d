"""Containers the archive scanner opens, one handler per kind (:data:`HANDLERS`, keyed by
:func:`hfa.scan.sniff.kind`): zip archives through their central directory, tar archives
(PyTorch's legacy tar checkpoints among them), and compressed streams.

Every handler has the same signature and returns True when it judged the content; members and
decompressed content go back through the dispatcher (``out.dispatch``), so containers nest in
any order, to :data:`~hfa.scan.limits.MAX_DEPTH`. A new container is one more handler in the
table (7z: :mod:`hfa.scan.sevenzip`). Libraries outside the standard library (lz4, zstandard,
py7zr) are optional: without them the file is an ``archive.unscannable`` finding, never clean.
Containers the scanner does not open (RAR, cab, ar, cpio, ...: :data:`hfa.scan.sniff.UNSUPPORTED_MAGIC`)
are ``archive.unsupported-container`` findings, an encrypted zip member ``archive.encrypted`` (the
helpers that word each finding are :class:`hfa.scan.archive.FileScan` methods).
"""

from __future__ import annotations

import struct
import zlib

from hfa.scan.limits import MAX_DEPTH, MEMBER_COST
from hfa.scan.model import Severity
from hfa.scan.sniff import ZIP_END, ZIP_LOCAL, says_pickle, unsafe_name
from hfa.scan.streams import Decoded, Window, as_binary, zlib_maker
from hfa.scan.zipread import BadZip, Member, central_directory

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from hfa.scan.archive import FileScan

BOMB_RATIO = 1100  # deflate cannot exceed ~1032:1; more output than this from one member is a bomb
BOMB_FLOOR = 64 << 20
MAX_NDIM = 64  # dimensions of a tensor in a legacy tar checkpoint

# --------------------------------------------------------------------------------------------
# The registry


def _too_deep(out: FileScan, display: str, depth: int) -> bool:
    if depth > MAX_DEPTH:
        out.add(Severity.HIGH, "archive.too-deep", f"containers nested more than {MAX_DEPTH} deep", display)
        return True
    return False


def scan_zip(
    fp: BinaryIO, display: str, out: FileScan, start: int, end: int, depth: int, expect: bool, kind: str = "zip"
) -> bool:
    if not _too_deep(out, display, depth):
        _scan_zip(fp, display, out, start, end, depth, expect=expect)
    return True


# --------------------------------------------------------------------------------------------
# Compressed streams (joblib's compressors, pandas' compression="infer")


class _Missing(Exception):
    def __init__(self, package: str) -> None:
        super().__init__(package)
        self.package = package


def _codec(kind: str) -> tuple[Callable[[], Any] | None, Callable[[BinaryIO], Any] | None, int]:
    """(decoder maker, or reader maker; bytes to skip first) for one compression kind."""
    if kind == "gzip":
        return zlib_maker(16 + zlib.MAX_WBITS), None, 0
    if kind == "zfile":  # joblib < 0.10: b"ZF" + hex length padded to 19 bytes + zlib data
        return zlib_maker(zlib.MAX_WBITS), None, 21
    if kind == "zlib":
        return zlib_maker(zlib.MAX_WBITS), None, 0
    if kind == "bz2":
        import bz2

        return bz2.BZ2Decompressor, None, 0
    if kind in ("xz", "lzma"):
        import lzma

        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE
        return (lambda: lzma.LZMADecompressor(format=fmt)), None, 0
    if kind == "lz4":  # joblib's compress=("lz4", n): an lz4 frame
        try:
            import lz4.frame  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            raise _Missing("lz4") from None
        return lz4.frame.LZ4FrameDecompressor, None, 0
    try:  # zstd: pandas' compression="zstd"
        import zstandard  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise _Missing("zstandard") from None

    def reader(raw: BinaryIO) -> Any:
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)

    return None, reader, 0


def scan_compressed(
    fp: BinaryIO, display: str, out: FileScan, start: int, end: int, depth: int, expect: bool, kind: str = "gzip"
) -> bool:
    """Decompress lazily and judge what comes out; False when that is nothing a loader unpickles."""
    if depth > MAX_DEPTH:
        return _too_deep(out, display, depth) if expect else False
    try:
        maker, reader, skip = _codec(kind)
    except _Missing as exc:
        out.add(
            Severity.HIGH,
            "archive.unscannable",
            f"cannot be proven safe: {kind}-compressed content (a loader such as joblib unpickles it) "
            f"needs the {exc.package} package to be scanned: pip install 'hfa[scan]'",
            display,
            kind=kind,
            package=exc.package,
        )
        return True
    raw = as_binary(Window(fp, start + skip, end))
    limit = max(BOMB_FLOOR, BOMB_RATIO * (end - start))
    stream = Decoded(raw, maker, limit, multi=kind in ("gzip", "bz2"), reader=reader, work=out.work)
    before = len(out.findings)
    handled = out.dispatch(as_binary(stream), display, 0, None, depth + 1, True, expect=expect)
    if handled and stream.error:
        _stream_error(out, display, f"{kind} stream {stream.error}", before)
    return handled


def _stream_error(out: FileScan, display: str, error: str, before: int) -> None:
    """Report why a decompressed stream ended early (a bound: no 'truncated pickle' besides)."""
    if "more than" in error:
        out.findings[before:] = [f for f in out.findings[before:] if f.code != "pickle.malformed"]
        if out.work.exhausted:
            out.too_costly(display, error)
        else:
            out.add(Severity.HIGH, "archive.too-large", f"cannot be proven safe: {error}", display)
    else:
        out.malformed(error, display)


# --------------------------------------------------------------------------------------------
# Zip archives, through the central directory


def _scan_zip(
    fp: BinaryIO,
    display: str,
    out: FileScan,
    start: int,
    end: int,
    depth: int,
    *,
    polyglot: bool = False,
    expect: bool = False,
) -> bool:
    """Scan every member of the zip in [start, end). With ``polyglot``, quietly give up on a non-zip."""
    members: list[Member] = []
    try:
        for member in central_directory(fp, start, end, allow_prefix=polyglot):
            members.append(member)
    except BadZip as exc:
        if polyglot:
            return False
        out.malformed(str(exc), display)  # still scan the members that could be read
    if polyglot:
        out.add(
            Severity.MEDIUM,
            "archive.polyglot",
            "a pickle with a zip archive after it: zip readers see other content than unpicklers",
            display,
        )
    # pandas' read_pickle(compression="zip") unpickles the one file of a zip named as a pickle.
    files = [m for m in members if not m.name.endswith("/")]
    sole = expect and len(files) == 1
    # data.pkl first: its persistent ids name the tensor storages (raw bytes to torch).
    storages: set[str] = set()
    for m in members:
        if m.name == "data.pkl" or m.name.endswith("/data.pkl"):
            out.storage_ids = []
            _scan_member(fp, display, out, m, end, depth, expect=True)
            prefix = m.name[: -len("data.pkl")]
            storages.update(f"{prefix}data/{pid[2]}" for pid in out.storage_ids if isinstance(pid[2], str))
    for m in members:
        if out.work.exhausted:
            break
        if not (m.name == "data.pkl" or m.name.endswith("/data.pkl")):
            storage = m.name in storages
            expect_member = not storage and (sole or says_pickle(m.name))
            _scan_member(fp, display, out, m, end, depth, storage=storage, expect=expect_member)
    return True


def scan_polyglot_zip(fp: BinaryIO, display: str, out: FileScan, start: int, end: int, depth: int) -> None:
    """The zip archive after a pickle, if its end record is there (a polyglot: each reader sees other content)."""
    fp.seek(max(start, end - (22 + 0xFFFF)))
    if ZIP_END in fp.read():
        _scan_zip(fp, display + "!zip", out, start, end, depth + 1, polyglot=True)


def _scan_member(
    fp: BinaryIO,
    display: str,
    out: FileScan,
    m: Member,
    end: int,
    depth: int,
    storage: bool = False,
    expect: bool = False,
) -> None:
    path = f"{display}!{m.name}"
    if unsafe_name(m.name):
        out.unsafe_name(path, m.name)
    if m.name.endswith("/") and m.usize == 0 and m.csize == 0:
        return
    if not out.work.charge(MEMBER_COST):
        out.too_costly(path, "more archive members than the scan's budget")
        return
    if m.local_offset + 30 > end:
        out.malformed("a member's local header offset is out of range", path, offset=m.local_offset)
        return
    fp.seek(m.local_offset)
    local = fp.read(30)
    if local[:4] != ZIP_LOCAL:
        out.malformed("a member's local header is missing", path, offset=m.local_offset)
        return
    nlen, xlen = struct.unpack("<HH", local[26:30])
    local_name = fp.read(nlen)
    if local_name != m.raw_name:
        out.add(
            Severity.MEDIUM,
            "archive.name-mismatch",
            "the local header names a different file than the central directory (scanned by the latter)",
            path,
            central=m.name,
            local=local_name.decode("utf-8", "replace"),
        )
    data_start = m.local_offset + 30 + nlen + xlen
    data_end = data_start + m.csize
    if data_end > end:
        out.malformed("a member's data runs past the end of the archive", path, offset=data_start)
        return
    encrypted = bool(m.flags & 0x41) or m.method == 99  # ZipCrypto, strong encryption, WinZip AES
    if encrypted:
        out.encrypted(path, flags=m.flags, method=m.method)
    if m.flags & 0x20:  # patched data
        out.add(
            Severity.MEDIUM,
            "archive.suspicious-flags",
            "member flagged as patched data; loaders that ignore the flag read it as is (scanned as is)",
            path,
            flags=m.flags,
        )
    if m.method == 0:
        if m.csize != m.usize:
            if not encrypted:  # encrypted: the sizes differ by the encryption header, already reported
                out.malformed("a stored member whose sizes disagree", path)
            return
        view = as_binary(Window(fp, data_start, data_end))  # offsets in findings: from the member start
        out.dispatch(view, path, 0, m.csize, depth + 1, False, storage=storage, expect=expect)
    elif m.method == 8 and encrypted:
        # Encrypted deflate data does not inflate; a member whose flag lies does: scan that as is.
        raw = as_binary(Window(fp, data_start, data_end))
        stream = Decoded(raw, zlib_maker(-15), min(m.usize, BOMB_RATIO * max(m.csize, 1)), work=out.work)
        out.dispatch(as_binary(stream), path, 0, m.usize, depth + 1, True, storage=storage)
    elif m.method == 8:
        raw = as_binary(Window(fp, data_start, data_end))
        limit = min(m.usize, max(BOMB_FLOOR, BOMB_RATIO * max(m.csize, 1)))
        stream = Decoded(raw, zlib_maker(-15), limit, work=out.work)
        if m.usize > limit:
            out.add(Severity.HIGH, "archive.too-large", "cannot be proven safe: a member that inflates too far", path)
        before = len(out.findings)
        out.dispatch(as_binary(stream), path, 0, m.usize, depth + 1, True, storage=storage, expect=expect)
        if stream.error:
            _stream_error(out, path, f"deflate data {stream.error}", before)
    elif encrypted:
        return  # AES (method 99) hides the real method: reported as encrypted, nothing else to say
    else:
        out.add(
            Severity.HIGH,
            "archive.unsupported",
            f"cannot be proven safe: compression method {m.method} is not scanned",
            path,
            method=m.method,
        )


def _7z(fp: BinaryIO, display: str, out: FileScan, start: int, end: int, depth: int, expect: bool, kind: str) -> bool:
    from hfa.scan.sevenzip import scan_7z  # py7zr is imported only for a 7z

    return scan_7z(fp, display, out, start, end, depth, expect)


# The registry: kind -> handler(fp, display, out, start, end, depth, expect, kind). Handlers get a
# seekable [start, end) (the dispatcher spools a decompressed stream first).
def _tar(fp: BinaryIO, display: str, out: FileScan, start: int, end: int, depth: int, expect: bool, kind: str) -> bool:
    from hfa.scan.tarscan import scan_tar  # tarfile is imported only for a tar

    return scan_tar(fp, display, out, start, end, depth, expect)


HANDLERS: dict[str, Callable[..., bool]] = {
    "zip": scan_zip,
    "tar": _tar,
    "7z": _7z,
    **{k: scan_compressed for k in ("gzip", "bz2", "xz", "lzma", "zlib", "zfile", "lz4", "zstd")},
}
