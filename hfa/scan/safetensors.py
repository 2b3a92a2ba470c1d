"""safetensors headers: sane length, valid JSON, known dtypes, byte spans that match shapes and tile the data.

The safetensors library applies these rules when it opens a file, but opening needs a
tensor framework (numpy or torch) that hfa does not depend on, and it stops at the first
problem with a terse error. hfa applies the same rules (the library's header limit,
dtypes, offsets that tile the data exactly) from the header alone, without mapping the
tensor data, says which rule broke, and adds one the library lets through: duplicate keys
in the header JSON (the last one silently wins there).
"""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO

from hfa.scan.model import Finding, Severity

MAX_HEADER = 100 * 1024 * 1024  # the library's own limit
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}  # fmt: skip


def looks_like_safetensors(head: bytes) -> bool:
    """8-byte little-endian header length, then a JSON object."""
    if len(head) < 10:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= MAX_HEADER and head[8:9] == b"{"


def _bad(display: str, why: str, **detail: Any) -> list[Finding]:
    return [Finding(Severity.HIGH, "safetensors.invalid", f"invalid safetensors file: {why}", display, detail)]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def check_safetensors(fp: BinaryIO, display: str, size: int | None = None) -> list[Finding]:
    if size is None:
        size = os.fstat(fp.fileno()).st_size
    fp.seek(0)
    raw_len = fp.read(8)
    if len(raw_len) < 8:
        return _bad(display, "shorter than the 8-byte header length")
    n = int.from_bytes(raw_len, "little")
    if n > MAX_HEADER:
        return _bad(display, f"header length {n} is over the {MAX_HEADER}-byte limit (an LFS stub?)")
    if 8 + n > size:
        return _bad(display, f"header length {n} runs past the end of the file ({size} bytes)")
    raw = fp.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        return _bad(display, f"header is not valid JSON ({exc})")
    if not isinstance(header, dict):
        return _bad(display, "header is not a JSON object")
    data_len = size - 8 - n
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return _bad(display, "__metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
            return _bad(display, f"tensor {name!r} has unexpected fields", tensor=name)
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BITS:
            return _bad(display, f"tensor {name!r} has unknown dtype {dtype!r}", tensor=name)
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return _bad(display, f"tensor {name!r} has an invalid shape", tensor=name)
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        ):
            return _bad(display, f"tensor {name!r} has invalid data_offsets", tensor=name)
        begin, end = offsets
        if not 0 <= begin <= end:
            return _bad(display, f"tensor {name!r} has data_offsets out of order", tensor=name)
        count = 1
        for d in shape:
            count *= d
        bits = count * DTYPE_BITS[dtype]
        if bits % 8 or end - begin != bits // 8:
            return _bad(
                display,
                f"tensor {name!r}: shape {shape} × {dtype} needs {bits / 8:g} bytes but spans {end - begin}",
                tensor=name,
            )
        spans.append((begin, end, name))
    spans.sort()
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            why = "overlaps the previous tensor" if begin < cursor else f"leaves a gap of {begin - cursor} bytes"
            return _bad(display, f"tensor {name!r} {why}", tensor=name)
        cursor = end
    if cursor > data_len:
        return _bad(display, f"tensors span {cursor} bytes but the file holds {data_len}")
    if cursor < data_len:
        return _bad(display, f"{data_len - cursor} trailing bytes after the last tensor")
    return []
