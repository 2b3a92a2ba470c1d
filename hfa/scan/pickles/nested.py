"""Pickles inside the values of a pickle: a bytes value that is itself a pickle, or a text value
that is one (latin-1, as protocols 0-2 write bytes through ``_codecs.encode``) or decodes to one
from base64 or hex: the staging pattern of attacks that call ``pickle.loads`` (or a gadget that
does) on a value the outer pickle carries.

Each bytes or text value of at least :data:`MIN_SIZE` bytes is tested by its head: does it start
a pickle (a probe of 64 opcodes at most, as :func:`hfa.scan.pickles.scan.probe_pickle`)? If so it is scanned
as ``pickle.loads`` would read it, with the same judge: its imports and calls are findings like
the outer pickle's, their ``context`` the path to the value (``nested in base64 text at offset
120 > nested in bytes at offset 9``). What it cannot follow is not reported (it is data, not the
stream being judged); what it imports is. Bounded: :data:`MAX_DEPTH` levels, encoded values up to
:data:`MAX_DECODED` bytes, :data:`MAX_VALUES` nested pickles per stream, and all on the file's
work budget. A value past a bound that still starts a pickle is a finding (high).
"""

from __future__ import annotations

import io

from hfa.scan.pickles.errors import ComputedImport, Enough, Malformed, TooCostly, Truncated
from hfa.scan.pickles.reader import Reader
from hfa.scan.pickles.values import HEAD, LazyStr

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any

    Simulator = Any  # hfa.scan.pickles.handlers.Simulator, which imports this module: used as type(sim)

MIN_SIZE = 8  # the smallest pickle that imports something: "cos\nx\n."
MAX_DEPTH = 3  # pickles in values in pickles ...
MAX_DECODED = 64 << 20  # base64 / hex text decoded in memory to be scanned
MAX_VALUES = 256  # nested pickles scanned per stream; past it one finding
PROBE_COST = 64  # opcodes of the file's budget charged per value probed

_HEX = frozenset("0123456789abcdefABCDEF")
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_\n\r")


# Opcodes a pickle can start with (they push without popping); and bytes an import needs (GLOBAL and
# INST end their names with a newline; STACK_GLOBAL; EXT1-4).
_FIRST_BYTES = b"(c]})NIJKLMSTUVXBCFGP\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x95\x96\x97\x82\x83\x84"
_FIRST = frozenset(_FIRST_BYTES)
_IMPORTS = (b"\n", b"\x93", b"\x82", b"\x83", b"\x84")
_FIRST_TEXT = frozenset(_FIRST_BYTES.decode("latin-1"))
_IMPORTS_TEXT = tuple(x.decode("latin-1") for x in _IMPORTS)
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# What the handlers test before calling look(), so that most values cost a set lookup: the first byte
# of bytes; the first character of latin-1 text; text that is base64 or hex throughout (str.strip of
# the alphabet leaves nothing) and long enough.
BYTE_STARTS = frozenset([*_FIRST, 0x80])
LATIN1_STARTS = frozenset([*_FIRST_TEXT, "\x80"])
ENCODED_CHARS = _B64_ALPHABET + "=-_\n\r"
_URLSAFE = _B64_ALPHABET[:62] + "-_"
# The first two characters of base64 (standard or URL-safe) or hex text that decodes to a pickle.
ENCODED_PREFIXES = frozenset(
    [
        *(
            a[b >> 2] + a[((b & 3) << 4) | low]
            for a in (_B64_ALPHABET, _URLSAFE)
            for b in BYTE_STARTS
            for low in range(16)
        ),
        *(f"{b:02x}" for b in BYTE_STARTS),
        *(f"{b:02X}" for b in BYTE_STARTS),
    ]
)
ENCODED_FIRST = frozenset(prefix[0] for prefix in ENCODED_PREFIXES)


def _plausible(head: bytes) -> bool:
    """A cheap test before the probe: PROTO 2-5, or a first opcode that pushes and a byte an import needs
    (or a head too long to tell)."""
    if len(head) < 2:
        return False
    b0 = head[0]
    if b0 == 0x80:
        return 2 <= head[1] <= 5
    return b0 in _FIRST and (len(head) >= HEAD or any(x in head for x in _IMPORTS))


def _starts_pickle(sim: Simulator, head: bytes, whole: bool) -> bool:
    """Whether ``head`` (all of the value when ``whole``) starts a pickle (a probe of at most 64 opcodes)."""
    if not _plausible(head):
        return False
    if not sim.work.charge(PROBE_COST):
        raise TooCostly("more opcodes than the scan's budget (values that may hold pickles)", sim.r.tell())
    # As hfa.scan.pickles.scan.probe_pickle does, with the simulator's own class (no import cycle).
    probe = type(sim)(Reader(io.BytesIO(head), 0, len(head), stream=False, chunk=HEAD), None, mode="probe", budget=64)
    try:
        probe.run_pickle()
    except Enough:
        return True
    except Truncated:
        return bool(probe.imports) or (not whole and probe.ops >= 2)
    except Malformed:
        return bool(probe.imports)
    return True  # a whole pickle, to its STOP


def _decode(text: str, how: str) -> bytes | None:
    import binascii  # a C module; imported only for text that looks encoded

    try:
        if how == "hex":
            return binascii.unhexlify(text[: len(text) // 2 * 2])
        clean = text.replace("\n", "").replace("\r", "").replace("-", "+").replace("_", "/")
        clean = clean.rstrip("=")
        clean = clean[: len(clean) // 4 * 4] if len(clean) % 4 == 1 else clean + "=" * (-len(clean) % 4)
        return binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        return None


def _encodings(text: str) -> list[str]:
    """How a text head could hold a pickle: latin-1 bytes, hex, base64."""
    ways = []
    if text[:1] == "\x80" or (text[:1] in _FIRST_TEXT and any(x in text for x in _IMPORTS_TEXT)):
        ways.append("latin1")
    if len(text) >= 2 * MIN_SIZE and text[:2] in ENCODED_PREFIXES:
        chars = frozenset(text)
        if chars <= _HEX:
            ways.append("hex")
        elif chars <= _B64:
            ways.append("base64")
    return ways


def look(sim: Simulator, value: Any, at: int, opname: str) -> None:
    """Test one bytes or text value pushed by the opcode at ``at``; scan it if it holds a pickle."""
    if sim.nested_left < 0:
        return  # past MAX_VALUES: reported once
    r = sim.r
    head: bytes | str
    if isinstance(value, LazyStr):
        size = value.size
        raw = value.head
        if raw is None:
            if r.stream:
                return  # a decompressing stream cannot go back cheaply (a frame ended inside the value)
            raw = r.read_at(value.offset, min(size, HEAD))
        if value.kind == "bytes":
            head = raw
        else:
            head = (raw.decode("utf-8", "ignore") if value.kind == "utf8" else raw.decode("latin-1"))[:HEAD]
    else:
        size = len(value)
        head = value[:HEAD]
    whole = size <= HEAD
    if isinstance(head, bytes):
        if _starts_pickle(sim, head, whole):
            _scan(sim, value, at, "bytes", size)
        return
    for how in _encodings(head):
        if how == "latin1":
            data: bytes | None = head.encode("latin-1", "replace")
        else:
            data = _decode(head if whole else head[: len(head) // 4 * 4], how)
        if data is not None and _starts_pickle(sim, data[:HEAD], whole):
            _scan(sim, value, at, how, size)
            return


def _scan(sim: Simulator, value: Any, at: int, how: str, size: int) -> None:
    sim.nested_left -= 1
    where = f"nested in {'bytes' if how == 'bytes' else how + ' text'} at offset {at}"
    context = where if not sim.context else f"{sim.context} > {where}"
    if sim.depth >= MAX_DEPTH:
        sim.events.problem(f"a pickle nested more than {MAX_DEPTH} deep in values is not looked into", at, context)
        return
    if sim.nested_left < 0:
        sim.events.problem(f"more than {MAX_VALUES} values that hold pickles: the rest are not looked into", at, "")
        return
    r = sim.r
    if how == "bytes" and isinstance(value, LazyStr):
        reader = Reader(r.fp, value.offset, value.offset + value.size, stream=r.stream)
    else:
        if size > MAX_DECODED:
            sim.events.problem(f"a value of {size} bytes that starts a pickle is too large to look into", at, context)
            return
        if isinstance(value, LazyStr):
            raw = r.read_at(value.offset, value.size)
            value = (
                raw if value.kind == "bytes" else raw.decode("utf-8" if value.kind == "utf8" else "latin-1", "replace")
            )
        if isinstance(value, bytes):
            data: bytes | None = value
        elif how == "latin1":
            data = value.encode("latin-1", "replace")
        else:
            data = _decode(value, how)
        if data is None:
            return
        reader = Reader(io.BytesIO(data), 0, len(data), stream=False)
    nested = type(sim)(reader, sim.events, mode="plain", depth=sim.depth + 1, work=sim.work)
    nested.context = context
    nested.pickle_index = sim.pickle_index
    nested.nested_left = sim.nested_left
    try:
        nested.run_pickle()
    except TooCostly:
        raise
    except ComputedImport as exc:
        if sim.events is not None:
            sim.events.computed_import(f"{exc.reason}, {context}", exc.offset)
    except Malformed:
        pass  # pickle.loads fails there too; what it imported before is reported
    finally:
        sim.nested_left = nested.nested_left
