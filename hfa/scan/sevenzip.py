"""7z archives, opened with py7zr (the ``scan`` extra), bounded like the zip and tar paths.

Nothing is extracted to disk: py7zr decodes each member into a writer of ours, which spools it
(in memory up to :data:`hfa.scan.archive.SPOOL_MEMORY`, then in an anonymous temporary file) and
charges every byte to the file's work budget; when py7zr has finished a member, it goes back
through the dispatcher like a zip or tar member, and is dropped. Before any byte is decoded:

* more members than :data:`~hfa.scan.limits.MAX_MEMBERS`, or than the work budget pays for, is
  ``scan.too-costly``; members that declare more bytes in all than the budget allows (a bomb: the
  budget is 256 bytes per byte of the file) is ``archive.too-large``; each member is decoded to
  no more than its declared size;
* a member named outside the archive's folder (``../x``, ``/etc/x``, ``C:\\x``) is
  ``archive.unsafe-name`` (an extractor writes it there), and is scanned all the same;
* an encrypted member (AES, or an encrypted header) is ``archive.encrypted``: the scan cannot
  see inside it, and neither can a loader without its password.

Whatever py7zr cannot read (a corrupt header or stream, a CRC error, a method it has no decoder
for) is a finding, and so is a 7z file when py7zr is not installed: never a clean pass.

The members are handed to py7zr's worker directly rather than through ``SevenZipFile.extract``:
that resolves every name against the working directory (it is built to write files) and refuses
the whole archive at the first ``../`` name, where the scan wants the bytes and every name.
"""

from __future__ import annotations

from hfa.scan.limits import MAX_DEPTH, MAX_MEMBERS, MEMBER_COST
from hfa.scan.model import Severity
from hfa.scan.sniff import says_pickle, unsafe_name
from hfa.scan.streams import Window, as_binary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from hfa.scan.archive import FileScan

SPOOL_MEMORY = 16 << 20
AES = b"\x06\xf1\x07\x01"  # 7zAES, the one encryption method of the format
MAX_HEADER = 64 << 20  # a 7z header (its file list) larger than this is not read


class _Stop(Exception):
    """The work budget ran out while py7zr was decoding (raised through py7zr, caught here)."""


class _Failed(Exception):
    """The scan of a finished member raised: not py7zr's error, so it is not reported as one."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def scan_7z(fp: BinaryIO, display: str, out: FileScan, start: int, end: int, depth: int, expect: bool) -> bool:
    if depth > MAX_DEPTH:
        out.add(Severity.HIGH, "archive.too-deep", f"containers nested more than {MAX_DEPTH} deep", display)
        return True
    try:
        import py7zr
        import py7zr.io
    except ImportError:
        out.add(
            Severity.HIGH,
            "archive.unscannable",
            "cannot be scanned: py7zr not installed (a 7z archive can hold pickles): pip install 'hfa[scan]'",
            display,
            kind="7z",
            package="py7zr",
        )
        return True
    fp.seek(start + 20)
    declared = int.from_bytes(fp.read(8), "little")  # the start header's next-header size
    if declared > MAX_HEADER:
        out.malformed(f"a 7z header of {declared} bytes", display)
        return True
    view: Any = Window(fp, start, end)
    try:
        archive = py7zr.SevenZipFile(view, mode="r")
    except py7zr.exceptions.PasswordRequired:
        out.encrypted(display, "its file list is encrypted; ")
        return True
    except Exception as exc:  # anything py7zr raises on hostile bytes: the archive cannot be read
        out.malformed(f"a 7z archive that cannot be read ({_why(exc)})", display)
        return True
    with archive:
        _scan_members(archive, py7zr.io, display, out, depth)
    return True


def _scan_members(archive: Any, p7io: Any, display: str, out: FileScan, depth: int) -> None:
    files = list(archive.files)
    if len(files) > MAX_MEMBERS or not out.work.charge(MEMBER_COST * len(files)):
        out.too_costly(display, f"{len(files)} members in a 7z archive")
        return
    total = sum(f.uncompressed or 0 for f in files if not f.emptystream)
    if total > out.work.decode_left:
        out.add(
            Severity.HIGH,
            "archive.too-large",
            f"cannot be proven safe: 7z members that declare {total} bytes, more than the scan's budget "
            f"for this file ({max(out.work.decode_left, 0)}; a compression bomb?)",
            display,
            declared=total,
        )
        return
    wanted_ids: dict[int, tuple[str, bool]] = {}
    for f in files:
        name = f.filename
        path = f"{display}!{name}"
        if unsafe_name(name):
            out.unsafe_name(path, name)
        if f.is_directory:
            continue
        wanted = says_pickle(name)
        coders = f.folder.coders if f.folder is not None else []
        if any(c.get("method") == AES for c in coders):
            out.encrypted(path, "AES; ")
            continue
        if f.is_symlink:
            if wanted:
                out.add(Severity.HIGH, "archive.link-member",
                        "cannot be proven safe: a link; a loader that extracts it reads the file it names", path)  # fmt: skip
            continue
        wanted_ids[f.id] = (path, wanted)
    if not wanted_ids:
        return
    factory = _Factory(out, depth)
    for f in files:
        if f.id in wanted_ids:
            factory.expected[f.id] = wanted_ids[f.id]
            archive.worker.register_filelike(f.id, p7io.MemIO(str(f.id), factory))
    try:
        archive.worker.extract(archive.fp, None, parallel=False)
    except _Failed as exc:
        raise exc.error from None
    except _Stop:
        out.too_costly(display, "7z members decompress to more than the scan's budget allows")
    except Exception as exc:  # py7zr's errors on hostile or unsupported data
        unread = [path for fid, (path, _) in factory.expected.items() if fid not in factory.done]
        what = _why(exc)
        code = "archive.unsupported" if "nsupported" in type(exc).__name__ else "archive.malformed"
        message = f"cannot be proven safe: 7z data that cannot be decoded ({what})"
        if code == "archive.malformed":
            out.malformed(f"7z data that cannot be decoded ({what})", display, unscanned=unread[:20])
        else:
            out.add(Severity.HIGH, code, message, display, unscanned=unread[:20])
    finally:
        for member in list(factory.live):  # a member py7zr gave up on midway: drop its spool
            member.tmp.close()


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Factory:
    """py7zr's writer factory (``py7zr.io.WriterFactory``): one spooling writer per member."""

    def __init__(self, out: FileScan, depth: int) -> None:
        self.out = out
        self.depth = depth
        self.expected: dict[int, tuple[str, bool]] = {}  # member id -> (display path, named as a pickle)
        self.done: set[int] = set()
        self.live: set[_Member] = set()  # spools not yet scanned and closed

    def create(self, filename: str) -> _Member:
        member = _Member(self, int(filename))
        self.live.add(member)
        return member


class _Member:
    """A py7zr writer (``py7zr.io.Py7zIO``): spools one member, scans it when py7zr closes it."""

    def __init__(self, factory: _Factory, fid: int) -> None:
        import tempfile  # only for a 7z member

        self.factory = factory
        self.fid = fid
        self.tmp: Any = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115  # closed in close()
        self.written = 0

    def write(self, data: bytes | bytearray) -> int:
        work = self.factory.out.work
        work.decode_left -= len(data)
        if work.decode_left < 0:
            work.exhausted = True
            raise _Stop
        self.written += len(data)
        return int(self.tmp.write(data))

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.tmp.tell())

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        factory = self.factory
        path, wanted = factory.expected[self.fid]
        factory.done.add(self.fid)
        factory.live.discard(self)
        try:
            factory.out.dispatch(as_binary(self.tmp), path, 0, self.written, factory.depth + 1, False, expect=wanted)
        except Exception as exc:  # our own error: re-raised as itself by scan_7z
            raise _Failed(exc) from exc
        finally:
            self.tmp.close()
