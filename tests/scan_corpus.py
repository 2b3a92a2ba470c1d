"""A generated corpus of pickles and archives, each with the verdict the scanner must give.

Nothing here is ever unpickled. Malicious fixtures are written opcode by opcode with :class:`Asm`
(a small pickle assembler over pickletools' opcode table); benign ones either the same way or
with ``pickle.dumps`` of harmless builtins. Zip archives come from :func:`build_zip`, a writer
that can lie: local names that differ from the central directory, flag bits, bad CRCs, ZIP64.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import pickle
import pickletools
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_OPS = {op.name: op for op in pickletools.opcodes}


class Asm:
    """Write pickle opcodes by name: ``Asm(2).op("GLOBAL", "os", "system")...stop()``."""

    def __init__(self, proto: int | None = None) -> None:
        self.buf = bytearray()
        self.proto = proto if proto is not None else 0
        if proto is not None and proto >= 2:
            self.op("PROTO", proto)

    def raw(self, data: bytes) -> Asm:
        self.buf += data
        return self

    def op(self, name: str, *args: object) -> Asm:
        info = _OPS[name]
        self.buf += info.code.encode("latin-1")
        if info.arg is not None:
            self.buf += _encode_arg(info.arg.name, args)
        return self

    # Shortcuts that pick the opcodes a real pickler would use at this protocol.
    def str(self, s: str) -> Asm:
        if self.proto >= 4 and len(s.encode()) < 256:
            return self.op("SHORT_BINUNICODE", s)
        if self.proto >= 1:
            return self.op("BINUNICODE", s)
        return self.op("UNICODE", s)

    def int(self, v: int) -> Asm:
        if self.proto >= 1 and 0 <= v < 256:
            return self.op("BININT1", v)
        if self.proto >= 1 and -(2**31) <= v < 2**31:
            return self.op("BININT", v)
        return self.op("INT", v)

    def glob(self, module: str, name: str) -> Asm:
        if self.proto >= 4:
            return self.str(module).str(name).op("STACK_GLOBAL")
        return self.op("GLOBAL", module, name)

    def tuple(self, *items: Callable[[Asm], object]) -> Asm:
        if self.proto >= 2 and 1 <= len(items) <= 3:
            for item in items:
                item(self)
            return self.op(("TUPLE1", "TUPLE2", "TUPLE3")[len(items) - 1])
        if not items and self.proto >= 1:
            return self.op("EMPTY_TUPLE")
        self.op("MARK")
        for item in items:
            item(self)
        return self.op("TUPLE")

    def call(self, module: str, name: str, *args: Callable[[Asm], object]) -> Asm:
        """module.name(*args) through GLOBAL/STACK_GLOBAL + REDUCE."""
        return self.glob(module, name).tuple(*args).op("REDUCE")

    def stop(self) -> bytes:
        self.op("STOP")
        return bytes(self.buf)

    def bytes(self) -> bytes:
        return bytes(self.buf)


def _encode_arg(kind: str, args: tuple[object, ...]) -> bytes:
    v = args[0] if args else None
    if kind == "uint1":
        return bytes([int(v)])  # type: ignore[call-overload]
    if kind == "uint2":
        return struct.pack("<H", v)
    if kind == "int4":
        return struct.pack("<i", v)
    if kind == "uint4":
        return struct.pack("<I", v)
    if kind == "uint8":
        return struct.pack("<Q", v)
    if kind == "long1":
        data = pickle.encode_long(int(v))  # type: ignore[call-overload]
        return bytes([len(data)]) + data
    if kind == "long4":
        data = pickle.encode_long(int(v))  # type: ignore[call-overload]
        return struct.pack("<i", len(data)) + data
    if kind in ("decimalnl_short", "decimalnl_long", "floatnl"):
        return f"{v}{'L' if kind == 'decimalnl_long' else ''}\n".encode()
    if kind == "float8":
        return struct.pack(">d", v)
    if kind == "stringnl":
        return repr(v).encode("latin-1") + b"\n"
    if kind == "stringnl_noescape":
        return f"{v}\n".encode()
    if kind == "stringnl_noescape_pair":
        return f"{args[0]}\n{args[1]}\n".encode()
    raw = v.encode("utf-8") if isinstance(v, str) else bytes(v)  # type: ignore[arg-type]
    if kind in ("string1", "bytes1", "unicodestring1"):
        return bytes([len(raw)]) + raw
    if kind == "string4":
        return struct.pack("<i", len(raw)) + raw
    if kind in ("bytes4", "unicodestring4"):
        return struct.pack("<I", len(raw)) + raw
    if kind in ("bytes8", "bytearray8", "unicodestring8"):
        return struct.pack("<Q", len(raw)) + raw
    if kind == "unicodestringnl":  # escaped the way pickle's protocol 0 writes str
        text = str(v).replace("\\", "\\u005c").replace("\0", "\\u0000").replace("\n", "\\u000a")
        return text.replace("\r", "\\u000d").replace("\x1a", "\\u001a").encode("raw-unicode-escape") + b"\n"
    raise ValueError(kind)


def framed(proto: int, body: bytes) -> bytes:
    """PROTO + FRAME around an opcode body (as protocol 4/5 picklers write it)."""
    return bytes([0x80, proto, 0x95]) + struct.pack("<Q", len(body)) + body


# --------------------------------------------------------------------------------------------
# Malicious building blocks


def s(text: str) -> Callable[[Asm], object]:
    return lambda a: a.str(text)


def reduce_pickle(module: str, name: str, arg: str = "id", proto: int = 2) -> bytes:
    """module.name(arg) the way each protocol writes a __reduce__: protocols 0-5."""
    if proto >= 4:
        body = Asm(None)
        body.proto = proto
        body.str(module).op("MEMOIZE").str(name).op("MEMOIZE").op("STACK_GLOBAL").op("MEMOIZE")
        body.str(arg).op("MEMOIZE").op("TUPLE1").op("MEMOIZE").op("REDUCE").op("MEMOIZE").op("STOP")
        return framed(proto, body.bytes())
    a = Asm(proto)
    a.op("GLOBAL", module, name)
    a.op("BINPUT", 0) if proto >= 1 else a.op("PUT", 0)
    a.tuple(s(arg)).op("REDUCE")
    return a.stop()


def getattr_chain(proto: int = 4) -> bytes:
    """getattr(importlib.import_module('os'), 'system')('id')."""
    a = Asm(proto)
    a.glob("builtins", "getattr").op("MEMOIZE")
    a.call("importlib", "import_module", s("os"))
    a.str("system").op("TUPLE2").op("REDUCE")
    a.tuple(s("id")).op("REDUCE")
    return a.stop()


# --------------------------------------------------------------------------------------------
# Benign building blocks: what numpy and torch write


def numpy_array_pickle(proto: int = 2, numpy2: bool = False, data: bytes = b"\x00" * 24) -> bytes:
    """numpy.ndarray.__reduce__ of a float64 array of 3 items, assembled by hand."""
    core = "numpy._core.multiarray" if numpy2 else "numpy.core.multiarray"
    a = Asm(proto)
    a.glob(core, "_reconstruct")
    a.tuple(lambda x: x.glob("numpy", "ndarray"), lambda x: x.tuple(lambda y: y.int(0)), lambda x: _bytes(x, b"b"))
    a.op("REDUCE")
    state = (
        lambda x: x.int(1),
        lambda x: x.tuple(lambda y: y.int(3)),
        dtype,
        lambda x: _bool(x, False),
        lambda x: _bytes(x, data),
    )
    a.tuple(*state).op("BUILD")
    return a.stop()


def _bool(a: Asm, v: bool) -> Asm:
    if a.proto >= 2:
        return a.op("NEWTRUE" if v else "NEWFALSE")
    return a.op("INT", "01" if v else "00")


def _bytes(a: Asm, data: bytes) -> Asm:
    """bytes as a pickler writes them: BINBYTES from protocol 3, _codecs.encode(latin-1 text) before."""
    if a.proto >= 3:
        return a.op("SHORT_BINBYTES" if len(data) < 256 else "BINBYTES", data)
    return a.call("_codecs", "encode", s(data.decode("latin-1")), s("latin1"))


def dtype(a: Asm, spec: str = "f8") -> Asm:
    """numpy.dtype(spec, False, True) + BUILD (3, '<', None, None, None, -1, -1, 0)."""
    a.glob("numpy", "dtype").op("MARK").str(spec)
    _bool(_bool(a, False), True).op("TUPLE").op("REDUCE")
    a.op("MARK").int(3).str("<").op("NONE").op("NONE").op("NONE").int(-1).int(-1).int(0).op("TUPLE").op("BUILD")
    return a


def torch_data_pkl(n_tensors: int = 1, numel: int = 4, storage: str = "FloatStorage") -> bytes:
    """The data.pkl torch.save writes for an OrderedDict state dict (protocol 2, persistent ids)."""
    a = Asm(2)
    a.op("GLOBAL", "collections", "OrderedDict").op("BINPUT", 0).op("EMPTY_TUPLE").op("REDUCE").op("BINPUT", 1)
    a.op("MARK")
    for i in range(n_tensors):
        a.op("BINUNICODE", f"layer{i}.weight")
        a.op("GLOBAL", "torch._utils", "_rebuild_tensor_v2")
        a.op("MARK")
        a.op("MARK").op("BINUNICODE", "storage").op("GLOBAL", "torch", storage).op("BINUNICODE", str(i))
        a.op("BINUNICODE", "cpu").int(numel).op("TUPLE").op("BINPERSID")
        a.int(0).tuple(lambda x: x.int(2), lambda x: x.int(numel // 2)).tuple(
            lambda x: x.int(numel // 2), lambda x: x.int(1)
        )
        a.op("NEWFALSE").op("BINGET", 0).op("EMPTY_TUPLE").op("REDUCE")
        a.op("TUPLE").op("REDUCE")
    a.op("SETITEMS")
    a.op("EMPTY_DICT").op("BINUNICODE", "_metadata").op("BINGET", 0).op("EMPTY_TUPLE").op("REDUCE")
    a.op("BINUNICODE", "").op("EMPTY_DICT").op("BINUNICODE", "version").int(1).op("SETITEM").op("SETITEM")
    a.op("SETITEM").op("BUILD")
    return a.stop()


def legacy_torch(model: bytes | None = None, *, extra: bytes = b"") -> bytes:
    """torch.save(_use_new_zipfile_serialization=False): 5 pickles, then each storage's count and bytes."""
    magic = Asm(2).op("LONG1", 0x1950A86A20F9469CFC6C).stop()
    protocol = Asm(2).int(1001).stop()
    sys_info = Asm(2).op("EMPTY_DICT").op("MARK").str("protocol_version").int(1001).str("little_endian")
    sys_info_b = sys_info.op("NEWTRUE").op("SETITEMS").stop()
    keys = Asm(2).op("EMPTY_LIST").op("MARK").str("0").op("APPENDS").stop()
    model = model if model is not None else legacy_model()
    storage = struct.pack("<q", 4) + b"\x00" * 16
    return magic + protocol + sys_info_b + model + keys + storage + extra


def legacy_model(evil: bool = False) -> bytes:
    a = Asm(2)
    a.op("GLOBAL", "collections", "OrderedDict").op("EMPTY_TUPLE").op("REDUCE")
    a.str("w").op("GLOBAL", "torch._utils", "_rebuild_tensor").op("MARK")
    a.op("MARK").str("storage").op("GLOBAL", "torch", "FloatStorage").str("0").str("cpu").int(4).op("NONE")
    a.op("TUPLE").op("BINPERSID").int(0).tuple(lambda x: x.int(4)).tuple(lambda x: x.int(1)).op("TUPLE").op("REDUCE")
    a.op("SETITEM")
    if evil:
        a.op("POP").call("os", "system", s("id"))
    return a.stop()


def build_tar(members: list[tuple[str, bytes]], *, links: dict[str, str] | None = None) -> bytes:
    """A tar (PAX, as torch wrote them) of these members in order (duplicates kept), plus symlinks."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def legacy_tar_parts(
    *, storages_head: bytes | None = None, tensors_head: bytes | None = None, model: bytes | None = None
) -> dict[str, bytes]:
    """The members of a legacy tar checkpoint (torch.save(_use_new_zipfile_serialization=False), torch < 0.4):
    one float storage of 4 elements, one tensor on it. ``*_head`` replace the count pickles."""
    storage_args = Asm(2).str("0").str("cpu").op("GLOBAL", "torch", "FloatStorage").op("TUPLE3").stop()
    storages = (storages_head or Asm(2).int(1).stop()) + storage_args + struct.pack("<q", 4) + b"\x01" * 16
    storages += Asm(2).op("EMPTY_LIST").stop()  # storage views
    tensor_args = Asm(2).str("t0").str("0").op("GLOBAL", "torch", "FloatTensor").op("TUPLE3").stop()
    tensors = (tensors_head or Asm(2).int(1).stop()) + tensor_args
    tensors += struct.pack("<i", 1) + b"\x00" * 4 + struct.pack("<qqq", 4, 1, 0)
    sys_info = Asm(2).op("EMPTY_DICT").str("little_endian").op("NEWTRUE").op("SETITEM").stop()
    pickled = (
        model if model is not None else Asm(2).op("EMPTY_DICT").str("w").str("t0").op("BINPERSID").op("SETITEM").stop()
    )
    return {"sys_info": sys_info, "pickle": pickled, "tensors": tensors, "storages": storages}


def legacy_tar(**parts: bytes) -> bytes:
    members = legacy_tar_parts()
    members.update(parts)
    return build_tar(list(members.items()))


def deflate_repeat(unit: bytes, times: int, *, head: bytes = b"", tail: bytes = b"", wbits: int = -15) -> bytes:
    """head + unit * times + tail deflated, compressing ``unit`` once: after a full flush the
    compressor forgets its history, so each copy deflates to the same bytes (a bomb in a blink).
    With a gzip ``wbits`` the trailer's CRC is wrong; a scanner must stop long before it."""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)]
    seg = c.compress(unit) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(unit) + c.flush(zlib.Z_FULL_FLUSH)
    assert seg == again and times >= 2
    parts += [seg, again, seg * (times - 2), c.compress(tail) + c.flush()]
    return b"".join(parts)


def noop_bomb(size: int, pattern: bytes = b"N0") -> bytes:
    """A protocol 2 pickle of ``size`` bytes that does nothing for almost all of them, then os.system."""
    body = pattern * (size // len(pattern))
    return b"\x80\x02" + body + reduce_pickle("os", "system", proto=2)[2:]


def varied_noop_bomb(size: int) -> bytes:
    """Like noop_bomb, but its no-ops differ (MARK..POP_MARK nests, BINPUT/BINGET pairs): no fast path."""
    unit = b"(N(N11" + b"Nq\x000h\x000" + b"]q\x010" + b"K\x01K\x02\x860"
    return b"\x80\x04N\x94" + unit * (size // len(unit)) + reduce_pickle("os", "system", proto=2)[2:]


# --------------------------------------------------------------------------------------------
# joblib files


def joblib_pickle(
    *, aligned: bool = True, object_payload: bytes | None = None, data: bytes | None = None, proto: int = 4
) -> bytes:
    """What joblib.dump writes for {'a': np.zeros(3)}: the wrapper, then the raw array bytes."""
    a = Asm(None)
    a.proto = proto
    a.op("EMPTY_DICT").str("a")
    a.glob("joblib.numpy_pickle", "NumpyArrayWrapper").op("EMPTY_TUPLE").op("NEWOBJ")
    a.op("EMPTY_DICT").op("MARK")
    a.str("subclass").glob("numpy", "ndarray")
    a.str("shape").tuple(lambda x: x.int(3))
    a.str("order").str("C")
    a.str("dtype")
    dtype(a, "O8" if object_payload is not None else "f8")
    a.str("allow_mmap").op("NEWTRUE")
    if aligned:
        a.str("numpy_array_alignment_bytes").int(16)
    a.op("SETITEMS").op("BUILD")
    head = framed(proto, a.bytes()) if proto >= 4 else bytes([0x80, proto]) + a.bytes()
    if object_payload is not None:
        array = object_payload
    else:
        raw = data if data is not None else b"\x00" * 24
        if aligned:
            pad = 16 - ((len(head) + 1) % 16)
            array = bytes([pad]) + b"\xff" * pad + raw
        else:
            array = raw
    return head + array + b"\x94s."  # MEMOIZE, SETITEM, STOP (outside the frame)


# --------------------------------------------------------------------------------------------
# Zip archives


@dataclass
class Member:
    name: str
    data: bytes
    method: int = 0  # 0 stored, 8 deflated, 12 bzip2
    flags: int = 0
    local_name: str | None = None  # write a different name in the local header
    crc: int | None = None  # write a wrong CRC
    local_extra: bytes = b""  # extra field in the local header only (torch pads data to 64 bytes so)
    payload: bytes | None = None  # already compressed data (then ``usize`` is its inflated size)
    usize: int | None = None


def build_zip(members: list[Member], *, zip64: bool = False, prefix: bytes = b"") -> bytes:
    out = bytearray(prefix)
    central = bytearray()
    for m in members:
        if m.payload is not None:
            payload = m.payload
        elif m.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = c.compress(m.data) + c.flush()
        elif m.method == 12:
            payload = bz2.compress(m.data)
        else:
            payload = m.data
        crc = m.crc if m.crc is not None else zlib.crc32(m.data)
        usize = m.usize if m.usize is not None else len(m.data)
        offset = len(out) - len(prefix)
        lname = (m.local_name if m.local_name is not None else m.name).encode()
        name = m.name.encode()
        out += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, m.flags, m.method, 0, 0x21, crc, len(payload), usize, len(lname),
            len(m.local_extra),
        )  # fmt: skip
        out += lname + m.local_extra + payload
        if zip64:
            extra = struct.pack("<HHQQQ", 1, 24, len(m.data), len(payload), offset)
            sizes = (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
        else:
            extra = b""
            sizes = (len(payload), usize, offset)
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 45 if zip64 else 20, 45 if zip64 else 20, m.flags, m.method, 0, 0x21, crc,
            sizes[0], sizes[1], len(name), len(extra), 0, 0, 0, 0, sizes[2],
        )  # fmt: skip
        central += name + extra
    cd_offset = len(out) - len(prefix)
    out += central
    if zip64:
        rec_at = len(out) - len(prefix)
        out += struct.pack(
            "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, len(members), len(members), len(central), cd_offset
        )
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, rec_at, 1)
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), cd_offset, 0)
    return bytes(out)


def torch_zip(data_pkl: bytes | None = None, extra: list[Member] | None = None, method: int = 0) -> bytes:
    """A torch.save zip: archive/data.pkl, archive/data/0 tensor bytes, version and byteorder."""
    members = [
        Member("archive/data.pkl", data_pkl if data_pkl is not None else torch_data_pkl(), method),
        Member("archive/byteorder", b"little"),
        Member("archive/data/0", struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)),
        Member("archive/version", b"3\n"),
        Member("archive/.data/serialization_id", b"1234567890123456789012345678901234567890"),
    ]
    return build_zip(members + (extra or []))


def npy(descr: object, shape: tuple[int, ...], body: bytes, version: int = 1) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin-1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(header)) + header + body


# --------------------------------------------------------------------------------------------
# The corpus


@dataclass(frozen=True)
class Case:
    """One fixture: its bytes, the worst severity expected ("clean" for none), codes that must appear."""

    name: str
    data: bytes
    expect: str
    codes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # member paths (suffixes after the display name) that must be reported
    handled: bool = True  # False: scan_serialized must return None
    filename: str = "blob"
    tags: tuple[str, ...] = field(default_factory=tuple)


CRIT = "critical"
DANGER = ("pickle.dangerous-global",)


def _memo_cases() -> Iterator[Case]:
    # DUP before PUT: the string reaches the memo through a duplicate.
    a = Asm(4).str("os").op("DUP").op("BINPUT", 0).op("POP").op("POP")
    a.str("system").op("DUP").op("BINPUT", 1).op("POP").op("POP")
    a.op("BINGET", 0).op("BINGET", 1).op("STACK_GLOBAL").tuple(s("id")).op("REDUCE")
    yield Case("memo-dup-before-put", a.stop(), CRIT, DANGER)
    # Mixed MEMOIZE and BINPUT (picklescan #14): MEMOIZE keys follow the count of entries, not the opcodes.
    a = Asm(4).str("torch._utils").op("MEMOIZE").str("_rebuild_tensor_v2").op("MEMOIZE")
    a.str("os").op("BINPUT", 0).str("system").op("BINPUT", 1).op("POP").op("POP").op("POP").op("POP")
    a.op("BINGET", 0).op("BINGET", 1).op("STACK_GLOBAL").tuple(s("id")).op("REDUCE")
    yield Case("memo-mixed-memoize-put", a.stop(), CRIT, DANGER)
    # MEMOIZE after sparse PUT keys: memo[len(memo)] lands on an unexpected key.
    a = Asm(4).str("subprocess").op("BINPUT", 5).str("getoutput").op("MEMOIZE")  # memo[1] = "getoutput"
    a.op("POP").op("POP").op("BINGET", 5).op("BINGET", 1).op("STACK_GLOBAL").tuple(s("id")).op("REDUCE")
    yield Case("memo-memoize-counts-entries", a.stop(), CRIT, DANGER)
    # A global stored in the memo, dropped, fetched much later with GET and called.
    a = Asm(0).op("GLOBAL", "os", "system").op("PUT", 7).op("POP")
    a.op("MARK").op("INT", 1).op("INT", 2).op("LIST").op("POP")
    a.op("GET", 7).op("MARK").op("UNICODE", "id").op("TUPLE").op("REDUCE")
    yield Case("memo-global-called-later", a.stop(), CRIT, DANGER)
    # modelscan #85: BUILD plants strings on an allowlisted callable, then dotted names read them.
    a = Asm(0).op("GLOBAL", "numpy", "dtype").op("MARK").op("NONE").op("MARK").op("UNICODE", "a")
    a.op("UNICODE", "os").op("DICT").op("TUPLE").op("BUILD").op("POP").op("GLOBAL", "numpy", "dtype.a")
    yield Case("build-on-global-dotted-names", a.stop(), CRIT, ("pickle.global-mutation", *DANGER))
    # Missing memo key and non-string STACK_GLOBAL operands: fail closed.
    yield Case("memo-missing-key", Asm(2).op("BINGET", 3).stop(), "high", ("pickle.malformed",))
    a = Asm(4).int(1).str("system").op("STACK_GLOBAL").op("STOP")
    yield Case("stack-global-int-operand", a.bytes(), "high", ("pickle.malformed",))
    a = Asm(4).call("builtins", "str", s("os")).str("system").op("STACK_GLOBAL").tuple(s("id")).op("REDUCE")
    yield Case("stack-global-operand-from-call", a.stop(), "critical", ("pickle.computed-import",))


def cases() -> Iterator[Case]:
    yield from pickle_cases()
    yield from archive_cases()


def pickle_cases() -> Iterator[Case]:
    """Raw pickles: the same verdict from scan_pickle and scan_serialized."""
    # -- os.system at every protocol, and its aliases
    for proto in range(6):
        yield Case(f"os-system-p{proto}", reduce_pickle("os", "system", proto=proto), CRIT, DANGER)
    yield Case("posix-system-p2", reduce_pickle("posix", "system"), CRIT, DANGER)
    yield Case("nt-system-p4", reduce_pickle("nt", "system", proto=4), CRIT, DANGER)
    yield Case("subprocess-popen-inst", b"(S'id'\nisubprocess\nPopen\n.", CRIT, DANGER)
    yield Case("pty-spawn-obj", b"(cpty\nspawn\nS'id'\no.", CRIT, DANGER)
    # -- builtins
    yield Case("builtin-eval-p2", reduce_pickle("__builtin__", "eval", "1+1"), CRIT, DANGER)
    yield Case("builtins-exec-p4", reduce_pickle("builtins", "exec", "print(1)", proto=4), CRIT, DANGER)
    yield Case("builtins-import-p3", reduce_pickle("builtins", "__import__", "os", proto=3), CRIT, DANGER)
    yield Case("builtins-vars-p2", reduce_pickle("builtins", "vars"), CRIT, DANGER)
    yield Case("getattr-import-module-chain", getattr_chain(), CRIT, DANGER)
    yield Case("compat-commands-getoutput-p2", reduce_pickle("commands", "getoutput"), CRIT, DANGER)
    # -- installers and environments
    for mod, name in [("pip", "main"), ("pip._internal.cli.main", "main"), ("ensurepip", "_run_pip"),
                      ("setuptools.sandbox", "run_setup"), ("venv", "create"), ("distutils.core", "run_setup")]:  # fmt: skip
        yield Case(f"installer-{mod}.{name}", reduce_pickle(mod, name, proto=4), CRIT, DANGER)
    # -- submodules of dangerous modules, import machinery
    for mod, name in [("asyncio.unix_events", "_UnixSubprocessTransport"), ("multiprocessing.util", "spawnv_passfds"),
                      ("pkgutil", "resolve_name"), ("importlib", "import_module"), ("importlib.util", "find_spec"),
                      ("marshal", "loads"), ("runpy", "run_path"), ("code", "InteractiveInterpreter"),
                      ("ctypes", "CDLL"), ("socket", "create_connection"), ("urllib.request", "urlopen"),
                      ("webbrowser", "open"), ("shutil", "rmtree"), ("tempfile", "mkdtemp"), ("io", "FileIO"),
                      ("types", "CodeType"), ("sys", "modules"), ("_posixsubprocess", "fork_exec")]:  # fmt: skip
        yield Case(f"gadget-{mod}.{name}", reduce_pickle(mod, name, proto=4), CRIT, DANGER)
    # -- wrappers that turn data into calls
    for mod, name in [("functools", "partial"), ("operator", "attrgetter"), ("operator", "methodcaller"),
                      ("_operator", "itemgetter")]:  # fmt: skip
        yield Case(f"wrapper-{mod}.{name}", reduce_pickle(mod, name, proto=2), CRIT, DANGER)
    # -- profilers and debuggers that run code strings
    for mod, name in [("profile", "Profile.run"), ("cProfile", "run"), ("pdb", "run"), ("bdb", "Bdb"),
                      ("timeit", "timeit"), ("trace", "Trace.run"), ("doctest", "debug_script")]:  # fmt: skip
        yield Case(f"runner-{mod}.{name}", reduce_pickle(mod, name, proto=4), CRIT, DANGER)
    # -- nested loaders
    for mod, name in [("pickle", "loads"), ("_pickle", "loads"), ("torch", "load"), ("numpy", "load"),
                      ("torch.storage", "_load_from_bytes"), ("joblib", "load"), ("dill", "loads"),
                      ("numpy.lib.npyio", "load"), ("torch.serialization", "load")]:  # fmt: skip
        yield Case(f"loader-{mod}.{name}", reduce_pickle(mod, name, proto=4), CRIT, DANGER)
    # -- dotted and dunder names, even under allowlisted modules
    for mod, name in [("builtins", "getattr.__self__"), ("numpy", "__builtins__"), ("collections", "OrderedDict.fromkeys"),
                      ("torch._utils", "__dict__"), ("os", "system.__self__"), ("builtins", "__reduce__")]:  # fmt: skip
        yield Case(f"name-{mod}.{name}", reduce_pickle(mod, name, proto=4), CRIT, DANGER)
    yield from _memo_cases()
    # -- third-party gadgets nobody lists: unknown, high
    yield Case(
        "unknown-somepkg-gadget", reduce_pickle("somepkg.evil", "Gadget", proto=4), "high", ("pickle.unknown-global",)
    )
    yield Case("unknown-user-class-p0", Asm(0).op("GLOBAL", "__main__", "Model").op("MARK").op("TUPLE").op("REDUCE").stop(),
               "high", ("pickle.unknown-global",))  # fmt: skip
    # -- structure that cannot be followed: fail closed
    evil = reduce_pickle("os", "system", proto=2)
    yield Case("truncated-evil", evil[:-2], CRIT, ("pickle.malformed", *DANGER))
    yield Case("truncated-benign", pickle.dumps({"a": [1, 2, 3]}, protocol=2)[:-3], "high", ("pickle.malformed",))
    yield Case("unknown-opcode", b"\x80\x02]q\x00\xff.", "high", ("pickle.malformed",))
    yield Case("stack-underflow", b"\x80\x02R.", "high", ("pickle.malformed",))
    yield Case("mark-underflow", b"\x80\x02N\x85t.", "high", ("pickle.malformed",))
    yield Case("protocol-6", b"\x80\x06N.", "high", ("pickle.malformed",))
    yield Case(
        "oversize-binbytes8", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"xx", "high", ("pickle.malformed",)
    )
    yield Case("unknown-extension", Asm(2).op("EXT1", 239).op("EMPTY_TUPLE").op("REDUCE").stop(), "high",
               ("pickle.unknown-extension",))  # fmt: skip
    yield Case("indirect-call", Asm(2).call("collections", "OrderedDict").op("EMPTY_TUPLE").op("REDUCE").stop(), "high",
               ("pickle.indirect-call",))  # fmt: skip
    yield Case("build-on-allowlisted-global", Asm(2).op("GLOBAL", "collections", "OrderedDict").op("EMPTY_DICT").op("BUILD").stop(),
               "high", ("pickle.global-mutation",))  # fmt: skip
    # -- stacked pickles, trailing data
    benign = pickle.dumps({"a": 1}, protocol=2)
    yield Case("stacked-second-evil", benign + evil, CRIT, DANGER)
    yield Case("trailing-junk", benign + b"\x00\x01\x02 not a pickle", "medium", ("pickle.trailing-data",))
    # -- disguised or missing extensions: content decides
    yield Case("pickle-named-safetensors", evil, CRIT, DANGER, filename="model.safetensors")
    yield Case("pickle-extensionless", reduce_pickle("os", "system", proto=4), CRIT, DANGER, filename="weights")
    yield Case("pickle-named-json", evil, CRIT, DANGER, filename="config.json")
    # -- benign plain pickles at every protocol
    objects: list[object] = [{"a": 1, "b": [1, 2.5, "x"]}, [1, 2, 3], b"bytes\x00\xff" * 3, b"", {1, 2, 3},
                             frozenset({"a"}), (1, "two", None, True), bytearray(b"xyz"), 10**40, -5, 1.5, "text" * 100,
                             collections.OrderedDict(a=1), complex(1, 2), range(3), slice(1, 9, 2),
                             {"nested": {"deep": [(1, 2), {3: b"four"}]}}]  # fmt: skip
    for proto in range(6):
        for i, obj in enumerate(objects):
            yield Case(f"benign-{type(obj).__name__}-{i}-p{proto}", pickle.dumps(obj, protocol=proto), "clean")
        yield Case(f"benign-numpy-array-p{proto}", numpy_array_pickle(proto), "clean")
        yield Case(f"benign-numpy2-array-p{proto}", numpy_array_pickle(proto, numpy2=True), "clean")
    yield Case("benign-torch-data-pkl-raw", torch_data_pkl(3), "clean")
    yield Case("benign-stacked", benign + pickle.dumps([1], protocol=4), "clean")


def archive_cases() -> Iterator[Case]:
    evil = reduce_pickle("os", "system", proto=2)
    evil4 = reduce_pickle("os", "system", proto=4)
    # -- torch zips
    yield Case("torch-zip-benign", torch_zip(), "clean", filename="pytorch_model.bin")
    yield Case("torch-zip-benign-deflated", torch_zip(method=8), "clean")
    padded = [Member("archive/data.pkl", evil, local_extra=b"FB" + struct.pack("<H", 37) + b"Z" * 37)]
    yield Case("zip-local-extra-padding-evil", build_zip(padded), CRIT, DANGER, paths=("!archive/data.pkl",))
    yield Case("torch-zip-evil-data-pkl", torch_zip(evil), CRIT, DANGER, paths=("!archive/data.pkl",))
    yield Case("torch-zip-evil-deflated", torch_zip(evil, method=8), CRIT, DANGER, paths=("!archive/data.pkl",))
    for hidden in ("archive/data/1", "archive/.hidden", "archive/data.pkl.bak", "archive/extra/constants"):
        yield Case(
            f"torch-zip-hidden-{hidden}", torch_zip(extra=[Member(hidden, evil4)]), CRIT, DANGER, paths=(f"!{hidden}",)
        )
    yield Case(
        "torch-zip-hidden-proto0", torch_zip(extra=[Member("archive/x", b"cos\nsystem\n(S'id'\ntR.")]), CRIT, DANGER
    )
    # -- lying zips
    members = [Member("archive/data.pkl", evil, local_name="archive/README.txt")]
    yield Case("zip-local-name-differs-evil", build_zip(members), CRIT, ("archive.name-mismatch", *DANGER))
    members = [Member("archive/data.pkl", torch_data_pkl(), local_name="archive/other.pkl")]
    yield Case("zip-local-name-differs-benign", build_zip(members), "medium", ("archive.name-mismatch",))
    yield Case("zip-encrypted-flag-evil", build_zip([Member("archive/data.pkl", evil, flags=0x1)]), CRIT,
               ("archive.encrypted", *DANGER))  # fmt: skip
    yield Case(
        "zip-data-descriptor-flag-benign", build_zip([Member("archive/data.pkl", torch_data_pkl(), flags=0x8)]), "clean"
    )
    yield Case("zip-bad-crc-evil", build_zip([Member("archive/data.pkl", evil, crc=0xDEADBEEF)]), CRIT, DANGER)
    yield Case("zip-bad-crc-benign", build_zip([Member("archive/data.pkl", torch_data_pkl(), crc=1)]), "clean")
    yield Case(
        "zip-bzip2-member", build_zip([Member("archive/data.pkl", evil, method=12)]), "high", ("archive.unsupported",)
    )
    yield Case("zip64-evil", build_zip([Member("archive/data.pkl", evil)], zip64=True), CRIT, DANGER)
    yield Case("zip64-benign", build_zip([Member("archive/data.pkl", torch_data_pkl())], zip64=True), "clean")
    # -- nesting
    inner = build_zip([Member("data.pkl", evil)])
    yield Case("zip-in-zip-evil", build_zip([Member("inner.zip", inner)]), CRIT, DANGER, paths=("!inner.zip!data.pkl",))
    yield Case("zip-in-zip-deflated-evil", build_zip([Member("inner.bin", inner, method=8)]), CRIT, DANGER)
    deep = build_zip([Member("data.pkl", evil)])
    for level in range(6):
        deep = build_zip([Member(f"level{level}.zip", deep)])
    yield Case("zip-nested-too-deep", deep, "high", ("archive.too-deep",))
    # -- broken archives: fail closed
    good = torch_zip()
    yield Case("zip-truncated-central-directory", good[:-40], "high", ("archive.malformed",))
    yield Case("zip-no-end-record", good[: good.rfind(b"PK\x05\x06")], "high", ("archive.malformed",))
    bad_offset = bytearray(build_zip([Member("archive/data.pkl", torch_data_pkl())]))
    cd = bad_offset.rfind(b"PK\x01\x02")
    bad_offset[cd + 42 : cd + 46] = struct.pack("<L", 10_000_000)
    yield Case("zip-member-offset-out-of-range", bytes(bad_offset), "high", ("archive.malformed",))
    # -- numpy
    yield Case("npy-float-benign", npy("<f8", (3,), b"\x00" * 24), "clean", filename="x.npy")
    yield Case("npy-object-benign", npy("|O", (1,), pickle.dumps([1, "a"], protocol=3)), "clean")
    yield Case("npy-object-evil", npy("|O", (1,), evil), CRIT, DANGER)
    yield Case("npy-v2-object-evil", npy("|O", (1,), evil, version=2), CRIT, DANGER)
    yield Case("npy-structured-object-evil", npy([("a", "<f8"), ("b", "|O")], (1,), evil), CRIT, DANGER)
    yield Case("npy-bad-header", b"\x93NUMPY\x01\x00\x10\x00__import__('os')", "high", ("archive.malformed",))
    npz = build_zip([Member("a.npy", npy("<f4", (2,), b"\x00" * 8)), Member("b.npy", npy("|O", (1,), evil))])
    yield Case("npz-object-evil", npz, CRIT, DANGER, paths=("!b.npy",))
    yield Case("npz-benign", build_zip([Member("a.npy", npy("<f4", (2,), b"\x00" * 8), method=8)]), "clean")
    # -- legacy torch
    yield Case("legacy-torch-benign", legacy_torch(), "clean")
    yield Case("legacy-torch-evil-model", legacy_torch(legacy_model(evil=True)), CRIT, DANGER)
    yield Case("legacy-torch-trailing-bytes", legacy_torch(extra=b"\x00" * 32), "medium", ("archive.unexpected-data",))
    yield Case(
        "legacy-torch-hidden-pickle-after-storages",
        legacy_torch(extra=evil),
        CRIT,
        ("archive.unexpected-data", *DANGER),
    )
    # -- joblib
    yield Case("joblib-benign-aligned", joblib_pickle(), "clean", filename="model.joblib")
    yield Case("joblib-benign-unaligned", joblib_pickle(aligned=False), "clean")
    yield Case("joblib-benign-p2", joblib_pickle(proto=2), "clean")
    yield Case("joblib-object-array-evil", joblib_pickle(object_payload=evil), CRIT, DANGER)
    yield Case("joblib-object-array-benign", joblib_pickle(object_payload=pickle.dumps([1, 2], protocol=2)), "clean")
    # Unaligned (joblib <= 1.1) array bytes that pickle.load would read as opcodes.
    shadow = Asm(2).op("POP").call("os", "system", s("id")).bytes()[2:].ljust(24, b"\x00")
    assert len(shadow) == 24  # exactly the 3 float64 items the wrapper declares
    yield Case("joblib-array-bytes-are-opcodes", joblib_pickle(aligned=False, data=shadow), CRIT, DANGER)
    yield Case(
        "joblib-gzip-array-bytes-are-opcodes", gzip.compress(joblib_pickle(aligned=False, data=shadow)), CRIT, DANGER
    )
    yield Case("joblib-gzip-evil", gzip.compress(evil), CRIT, DANGER, filename="model.joblib.gz")
    yield Case("joblib-gzip-benign", gzip.compress(joblib_pickle()), "clean")
    yield Case("joblib-zlib-evil", zlib.compress(evil), CRIT, DANGER)
    yield Case("joblib-bz2-evil", bz2.compress(evil), CRIT, DANGER)
    yield Case("joblib-zfile-evil", b"ZF" + hex(len(evil)).encode().ljust(19) + zlib.compress(evil), CRIT, DANGER)
    # -- polyglot: a benign pickle with a zip after it
    yield Case("pickle-zip-polyglot", benign_pickle() + torch_zip(evil), CRIT, ("archive.polyglot", *DANGER))
    # -- not handled here
    yield Case("text-file", b"Hello, this is a README.\nNothing to see.\n", "clean", handled=False)
    yield Case("json-file", b'{"architectures": ["Bert"], "hidden_size": 768}', "clean", handled=False)
    yield Case("gzip-text", gzip.compress(b"just some text\n" * 20), "clean", handled=False)
    yield Case("random-floats", struct.pack("<16f", *[i * 0.37 for i in range(16)]), "clean", handled=False)
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'.ljust(0x280)
    safetensors = struct.pack("<Q", len(header)) + header + b"\x00" * 8  # its length starts 80 02, like PROTO 2
    yield Case("safetensors-proto-like-length", safetensors, "clean", handled=False)
    yield Case("safetensors-in-zip", build_zip([Member("model.safetensors", safetensors)]), "clean")


def benign_pickle() -> bytes:
    return pickle.dumps({"weights": [1.0, 2.0], "name": "m"}, protocol=4)


def write_big_pickle(path: Path, payload: int, *, sparse: bool = True) -> None:
    """PROTO 4, BINBYTES8 of ``payload`` zero bytes, STOP, written without holding the payload."""
    with path.open("wb") as f:
        f.write(b"\x80\x04\x8e" + struct.pack("<Q", payload))
        if sparse:
            f.seek(payload, 1)  # a hole: reads as zeros
        else:
            chunk = b"\x00" * (1 << 20)
            for left in range(payload, 0, -len(chunk)):
                f.write(chunk[: min(left, len(chunk))])
        f.write(b".")


def write_torch_zip(path: Path, n_tensors: int, tensor_bytes: int, *, sparse: bool = True) -> None:
    """A torch.save-style zip on disk: data.pkl and ``n_tensors`` stored tensors of ``tensor_bytes`` each.

    Tensor data is written as holes (``sparse``) or zeros in 1 MiB chunks, never held in memory.
    CRCs are left at zero: torch and this scanner ignore them.
    """
    numel = tensor_bytes // 4
    pkl = torch_data_pkl(n_tensors, numel)
    entries = [("archive/data.pkl", pkl)] + [(f"archive/data/{i}", None) for i in range(n_tensors)]
    entries += [("archive/version", b"3\n"), ("archive/byteorder", b"little")]
    central = bytearray()
    with path.open("wb") as f:
        for name, data in entries:
            size = len(data) if data is not None else numel * 4
            offset = f.tell()
            raw = name.encode()
            f.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, size, size, len(raw), 0) + raw)
            if data is not None:
                f.write(data)
            elif sparse:
                f.seek(size, 1)
            else:
                chunk = b"\x00" * (1 << 20)
                for left in range(size, 0, -len(chunk)):
                    f.write(chunk[: min(left, len(chunk))])
            central += (
                struct.pack(
                    "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0x21, 0, size, size, len(raw), 0, 0, 0, 0, 0, offset
                )
                + raw
            )
        cd_offset = f.tell()
        f.write(central)
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), cd_offset, 0))


__all__ = [
    "Asm",
    "Case",
    "Member",
    "archive_cases",
    "build_tar",
    "build_zip",
    "cases",
    "deflate_repeat",
    "framed",
    "legacy_tar",
    "legacy_tar_parts",
    "noop_bomb",
    "pickle_cases",
    "torch_zip",
    "varied_noop_bomb",
    "write_big_pickle",
    "write_torch_zip",
]


def mutated(samples: list[bytes], keep: int = 1) -> Any:
    """A hypothesis strategy: one of ``samples`` with 1-4 mutations, each a byte changed, the rest cut
    (at least ``keep`` bytes left: the format's magic) or up to 16 bytes inserted."""
    from hypothesis import strategies as st

    @st.composite
    def draw_one(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(samples)))
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(data) - 1))
            op = draw(st.sampled_from(["flip", "truncate", "insert"]))
            if op == "flip":
                data[i] = draw(st.integers(0, 255))
            elif op == "truncate":
                del data[max(i, keep) :]
            else:
                data[i:i] = draw(st.binary(min_size=1, max_size=16))
        return bytes(data)

    return draw_one()
