"""scan_pickle: the generated corpus, stream edge cases, properties, memory, and never running anything.

Every fixture is written opcode by opcode (tests/scan_corpus.py) or is ``pickle.dumps`` of harmless
builtins; tests check verdicts only and never unpickle.
"""

from __future__ import annotations

import argparse
import collections
import importlib.abc
import io
import pickle
import pickletools
import struct
import sys
import tracemalloc
import types
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_corpus import Asm, Case, dtype, framed, pickle_cases, reduce_pickle, s, torch_data_pkl, write_big_pickle

from hfa.scan.denylist import classify_global
from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles import looks_like_pickle, probe_pickle, scan_pickle, scan_pickles

POLICY = ScanPolicy()
PICKLE_CASES = list(pickle_cases())


def scan(data: bytes, policy: ScanPolicy = POLICY) -> list[Finding]:
    return scan_pickle(io.BytesIO(data), "blob", policy)


def verdict(findings: list[Finding]) -> str:
    worst = max((f.severity for f in findings), default=None)
    return "clean" if worst is None else worst.label


def codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


@pytest.mark.parametrize("case", PICKLE_CASES, ids=[c.name for c in PICKLE_CASES])
def test_corpus_verdict(case: Case) -> None:
    found = scan(case.data)
    assert verdict(found) == case.expect, [(f.severity.label, f.code, f.message) for f in found]
    assert set(case.codes) <= codes(found)


def test_corpus_covers_every_protocol_and_class() -> None:
    names = {c.name for c in PICKLE_CASES}
    assert {f"os-system-p{p}" for p in range(6)} <= names
    assert {f"benign-numpy-array-p{p}" for p in range(6)} <= names
    assert sum(c.expect == "clean" for c in PICKLE_CASES) > 100


# -- what a finding says ------------------------------------------------------------------------


def test_dangerous_global_detail_names_module_name_and_offsets() -> None:
    data = reduce_pickle("os", "system", proto=2)
    [f] = scan(data)
    assert f.code == "pickle.dangerous-global" and f.severity is Severity.CRITICAL
    assert f.detail["module"] == "os" and f.detail["name"] == "system"
    assert f.detail["opcode"] == "GLOBAL" and f.detail["offset"] == 2
    assert data[f.detail["called_at"][0] : f.detail["called_at"][0] + 1] == b"R"
    assert "calls it" in f.message and f.path == "blob"


def test_one_finding_per_global_with_a_count() -> None:
    one = Asm(2).op("GLOBAL", "os", "system").op("POP").bytes()[2:]
    [f] = scan(b"\x80\x02" + one * 3 + b"N.")
    assert f.detail["count"] == 3


def test_unknown_global_is_high_not_critical() -> None:
    [f] = scan(reduce_pickle("somepkg.evil", "Gadget", proto=4))
    assert (f.severity, f.code) == (Severity.HIGH, "pickle.unknown-global")


def test_malformed_names_offset_and_never_passes() -> None:
    found = scan(b"\x80\x02]q\x00h\x07.")
    [f] = found
    assert f.code == "pickle.malformed" and f.severity is Severity.HIGH
    assert f.detail["offset"] == 5 and "memo key 7" in f.message


def test_clean_stream_returns_empty_list() -> None:
    assert scan(torch_data_pkl(2)) == []
    assert scan(pickle.dumps({"x": [1, 2.0, b"z"]}, protocol=5)) == []


# -- the verdict on names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "expected"),
    [
        ("collections", "OrderedDict", None),
        ("__builtin__", "set", None),  # mapped to builtins.set by the protocol 0-2 compatibility table
        ("copy_reg", "_reconstructor", None),
        ("torch._utils", "_rebuild_tensor_v2", None),
        ("__builtin__", "eval", Severity.CRITICAL),
        ("commands", "getoutput", Severity.CRITICAL),  # → subprocess.getoutput
        ("os.path", "join", Severity.CRITICAL),  # a submodule of a dangerous module
        ("asyncio.unix_events", "_UnixSubprocessTransport", Severity.CRITICAL),
        ("numpy.testing._private.utils", "runstring", Severity.CRITICAL),
        ("collections", "OrderedDict.fromkeys", Severity.CRITICAL),  # dotted, even under an allowed class
        ("zoneinfo", "ZoneInfo._unpickle", None),  # dotted, but the built-in allowlist names it exactly
        ("zoneinfo", "ZoneInfo.__init__", Severity.CRITICAL),  # a dunder is never allowed
        ("numpy", "__builtins__", Severity.CRITICAL),
        ("somepkg", "Thing", Severity.HIGH),
        ("datetime", "datetime", None),  # a harmless constructor, allowed since issue 17
        ("collections", "namedtuple", Severity.HIGH),
    ],
)
def test_classify_global(module: str, name: str, expected: Severity | None) -> None:
    got = classify_global(module, name, POLICY)
    assert (got[0] if got else None) == expected


def _getattr_call(a: Asm, base: tuple[str, str], attr: object, proto: int) -> Asm:
    """getattr(base, attr) on the stack; getattr memoized first (memo 0)."""
    a.glob("builtins" if proto >= 3 else "__builtin__", "getattr").op("BINPUT", 0).glob(*base)
    (a.str(attr) if isinstance(attr, str) else a.int(attr)).op("TUPLE2").op("REDUCE")
    return a


@pytest.mark.parametrize("proto", [2, 4])
def test_getattr_of_an_imported_global_by_a_constant_name_is_judged_as_that_attribute(proto: int) -> None:
    # A zone-aware datetime: getattr(zoneinfo.ZoneInfo, "_unpickle")("Europe/Paris", 1). Before, getattr
    # itself was critical (and the call of its result an indirect call): a false alarm on real data.
    a = _getattr_call(Asm(proto), ("zoneinfo", "ZoneInfo"), "_unpickle", proto)
    clean = a.tuple(s("Europe/Paris"), lambda x: x.int(1)).op("REDUCE").stop()
    assert scan(clean) == []
    # The same getattr reaching something else is judged as that thing.
    for base, attr, code in (
        (("zoneinfo", "ZoneInfo"), "__subclasses__", "pickle.dangerous-global"),  # dunder
        (("collections", "OrderedDict"), "fromkeys", "pickle.dangerous-global"),  # dotted, not vetted
        (("somepkg", "Thing"), "run", "pickle.dangerous-global"),  # dotted: only exact built-in entries pass
    ):
        found = scan(_getattr_call(Asm(proto), base, attr, proto).tuple(s("x")).op("REDUCE").stop())
        names = {f.detail["name"] for f in found if f.code == code}
        assert f"{base[1]}.{attr}" in names, found
        assert "getattr" not in names  # each call was resolved: the attribute carries the verdict


@pytest.mark.parametrize("proto", [2, 4])
def test_getattr_used_any_other_way_stays_critical(proto: int) -> None:
    def getattr_found(data: bytes) -> bool:
        return any(f.detail.get("name") == "getattr" and f.severity is Severity.CRITICAL for f in scan(data))

    resolved = _getattr_call(Asm(proto), ("zoneinfo", "ZoneInfo"), "_unpickle", proto)
    # fetched again from the memo and handed to another call, or duplicated and left on the stack
    assert getattr_found(resolved.op("POP").op("BINGET", 0).op("TUPLE1").op("POP").op("NONE").stop())
    dup = Asm(proto).glob("builtins" if proto >= 3 else "__builtin__", "getattr").op("DUP").glob("zoneinfo", "ZoneInfo")
    assert getattr_found(dup.str("_unpickle").op("TUPLE2").op("REDUCE").op("POP").op("POP").op("NONE").stop())
    # a name that is not a constant identifier: computed, an int, dotted
    computed = Asm(proto).glob("builtins" if proto >= 3 else "__builtin__", "getattr").glob("zoneinfo", "ZoneInfo")
    computed.call("builtins", "str", s("x")).op("TUPLE2").op("REDUCE")
    assert getattr_found(computed.stop())
    for attr in (7, "a.b", "no such"):
        assert getattr_found(_getattr_call(Asm(proto), ("zoneinfo", "ZoneInfo"), attr, proto).stop())
    # a base that is not an imported global (the result of a call)
    call = (
        Asm(proto).glob("builtins" if proto >= 3 else "__builtin__", "getattr").call("zoneinfo", "ZoneInfo", s("UTC"))
    )
    assert getattr_found(call.str("key").op("TUPLE2").op("REDUCE").stop())


def _zone(a: Asm) -> Asm:
    """getattr (on the stack) called on zoneinfo.ZoneInfo, '_unpickle', then the zone built: resolved."""
    a.op("GLOBAL", "zoneinfo", "ZoneInfo").str("_unpickle").op("TUPLE2").op("REDUCE")
    return a.tuple(s("Europe/Paris"), lambda x: x.int(1)).op("REDUCE").op("POP")


def _setstate_call(a: Asm, method: str, arg: str) -> Asm:
    """getattr (on the stack) of PosixPath('/tmp/hfa-victim') by ``method``, called with ``arg`` by BUILD of a
    Namespace whose __setstate__ it is: no call of anything but allowed globals and getattr."""
    a.op("GLOBAL", "pathlib", "PosixPath").tuple(s("/tmp/hfa-victim")).op("REDUCE").str(method).op("TUPLE2")
    a.op("REDUCE").op("BINPUT", 200).op("POP")
    a.op("GLOBAL", "argparse", "Namespace").op("EMPTY_TUPLE").op("REDUCE")
    a.op("EMPTY_DICT").str("__setstate__").op("BINGET", 200).op("SETITEM").op("BUILD")
    return a.str(arg).op("BUILD").op("POP")


def _joblib_wrapper(a: Asm, array: bytes) -> bytes:
    """A joblib array wrapper (unaligned float64) whose raw data is ``array``: what joblib.load skips and
    pickle.load runs as opcodes. Returns the bytes so far plus the data."""
    n = (len(array) + 7) // 8
    a.op("GLOBAL", "joblib.numpy_pickle", "NumpyArrayWrapper").op("EMPTY_TUPLE").op("NEWOBJ")
    a.op("EMPTY_DICT").op("MARK").str("subclass").op("GLOBAL", "numpy", "ndarray")
    a.str("shape").tuple(lambda x: x.int(n)).str("order").str("C").str("dtype")
    dtype(a, "f8")
    a.str("allow_mmap").op("NEWTRUE").op("SETITEMS").op("BUILD")
    return a.bytes() + array + b"." * (8 * n - len(array))


def test_getattr_reached_where_its_stack_references_are_not_counted_stays_critical() -> None:
    def getattr_found(findings: list[Finding]) -> bool:
        return any(f.detail.get("name") == "getattr" and f.severity is Severity.CRITICAL for f in findings)

    # A legacy torch.save pickle: torch's persistent_load returns the class of a ("module", class, source
    # file, source) record, so each BINPERSID of a memoized record puts getattr on the stack once more.
    a = Asm(2).op("MARK").str("module").op("GLOBAL", "builtins", "getattr").str("").str("").op("TUPLE")
    a.op("BINPUT", 1).op("BINPERSID")
    _zone(a).op("BINGET", 1).op("BINPERSID")
    legacy = _setstate_call(a, "write_text", "pwned").op("NONE").stop()
    assert getattr_found(scan_pickles(io.BytesIO(legacy), "blob", POLICY, legacy_torch=True).findings)
    # joblib array data, read as opcodes by pickle.load: it starts with the stack and memo of the pickle
    # before it, where getattr may be (memoized, or under the wrapper), resolved in the joblib reading.
    memoized = Asm(2).op("GLOBAL", "builtins", "getattr").op("BINPUT", 0)
    _zone(memoized).op("EMPTY_DICT").str("a")
    shadow = _setstate_call(Asm(2).op("BINGET", 0), "unlink", "").op("STOP").bytes()
    assert getattr_found(scan(_joblib_wrapper(memoized, shadow) + b"s."))
    on_stack = Asm(2).op("GLOBAL", "builtins", "getattr").op("EMPTY_DICT").str("a")
    shadow = _setstate_call(Asm(2).op("POP").op("POP").op("POP"), "unlink", "").op("STOP").bytes()
    data = _joblib_wrapper(on_stack, shadow) + b"s0"
    assert getattr_found(scan(data + _zone(Asm(2)).op("NONE").stop()[2:]))
    # a zone-aware datetime next to a joblib array stays clean: getattr only ever resolved, in every reading
    memoized = Asm(2).op("GLOBAL", "builtins", "getattr").op("BINPUT", 0)
    _zone(memoized).op("EMPTY_DICT").str("a")
    assert scan(_joblib_wrapper(memoized, b"\x00" * 8) + b"s.") == []


def test_setstate_made_an_attribute_by_build_is_a_hidden_call() -> None:
    # BUILD with {"__setstate__": f} makes f an attribute of the object; the next BUILD on it calls f(state),
    # a call no REDUCE shows (CPython looks __setstate__ up on the instance). Only allowed globals here.
    def gadget(proto: int, state: Callable[[Asm], object]) -> bytes:
        a = Asm(proto).call("argparse", "Namespace")
        state(a.op("EMPTY_DICT").str("__setstate__").call("builtins", "min", lambda x: x.tuple(s("a"))))
        return a.op("BUILD").str("payload").op("BUILD").stop()

    for proto in (2, 4):
        setitem = gadget(proto, lambda a: a.op("SETITEM"))
        assert "pickle.hidden-call" in codes(scan(setitem)), scan(setitem)
        assert verdict(scan(setitem)) == "high"
        # as the slot state of BUILD's (state, slotstate) pair
        pair = Asm(proto).call("argparse", "Namespace").op("NONE").op("EMPTY_DICT").str("__setstate__").int(1)
        pair_data = pair.op("SETITEM").op("TUPLE2").op("BUILD").stop()
        assert "pickle.hidden-call" in codes(scan(pair_data))
        # set on a dict past the items the scan keeps: the key is still seen
        many = Asm(proto).call("argparse", "Namespace").op("EMPTY_DICT").op("MARK")
        for i in range(100):
            many.str(f"k{i}").int(i)
        many.str("__setstate__").int(1).op("SETITEMS").op("BUILD").stop()
        assert "pickle.hidden-call" in codes(scan(many.bytes()))
    # a dict that merely holds the key, never an object's state, is data
    assert scan(pickle.dumps({"__setstate__": "a method name", "x": [1, 2]}, protocol=4)) == []


def test_a_global_passed_through_min_max_or_sum_is_still_that_global() -> None:
    # min((uuid.UUID,)) is the class itself: a BUILD (None, {...}) on it sets attributes on the class, as the same
    # BUILD on the imported global does; before, the scan saw only "the result of a call" (found by an attack pass).
    def class_build(proto: int, call: Callable[[Asm], object]) -> bytes:
        a = Asm(proto)
        call(a)
        a.op("NONE").op("EMPTY_DICT").str("__init__").glob("builtins", "len").op("SETITEM").op("TUPLE2").op("BUILD")
        return a.op("POP").op("NONE").stop()

    uuid_class: Callable[[Asm], object] = lambda x: x.glob("uuid", "UUID")  # noqa: E731
    for proto in (2, 4):
        for name, args in (
            ("min", (lambda x: x.tuple(uuid_class),)),
            ("max", (uuid_class, lambda x: x.int(1))),
            ("sum", (lambda x: x.op("EMPTY_TUPLE"), uuid_class)),  # sum((), start) is start
            ("min", (lambda x: x.op("EMPTY_LIST").glob("uuid", "UUID").op("APPEND"),)),
        ):
            found = scan(class_build(proto, lambda a, n=name, g=args: a.glob("builtins", n).tuple(*g).op("REDUCE")))
            assert [(f.code, f.detail["name"]) for f in found] == [("pickle.global-mutation", "UUID")], (name, found)
        # what min gives back without a global among its arguments is a value, as before
        plain = Asm(proto).glob("builtins", "min").tuple(lambda x: x.int(3), lambda x: x.int(4)).op("REDUCE")
        assert scan(plain.op("POP").op("NONE").stop()) == []


def _spend_budget(a: Asm) -> Asm:
    """Lists of 64 items until the stream's budget of kept items (values.KEEP_BUDGET) is spent."""
    for _ in range(4200):
        a.op("MARK").op("NONE")
        for _ in range(63):
            a.op("DUP")
        a.op("LIST").op("POP")
    return a


def test_setstate_set_by_a_computed_key_or_a_dict_a_call_made_is_a_hidden_call() -> None:
    # The attack pass: "__setstate__" spelled by an allowed call (str(...), _codecs.encode(..., "rot13")), a
    # state dict made by dict(pairs), OrderedDict(), copyreg._reconstructor, Counter or sum((), d), or a
    # (state, slotstate) pair built once the budget is spent, passed with no finding at all.
    def gadget(proto: int, state: Callable[[Asm], object], spend: bool = False) -> bytes:
        a = Asm(proto).call("argparse", "Namespace")
        state(_spend_budget(a) if spend else a)
        return a.op("BUILD").str("payload").op("BUILD").stop()

    f: Callable[[Asm], object] = lambda x: x.call("builtins", "min", lambda y: y.tuple(s("a")))  # noqa: E731
    key_str: Callable[[Asm], object] = lambda x: x.call("builtins", "str", s("__setstate__"))  # noqa: E731
    rot13: Callable[[Asm], object] = lambda x: x.call("_codecs", "encode", s("__frgfgngr__"), s("rot13"))  # noqa: E731
    lit = s("__setstate__")
    for proto in (2, 4):
        for state in (
            lambda a: f(key_str(a.op("EMPTY_DICT"))).op("SETITEM"),
            lambda a: f(rot13(a.op("EMPTY_DICT"))).op("SETITEM"),
            lambda a: a.glob("builtins", "dict").op("EMPTY_LIST").tuple(lit, f).op("APPEND").op("TUPLE1").op("REDUCE"),
            lambda a: f(key_str(a.call("collections", "OrderedDict"))).op("SETITEM"),
            lambda a: (
                a.glob("copyreg", "_reconstructor")
                .glob("collections", "OrderedDict")
                .glob("builtins", "dict")
                .op("MARK")
                .str("__setstate__")
                .int(1)
                .op("DICT")
                .op("TUPLE3")
                .op("REDUCE")
            ),
            lambda a: (
                a.glob("collections", "Counter")
                .op("MARK")
                .str("__setstate__")
                .int(1)
                .op("DICT")
                .op("TUPLE1")
                .op("NEWOBJ")
            ),
            lambda a: (
                a.glob("builtins", "sum")
                .op("EMPTY_TUPLE")
                .op("MARK")
                .str("__setstate__")
                .int(1)
                .op("DICT")
                .op("TUPLE2")
                .op("REDUCE")
            ),
        ):
            found = scan(gadget(proto, state))
            assert codes(found) == {"pickle.hidden-call"} and verdict(found) == "high", found
        # past the budget of kept items: the pair is not kept, the dict in it still counts
        pair = lambda a: a.op("NONE").op("MARK").str("__setstate__").int(1).op("DICT").op("TUPLE2")  # noqa: E731
        computed = lambda a: f(key_str(a.op("EMPTY_DICT"))).op("SETITEM")  # noqa: E731
        for state in (pair, computed):
            assert "pickle.hidden-call" in codes(scan(gadget(proto, state, spend=True)))
        # a state dict an allowed class made, with plain names, is data (numpy's generators: tests/corpus17.py)
        plain = Asm(proto).call("argparse", "Namespace").call("collections", "OrderedDict").str("a").int(1)
        assert scan(plain.op("SETITEM").op("BUILD").stop()) == []
        assert scan(_spend_budget(Asm(proto)).op("NONE").stop()) == []


def test_simple_namespace_given_setstate_as_a_positional_mapping_is_a_hidden_call() -> None:
    # Python 3.13+: SimpleNamespace(mapping or pairs) makes the keys attributes (Objects/namespaceobject.c), so
    # SimpleNamespace({"__setstate__": f}) and a BUILD call f(state) with no BUILD state naming the key.
    for proto in (2, 4):
        for arg in (
            lambda x: x.op("EMPTY_DICT").str("__setstate__").int(1).op("SETITEM"),
            lambda x: (
                x.op("EMPTY_LIST")
                .tuple(lambda y: y.call("builtins", "str", s("__setstate__")), lambda y: y.int(1))
                .op("APPEND")
            ),
        ):
            found = scan(Asm(proto).call("types", "SimpleNamespace", arg).str("p").op("BUILD").stop())
            assert codes(found) == {"pickle.hidden-call"} and verdict(found) == "high", found
        # ... and copyreg._reconstructor(cls, SimpleNamespace, state) calls SimpleNamespace.__init__(obj, state)
        ns = lambda x: x.glob("types", "SimpleNamespace")  # noqa: E731
        state = lambda x: x.op("EMPTY_DICT").str("__setstate__").int(1).op("SETITEM")  # noqa: E731
        found = scan(Asm(proto).call("copyreg", "_reconstructor", ns, ns, state).str("p").op("BUILD").stop())
        assert codes(found) == {"pickle.hidden-call"}, found
        plain = Asm(proto).call("types", "SimpleNamespace", lambda x: x.op("EMPTY_DICT").str("a").int(1).op("SETITEM"))
        assert scan(plain.stop()) == []
        assert scan(pickle.dumps(types.SimpleNamespace(a=1, setstate=2), protocol=proto)) == []


def test_append_or_additems_after_a_build_on_the_object_is_a_hidden_call() -> None:
    # APPEND/APPENDS on an object that is no plain list look up extend (else append) on it, ADDITEMS add: made
    # instance attributes by a BUILD, they are called with the pickle's values, and no REDUCE shows it; a method
    # can reach them too (UserList.extend is self.data.extend). A pickler fills an object before its BUILD.
    for proto in (2, 4):
        state = lambda a, k: a.op("EMPTY_DICT").str(k).call("builtins", "min", lambda y: y.tuple(s("a"))).op("SETITEM")  # noqa: E731
        ns = lambda p=proto: Asm(p).call("argparse", "Namespace")  # noqa: E731
        for data in (
            state(ns(), "extend").op("BUILD").op("MARK").str("x").op("APPENDS").stop(),
            state(ns(), "append").op("BUILD").str("x").op("APPEND").stop(),
            state(ns(), "add").op("BUILD").op("MARK").str("x").op("ADDITEMS").stop(),
            # the object fetched again from the memo, or duplicated, and built as (None, slotstate)
            state(ns().op("BINPUT", 0).op("NONE"), "extend")
            .op("TUPLE2")
            .op("BUILD")
            .op("POP")
            .op("BINGET", 0)
            .str("x")
            .op("APPEND")
            .stop(),
            state(ns().op("DUP"), "add").op("BUILD").op("POP").op("MARK").str("x").op("ADDITEMS").stop(),
            state(
                Asm(proto).call("collections", "UserList").op("EMPTY_DICT").str("data").call("argparse", "Namespace"),
                "extend",
            )
            .op("BUILD")
            .op("SETITEM")
            .op("BUILD")
            .op("MARK")
            .str("x")
            .op("APPENDS")
            .stop(),
        ):
            found = scan(data)
            assert codes(found) == {"pickle.hidden-call"} and verdict(found) == "high", found
        # ordinary attributes of those names, and a deque filled by APPENDS after them, as a pickler writes them
        objs = [argparse.Namespace(add=1, extend=[2]), collections.deque([1, 2]), argparse.Namespace(append=3)]
        assert scan(pickle.dumps(objs, protocol=proto)) == []


def test_a_global_min_max_or_sum_may_pass_through_unknown_values_is_still_a_global() -> None:
    # min({uuid.UUID: 1}) is the class (a dict's keys), min((min((uuid.UUID,)),)) too, and min of a frozenset
    # or of a tuple past the budget is what the scan cannot read: a BUILD on any of them changes maybe a global.
    uuid: Callable[[Asm], object] = lambda x: x.glob("uuid", "UUID")  # noqa: E731
    for proto in (2, 4):
        for spend, arg in (
            (False, lambda x: uuid(x.op("EMPTY_DICT")).int(1).op("SETITEM")),
            (False, lambda x: x.glob("builtins", "min").tuple(lambda y: y.tuple(uuid)).op("REDUCE")),
            (False, lambda x: uuid(x.op("MARK")).op("FROZENSET")),
            (True, lambda x: x.tuple(uuid)),
        ):
            a = Asm(proto)
            (_spend_budget(a) if spend else a).glob("builtins", "min").tuple(arg).op("REDUCE")
            a.op("NONE").op("EMPTY_DICT").str("__init__").int(1).op("SETITEM").op("TUPLE2").op("BUILD")
            found = scan(a.op("POP").op("NONE").stop())
            assert codes(found) == {"pickle.global-mutation"} and verdict(found) == "high", found


def test_a_memoized_or_duplicated_call_result_as_stack_global_operand_is_still_computed() -> None:
    # A call's result memoized (as protocol 4 always does) or duplicated is one object wherever it is (an Alias,
    # for the BUILD rules): as STACK_GLOBAL's module it is still a name computed at load time, critical.
    for tail in (("MEMOIZE",), ("DUP", "POP"), ("BINPUT", "POP", "BINGET")):
        a = Asm(4).call("builtins", "str", s("os"))
        for op in tail:
            a.op(op, 0) if op in ("BINPUT", "BINGET") else a.op(op)
        found = scan(a.str("system").op("STACK_GLOBAL").tuple(s("id")).op("REDUCE").stop())
        assert "pickle.computed-import" in codes(found) and verdict(found) == "critical", (tail, found)


def test_policy_extensions_allow_unknown_names_but_never_beat_the_denylist() -> None:
    exact = ScanPolicy(extra=("somepkg.Thing", "torch.load", "posix.system"))
    assert classify_global("somepkg", "Thing", exact) is None
    for module, name in (("torch", "load"), ("posix", "system")):  # issue 11: exact entries no longer downgrade
        got = classify_global(module, name, exact)
        assert got is not None and got[0] is Severity.CRITICAL
    pattern = ScanPolicy(extra=("torch.*", "somepkg.*"))
    assert classify_global("somepkg", "Other", pattern) is None
    got = classify_global("torch", "load", pattern)
    assert got is not None and got[0] is Severity.CRITICAL
    got = classify_global("torch", "__builtins__", exact)
    assert got is not None and got[0] is Severity.CRITICAL


# -- the stream ----------------------------------------------------------------------------------


def test_scan_respects_start_and_end() -> None:
    evil = reduce_pickle("os", "system")
    benign = pickle.dumps([1, 2], protocol=2)
    blob = b"JUNK" + benign + evil + b"MORE"
    fp = io.BytesIO(blob)
    assert scan_pickle(fp, "x", POLICY, start=4, end=4 + len(benign)) == []
    found = scan_pickle(fp, "x", POLICY, start=4 + len(benign), end=4 + len(benign) + len(evil))
    assert codes(found) == {"pickle.dangerous-global"}


def test_stacked_pickles_are_all_scanned_and_reported_by_index() -> None:
    data = pickle.dumps(1, protocol=2) + pickle.dumps("a", protocol=0) + reduce_pickle("os", "system", proto=4)
    [f] = scan(data)
    assert f.detail["pickle"] == 2


def test_trailing_bytes_that_cannot_start_a_pickle() -> None:
    found = scan(pickle.dumps({"a": 1}, protocol=4) + b"\x00" * 10)
    assert [(f.code, f.severity) for f in found] == [("pickle.trailing-data", Severity.MEDIUM)]


def test_empty_stream_is_malformed() -> None:
    assert codes(scan(b"")) == {"pickle.malformed"}


def test_frames_are_transparent() -> None:
    body = Asm(None)
    body.proto = 4
    body.glob("os", "system").tuple(s("id")).op("REDUCE").op("STOP")
    assert codes(scan(framed(4, body.bytes()))) == {"pickle.dangerous-global"}
    assert codes(scan(framed(4, b"N."[:1]) + b".")) == set()
    # A frame longer than the stream is a truncation.
    assert codes(scan(b"\x80\x04\x95" + struct.pack("<Q", 100) + b"N.")) == {"pickle.malformed"}


def test_long_strings_are_read_back_only_as_stack_global_operands() -> None:
    pad = "x" * 5000  # longer than what the scanner keeps in memory
    a = Asm(4).op("BINUNICODE", "os").op("BINUNICODE", "system" + pad).op("POP").op("BINUNICODE", "system")
    found = scan(a.op("STACK_GLOBAL").stop())
    assert codes(found) == {"pickle.dangerous-global"}
    # A long operand is read back from the file to be judged.
    long_name = "a" * 3000
    found = scan(Asm(4).op("BINUNICODE", "somepkg").op("BINUNICODE", long_name).op("STACK_GLOBAL").stop())
    assert [f.detail["name"] for f in found] == [long_name]


def test_protocol_0_string_operands_are_decoded_like_an_unpickler() -> None:
    a = Asm(0).op("STRING", "os").raw(b"S'sys\\x74em'\n").op("STACK_GLOBAL").op("STOP")
    [f] = scan(a.bytes())
    assert f.detail["name"] == "system"


def test_extension_codes_resolve_through_copyreg() -> None:
    import copyreg

    registry: dict[int, tuple[str, str]] = copyreg._inverted_registry  # type: ignore[attr-defined]
    code = 0x7FFFFF01
    assert code not in registry
    registry[code] = ("os", "system")  # registry data only; nothing is imported
    try:
        found = scan(Asm(2).op("EXT4", code).tuple(s("id")).op("REDUCE").stop())
    finally:
        del registry[code]
    assert codes(found) == {"pickle.dangerous-global"}
    assert codes(scan(Asm(2).op("EXT2", 4242).stop())) == {"pickle.unknown-extension"}


def test_deep_stacks_are_folded_not_held() -> None:
    n = 200_000
    data = b"\x80\x02(" + b"K\x01" * n + b"t."
    assert scan(data) == []
    # Popping back down through the folded part loses track: used as STACK_GLOBAL's operands it fails
    # closed, as critical (CPython imports os.system here: the folded operands are "os" and "system").
    data = b"\x80\x02X\x02\x00\x00\x00osX\x06\x00\x00\x00system" + b"N" * n + b"0" * n + b"\x93."
    found = scan(data)
    assert "pickle.computed-import" in codes(found)


def test_nested_marks_are_capped() -> None:
    assert codes(scan(b"\x80\x02" + b"(" * 100_000 + b"N.")) == {"pickle.malformed"}


def test_text_protocol_lines_are_bounded() -> None:
    # A 3 MB GLOBAL module line: far beyond any module name.
    data = b"c" + b"a" * (3 << 20) + b"\nb\n."
    assert codes(scan(data)) == {"pickle.malformed"}


# -- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("proto", range(6))
def test_looks_like_pickle_for_every_protocol(proto: int) -> None:
    assert looks_like_pickle(pickle.dumps({"a": [1, 2]}, protocol=proto)[:64])
    assert looks_like_pickle(reduce_pickle("os", "system", proto=proto)[:64])


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"Hello world, this is a README file.\n",
        b'{"architectures": ["BertModel"]}',
        b"# Title\n\nSome markdown.",
        b"import torch\nclass Net: pass\n",
        b"def forward(self, x):\n    return x\n",
        b"\x00\x00\x80?\x00\x00\x00@",  # float32 tensor data
        b'\x80\x02\x00\x00\x00\x00\x00\x00{"__metadata__":',  # a safetensors header length of 0x280
        b"PK\x03\x04\x14\x00",
        b"\x93NUMPY\x01\x00",
        b"Version 1.0\nlicense: mit\n",
    ],
)
def test_looks_like_pickle_rejects_other_content(head: bytes) -> None:
    assert not looks_like_pickle(head)


def test_probe_skips_a_lone_scalar_followed_by_data() -> None:
    # Tensor data that happens to start like "BININT2 .. STOP" (seen in a real YOLOv5 checkpoint).
    data = b"M\x10\x00." + bytes(range(256)) * 4
    assert not probe_pickle(io.BytesIO(data), 0, len(data))
    # ...but a scalar pickle that is the whole stream is a pickle.
    assert probe_pickle(io.BytesIO(b"K\x05."), 0, 3)
    # ...and a malicious pickle that breaks after importing still counts.
    data = b"cos\nsystem\n\xff"
    assert probe_pickle(io.BytesIO(data), 0, len(data))


# -- memory and time ----------------------------------------------------------------------------


def test_200mb_bytes_pickle_scans_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    write_big_pickle(path, 200 * 1024 * 1024)
    tracemalloc.start()
    try:
        with path.open("rb") as fp:
            found = scan_pickle(fp, str(path), POLICY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == []
    assert peak < 2 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_payload_skipping_reads_almost_nothing(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    write_big_pickle(path, 64 * 1024 * 1024)

    class Counting(io.FileIO):
        total = 0

        def read(self, n: int = -1) -> bytes:  # type: ignore[override]
            data = super().read(n)
            Counting.total += len(data)
            return data

    with Counting(path, "rb") as fp:
        assert scan_pickle(fp, "x", POLICY) == []  # type: ignore[arg-type]
    assert Counting.total < 256 * 1024


def test_stream_mode_skips_by_reading(tmp_path: Path) -> None:
    data = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 20) + b"\x00" * (1 << 20) + reduce_pickle("os", "system", proto=4)
    rep = scan_pickles(io.BytesIO(data), "x", POLICY, start=0, stream=True)
    assert codes(rep.findings) == {"pickle.dangerous-global"}
    short = scan_pickles(io.BytesIO(data[:1000]), "x", POLICY, start=0, stream=True)
    assert codes(short.findings) == {"pickle.malformed"}


# -- never executes anything ----------------------------------------------------------------------


class _TripWire(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname.startswith("hfa_tripwire"):
            self.asked.append(fullname)
        return None


def test_scanning_never_imports_unpickles_or_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scanner must never unpickle")

    for name in ("load", "loads", "Unpickler", "_Unpickler", "_load", "_loads"):
        if hasattr(pickle, name):
            monkeypatch.setattr(pickle, name, boom)
    wire = _TripWire()
    sys.meta_path.insert(0, wire)
    try:
        for case in PICKLE_CASES[:80]:
            scan(case.data)
        found = scan(reduce_pickle("hfa_tripwire_module", "boom", proto=4))
    finally:
        sys.meta_path.remove(wire)
    assert wire.asked == [] and "hfa_tripwire_module" not in sys.modules
    assert codes(found) == {"pickle.unknown-global"}


# -- properties ------------------------------------------------------------------------------------

_FAST = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
_SEEDS = [c.data for c in PICKLE_CASES if len(c.data) < 4096]


def _dis_agrees_or_is_stricter(data: bytes) -> None:
    """A clean verdict must be a stream pickletools can disassemble (it is stricter in two ways)."""
    fp = io.BytesIO(data)
    while fp.tell() < len(data):
        try:
            pickletools.dis(fp, out=io.StringIO())
        except ValueError as exc:
            if "stack not empty after STOP" in str(exc) or "already defined" in str(exc):
                return
            raise AssertionError(f"clean verdict on a stream pickletools rejects: {exc}") from exc


@_FAST
@given(st.binary(max_size=512))
def test_random_bytes_always_get_a_verdict(data: bytes) -> None:
    found = scan(data)
    assert isinstance(found, list)
    if not found:
        _dis_agrees_or_is_stricter(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[i:]
        elif op == "dup" and data:
            data[i:i] = data[i : i + draw(st.integers(1, 16))]
    return bytes(data)


@_FAST
@given(mutated())
def test_mutated_pickles_always_get_a_verdict(data: bytes) -> None:
    found = scan(data)
    assert all(isinstance(f, Finding) for f in found)
    if not found:
        _dis_agrees_or_is_stricter(data)


@_FAST
@given(mutated())
def test_mutations_never_hide_a_global_that_is_still_there(data: bytes) -> None:
    """If pickletools still sees a dangerous GLOBAL opcode intact, the scanner reports it or fails closed."""
    found = scan(data)
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return
    if any(op.name in ("GLOBAL", "INST") and str(arg).startswith(("os ", "posix ")) for op, arg, _ in ops):
        assert verdict(found) in ("critical", "high")


def test_the_opcode_table_is_pickletools_own() -> None:
    from hfa.scan.pickles.opcodes import OPCODES, VALID_OPCODES

    expected = tuple((op.code, op.name, op.arg.name if op.arg else None) for op in pickletools.opcodes)
    assert expected == OPCODES  # a new protocol's opcodes must be added (with handlers) before it is trusted
    assert {ord(op.code) for op in pickletools.opcodes} == VALID_OPCODES


def test_a_stack_global_of_a_computed_name_is_critical(tmp_path) -> None:
    """builtins.str('os') as STACK_GLOBAL's module: CPython imports os (modelscan PR 313); a name the
    scan cannot know at load time reaches any global, so it is critical, not merely malformed."""
    from hfa.scan.model import ScanPolicy, Severity
    from hfa.scan.scanner import scan_file

    body = (
        b"\x80\x04"
        + b"\x8c\x08builtins\x8c\x03str\x93"  # builtins.str
        + b"\x8c\x02os\x85R"  # ('os',) REDUCE -> computed module name
        + b"\x8c\x06system\x93"  # STACK_GLOBAL(<result>, 'system')
        + b"\x8c\x02id\x85R."
    )
    path = tmp_path / "model.pkl"
    path.write_bytes(body)
    found = scan_file(path, "model.pkl", ScanPolicy())
    assert any(f.code == "pickle.computed-import" and f.severity == Severity.CRITICAL for f in found), found
    # a STACK_GLOBAL of bytes operands fails in CPython before anything runs: malformed (high), as before
    path.write_bytes(b"\x80\x04C\x02osC\x06system\x93.")
    codes = {(f.code, f.severity) for f in scan_file(path, "model.pkl", ScanPolicy())}
    assert ("pickle.malformed", Severity.HIGH) in codes and not any(c == "pickle.computed-import" for c, _ in codes)
