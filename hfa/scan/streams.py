"""File-like views for the archive scanner (:mod:`hfa.scan.archive`): a byte range of a file, and
decompressing streams that never hold it all.
"""

from __future__ import annotations

import io
import zlib

from hfa.scan.limits import Work

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

CHUNK = 1 << 16


class Window(io.RawIOBase):
    """[start, end) of ``fp`` as a file of its own (seekable, read-only)."""

    def __init__(self, fp: BinaryIO, start: int, end: int) -> None:
        super().__init__()
        self._fp = fp
        self._start = start
        self._size = end - start
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        left = self._size - self._pos
        if n is None or n < 0 or n > left:
            n = max(left, 0)
        if n == 0:
            return b""
        self._fp.seek(self._start + self._pos)
        data = self._fp.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class Decoded(io.RawIOBase):
    """A decompressed stream with forward seeks (decode and discard) and backward seeks (restart).

    ``make`` builds a fresh decoder (zlib, bz2, lzma or lz4 frame decompressor); ``reader``, when
    given instead, wraps the raw stream in a decompressing reader (zstandard's ``stream_reader``,
    whose one-shot decoder cannot bound its output). With ``multi``, a stream that ends is
    followed by the next one (concatenated gzip members, bz2 streams). Corrupt data and output
    beyond ``limit`` or the file's ``work`` budget end the stream early, as an EOF the scanner
    notices, and are kept in ``error`` so the caller can say why.
    """

    def __init__(
        self,
        raw: BinaryIO,
        make: Callable[[], Any] | None,
        limit: int,
        *,
        multi: bool = False,
        reader: Callable[[BinaryIO], Any] | None = None,
        work: Work | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._make: Any = make
        self._reader = reader
        self._multi = multi
        self.limit = limit
        self.work = work
        self.error: str | None = None
        self._restart()

    def _restart(self) -> None:
        self._raw.seek(0)
        self._dec: Any = self._make() if self._make is not None else None
        self._stream = self._reader(self._raw) if self._reader is not None else None
        self._input = b""
        self._pos = 0
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _produce(self, want: int) -> bytes:
        """Some more decoded bytes (at most about ``want``); b'' at the end."""
        if self._stream is not None and not self._done:
            try:
                got: bytes = self._stream.read(max(want, CHUNK))
            except Exception as exc:  # zstandard.ZstdError: the stream ends here
                self.error = f"corrupt compressed data ({exc})"
                got = b""
            if not got:
                self._done = True
            return got
        while not self._done:
            dec = self._dec
            if dec.eof:
                rest = (dec.unused_data or b"") + self._input
                if self._multi and (rest or self._peek_raw()):
                    self._dec = self._make()
                    self._input = rest
                    continue
                self._done = True
                break
            zlib_like = hasattr(dec, "unconsumed_tail")
            if zlib_like:
                data = dec.unconsumed_tail or self._input or self._raw.read(CHUNK)
            else:
                data = self._input or (self._raw.read(CHUNK) if dec.needs_input else b"")
            self._input = b""
            if not data and (zlib_like or dec.needs_input):
                self._done = True  # the input ends before the compressed stream does
                break
            try:
                out: bytes = dec.decompress(data, max(want, CHUNK))
            except Exception as exc:  # zlib.error, OSError/EOFError (bz2), lzma.LZMAError: the stream ends here
                self.error = f"corrupt compressed data ({exc})"
                self._done = True
                break
            if out:
                return out
        return b""

    def _peek_raw(self) -> bool:
        data = self._raw.read(CHUNK)
        self._input += data
        return bool(data)

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        n = min(n, max(0, self.limit - self._pos) + 1)
        parts = []
        got = 0
        while got < n:
            if not self._pending:
                self._pending = self._produce(min(n - got, CHUNK))
                if not self._pending:
                    break
            take = self._pending[: n - got]
            self._pending = self._pending[len(take) :]
            parts.append(take)
            got += len(take)
        data = b"".join(parts)
        if self._pos + len(data) > self.limit:
            data = data[: self.limit - self._pos]
            self.error = self.error or f"decompresses to more than {self.limit} bytes (a compression bomb?)"
            self._done = True
            self._pending = b""
        work = self.work
        if work is not None:
            work.decode_left -= len(data)
            if work.decode_left < 0:
                work.exhausted = True
                self.error = self.error or "decompresses to more than the scan's budget allows (a compression bomb?)"
                self._done = True
                self._pending = b""
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("seek from the end of a compressed stream")
        if offset < self._pos:
            self._restart()
        while self._pos < offset:
            if not self.read(min(offset - self._pos, 1 << 20)):
                break
        return self._pos


def zlib_maker(wbits: int) -> Callable[[], Any]:
    """A maker of raw/zlib/gzip decoders (``wbits`` as :func:`zlib.decompressobj` takes it), for :class:`Decoded`."""
    return lambda: zlib.decompressobj(wbits)


def as_binary(obj: object) -> BinaryIO:
    """``obj`` (a window on a file, a decoded stream) typed as the binary file it stands in for."""
    return obj  # type: ignore[return-value]
