"""The simulated unpickler's machine: its state (stack, marks, memo), the loop that runs opcodes,
and the events it emits when a pickle imports a global, calls something or changes an imported
object (:mod:`hfa.scan.pickles.events`). What each opcode does is in
:mod:`hfa.scan.pickles.handlers`; what is unsafe is decided by an observer, never here.
"""

from __future__ import annotations

from hfa.scan.denylist import importable
from hfa.scan.limits import Work
from hfa.scan.pickles.errors import Enough, Malformed, TooCostly, Truncated
from hfa.scan.pickles.events import MAIN, SHADOW, Observer
from hfa.scan.pickles.expansion import extra
from hfa.scan.pickles.nested import MAX_VALUES as MAX_NESTED_VALUES
from hfa.scan.pickles.values import (
    BIG,
    BUILT,
    KEEP_BUDGET,
    KEEP_ITEMS,
    KINDS,
    LOST,
    RESULT,
    STACK_CAP,
    Alias,
    BigTuple,
    DictValue,
    Global,
    LazyStr,
    ListValue,
    Passed,
    Run,
    Tracked,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from hfa.scan.pickles.reader import Reader

_IGNORE = Observer()

# A value pushed and popped at once does nothing: runs of such pairs (an opcode bomb's padding)
# are skipped at the speed of a byte comparison instead of two handler calls per pair. They are
# still charged to the file's budget, 1 opcode per 16 bytes: no real pickle holds such runs.
NOOP_PAIRS = frozenset({b"N0", b"\x880", b"\x890", b")0", b"]0", b"}0", b"\x8f0", b"(1"})
_noop_run: Any = None


class Machine:
    """A simulated unpickler's state and loop; :class:`~hfa.scan.pickles.handlers.Simulator` adds the opcodes.

    ``events`` hears what the run does (default: nobody, as in a probe). ``mode`` is how the bytes
    are read: ``scan`` (joblib's unpickler: inline array data followed), ``plain`` (pickle.load),
    ``probe`` (is this a pickle at all? stops after ``budget`` opcodes) or ``shadow`` (array
    bytes read as more opcodes of the pickle before them).
    """

    TABLE: ClassVar[list[Any]]  # opcode byte -> (operand decoder, handler): set by the subclass that has the handlers

    def __init__(
        self,
        reader: Reader,
        events: Observer | None = None,
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
        self.events = events if events is not None else _IGNORE
        self.mode = mode
        self.joblib = mode in ("scan",)  # joblib arrays are read inline only by joblib's own unpickler
        self.budget = budget
        self.depth = depth
        self.collect = collect
        self.legacy_torch = False  # persistent ids are read as torch's legacy loader reads them
        self.nest = mode in ("scan", "plain")  # look for pickles inside bytes and text values
        self.nested_left = MAX_NESTED_VALUES
        self.fetches = 0  # containers fetched again in this pickle (hfa.scan.pickles.expansion)
        self.expanded = 0  # the elements they stand for
        self.fetched: dict[int, tuple[Any, int]] = {}  # id -> (container, elements) of those fetched
        self.keep_items = keep_items
        self.context = SHADOW if mode == "shadow" else MAIN
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
        self.blind = False  # a dict past the budget set a computed key or one of those names
        self.proto = 0

    # -- the loop ----------------------------------------------------------------------------------

    def run_pickle(self) -> Any:
        """Run one pickle to its STOP; return the value it stops with."""
        self.stack = []
        self.meta = []
        self.memo = []
        self.memo_far = {}
        self.proto = 0
        self.r.frame_end = None  # an Unpickler of its own: no frame yet
        self.fetches = self.expanded = 0
        self.fetched = {}
        self.blind = False
        self.ops_in_pickle = 0
        table = self.TABLE
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
                        code = r.opcode()
                    except Truncated:
                        raise Truncated("the stream ends before STOP (truncated pickle)", at) from None
                entry = table[code]
                if entry is None:
                    raise Malformed(f"unknown opcode 0x{code:02x}", at)
                ops += 1
                if ops > limit:
                    if budget:
                        raise Enough
                    work.exhausted = True
                    raise TooCostly(f"more opcodes than the scan's budget of {limit - start} (an opcode bomb?)", at)
                arg_reader, handler = entry
                if handler(self, arg_reader(r) if arg_reader is not None else None, at):
                    return self.stop_values[-1] if self.stop_values else None
        finally:
            self.ops = ops
            self.ops_in_pickle = ops - start
            if not budget:
                work.ops_left -= ops - start

    def resume(self) -> None:
        """Run on from the reader's position with the state as it is, until STOP or a byte that is no opcode."""
        table = self.TABLE
        r = self.r
        work = self.work
        while True:
            at = r.base + r.pos
            code = r.opcode()
            entry = table[code]
            if entry is None:
                return
            work.ops_left -= 1
            if work.ops_left < 0:
                work.exhausted = True
                raise TooCostly("more opcodes than the scan's budget (an opcode bomb?)", at)
            arg_reader, handler = entry
            if handler(self, arg_reader(r) if arg_reader is not None else None, at):
                return

    # -- stack helpers ---------------------------------------------------------------------------

    def _push(self, v: Any) -> None:
        st = self.stack
        st.append(v)
        if len(st) > STACK_CAP:
            self._fold()

    def _fold(self) -> None:
        """Fold the bottom half of a stack segment past STACK_CAP into a count."""
        st = self.stack
        if len(st) > STACK_CAP:
            half = STACK_CAP // 2
            head = st[:half]
            count = sum(x.count if isinstance(x, Run) else 1 for x in head)
            del st[:half]
            st.insert(0, Run(count))

    def _pop(self, at: int) -> Any:
        st = self.stack
        if not st:
            raise Malformed("stack underflow", at)
        v = st.pop()
        if st or v.__class__ is not Run:
            return v
        if v.count > 1:
            v.count -= 1
            st.append(v)
        return LOST

    def _top(self, at: int) -> Any:
        st = self.stack
        if not st:
            raise Malformed("stack underflow", at)
        v = st[-1]
        return LOST if v.__class__ is Run else v

    def _pop_mark(self, at: int) -> list[Any]:
        if not self.meta:
            raise Malformed("an opcode needs a MARK that is not there (mark stack underflow)", at)
        items = self.stack
        self.stack = self.meta.pop()
        return items

    @staticmethod
    def _true_len(items: list[Any]) -> int:
        if items and items[0].__class__ is Run:
            return len(items) - 1 + int(items[0].count)
        return len(items)

    def _items(self, items: list[Any]) -> list[Any] | None:
        """The items as values, or None if too many to keep (or the stream's budget is spent)."""
        n = len(items)
        if n > self.keep_items or self.kept < n or (items and items[0].__class__ is Run):
            return None
        self.kept -= n
        return items

    # -- imports and calls -----------------------------------------------------------------------

    def _import(self, module: str, name: str, at: int, opname: str) -> Global:
        if self.mode in ("probe", "shadow") and not (importable(module) and importable(name)):
            # A loader would fail to import this; in a probe or a shadow scan that means "not a pickle".
            raise Malformed("not a name an unpickler could import", at)
        self.imports += 1
        g = Global(module, name, at, KINDS.get((module, name), ""))
        self.events.imported(g, opname, self.pickle_index, self.context)
        return g

    def _call(self, func: Any, args: Any, at: int, opname: str) -> Any:
        """The value a call leaves on the stack: a followed object (a dtype, a joblib wrapper) or RESULT."""
        self.events.called(func, args, at, opname, self.context)
        if isinstance(func, Global):
            if func.kind == "dtype" and isinstance(args, tuple):
                return Tracked("dtype", args)
            if func.kind == "joblib":
                # Any instance counts: joblib reads array bytes after BUILD on whatever instance.
                return Tracked("joblib", func)
            if (
                func.kind == "reconstructor"
                and isinstance(args, tuple)
                and len(args) == 3
                and isinstance(args[0], Global)
                and args[0].kind == "joblib"
            ):
                return Tracked("joblib", args[0])
            if (
                func.kind == "getattr"
                and opname == "REDUCE"
                and isinstance(args, tuple)
                and len(args) == 2
                and isinstance(args[0], Global)
                and type(args[1]) is str
                and args[1].isidentifier()
            ):
                return self._attribute(func, args[0], args[1], at)
            if func.kind == "pass":
                return passed(args)
            if func.kind == "mapping":
                return self._mapping(args)
            if func.kind == "reconstructor" and isinstance(args, tuple) and len(args) == 3:
                base = args[1]  # base.__init__(obj, state): SimpleNamespace's too
                if isinstance(base, Global) and base.kind == "namespace" and copies_setstate(args[2:]):
                    self.events.hidden_call(
                        f"{opname} makes __setstate__ an attribute: BUILD calls it", at, self.context
                    )
            if func.kind == "namespace" and args != () and copies_setstate(args):
                # Python 3.13+: SimpleNamespace(mapping or pairs) makes its keys attributes
                why = f"{opname} makes __setstate__ (or a computed name) an attribute: the next BUILD calls it"
                self.events.hidden_call(why, at, self.context)
            if (
                func.kind == "reconstructor"
                and isinstance(args, tuple)
                and len(args) == 3
                and any(isinstance(a, Global) and a.kind == "mapping" for a in args[:2])
            ):
                return self._mapping(args[2:])  # base.__new__(cls, state), then base.__init__(obj, state)
        return RESULT

    def _mapping(self, args: Any) -> Any:
        """A dict (OrderedDict, Counter...) a call made, followed as DICT's are: empty, or of unknown pairs with
        the keys of what it copies (dict(pairs), Counter(d)), a key it cannot read counting as __setstate__."""
        if args == ():
            return DictValue() if self.kept else BIG
        d = DictValue()
        d.overflow = True
        d.setstate = copies_setstate(args)
        if not self.kept:
            self.blind = self.blind or d.setstate
            return BIG
        return d

    def _unread_state(self, p: Any) -> bool:
        """As BUILD state (without a __setstate__ of the object's own), may ``p`` set attributes the unpickler
        calls? A dict setting __setstate__ or a computed name, one min/max/sum gave back, or one past the budget."""
        if p.__class__ is DictValue:
            return p.setstate
        return p.__class__ is Passed or (p is BIG and self.blind)

    def _hook(self, target: Any, at: int, opname: str) -> None:
        """APPEND(S)/ADDITEMS on a call's result after a BUILD on it: the unpickler calls the object's extend, append
        or add, which the BUILD may have made attributes (or reached: UserList.extend is self.data.extend). A pickler
        fills an object (listitems, then dictitems) before its BUILD, never after."""
        if target is BUILT or (target.__class__ is Alias and target.built):
            why = f"{opname} on an object after its BUILD calls its extend/append/add, which the BUILD may have set"
            self.events.hidden_call(why, at, self.context)

    def _build_state(self, state: Any, at: int) -> None:
        """What BUILD's state makes attributes of the object (without a __setstate__ of its own): the dict, and
        the slot state of a (state, slotstate) pair (set with setattr)."""
        inst = self.stack[-1]
        if inst is RESULT and self.mode != "shadow":
            self.stack[-1] = BUILT
        elif inst.__class__ is Alias and self.mode != "shadow":
            inst.built = True
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for p in parts:
            if p.__class__ is DictValue:
                if p.setstate:
                    why = "BUILD makes __setstate__ (or a computed name) an attribute: the next BUILD calls it"
                    self.events.hidden_call(why, at, self.context)
            elif (p.__class__ is BigTuple and len(parts) == 1 and p.risky) or self._unread_state(p):
                # dict(...), OrderedDict(...), or a dict or pair past the budget: names the scan cannot read
                why = (
                    "BUILD with a state a call made: it may make __setstate__ an attribute, which the next BUILD calls"
                )
                self.events.hidden_call(why, at, self.context)

    def _big_tuple(self, popped: Any) -> BigTuple:
        """A tuple too long to keep, weighed as an overflowed list is (a wide tuple of fetched tuples is
        an expansion bomb too)."""
        n = self._true_len(popped)
        risky = n == 2 and any(self._unread_state(p) for p in popped)  # (state, slotstate) that BUILD cannot read
        return BigTuple(n + (extra(list(popped), self.fetched) if self.fetches else 0), risky)

    def _small_tuple(self, items: tuple[Any, ...]) -> Any:
        if self.kept < len(items):
            return self._big_tuple(items)
        self.kept -= len(items)
        return items

    def _attribute(self, getter: Global, base: Global, attr: str, at: int) -> Global:
        """``getattr(base, attr)``: the attribute, judged as the global ``module.Base.attr`` (which a
        protocol-4 STACK_GLOBAL names directly); the getattr call itself was resolved."""
        self.events.resolved(getter, self.context)
        g = Global(base.module, f"{base.name}.{attr}", at, "")
        self.events.imported(g, "REDUCE", self.pickle_index, self.context)
        return g

    def _mutation(self, target: Any, at: int, opname: str) -> None:
        glob = target.glob if target.__class__ is Passed else None
        self.events.mutated(target if glob is None else glob, at, opname, self.context)

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
            raise TooCostly("more opcodes than the scan's budget (an opcode bomb?)", r.base + end)


def copies_setstate(args: Any) -> bool:
    """Whether a dict made from ``args`` as dict(...) makes it (a mapping, or pairs) may hold the key __setstate__:
    it does, or a key (or the whole) is not something the scan reads."""
    for a in args if args.__class__ is tuple else (args,):
        if a is None or a.__class__ is Global:  # defaultdict's factory
            continue
        if a.__class__ is DictValue:
            if a.setstate:
                return True
            continue
        pairs = a.items if a.__class__ is ListValue and not a.overflow else a if a.__class__ is tuple else None
        if pairs is None or not all(p.__class__ is tuple and len(p) == 2 for p in pairs):
            return True  # pairs the scan does not hold
        keys = [p[0] for p in pairs]
        if "__setstate__" in keys or any(k.__class__ is not str for k in keys):
            return True
    return False


def passed(args: Any) -> Any:
    """What min/max/sum leave: Passed(a global among what they are given, looked for inside tuples, lists and a
    dict's keys), Passed(None) if some of it is unknown (a set, a call's result, a container past the budget),
    else RESULT."""
    todo, unknown, seen = [args], False, 0
    while todo and seen < 4096:
        v = todo.pop()
        seen += 1
        cls = v.__class__
        if cls is Global:
            return Passed(v)
        if cls is Passed:
            if v.glob is not None:
                return Passed(v.glob)
            unknown = True
        elif cls is tuple:
            todo.extend(v)
        elif cls is ListValue or cls is DictValue:
            unknown = unknown or v.overflow or cls is DictValue  # sum((), d) is d: its keys become attributes
            todo.extend(v.items if cls is ListValue else [k for k, _ in v.pairs])
        elif cls not in (str, bytes, int, float, bool, type(None), LazyStr):
            unknown = True
    return Passed(None) if unknown or todo else RESULT
