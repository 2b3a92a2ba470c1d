"""What each opcode does to the simulated unpickler (names and semantics from :mod:`pickletools`),
and joblib's inline array data: skipped, scanned as the nested pickle joblib writes there, or
shadow-scanned as what ``pickle.load`` would run (see :mod:`hfa.scan.pickles`).
"""

from __future__ import annotations

import copyreg
import io

from hfa.scan.pickles.errors import Enough, Malformed, TooCostly, Truncated
from hfa.scan.pickles.events import SHADOW
from hfa.scan.pickles.expansion import CONTAINERS, MAX_FETCHED, extra, weight
from hfa.scan.pickles.machine import NOOP_PAIRS, Machine
from hfa.scan.pickles.nested import BYTE_STARTS, ENCODED_CHARS, ENCODED_FIRST, LATIN1_STARTS, look
from hfa.scan.pickles.nested import MIN_SIZE as MIN_NESTED
from hfa.scan.pickles.opcodes import OPCODES, VALID_OPCODES
from hfa.scan.pickles.operands import ARGUMENTS, materialise
from hfa.scan.pickles.reader import Reader
from hfa.scan.pickles.values import (
    BIG,
    BUFFER,
    LOST,
    MAX_MARKS,
    MAX_MEMO,
    MAX_NESTING,
    MAX_PIDS,
    RESULT,
    SHADOW_WINDOW,
    STACK_CAP,
    Alias,
    DictValue,
    Global,
    LazyStr,
    ListValue,
    Passed,
    Run,
    Tracked,
    computed_key,
    copy_segment,
    dict_keys,
    dtype_info,
    sets_setstate,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any


class Simulator(Machine):
    """Runs the opcode stream of one or more pickles through a simulated unpickler."""

    # -- opcode handlers (names from pickletools) --------------------------------------------------

    def _op_PROTO(self, v: int, at: int) -> None:
        if v > 5:
            raise Malformed(f"unsupported pickle protocol {v}", at)
        self.proto = v

    def _op_FRAME(self, n: int, at: int) -> None:
        self.r.frame(n, at)

    def _op_STOP(self, _: None, at: int) -> bool:
        v = self._pop(at)
        self.r.stopped(at)
        if self.collect:
            self.stop_values.append(v)
        else:
            self.stop_values[:] = [v]
        return True

    def _op_MARK(self, _: None, at: int) -> None:
        if len(self.meta) >= MAX_MARKS:
            raise Malformed(f"more than {MAX_MARKS} nested MARKs: too deep to analyse", at)
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
        v = self._top(at)
        if v is RESULT:  # one object, two places: what a BUILD makes of one is the other's too
            v = self.stack[-1] = Alias()
        self._push(v)
        if v.__class__ is Global and v.kind == "getattr":
            self.events.reused(v, self.context)
        elif v.__class__ in CONTAINERS and (v or v.__class__ is not tuple):
            self._fetched(v)

    def _fetched(self, v: Any) -> None:
        """A container fetched again (GET, DUP): counted for :mod:`~hfa.scan.pickles.expansion`."""
        self.fetches += 1
        size, visited = weight(v)
        self.expanded += size
        self.work.ops_left -= visited
        if len(self.fetched) < MAX_FETCHED:
            self.fetched[id(v)] = (v, size)

    # memo
    def _memo_put(self, key: int, at: int) -> None:
        value = self._top(at)
        if value is RESULT:
            value = self.stack[-1] = Alias()
        memo = self.memo
        n = len(memo)
        if key == n:
            if self.memo_far:
                self.memo_far.pop(key, None)
            if n >= MAX_MEMO:
                raise Malformed(f"more than {MAX_MEMO} memo entries: too complex to analyse", at)
            memo.append(value)
        elif 0 <= key < n:
            memo[key] = value
        elif key < 0:
            raise Malformed("negative PUT argument", at)
        else:
            if len(self.memo_far) >= MAX_MEMO:
                raise Malformed(f"more than {MAX_MEMO} memo entries: too complex to analyse", at)
            self.memo_far[key] = value

    def _memo_get(self, key: int, at: int) -> None:
        memo = self.memo
        if 0 <= key < len(memo):
            v = memo[key]
        else:
            try:
                v = self.memo_far[key]
            except KeyError:
                raise Malformed(f"memo key {key} is read before it is written", at) from None
        self._push(v)
        if v.__class__ is Global and v.kind == "getattr":
            self.events.reused(v, self.context)
        elif v.__class__ in CONTAINERS and (v or v.__class__ is not tuple):
            self._fetched(v)

    def _int_key(self, line: Any, at: int) -> int:
        if isinstance(line, tuple):
            raise Malformed("a memo key argument that is far too long", at)
        try:
            return int(line)
        except ValueError:
            raise Malformed("a memo key that is not an integer", at) from None

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
    _op_BINFLOAT = _plain_push

    def _text_push(self, v: Any, at: int) -> None:
        """A text literal: pushed, and looked into if it may hold a pickle (:mod:`~hfa.scan.pickles.nested`)."""
        st = self.stack
        st.append(v)
        if len(st) > STACK_CAP:
            self._fold()
        if self.nest and (
            v.__class__ is not str
            or (
                len(v) >= MIN_NESTED
                and (
                    v[0] in LATIN1_STARTS
                    or (len(v) >= 2 * MIN_NESTED and v[0] in ENCODED_FIRST and not v.strip(ENCODED_CHARS))
                )
            )
        ):
            look(self, v, at, "")

    def _bytes_push(self, v: Any, at: int) -> None:
        """A bytes literal: pushed, and looked into if it may hold a pickle."""
        st = self.stack
        st.append(v)
        if len(st) > STACK_CAP:
            self._fold()
        if self.nest and (v.__class__ is not bytes or (len(v) >= MIN_NESTED and v[0] in BYTE_STARTS)):
            look(self, v, at, "")

    _op_STRING = _op_BINSTRING = _op_SHORT_BINSTRING = _text_push
    _op_BINBYTES = _op_SHORT_BINBYTES = _op_BINBYTES8 = _bytes_push
    _op_UNICODE = _op_SHORT_BINUNICODE = _op_BINUNICODE = _op_BINUNICODE8 = _text_push

    def _op_BYTEARRAY8(self, v: Any, at: int) -> None:
        self._push(BIG)
        if self.nest and (v.__class__ is LazyStr or (len(v) >= MIN_NESTED and v[0] in BYTE_STARTS)):
            look(self, v, at, "")

    def _op_NEXT_BUFFER(self, _: None, at: int) -> None:
        self._push(BUFFER)

    def _op_READONLY_BUFFER(self, _: None, at: int) -> None:
        self._top(at)

    # containers
    def _op_EMPTY_TUPLE(self, _: None, at: int) -> None:
        self._push(())

    def _op_TUPLE(self, _: None, at: int) -> None:
        popped = self._pop_mark(at)
        items = self._items(popped)
        self._push(self._big_tuple(popped) if items is None else tuple(items))

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
        self._push(ListValue() if self.kept else BIG)

    def _op_LIST(self, _: None, at: int) -> None:
        popped = self._pop_mark(at)
        items = self._items(popped)
        lst = ListValue(None if items is None else list(items))
        if items is None:
            lst.overflow = True
            lst.count = self._true_len(popped) + (extra(popped, self.fetched) if self.fetches else 0)
        self._push(lst)

    def _extend(self, target: Any, items: list[Any], at: int, opname: str) -> None:
        if self.mode == "shadow":
            return
        self._hook(target, at, opname)
        if isinstance(target, ListValue):
            if target.overflow:
                target.count += len(items) + (extra(items, self.fetched) if self.fetches else 0)
                return
            kept = self._items(items) if len(target.items) + len(items) <= self.keep_items else None
            if kept is None:
                target.overflow = True
                both = [*target.items, *items]
                target.count = len(target.items) + self._true_len(items)
                target.count += extra(both, self.fetched) if self.fetches else 0
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
        self._push(DictValue() if self.kept else BIG)

    def _set_items(self, target: Any, items: list[Any], at: int, opname: str) -> None:
        if self._true_len(items) % 2:
            raise Malformed(f"odd number of items for {opname}", at)
        if self.mode == "shadow":
            return
        keys = dict_keys(items)  # judged at BUILD, or now where the dict is not followed
        if isinstance(target, DictValue):
            target.setstate = target.setstate or sets_setstate(keys) or computed_key(keys)
        elif sets_setstate(keys) and not isinstance(target, Global):
            self.events.hidden_call(f"{opname} sets __setstate__ on an object it does not follow", at, self.context)
        elif target is BIG and computed_key(keys):
            self.blind = True  # a dict past the budget with a name the scan cannot read (see _build_state)
        if isinstance(target, DictValue):
            if target.overflow:
                target.count += len(items) + (extra(items, self.fetched) if self.fetches else 0)
                return
            kept = self._items(items) if len(target.pairs) * 2 + len(items) <= self.keep_items * 2 else None
            if kept is None:
                target.overflow = True
                both = [*(x for pair in target.pairs for x in pair), *items]
                target.count = len(target.pairs) * 2 + self._true_len(items)
                target.count += extra(both, self.fetched) if self.fetches else 0
                target.pairs = []
            else:
                target.pairs.extend(zip(kept[::2], kept[1::2], strict=True))
        else:
            self._mutation(target, at, opname)

    def _op_DICT(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        d = DictValue()
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
        if self.mode != "shadow":
            self._hook(self._top(at), at, "ADDITEMS")
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
        r = self.r
        self._push(self._import(materialise(r, module, at), materialise(r, name, at), at, "STACK_GLOBAL"))

    def _op_INST(self, pair: tuple[str, str], at: int) -> None:
        g = self._import(pair[0], pair[1], at, "INST")
        args = self._pop_mark(at)
        self._push(self._call(g, tuple(args) if len(args) <= self.keep_items else None, at, "INST"))

    def _op_OBJ(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        if not items:
            raise Malformed("OBJ without a class", at)
        cls = LOST if items[0].__class__ is Run else items[0]
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
        if isinstance(kwargs, DictValue) and not kwargs.pairs and not kwargs.overflow:
            kwargs = None
        self._push(self._call(cls, args if kwargs is None else BIG, at, "NEWOBJ_EX"))

    def _ext(self, code: int, at: int, opname: str) -> None:
        registry: dict[int, tuple[str, str]] = getattr(copyreg, "_inverted_registry", {})
        key = registry.get(code)
        if key is not None:
            self._push(self._import(key[0], key[1], at, opname))
            return
        self.imports += 1
        self.events.extension(code, at, opname)
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
                raise Malformed("a PERSID argument that is not ASCII", at) from None
        self._push(RESULT)

    def _op_BINPERSID(self, _: None, at: int) -> None:
        pid = self._pop(at)
        if self.collect and len(self.pids) < MAX_PIDS and isinstance(pid, tuple) and pid and pid[0] == "storage":
            self.pids.append(pid)
        if (
            self.legacy_torch
            and isinstance(pid, tuple)
            and len(pid) == 4
            and pid[0] == "module"
            and isinstance(pid[1], Global)
        ):
            # torch.serialization's legacy persistent_load returns data[0] of a ("module", class,
            # source file, source) record: the class, imported by the GLOBAL inside the record.
            self._push(pid[1])
            if pid[1].kind == "getattr":  # on the stack once more (a memoized record can be loaded again)
                self.events.reused(pid[1], self.context)
            return
        self._push(RESULT)

    def _op_BUILD(self, _: None, at: int) -> None:
        state = self._pop(at)
        inst = self._top(at)
        self._build_state(state, at)
        if isinstance(inst, (Global, Passed)):
            self._mutation(inst, at, "BUILD")
        elif isinstance(inst, Tracked) and self.mode != "shadow":
            inst.state = state
            if inst.kind == "joblib":
                self.stack[-1] = RESULT
                if self.joblib:
                    self._joblib_array(inst, at)

    # -- joblib arrays -------------------------------------------------------------------------------

    def _joblib_array(self, wrapper: Tracked, at: int) -> None:
        """The array data joblib writes after a wrapper's BUILD: skipped (shadow-scanned as ``pickle.load`` would
        read it), or the nested pickle of an object array. A wrapper whose data cannot be located is malformed
        (``joblib.load`` fails there) and the pickle is read on as ``pickle.load`` reads it."""
        state = wrapper.state
        if not isinstance(state, DictValue) or state.overflow:
            return self._soft("a joblib array wrapper whose state cannot be read", at)
        fields = {k: v for k, v in state.pairs if isinstance(k, str)}
        shape = fields.get("shape")
        if not isinstance(shape, tuple) or not all(type(x) is int and x >= 0 for x in shape):
            return self._soft("a joblib array wrapper without a literal shape", at)
        info = dtype_info(fields.get("dtype"))
        if info is None:
            return self._soft("a joblib array wrapper whose dtype cannot be read", at)
        subclass = fields.get("subclass")
        if not isinstance(subclass, Global):
            return self._soft("a joblib array wrapper without an array class", at)
        align = fields.get("numpy_array_alignment_bytes")
        if align is not None and type(align) is not int:
            return self._soft("a joblib array wrapper with a bad alignment", at)
        r = self.r
        here = r.tell()
        if r.frame_end is not None and here < r.frame_end:
            return self._soft("joblib array data placed inside a pickle frame", at)
        count = 1
        for x in shape:
            count *= x
        itemsize, hasobject = info
        if isinstance(wrapper.args, Global):
            self.events.followed(wrapper.args, self.context)
        if hasobject:
            # joblib writes the array with pickle.dump (protocol 2) right here: scan that pickle, and (as for
            # other arrays) its bytes as pickle.load reads them: more opcodes of this pickle, on its stack.
            if self.depth >= MAX_NESTING:
                raise Malformed("joblib object arrays nested too deeply", at)
            first = r.peek()
            if first is not None and first in VALID_OPCODES:
                self._shadow(here, r.end if r.end is not None else here + SHADOW_WINDOW)
            nested = Simulator(r, self.events, mode="plain", depth=self.depth + 1, work=self.work)
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
        if first is not None and first in VALID_OPCODES:
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
            reader = Reader(io.BytesIO(), start, start + len(window), stream=False)
            reader.buf = window
        else:
            reader = Reader(self.r.fp, start, end, stream=False)
        sim = Simulator(reader, self.events, mode="shadow", depth=self.depth + 1, work=self.work)
        # Copies of the stacks (a folded bottom holds a count that pops change); containers stay shared,
        # so the shadow never mutates them (see _extend, _set_items and BUILD).
        sim.stack = copy_segment([*self.stack[:-1], RESULT])
        sim.meta = [copy_segment(seg) for seg in self.meta]
        sim.memo = list(self.memo)
        sim.memo_far = dict(self.memo_far)
        # A getattr the shadow starts with on its stacks is a reference of its own there (its memo's are
        # counted when fetched): the judge holds getattr critical unless every one is a resolved call.
        for seg in (*sim.meta, sim.stack):
            for v in seg:
                if v.__class__ is Global and v.kind == "getattr":
                    self.events.reused(v, SHADOW)
        sim.proto = self.proto
        sim.pickle_index = self.pickle_index
        try:
            sim.resume()
        except TooCostly:
            raise
        except Truncated:
            if window is not None and start + len(window) < end:
                self.events.problem(
                    f"joblib array data still parses as opcodes after {len(window)} bytes", start, SHADOW
                )
        except (Malformed, Enough):
            pass


def _table() -> list[Any]:
    """Opcode byte -> (operand decoder, handler), from the table of opcodes and their argument formats."""
    table: list[Any] = [None] * 256
    for code, name, arg in OPCODES:
        handler = getattr(Simulator, "_op_" + name)  # every opcode has a handler
        table[ord(code)] = (ARGUMENTS[arg] if arg is not None else None, handler)
    return table


Simulator.TABLE = _table()
