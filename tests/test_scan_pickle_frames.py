"""Frames (protocol 4+) are enforced: an opcode that crosses its frame's end, or a frame that disagrees
with the stream, is critical, and the pickle is also judged as CPython reads it from a file.

CPython reads a crossing two ways (see hfa/scan/pickles/reader.py): straight on (``pickle.loads``) or,
from a file whose frame was read with ``read(n)``, by dropping the rest of the frame and reading the
argument afresh from its end. Fixtures are written opcode by opcode; nothing is unpickled.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scan_corpus import Asm, reduce_pickle

from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles import scan_pickle
from hfa.scan.pickles.events import DROPPED

POLICY = ScanPolicy()


def scan(data: bytes) -> list[Finding]:
    return scan_pickle(io.BytesIO(data), "blob", POLICY)


def frame(n: int) -> bytes:
    return b"\x95" + struct.pack("<Q", n)


def hidden_call(pad: int = 0) -> bytes:
    """The evasion: a 3+pad byte frame ends inside BINBYTES' length. Read straight on, the length covers
    ``GLOBAL os.system`` + ``REDUCE`` as a bytes literal; read from a file, the length is read afresh
    at the frame's end (0), and the call runs."""
    hidden = b"0cos\nsystem\n(S'id'\ntR"  # POP the empty bytes, then os.system('id')
    body = b"N0" * pad + b"B" + struct.pack("<H", 2 + len(hidden))  # the length's low half, in the frame
    return b"\x80\x04" + frame(len(body)) + body + b"\x00\x00" + b"\x00\x00" + hidden + b"."


def codes(found: list[Finding]) -> set[str]:
    return {f.code for f in found}


def test_the_evasion_file_is_critical_and_its_hidden_call_is_found() -> None:
    data = hidden_call()
    # A straight parser (pickletools) sees one bytes literal and no import at all.
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    assert "GLOBAL" not in ops and "REDUCE" not in ops
    found = scan(data)
    overrun = [f for f in found if f.code == "pickle.frame-overrun"]
    assert overrun and overrun[0].severity is Severity.CRITICAL
    hits = [f for f in found if f.code == "pickle.dangerous-global"]
    assert [(f.detail["module"], f.detail["name"], f.detail.get("context")) for f in hits] == [
        ("os", "system", DROPPED)
    ]
    assert "calls it" in hits[0].message


def test_valid_frames_are_clean_at_every_protocol_and_size() -> None:
    for proto in (4, 5):
        for obj in ({"a": [1, 2, "x" * 300]}, [b"x" * 70_000, "y" * 70_000, 3], list(range(20_000))):
            assert scan(pickle.dumps(obj, protocol=proto)) == []


def _boundaries(body: bytes) -> set[int]:
    """Offsets in ``body`` (a pickle without PROTO) where an opcode starts, and its end."""
    starts = {pos for _, _, pos in pickletools.genops(body)}
    return starts | {len(body)}


BENIGN_BODY = Asm(4).str("k" * 40).op("MEMOIZE").op("BINBYTES", b"v" * 30).op("TUPLE2").stop()[2:]


@given(st.integers(min_value=0, max_value=len(BENIGN_BODY) + 4))
@settings(max_examples=200, deadline=None)
def test_frames_of_every_size_around_each_boundary(k: int) -> None:
    """FRAME k over a prefix of the body, the rest unframed (as picklers write large payloads)."""
    data = b"\x80\x04" + frame(k) + BENIGN_BODY
    found = scan(data)
    worst = max((f.severity for f in found), default=None)
    if k > len(BENIGN_BODY):
        assert worst is not None and worst >= Severity.HIGH  # runs past the end: cannot be proven safe
    elif k in _boundaries(BENIGN_BODY) and k < len(BENIGN_BODY):
        assert found == [], found  # a frame that ends between two opcodes
    elif k == len(BENIGN_BODY):
        assert found == []
    else:
        assert "pickle.frame-overrun" in codes(found) and worst is Severity.CRITICAL


@given(st.integers(min_value=0, max_value=12), st.integers(min_value=-3, max_value=3))
@settings(max_examples=150, deadline=None)
def test_a_call_after_a_frame_is_found_whatever_the_frame_size(pad: int, delta: int) -> None:
    """os.system after a frame of pad no-ops, the frame shrunk or stretched by delta bytes."""
    body = b"N0" * pad + reduce_pickle("os", "system", proto=4)[11:]  # the opcodes of framed(4, ...)
    k = max(0, 2 * pad + delta)
    found = scan(b"\x80\x04" + frame(k) + body)
    assert any(f.severity is Severity.CRITICAL for f in found)


@given(st.integers(min_value=0, max_value=40))
@settings(max_examples=41, deadline=None)
def test_the_evasion_is_found_with_any_padding(pad: int) -> None:
    found = scan(hidden_call(pad))
    assert "pickle.frame-overrun" in codes(found)
    assert any(f.code == "pickle.dangerous-global" and f.detail["name"] == "system" for f in found)


def test_a_frame_inside_a_frame_is_a_mismatch() -> None:
    inner = b"N0" + frame(2) + b"N."
    data = b"\x80\x04" + frame(len(inner) + 5) + inner  # the outer frame claims more than there is
    assert any(f.code in ("pickle.frame-mismatch", "pickle.malformed") for f in scan(data))
    inner = frame(2) + b"N."
    data = b"\x80\x04" + frame(len(inner)) + inner
    found = scan(data)
    assert "pickle.frame-mismatch" in codes(found)
    assert max(f.severity for f in found) is Severity.CRITICAL


def test_a_pickle_that_stops_before_its_frame_ends_is_a_mismatch() -> None:
    body = b"N.N0"  # STOP, then bytes the framed reader swallows
    found = scan(b"\x80\x04" + frame(len(body)) + body)
    assert "pickle.frame-mismatch" in codes(found)


def test_a_long_unicode_crossing_a_frame_is_read_afresh_in_the_file_reading() -> None:
    """BINUNICODE's payload is dropped and re-read from the frame end (not read through like BINBYTES)."""
    hidden = b"cos\nsystem\n(S'id'\ntR."
    # frame: 'X' + length 4, and 1 byte of payload; straight: a 4-byte str "a" + 3 bytes; file: 4 bytes afresh.
    body = b"X" + struct.pack("<I", 4) + b"a"
    tail = b"bcd" + b"0" + hidden  # straight: str 'abcd', POP, os.system
    found = scan(b"\x80\x04" + frame(len(body)) + body + tail)
    assert "pickle.frame-overrun" in codes(found)
    assert any(f.code == "pickle.dangerous-global" for f in found)


def test_bytes_payload_crossing_is_read_through_in_both_readings() -> None:
    """BINBYTES' payload crossing the frame end is read straight on even from a file (ReadInto)."""
    body = b"B" + struct.pack("<I", 3) + b"a"
    data = b"\x80\x04" + frame(len(body)) + body + b"bc."
    found = scan(data)
    assert codes(found) == {"pickle.frame-overrun"}  # nothing else: both readings agree on what runs


def test_frames_in_a_stream_of_unknown_size(tmp_path: object) -> None:
    from hfa.scan.pickles import scan_pickles

    data = hidden_call(3)
    rep = scan_pickles(io.BytesIO(data), "blob", POLICY, stream=True)
    assert "pickle.frame-overrun" in codes(rep.findings)
    assert any(f.code == "pickle.dangerous-global" for f in rep.findings)


SEEDS = [
    hidden_call(2),
    b"\x80\x04" + frame(len(BENIGN_BODY)) + BENIGN_BODY,
    b"\x80\x04" + frame(5) + b"X" + struct.pack("<I", 4) + b"abcd" + b"0cos\nsystem\n(S'id'\ntR.",
]


@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_mutated_framed_pickles_always_get_a_verdict(seed: bytes, edits: list[tuple[int, int]], stream: bool) -> None:
    """Byte edits anywhere in framed pickles (frame lengths included): a verdict, never an exception."""
    from hfa.scan.pickles import scan_pickles

    data = bytearray(seed)
    for at, byte in edits:
        data[at % len(data)] = byte
    found = scan_pickles(io.BytesIO(bytes(data)), "blob", POLICY, stream=stream).findings
    assert all(isinstance(f, Finding) for f in found)
