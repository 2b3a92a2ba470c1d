"""The opcode handlers of the simulated unpickler (names from :mod:`pickletools`), the run loop
that dispatches to them, and joblib's inline array data (skipped, nested-scanned or
shadow-scanned as described in :mod:`hfa.scan.pickle`).
"""

from __future__ import annotations

import copyreg
import io

from hfa.scan._pickle_parts import (
    _VALID_OPCODES,
    BIG,
    BUFFER,
    LOST,
    MAX_MARKS,
    MAX_MEMO,
    MAX_NESTING,
    MAX_PIDS,
    OPCODES,
    RESULT,
    SHADOW_CONTEXT,
    SHADOW_WINDOW,
    _Budget,
    _copy_segment,
    _Dict,
    _dtype_info,
    _Global,
    _List,
    _Malformed,
    _Obj,
    _Reader,
    _Run,
    _TooCostly,
    _Truncated,
)
from hfa.scan._pickle_vm import NOOP_PAIRS, _Machine
from hfa.scan.model import Severity

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any

_SEV_HIGH = Severity.HIGH


class _Sim(_Machine):
    """Runs the opcode stream of one or more pickles through a simulated unpickler."""

    # -- the loop ----------------------------------------------------------------------------------

    def run_pickle(self) -> Any:
        """Run one pickle to its STOP; return the value it stops with."""
        self.stack = []
        self.meta = []
        self.memo = []
        self.memo_far = {}
        self.proto = 0
        self.frame_end = None
        self.ops_in_pickle = 0
        table = _TABLE
        r = self.r
        budget = self.budget
        ops = start = self.ops
        work = self.work
        limit = start + (budget or max(work.ops_left, 0))
        try:
            while True:
                p = r.pos
                if p < len(r.buf):
                    code = r.buf[p]
                    r.pos = p + 1
                    at = r.base + p
                else:
                    at = r.base + p
                    try:
                        code = r.byte()
                    except _Truncated:
                        raise _Truncated("the stream ends before STOP (truncated pickle)", at) from None
                entry = table[code]
                if entry is None:
                    raise _Malformed(f"unknown opcode 0x{code:02x}", at)
                ops += 1
                if ops > limit:
                    if budget:
                        raise _Budget
                    work.exhausted = True
                    raise _TooCostly(f"more opcodes than the scan's budget of {limit - start} (an opcode bomb?)", at)
                arg_reader, handler = entry
                if handler(self, arg_reader(self) if arg_reader is not None else None, at):
                    return self.stop_values[-1] if self.stop_values else None
        finally:
            self.ops = ops
            self.ops_in_pickle = ops - start
            if not budget:
                work.ops_left -= ops - start

    # -- opcode handlers (names from pickletools) --------------------------------------------------

    def _op_PROTO(self, v: int, at: int) -> None:
        if v > 5:
            raise _Malformed(f"unsupported pickle protocol {v}", at)
        self.proto = v

    def _op_FRAME(self, n: int, at: int) -> None:
        here = self.r.tell()
        if self.r.end is not None and here + n > self.r.end:
            raise _Truncated(f"a frame of {n} bytes runs past the end of the stream", at)
        self.frame_end = here + n

    def _op_STOP(self, _: None, at: int) -> bool:
        v = self._pop(at)
        if self.collect:
            self.stop_values.append(v)
        else:
            self.stop_values[:] = [v]
        return True

    def _op_MARK(self, _: None, at: int) -> None:
        if len(self.meta) >= MAX_MARKS:
            raise _Malformed(f"more than {MAX_MARKS} nested MARKs: too deep to analyse", at)
        self.meta.append(self.stack)
        self.stack = []

    def _op_POP(self, _: None, at: int) -> None:
        if self.stack:
            self._pop(at)
        else:
            self._pop_mark(at)
        if self.r.buf[self.r.pos : self.r.pos + 2] in NOOP_PAIRS:
            self._skip_noops()

    def _op_POP_MARK(self, _: None, at: int) -> None:
        self._pop_mark(at)
        if self.r.buf[self.r.pos : self.r.pos + 2] in NOOP_PAIRS:
            self._skip_noops()

    def _op_DUP(self, _: None, at: int) -> None:
        self._push(self._top(at))

    # memo
    def _memo_put(self, key: int, at: int) -> None:
        value = self._top(at)
        memo = self.memo
        n = len(memo)
        if key == n:
            if self.memo_far:
                self.memo_far.pop(key, None)
            if n >= MAX_MEMO:
                raise _Malformed(f"more than {MAX_MEMO} memo entries: too complex to analyse", at)
            memo.append(value)
        elif 0 <= key < n:
            memo[key] = value
        elif key < 0:
            raise _Malformed("negative PUT argument", at)
        else:
            if len(self.memo_far) >= MAX_MEMO:
                raise _Malformed(f"more than {MAX_MEMO} memo entries: too complex to analyse", at)
            self.memo_far[key] = value

    def _memo_get(self, key: int, at: int) -> None:
        memo = self.memo
        if 0 <= key < len(memo):
            self._push(memo[key])
            return
        try:
            self._push(self.memo_far[key])
        except KeyError:
            raise _Malformed(f"memo key {key} is read before it is written", at) from None

    def _int_key(self, line: Any, at: int) -> int:
        if isinstance(line, tuple):
            raise _Malformed("a memo key argument that is far too long", at)
        try:
            return int(line)
        except ValueError:
            raise _Malformed("a memo key that is not an integer", at) from None

    def _op_PUT(self, line: Any, at: int) -> None:
        self._memo_put(self._int_key(line, at), at)

    def _op_BINPUT(self, key: int, at: int) -> None:
        self._memo_put(key, at)

    def _op_LONG_BINPUT(self, key: int, at: int) -> None:
        self._memo_put(key, at)

    def _op_MEMOIZE(self, _: None, at: int) -> None:
        self._memo_put(len(self.memo) + len(self.memo_far), at)

    def _op_GET(self, line: Any, at: int) -> None:
        self._memo_get(self._int_key(line, at), at)

    def _op_BINGET(self, key: int, at: int) -> None:
        self._memo_get(key, at)

    def _op_LONG_BINGET(self, key: int, at: int) -> None:
        self._memo_get(key, at)

    # literals
    def _op_NONE(self, _: None, at: int) -> None:
        self._push(None)

    def _op_NEWTRUE(self, _: None, at: int) -> None:
        self._push(True)

    def _op_NEWFALSE(self, _: None, at: int) -> None:
        self._push(False)

    def _soft(self, reason: str, at: int) -> None:
        if len(self.soft) < 16:
            self.soft.append((reason, at))

    def _op_INT(self, line: Any, at: int) -> None:
        if line == b"00" or line == b"01":
            self._push(line == b"01")
            return
        try:
            self._push(int(line, 0) if isinstance(line, bytes) else BIG)
        except ValueError:
            self._soft("an INT argument that is not a Python integer", at)
            self._push(BIG)

    def _op_LONG(self, line: Any, at: int) -> None:
        if isinstance(line, tuple):
            self._push(BIG)
            return
        text = line[:-1] if line.endswith(b"L") else line
        try:
            self._push(int(text, 0))
        except ValueError:
            self._soft("a LONG argument that is not a Python integer", at)
            self._push(BIG)

    def _op_FLOAT(self, line: Any, at: int) -> None:
        try:
            self._push(float(line) if isinstance(line, bytes) else BIG)
        except ValueError:
            self._soft("a FLOAT argument that is not a number", at)
            self._push(BIG)

    def _plain_push(self, v: Any, at: int) -> None:
        self._push(v)

    _op_BININT = _op_BININT1 = _op_BININT2 = _op_LONG1 = _op_LONG4 = _plain_push
    _op_BINFLOAT = _op_STRING = _op_BINSTRING = _op_SHORT_BINSTRING = _plain_push
    _op_BINBYTES = _op_SHORT_BINBYTES = _op_BINBYTES8 = _plain_push
    _op_UNICODE = _op_SHORT_BINUNICODE = _op_BINUNICODE = _op_BINUNICODE8 = _plain_push

    def _op_BYTEARRAY8(self, v: Any, at: int) -> None:
        self._push(BIG)

    def _op_NEXT_BUFFER(self, _: None, at: int) -> None:
        self._push(BUFFER)

    def _op_READONLY_BUFFER(self, _: None, at: int) -> None:
        self._top(at)

    # containers
    def _op_EMPTY_TUPLE(self, _: None, at: int) -> None:
        self._push(())

    def _op_TUPLE(self, _: None, at: int) -> None:
        items = self._items(self._pop_mark(at))
        self._push(BIG if items is None else tuple(items))

    def _small_tuple(self, items: tuple[Any, ...]) -> Any:
        if self.kept < len(items):
            return BIG
        self.kept -= len(items)
        return items

    def _op_TUPLE1(self, _: None, at: int) -> None:
        self._push(self._small_tuple((self._pop(at),)))

    def _op_TUPLE2(self, _: None, at: int) -> None:
        b = self._pop(at)
        self._push(self._small_tuple((self._pop(at), b)))

    def _op_TUPLE3(self, _: None, at: int) -> None:
        c = self._pop(at)
        b = self._pop(at)
        self._push(self._small_tuple((self._pop(at), b, c)))

    def _op_EMPTY_LIST(self, _: None, at: int) -> None:
        self._push(_List() if self.kept else BIG)

    def _op_LIST(self, _: None, at: int) -> None:
        items = self._items(self._pop_mark(at))
        lst = _List(None if items is None else list(items))
        lst.overflow = items is None
        self._push(lst)

    def _extend(self, target: Any, items: list[Any], at: int, opname: str) -> None:
        if self.mode == "shadow":
            return
        if isinstance(target, _List):
            if target.overflow:
                return
            kept = self._items(items) if len(target.items) + len(items) <= self.keep_items else None
            if kept is None:
                target.overflow = True
                target.items = []
            else:
                target.items.extend(kept)
        else:
            self._mutation(target, at, opname)

    def _op_APPEND(self, _: None, at: int) -> None:
        v = self._pop(at)
        self._extend(self._top(at), [v], at, "APPEND")

    def _op_APPENDS(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        self._extend(self._top(at), items, at, "APPENDS")

    def _op_EMPTY_DICT(self, _: None, at: int) -> None:
        self._push(_Dict() if self.kept else BIG)

    def _set_items(self, target: Any, items: list[Any], at: int, opname: str) -> None:
        if self._true_len(items) % 2:
            raise _Malformed(f"odd number of items for {opname}", at)
        if self.mode == "shadow":
            return
        if isinstance(target, _Dict):
            if target.overflow:
                return
            kept = self._items(items) if len(target.pairs) * 2 + len(items) <= self.keep_items * 2 else None
            if kept is None:
                target.overflow = True
                target.pairs = []
            else:
                target.pairs.extend(zip(kept[::2], kept[1::2], strict=True))
        else:
            self._mutation(target, at, opname)

    def _op_DICT(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        d = _Dict()
        self._set_items(d, items, at, "DICT")
        self._push(d)

    def _op_SETITEM(self, _: None, at: int) -> None:
        v = self._pop(at)
        k = self._pop(at)
        self._set_items(self._top(at), [k, v], at, "SETITEM")

    def _op_SETITEMS(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        self._set_items(self._top(at), items, at, "SETITEMS")

    def _op_EMPTY_SET(self, _: None, at: int) -> None:
        self._push(BIG)

    def _op_ADDITEMS(self, _: None, at: int) -> None:
        self._pop_mark(at)
        self._mutation(self._top(at), at, "ADDITEMS")

    def _op_FROZENSET(self, _: None, at: int) -> None:
        self._pop_mark(at)
        self._push(BIG)

    # globals and calls
    def _op_GLOBAL(self, pair: tuple[str, str], at: int) -> None:
        self._push(self._import(pair[0], pair[1], at, "GLOBAL"))

    def _op_STACK_GLOBAL(self, _: None, at: int) -> None:
        name = self._pop(at)
        module = self._pop(at)
        self._push(self._import(self._materialise(module, at), self._materialise(name, at), at, "STACK_GLOBAL"))

    def _op_INST(self, pair: tuple[str, str], at: int) -> None:
        g = self._import(pair[0], pair[1], at, "INST")
        args = self._pop_mark(at)
        self._push(self._call(g, tuple(args) if len(args) <= self.keep_items else None, at, "INST"))

    def _op_OBJ(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        if not items:
            raise _Malformed("OBJ without a class", at)
        cls = LOST if items[0].__class__ is _Run else items[0]
        self._push(self._call(cls, tuple(items[1:]) if len(items) <= self.keep_items else None, at, "OBJ"))

    def _op_REDUCE(self, _: None, at: int) -> None:
        args = self._pop(at)
        func = self._top(at)
        self.stack[-1] = self._call(func, args, at, "REDUCE")

    def _op_NEWOBJ(self, _: None, at: int) -> None:
        args = self._pop(at)
        cls = self._pop(at)
        self._push(self._call(cls, args, at, "NEWOBJ"))

    def _op_NEWOBJ_EX(self, _: None, at: int) -> None:
        kwargs = self._pop(at)
        args = self._pop(at)
        cls = self._pop(at)
        if isinstance(kwargs, _Dict) and not kwargs.pairs and not kwargs.overflow:
            kwargs = None
        self._push(self._call(cls, args if kwargs is None else BIG, at, "NEWOBJ_EX"))

    def _ext(self, code: int, at: int, opname: str) -> None:
        registry: dict[int, tuple[str, str]] = getattr(copyreg, "_inverted_registry", {})
        key = registry.get(code)
        if key is not None:
            self._push(self._import(key[0], key[1], at, opname))
            return
        self.imports += 1
        if self.sink is not None:
            self.sink.issue(
                _SEV_HIGH,
                "pickle.unknown-extension",
                f"{opname} imports extension code {code}, which is not registered here; "
                "the loading machine's copyreg registry decides what it imports",
                extension=code,
                offset=at,
            )
        self._push(LOST)

    def _op_EXT1(self, code: int, at: int) -> None:
        self._ext(code, at, "EXT1")

    def _op_EXT2(self, code: int, at: int) -> None:
        self._ext(code, at, "EXT2")

    def _op_EXT4(self, code: int, at: int) -> None:
        self._ext(code, at, "EXT4")

    def _op_PERSID(self, line: Any, at: int) -> None:
        if isinstance(line, bytes):
            try:
                line.decode("ascii")
            except UnicodeDecodeError:
                raise _Malformed("a PERSID argument that is not ASCII", at) from None
        self._push(RESULT)

    def _op_BINPERSID(self, _: None, at: int) -> None:
        pid = self._pop(at)
        if self.collect and len(self.pids) < MAX_PIDS and isinstance(pid, tuple) and pid and pid[0] == "storage":
            self.pids.append(pid)
        self._push(RESULT)

    def _op_BUILD(self, _: None, at: int) -> None:
        state = self._pop(at)
        inst = self._top(at)
        if isinstance(inst, _Global):
            self._mutation(inst, at, "BUILD")
        elif isinstance(inst, _Obj) and self.mode != "shadow":
            inst.state = state
            if inst.kind == "joblib":
                self.stack[-1] = RESULT
                if self.joblib:
                    self._joblib_array(inst, at)

    # -- joblib arrays -------------------------------------------------------------------------------

    def _joblib_array(self, wrapper: _Obj, at: int) -> None:
        state = wrapper.state
        if not isinstance(state, _Dict) or state.overflow:
            raise _Malformed("a joblib array wrapper whose state cannot be read", at)
        fields = {k: v for k, v in state.pairs if isinstance(k, str)}
        shape = fields.get("shape")
        if not isinstance(shape, tuple) or not all(type(x) is int and x >= 0 for x in shape):
            raise _Malformed("a joblib array wrapper without a literal shape", at)
        info = _dtype_info(fields.get("dtype"))
        if info is None:
            raise _Malformed("a joblib array wrapper whose dtype cannot be read", at)
        subclass = fields.get("subclass")
        if not isinstance(subclass, _Global):
            raise _Malformed("a joblib array wrapper without an array class", at)
        align = fields.get("numpy_array_alignment_bytes")
        if align is not None and type(align) is not int:
            raise _Malformed("a joblib array wrapper with a bad alignment", at)
        r = self.r
        here = r.tell()
        if self.frame_end is not None and here < self.frame_end:
            raise _Malformed("joblib array data placed inside a pickle frame", at)
        count = 1
        for x in shape:
            count *= x
        itemsize, hasobject = info
        if hasobject:
            # joblib writes the array with pickle.dump (protocol 2) right here: scan that pickle.
            if self.depth >= MAX_NESTING:
                raise _Malformed("joblib object arrays nested too deeply", at)
            nested = _Sim(r, self.sink, mode="plain", depth=self.depth + 1, work=self.work)
            nested.context = self.context
            nested.pickle_index = self.pickle_index
            try:
                nested.run_pickle()
            finally:
                self.soft.extend(nested.soft)
            return
        first = r.peek()
        size = count * itemsize
        region = size + (1 + (first or 0) if align is not None else 0)
        if first is not None and first in _VALID_OPCODES and self.sink is not None:
            self._shadow(here, here + region)
        if align is not None:
            pad = r.byte()
            r.skip(pad)
        r.skip(size)

    def _shadow(self, start: int, end: int) -> None:
        """Scan array bytes as pickle.load would see them: as more opcodes of this pickle."""
        end = min(end, self.r.end) if self.r.end is not None else end
        window = None
        if self.r.stream:  # a decompressing stream: look ahead in memory instead of seeking back
            window = self.r.peek_bytes(min(end - start, SHADOW_WINDOW))
            reader = _Reader(io.BytesIO(), start, start + len(window), stream=False)
            reader.buf = window
        else:
            reader = _Reader(self.r.fp, start, end, stream=False)
        sim = _Sim(reader, self.sink, mode="shadow", depth=self.depth + 1, work=self.work)
        # Copies of the stacks (a folded bottom holds a count that pops change); containers stay shared,
        # so the shadow never mutates them (see _extend, _set_items and BUILD).
        sim.stack = _copy_segment([*self.stack[:-1], RESULT])
        sim.meta = [_copy_segment(seg) for seg in self.meta]
        sim.memo = list(self.memo)
        sim.memo_far = dict(self.memo_far)
        sim.proto = self.proto
        sim.pickle_index = self.pickle_index
        try:
            sim._continue()
        except _TooCostly:
            raise
        except _Truncated:
            if window is not None and start + len(window) < end and self.sink is not None:
                self.sink.issue(
                    _SEV_HIGH,
                    "pickle.malformed",
                    f"cannot be proven safe: joblib array data still parses as opcodes after {len(window)} bytes",
                    offset=start,
                    context=SHADOW_CONTEXT,
                )
        except (_Malformed, _Budget):
            pass

    def _continue(self) -> None:
        table = _TABLE
        r = self.r
        work = self.work
        while True:
            at = r.base + r.pos
            code = r.byte()
            entry = table[code]
            if entry is None:
                return
            work.ops_left -= 1
            if work.ops_left < 0:
                work.exhausted = True
                raise _TooCostly("more opcodes than the scan's budget (an opcode bomb?)", at)
            arg_reader, handler = entry
            if handler(self, arg_reader(self) if arg_reader is not None else None, at):
                return


def _build_table() -> list[Any]:
    """Opcode byte -> (argument reader, handler), from the table of opcodes and their argument formats."""
    readers = {
        "uint1": _Sim._a_uint1,
        "uint2": _Sim._a_uint2,
        "int4": _Sim._a_int4,
        "uint4": _Sim._a_uint4,
        "uint8": _Sim._a_uint8,
        "long1": _Sim._a_long1,
        "long4": _Sim._a_long4,
        "decimalnl_short": _Sim._a_line,
        "decimalnl_long": _Sim._a_line,
        "floatnl": _Sim._a_line,
        "float8": _Sim._a_float8,
        "stringnl": _Sim._a_stringnl,
        "stringnl_noescape": _Sim._a_line,
        "stringnl_noescape_pair": _Sim._a_pair,
        "string1": _Sim._a_string1,
        "string4": _Sim._a_string4,
        "bytes1": _Sim._a_bytes1,
        "bytes4": _Sim._a_bytes4,
        "bytes8": _Sim._a_bytes8,
        "bytearray8": _Sim._a_bytes8,
        "unicodestringnl": _Sim._a_unicodenl,
        "unicodestring1": _Sim._a_unicode1,
        "unicodestring4": _Sim._a_unicode4,
        "unicodestring8": _Sim._a_unicode8,
    }
    table: list[Any] = [None] * 256
    for code, name, arg in OPCODES:
        handler = getattr(_Sim, "_op_" + name)  # every opcode has a handler
        table[ord(code)] = (readers[arg] if arg is not None else None, handler)
    return table


_TABLE = _build_table()
