"""Serialized model formats, recognised by content (never by name) and scanned without loading.

:func:`scan_serialized` sniffs the first bytes and dispatches:

* raw pickles, any protocol, several in a row; a legacy ``torch.save`` file (magic-number pickle,
  protocol pickle, sys-info pickle, the model pickle, the storage-keys pickle, then raw storage
  bytes) has its five pickles scanned and its raw data checked against the storages the model
  pickle declares, so nothing unexpected hides after them;
* zip archives (PyTorch, ``.npz``, anything): read through the central directory, as PyTorch does,
  never through local headers; flag bits and CRCs are ignored (a loader that ignores them still
  reads the member); stored and deflated members are read directly at the local-header offset the
  central directory gives; every member is sniffed (not only ``data.pkl``: hidden, extensionless
  and oddly named members too), tensor data is never read beyond a small head; nested archives
  are followed to a bounded depth;
* numpy ``.npy`` (an object dtype means the rest is a pickle) and ``.npz`` (a zip of them);
* joblib files (pickles with inline array data, see :mod:`hfa.scan.pickle`), also when compressed
  with gzip, zlib, bz2, xz or lzma (the stdlib codecs joblib uses; lz4 is not handled).

It returns None when the content is none of these, so a caller can try other checks. Members are
reported as ``outer.bin!archive/data.pkl``.
"""

from __future__ import annotations

import io
import struct
import zlib

from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickle import (
    _VALID_OPCODES,
    KEEP_ITEMS_LARGE,
    PickleReport,
    _Global,
    _List,
    probe_pickle,
    scan_pickles,
)
from hfa.scan.streams import CHUNK, _Decoded, _Window, _zlib_maker
from hfa.scan.zipread import _ZIP_END, _ZIP_LOCAL, _Bad, _central_directory, _Member

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

MAX_DEPTH = 3  # archives inside archives
MAX_NPY_HEADER = 1 << 20
BOMB_RATIO = 1100  # deflate cannot exceed ~1032:1; more output than this is a bomb
BOMB_FLOOR = 64 << 20
SPOOL_MEMORY = 16 << 20

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# Element sizes of the storage classes a legacy torch file names in its persistent ids.
_STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexDoubleStorage": 16,
    "ComplexFloatStorage": 8,
    "QUInt8Storage": 1,
    "QInt8Storage": 1,
    "QInt32Storage": 4,
    "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}

_NPY_MAGIC = b"\x93NUMPY"


# --------------------------------------------------------------------------------------------
# Dispatch


class _Out:
    """Findings of one scan, with one helper per archive code."""

    def __init__(self, policy: ScanPolicy) -> None:
        self.policy = policy
        self.findings: list[Finding] = []
        self.storage_ids: list[Any] = []  # torch persistent ids seen by the last pickle scanned

    def add(self, severity: Severity, code: str, message: str, path: str, **detail: Any) -> None:
        self.findings.append(Finding(severity, code, message, path, detail))

    def malformed(self, message: str, path: str, **detail: Any) -> None:
        self.add(Severity.HIGH, "archive.malformed", f"cannot be proven safe: {message}", path, **detail)


def scan_serialized(fp: BinaryIO, display: str, policy: ScanPolicy, *, size: int | None = None) -> list[Finding] | None:
    """Scan a pickle, a legacy torch file, a zip (PyTorch, npz, nested), an npy, or a joblib file.

    Reads ``fp`` from its current position (``size`` bytes, default to EOF). Returns the findings
    (empty for a clean file), or None when the content is none of the formats handled here.
    """
    start = fp.tell()
    end = start + size if size is not None else fp.seek(0, io.SEEK_END)
    out = _Out(policy)
    handled = _dispatch(fp, display, out, start, end, depth=0, stream=False)
    return out.findings if handled else None


def _kind(head: bytes) -> str | None:
    if head[:4] in (_ZIP_LOCAL, _ZIP_END):
        return "zip"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:3] == b"]\x00\x00":
        return "lzma"
    if head[:2] == b"ZF" and head[2:4] == b"0x":
        return "zfile"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    return None


def _dispatch(
    fp: BinaryIO,
    display: str,
    out: _Out,
    start: int,
    end: int | None,
    depth: int,
    stream: bool,
    *,
    storage: bool = False,
) -> bool:
    """Scan [start, end) of ``fp`` by what its content is; False when it is nothing handled here.

    Content that starts with PROTO 2-9 is a pickle even if it breaks at once (fail closed), except
    in a torch tensor storage (``storage``): torch reads those as raw bytes, and random data starts
    like that often enough, so there only a pickle that simulates cleanly counts.
    """
    fp.seek(start)
    head = fp.read(16 if end is None else max(0, min(16, end - start)))
    if not head:
        return False
    if head[0] not in _VALID_OPCODES and _kind(head) is None:
        return False  # no pickle starts with this byte, and no container: nothing here to read further
    if storage:
        if probe_pickle(fp, start, end, stream=stream):
            _scan_pickle_file(fp, display, out, start, end, stream, depth)
            return True
        return False
    if head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 1 << 30:
        return False  # safetensors: a little-endian header length, then JSON (not handled here)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 9:  # 6-9: a future protocol, fails closed
        _scan_pickle_file(fp, display, out, start, end, stream, depth)
        return True
    kind = _kind(head)
    if kind == "zip":
        if depth > MAX_DEPTH:
            out.add(Severity.HIGH, "archive.too-deep", f"archives nested more than {MAX_DEPTH} deep", display)
            return True
        if stream:
            with _spooled(fp, start, end) as copy:
                _scan_zip(copy, display, out, 0, _size_of(copy), depth)
        else:
            assert end is not None
            _scan_zip(fp, display, out, start, end, depth)
        return True
    if kind == "npy":
        _scan_npy(fp, display, out, start, end, stream)
        return True
    if kind in ("gzip", "bz2", "xz", "lzma", "zlib", "zfile"):
        if depth > MAX_DEPTH:
            return False
        if stream:
            with _spooled(fp, start, end) as copy:
                return _scan_compressed(copy, display, out, 0, _size_of(copy), kind, depth + 1)
        assert end is not None
        return _scan_compressed(fp, display, out, start, end, kind, depth)
    if probe_pickle(fp, start, end, stream=stream):
        _scan_pickle_file(fp, display, out, start, end, stream, depth)
        return True
    return False


def _size_of(fp: BinaryIO) -> int:
    return fp.seek(0, io.SEEK_END)


class _spooled:
    """A decompressed stream copied to a spooled temp file (zips need random access)."""

    def __init__(self, fp: BinaryIO, start: int, end: int | None) -> None:
        self.src = fp
        self.start = start
        self.end = end
        self.tmp: Any = None

    def __enter__(self) -> BinaryIO:
        import tempfile  # imported when needed: most scans never spool

        self.tmp = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.src.seek(self.start)
        left = None if self.end is None else self.end - self.start
        while left is None or left > 0:
            data = self.src.read(CHUNK if left is None else min(CHUNK, left))
            if not data:
                break
            self.tmp.write(data)
            if left is not None:
                left -= len(data)
        self.tmp.seek(0)
        return _binary(self.tmp)

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.tmp.close()


# --------------------------------------------------------------------------------------------
# Pickles, legacy torch files, compressed joblib files


def _scan_pickle_file(
    fp: BinaryIO, display: str, out: _Out, start: int, end: int | None, stream: bool, depth: int
) -> None:
    policy = out.policy
    first = scan_pickles(fp, display, policy, start=start, end=end, max_pickles=1, collect=True, stream=stream)
    out.findings += first.findings
    out.storage_ids = first.storage_ids
    if not first.complete:
        return
    magic = first.stop_values[0] if first.stop_values else None
    if type(magic) is int and magic == LEGACY_MAGIC:
        _scan_legacy_torch(fp, display, out, first.end, end, stream)
    else:
        rest = scan_pickles(
            fp, display, policy, start=first.end, end=end, first_index=1, stream=stream, continuation=True
        )
        out.findings += rest.findings
    if not stream and end is not None and depth < MAX_DEPTH:
        _scan_polyglot_zip(fp, display, out, start, end, depth)


def _scan_legacy_torch(fp: BinaryIO, display: str, out: _Out, start: int, end: int | None, stream: bool) -> None:
    """Pickles 2-4 (protocol, sys info, model), pickle 5 (storage keys), then raw storages."""
    policy = out.policy
    body = scan_pickles(
        fp,
        display,
        policy,
        start=start,
        end=end,
        max_pickles=3,
        first_index=1,
        collect=True,
        stream=stream,
        continuation=True,
    )
    out.findings += body.findings
    if not body.complete:
        return
    if body.pickles < 3:
        _unexpected(out, display, f"a legacy torch file that ends after {1 + body.pickles} of its 5 pickles")
        return
    keys = scan_pickles(
        fp,
        display,
        policy,
        start=body.end,
        end=end,
        max_pickles=1,
        first_index=4,
        collect=True,
        keep_items=KEEP_ITEMS_LARGE,
        stream=stream,
        continuation=True,
    )
    out.findings += keys.findings
    if not keys.complete:
        return
    if keys.pickles < 1:
        _unexpected(out, display, "a legacy torch file without its storage-keys pickle")
        return
    _check_legacy_storages(fp, display, out, body, keys, end, stream)


def _unexpected(out: _Out, display: str, message: str, **detail: Any) -> None:
    out.add(Severity.MEDIUM, "archive.unexpected-data", message, display, **detail)


def _check_legacy_storages(
    fp: BinaryIO, display: str, out: _Out, body: PickleReport, keys: PickleReport, end: int | None, stream: bool
) -> None:
    """The raw data must be exactly: for each storage key, an int64 count then count elements."""
    sizes: dict[str, tuple[int, int]] = {}
    for pid in body.storage_ids:
        if len(pid) < 5 or not isinstance(pid[1], _Global) or not isinstance(pid[2], str):
            continue
        element = _STORAGE_ELEMENT_SIZE.get(pid[1].name) if pid[1].module == "torch" else None
        numel = pid[4]
        if element is None or type(numel) is not int:
            _unexpected(out, display, f"storage {pid[2]!r} has a type or size the scanner cannot check")
            return
        sizes.setdefault(pid[2], (numel, element))  # the first reference creates the storage
    listed = keys.stop_values[0] if keys.stop_values else None
    if not isinstance(listed, _List) or listed.overflow or not all(isinstance(k, str) for k in listed.items):
        _unexpected(out, display, "the storage-keys pickle is not a list of keys")
        return
    pos = keys.end
    for key in listed.items:
        if key not in sizes:
            _unexpected(out, display, f"storage key {key!r} is not declared by the model pickle")
            return
        numel, element = sizes[key]
        fp.seek(pos)
        raw = fp.read(8)
        if len(raw) < 8 or int.from_bytes(raw, "little", signed=True) != numel:
            _unexpected(out, display, f"storage {key!r} does not start with its element count", offset=pos)
            return
        pos += 8 + numel * element
        if end is not None and pos > end:
            _unexpected(out, display, f"storage {key!r} runs past the end of the file", offset=pos)
            return
    fp.seek(pos)
    if (end is not None and pos >= end) or not fp.read(1):
        return
    size = f"{end - pos} bytes" if end is not None else "data"
    _unexpected(out, display, f"{size} after the last storage of a legacy torch file", offset=pos)
    if probe_pickle(fp, pos, end, stream=stream):  # torch never reads it, but something else might
        out.findings += scan_pickles(fp, display, out.policy, start=pos, end=end, first_index=5, stream=stream).findings


def _scan_compressed(fp: BinaryIO, display: str, out: _Out, start: int, end: int, kind: str, depth: int) -> bool:
    """gzip/zlib/bz2/xz/lzma around a pickle (joblib's compressed files); None-equivalent if not one."""
    skip = 0
    multi = kind in ("gzip", "bz2")
    maker: Callable[[], Any]
    if kind == "gzip":
        maker = _zlib_maker(16 + zlib.MAX_WBITS)
    elif kind == "zfile":  # joblib < 0.10: b"ZF" + hex length padded to 19 bytes + zlib data
        skip = 21
        maker = _zlib_maker(zlib.MAX_WBITS)
    elif kind == "zlib":
        maker = _zlib_maker(zlib.MAX_WBITS)
    elif kind == "bz2":
        import bz2

        maker = bz2.BZ2Decompressor
    else:
        import lzma

        fmt = lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE

        def maker() -> Any:
            return lzma.LZMADecompressor(format=fmt)

    raw = _binary(_Window(fp, start + skip, end))
    limit = max(BOMB_FLOOR, BOMB_RATIO * (end - start))
    stream = _Decoded(raw, maker, limit, multi=multi)
    src = _binary(stream)
    if not probe_pickle(src, 0, None, stream=True):
        return False
    _scan_pickle_file(src, display, out, 0, None, True, depth)
    if stream.error:
        code = "archive.too-large" if "more than" in stream.error else "archive.malformed"
        out.add(Severity.HIGH, code, f"cannot be proven safe: {kind} stream {stream.error}", display)
    return True


# --------------------------------------------------------------------------------------------
# numpy .npy


def _npy_has_object(descr: Any, depth: int = 0) -> bool:
    if depth > 32:
        raise ValueError("dtype nested too deeply")
    if isinstance(descr, str):
        code = descr.lstrip("<>|=!")
        if not code:
            raise ValueError("empty dtype")
        return code[0] == "O"
    if isinstance(descr, list):
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                raise ValueError("bad field")
            if _npy_has_object(field[1], depth + 1):
                return True
        return False
    raise ValueError("bad descr")


def _scan_npy(fp: BinaryIO, display: str, out: _Out, start: int, end: int | None, stream: bool) -> None:
    fp.seek(start)
    fixed = fp.read(10)
    if len(fixed) < 10:
        out.malformed("a truncated .npy header", display)
        return
    major = fixed[6]
    if major == 1:
        header_len = struct.unpack("<H", fixed[8:10])[0]
        data_at = start + 10
    elif major in (2, 3):
        more = fp.read(2)
        if len(more) < 2:
            out.malformed("a truncated .npy header", display)
            return
        header_len = struct.unpack("<I", fixed[8:10] + more)[0]
        data_at = start + 12
    else:
        out.malformed(f"unknown .npy format version {major}", display)
        return
    if header_len > MAX_NPY_HEADER:
        out.malformed(f"a .npy header of {header_len} bytes", display)
        return
    raw = fp.read(header_len)
    if len(raw) < header_len:
        out.malformed("a truncated .npy header", display)
        return
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        import ast

        header = ast.literal_eval(text)  # a literal only: never evaluates code
        if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= header.keys():
            raise ValueError("missing keys")
        has_object = _npy_has_object(header["descr"])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        out.malformed(f"a .npy header that is not a valid array description ({type(exc).__name__})", display)
        return
    if has_object:
        # numpy.save writes object arrays as a pickle right after the header; np.load(allow_pickle=True) runs it.
        rep = scan_pickles(fp, display, out.policy, start=data_at + header_len, end=end, stream=stream)
        out.findings += rep.findings


# --------------------------------------------------------------------------------------------
# Zip archives, through the central directory


def _scan_zip(
    fp: BinaryIO, display: str, out: _Out, start: int, end: int, depth: int, *, polyglot: bool = False
) -> bool:
    """Scan every member of the zip in [start, end). With ``polyglot``, quietly give up on a non-zip."""
    members: list[_Member] = []
    try:
        for member in _central_directory(fp, start, end, allow_prefix=polyglot):
            members.append(member)
    except _Bad as exc:
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
    # data.pkl first: its persistent ids name the tensor storages (raw bytes to torch).
    storages: set[str] = set()
    for m in members:
        if m.name == "data.pkl" or m.name.endswith("/data.pkl"):
            out.storage_ids = []
            _scan_member(fp, display, out, m, end, depth)
            prefix = m.name[: -len("data.pkl")]
            storages.update(f"{prefix}data/{pid[2]}" for pid in out.storage_ids if isinstance(pid[2], str))
    for m in members:
        if not (m.name == "data.pkl" or m.name.endswith("/data.pkl")):
            _scan_member(fp, display, out, m, end, depth, storage=m.name in storages)
    return True


def _scan_polyglot_zip(fp: BinaryIO, display: str, out: _Out, start: int, end: int, depth: int) -> None:
    fp.seek(max(start, end - (22 + 0xFFFF)))
    if _ZIP_END in fp.read():
        _scan_zip(fp, display + "!zip", out, start, end, depth + 1, polyglot=True)


def _scan_member(
    fp: BinaryIO, display: str, out: _Out, m: _Member, end: int, depth: int, storage: bool = False
) -> None:
    path = f"{display}!{m.name}"
    if m.name.endswith("/") and m.usize == 0 and m.csize == 0:
        return
    if m.local_offset + 30 > end:
        out.malformed("a member's local header offset is out of range", path, offset=m.local_offset)
        return
    fp.seek(m.local_offset)
    local = fp.read(30)
    if local[:4] != _ZIP_LOCAL:
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
    if m.flags & 0x61:  # encrypted, strong encryption, patched data
        out.add(
            Severity.MEDIUM,
            "archive.suspicious-flags",
            "member flagged as encrypted or patched; loaders that ignore the flag read it as is (scanned as is)",
            path,
            flags=m.flags,
        )
    if m.method == 0:
        if m.csize != m.usize:
            out.malformed("a stored member whose sizes disagree", path)
            return
        view = _binary(_Window(fp, data_start, data_end))  # offsets in findings: from the member start
        _dispatch(view, path, out, 0, m.csize, depth + 1, stream=False, storage=storage)
    elif m.method == 8:
        raw = _binary(_Window(fp, data_start, data_end))
        limit = min(m.usize, max(BOMB_FLOOR, BOMB_RATIO * max(m.csize, 1)))
        stream = _Decoded(raw, _zlib_maker(-15), limit)
        if m.usize > limit:
            out.add(Severity.HIGH, "archive.too-large", "cannot be proven safe: a member that inflates too far", path)
        _dispatch(_binary(stream), path, out, 0, m.usize, depth + 1, stream=True, storage=storage)
        if stream.error:
            out.malformed(f"deflate data: {stream.error}", path)
    else:
        out.add(
            Severity.HIGH,
            "archive.unsupported",
            f"cannot be proven safe: compression method {m.method} is not scanned",
            path,
            method=m.method,
        )


def _binary(obj: object) -> BinaryIO:
    """``obj`` (a window on a file, a decoded stream) typed as the binary file it stands in for."""
    return obj  # type: ignore[return-value]
