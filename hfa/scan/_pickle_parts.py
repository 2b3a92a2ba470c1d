"""Parts of the static pickle scanner (:mod:`hfa.scan.pickle`): its limits, the values it keeps
on its simulated stack, its errors, the buffered reader it runs on, and the sink its findings
go to. Nothing here unpickles, imports or runs anything.
"""

from __future__ import annotations

from hfa.scan.denylist import classify_global
from hfa.scan.model import Finding, ScanPolicy, Severity

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# Limits. Values above them are skipped (payloads) or make the stream malformed (operands).
MAX_OPERAND = 1 << 20  # a STACK_GLOBAL operand or GLOBAL line longer than this is malformed
KEEP_STR = 256  # strings up to this many bytes are kept in memory; longer ones as offsets
KEEP_BYTES = 64  # bytes payloads kept (for recognised structures); longer ones are skipped
KEEP_ITEMS = 64  # items kept per tuple/list/dict; beyond that the container is opaque
KEEP_ITEMS_LARGE = 1 << 20  # the same, for the storage-keys pickle of a legacy torch file
MAX_LINE = 1 << 20  # text arguments that must be parsed (ints, keys, globals)
STACK_CAP = 1 << 16  # deeper stack segments are folded into a count of unknown items
MAX_MARKS = 1 << 16  # open MARKs (container nesting); picklers recurse, real pickles stay far below
MAX_MEMO = 1 << 23  # memo entries before the stream is declared too complex
KEEP_BUDGET = 1 << 18  # container items kept per stream; past it new containers are opaque
MAX_PIDS = 1 << 20  # persistent ids remembered (legacy torch storage layout)
MAX_CALL_OFFSETS = 8  # call sites listed per global in a finding
MAX_NESTING = 2  # nested pickles inside joblib object arrays
SHADOW_WINDOW = 1 << 20  # look-ahead for shadow scans of a stream that cannot seek back cheaply
CHUNK = 1 << 16
SHADOW_CONTEXT = "in joblib array data, run if the file is opened with pickle.load instead of joblib.load"

_SEV_CRIT = Severity.CRITICAL

# joblib's array wrapper, recognised structurally (see the docstring of hfa.scan.pickle).
_JOBLIB_WRAPPERS: frozenset[tuple[str, str]] = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
_ARRAY_CLASSES: frozenset[tuple[str, str]] = frozenset({("numpy", "ndarray"), ("numpy", "memmap")})
_DTYPE_CLASSES: frozenset[tuple[str, str]] = frozenset({("numpy", "dtype")})
_RECONSTRUCTORS: frozenset[tuple[str, str]] = frozenset({("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")})

# Every opcode of the pickle protocol (0-5): (code, name, argument format), as pickletools lists
# them. Written out so that scanning never imports pickletools (and with it pickle and re);
# tests/test_scan_pickle.py checks it against pickletools' own table.
OPCODES: tuple[tuple[str, str, str | None], ...] = (
    ("I", "INT", "decimalnl_short"),
    ("J", "BININT", "int4"),
    ("K", "BININT1", "uint1"),
    ("M", "BININT2", "uint2"),
    ("L", "LONG", "decimalnl_long"),
    ("\x8a", "LONG1", "long1"),
    ("\x8b", "LONG4", "long4"),
    ("S", "STRING", "stringnl"),
    ("T", "BINSTRING", "string4"),
    ("U", "SHORT_BINSTRING", "string1"),
    ("B", "BINBYTES", "bytes4"),
    ("C", "SHORT_BINBYTES", "bytes1"),
    ("\x8e", "BINBYTES8", "bytes8"),
    ("\x96", "BYTEARRAY8", "bytearray8"),
    ("\x97", "NEXT_BUFFER", None),
    ("\x98", "READONLY_BUFFER", None),
    ("N", "NONE", None),
    ("\x88", "NEWTRUE", None),
    ("\x89", "NEWFALSE", None),
    ("V", "UNICODE", "unicodestringnl"),
    ("\x8c", "SHORT_BINUNICODE", "unicodestring1"),
    ("X", "BINUNICODE", "unicodestring4"),
    ("\x8d", "BINUNICODE8", "unicodestring8"),
    ("F", "FLOAT", "floatnl"),
    ("G", "BINFLOAT", "float8"),
    ("]", "EMPTY_LIST", None),
    ("a", "APPEND", None),
    ("e", "APPENDS", None),
    ("l", "LIST", None),
    (")", "EMPTY_TUPLE", None),
    ("t", "TUPLE", None),
    ("\x85", "TUPLE1", None),
    ("\x86", "TUPLE2", None),
    ("\x87", "TUPLE3", None),
    ("}", "EMPTY_DICT", None),
    ("d", "DICT", None),
    ("s", "SETITEM", None),
    ("u", "SETITEMS", None),
    ("\x8f", "EMPTY_SET", None),
    ("\x90", "ADDITEMS", None),
    ("\x91", "FROZENSET", None),
    ("0", "POP", None),
    ("2", "DUP", None),
    ("(", "MARK", None),
    ("1", "POP_MARK", None),
    ("g", "GET", "decimalnl_short"),
    ("h", "BINGET", "uint1"),
    ("j", "LONG_BINGET", "uint4"),
    ("p", "PUT", "decimalnl_short"),
    ("q", "BINPUT", "uint1"),
    ("r", "LONG_BINPUT", "uint4"),
    ("\x94", "MEMOIZE", None),
    ("\x82", "EXT1", "uint1"),
    ("\x83", "EXT2", "uint2"),
    ("\x84", "EXT4", "int4"),
    ("c", "GLOBAL", "stringnl_noescape_pair"),
    ("\x93", "STACK_GLOBAL", None),
    ("R", "REDUCE", None),
    ("b", "BUILD", None),
    ("i", "INST", "stringnl_noescape_pair"),
    ("o", "OBJ", None),
    ("\x81", "NEWOBJ", None),
    ("\x92", "NEWOBJ_EX", None),
    ("\x80", "PROTO", "uint1"),
    (".", "STOP", None),
    ("\x95", "FRAME", "uint8"),
    ("P", "PERSID", "stringnl_noescape"),
    ("Q", "BINPERSID", None),
)
_VALID_OPCODES: frozenset[int] = frozenset(ord(code) for code, _, _ in OPCODES)


# --------------------------------------------------------------------------------------------
# Values on the simulated stack. Small literals are real Python values (int, float, str, bytes,
# tuple, None, bool); everything else is one of these.


class _Opaque:
    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


RESULT = _Opaque("result of a call")  # the object a REDUCE/NEWOBJ/BUILD/persistent load produced
BIG = _Opaque("large literal")  # bytes, ints, sets and containers too large to keep
LOST = _Opaque("unknown item")  # an item folded away from a very deep stack, or an unknown extension
BUFFER = _Opaque("out-of-band buffer")


class _Global:
    __slots__ = ("kind", "module", "name", "offset")

    def __init__(self, module: str, name: str, offset: int, kind: str) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.kind = kind  # "" | "joblib" | "dtype" | "array" | "reconstructor"

    def __repr__(self) -> str:
        return f"<global {self.module}.{self.name}>"


class _Obj:
    """An object the scanner needs to follow: a numpy dtype, or a joblib array wrapper."""

    __slots__ = ("args", "kind", "state")

    def __init__(self, kind: str, args: Any = None) -> None:
        self.kind = kind
        self.args = args
        self.state: Any = None


class _List:
    __slots__ = ("items", "overflow")

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items: list[Any] = items if items is not None else []
        self.overflow = False


class _Dict:
    __slots__ = ("overflow", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self.overflow = False


class _LazyStr:
    """A string too long to keep: where it is and how to decode it, read back only if needed."""

    __slots__ = ("kind", "offset", "size")

    def __init__(self, offset: int, size: int, kind: str) -> None:
        self.offset = offset
        self.size = size
        self.kind = kind  # "utf8" | "latin1" | "string" (quoted, escaped) | "rawunicode"


class _Run:
    """The bottom of a very deep stack segment: ``count`` items the scanner no longer holds."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


def _copy_segment(items: list[Any]) -> list[Any]:
    if items and isinstance(items[0], _Run):
        return [_Run(items[0].count), *items[1:]]
    return list(items)


class _Malformed(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class _Truncated(_Malformed):
    pass


class _TooCostly(_Malformed):
    """The file's work budget (:class:`hfa.scan.limits.Work`) is spent."""


class _Budget(Exception):
    """The probe has seen enough opcodes."""


# --------------------------------------------------------------------------------------------
# A buffered reader over [start, end) of a file that skips payloads by seeking.


class _Reader:
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
        """Make ``need`` bytes available at pos, or raise _Truncated."""
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
            raise _Truncated("the stream ends in the middle of an opcode (truncated before STOP)", here)

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
        except _Truncated:
            return None
        return self.buf[self.pos]

    def at_end(self) -> bool:
        return self.peek() is None

    def peek_bytes(self, n: int) -> bytes:
        """Up to n bytes from the current position, without consuming them."""
        try:  # noqa: SIM105 - contextlib is not imported by the scanner (see hfa.scan.model)
            self._fill(n)
        except _Truncated:  # a short fill keeps what it got
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
            raise _Truncated(f"a payload of {n} bytes runs past the end of the stream", self.tell())
        if not self.stream and self.end is not None:
            self.jump(target)
            return
        # A stream of unknown size: read and discard, so truncation is noticed.
        left = target - (self.base + len(self.buf))
        self.fp.seek(self.base + len(self.buf))
        while left > 0:
            got = self.fp.read(min(left, 1 << 20))
            if not got:
                raise _Truncated(f"a payload of {n} bytes runs past the end of the stream", self.tell())
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
            raise _Malformed(f"a text argument longer than {cap} bytes", start)
        length = len(self.buf) - self.pos
        self.jump(self.base + len(self.buf))
        while True:
            if length > cap:
                raise _Malformed(f"a text argument longer than {cap} bytes", start)
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
            raise _Truncated("could not read back a string operand", offset)
        return data


# --------------------------------------------------------------------------------------------
# Findings collected for one stream (a file or an archive member).


class _GlobalHit:
    """One global a stream imports, with where and how often."""

    __slots__ = (
        "called_at",
        "context",
        "count",
        "module",
        "name",
        "offset",
        "opcode",
        "pickle",
        "reason",
        "resolved",
        "severity",
    )

    def __init__(
        self,
        module: str,
        name: str,
        severity: Severity,
        reason: str,
        resolved: str | None,
        opcode: str,
        offset: int,
        pickle: int,
        context: str,
    ) -> None:
        self.module = module
        self.name = name
        self.severity = severity
        self.reason = reason
        self.resolved = resolved
        self.opcode = opcode
        self.offset = offset
        self.pickle = pickle
        self.context = context
        self.count = 1
        self.called_at: list[int] = []


class _Sink:
    def __init__(self, display: str, policy: ScanPolicy) -> None:
        self.display = display
        self.policy = policy
        self.globals: dict[tuple[str, str, str], _GlobalHit] = {}
        self.issues: list[Finding] = []
        self._issue_keys: set[tuple[str, str]] = set()
        self._verdicts: dict[tuple[str, str], tuple[Severity, str, str | None] | None] = {}

    def verdict(self, module: str, name: str) -> tuple[Severity, str, str | None] | None:
        key = (module, name)
        if key not in self._verdicts:
            self._verdicts[key] = classify_global(module, name, self.policy)
        return self._verdicts[key]

    def issue(self, severity: Severity, code: str, message: str, **detail: Any) -> None:
        key = (code, message)
        if key in self._issue_keys:
            return
        self._issue_keys.add(key)
        self.issues.append(Finding(severity, code, message, self.display, detail))

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for hit in self.globals.values():
            dangerous = hit.severity >= _SEV_CRIT
            code = "pickle.dangerous-global" if dangerous else "pickle.unknown-global"
            what = "a dangerous" if dangerous else "an unknown"
            message = f"imports {what} global {hit.module}.{hit.name}"
            if hit.called_at:
                message += " and calls it"
            if hit.context:
                message += f" ({hit.context})"
            detail: dict[str, Any] = {
                "module": hit.module,
                "name": hit.name,
                "opcode": hit.opcode,
                "offset": hit.offset,
                "pickle": hit.pickle,
                "count": hit.count,
                "reason": hit.reason,
            }
            if hit.called_at:
                detail["called_at"] = hit.called_at
            if hit.resolved:
                detail["resolves_to"] = hit.resolved
            if hit.context:
                detail["context"] = hit.context
            out.append(Finding(hit.severity, code, message, self.display, detail))
        return out + self.issues


# --------------------------------------------------------------------------------------------
# numpy dtypes rebuilt by a pickle (joblib array wrappers name one)


def _dtype_info(value: Any, depth: int = 0) -> tuple[int, bool] | None:
    """(itemsize, has objects) of a numpy dtype rebuilt by the pickle, or None if unknown."""
    if depth > 8 or not isinstance(value, _Obj) or value.kind != "dtype":
        return None
    args = value.args
    if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
        return None
    code = args[0]  # a kind letter and a size in bytes, e.g. "f8", "U12", "O8"
    if len(code) < 2 or code[0] not in "biufcmMOSUV" or not (code[1:].isascii() and code[1:].isdigit()):
        return None
    kind, n = code[0], int(code[1:])
    itemsize = n * 4 if kind == "U" else n
    hasobject = kind == "O"
    state = value.state
    if kind == "V" and isinstance(state, tuple) and len(state) >= 5:
        sub, fields = state[2], state[4]
        if isinstance(sub, tuple) and sub:
            info = _dtype_info(sub[0], depth + 1)
            if info is None:
                return None
            hasobject = hasobject or info[1]
        elif sub is not None:
            return None
        if isinstance(fields, _Dict):
            if fields.overflow:
                return None
            for _k, v in fields.pairs:
                if not isinstance(v, tuple) or not v:
                    return None
                info = _dtype_info(v[0], depth + 1)
                if info is None:
                    return None
                hasobject = hasobject or info[1]
        elif fields is not None:
            return None
    return itemsize, hasobject
