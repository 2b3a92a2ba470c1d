"""Expansion ("billion laughs") pickles (hfa/scan/pickles/expansion.py): chains of DUP, one PUT fetched
by hundreds of BINGETs, nested lists of lists, wide levels; and the real pickles that must stay below
the bound. Fixtures are assembled or pickle.dumps / torch.save of real objects; nothing is unpickled."""

from __future__ import annotations

import io
import pickle
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scan_corpus import Asm

from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles import scan_pickle
from hfa.scan.pickles.expansion import EXPANDED_PER_OP, exceeds
from hfa.scan.pickles.handlers import Simulator
from hfa.scan.pickles.reader import Reader

POLICY = ScanPolicy()


def scan(data: bytes) -> list[Finding]:
    return scan_pickle(io.BytesIO(data), "blob", POLICY)


def expansion(found: list[Finding]) -> Finding | None:
    return next((f for f in found if f.code == "pickle.expansion"), None)


def dup_chain(levels: int) -> bytes:
    """x = []; then x = (x, x) ``levels`` times, with DUP + TUPLE2: 2**levels elements from 2*levels opcodes."""
    a = Asm(2).op("EMPTY_LIST")
    for _ in range(levels):
        a.op("DUP").op("TUPLE2")
    return a.stop()


def one_put_many_gets(items: int, fetches: int) -> bytes:
    """A list of ``items`` ints, PUT once, fetched ``fetches`` times into another list."""
    a = Asm(2).op("EMPTY_LIST").op("MARK")
    for i in range(items):
        a.int(i % 200)
    a.op("APPENDS").op("BINPUT", 0).op("POP").op("MARK")
    for _ in range(fetches):
        a.op("BINGET", 0)
    return a.op("LIST").stop()


def laughs(fanout: int, depth: int) -> bytes:
    """lol0 = ["lol"]; lolN = [lol(N-1)] * fanout, as memo GETs: fanout**depth elements."""
    a = Asm(2).op("MARK").op("BINUNICODE", "lol").op("LIST").op("LONG_BINPUT", 0)
    for level in range(1, depth + 1):
        a.op("MARK")
        for _ in range(fanout):
            a.op("LONG_BINGET", level - 1)
        a.op("LIST").op("LONG_BINPUT", level)
    return a.stop()


def test_a_dup_chain_is_an_expansion_finding() -> None:
    found = expansion(scan(dup_chain(30)))
    assert found is not None and found.severity is Severity.HIGH
    assert found.detail["expanded"] > 2**30 and found.detail["opcodes"] < 70
    assert "expansion bomb" in found.message


def test_one_put_fetched_by_hundreds_of_bingets() -> None:
    found = expansion(scan(one_put_many_gets(5000, 300)))
    assert found is not None and found.detail["fetches"] == 300
    assert expansion(scan(one_put_many_gets(1000, 300))) is None  # 300,000 elements: below the floor


def test_nested_lists_of_lists() -> None:
    assert expansion(scan(laughs(10, 9))) is not None
    assert expansion(scan(laughs(100, 4))) is not None  # levels too wide to keep: counted all the same


@given(st.integers(21, 60))
@settings(max_examples=20, deadline=None)
def test_dup_chains_past_the_bound_are_found(levels: int) -> None:
    assert expansion(scan(dup_chain(levels))) is not None


@given(st.integers(0, 12))
@settings(max_examples=13, deadline=None)
def test_short_dup_chains_are_not(levels: int) -> None:
    assert expansion(scan(dup_chain(levels))) is None


@given(st.integers(2, 12), st.integers(1, 12))
@settings(max_examples=80, deadline=None)
def test_laughs_are_found_exactly_when_they_expand(fanout: int, depth: int) -> None:
    size = fanout**depth
    found = expansion(scan(laughs(fanout, depth)))
    if size >= 1 << 22:
        assert found is not None, (fanout, depth)
    elif size <= 1 << 14:
        assert found is None, (fanout, depth)


@given(st.integers(4000, 8000), st.integers(300, 700))
@settings(max_examples=30, deadline=None)
def test_big_values_fetched_hundreds_of_times_are_found(items: int, fetches: int) -> None:
    assert expansion(scan(one_put_many_gets(items, fetches))) is not None


@given(st.integers(1, 8), st.integers(1, 2000))
@settings(max_examples=30, deadline=None)
def test_small_values_shared_many_times_are_not(items: int, fetches: int) -> None:
    """An object array of one shared dict, a list of one shared pair: sharing, not expansion."""
    assert expansion(scan(one_put_many_gets(items, fetches))) is None


def _ratio(data: bytes) -> float:
    """The worst expanded elements per opcode of the pickles in ``data``."""
    reader = Reader(io.BytesIO(data), 0, len(data), stream=False)
    sim = Simulator(reader, None, mode="plain")
    worst = 0.0
    while reader.peek() is not None:
        try:
            sim.run_pickle()
        except Exception:  # a legacy torch file's raw storages follow its pickles
            break
        worst = max(worst, sim.expanded / max(sim.ops_in_pickle, 1))
        assert not exceeds(sim.fetches, sim.expanded, sim.ops_in_pickle)
    return worst


def test_plain_pickles_of_shared_objects_stay_far_below_the_bound() -> None:
    shared = {"a": 1, "tags": ["x", "y"]}
    for proto in range(6):
        for obj in ([shared] * 5000, [[1, 2]] * 3000, {f"k{i}": shared for i in range(2000)}):
            assert _ratio(pickle.dumps(obj, protocol=proto)) < EXPANDED_PER_OP / 10
            assert expansion(scan(pickle.dumps(obj, protocol=proto))) is None


def test_numpy_and_sklearn_pickles_stay_far_below_the_bound() -> None:
    np = pytest.importorskip("numpy")
    data = [np.array([{"a": 1}, [1, 2], "x"] * 300, dtype=object), np.arange(1000.0)]
    try:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.random.default_rng(0).random((100, 4))
        y = (x[:, 0] > 0.5).astype(int)
        data += [
            RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
            make_pipeline(StandardScaler()).fit(x),
        ]
    except ImportError:
        pass
    for obj in data:
        for proto in (2, 4, 5):
            assert _ratio(pickle.dumps(obj, protocol=proto)) < EXPANDED_PER_OP / 10


def test_torch_checkpoints_stay_far_below_the_bound() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 4))
    tied = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 10))
    tied[1].weight = tied[0].weight
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    opt.step()
    objects = [
        model.state_dict(),
        model,
        tied,
        opt.state_dict(),
        {"model": model.state_dict(), "optim": opt.state_dict()},
    ]
    for obj in objects:
        for zipped in (True, False):
            buf = io.BytesIO()
            torch.save(obj, buf, _use_new_zipfile_serialization=zipped)
            data = buf.getvalue()
            if zipped:
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
            assert _ratio(data) < EXPANDED_PER_OP / 10


@given(
    st.sampled_from([dup_chain(25), laughs(10, 7), one_put_many_gets(100, 50)]),
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), max_size=6),
)
@settings(max_examples=150, deadline=None)
def test_mutated_expansion_pickles_always_get_a_verdict(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for at, byte in edits:
        data[at % len(data)] = byte
    assert all(isinstance(f, Finding) for f in scan(bytes(data)))
