"""The shape of hfa.scan: a lazy public surface, and a pickle machine that emits events a judge turns into findings."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from typing import Any

import pytest

import hfa.scan
from hfa.scan.model import ScanPolicy, Severity
from hfa.scan.pickles.events import SHADOW, Observer
from hfa.scan.pickles.handlers import Simulator
from hfa.scan.pickles.judge import Judge
from hfa.scan.pickles.reader import Reader
from hfa.scan.pickles.values import Global, ListValue, describe


class _Runs:
    """A pickled call of ``os.system`` (never run: pickle.dumps only records the reduce)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, ("true",)


class Recorder(Observer):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def imported(self, glob: Global, opcode: str, pickle: int, context: str) -> None:
        self.events.append(("imported", f"{glob.module}.{glob.name}", opcode, pickle, context))

    def called(self, func: Any, args: Any, at: int, opcode: str, context: str) -> None:
        name = f"{func.module}.{func.name}" if isinstance(func, Global) else type(func).__name__
        self.events.append(("called", name, args, opcode, context))

    def mutated(self, target: Any, at: int, opcode: str, context: str) -> None:
        self.events.append(("mutated", type(target).__name__, opcode))


def _run(data: bytes, events: Observer | None) -> Simulator:
    machine = Simulator(Reader(io.BytesIO(data), 0, len(data), stream=False), events)
    machine.run_pickle()
    return machine


def test_every_public_name_loads_from_its_module() -> None:
    for name in hfa.scan.__all__:
        value = getattr(hfa.scan, name)
        homes = [
            m
            for m, module in list(sys.modules.items())
            if m.startswith("hfa.scan.") and vars(module).get(name) is value
        ]
        assert homes, f"hfa.scan.{name} is not the object its module defines"
    assert set(hfa.scan.__all__) <= set(dir(hfa.scan))
    with pytest.raises(AttributeError):
        _ = hfa.scan.no_such_name


def test_importing_hfa_scan_loads_no_scanner() -> None:
    code = "import sys, hfa.scan.model\nprint(' '.join(m for m in sys.modules if m.startswith('hfa.scan')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert sorted(out.stdout.split()) == ["hfa.scan", "hfa.scan.model"]


@pytest.mark.parametrize("proto", [0, 2, 4])
def test_the_machine_tells_what_a_pickle_imports_and_calls(proto: int) -> None:
    recorder = Recorder()
    _run(pickle.dumps(_Runs(), protocol=proto), recorder)
    system = f"{os.system.__module__}.system"  # posix.system (nt.system on Windows)
    imported = [e for e in recorder.events if e[0] == "imported"]
    called = [e for e in recorder.events if e[0] == "called"]
    assert [e[1] for e in imported] == [system]
    assert called == [("called", system, ("true",), "REDUCE", "")]


def test_the_machine_judges_nothing() -> None:
    """Without an observer the machine runs a dangerous pickle through; only a judge makes findings."""
    machine = _run(pickle.dumps(_Runs(), protocol=4), None)
    assert [describe(v) for v in machine.stop_values] == ["result of a call"]  # memoized: one object (an Alias)
    assert not hasattr(machine, "findings")


def test_mutations_are_events_on_what_was_changed() -> None:
    recorder = Recorder()
    _run(pickle.dumps({"a": [1, 2]}, protocol=2), recorder)
    assert recorder.events == []  # the pickle's own dict and list: nothing to tell
    recorder = Recorder()
    # GLOBAL os.environ, then BUILD on it: the imported object changed in place
    _run(b"cos\nenviron\n}b.", recorder)
    assert ("mutated", "Global", "BUILD") in recorder.events


def test_the_judge_turns_events_into_findings() -> None:
    judge = Judge("x.pkl", ScanPolicy())
    evil = Global("builtins", "eval", 3, "")
    judge.imported(evil, "GLOBAL", 0, "")
    judge.imported(evil, "GLOBAL", 0, "")
    judge.called(evil, ("1",), 9, "REDUCE", "")
    judge.called(ListValue(), (), 12, "REDUCE", "")
    judge.called(ListValue(), (), 20, "REDUCE", SHADOW)  # the shadow reading: only imports count there
    judge.imported(Global("collections", "OrderedDict", 30, ""), "GLOBAL", 0, "")  # allowed
    found = judge.findings()
    assert [(f.severity, f.code) for f in found] == [
        (Severity.CRITICAL, "pickle.dangerous-global"),
        (Severity.HIGH, "pickle.indirect-call"),
    ]
    assert found[0].message == "imports a dangerous global builtins.eval and calls it"
    assert found[0].detail["count"] == 2 and found[0].detail["called_at"] == [9]
    assert found[1].message == "REDUCE calls an object that is not an imported global (list)"
