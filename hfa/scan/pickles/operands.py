"""The arguments that follow an opcode, decoded from the reader by format (the format names are
pickletools'): :data:`ARGUMENTS` maps each format to its decoder. Payloads too large to keep are
skipped and stand in as :data:`~hfa.scan.pickles.values.BIG` or a
:class:`~hfa.scan.pickles.values.LazyStr`, read back only if a ``STACK_GLOBAL`` needs them.
"""

from __future__ import annotations

import codecs
import struct
import sys

from hfa.scan.pickles.errors import ComputedImport, Malformed
from hfa.scan.pickles.values import (
    BIG,
    BUILT,
    HEAD,
    KEEP_BYTES,
    KEEP_STR,
    LOST,
    MAX_OPERAND,
    RESULT,
    Alias,
    LazyStr,
    describe,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from hfa.scan.pickles.reader import Reader


def uint1(r: Reader) -> int:
    return r.byte()


def uint2(r: Reader) -> int:
    v: int = struct.unpack("<H", r.read(2))[0]
    return v


def int4(r: Reader) -> int:
    v: int = struct.unpack("<i", r.read(4))[0]
    return v


def uint4(r: Reader) -> int:
    v: int = struct.unpack("<I", r.read(4))[0]
    return v


def uint8(r: Reader) -> int:
    v: int = struct.unpack("<Q", r.read(8))[0]
    return v


def float8(r: Reader) -> float:
    v: float = struct.unpack(">d", r.read(8))[0]
    return v


def _long(r: Reader, n: int) -> Any:
    if n < 0:
        raise Malformed("LONG4 with a negative byte count", r.tell())
    if n > KEEP_BYTES * 16:
        r.skip(n)
        return BIG
    return int.from_bytes(r.read(n), "little", signed=True)


def long1(r: Reader) -> Any:
    return _long(r, r.byte())


def long4(r: Reader) -> Any:
    return _long(r, int4(r))


def line(r: Reader) -> bytes | tuple[int, int]:
    return r.readline(4096, 1 << 62)


def pair(r: Reader) -> tuple[Any, Any]:
    """The module and name lines of GLOBAL and INST. Where the stream ends without their newlines, the
    pure-Python unpickler (which joblib's and dill's subclass) still imports what its ``readline()[:-1]``
    leaves: the rest of the stream but its last byte, and an empty name (see ``Reader.line_or_rest``)."""
    at = r.tell()
    module, whole = r.line_or_rest(MAX_OPERAND)
    if whole:
        name, whole = r.line_or_rest(MAX_OPERAND)
        lines = [module, name if whole else name[:-1]]
    else:
        lines = [module[:-1], b""]
    try:
        return lines[0].decode("utf-8"), lines[1].decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("a GLOBAL/INST name that is not UTF-8", at) from None


def _payload(r: Reader, n: int, keep: int, kind: str) -> Any:
    """n payload bytes: kept (bytes) if small, else skipped and remembered as a lazy string / BIG."""
    if n < 0:
        raise Malformed("a negative length", r.tell())
    if n > sys.maxsize:
        raise Malformed(f"a length of {n} bytes exceeds what any unpickler accepts", r.tell())
    if n <= keep:
        return r.read(n) if kind else r.read_through(n)
    at = r.tell()
    lazy = LazyStr(at, n, kind or "bytes")
    fe = r.frame_end
    if fe is None or at + HEAD <= fe:  # its head, while it is at hand (hfa.scan.pickles.nested tests it)
        lazy.head = r.peek_bytes(min(n, HEAD))
    r.skip(n, not kind)
    return lazy


def _latin1(v: Any) -> Any:
    # STRING opcodes give str or bytes depending on the loader's encoding; as operands
    # judge them by the most permissive decoding.
    return v.decode("latin-1") if isinstance(v, bytes) else v


def string1(r: Reader) -> Any:
    return _latin1(_payload(r, r.byte(), KEEP_STR, "latin1"))


def string4(r: Reader) -> Any:
    return _latin1(_payload(r, int4(r), KEEP_STR, "latin1"))


def stringnl(r: Reader) -> Any:
    at = r.tell()
    text = r.readline(KEEP_STR + 2, 1 << 62)
    if isinstance(text, tuple):
        return LazyStr(text[0], text[1], "string")
    return _decode_string(text, at)


def _decode_string(text: bytes, at: int) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[:1] in (b"'", b'"'):
        try:
            return codecs.escape_decode(text[1:-1])[0].decode("latin-1")
        except ValueError:
            raise Malformed("a STRING argument with a bad escape", at) from None
    raise Malformed("the STRING opcode argument must be quoted", at)


def bytes1(r: Reader) -> Any:
    return _payload(r, r.byte(), KEEP_BYTES, "")


def bytes4(r: Reader) -> Any:
    return _payload(r, uint4(r), KEEP_BYTES, "")


def bytes8(r: Reader) -> Any:
    return _payload(r, uint8(r), KEEP_BYTES, "")


def _utf8(v: Any, at: int) -> Any:
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise Malformed("a unicode string that is not UTF-8", at) from None
    return v


def unicode1(r: Reader) -> Any:
    at = r.tell()
    return _utf8(_payload(r, r.byte(), KEEP_STR, "utf8"), at)


def unicode4(r: Reader) -> Any:
    at = r.tell()
    return _utf8(_payload(r, uint4(r), KEEP_STR, "utf8"), at)


def unicode8(r: Reader) -> Any:
    at = r.tell()
    return _utf8(_payload(r, uint8(r), KEEP_STR, "utf8"), at)


def unicodenl(r: Reader) -> Any:
    at = r.tell()
    text = r.readline(KEEP_STR, 1 << 62)
    if isinstance(text, tuple):
        return LazyStr(text[0], text[1], "rawunicode")
    try:
        return text.decode("raw-unicode-escape")
    except UnicodeDecodeError:
        raise Malformed("a UNICODE argument that does not decode", at) from None


# pickletools' argument format -> its decoder
ARGUMENTS: dict[str, Callable[[Reader], Any]] = {
    "uint1": uint1,
    "uint2": uint2,
    "int4": int4,
    "uint4": uint4,
    "uint8": uint8,
    "long1": long1,
    "long4": long4,
    "decimalnl_short": line,
    "decimalnl_long": line,
    "floatnl": line,
    "float8": float8,
    "stringnl": stringnl,
    "stringnl_noescape": line,
    "stringnl_noescape_pair": pair,
    "string1": string1,
    "string4": string4,
    "bytes1": bytes1,
    "bytes4": bytes4,
    "bytes8": bytes8,
    "bytearray8": bytes8,
    "unicodestringnl": unicodenl,
    "unicodestring1": unicode1,
    "unicodestring4": unicode4,
    "unicodestring8": unicode8,
}


def materialise(r: Reader, v: Any, at: int) -> str:
    """A STACK_GLOBAL operand as a str (a lazy string read back), or malformed."""
    if isinstance(v, str):
        return v
    if isinstance(v, LazyStr) and v.kind != "bytes":
        if v.size > MAX_OPERAND:
            raise Malformed(f"a STACK_GLOBAL operand of {v.size} bytes is too long to analyse", at)
        data = r.read_at(v.offset, v.size)
        if v.kind == "utf8":
            try:
                return data.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise Malformed("a unicode string that is not UTF-8", at) from None
        if v.kind == "latin1":
            return data.decode("latin-1")
        if v.kind == "string":
            return _decode_string(data, at)
        return data.decode("raw-unicode-escape", "replace")
    if v is RESULT or v is LOST or v is BUILT or v.__class__ is Alias:  # computed at load time: CPython imports
        # whatever it turns out to be (a memoized or duplicated call's result is an Alias, a built one BUILT)
        raise ComputedImport(f"STACK_GLOBAL imports a name computed at load time ({describe(v)})", at)
    raise Malformed(f"STACK_GLOBAL operand is not a string ({describe(v)})", at)
