"""The values a simulated unpickler keeps on its stack and memo, and the limits on how many it keeps.

Small literals are real Python values (int, float, str, bytes, tuple, None, bool); everything
else is one of the classes here. Nothing here reads, unpickles, imports or runs anything.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any

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
MAX_NESTING = 2  # nested pickles inside joblib object arrays
SHADOW_WINDOW = 1 << 20  # look-ahead for shadow scans of a stream that cannot seek back cheaply
HEAD = 4096  # bytes of a skipped payload kept, to tell whether it holds a nested pickle

# joblib's array wrapper, recognised structurally (see the docstring of hfa.scan.pickles).
JOBLIB_WRAPPERS: frozenset[tuple[str, str]] = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
ARRAY_CLASSES: frozenset[tuple[str, str]] = frozenset({("numpy", "ndarray"), ("numpy", "memmap")})
DTYPE_CLASSES: frozenset[tuple[str, str]] = frozenset({("numpy", "dtype")})
RECONSTRUCTORS: frozenset[tuple[str, str]] = frozenset({("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")})
# getattr: pickle reduces a classmethod (zoneinfo.ZoneInfo._unpickle) to getattr(class, "name"). Called by
# REDUCE with an imported global and a constant name, it is that attribute, judged as a global of its own.
GETATTRS: frozenset[tuple[str, str]] = frozenset({("builtins", "getattr"), ("__builtin__", "getattr")})
# Allowed classes that make a mapping BUILD accepts as state (_pickle.c: dict and its subclasses; the pure-Python
# unpickler joblib uses: anything with items()): their result is followed as a dict whose keys may be unknown.
MAPPINGS: frozenset[tuple[str, str]] = frozenset(
    {("builtins", "dict"), ("__builtin__", "dict")}
    | {("collections", n) for n in ("OrderedDict", "defaultdict", "Counter", "UserDict", "ChainMap")}
)
NAMESPACES: frozenset[tuple[str, str]] = frozenset({("types", "SimpleNamespace")})  # 3.13+: a positional mapping
# Allowed builtins whose result is one of what they are given (sum: its start, with nothing to add).
PASS_THROUGH: frozenset[tuple[str, str]] = frozenset(
    (module, name) for module in ("builtins", "__builtin__") for name in ("min", "max", "sum")
)
# Globals the machine follows, by what it does with them (Global.kind); every other global's kind is "".
KINDS: dict[tuple[str, str], str] = {
    **dict.fromkeys(JOBLIB_WRAPPERS, "joblib"),
    **dict.fromkeys(DTYPE_CLASSES, "dtype"),
    **dict.fromkeys(ARRAY_CLASSES, "array"),
    **dict.fromkeys(RECONSTRUCTORS, "reconstructor"),
    **dict.fromkeys(GETATTRS, "getattr"),
    **dict.fromkeys(PASS_THROUGH, "pass"),
    **dict.fromkeys(MAPPINGS, "mapping"),
    **dict.fromkeys(NAMESPACES, "namespace"),
}


class Opaque:
    """A value the scanner does not follow, named by what it is."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


class BigTuple(Opaque):
    """A tuple too long to keep: the elements it stands for (for :mod:`hfa.scan.pickles.expansion`),
    its items' own expansion included for those fetched from the memo or by DUP; ``risky``: a pair (made
    once the stream's budget is spent) that, as BUILD state, may set attributes the unpickler calls."""

    __slots__ = ("count", "risky")

    def __init__(self, count: int, risky: bool = False) -> None:
        super().__init__("large literal")
        self.count = count
        self.risky = risky


class Passed(Opaque):
    """What ``min``/``max``/``sum`` return when a global is among what they are given: maybe that global (the
    class itself, ``min((uuid.UUID,))``), so changing it in place counts as changing ``glob``; None when what
    they are given is not all known (a set, a dict's keys, a call's result): maybe any global."""

    __slots__ = ("glob",)

    def __init__(self, glob: Global | None) -> None:
        super().__init__("result of a call (maybe a global it was given)")
        self.glob = glob


RESULT = Opaque("result of a call")  # the object a REDUCE/NEWOBJ/BUILD/persistent load produced
# A result BUILD gave its state: what APPEND(S)/ADDITEMS on it run (extend, append, add) may be attributes the
# state set, or methods reaching them (UserList.extend is self.data.extend). A pickler fills an object before it.
BUILT = Opaque("result of a call (built)")


class Alias(Opaque):
    """A call's result memoized or duplicated: one object, wherever its copies are (``built``: see BUILT)."""

    __slots__ = ("built",)

    def __init__(self) -> None:
        super().__init__("result of a call")
        self.built = False


BIG = Opaque("large literal")  # bytes, ints, sets and containers too large to keep
LOST = Opaque("unknown item")  # an item folded away from a very deep stack, or an unknown extension
BUFFER = Opaque("out-of-band buffer")


class Global:
    """A global the pickle imported: the only thing an unpickler calls that the scan can judge."""

    __slots__ = ("kind", "module", "name", "offset")
    LABEL = "global"

    def __init__(self, module: str, name: str, offset: int, kind: str) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.kind = (
            kind  # "" | "joblib" | "dtype" | "array" | "reconstructor" | "getattr" | "pass" | "mapping" | "namespace"
        )

    def __repr__(self) -> str:
        return f"<global {self.module}.{self.name}>"


class Tracked:
    """An object the scanner follows: a numpy dtype, or a joblib array wrapper (``kind``)."""

    __slots__ = ("args", "kind", "state")
    LABEL = "obj"

    def __init__(self, kind: str, args: Any = None) -> None:
        self.kind = kind
        self.args = args
        self.state: Any = None


class ListValue:
    """A list the pickle builds: its items while few enough to keep, else ``overflow``."""

    __slots__ = ("count", "items", "overflow")
    LABEL = "list"

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items: list[Any] = items if items is not None else []
        self.overflow = False
        self.count = 0  # items not kept, once overflowed


class DictValue:
    """A dict the pickle builds: its pairs while few enough to keep, else ``overflow``."""

    __slots__ = ("count", "overflow", "pairs", "setstate")
    LABEL = "dict"

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self.overflow = False
        self.count = 0  # keys and values not kept, once overflowed
        self.setstate = False  # a key "__setstate__" (or a computed key) was set, kept or not: see sets_setstate


def dict_keys(items: list[Any]) -> list[Any]:
    """The keys DICT/SETITEM(S) items set: every one, kept or not (a folded run shifts the pairs: every item)."""
    return items if items and items[0].__class__ is Run else items[::2]


def sets_setstate(keys: list[Any]) -> bool:
    """Whether these keys hold ``__setstate__``. As BUILD state it becomes an attribute of the object, and the next
    BUILD on the object calls it (the unpickler looks it up on the instance): a call the pickle never makes by
    REDUCE."""
    return "__setstate__" in keys


def computed_key(keys: list[Any]) -> bool:
    """Whether a key is a value a call made (``str("__setstate__")``, ``_codecs.encode(..., "rot13")``) or one the
    scan lost: as an attribute name it may be ``__setstate__`` too."""
    classes = set(map(type, keys))  # at C speed: a vocabulary's dict sets a million keys
    if Opaque in classes and (RESULT in keys or BUILT in keys or LOST in keys):
        return True
    return not classes.isdisjoint((Passed, Tracked, Alias))


class LazyStr:
    """A string too long to keep: where it is and how to decode it, read back only if needed."""

    __slots__ = ("head", "kind", "offset", "size")
    LABEL = "lazystr"

    def __init__(self, offset: int, size: int, kind: str) -> None:
        self.offset = offset
        self.size = size
        self.head: bytes | None = None  # its first HEAD bytes, when they were at hand
        self.kind = kind  # "utf8" | "latin1" | "string" (quoted, escaped) | "rawunicode" | "bytes" (a bytes payload)


class Run:
    """The bottom of a very deep stack segment: ``count`` items the scanner no longer holds."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


def describe(v: Any) -> str:
    """A value as findings name it (``list``, ``int``, ``result of a call``)."""
    if isinstance(v, Opaque):
        return v.what
    label: str = getattr(type(v), "LABEL", "") or type(v).__name__.lower()
    return label


def copy_segment(items: list[Any]) -> list[Any]:
    if items and isinstance(items[0], Run):
        return [Run(items[0].count), *items[1:]]
    return list(items)


# numpy dtypes rebuilt by a pickle (joblib array wrappers name one)


def dtype_info(value: Any, depth: int = 0) -> tuple[int, bool] | None:
    """(itemsize, has objects) of a numpy dtype rebuilt by the pickle, or None if unknown."""
    if depth > 8 or not isinstance(value, Tracked) or value.kind != "dtype":
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
            info = dtype_info(sub[0], depth + 1)
            if info is None:
                return None
            hasobject = hasobject or info[1]
        elif sub is not None:
            return None
        if isinstance(fields, DictValue):
            if fields.overflow:
                return None
            for _k, v in fields.pairs:
                if not isinstance(v, tuple) or not v:
                    return None
                info = dtype_info(v[0], depth + 1)
                if info is None:
                    return None
                hasobject = hasobject or info[1]
        elif fields is not None:
            return None
    return itemsize, hasobject
