"""hfa's own safetensors header check against the reference parser, ``safetensors.deserialize``.

hfa's scanner keeps its own bounded parser (no tensor framework, no data mapped, says which rule
broke); the safetensors library is only the yardstick here. On generated files, valid and broken
in the ways real files break, the two must agree, with one direction allowed to differ: hfa is
stricter on purpose (duplicate keys in the header JSON, where the library lets the last one win,
and fields a tensor entry does not have). Whatever the library refuses, hfa flags (fail closed).
"""

from __future__ import annotations

import io
import json
from typing import Any

import safetensors  # the dev extra brings it: the reference parser
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hfa.scan.safetensors import DTYPE_BITS, check_safetensors
from hfa.testing import make_safetensors


def reference_accepts(data: bytes) -> bool:
    try:
        safetensors.deserialize(data)
    except Exception:  # SafetensorError, or the bindings' own errors on absurd input
        return False
    return True


def hfa_accepts(data: bytes) -> bool:
    return check_safetensors(io.BytesIO(data), "x.safetensors", len(data)) == []


# A file: tensors with dtype and shape, laid out in order; then, maybe, one of the breakages
# real files show (a wrong dtype or span, a gap, an overlap, bytes missing or left over).
_DTYPES = sorted(DTYPE_BITS)
_tensor = st.tuples(
    st.sampled_from([*_DTYPES, "Q9", "f32", ""]),
    st.lists(st.integers(0, 6), max_size=3),
)


@st.composite
def files(draw: Any) -> tuple[bytes, bool]:
    """(file bytes, whether hfa may be stricter than the library on it)."""
    tensors = draw(st.dictionaries(st.text("abcxyz._", min_size=1, max_size=6), _tensor, max_size=4))
    header: dict[str, Any] = {}
    if draw(st.booleans()):
        header["__metadata__"] = draw(
            st.one_of(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2), st.just({"k": 1}))
        )
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        bits = count * DTYPE_BITS.get(dtype, 8)
        nbytes = -(-bits // 8)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    stricter = False
    names = [n for n in header if n != "__metadata__"]
    if names and draw(st.booleans()):
        entry = header[draw(st.sampled_from(names))]
        change = draw(st.sampled_from(["begin", "end", "extra", "shape", "offsets"]))
        if change == "begin":
            entry["data_offsets"][0] += draw(st.integers(-3, 3))
        elif change == "end":
            entry["data_offsets"][1] += draw(st.integers(-3, 3))
        elif change == "extra":
            entry["extra"] = 1
            stricter = True
        elif change == "shape":
            entry["shape"] = draw(st.sampled_from([[-1], [1.5], "2", None, [True]]))
        else:
            entry["data_offsets"] = draw(st.sampled_from([[0], [1, 0], [0, 1, 2], None, [-1, 0]]))
    raw = json.dumps(header).encode()
    if names and draw(st.integers(0, 9)) == 0:  # the first tensor twice: JSON allows it, hfa does not
        first = json.dumps({names[0]: header[names[0]]})[1:-1]
        raw = b"{" + first.encode() + b", " + raw[1:]
        stricter = True
    data = bytes(offset + draw(st.sampled_from([0, 0, 0, -1, 1, 8])) if offset else draw(st.sampled_from([0, 0, 1])))
    return len(raw).to_bytes(8, "little") + raw + data, stricter


def _one(dtype: str, shape: list[int], offsets: list[int], data: bytes) -> bytes:
    raw = json.dumps({"t": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files())
@example((_one("F4", [3], [0, 1], b"x"), False))  # 12 bits: no whole number of bytes
@example((_one("F6_E2M3", [4], [0, 3], b"xyz"), False))  # 24 bits: 3 bytes
@example((_one("U8", [2], [0, 2], b"xyz"), False))  # a byte left over
def test_hfa_agrees_with_the_reference_parser(case: tuple[bytes, bool]) -> None:
    data, stricter = case
    reference, ours = reference_accepts(data), hfa_accepts(data)
    if not reference:
        assert not ours, "the safetensors library refuses this file, hfa let it through"
    elif not stricter:
        assert ours, check_safetensors(io.BytesIO(data), "x", len(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_what_the_reference_parser_refuses_hfa_flags(data: bytes) -> None:
    if not reference_accepts(data):
        assert not hfa_accepts(data)


_made = st.tuples(
    st.sampled_from(["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]),  # make_safetensors' dtypes
    st.lists(st.integers(0, 6), max_size=3),
)


@given(st.dictionaries(st.text("abc", min_size=1, max_size=4), _made, max_size=4))
def test_the_test_suites_files_are_valid_for_both(tensors: dict[str, tuple[str, list[int]]]) -> None:
    data = make_safetensors(tensors)
    assert reference_accepts(data) and hfa_accepts(data)
