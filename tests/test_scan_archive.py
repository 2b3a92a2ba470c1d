"""scan_serialized: dispatch by content, zips through the central directory, npy/npz, legacy torch, joblib.

Fixtures come from tests/scan_corpus.py (opcode assembler and a zip writer that can lie); nothing
is ever unpickled or loaded.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scan_corpus import (
    Case,
    Member,
    archive_cases,
    build_zip,
    joblib_pickle,
    legacy_torch,
    npy,
    pickle_cases,
    reduce_pickle,
    torch_data_pkl,
    torch_zip,
    write_torch_zip,
)

from hfa.scan.archive import scan_serialized
from hfa.scan.model import Finding, ScanPolicy, Severity

POLICY = ScanPolicy()
ARCHIVE_CASES = list(archive_cases())
PICKLE_CASES = list(pickle_cases())
EVIL = reduce_pickle("os", "system", proto=2)


def scan(data: bytes, display: str = "outer.bin", expect: bool | None = False) -> list[Finding] | None:
    """Scan by content alone (``expect=None``: also by the name in ``display``)."""
    return scan_serialized(io.BytesIO(data), display, POLICY, expect=expect)


def verdict(findings: list[Finding]) -> str:
    worst = max((f.severity for f in findings), default=None)
    return "clean" if worst is None else worst.label


def codes(findings: list[Finding] | None) -> set[str]:
    assert findings is not None
    return {f.code for f in findings}


def check(case: Case, found: list[Finding] | None) -> None:
    if not case.handled:
        assert found is None
        return
    assert found is not None, "not recognised"
    detail = [(f.severity.label, f.code, f.path, f.message) for f in found]
    assert verdict(found) == case.expect, detail
    assert set(case.codes) <= codes(found), detail
    for suffix in case.paths:
        assert any(f.path == "outer.bin" + suffix for f in found), detail


@pytest.mark.parametrize("case", ARCHIVE_CASES, ids=[c.name for c in ARCHIVE_CASES])
def test_archive_corpus(case: Case) -> None:
    check(case, scan(case.data))


@pytest.mark.parametrize("case", PICKLE_CASES, ids=[c.name for c in PICKLE_CASES])
def test_raw_pickles_through_the_dispatcher(case: Case) -> None:
    check(case, scan(case.data))


# -- zips ------------------------------------------------------------------------------------------


def test_member_paths_name_the_member() -> None:
    found = scan(torch_zip(EVIL))
    assert found is not None
    assert {f.path for f in found} == {"outer.bin!archive/data.pkl"}
    assert found[0].detail["offset"] < len(EVIL)  # offsets count from the member's first byte


def test_local_name_mismatch_is_scanned_by_central_directory() -> None:
    data = build_zip([Member("archive/data.pkl", EVIL, local_name="archive/notes.txt")])
    found = scan(data)
    assert found is not None
    mismatch = next(f for f in found if f.code == "archive.name-mismatch")
    assert mismatch.severity is Severity.MEDIUM
    assert mismatch.detail == {"central": "archive/data.pkl", "local": "archive/notes.txt"}
    danger = next(f for f in found if f.code == "pickle.dangerous-global")
    assert danger.path == "outer.bin!archive/data.pkl"


def test_every_member_is_sniffed_whatever_its_name() -> None:
    names = ["data.pkl", "weights", ".hidden", "model.safetensors", "a/b/c/tensor.bin", "config.json"]
    data = build_zip([Member(n, reduce_pickle("os", "system", proto=p % 6)) for p, n in enumerate(names)])
    found = scan(data)
    assert found is not None
    assert {f.path for f in found if f.code == "pickle.dangerous-global"} == {f"outer.bin!{n}" for n in names}


def test_tensor_storages_are_not_mistaken_for_pickles() -> None:
    # Tensor bytes that happen to start with PROTO 2: a storage (named by data.pkl) is only scanned if
    # it really simulates as a pickle; the same bytes under another name fail closed.
    tensor = b"\x80\x02" + bytes(range(7, 200))
    data = torch_zip(extra=[Member("archive/data/0x", tensor)])
    assert scan(data) is not None and codes(scan(data)) == {"pickle.malformed"}
    storage = build_zip([Member("archive/data.pkl", torch_data_pkl(1)), Member("archive/data/0", tensor)])
    assert scan(storage) == []


def test_zip_flags_and_crc_are_ignored_like_pytorch_does() -> None:
    members = [Member("archive/data.pkl", EVIL, flags=0x1 | 0x8, crc=0)]
    found = scan(build_zip(members))
    assert {"pickle.dangerous-global", "archive.encrypted"} <= codes(found)  # a flag that lies: scanned as is


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:-30], "central directory"),
        (lambda d: d[: d.rfind(b"PK\x05\x06")], "end-of-central-directory"),
        (lambda d: d[: d.rfind(b"PK\x01\x02")] + b"XX" + d[d.rfind(b"PK\x01\x02") + 2 :], "central directory"),
    ],
)
def test_broken_archives_fail_closed(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    found = scan(mutate(torch_zip()))
    assert found is not None
    assert any(f.code == "archive.malformed" and f.severity is Severity.HIGH for f in found)


def test_members_of_a_broken_directory_that_could_be_read_are_still_scanned() -> None:
    data = bytearray(build_zip([Member("a.pkl", EVIL), Member("b.pkl", EVIL)]))
    second = data.rfind(b"PK\x01\x02")
    data[second : second + 4] = b"XXXX"
    found = scan(bytes(data))
    assert {"archive.malformed", "pickle.dangerous-global"} <= codes(found)


def test_unsupported_compression_fails_closed() -> None:
    found = scan(build_zip([Member("data.pkl", EVIL, method=12)]))
    assert found is not None
    [f] = found
    assert (f.code, f.severity, f.detail["method"]) == ("archive.unsupported", Severity.HIGH, 12)


def test_deflate_bomb_is_bounded() -> None:
    # 64 MiB of zeros after a BINBYTES8 opcode, deflated to ~64 KiB; the member claims 1 TiB.
    body = b"\x80\x04\x8e" + struct.pack("<Q", 64 << 20) + b"\x00" * (64 << 20) + b"."
    data = bytearray(build_zip([Member("data.pkl", body, method=8)]))
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = struct.pack("<L", 0xFFFFFFF0)
    found = scan(bytes(data))
    assert "archive.too-large" in codes(found)


def test_nested_archives_are_followed_and_bounded() -> None:
    inner = build_zip([Member("data.pkl", EVIL)])
    found = scan(build_zip([Member("inner.zip", build_zip([Member("mid.zip", inner)]))]))
    assert found is not None
    assert [f.path for f in found] == ["outer.bin!inner.zip!mid.zip!data.pkl"]


def test_big_torch_zip_reads_only_heads(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    write_torch_zip(path, n_tensors=50, tensor_bytes=4 << 20)  # 200 MiB of tensor data

    class Counting(io.FileIO):
        total = 0

        def read(self, n: int = -1) -> bytes:  # type: ignore[override]
            data = super().read(n)
            Counting.total += len(data)
            return data

    tracemalloc.start()
    try:
        with Counting(path, "rb") as fp:
            found = scan_serialized(fp, "model.pt", POLICY)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == []
    assert Counting.total < 1 << 20, Counting.total
    assert peak < 4 << 20, peak


# -- other formats ---------------------------------------------------------------------------------


def test_npy_object_array_is_a_pickle_other_dtypes_are_data() -> None:
    assert scan(npy("<f4", (4,), b"\x80\x02cos\nsystem\n" + b"\x00" * 2)) == []  # raw data, never a pickle
    assert codes(scan(npy("|O", (1,), EVIL))) == {"pickle.dangerous-global"}
    assert codes(scan(npy("|O", (1,), EVIL[:-3]))) >= {"pickle.malformed"}


def test_legacy_torch_storages_are_checked() -> None:
    assert scan(legacy_torch()) == []
    good = legacy_torch()
    bad_count = good[:-24] + struct.pack("<q", 5) + good[-16:]
    found = scan(bad_count)
    assert found is not None and [f.code for f in found] == ["archive.unexpected-data"]
    assert codes(scan(good[:-4])) == {"archive.unexpected-data"}  # storage cut short


def test_joblib_inline_arrays_are_skipped_and_object_arrays_scanned() -> None:
    assert scan(joblib_pickle()) == []
    assert (
        scan(joblib_pickle(data=b"cos\nsystem\n(S'x'\ntR." + b"\x00" * 4)) == []
    )  # aligned: pickle.load stops at the pad byte
    found = scan(joblib_pickle(object_payload=EVIL))
    assert found is not None and found[0].detail["module"] == "os"


def test_joblib_wrapper_outside_its_shape_fails_closed() -> None:
    data = joblib_pickle().replace(b"shape", b"shapf")
    assert codes(scan(data)) >= {"pickle.malformed"}


def test_compressed_pickles_are_decompressed_lazily() -> None:
    big = b"\x80\x04\x8e" + struct.pack("<Q", 32 << 20) + b"\x00" * (32 << 20) + EVIL[2:]
    found = scan(gzip.compress(big, 1))
    assert codes(found) == {"pickle.dangerous-global"}


def test_position_and_size_bound_the_scan() -> None:
    blob = b"prefix" + torch_zip(EVIL) + b"suffix-that-is-not-part-of-it"
    fp = io.BytesIO(blob)
    fp.seek(6)
    found = scan_serialized(fp, "x", POLICY, size=len(blob) - 6 - 29)
    assert codes(found) == {"pickle.dangerous-global"}


def test_unhandled_content_returns_none() -> None:
    for data in (b"", b"plain text\n", b'{"a": 1}', b"\x00" * 64, gzip.compress(b"text " * 100)):
        assert scan(data) is None


def test_benign_pickles_of_builtins_at_every_protocol_are_clean() -> None:
    for proto in range(6):
        for obj in ({"a": [1, 2.0]}, [b"x", bytearray(b"y")], {1, 2}, frozenset(), ("t", None)):
            assert scan(pickle.dumps(obj, protocol=proto)) == [], (proto, obj)


# -- properties ----------------------------------------------------------------------------------------

_FAST = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
_ZIPS = [c.data for c in ARCHIVE_CASES if c.data[:2] == b"PK" and len(c.data) < 8192]
_OTHERS = [c.data for c in ARCHIVE_CASES if c.data[:2] != b"PK" and len(c.data) < 8192]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "word"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[i : i + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[i:]
        elif op == "word" and len(data) >= 4:
            j = min(i, len(data) - 4)
            data[j : j + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\x00\x00"]))
    return bytes(data)


def _verdict_or_none(data: bytes) -> None:
    found = scan(data)
    assert found is None or all(isinstance(f, Finding) for f in found)


@_FAST
@given(mutated(_ZIPS))
def test_mutated_zips_always_get_a_verdict(data: bytes) -> None:
    _verdict_or_none(data)


@_FAST
@given(mutated(_OTHERS))
def test_mutated_npy_joblib_legacy_files_always_get_a_verdict(data: bytes) -> None:
    _verdict_or_none(data)


@_FAST
@given(st.sampled_from([b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00", b"\x1f\x8b\x08", b"BZh9", b"\x80\x04", b""]),
       st.binary(max_size=600))  # fmt: skip
def test_random_bytes_behind_any_magic_always_get_a_verdict(magic: bytes, rest: bytes) -> None:
    _verdict_or_none(magic + rest)


# The standard-library modules a scan may import (beyond what the interpreter starts with): see the
# docstring of hfa.scan.model. typing, dataclasses, re or pickletools cost more than a scan does.
SCAN_IMPORTS_ALLOWED = {
    "__future__",
    "_collections",
    "_compat_pickle",
    "_functools",
    "_operator",
    "_struct",
    "collections",
    "copyreg",
    "encodings.cp437",  # zip member names without the UTF-8 flag
    "enum",
    "functools",
    "itertools",
    "keyword",
    "operator",
    "reprlib",
    "struct",
    "types",
    "zlib",
}


def test_a_scan_imports_only_the_small_stdlib_set(tmp_path: Path) -> None:
    import subprocess
    import sys

    model = tmp_path / "model.pt"
    write_torch_zip(model, n_tensors=3, tensor_bytes=64)
    code = (
        "import sys; before = set(sys.modules)\n"
        "from hfa.scan.archive import scan_serialized\n"
        "from hfa.scan.model import ScanPolicy\n"
        "with open(sys.argv[1], 'rb') as fp: assert scan_serialized(fp, 'm', ScanPolicy()) == []\n"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = set(proc.stdout.split())
    stdlib = {m for m in imported if m != "hfa" and not m.startswith("hfa.")}
    assert stdlib <= SCAN_IMPORTS_ALLOWED, f"the scanner now imports {sorted(stdlib - SCAN_IMPORTS_ALLOWED)}"
    assert "hfa.scan.archive" in imported  # the check looked at a real scan
