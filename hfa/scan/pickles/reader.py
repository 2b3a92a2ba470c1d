"""A buffered reader over [start, end) of a file that skips payloads by seeking (or, on a stream of
unknown size, by reading and discarding): the simulated unpickler's only way to the bytes.
"""

from __future__ import annotations

from hfa.scan.pickles.errors import Malformed, Truncated

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import BinaryIO

CHUNK = 1 << 16


class Reader:
    __slots__ = ("base", "buf", "chunk", "end", "fp", "pos", "stream")

    def __init__(self, fp: BinaryIO, start: int, end: int | None, *, stream: bool, chunk: int = CHUNK) -> None:
        self.fp = fp
        self.chunk = chunk
        self.base = start  # file offset of buf[0]
        self.buf = b""
        self.pos = 0
        self.end = end  # absolute end, or None when unknown (a decompressing stream)
        self.stream = stream  # skip by reading (no reliable size), not by seeking

    def tell(self) -> int:
        return self.base + self.pos

    def jump(self, offset: int) -> None:
        self.base = offset
        self.buf = b""
        self.pos = 0

    def _fill(self, need: int) -> None:
        """Make ``need`` bytes available at pos, or raise Truncated."""
        rest = self.buf[self.pos :]
        here = self.base + self.pos
        want = max(need - len(rest), self.chunk)
        if self.end is not None:
            want = min(want, self.end - here - len(rest))
        data = b""
        if want > 0:
            self.fp.seek(here + len(rest))
            data = self.fp.read(want)
        self.buf = rest + data
        self.base = here
        self.pos = 0
        if len(self.buf) < need:
            raise Truncated("the stream ends in the middle of an opcode (truncated before STOP)", here)

    def byte(self) -> int:
        p = self.pos
        if p >= len(self.buf):
            self._fill(1)
            p = 0
        self.pos = p + 1
        return self.buf[p]

    def peek(self) -> int | None:
        try:
            if self.pos >= len(self.buf):
                self._fill(1)
        except Truncated:
            return None
        return self.buf[self.pos]

    def at_end(self) -> bool:
        return self.peek() is None

    def peek_bytes(self, n: int) -> bytes:
        """Up to n bytes from the current position, without consuming them."""
        try:  # noqa: SIM105 - contextlib is not imported by the scanner (see hfa.scan.model)
            self._fill(n)
        except Truncated:  # a short fill keeps what it got
            pass
        return self.buf[self.pos : self.pos + n]

    def read(self, n: int) -> bytes:
        p = self.pos
        q = p + n
        if q > len(self.buf):
            self._fill(n)
            p, q = 0, n
        self.pos = q
        return self.buf[p:q]

    def skip(self, n: int) -> None:
        p = self.pos + n
        if p <= len(self.buf):
            self.pos = p
            return
        target = self.base + p
        if self.end is not None and target > self.end:
            raise Truncated(f"a payload of {n} bytes runs past the end of the stream", self.tell())
        if not self.stream and self.end is not None:
            self.jump(target)
            return
        # A stream of unknown size: read and discard, so truncation is noticed.
        left = target - (self.base + len(self.buf))
        self.fp.seek(self.base + len(self.buf))
        while left > 0:
            got = self.fp.read(min(left, 1 << 20))
            if not got:
                raise Truncated(f"a payload of {n} bytes runs past the end of the stream", self.tell())
            left -= len(got)
        self.jump(target)

    def readline(self, keep: int, cap: int) -> bytes | tuple[int, int]:
        """The next line without its newline; a (offset, length) pair if longer than ``keep``."""
        start = self.tell()
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos : i]
                self.pos = i + 1
                return line
            have = len(self.buf) - self.pos
            if have > keep:
                break
            self._fill(have + 1)
        # Too long to keep: scan for the newline chunk by chunk.
        if keep >= cap:
            raise Malformed(f"a text argument longer than {cap} bytes", start)
        length = len(self.buf) - self.pos
        self.jump(self.base + len(self.buf))
        while True:
            if length > cap:
                raise Malformed(f"a text argument longer than {cap} bytes", start)
            self._fill(1)
            i = self.buf.find(b"\n")
            if i >= 0:
                self.pos = i + 1
                return (start, length + i)
            length += len(self.buf)
            self.jump(self.base + len(self.buf))

    def read_at(self, offset: int, size: int) -> bytes:
        """Read back bytes already passed (a lazy string); the reader's position is unchanged."""
        self.fp.seek(offset)
        data = self.fp.read(size)
        if len(data) != size:
            raise Truncated("could not read back a string operand", offset)
        return data
