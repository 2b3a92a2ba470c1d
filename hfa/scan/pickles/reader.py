"""A buffered reader over [start, end) of a file that skips payloads by seeking (or, on a stream of
unknown size, by reading and discarding): the simulated unpickler's only way to the bytes.

Frames (protocol 4+): the buffer never holds bytes past the current frame's end, so a read that
crosses it is seen where it happens, at no cost to reads inside the frame. CPython reads such a
read in two ways (Modules/_pickle.c, Python 3.8-3.14): from memory (``pickle.loads``) or through
a file's ``peek`` it reads straight on; from a file without ``peek``, or after a frame of 8 KiB or
more, ``load_frame`` has read the frame with ``read(n)``, and ``_Unpickler_ReadImpl`` drops what is
left of it and reads the whole argument afresh from the frame's end (except the payload of
BINBYTES and BYTEARRAY8, which ``_Unpickler_ReadInto`` reads straight on). The pure-Python
``_Unframer`` raises "pickle exhausted before end of frame". A pickle that STOPs inside a frame
read with ``read(n)`` (or by ``_Unframer``) leaves the file at the frame's end: the next
``pickle.load`` starts there, not after the STOP.

Which way a frame is read from a file with ``peek`` (``open(path, "rb")``) depends on how much of
the file's buffer is left when the frame starts: ``_pickle.c`` peeks (and reads straight on) when
the frame fits in what ``peek`` returns, else reads it with ``read(n)``. So in one pickle some
frames may be read one way and some the other (tests/test_scan_differential.py finds such files).
A :class:`Reader` therefore takes a ``plan``: for each frame that matters (a read crosses its end,
or a STOP comes before it), in the order met, whether it was read with ``read(n)``; frames past the
plan are read as ``default`` says (False: straight on). It records each crossing in ``overruns``
and counts the frames that mattered in ``choices``, so that the driver can judge every other plan.
"""

from __future__ import annotations

from hfa.scan.pickles.errors import Malformed, Truncated

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import BinaryIO

CHUNK = 1 << 16
MAX_NOTES = 16  # frame overruns and mismatches remembered per reader
MAX_OFFSET = (1 << 63) - 1  # no file reaches past this (a seek there overflows): what lies beyond is nothing


class Reader:
    __slots__ = (
        "base",
        "buf",
        "choices",
        "chunk",
        "default",
        "end",
        "fp",
        "frame_end",
        "mismatches",
        "overruns",
        "partial_lines",
        "plan",
        "pos",
        "short",
        "stash",
        "stream",
        "through",
    )

    def __init__(self, fp: BinaryIO, start: int, end: int | None, *, stream: bool, chunk: int = CHUNK) -> None:
        self.fp = fp
        self.chunk = chunk
        self.base = start  # file offset of buf[0]
        self.buf = b""
        self.pos = 0
        self.end = end  # absolute end, or None when unknown (a decompressing stream)
        self.stream = stream  # skip by reading (no reliable size), not by seeking
        self.frame_end: int | None = None  # absolute end of the current frame; the buffer stops there
        self.stash: tuple[int, bytes] | None = None  # bytes read past a frame's end, kept for after it
        self.plan: tuple[bool, ...] = ()  # per frame that matters: read with read(n)? (see the module docstring)
        self.default = False  # the same, for frames past the plan
        self.choices = 0  # frames that mattered so far
        self.through = False  # a BINBYTES payload is being read: straight on, however the frame was read
        self.partial_lines = False  # the range ends where the stream does: a line cut by it is read (line_or_rest)
        self.overruns: list[tuple[int, int]] = []  # (offset of the read, frame end) of reads that cross
        self.mismatches: list[tuple[int, str]] = []  # (offset, what) of frames that disagree with the stream
        self.short: tuple[int, int] | None = None  # (offset, declared size) of the first frame past the end

    def tell(self) -> int:
        return self.base + self.pos

    def jump(self, offset: int) -> None:
        self.base = offset
        self.buf = b""
        self.pos = 0

    def _fill(self, need: int, line: bool = False) -> None:
        """Make ``need`` bytes available at pos, or raise Truncated. ``line``: a line is being read, ``need``
        is one byte more than the buffer holds (after a frame's rest is dropped, one byte)."""
        rest = self.buf[self.pos :]
        here = self.base + self.pos
        fe = self.frame_end
        if fe is not None and here + need > fe:  # an opcode's argument that crosses (or starts at) the frame's end
            self.crossed(here)
            if not self.through and self.dropping():
                here, rest = fe, b""
                if line:  # _pickle.c reads the whole line afresh from the frame's end
                    need = 1
            self.frame_end = fe = None
        want = max(need - len(rest), self.chunk)
        if fe is not None:  # fill only up to the frame's end
            want = min(want, fe - here - len(rest))
        if self.end is not None:
            want = min(want, self.end - here - len(rest))
        data = b""
        if want > 0:
            at = here + len(rest)
            stash = self.stash
            if stash is not None and stash[0] <= at < stash[0] + len(stash[1]):
                data = stash[1][at - stash[0] : at - stash[0] + want]
                if len(data) < want:  # the stash ends first (it was cut at an earlier frame's end): read on
                    self.fp.seek(at + len(data))
                    data += self.fp.read(want - len(data))
            elif at < MAX_OFFSET:
                self.stash = None
                self.fp.seek(at)
                data = self.fp.read(want)
        self.buf = rest + data
        self.base = here
        self.pos = 0
        if len(self.buf) < need:
            raise Truncated("the stream ends in the middle of an opcode (truncated before STOP)", here)

    def dropping(self) -> bool:
        """Whether the frame that matters now was read with ``read(n)``: the plan's next decision."""
        i = self.choices
        self.choices = i + 1
        return self.plan[i] if i < len(self.plan) else self.default

    def stopped(self, at: int) -> None:
        """A STOP at ``at``: if it comes before the current frame's end, a reader that read the frame with
        ``read(n)`` starts the next pickle at the frame's end (``_Unframer`` has read the whole frame)."""
        fe = self.frame_end
        if fe is None or self.base + self.pos >= fe:
            return
        if len(self.mismatches) < MAX_NOTES:
            self.mismatches.append((at, "the pickle stops before its frame ends"))
        if self.dropping():
            self.jump(fe)
        self.frame_end = None

    def crossed(self, here: int) -> None:
        """A read from ``here`` runs past the current frame's end."""
        if len(self.overruns) < MAX_NOTES:
            self.overruns.append((here, self.frame_end if self.frame_end is not None else here))

    def frame(self, n: int, at: int) -> None:
        """FRAME n: the next n bytes are a frame (as CPython's ``load_frame`` reads it)."""
        here = self.tell()
        fe = self.frame_end
        if fe is not None and here < fe:
            # _Unframer: "beginning of a new frame before end of current frame"; _pickle.c reads on.
            if len(self.mismatches) < MAX_NOTES:
                self.mismatches.append((at, "a FRAME starts before the current frame ends"))
            if here + n <= fe:
                return  # _pickle.c: the new frame is already buffered; its buffer still ends at fe
            self.crossed(here)
            if self.dropping():
                self.jump(fe)
                here = fe
            self.frame_end = None
        if self.end is not None and here + n > self.end:
            # _pickle.c refuses it ("pickle data was truncated") before running anything in it; the
            # pure-Python _Unframer (pickle._Unpickler, which joblib's and dill's unpicklers subclass)
            # reads what there is and runs it. So the rest of the stream is read and judged (as no frame:
            # an opcode cut short at the end is a truncation, not a crossing).
            if self.short is None:
                self.short = (at, n)
            self.frame_end = None
            return
        end = here + n
        cut = end - self.base
        if len(self.buf) > cut:  # keep what lies past the frame for later; the buffer stops at its end
            self.stash = (self.base, self.buf)
            self.buf = self.buf[self.pos : cut]
            self.base = here
            self.pos = 0
        self.frame_end = end

    def opcode(self) -> int:
        """The byte of the next opcode (where a frame may end: it is then over)."""
        if self.frame_end is not None and self.base + self.pos >= self.frame_end:
            self.frame_end = None
        return self.byte()

    def byte(self) -> int:
        p = self.pos
        if p >= len(self.buf):
            self._fill(1)
            p = 0
        self.pos = p + 1
        return self.buf[p]

    def peek(self) -> int | None:
        if self.frame_end is not None and self.base + self.pos >= self.frame_end:
            self.frame_end = None  # a peek between pickles or opcodes
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
        if self.frame_end is not None and self.base + self.pos >= self.frame_end:
            self.frame_end = None
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

    def read_through(self, n: int) -> bytes:
        """A BINBYTES payload: _pickle.c reads it straight on across a frame's end, even from a file."""
        self.through = True
        try:
            return self.read(n)
        finally:
            self.through = False

    def skip(self, n: int, through: bool = False) -> None:
        p = self.pos + n
        if p <= len(self.buf):
            self.pos = p
            return
        target = self.base + p
        fe = self.frame_end
        if fe is not None and target > fe:
            self.crossed(self.base + self.pos)
            if not through and self.dropping():
                target = fe + n
            self.frame_end = None
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
            self._fill(have + 1, line=True)
        # Too long to keep: scan for the newline chunk by chunk.
        if self.frame_end is not None and self.base + len(self.buf) == self.frame_end:
            self.crossed(start)
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

    def line_or_rest(self, keep: int) -> tuple[bytes, bool]:
        """The next line without its newline, and True; or, where the stream ends before a newline outside a
        frame, what is left of it, and False: the pure-Python unpickler's ``readline`` returns that as a line
        (and ``[:-1]`` cuts its last byte), where ``_pickle.c`` and ``_Unframer`` within a frame fail."""
        outside = self.partial_lines and (self.frame_end is None or self.tell() >= self.frame_end)
        try:
            line = self.readline(keep, keep)
        except Truncated:
            if not outside:
                raise
            rest = self.buf[self.pos :]
            self.pos = len(self.buf)
            return rest, False
        assert isinstance(line, bytes)
        return line, True

    def read_at(self, offset: int, size: int) -> bytes:
        """Read back bytes already passed (a lazy string); the reader's position is unchanged."""
        self.fp.seek(offset)
        data = self.fp.read(size)
        if len(data) != size:
            raise Truncated("could not read back a string operand", offset)
        return data
