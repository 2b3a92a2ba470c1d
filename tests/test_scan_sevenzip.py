"""7z archives (issue 17, class 2): opened with py7zr, bounded, never extracted, never a silent pass.

Archives are written here with py7zr; names py7zr refuses to write (``../x``, ``/etc/x``) are put
in by patching a plain (unencoded) header and its CRCs. Nothing is ever unpickled.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import sys
import time
import zlib
from datetime import timedelta
from pathlib import Path

import py7zr
import pytest
from hypothesis import HealthCheck, given, settings
from scan_corpus import Member, build_zip, mutated, reduce_pickle, torch_zip

from hfa.scan.archive import scan_serialized
from hfa.scan.model import Finding, ScanPolicy, Severity

POLICY = ScanPolicy()
EVAL = reduce_pickle("builtins", "eval", "__import__('os').system('id')", proto=2)
BENIGN = pickle.dumps({"weights": [1.0, 2.0], "name": "m"}, protocol=4)  # builtins only: nothing is loaded


def seven(
    members: list[tuple[str, bytes]],
    *,
    password: str | None = None,
    header_encryption: bool = False,
    filters: list[dict[str, int]] | None = None,
    plain_header: bool = False,
) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", password=password, header_encryption=header_encryption, filters=filters) as z:
        if plain_header:
            z.set_encoded_header_mode(False)
        for name, data in members:
            z.writestr(data, name)
    return buf.getvalue()


def renamed(data: bytes, old: str, new: str) -> bytes:
    """A 7z with a plain header whose member name ``old`` becomes ``new`` (same length), CRCs fixed."""
    assert len(old) == len(new)
    out = bytearray(data.replace(old.encode("utf-16-le"), new.encode("utf-16-le")))
    offset, size = struct.unpack("<QQ", out[12:28])
    out[28:32] = struct.pack("<I", zlib.crc32(bytes(out[32 + offset : 32 + offset + size])))
    out[8:12] = struct.pack("<I", zlib.crc32(bytes(out[12:32])))
    return bytes(out)


def scan(data: bytes, name: str = "x.7z") -> list[Finding] | None:
    return scan_serialized(io.BytesIO(data), name, POLICY)


def codes(found: list[Finding] | None) -> set[str]:
    assert found is not None, "passed over"
    return {f.code for f in found}


def worst(found: list[Finding] | None) -> Severity | None:
    assert found is not None, "passed over"
    return max((f.severity for f in found), default=None)


# -- a 7z holding a payload is critical, whatever its compression ----------------------------------

FILTERS = {
    "lzma2": None,
    "lzma": [{"id": py7zr.FILTER_LZMA}],
    "bzip2": [{"id": py7zr.FILTER_BZIP2}],
    "deflate": [{"id": py7zr.FILTER_DEFLATE}],
    "copy": [{"id": py7zr.FILTER_COPY}],
    "zstd": [{"id": py7zr.FILTER_ZSTD}],
    "ppmd": [{"id": py7zr.FILTER_PPMD}],
    "bcj+lzma2": [{"id": py7zr.FILTER_X86}, {"id": py7zr.FILTER_LZMA2}],
}


@pytest.mark.parametrize("how", list(FILTERS))
def test_a_7z_holding_a_pickle_that_calls_eval_is_critical(how: str) -> None:
    found = scan(seven([("readme.txt", b"hello"), ("model.pkl", EVAL)], filters=FILTERS[how]))
    assert worst(found) is Severity.CRITICAL
    assert [(f.code, f.path) for f in found or [] if f.severity is Severity.CRITICAL] == [
        ("pickle.dangerous-global", "x.7z!model.pkl")
    ]


def test_content_decides_not_names() -> None:
    # no pickle name anywhere: the member is sniffed, as zip and tar members are
    assert worst(scan(seven([("weights", EVAL)]), "blob")) is Severity.CRITICAL
    # a torch checkpoint in a 7z, and a 7z in a zip, in a gzip
    assert worst(scan(seven([("pytorch_model.bin", torch_zip(EVAL))]))) is Severity.CRITICAL
    inner = seven([("a.pkl", EVAL)])
    assert worst(scan(build_zip([Member("inner.7z", inner)]), "x.zip")) is Severity.CRITICAL
    assert worst(scan(gzip.compress(inner), "x.gz")) is Severity.CRITICAL
    found = scan(build_zip([Member("inner.7z", inner)]), "x.zip")
    assert any(f.path == "x.zip!inner.7z!a.pkl" for f in found or [])


def test_benign_7z_archives_are_clean() -> None:
    assert scan(seven([("model.pkl", BENIGN), ("README.md", b"# a model\n"), ("pytorch_model.bin", torch_zip())])) == []
    assert scan(seven([("notes.txt", b"text")]), "notes.7z") == []


def test_fail_closed_inside_a_7z() -> None:
    # a member named as a pickle that is none, and an empty one
    assert codes(scan(seven([("model.pkl", b"\x00 not a pickle")]))) == {"pickle.unparseable"}
    assert codes(scan(seven([("model.pkl", b"")]))) == {"pickle.unparseable"}
    # a corrupt archive: truncated, or a flipped byte in the compressed data (a CRC error)
    good = seven([("model.pkl", EVAL * 20)])
    assert worst(scan(good[:-12])) >= Severity.HIGH
    flipped = bytearray(good)
    flipped[40] ^= 0xFF
    assert worst(scan(bytes(flipped))) >= Severity.HIGH


def test_names_outside_the_archive_are_reported_and_still_scanned() -> None:
    plain = seven([("AA/evil.pkl", EVAL), ("Betc/x.pkl", EVAL), ("ok.txt", b"x")], plain_header=True)
    data = renamed(renamed(plain, "AA/", "../"), "Betc", "/etc")
    with py7zr.SevenZipFile(io.BytesIO(data)) as z:  # the fixture says what it should
        assert sorted(z.getnames()) == ["../evil.pkl", "/etc/x.pkl", "ok.txt"]
    found = scan(data)
    unsafe = {f.path for f in found or [] if f.code == "archive.unsafe-name"}
    assert unsafe == {"x.7z!../evil.pkl", "x.7z!/etc/x.pkl"}
    assert {f.path for f in found or [] if f.code == "pickle.dangerous-global"} == unsafe
    assert all(f.severity >= Severity.HIGH for f in found or [] if f.code == "archive.unsafe-name")


def test_a_link_member_named_as_a_pickle(tmp_path: Path) -> None:
    link = tmp_path / "model.pkl"
    link.symlink_to("/etc/passwd")
    archive = tmp_path / "x.7z"
    with py7zr.SevenZipFile(archive, "w") as z:
        z.write(link, "model.pkl")
    assert codes(scan(archive.read_bytes())) == {"archive.link-member"}


# -- class 8 for 7z: encryption is its own finding ---------------------------------------------------


def test_an_encrypted_7z_is_reported_as_encrypted() -> None:
    found = scan(seven([("model.pkl", EVAL)], password="secret"))
    assert [(f.code, f.path, f.severity) for f in found or []] == [
        ("archive.encrypted", "x.7z!model.pkl", Severity.MEDIUM)
    ]
    assert "encrypted member: cannot be scanned" in (found or [])[0].message
    found = scan(seven([("model.pkl", EVAL)], password="secret", header_encryption=True))
    assert [(f.code, f.path) for f in found or []] == [("archive.encrypted", "x.7z")]


def test_an_encrypted_member_beside_a_plain_one() -> None:
    plain = seven([("evil.pkl", EVAL)])
    outer = build_zip([Member("plain.7z", plain), Member("locked.7z", seven([("a.pkl", EVAL)], password="pw"))])
    found = scan(outer, "x.zip")
    assert {(f.code, f.path) for f in found or []} == {
        ("pickle.dangerous-global", "x.zip!plain.7z!evil.pkl"),
        ("archive.encrypted", "x.zip!locked.7z!a.pkl"),
    }


# -- bounds --------------------------------------------------------------------------------------


def test_a_7z_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import hfa.scan.limits as limits

    monkeypatch.setattr(limits, "DECODE_FLOOR", 1 << 20)  # the budget of a small file, without 64 MiB here
    bomb = seven([("model.pkl", b"\x80\x02" + b"\x00" * (8 << 20))])  # 8 MiB that pack into ~1 KB
    assert len(bomb) * limits.DECODE_RATIO < 1 << 20
    start = time.perf_counter()
    found = scan(bomb)
    assert codes(found) == {"archive.too-large"} and time.perf_counter() - start < 1.0


def test_members_are_bounded_in_number(monkeypatch: pytest.MonkeyPatch) -> None:
    import hfa.scan.sevenzip as sevenzip

    monkeypatch.setattr(sevenzip, "MAX_MEMBERS", 3)
    found = scan(seven([(f"m{i}.txt", b"x") for i in range(4)] + [("evil.pkl", EVAL)]))
    assert codes(found) == {"scan.too-costly"}


def test_decoding_past_the_budget_stops_the_scan() -> None:
    from hfa.scan.archive import FileScan
    from hfa.scan.limits import Work
    from hfa.scan.sevenzip import _Factory, _Stop

    out = FileScan(POLICY, Work(0))
    out.work.decode_left = 10
    member = _Factory(out, 0).create("0")
    member.write(b"x" * 10)
    with pytest.raises(_Stop):
        member.write(b"x")
    assert out.work.exhausted


def test_a_huge_declared_header_is_not_read() -> None:
    data = bytearray(seven([("a.pkl", EVAL)]))
    data[20:28] = struct.pack("<Q", 1 << 40)
    assert codes(scan(bytes(data))) == {"archive.malformed"}


def test_without_py7zr_a_7z_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = seven([("model.pkl", BENIGN)])
    monkeypatch.setitem(sys.modules, "py7zr", None)  # import fails as if it were not installed
    for name in ("x.7z", "blob"):
        found = scan(data, name)
        assert codes(found) == {"archive.unscannable"} and worst(found) is Severity.HIGH
        assert "py7zr not installed" in (found or [])[0].message and "hfa[scan]" in (found or [])[0].message


def test_the_cli_fails_on_a_7z_payload(tmp_path: Path) -> None:
    from helpers import hfa

    (tmp_path / "model.7z").write_bytes(seven([("model.pkl", EVAL)]))
    result = hfa("scan", str(tmp_path / "model.7z"), "--json")
    assert result.exit_code == 1, result.stderr
    assert '"pickle.dangerous-global"' in result.stdout and "model.7z!model.pkl" in result.stdout


def test_sarif_has_rules_for_the_new_codes() -> None:
    from hfa.scan.report import RULES

    for code in ("archive.encrypted", "archive.unsupported-container", "archive.unsafe-name", "archive.unscannable"):
        assert code in RULES


# -- fuzz: a mutated 7z always gets a verdict, never an error -------------------------------------

_FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
_SEVENS = [
    seven([("model.pkl", EVAL), ("b.txt", b"text" * 10)]),
    seven([("a.pkl", BENIGN)], filters=FILTERS["copy"]),
    seven([("a.pkl", EVAL)], password="pw"),
    seven([("a.pkl", EVAL), ("c", b"x")], plain_header=True),
]


@_FUZZ
@given(mutated(_SEVENS, keep=7))
def test_mutated_7z_archives_always_get_a_verdict(data: bytes) -> None:
    found = scan(data, "model.7z")
    assert found is not None and all(isinstance(f, Finding) for f in found)
