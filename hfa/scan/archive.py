"""Serialized model formats, recognised by content (never by name) and scanned without loading.

:func:`scan_serialized` sniffs the first bytes (:func:`hfa.scan.sniff.kind`) and dispatches:

* raw pickles, any protocol, several in a row; a legacy ``torch.save`` file (magic-number pickle,
  protocol pickle, sys-info pickle, the model pickle, the storage-keys pickle, then raw storage
  bytes) has its five pickles scanned and its raw data checked against the storages the model
  pickle declares, so nothing unexpected hides after them;
* containers, one handler each in :data:`hfa.scan.containers.HANDLERS`: zip archives (PyTorch,
  ``.npz``, anything) read through the central directory as PyTorch reads them, every member
  sniffed; tar archives (PyTorch's legacy tar checkpoints: ``storages``, ``tensors``, ``pickle``);
  gzip, zlib, bz2, xz, lzma, lz4 and zstd streams (joblib's and pandas' compressions). They nest,
  to a bounded depth;
* numpy ``.npy`` (an object dtype means the rest is a pickle) and ``.npz`` (a zip of them);
* joblib files (pickles with inline array data, see :mod:`hfa.scan.pickles`).

Fail closed: content whose name (``model.bin``, ``data.pkl`` in a zip, ``x.pkl.gz``) or place
(the members of a legacy tar checkpoint, the one file of a zip named as a pickle) says a loader
unpickles it, but that is none of these, is a ``pickle.unparseable`` finding. All the work on one
file is bounded (:mod:`hfa.scan.limits`). It returns None when the content is none of these and
nothing says pickle, so a caller can try other checks. Members are reported as
``outer.bin!archive/data.pkl``.
"""

from __future__ import annotations

import io
import struct

from hfa.scan.containers import HANDLERS, scan_polyglot_zip
from hfa.scan.limits import MAX_DEPTH, Work
from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles import VALID_OPCODES, PickleReport, probe_pickle, scan_pickles
from hfa.scan.sniff import HEAD, KNOWN_DATA, kind, says_pickle, unsupported, unsupported_name
from hfa.scan.streams import CHUNK, as_binary

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MAX_NPY_HEADER = 1 << 20
SPOOL_MEMORY = 16 << 20
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a legacy torch.save file holds it


# --------------------------------------------------------------------------------------------
# Dispatch


class FileScan:
    """Findings of one scan, the file's work budget, and one helper per finding code."""

    def __init__(self, policy: ScanPolicy, work: Work) -> None:
        self.policy = policy
        self.work = work
        self.findings: list[Finding] = []
        self.storage_ids: list[Any] = []  # torch persistent ids seen by the last pickle scanned

    def add(self, severity: Severity, code: str, message: str, path: str, **detail: Any) -> None:
        self.findings.append(Finding(severity, code, message, path, detail))

    def malformed(self, message: str, path: str, **detail: Any) -> None:
        self.add(Severity.HIGH, "archive.malformed", f"cannot be proven safe: {message}", path, **detail)

    def encrypted(self, path: str, why: str = "", **detail: Any) -> None:
        """A member the scan cannot see into. No loader reads one without its password either (torch's
        miniz and Python's zipfile refuse it), so it does not fail a scan by default: medium."""
        self.add(
            Severity.MEDIUM,
            "archive.encrypted",
            f"encrypted member: cannot be scanned ({why}no loader reads it without the password; "
            "scan what it decrypts to)",
            path,
            **detail,
        )

    def unsafe_name(self, path: str, name: str) -> None:
        self.add(
            Severity.HIGH,
            "archive.unsafe-name",
            "a member named outside the archive's folder (../ or absolute): an extractor may write it there",
            path,
            name=name,
        )

    def unsupported_container(self, path: str, what: str, by_name: bool = False) -> None:
        """A container or compressed stream the scanner does not open: never a clean pass."""
        why = f"named .{what}, content the scanner cannot open" if by_name else what
        self.add(
            Severity.HIGH,
            "archive.unsupported-container",
            f"cannot be scanned: unsupported container ({why}): unpack it and scan what it holds",
            path,
            container=what,
        )

    def too_costly(self, path: str, message: str) -> None:
        if not self.work.reported:
            self.work.reported = True
            self.add(Severity.HIGH, "scan.too-costly", f"cannot be proven safe: {message} (a bomb?)", path)

    def pickles(self, fp: BinaryIO, display: str, **kw: Any) -> PickleReport:
        """scan_pickles on the file's budget; its findings are added here."""
        rep = scan_pickles(fp, display, self.policy, work=self.work, **kw)
        self.findings += rep.findings
        return rep

    def dispatch(
        self,
        fp: BinaryIO,
        display: str,
        start: int,
        end: int | None,
        depth: int,
        stream: bool,
        *,
        storage: bool = False,
        expect: bool = False,
    ) -> bool:
        return _dispatch(fp, display, self, start, end, depth, stream, storage=storage, expect=expect)


def scan_serialized(
    fp: BinaryIO, display: str, policy: ScanPolicy, *, size: int | None = None, expect: bool | None = None
) -> list[Finding] | None:
    """Scan a pickle, a legacy torch file, an archive, a compressed stream, an npy, or a joblib file.

    Reads ``fp`` from its current position (``size`` bytes, default to EOF). Returns the findings
    (empty for a clean file), or None when the content is none of the formats handled here and
    ``expect`` (default: whether the name in ``display`` says pickle) is false.
    """
    start = fp.tell()
    end = start + size if size is not None else fp.seek(0, io.SEEK_END)
    if expect is None:
        expect = says_pickle(display.rsplit("!", 1)[-1])
    out = FileScan(policy, Work(end - start))
    handled = _dispatch(fp, display, out, start, end, depth=0, stream=False, expect=expect)
    return out.findings if handled else None


def _dispatch(
    fp: BinaryIO,
    display: str,
    out: FileScan,
    start: int,
    end: int | None,
    depth: int,
    stream: bool,
    *,
    storage: bool = False,
    expect: bool = False,
) -> bool:
    """Scan [start, end) of ``fp`` by what its content is; False when it is nothing handled here.

    Content that starts with PROTO 2-9 is a pickle even if it breaks at once (fail closed), except
    in a torch tensor storage (``storage``): torch reads those as raw bytes, and random data starts
    like that often enough, so there only a pickle that simulates cleanly counts. With ``expect``
    (a loader unpickles this), content that is nothing handled here is a finding, never a pass.
    """
    if out.work.exhausted:
        return True  # the file is already a finding; nothing more is read
    fp.seek(start)
    if storage:  # a tensor storage: raw bytes to torch, a finding only if it really is a pickle
        head = fp.read(1)
        if head and head[0] in VALID_OPCODES and probe_pickle(fp, start, end, stream=stream):
            _scan_pickle_file(fp, display, out, start, end, stream, depth)
            return True
        return False
    head = fp.read(HEAD if end is None else max(0, min(HEAD, end - start)))
    found = kind(head) if head else None
    if found == "safetensors":
        return False  # a little-endian header length, then JSON (checked by hfa.scan.safetensors)
    proto = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 9  # 6-9: a future protocol, fails closed
    if proto and found != "tar":
        _scan_pickle_file(fp, display, out, start, end, stream, depth)
        return True
    if found == "unsupported":  # a container the scanner does not open (RAR, cab, ...): never a pass
        out.unsupported_container(display, unsupported(head) or "unknown")
        return True
    handler = HANDLERS.get(found) if found is not None else None
    if handler is not None:
        if stream:
            with _spooled(fp, start, end) as copy:
                handled = handler(copy, display, out, 0, _size_of(copy), depth, expect, found)
        else:
            assert end is not None
            handled = handler(fp, display, out, start, end, depth, expect, found)
        if found == "tar" and head[0] in VALID_OPCODES and (proto or probe_pickle(fp, start, end, stream=stream)):
            # A tar header whose first name is a pickle: torch.load reads the tar, pickle.load the pickle.
            out.add(Severity.MEDIUM, "archive.polyglot", "a tar archive that is also a pickle (both scanned)", display)
            _scan_pickle_file(fp, display, out, start, end, stream, depth)
        return handled
    expect = expect and found not in KNOWN_DATA  # GGUF under a .bin name: scanned only if it probes as a pickle
    if found == "npy":
        _scan_npy(fp, display, out, start, end, stream)
        return True
    named = unsupported_name(display.rsplit("!", 1)[-1]) if found is None else None
    if named is not None:  # x.rar, x.7z whose content is no 7z: a container the scanner cannot open
        out.unsupported_container(display, named, by_name=True)  # whatever else its bytes say
    if head and head[0] in VALID_OPCODES and (expect or probe_pickle(fp, start, end, stream=stream)):
        _scan_pickle_file(fp, display, out, start, end, stream, depth)  # expected: fails closed if broken
        return True
    if named is not None:
        return True
    if expect:
        what = "empty" if not head else "not a pickle, nor an archive or stream the scanner reads"
        out.add(
            Severity.HIGH,
            "pickle.unparseable",
            f"cannot be proven safe: named or placed as a pickle, but its content is {what}",
            display,
        )
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
        return as_binary(self.tmp)

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.tmp.close()


# --------------------------------------------------------------------------------------------
# Pickles, legacy torch files, compressed joblib files


def _scan_pickle_file(
    fp: BinaryIO, display: str, out: FileScan, start: int, end: int | None, stream: bool, depth: int
) -> None:
    first = out.pickles(fp, display, start=start, end=end, max_pickles=1, collect=True, stream=stream)
    out.storage_ids = first.storage_ids
    if not first.complete:
        return
    magic = first.stop_values[0] if first.stop_values else None
    if type(magic) is int and magic == LEGACY_MAGIC:
        from hfa.scan.legacytorch import scan_legacy_torch  # only for a legacy torch.save file

        scan_legacy_torch(fp, display, out, first.end, end, stream)
    else:
        out.pickles(fp, display, start=first.end, end=end, first_index=1, stream=stream, continuation=True)
    if not stream and end is not None and depth < MAX_DEPTH:
        scan_polyglot_zip(fp, display, out, start, end, depth)


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


def _scan_npy(fp: BinaryIO, display: str, out: FileScan, start: int, end: int | None, stream: bool) -> None:
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
        out.pickles(fp, display, start=data_at + header_len, end=end, stream=stream)
