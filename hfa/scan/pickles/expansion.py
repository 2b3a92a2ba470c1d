"""Expansion ("billion laughs") pickles: a few bytes that build a structure of billions of elements
by fetching the same container again and again (memo GETs, DUP) into other containers. Loading one
is cheap (the elements are shared); whatever walks the result (a printer, a deep copy, JSON, a
framework's state-dict loader) exhausts memory or time.

The machine counts, per pickle, each fetch of a container (GET, BINGET, LONG_BINGET, DUP of a list,
dict or non-empty tuple, a tuple too long to keep included) and the size that container stands for once expanded (its elements, and
theirs, counted as often as they are referenced; found by a walk that visits each shared container
once; an overflowed list or dict, too long to keep, counts the items it had). The bound is the one
expat puts on XML entity expansion (an activation threshold and an amplification factor): over
:data:`EXPANDED_FLOOR` elements and over :data:`EXPANDED_PER_OP` elements per opcode of the pickle.
Real pickles stay far below it: PyTorch state dicts, whole-model saves in both formats, tied weights,
optimizer states, checkpoint dicts, scikit-learn models, numpy object arrays and lists of one shared
object reach at most ~7 elements per opcode (tests/test_scan_pickle_expansion.py measures them). A
billion-laughs list (ten lists of ten), a DUP + TUPLE2 chain (2**30 elements from 60 opcodes), or one
big list fetched by hundreds of BINGETs passes it at once.

Past it the pickle is ``pickle.expansion`` (high): it cannot be proven safe to use.
"""

from __future__ import annotations

from hfa.scan.pickles.values import BigTuple, DictValue, ListValue

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any

EXPANDED_FLOOR = 1 << 20  # elements: below it, walking the result costs milliseconds
EXPANDED_PER_OP = 100  # elements per opcode (expat's default amplification factor)
MAX_FETCHED = 1 << 16  # fetched containers remembered per pickle (to weigh overflowed containers)
WALK_NODES = 4096  # containers one weighing visits; past it the weight is what it has counted
CONTAINERS = frozenset({ListValue, DictValue, tuple, BigTuple})


def weight(value: Any) -> tuple[int, int]:
    """(elements ``value`` stands for once expanded, containers visited to count them)."""
    seen: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    visited = 0
    while stack:
        v, done = stack.pop()
        cls = v.__class__
        if cls not in CONTAINERS:
            continue
        key = id(v)
        if done:
            total = 1 + (0 if cls is tuple else v.count)  # items of an overflowed list or dict: one each
            for item in _items(v):
                total += seen.get(id(item), 1) if item.__class__ in CONTAINERS else 1
            seen[key] = total
            continue
        if key in seen or visited >= WALK_NODES:
            continue
        visited += 1
        seen[key] = 1  # a cycle counts once (a list that holds itself)
        stack.append((v, True))
        for item in _items(v):
            if item.__class__ in CONTAINERS and id(item) not in seen:
                stack.append((item, False))
    return seen.get(id(value), 1), visited


def extra(items: list[Any], fetched: dict[int, tuple[Any, int]]) -> int:
    """What the fetched containers among ``items`` add to an overflowed list or dict beyond one element
    each (``fetched``: id -> (container, weight) of the containers fetched so far in the pickle; others
    were built by opcodes of their own, which the bound counts)."""
    total = 0
    for x in items:
        if x.__class__ in CONTAINERS:
            hit = fetched.get(id(x))
            if hit is not None:
                total += hit[1] - 1
    return total


def _items(v: Any) -> Any:
    if v.__class__ is tuple:
        return v
    if v.__class__ is BigTuple:
        return ()  # counted in its count
    if v.__class__ is ListValue:
        return v.items
    return [x for pair in v.pairs for x in pair]


def exceeds(fetches: int, expanded: int, ops: int) -> bool:
    """Whether a pickle's fetched containers, expanded, pass the bound of this module."""
    return fetches > 0 and expanded > EXPANDED_FLOOR and expanded > EXPANDED_PER_OP * ops
