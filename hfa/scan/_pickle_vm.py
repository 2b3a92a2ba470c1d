"""The simulated unpickler's machinery: its state, operand decoding, stack helpers, and what
happens when a pickle imports a global or calls something. The opcode handlers that drive it
are in :mod:`hfa.scan._pickle_ops`.
"""

from __future__ import annotations

import codecs
import struct
import sys

from hfa.scan._pickle_parts import (
    _ARRAY_CLASSES,
    _DTYPE_CLASSES,
    _JOBLIB_WRAPPERS,
    _RECONSTRUCTORS,
    BIG,
    KEEP_BUDGET,
    KEEP_BYTES,
    KEEP_ITEMS,
    KEEP_STR,
    LOST,
    MAX_CALL_OFFSETS,
    MAX_OPERAND,
    RESULT,
    SHADOW_CONTEXT,
    STACK_CAP,
    _Global,
    _GlobalHit,
    _LazyStr,
    _Malformed,
    _Obj,
    _Opaque,
    _Reader,
    _Run,
    _Sink,
    _TooCostly,
)
from hfa.scan.denylist import _importable
from hfa.scan.limits import Work
from hfa.scan.model import Severity

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any

_SEV_HIGH = Severity.HIGH

# A value pushed and popped at once does nothing: runs of such pairs (an opcode bomb's padding)
# are skipped at the speed of a byte comparison instead of two handler calls per pair. They are
# still charged to the file's budget, 1 opcode per 16 bytes: no real pickle holds such runs.
NOOP_PAIRS = frozenset({b"N0", b"\x880", b"\x890", b")0", b"]0", b"}0", b"\x8f0", b"(1"})
_noop_run: Any = None


class _Machine:
    """State and helpers of a simulated unpickler; :class:`~hfa.scan._pickle_ops._Sim` adds the opcodes."""

    def __init__(
        self,
        reader: _Reader,
        sink: _Sink | None,
        *,
        mode: str = "scan",  # "scan" | "probe" | "shadow" | "plain"
        budget: int = 0,
        depth: int = 0,
        collect: bool = False,
        keep_items: int = KEEP_ITEMS,
        work: Work | None = None,
    ) -> None:
        self.r = reader
        self.work = work if work is not None else Work(None if reader.end is None else reader.end - reader.base)
        self.sink = sink
        self.mode = mode
        self.joblib = mode in ("scan",)  # joblib arrays are read inline only by joblib's own unpickler
        self.budget = budget
        self.depth = depth
        self.collect = collect
        self.keep_items = keep_items
        self.context = SHADOW_CONTEXT if mode == "shadow" else ""
        self.pickle_index = 0
        self.ops = 0
        self.ops_in_pickle = 0
        self.imports = 0
        self.soft: list[tuple[str, int]] = []
        self.stop_values: list[Any] = []
        self.pids: list[Any] = []
        self.stack: list[Any] = []
        self.meta: list[list[Any]] = []
        self.memo: list[Any] = []  # keys 0..n-1, as picklers write them
        self.memo_far: dict[int, Any] = {}  # any other key (always >= len(memo))
        self.kept = KEEP_BUDGET
        self.proto = 0
        self.frame_end: int | None = None

    # -- argument readers (formats from pickletools' table) -------------------------------------

    def _a_uint1(self) -> int:
        return self.r.byte()

    def _a_uint2(self) -> int:
        v: int = struct.unpack("<H", self.r.read(2))[0]
        return v

    def _a_int4(self) -> int:
        v: int = struct.unpack("<i", self.r.read(4))[0]
        return v

    def _a_uint4(self) -> int:
        v: int = struct.unpack("<I", self.r.read(4))[0]
        return v

    def _a_uint8(self) -> int:
        v: int = struct.unpack("<Q", self.r.read(8))[0]
        return v

    def _a_float8(self) -> float:
        v: float = struct.unpack(">d", self.r.read(8))[0]
        return v

    def _long(self, n: int) -> Any:
        if n < 0:
            raise _Malformed("LONG4 with a negative byte count", self.r.tell())
        if n > KEEP_BYTES * 16:
            self.r.skip(n)
            return BIG
        return int.from_bytes(self.r.read(n), "little", signed=True)

    def _a_long1(self) -> Any:
        return self._long(self.r.byte())

    def _a_long4(self) -> Any:
        return self._long(self._a_int4())

    def _a_line(self) -> bytes | tuple[int, int]:
        return self.r.readline(4096, 1 << 62)

    def _a_pair(self) -> tuple[Any, Any]:
        at = self.r.tell()
        lines = []
        for _ in range(2):
            line = self.r.readline(MAX_OPERAND, MAX_OPERAND)
            assert isinstance(line, bytes)
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                raise _Malformed("a GLOBAL/INST name that is not UTF-8", at) from None
        return lines[0], lines[1]

    def _payload(self, n: int, keep: int, kind: str) -> Any:
        """n payload bytes: kept (bytes) if small, else skipped and remembered as a lazy string / BIG."""
        if n < 0:
            raise _Malformed("a negative length", self.r.tell())
        if n > sys.maxsize:
            raise _Malformed(f"a length of {n} bytes exceeds what any unpickler accepts", self.r.tell())
        if n <= keep:
            return self.r.read(n)
        at = self.r.tell()
        self.r.skip(n)
        return _LazyStr(at, n, kind) if kind else BIG

    def _a_string1(self) -> Any:
        return self._latin1(self._payload(self.r.byte(), KEEP_STR, "latin1"))

    def _a_string4(self) -> Any:
        return self._latin1(self._payload(self._a_int4(), KEEP_STR, "latin1"))

    @staticmethod
    def _latin1(v: Any) -> Any:
        # STRING opcodes give str or bytes depending on the loader's encoding; as operands
        # judge them by the most permissive decoding.
        return v.decode("latin-1") if isinstance(v, bytes) else v

    def _a_stringnl(self) -> Any:
        at = self.r.tell()
        line = self.r.readline(KEEP_STR + 2, 1 << 62)
        if isinstance(line, tuple):
            return _LazyStr(line[0], line[1], "string")
        return self._decode_string(line, at)

    @staticmethod
    def _decode_string(line: bytes, at: int) -> str:
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            try:
                return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
            except ValueError:
                raise _Malformed("a STRING argument with a bad escape", at) from None
        raise _Malformed("the STRING opcode argument must be quoted", at)

    def _a_bytes1(self) -> Any:
        return self._payload(self.r.byte(), KEEP_BYTES, "")

    def _a_bytes4(self) -> Any:
        return self._payload(self._a_uint4(), KEEP_BYTES, "")

    def _a_bytes8(self) -> Any:
        return self._payload(self._a_uint8(), KEEP_BYTES, "")

    def _utf8(self, v: Any, at: int) -> Any:
        if isinstance(v, bytes):
            try:
                return v.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise _Malformed("a unicode string that is not UTF-8", at) from None
        return v

    def _a_unicode1(self) -> Any:
        at = self.r.tell()
        return self._utf8(self._payload(self.r.byte(), KEEP_STR, "utf8"), at)

    def _a_unicode4(self) -> Any:
        at = self.r.tell()
        return self._utf8(self._payload(self._a_uint4(), KEEP_STR, "utf8"), at)

    def _a_unicode8(self) -> Any:
        at = self.r.tell()
        return self._utf8(self._payload(self._a_uint8(), KEEP_STR, "utf8"), at)

    def _a_unicodenl(self) -> Any:
        at = self.r.tell()
        line = self.r.readline(KEEP_STR, 1 << 62)
        if isinstance(line, tuple):
            return _LazyStr(line[0], line[1], "rawunicode")
        try:
            return line.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            raise _Malformed("a UNICODE argument that does not decode", at) from None

    def _materialise(self, v: Any, at: int) -> str:
        """A STACK_GLOBAL operand as a str, or malformed."""
        if isinstance(v, str):
            return v
        if isinstance(v, _LazyStr):
            if v.size > MAX_OPERAND:
                raise _Malformed(f"a STACK_GLOBAL operand of {v.size} bytes is too long to analyse", at)
            data = self.r.read_at(v.offset, v.size)
            if v.kind == "utf8":
                try:
                    return data.decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise _Malformed("a unicode string that is not UTF-8", at) from None
            if v.kind == "latin1":
                return data.decode("latin-1")
            if v.kind == "string":
                return self._decode_string(data, at)
            return data.decode("raw-unicode-escape", "replace")
        what = "an item the scanner could not follow" if v is LOST else type(v).__name__
        if isinstance(v, _Opaque):
            what = v.what
        raise _Malformed(f"STACK_GLOBAL operand is not a string ({what})", at)

    # -- stack helpers ---------------------------------------------------------------------------

    def _push(self, v: Any) -> None:
        st = self.stack
        st.append(v)
        if len(st) > STACK_CAP:
            half = STACK_CAP // 2
            head = st[:half]
            count = sum(x.count if isinstance(x, _Run) else 1 for x in head)
            del st[:half]
            st.insert(0, _Run(count))

    def _pop(self, at: int) -> Any:
        st = self.stack
        if not st:
            raise _Malformed("stack underflow", at)
        v = st.pop()
        if st or v.__class__ is not _Run:
            return v
        if v.count > 1:
            v.count -= 1
            st.append(v)
        return LOST

    def _top(self, at: int) -> Any:
        st = self.stack
        if not st:
            raise _Malformed("stack underflow", at)
        v = st[-1]
        return LOST if v.__class__ is _Run else v

    def _pop_mark(self, at: int) -> list[Any]:
        if not self.meta:
            raise _Malformed("an opcode needs a MARK that is not there (mark stack underflow)", at)
        items = self.stack
        self.stack = self.meta.pop()
        return items

    @staticmethod
    def _true_len(items: list[Any]) -> int:
        if items and items[0].__class__ is _Run:
            return len(items) - 1 + int(items[0].count)
        return len(items)

    def _items(self, items: list[Any]) -> list[Any] | None:
        """The items as values, or None if too many to keep (or the stream's budget is spent)."""
        n = len(items)
        if n > self.keep_items or self.kept < n or (items and items[0].__class__ is _Run):
            return None
        self.kept -= n
        return items

    # -- imports and calls -----------------------------------------------------------------------

    def _import(self, module: str, name: str, at: int, opname: str) -> _Global:
        if self.mode in ("probe", "shadow") and not (_importable(module) and _importable(name)):
            # A loader would fail to import this; in a probe or a shadow scan that means "not a pickle".
            raise _Malformed("not a name an unpickler could import", at)
        self.imports += 1
        key = (module, name)
        kind = ""
        if key in _JOBLIB_WRAPPERS:
            kind = "joblib"
        elif key in _DTYPE_CLASSES:
            kind = "dtype"
        elif key in _ARRAY_CLASSES:
            kind = "array"
        elif key in _RECONSTRUCTORS:
            kind = "reconstructor"
        g = _Global(module, name, at, kind)
        sink = self.sink
        if sink is None or kind == "joblib":
            return g
        verdict = sink.verdict(module, name)
        if verdict is None:
            return g
        hkey = (module, name, self.context)
        hit = sink.globals.get(hkey)
        if hit is None:
            sink.globals[hkey] = _GlobalHit(
                module, name, verdict[0], verdict[1], verdict[2], opname, at, self.pickle_index, self.context
            )
        else:
            hit.count += 1
        return g

    def _call(self, func: Any, args: Any, at: int, opname: str) -> Any:
        if isinstance(func, _Global):
            if self.sink is not None and func.kind != "joblib":
                hit = self.sink.globals.get((func.module, func.name, self.context))
                if hit is not None and len(hit.called_at) < MAX_CALL_OFFSETS:
                    hit.called_at.append(at)
            if func.kind == "dtype" and isinstance(args, tuple):
                return _Obj("dtype", args)
            if func.kind == "joblib":
                # Any instance counts: joblib reads array bytes after BUILD on whatever instance.
                return _Obj("joblib")
            if (
                func.kind == "reconstructor"
                and isinstance(args, tuple)
                and len(args) == 3
                and isinstance(args[0], _Global)
                and args[0].kind == "joblib"
            ):
                return _Obj("joblib")
            return RESULT
        if self.sink is not None and self.mode != "shadow":
            what = func.what if isinstance(func, _Opaque) else type(func).__name__.strip("_").lower()
            self.sink.issue(
                _SEV_HIGH,
                "pickle.indirect-call",
                f"{opname} calls an object that is not an imported global ({what})",
                offset=at,
                opcode=opname,
                context=self.context or None,
            )
        return RESULT

    def _mutation(self, target: Any, at: int, opname: str) -> None:
        if isinstance(target, _Global) and self.sink is not None and self.mode != "shadow":
            self.sink.issue(
                _SEV_HIGH,
                "pickle.global-mutation",
                f"{opname} modifies the imported global {target.module}.{target.name} in place",
                module=target.module,
                name=target.name,
                offset=at,
                opcode=opname,
            )

    # -- runs of no-ops -------------------------------------------------------------------------

    def _skip_noops(self) -> None:
        """Move the reader past the run of no-op pairs at its position (within its buffer)."""
        global _noop_run
        r = self.r
        buf, pos = r.buf, r.pos
        pair = buf[pos : pos + 2]
        lo = 1  # the run holds at least lo copies of pair and fewer than hi
        while buf.startswith(pair * (lo * 2), pos):
            lo *= 2
        hi = lo * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if buf.startswith(pair * mid, pos):
                lo = mid
            else:
                hi = mid
        end = pos + 2 * lo
        if buf[end : end + 2] in NOOP_PAIRS:  # pairs of several kinds: one regular-expression match
            if _noop_run is None:
                import re  # only for files that hold mixed runs: never a real pickle

                _noop_run = re.compile(rb"(?:[N\x88\x89)\]}\x8f]0|\(1)+")
            match = _noop_run.match(buf, end)
            if match is not None:
                end = match.end()
        r.pos = end
        work = self.work
        work.ops_left -= (end - pos) >> 4
        if work.ops_left < 0 and not self.budget:
            work.exhausted = True
            raise _TooCostly("more opcodes than the scan's budget (an opcode bomb?)", r.base + end)
