"""Issue 17's judge: every sample of tests/corpus17.py gets the verdict its label asks for.

Malicious samples get a finding at their expected severity or worse (critical where a loader would run
code; high where hfa can only fail closed; medium for an encrypted member, which no loader reads);
benign ones get no finding at all; a class of the saving script (``__main__``) is high, never critical.
Each file is scanned as ``hfa scan`` scans it (:func:`hfa.scan.scanner.scan_file`, under its name), with
the user's allowlist the sample names. Nothing is unpickled. Then the fixes the corpus led to, one test
each: path classes, frames that run past the end of the stream, wide tuples, numpy's generators.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import pytest
from corpus17 import Sample, all_samples, call, framed
from scan_corpus import Asm

from hfa.scan.denylist import classify_global
from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles import scan_pickle
from hfa.scan.scanner import scan_file

SAMPLES = all_samples()
POLICY = ScanPolicy()


def scan_sample(sample: Sample, folder: Path) -> list[Finding]:
    path = folder / sample.filename
    path.write_bytes(sample.data)
    return scan_file(path, sample.filename, ScanPolicy(extra=sample.allow))


def detail(found: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity.label, f.code, f.message[:160]) for f in found]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_corpus_verdict(sample: Sample, tmp_path: Path) -> None:
    found = scan_sample(sample, tmp_path)
    worst = max((f.severity for f in found), default=None)
    if sample.label == "malicious":
        assert worst is not None and worst >= Severity.parse(sample.expect), detail(found)
        if sample.codes:
            assert {f.code for f in found} & set(sample.codes), detail(found)
    elif sample.label == "benign":
        assert [f for f in found if f.severity > Severity.INFO] == [], detail(found)
    else:  # a __main__ class: unknown, never critical
        assert worst is Severity.HIGH, detail(found)
        assert all(f.code == "pickle.unknown-global" for f in found), detail(found)
        assert any(f.detail.get("module") == "__main__" for f in found), detail(found)


def test_the_corpus_covers_every_class_and_protocol() -> None:
    import importlib.util

    classes = {s.klass for s in SAMPLES if s.label == "malicious"}
    # 7 is the benign set; 9's samples are real legacy torch saves, built only where torch is (the
    # infer extra, which the lowest-Python run leaves out; tests/test_scan_legacy_modules.py has a
    # hand-built one that runs everywhere)
    torch = {"9"} if importlib.util.find_spec("torch") is not None else set()
    assert classes >= {"classic", "1", "2", "3", "4", "5", "6", "8"} | torch
    names = {s.name for s in SAMPLES}
    assert {f"os-system-reduce-p{p}" for p in range(6)} <= names
    assert len([s for s in SAMPLES if s.label == "benign"]) >= 100
    assert {s.label for s in SAMPLES} == {"malicious", "benign", "user-class"}


# -- path classes (Lightning hparams, training arguments): constructors allowed, methods critical ------------


@pytest.mark.parametrize("module", ["pathlib", "pathlib._local"])
@pytest.mark.parametrize("name", ["Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"])
def test_path_constructors_are_allowed(module: str, name: str) -> None:
    assert classify_global(module, name, POLICY) is None


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("pathlib", "Path.write_text"),
        ("pathlib", "Path.unlink"),
        ("pathlib", "PosixPath.write_bytes"),
        ("pathlib", "Path.__new__"),
        ("pathlib._local", "Path.write_text"),
        ("pathlib.Path", "write_text"),  # a class reached as a module
        ("pathlib", "os"),
        ("pathlib", "_NormalAccessor"),
        ("pathlib", "Path2"),
    ],
)
def test_the_rest_of_pathlib_stays_critical(module: str, name: str) -> None:
    verdict = classify_global(module, name, POLICY)
    assert verdict is not None and verdict[0] is Severity.CRITICAL


def test_torch_layout_lookup_is_allowed_and_the_rest_of_torch_serialization_is_not() -> None:
    assert classify_global("torch.serialization", "_get_layout", POLICY) is None  # sparse tensors' layouts
    for name in ("load", "_get_layout.__globals__", "_load", "_get_restore_location"):
        verdict = classify_global("torch.serialization", name, POLICY)
        assert verdict is not None and verdict[0] is Severity.CRITICAL, name


def test_a_path_method_by_stack_global_is_critical_and_a_path_is_clean() -> None:
    evil = call("pathlib", "Path.write_text", "x", proto=4)
    found = scan_pickle(io.BytesIO(evil), "m.pkl", POLICY)
    assert [(f.severity, f.detail["name"]) for f in found] == [(Severity.CRITICAL, "Path.write_text")]
    for proto in range(6):
        data = pickle.dumps({"dir": Path("/data"), "args": [Path("a", "b")]}, protocol=proto)
        assert scan_pickle(io.BytesIO(data), "hparams.pkl", POLICY) == []


# -- a frame that runs past the end of the stream: judged as the pure-Python unpickler reads it -------------


def short_frame(body: bytes, declared: int = 4096) -> bytes:
    return b"\x80\x04\x95" + struct.pack("<Q", declared) + body


def test_a_frame_past_the_end_is_still_read_and_its_imports_judged() -> None:
    # pickle._Unpickler (joblib's and dill's unpicklers subclass it) runs this; _pickle.c refuses it
    evil = short_frame(framed(4, call("os", "system", "id", proto=4)[11:])[11:])
    found = scan_pickle(io.BytesIO(evil), "m.pkl", POLICY)
    by_code = {f.code: f for f in found}
    assert by_code["pickle.dangerous-global"].severity is Severity.CRITICAL
    assert by_code["pickle.malformed"].severity is Severity.HIGH
    assert "a frame of 4096 bytes runs past the end of the stream" in by_code["pickle.malformed"].message


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_a_truncated_benign_frame_is_high_not_critical(cut: int) -> None:
    data = pickle.dumps({"w": [1.0] * 50, "name": "model"}, protocol=4)[:-cut]
    found = scan_pickle(io.BytesIO(data), "m.pkl", POLICY)
    assert found and max(f.severity for f in found) is Severity.HIGH
    assert {f.code for f in found} == {"pickle.malformed"}


# -- tuples too long to keep still count toward expansion ----------------------------------------------------


def wide_tuples(width: int, depth: int) -> bytes:
    a = Asm(4).op("EMPTY_TUPLE").op("MEMOIZE")
    for level in range(1, depth + 1):
        a.op("MARK")
        for _ in range(width):
            a.op("BINGET", level - 1)
        a.op("TUPLE").op("MEMOIZE")
    return a.stop()


def test_wide_tuples_of_fetched_tuples_are_an_expansion() -> None:
    found = scan_pickle(io.BytesIO(wide_tuples(500, 3)), "m.pkl", POLICY)
    assert [(f.severity, f.code) for f in found] == [(Severity.HIGH, "pickle.expansion")]
    assert found[0].detail["expanded"] >= 500**3


def test_wide_tuples_of_shared_values_are_not() -> None:
    # a long tuple of one shared small tuple, or of one shared config dict: what real pickles hold
    shared = {"kernel": (3, 3), "stride": 1, "pad": "same"}
    for obj in (tuple([(1, 2)] * 5000), tuple([shared] * 3000), tuple(tuple([shared] * 10) for _ in range(300))):
        assert scan_pickle(io.BytesIO(pickle.dumps(obj, protocol=4)), "m.pkl", POLICY) == []


# -- numpy's random generators ------------------------------------------------------------------------------


def test_numpy_generators_are_clean() -> None:
    np = pytest.importorskip("numpy")
    for rng in (np.random.default_rng(1), np.random.Generator(np.random.Philox(2)), np.random.RandomState(3)):
        for proto in (2, 4, 5):
            assert scan_pickle(io.BytesIO(pickle.dumps(rng, protocol=proto)), "rng.pkl", POLICY) == []
