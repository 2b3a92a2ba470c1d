"""Git-LFS stubs, safetensors headers and remote-code detection (content, not names)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hfa.scan.lfs import parse_pointer
from hfa.scan.model import ScanPolicy, Severity
from hfa.scan.safetensors import check_safetensors
from hfa.scan.scanner import scan_file
from hfa.testing import lfs_pointer_stub, make_safetensors


def st_check(data: bytes) -> list[str]:
    return [f.message for f in check_safetensors(io.BytesIO(data), "x.safetensors", len(data))]


def test_pointer_parsed() -> None:
    stub = lfs_pointer_stub(b"hello world")
    p = parse_pointer(stub)
    assert p is not None and p.size == 11 and len(p.oid) == 64
    assert parse_pointer(stub.replace(b"\n", b"\r\n")) is not None
    assert parse_pointer(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 3\n") is None
    assert parse_pointer(b"just text\n") is None
    assert parse_pointer(stub + b"x" * 2000) is None


@given(st.binary(max_size=400))
def test_pointer_parser_never_crashes(data: bytes) -> None:
    parse_pointer(data)


def test_valid_safetensors_is_clean() -> None:
    assert st_check(make_safetensors({"a": ("F32", [2, 3]), "b": ("BF16", [4])})) == []


def _with_header(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"\x01\x00", "shorter than the 8-byte"),
        ((10**12).to_bytes(8, "little") + b"{}", "over the"),
        ((500).to_bytes(8, "little") + b"{}", "runs past the end"),
        ((4).to_bytes(8, "little") + b"{]]]", "not valid JSON"),
        (_with_header({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}, b"\0"), "unknown dtype"),
        (_with_header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4), "needs 8 bytes"),
        (
            _with_header(
                {
                    "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                    "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]},
                },
                b"\0" * 3,
            ),
            "overlaps",
        ),
        (_with_header({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"\0" * 4), "gap"),
        (_with_header({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 5), "trailing bytes"),
        (_with_header({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 2), "holds 2"),
        (_with_header({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b""), "invalid shape"),
        (_with_header({"__metadata__": {"k": 1}}, b""), "__metadata__"),
        (len(b'{"a": 1, "a": 2}').to_bytes(8, "little") + b'{"a": 1, "a": 2}', "duplicate key"),
    ],
)
def test_invalid_safetensors(blob: bytes, why: str) -> None:
    messages = st_check(blob)
    assert messages and why in messages[0]


@given(st.binary(max_size=300))
def test_safetensors_check_never_crashes(data: bytes) -> None:
    for f in check_safetensors(io.BytesIO(data), "x", len(data)):
        assert f.severity == Severity.HIGH


def test_lfs_stub_found_by_content_whatever_the_name(tmp_path: Path) -> None:
    for name in ("model.safetensors", "pytorch_model.bin", "blob"):
        p = tmp_path / name
        p.write_bytes(lfs_pointer_stub(b"x" * 1000))
        found = scan_file(p, name, ScanPolicy())
        assert [f.code for f in found] == ["lfs.pointer-stub"]
        assert found[0].detail["size"] == 1000


def test_safetensors_found_by_content_without_extension(tmp_path: Path) -> None:
    p = tmp_path / "0123abcd"
    good = make_safetensors({"w": ("F16", [8])})
    p.write_bytes(good[:-2])  # truncated tensor data
    assert [f.code for f in scan_file(p, "blob", ScanPolicy())] == ["safetensors.invalid"]


def test_remote_code_reported(tmp_path: Path) -> None:
    code = tmp_path / "modeling_x.py"
    code.write_text("import os\n")
    assert [f.code for f in scan_file(code, "modeling_x.py", ScanPolicy())] == ["remote-code.python"]
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auto_map": {"AutoModel": "modeling_x.X"}}))
    found = scan_file(cfg, "config.json", ScanPolicy())
    assert [f.code for f in found] == ["remote-code.auto-map"] and found[0].severity == Severity.MEDIUM
    cfg.write_text("{}")
    assert scan_file(cfg, "config.json", ScanPolicy()) == []


def test_every_allowlisted_global_is_documented() -> None:
    from hfa.scan.model import DEFAULT_ALLOWLIST

    doc = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text(encoding="utf-8")
    for entry in DEFAULT_ALLOWLIST:
        module, name = entry.rsplit(".", 1)
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{module}` |")), "")
        assert f"`{name}`" in row, f"{entry} is allowlisted but not documented in docs/security.md"


# -- issue 11.2: hfa pull of weights that are a Git-LFS pointer stub ------------------------------------


def test_pull_refuses_to_publish_a_git_lfs_stub(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from helpers import hfa

    from hfa.errors import ExitCode

    cache = tmp_path / "cache"
    result = hfa("pull", "org/stub", "--endpoint", server.url, "--cache-dir", str(cache))
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "model.safetensors" in result.stderr and "Git-LFS pointer stub" in result.stderr
    assert "--allow-unsafe" in result.stderr  # the way to say otherwise
    assert not list(cache.glob("models--org--stub/snapshots/*/model.safetensors"))
    assert not [p for p in cache.glob("models--org--stub/blobs/*") if p.stat().st_size < 1024]
    told = hfa("pull", "org/stub", "--endpoint", server.url, "--cache-dir", str(cache), "--allow-unsafe")
    assert told.exit_code == 0, told.stderr
    assert list(cache.glob("models--org--stub/snapshots/*/model.safetensors"))
    assert "lfs.pointer-stub" in hfa("verify", "org/stub", "--cache-dir", str(cache), "--json").stdout
