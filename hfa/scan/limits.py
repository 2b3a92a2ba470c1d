"""How much work the scanner spends on one file: bounded, relative to the file's size and absolutely.

A hostile file can make a scanner slow in two ways: by decompressing to far more than it is
(a compression bomb), and by holding millions of opcodes that do nothing (an opcode bomb: a
simulated unpickler walks a few million opcodes a second). One :class:`Work` budget is shared
by everything one top-level file leads to (its members, nested archives, stacked pickles,
shadow scans); past it the scan stops and the file is a finding (``scan.too-costly``, high),
so a bomb is reported in a fraction of a second instead of minutes. The numbers are in
docs/security.md.
"""

from __future__ import annotations

# Opcodes the simulated unpickler may walk per file: 8 per byte of input (an uncompressed pickle
# has at most 1 per byte, so only decompressed content can reach it; joblib's xz of a dict of
# 400,000 entries needs ~7), at least OPS_FLOOR (~0.6 s here), at most OPS_CAP (~20 s).
OPS_PER_BYTE = 8
OPS_FLOOR = 2 << 20
OPS_CAP = 1 << 26
# Bytes decompressed per file, all streams together: 256 per byte of input, at least 64 MiB,
# at most 64 GiB. Deflate cannot exceed ~1032:1; real model files compress far less than 256:1.
DECODE_RATIO = 256
DECODE_FLOOR = 64 << 20
DECODE_CAP = 64 << 30
# What reading one archive member costs, in opcodes (bounds archives of millions of tiny members).
MEMBER_COST = 256
MAX_DEPTH = 3  # containers inside containers (a zip in a gzip in a tar ...)
MAX_MEMBERS = 1 << 16  # tar members read per archive


class Work:
    """The budget of one top-level file: opcodes and decompressed bytes left."""

    __slots__ = ("decode_left", "exhausted", "ops_left", "reported")

    def __init__(self, size: int | None) -> None:
        size = max(0, size or 0)
        self.ops_left = min(OPS_CAP, max(OPS_FLOOR, OPS_PER_BYTE * size))
        self.decode_left = min(DECODE_CAP, max(DECODE_FLOOR, DECODE_RATIO * size))
        self.exhausted = False  # the scan stopped at a bound: nothing more is read
        self.reported = False  # its finding has been issued

    def charge(self, ops: int) -> bool:
        """Spend ``ops``; False (and exhausted) when the budget is gone."""
        self.ops_left -= ops
        if self.ops_left < 0:
            self.exhausted = True
        return not self.exhausted
