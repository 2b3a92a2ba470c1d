"""Pickles nested in the values of a pickle (hfa/scan/pickles/nested.py): a bytes value, a latin-1 text
(protocols 0-2 write bytes through _codecs.encode), base64 or hex text that is or decodes to a pickle
is scanned as pickle.loads would read it; its imports are judged as the outer one's, reported with the
path to the value. Nothing is unpickled: payloads are assembled or pickle.dumps of harmless values."""

from __future__ import annotations

import base64
import io
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st
from scan_corpus import Asm, reduce_pickle

from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles import scan_pickle
from hfa.scan.pickles.nested import MAX_DEPTH

POLICY = ScanPolicy()
EVIL = reduce_pickle("os", "system", proto=2)
EVIL0 = b"cos\nsystem\n(S'id'\ntR."


def scan(data: bytes) -> list[Finding]:
    return scan_pickle(io.BytesIO(data), "blob", POLICY)


def holder(value: bytes | str, proto: int = 4, *, pad: int = 0) -> bytes:
    """{"blob": value} (a dict of one value, as a checkpoint's extra state would hold it)."""
    a = Asm(proto).op("EMPTY_DICT").str("blob")
    if isinstance(value, str):
        a.op("BINUNICODE", value) if proto >= 1 else a.op("UNICODE", value)
    elif proto >= 3:
        a.op("BINBYTES", value)
    else:  # protocols 0-2: bytes are _codecs.encode(latin-1 text, "latin1")
        a.call("_codecs", "encode", lambda x: x.op("BINUNICODE", value.decode("latin-1")), lambda x: x.str("latin1"))
    return a.raw(b"N0" * pad).op("SETITEM").stop()


def nested_hits(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.code == "pickle.dangerous-global" and "nested" in f.detail.get("context", "")]


def test_a_bytes_value_that_is_a_pickle_is_scanned_with_its_path() -> None:
    found = scan(holder(EVIL))
    [hit] = nested_hits(found)
    assert hit.severity is Severity.CRITICAL and hit.detail["name"] == "system"
    assert hit.detail["context"].startswith("nested in bytes at offset ")
    assert "calls it" in hit.message


def test_a_latin1_text_written_by_codecs_encode_is_scanned() -> None:
    assert nested_hits(scan(holder(EVIL, proto=2)))


def test_base64_and_hex_text_are_decoded_and_scanned() -> None:
    for text in (base64.b64encode(EVIL).decode(), base64.urlsafe_b64encode(EVIL0).decode(), EVIL.hex(), EVIL0.hex()):
        [hit] = nested_hits(scan(holder(text)))
        assert ("base64" in hit.detail["context"]) or ("hex" in hit.detail["context"])


def test_large_values_are_looked_into_without_being_kept() -> None:
    padded = EVIL[:-1] + b"0" + b"N0" * 5000 + b"N."  # an evil pickle 10 KB long: a skipped payload
    assert nested_hits(scan(holder(padded)))
    assert nested_hits(scan(holder(base64.b64encode(padded).decode())))
    assert nested_hits(scan(Asm(5).op("BYTEARRAY8", padded).stop()))


def test_nesting_is_followed_to_the_limit_and_deeper_is_a_finding() -> None:
    value = EVIL
    for _ in range(MAX_DEPTH):
        value = holder(base64.b64encode(value).decode())
    found = scan(value)
    [hit] = nested_hits(found)
    assert hit.detail["context"].count("nested") == MAX_DEPTH
    deeper = scan(holder(base64.b64encode(value).decode()))
    assert not nested_hits(deeper)
    assert any(f.code == "pickle.malformed" and "nested more than" in f.message for f in deeper)


def test_benign_values_stay_clean() -> None:
    inner = pickle.dumps({"a": [1, 2, 3]}, protocol=4)
    for value in (inner, base64.b64encode(inner).decode(), inner.hex(), b"\x00" * 100, bytes(range(256)) * 20,
                  "deadbeef" * 4, "VGhpcyBpcyBqdXN0IHRleHQu", "just some words in a sentence here"):  # fmt: skip
        assert scan(holder(value)) == [], value
    for proto in range(6):
        assert scan(pickle.dumps([b"\x80\x04 not really", "gASVbm90IHJlYWxseQ==", "80" * 40], protocol=proto)) == []


def test_a_nested_benign_pickle_with_an_unknown_class_is_high() -> None:
    found = scan(holder(reduce_pickle("somepkg", "Gadget", proto=4)))
    assert [f.severity for f in found] == [Severity.HIGH]
    assert "nested" in found[0].detail["context"]


ENCODINGS = ["bytes", "latin1", "base64", "urlsafe", "hex", "HEX"]


def _encode(payload: bytes, how: str) -> bytes | str:
    if how == "bytes":
        return payload
    if how == "latin1":
        return payload.decode("latin-1")
    if how == "base64":
        return base64.b64encode(payload).decode()
    if how == "urlsafe":
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return payload.hex().upper() if how == "HEX" else payload.hex()


@given(st.sampled_from(ENCODINGS), st.integers(0, 5), st.integers(0, 5), st.integers(0, 300))
@settings(max_examples=120, deadline=None)
def test_every_encoding_protocol_and_size_is_found(how: str, inner: int, outer: int, pad: int) -> None:
    payload = reduce_pickle("os", "system", proto=inner)
    payload = payload[:-1] + b"0" + b"N0" * pad + b"N."  # grow it past the kept sizes
    value = _encode(payload, how)
    found = scan(holder(value, proto=max(outer, 1)))
    assert nested_hits(found), (how, inner, outer, pad)


@given(
    st.sampled_from([holder(EVIL), holder(base64.b64encode(EVIL).decode()), holder(EVIL.hex()), holder(EVIL, proto=2)]),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
)
@settings(max_examples=150, deadline=None)
def test_mutated_nested_values_always_get_a_verdict(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for at, byte in edits:
        data[at % len(data)] = byte
    assert all(isinstance(f, Finding) for f in scan(bytes(data)))
