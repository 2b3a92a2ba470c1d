"""Issue 17's judge: malicious and benign model files, one set per class of the issue, built here.

Every sample is bytes written by this module, never loaded: malicious pickles opcode by opcode with
the assembler of :mod:`scan_corpus` (or, for archives, around such pickles); benign ones either the
same way or by *dumping* real objects with the libraries that write them (``pickle.dumps``,
``torch.save``, ``numpy.save``, ``joblib.dump``), which runs no pickle. Nothing here unpickles.

Each sample is modelled on a public test or advisory of a peer scanner (``source``): picklescan's
tests/test_scanner.py (its ``initialize_*`` fixtures) and its GHSA advisories of 2025-2026,
fickling's test/test_bypasses.py, test_polyglot.py and test_benign_edge_cases.py, modelscan's and
modelaudit's scanner tests. The bytes and the builders are this module's own.

Labels:

* ``malicious``: a loader (``pickle.load``, ``torch.load``, ``joblib.load``, ``numpy.load`` with
  ``allow_pickle``) would run code, or the file cannot be judged. ``expect`` is the least severity
  hfa must give: ``critical`` where it runs code, ``high`` where hfa can only fail closed;
* ``benign``: what real projects save; hfa must report nothing (``allow`` is the user's allowlist
  the sample is judged with, for third-party classes such as sklearn's);
* ``user-class``: a class of the saving script (``__main__``): high, never critical.

Used by tests/test_scan_corpus17.py (the verdicts) and bench/bench_corpus.py (hfa against picklescan).
"""

from __future__ import annotations

import array
import base64
import bz2
import collections
import datetime
import decimal
import fractions
import functools
import gzip
import http
import io
import ipaddress
import lzma
import pickle
import random
import re
import struct
import tarfile
import time
import uuid
import zipfile
import zlib
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from scan_corpus import Asm, Member, build_zip, framed, joblib_pickle, npy, s

_RNG = random.Random(1717)  # seeded: a scanner corpus is the same bytes on every run

CRIT = "critical"
HIGH = "high"
MEDIUM = "medium"
CLEAN = "clean"


@dataclass(frozen=True)
class Sample:
    name: str
    filename: str  # the name it is scanned under (extensions matter: a .pkl that cannot be parsed is a finding)
    data: bytes
    label: str  # "malicious" | "benign" | "user-class"
    expect: str  # malicious: the least severity; benign: "clean"; user-class: "high"
    klass: str  # "1".."9" (the classes), "classic", "benign"
    source: str  # the public test or advisory it is modelled on
    allow: tuple[str, ...] = ()  # the user's allowlist extension it is judged with
    codes: tuple[str, ...] = ()  # finding codes of which at least one must be reported


# The codes that say what each class's finding is (besides the global's own verdict).
CLASS_CODES: dict[str, tuple[str, ...]] = {
    "1": ("pickle.frame-overrun", "pickle.frame-mismatch", "pickle.malformed"),
    "4": ("pickle.expansion",),
    "8": ("archive.encrypted",),
}


def bad(name: str, filename: str, data: bytes, klass: str, source: str, expect: str = CRIT) -> Sample:
    return Sample(name, filename, data, "malicious", expect, klass, source, codes=CLASS_CODES.get(klass, ()))


def good(name: str, filename: str, data: bytes, source: str, allow: tuple[str, ...] = ()) -> Sample:
    return Sample(name, filename, data, "benign", CLEAN, "benign", source, allow)


# --------------------------------------------------------------------------------------------
# Pickle builders (own): a call at every protocol, by every opcode that imports and calls


def call(module: str, name: str, *args: str | bytes, proto: int = 2, how: str = "reduce") -> bytes:
    """``module.name(*args)`` as a __reduce__ writes it, or by INST / OBJ / NEWOBJ / NEWOBJ_EX."""
    a = Asm(proto if proto >= 2 else None)
    a.proto = proto

    def push(v: str | bytes) -> None:
        if isinstance(v, bytes):
            a.op("SHORT_BINBYTES", v) if proto >= 3 else a.op("STRING", v.decode("latin-1"))
        elif proto == 0:
            a.op("STRING", v)
        else:
            a.str(v)

    if how == "inst":  # protocol 0/1: MARK args INST module name
        a.op("MARK")
        for v in args:
            push(v)
        return a.op("INST", module, name).stop()
    if how == "obj":  # MARK global args OBJ
        a.op("MARK")
        a.glob(module, name)
        for v in args:
            push(v)
        return a.op("OBJ").stop()
    a.glob(module, name)
    if proto >= 4:
        a.op("MEMOIZE")
    a.op("MARK")
    for v in args:
        push(v)
    a.op("TUPLE")
    if how == "newobj":
        a.op("NEWOBJ")
    elif how == "newobj_ex":
        a.op("EMPTY_DICT").op("NEWOBJ_EX")
    else:
        a.op("REDUCE")
    body = a.stop()
    return framed(proto, body[2:]) if proto >= 4 else body


def chain(proto: int, steps: Callable[[Asm], object]) -> bytes:
    a = Asm(proto)
    steps(a)
    body = a.stop()
    return framed(proto, body[2:]) if proto >= 4 else body


def getattr_import(module: str, attr: str, arg: str, importer: tuple[str, str], proto: int = 4) -> bytes:
    """getattr(importer(module), attr)(arg): the chain of fickling's importlib / code bypasses."""

    def steps(a: Asm) -> None:
        a.glob("builtins", "getattr").op("MEMOIZE") if proto >= 4 else a.glob("__builtin__", "getattr")
        a.glob(*importer).tuple(s(module)).op("REDUCE")
        a.str(attr).op("TUPLE2").op("REDUCE")
        a.tuple(s(arg)).op("REDUCE")

    return chain(proto, steps)


def inject(payload: bytes, host: bytes) -> bytes:
    """A payload pickle run before ``host``'s first opcode, its result popped: fickling's injection."""
    assert payload[:1] == b"\x80" and host[:1] == b"\x80"
    body = payload[2:-1]
    if body[:1] == b"\x95":  # drop the payload's frame: the host's protocol decides
        body = body[9:]
    return host[:2] + body + b"0" + host[2:]


EVIL = call("os", "system", "id")
EVIL4 = call("os", "system", "id", proto=4)


# --------------------------------------------------------------------------------------------
# Zip and 7z writers


def real_zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def _crc_byte(crc: int, b: int) -> int:
    return zlib.crc32(bytes([b]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def zipcrypto(data: bytes, password: bytes, crc: int) -> bytes:
    """PKWARE traditional encryption (APPNOTE 6.1): what `zip -e` writes. Python's zipfile reads it."""
    k = [0x12345678, 0x23456789, 0x34567890]

    def update(c: int) -> None:
        k[0] = _crc_byte(k[0], c)
        k[1] = ((k[1] + (k[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k[2] = _crc_byte(k[2], k[1] >> 24)

    for c in password:
        update(c)
    out = bytearray()
    for p in bytes(range(11)) + bytes([crc >> 24]) + data:
        t = (k[2] | 2) & 0xFFFF
        out.append(p ^ (((t * (t ^ 1)) >> 8) & 0xFF))
        update(p)
    return bytes(out)


def encrypted_zip(name: str, data: bytes, password: bytes = b"infected") -> bytes:
    crc = zlib.crc32(data)
    return build_zip([Member(name, data, flags=0x1, payload=zipcrypto(data, password, crc), usize=len(data))])


def sevenzip(members: list[tuple[str, bytes]], rename: tuple[str, str] | None = None) -> bytes | None:
    """A 7z of ``members``; ``rename`` (old, new of the same length) rewrites a name py7zr refuses to write."""
    try:
        import py7zr
    except ImportError:
        return None
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        if rename:
            archive.set_encoded_header_mode(False)  # a plain header: names readable, in UTF-16
        for name, data in members:
            archive.writestr(data, name)
    if rename is None:
        return buf.getvalue()
    old, new = (x.encode("utf-16-le") for x in rename)
    out = bytearray(buf.getvalue().replace(old, new))
    offset, size = struct.unpack("<QQ", out[12:28])  # the start header: where the header is, its CRC
    out[28:32] = struct.pack("<I", zlib.crc32(bytes(out[32 + offset : 32 + offset + size])))
    out[8:12] = struct.pack("<I", zlib.crc32(bytes(out[12:32])))
    return bytes(out)


def tar_of(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Real libraries, dumped (never loaded). Each returns None when its library is missing.


@functools.cache
def _torch() -> object | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_save(obj_factory: Callable[[object], object], legacy: bool = False) -> bytes | None:
    torch = _torch()
    if torch is None:
        return None
    buf = io.BytesIO()
    torch.save(obj_factory(torch), buf, _use_new_zipfile_serialization=not legacy)  # type: ignore[attr-defined]
    return buf.getvalue()


def _net(torch: object) -> object:
    t: object = torch
    nn = t.nn  # type: ignore[attr-defined]
    t.manual_seed(0)  # type: ignore[attr-defined]
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 2))


def _state_dict(torch: object) -> object:
    return _net(torch).state_dict()  # type: ignore[attr-defined]


def _tied(torch: object) -> object:
    net = _net(torch)
    sd = net.state_dict()  # type: ignore[attr-defined]
    sd["head.weight"] = sd["0.weight"]  # a tied embedding: the same storage twice
    sd["half"] = sd["0.weight"][:2]  # a view on it
    return sd


def _training_checkpoint(torch: object) -> object:
    t: object = torch
    net = _net(torch)
    opt = t.optim.AdamW(net.parameters(), lr=1e-3)  # type: ignore[attr-defined]
    loss = net(t.ones(3, 4)).sum()  # type: ignore[attr-defined,operator]
    loss.backward()
    opt.step()
    sched = t.optim.lr_scheduler.StepLR(opt, step_size=10)  # type: ignore[attr-defined]
    return {
        "model": net.state_dict(),  # type: ignore[attr-defined]
        "optimizer": opt.state_dict(),
        "lr_scheduler": sched.state_dict(),
        "epoch": 3,
        "best_metric": 0.917,
        "rng_state": t.get_rng_state(),  # type: ignore[attr-defined]
    }


def _lightning_checkpoint(torch: object) -> object:
    import argparse

    t: object = torch
    ckpt: dict[str, object] = dict(_training_checkpoint(torch))  # type: ignore[call-overload]
    model = ckpt.pop("model")
    optimizer = ckpt.pop("optimizer")
    scheduler = ckpt.pop("lr_scheduler")
    return {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "2.5.1",
        "state_dict": model,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": {
                "monitor": "val_loss",
                "best_model_score": t.tensor(0.25),  # type: ignore[attr-defined]
                "best_model_path": "/runs/exp1/checkpoints/epoch=2.ckpt",
                "dirpath": "/runs/exp1/checkpoints",
            }
        },
        "optimizer_states": [optimizer],
        "lr_schedulers": [scheduler],
        "hparams_name": "kwargs",
        "hyper_parameters": {
            "data_dir": Path("/data/imagenet"),
            "cache_dir": PurePosixPath("/tmp/cache"),
            "win_dir": PureWindowsPath("C:/data"),
            "lr": 1e-3,
            "batch_size": 64,
            "layers": (4, 8, 2),
            "args": argparse.Namespace(seed=42, fast_dev_run=False, output=Path("out")),
            "started": datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.timezone.utc),
            "max_time": datetime.timedelta(hours=12),
        },
    }


def _whole_model(torch: object) -> object:
    return _net(torch)


def _hf_rng_state(torch: object) -> object:
    """What transformers' Trainer saves as rng_state.pth."""
    import random

    import numpy as np

    random.seed(0)
    return {
        "python": random.getstate(),
        "numpy": np.random.RandomState(0).get_state(),
        "cpu": torch.random.get_rng_state(),  # type: ignore[attr-defined]
    }


def _tensor_kinds(torch: object) -> object:
    """Tensors of other dtypes and layouts: bfloat16, complex, sparse, quantized, channels_last, a Parameter."""
    import warnings

    t: object = torch
    x = t.arange(16, dtype=t.float32).reshape(1, 1, 4, 4)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated; checkpoints still hold them
        q = t.quantize_per_tensor(x, 0.1, 0, t.qint8)  # type: ignore[attr-defined]
    return {
        "bf16": x.to(t.bfloat16),  # type: ignore[attr-defined]
        "c64": t.complex(x, x),  # type: ignore[attr-defined]
        "sparse": t.eye(3).to_sparse(),  # type: ignore[attr-defined]
        "q": q,
        "cl": x.contiguous(memory_format=t.channels_last),  # type: ignore[attr-defined]
        "p": t.nn.Parameter(t.ones(2)),  # type: ignore[attr-defined]
        "i64": t.tensor([1, 2, 3]),  # type: ignore[attr-defined]
        "bool": t.tensor([True, False]),  # type: ignore[attr-defined]
    }


def numpy_dumps(proto: int) -> bytes | None:
    try:
        import numpy as np
    except ImportError:
        return None
    return pickle.dumps(
        {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "i": np.int64(7), "f": np.float16(0.5)}, protocol=proto
    )


def numpy_files() -> Iterator[tuple[str, str, bytes]]:
    try:
        import numpy as np
    except ImportError:
        return
    buf = io.BytesIO()
    np.save(buf, np.linspace(0, 1, 16).reshape(4, 4))
    yield "npy-float", "embeddings.npy", buf.getvalue()
    buf = io.BytesIO()
    np.save(buf, np.array(["a", 1, None, {"k": [1.5]}], dtype=object), allow_pickle=True)
    yield "npy-object-plain-values", "labels.npy", buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, w=np.ones((3, 3)), b=np.zeros(3), names=np.array(["x", "y"]))
    yield "npz-compressed", "weights.npz", buf.getvalue()
    rec = np.array([("alice", 25, 55.0), ("bob", 30, 75.5)], dtype=[("name", "U10"), ("age", "i4"), ("w", "f8")])
    yield "numpy-structured-p4", "records.pkl", pickle.dumps(rec, protocol=4)
    yield "numpy-rng-generator-p4", "rng.pkl", pickle.dumps(np.random.default_rng(0), protocol=4)
    yield "numpy-rng-randomstate-p2", "rng.pkl", pickle.dumps(np.random.RandomState(0), protocol=2)
    yield "numpy-rng-get-state-p4", "rng.pkl", pickle.dumps(np.random.RandomState(0).get_state(), protocol=4)


def sklearn_models() -> Iterator[tuple[str, str, bytes]]:
    try:
        import joblib
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.tree import DecisionTreeClassifier
    except ImportError:
        return
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]] * 3)
    y = np.array([0, 1, 1, 0] * 3)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(x, y)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y)
    yield "sklearn-pipeline-pickle-p5", "model.pkl", pickle.dumps(pipe, protocol=5)
    yield "sklearn-tree-pickle-p2", "tree.pkl", pickle.dumps(tree, protocol=2)
    buf = io.BytesIO()
    joblib.dump({"pipeline": pipe, "tree": tree, "classes": np.array(["no", "yes"])}, buf)
    yield "sklearn-joblib", "model.joblib", buf.getvalue()
    buf = io.BytesIO()
    joblib.dump({"embeddings": np.ones((8, 4), dtype=np.float32), "ids": list(range(8))}, buf, compress=3)
    yield "joblib-compressed-arrays", "cache.joblib", buf.getvalue()


# --------------------------------------------------------------------------------------------
# The samples, by class


def classic() -> Iterator[Sample]:
    src = "picklescan tests/test_scanner.py initialize_* (os.system, eval, exec, getattr)"
    for proto in range(6):
        yield bad(f"os-system-reduce-p{proto}", "model.pkl", call("os", "system", "id", proto=proto), "classic", src)
        yield bad(
            f"subprocess-check-output-p{proto}",
            "model.pkl",
            call("subprocess", "check_output", "id", proto=proto),
            "classic",
            src,
        )
    for proto in (0, 1):
        yield bad(f"os-system-inst-p{proto}", "model.pkl", call("os", "system", "id", proto=proto, how="inst"),
                  "classic", "modelscan tests: INST")  # fmt: skip
    for proto in (0, 2, 4):
        yield bad(f"os-system-obj-p{proto}", "model.pkl", call("os", "system", "id", proto=proto, how="obj"),
                  "classic", "fickling test_missing_pty_unsafe_imports_pr: OBJ")  # fmt: skip
    yield bad("popen-newobj-p2", "model.pkl", call("subprocess", "Popen", "id", how="newobj"), "classic", src)
    yield bad("popen-newobj-ex-p4", "model.pkl", call("subprocess", "Popen", "id", proto=4, how="newobj_ex"),
              "classic", src)  # fmt: skip
    yield bad("posix-system-p2", "model.pkl", call("posix", "system", "id"), "classic", "modelaudit tests: posix")
    yield bad("nt-system-p4", "model.pkl", call("nt", "system", "calc", proto=4), "classic", "modelaudit tests: nt")
    yield bad("py2-builtin-eval-p0", "model.pkl", call("__builtin__", "eval", "1+1", proto=0), "classic",
              "picklescan malicious1 (eval), protocol 0")  # fmt: skip
    for proto in (1, 3, 5):
        yield bad(f"builtins-eval-p{proto}", "model.pkl", call("builtins", "eval", "__import__('os').system('id')",
                  proto=proto), "classic", src)  # fmt: skip
    yield bad("builtins-exec-p4", "model.pkl", call("builtins", "exec", "import os", proto=4), "classic", src)
    yield bad("builtins-compile-p2", "model.pkl", call("builtins", "compile", "1", "<s>", "eval"), "classic", src)
    yield bad("getattr-import-system", "model.pkl", getattr_import("os", "system", "id", ("builtins", "__import__")),
              "classic", "picklescan malicious2 (getattr chain)")  # fmt: skip
    yield bad("getattr-import-module-p5", "model.pkl",
              getattr_import("subprocess", "getoutput", "id", ("importlib", "import_module"), proto=5), "classic",
              "fickling test_missing_importlib")  # fmt: skip
    yield bad("getattr-import-p2", "model.pkl", getattr_import("os", "popen", "id", ("__builtin__", "__import__"),
              proto=2), "classic", src)  # fmt: skip

    def code_runsource(a: Asm) -> None:
        a.glob("builtins", "getattr").op("MEMOIZE")
        a.glob("code", "InteractiveInterpreter").op("EMPTY_TUPLE").op("REDUCE")
        a.str("runsource").op("TUPLE2").op("REDUCE").tuple(s("import os; os.system('id')")).op("REDUCE")

    yield bad(
        "code-interpreter-runsource", "model.pkl", chain(5, code_runsource), "classic", "fickling test_missing_code"
    )

    def marshal_function(a: Asm) -> None:
        a.glob("marshal", "loads").op("MEMOIZE").tuple(lambda x: x.op("SHORT_BINBYTES", b"\xe3" + b"\x00" * 40))
        a.op("REDUCE").op("MEMOIZE").glob("types", "FunctionType").op("BINGET", 1).op("EMPTY_DICT").op("TUPLE2")
        a.op("REDUCE").op("EMPTY_TUPLE").op("REDUCE")

    yield bad("marshal-types-function", "model.pkl", chain(4, marshal_function), "classic",
              "fickling test_missing_marshal_and_types (GHSA-565g-hwwr-4pp3)")  # fmt: skip

    def pydoc_locate(a: Asm) -> None:
        a.op("GLOBAL", "pydoc", "locate").op("STRING", "ctypes.windll.kernel32.WinExec").op("TUPLE1").op("REDUCE")
        a.op("PUT", 0).op("POP").op("GET", 0).op("SHORT_BINBYTES", b"calc.exe").int(1).op("TUPLE2").op("REDUCE")

    yield bad("pydoc-locate", "model.pkl", chain(2, pydoc_locate), "classic",
              "fickling test_missing_pydoc (GHSA-5hvc-6wx8-mvv4)")  # fmt: skip

    def ctypes_cdll(a: Asm) -> None:
        a.glob("builtins", "getattr").op("MEMOIZE").glob("ctypes", "CDLL").tuple(s("libc.so.6")).op("REDUCE")
        a.str("system").op("TUPLE2").op("REDUCE").tuple(lambda x: x.op("SHORT_BINBYTES", b"id")).op("REDUCE")

    yield bad("ctypes-cdll-system", "model.pkl", chain(5, ctypes_cdll), "classic", "fickling test_missing_ctypes")

    # getattr of an imported global by a constant name is judged as that attribute (a zone-aware datetime
    # pickles its zone so): a dunder attribute, or getattr kept for another use, stays critical
    def getattr_dunder(a: Asm) -> None:
        a.glob("builtins", "getattr").glob("zoneinfo", "ZoneInfo").str("__subclasses__").op("TUPLE2").op("REDUCE")
        a.op("EMPTY_TUPLE").op("REDUCE")

    yield bad("getattr-constant-dunder", "model.pkl", chain(4, getattr_dunder), "classic", "fickling getattr chains")

    def getattr_kept(a: Asm) -> None:
        a.glob("builtins", "getattr").op("MEMOIZE").glob("zoneinfo", "ZoneInfo").str("_unpickle").op("TUPLE2")
        a.op("REDUCE").op("POP").glob("builtins", "map").op("BINGET", 0).op("EMPTY_LIST").op("TUPLE2").op("REDUCE")

    yield bad("getattr-resolved-then-passed-on", "model.pkl", chain(4, getattr_kept), "classic",
              "issue 17 (getattr resolved once, then handed to another call)")  # fmt: skip
    # the memo tricks of picklescan issue 22 and GHSA-9gvj-pp9x-gcfr: names fetched from the memo
    a = Asm(4).str("builtins").op("MEMOIZE").str("eval").op("MEMOIZE").op("POP").op("POP")
    a.str("decoy").op("BINPUT", 5).op("POP").op("BINGET", 0).op("BINGET", 1).op("STACK_GLOBAL")
    a.tuple(s("print(1)")).op("REDUCE")
    yield bad("stack-global-names-from-memo", "model.pkl", framed(4, a.stop()[2:]), "classic",
              "picklescan issue 22 (memo)")  # fmt: skip
    # str('os') as STACK_GLOBAL's module: what CPython imports is os
    a = Asm(4).call("builtins", "str", s("os")).str("system").op("STACK_GLOBAL").tuple(s("id")).op("REDUCE")
    yield bad("stack-global-module-from-str-call", "model.pkl", a.stop(), "classic",
              "modelscan PR 313 (non-string STACK_GLOBAL operands)")  # fmt: skip
    # torch zips: the payload as data.pkl, injected before a real state dict, and in a stray member
    sd = torch_save(_state_dict)
    if sd is not None:
        members = _zip_members(sd)
        pkl = next(n for n in members if n.endswith("/data.pkl"))
        injected = dict(members, **{pkl: inject(EVIL, members[pkl])})
        yield bad("torch-zip-injected-data-pkl", "pytorch_model.bin", real_zip(list(injected.items())), "classic",
                  "fickling PyTorch injection (test_pytorch.py)")  # fmt: skip
        replaced = dict(members, **{pkl: EVIL})
        yield bad("torch-zip-evil-data-pkl", "model.pt", real_zip(list(replaced.items())), "classic",
                  "picklescan malicious pytorch zip")  # fmt: skip
        stray = dict(members, **{pkl.replace("data.pkl", "extra/evil.pkl"): EVIL4})
        yield bad("torch-zip-stray-member", "model.pt", real_zip(list(stray.items())), "classic",
                  "modelaudit zip members")  # fmt: skip
    legacy = torch_save(_state_dict, legacy=True)
    if legacy is not None:
        yield bad("torch-legacy-injected", "model.pth", _legacy_inject(legacy), "classic",
                  "fickling test_pytorch.py legacy injection")  # fmt: skip
    # numpy: object arrays in .npy / .npz, and an object ndarray pickled whole
    yield bad("npy-object-evil", "features.npy", npy("|O", (2,), EVIL), "classic", "picklescan test numpy")
    yield bad("npz-object-evil", "arrays.npz", real_zip([("a.npy", npy("<f4", (1,), b"\x00" * 4)),
              ("b.npy", npy("|O", (1,), EVIL4))]), "classic", "picklescan test numpy npz")  # fmt: skip
    yield bad("ndarray-object-state-evil", "arr.pkl", _object_ndarray_evil(), "classic", "modelaudit numpy tests")
    # joblib
    yield bad("joblib-object-array-evil", "model.joblib", joblib_pickle(object_payload=EVIL), "classic",
              "modelaudit joblib tests")  # fmt: skip
    yield bad("joblib-injected", "model.joblib", inject(EVIL, pickle.dumps({"coef": [0.5, 1.5]}, protocol=4)),
              "classic", "picklescan joblib")  # fmt: skip
    yield bad("joblib-zlib-evil", "model.joblib", b"ZF" + hex(len(EVIL)).encode().ljust(19) + zlib.compress(EVIL),
              "classic", "joblib zlib file")  # fmt: skip
    # archives of archives, tar and 7z members
    inner = real_zip([("data.pkl", EVIL)])
    yield bad("zip-in-zip", "bundle.zip", real_zip([("inner.zip", inner)]), "classic", "picklescan nested zip")
    yield bad("zip-in-zip-deflated", "bundle.zip", real_zip([("models/inner.zip", inner), ("README", b"hi")],
              zipfile.ZIP_DEFLATED), "classic", "modelaudit nested zip")  # fmt: skip
    yield bad("tar-member", "model.tar", tar_of([("model/data.pkl", EVIL)]), "classic", "modelaudit tar tests")
    yield bad("tar-gz-member", "model.tar.gz", tar_of([("data.pkl", EVIL4)], "w:gz"), "classic", "modelaudit tar")
    yield bad("zip-in-tar", "model.tar", tar_of([("x/inner.zip", inner)]), "classic", "modelaudit nested archives")
    seven = sevenzip([("model/data.pkl", EVIL)])
    if seven is not None:
        yield bad("7z-member", "model.7z", seven, "classic", "picklescan test 7z")
        yield bad("7z-in-zip", "bundle.zip", real_zip([("inner.7z", seven)]), "classic", "picklescan nested 7z")
    yield bad("gzip-pickle", "model.pkl.gz", gzip.compress(EVIL), "classic", "pandas read_pickle compression")
    yield bad("bz2-pickle", "model.pkl.bz2", bz2.compress(EVIL), "classic", "pandas read_pickle compression")
    # polyglots: a pickle first and a zip after it, a zip whose prefix is a pickle
    benign_zip = real_zip([("archive/data.pkl", pickle.dumps({"w": [1.0]}, protocol=2)), ("archive/version", b"3")])
    yield bad("pickle-then-zip-polyglot", "model.pt", EVIL + benign_zip, "classic",
              "fickling test_polyglot.py (pickle + zip)")  # fmt: skip
    yield bad("benign-pickle-then-evil-zip", "model.pt",
              pickle.dumps([1], protocol=2) + real_zip([("archive/data.pkl", EVIL)]), "classic",
              "fickling test_polyglot.py")  # fmt: skip
    benign_pkl = pickle.dumps({"w": [1.0]}, protocol=2)
    dup = build_zip([Member("archive/data.pkl", benign_pkl), Member("archive/data.pkl", EVIL)])
    yield bad("zip-duplicate-member-second-evil", "model.pt", dup, "classic", "modelaudit zip tests (duplicate names)")
    yield bad("stacked-pickles-second-evil", "model.pkl", pickle.dumps({"a": 1}, protocol=4) + EVIL4, "classic",
              "picklescan multiple pickles")  # fmt: skip


def _zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _legacy_inject(data: bytes) -> bytes:
    """The payload run at the start of the legacy format's first pickle (the magic number)."""
    return inject(EVIL, data)


def _object_ndarray_evil() -> bytes:
    """numpy.ndarray.__reduce__ of an object array whose one element is os.system('id')."""
    a = Asm(2)
    a.glob("numpy.core.multiarray", "_reconstruct")
    a.tuple(lambda x: x.glob("numpy", "ndarray"), lambda x: x.tuple(lambda y: y.int(0)), lambda x: x.op("STRING", "b"))
    a.op("REDUCE")
    a.op("MARK").int(1).tuple(lambda x: x.int(1))
    a.glob("numpy", "dtype").op("MARK").str("O8").op("NEWFALSE").op("NEWTRUE").op("TUPLE").op("REDUCE")
    a.op("MARK").int(3).str("|").op("NONE").op("NONE").op("NONE").int(-1).int(-1).int(63).op("TUPLE").op("BUILD")
    a.op("NEWFALSE").op("EMPTY_LIST").call("os", "system", s("id")).op("APPEND").op("TUPLE").op("BUILD")
    return a.stop()


def frames() -> Iterator[Sample]:
    """Class 1: an opcode that crosses its frame's end hides a call from a straight parser."""
    src = "modelaudit frame tests; issue 17 class 1"
    hidden = b"0cos\nsystem\n(S'id'\ntR"
    for opcode, width in ((b"B", 4), (b"X", 4), (b"\x8e", 8)):
        for pad in range(3):
            for cut in (1, width // 2, width - 1):
                size = 2 + len(hidden)
                length = size.to_bytes(width, "little")
                body = b"N0" * pad + opcode + length[:cut]
                tail = length[cut:] + b"\x00" * cut + b"\x00\x00" + hidden + b"."
                data = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body + tail
                yield bad(f"frame-straddle-{opcode.hex()}-pad{pad}-cut{cut}", "model.pkl", data, "1", src)
    inner = b"\x95" + struct.pack("<Q", 4) + b"N0N0"
    body = b"N0" + inner
    yield bad("frame-inside-frame", "model.pkl", b"\x80\x04\x95" + struct.pack("<Q", len(body) + 2) + body + b"N0" +
              EVIL[2:], "1", src)  # fmt: skip
    body = EVIL4[11:-1]
    yield bad("frame-longer-than-file", "model.pkl", b"\x80\x04\x95" + struct.pack("<Q", 4096) + body + b".", "1",
              src)  # fmt: skip


def containers() -> Iterator[Sample]:
    """Class 2: containers and compressed streams; those hfa does not open fail closed."""
    src = "picklescan 7z support (py7zr); issue 17 class 2"
    seven = sevenzip([("archive/data.pkl", call("builtins", "eval", "print(1)", proto=4))])
    if seven is not None:
        yield bad("7z-builtins-eval", "weights.7z", seven, "2", src)
        yield bad("7z-no-extension", "weights", seven, "2", src)
        dotdot = sevenzip([("XXXXX/evil.pkl", EVIL)], rename=("XXXXX", "../.."))
        if dotdot is not None:
            yield bad("7z-dotdot-member", "weights.7z", dotdot, "2", "issue 12: member names with ../")
    yield bad("zip-dotdot-member", "weights.zip", real_zip([("../../home/user/.bashrc.pkl", EVIL)]), "2",
              "issue 12: member names with ../")  # fmt: skip
    yield bad("rar5", "model.rar", b"Rar!\x1a\x07\x01\x00" + _RNG.randbytes(64), "2", src, HIGH)
    yield bad("rar4-as-pkl", "model.pkl", b"Rar!\x1a\x07\x00" + _RNG.randbytes(64), "2", src, HIGH)
    yield bad("cab", "model.cab", b"MSCF\x00\x00\x00\x00" + _RNG.randbytes(64), "2", src, HIGH)
    yield bad("ar-archive", "model.bin", b"!<arch>\n" + b"data.pkl/       " + b" " * 44 + EVIL, "2", src, HIGH)
    yield bad("xz-pickle", "model.pkl.xz", lzma.compress(EVIL), "2", "pandas read_pickle xz")
    yield bad("lzma-alone-pickle", "model.pkl.lzma", lzma.compress(EVIL, format=lzma.FORMAT_ALONE), "2",
              "joblib lzma compression")  # fmt: skip
    yield bad("xz-pickle-no-extension", "model", lzma.compress(EVIL4), "2", src)
    yield bad("tar-xz-member", "model.tar.xz", tar_of([("data.pkl", EVIL)], "w:xz"), "2", "modelaudit tar.xz")
    yield bad("tar-bz2-member", "model.tar.bz2", tar_of([("data.pkl", EVIL)], "w:bz2"), "2", "modelaudit tar.bz2")
    try:
        import zstandard

        yield bad("zstd-pickle", "model.pkl.zst", zstandard.ZstdCompressor().compress(EVIL), "2", "joblib zstd")
    except ImportError:
        pass
    try:
        import lz4.frame

        yield bad("lz4-pickle", "model.joblib.lz4", lz4.frame.compress(EVIL), "2", "joblib lz4")
    except ImportError:
        pass
    for method, what in ((14, "lzma"), (93, "zstd"), (95, "xz"), (98, "ppmd"), (99, "aes")):
        data = build_zip([Member("archive/data.pkl", EVIL, method=method, payload=_RNG.randbytes(48), usize=len(EVIL))])
        expect = MEDIUM if what == "aes" else HIGH  # method 99 is WinZip AES: an encrypted member
        yield bad(f"zip-method-{what}", "model.pt", data, "2", "issue 17 class 2: zip methods hfa cannot inflate",
                  expect)  # fmt: skip


def unparseable() -> Iterator[Sample]:
    """Class 3: bytes under a pickle or model name, or in a model archive, that cannot be parsed."""
    src = "issue 17 class 3 (magic-byte evasion, corrupt members)"
    yield bad("pkl-leading-nul", "model.pkl", b"\x00" + EVIL, "3", src, HIGH)
    yield bad("pkl-leading-nul-p4", "model.pkl", b"\x00\x00\x00\x00" + EVIL4, "3", src, HIGH)
    yield bad("pt-random-bytes", "model.pt", bytes(range(256)) * 4, "3", src, HIGH)
    yield bad("ckpt-text", "last.ckpt", b"this is not a checkpoint\n" * 10, "3", src, HIGH)
    yield bad("joblib-junk", "model.joblib", b"\x01\x02\x03" + _RNG.randbytes(60), "3", src, HIGH)
    yield bad("pkl-png-header-then-pickle", "image.pkl", b"\x89PNG\r\n\x1a\n" + EVIL, "3",
              "fickling polyglot tests (a valid header, then a pickle)", HIGH)  # fmt: skip
    yield bad("pkl-truncated-mid-opcode", "model.pkl", EVIL4[:-6], "3", src, HIGH)
    good_pkl = pickle.dumps({"w": [1.0, 2.0]}, protocol=2)
    yield bad("zip-good-and-corrupt-member", "model.pt", real_zip([("archive/data.pkl", good_pkl),
              ("archive/extra.pkl", b"\x00garbage" * 8)]), "3", src, HIGH)  # fmt: skip
    yield bad("torch-zip-garbage-data-pkl", "pytorch_model.bin", real_zip([("archive/data.pkl", b"\x00" * 64),
              ("archive/version", b"3\n")]), "3", src, HIGH)  # fmt: skip
    yield bad("npy-object-garbage", "x.npy", npy("|O", (1,), b"\x00\x01\x02garbage"), "3", src, HIGH)


def expansion() -> Iterator[Sample]:
    """Class 4: a structure of billions of elements from a few hundred opcodes."""
    src = "fickling test_expansion_attack_analysis.py; issue 17 class 4"
    # nested lists: each level holds the level below N times (BINGET of one memo entry)
    for proto, width, depth in ((2, 10, 9), (4, 100, 5), (0, 20, 7)):
        a = Asm(proto if proto >= 2 else None)
        a.proto = proto
        put, get = ("BINPUT", "BINGET") if proto >= 1 else ("PUT", "GET")
        a.op("EMPTY_LIST") if proto >= 1 else a.op("MARK").op("LIST")
        a.op(put, 0)
        for level in range(1, depth + 1):
            a.op("MARK")
            for _ in range(width):
                a.op(get, level - 1)
            a.op("LIST").op(put, level)
        yield bad(f"billion-laughs-lists-p{proto}-w{width}-d{depth}", "model.pkl", a.stop(), "4", src, HIGH)
    # DUP chains: a list appended to itself through DUP, nested
    a = Asm(2).op("EMPTY_LIST")
    for _ in range(30):
        a.op("DUP").op("DUP").op("TUPLE3")  # (x, x, x), then that three times: 3**30 elements
    yield bad("dup-chain", "model.pkl", a.stop(), "4", src, HIGH)
    # dicts of the same dict
    a = Asm(4).op("EMPTY_DICT").op("MEMOIZE")
    for level in range(1, 8):
        a.op("EMPTY_DICT").op("MARK")
        for k in range(30):
            a.int(k).op("BINGET", level - 1)
        a.op("SETITEMS").op("MEMOIZE")
    yield bad("billion-laughs-dicts-p4", "model.pkl", framed(4, a.stop()[2:]), "4", src, HIGH)
    # tuples via MEMOIZE/GET, one memo entry fetched 500 times per level
    a = Asm(4).op("EMPTY_TUPLE").op("MEMOIZE")
    for level in range(1, 4):
        a.op("MARK")
        for _ in range(500):
            a.op("BINGET", level - 1)
        a.op("TUPLE").op("MEMOIZE")
    yield bad("wide-tuples-p4", "model.pkl", framed(4, a.stop()[2:]), "4", src, HIGH)


def nested() -> Iterator[Sample]:
    """Class 5: a pickle inside a value of a pickle (bytes, base64 or hex text): the staging pattern."""
    src = "modelaudit nested pickle tests; issue 17 class 5"
    for proto in (2, 3, 4):
        yield bad(f"bytes-value-is-pickle-p{proto}", "model.pkl",
                  pickle.dumps({"weights": [0.1], "blob": EVIL}, protocol=proto), "5", src)  # fmt: skip
    yield bad("base64-value-is-pickle", "model.pkl",
              pickle.dumps({"config": base64.b64encode(EVIL).decode()}, protocol=4), "5", src)  # fmt: skip
    yield bad("urlsafe-base64-value", "model.pkl",
              pickle.dumps({"cfg": base64.urlsafe_b64encode(EVIL4).decode()}, protocol=2), "5", src)  # fmt: skip
    yield bad("hex-value-is-pickle", "model.pkl", pickle.dumps(["x", EVIL.hex()], protocol=3), "5", src)
    level2 = pickle.dumps({"payload": base64.b64encode(EVIL4).decode()}, protocol=2)
    yield bad("nested-two-levels", "model.pkl", pickle.dumps({"stage": level2}, protocol=4), "5", src)
    yield bad("pickle-loads-of-bytes", "model.pkl", call("pickle", "loads", EVIL, proto=3), "5", src)
    yield bad("latin1-text-p0", "model.pkl", pickle.dumps({"blob": EVIL}, protocol=0), "5",
              "protocol 0-2 bytes as _codecs.encode(latin-1 text)")  # fmt: skip
    sd = torch_save(lambda t: {"w": t.zeros(2), "meta": EVIL})  # type: ignore[attr-defined]
    if sd is not None:
        yield bad("torch-zip-bytes-value-is-pickle", "model.pt", sd, "5", src)


def gadgets() -> Iterator[Sample]:
    """Class 6: command-running, file-writing and network gadgets (the advisories' list)."""
    items = [
        ("_aix_support", "_read_cmd_output", "GHSA-655q-fx9r-782v"),
        ("_pyrepl.pager", "pipe_pager", "GHSA-655q-fx9r-782v"),
        ("_osx_support", "_read_output", "picklescan advisories 2025"),
        ("uuid", "_get_command_stdout", "picklescan advisories 2025"),
        ("platform", "_syscmd_ver", "picklescan advisories 2025"),
        ("pkgutil", "resolve_name", "GHSA-vvpj-8cmc-gx39"),
        ("ensurepip", "_run_pip", "GHSA-xp4f-hrf8-rxw7"),
        ("timeit", "timeit", "GHSA-v7x6-rv5q-mhwc"),
        ("_operator", "methodcaller", "GHSA-955r-x9j8-7rhh"),
        ("_operator", "attrgetter", "GHSA-46h3-79wf-xr6c"),
        ("operator", "methodcaller", "picklescan scanner.py"),
        ("numpy.testing._private.utils", "runstring", "picklescan scanner.py"),
        ("idlelib.pyshell", "ModifiedInterpreter.runcode", "picklescan advisories 2025"),
        ("idlelib.calltip", "Calltip.fetch_tip", "picklescan advisories 2025"),
        ("lib2to3.pgen2.grammar", "Grammar.loads", "picklescan advisories 2025"),
        ("code", "InteractiveInterpreter.runcode", "modelscan PR 313"),
        ("cProfile", "runctx", "fickling GHSA-p523-jq9w-64x9"),
        ("profile", "Profile.run", "picklescan scanner.py"),
        ("trace", "Trace.runctx", "picklescan scanner.py"),
        ("doctest", "debug_script", "picklescan scanner.py"),
        ("bdb", "Bdb.run", "picklescan malicious15"),
        ("pdb", "Pdb.run", "picklescan scanner.py"),
        ("runpy", "_run_code", "picklescan malicious14"),
        ("runpy", "run_path", "fickling test_missing_runpy"),
        ("asyncio.unix_events", "_UnixSubprocessTransport._start", "picklescan scanner.py"),
        ("multiprocessing.util", "spawnv_passfds", "fickling test_missing_multiprocessing"),
        ("pty", "spawn", "fickling GHSA-r7v6-mfhq-g3m2"),
        ("distutils.file_util", "write_file", "picklescan scanner.py"),
        ("shutil", "copyfile", "modelaudit SUSPICIOUS_GLOBALS"),
        ("shutil", "rmtree", "modelaudit SUSPICIOUS_GLOBALS"),
        ("tempfile", "mkstemp", "modelaudit SUSPICIOUS_GLOBALS"),
        ("glob", "glob", "picklescan scanner.py"),
        ("linecache", "getline", "picklescan scanner.py"),
        ("io", "open", "picklescan scanner.py"),
        ("_io", "FileIO", "picklescan scanner.py"),
        ("codecs", "open", "modelaudit SUSPICIOUS_GLOBALS"),
        ("builtins", "open", "picklescan scanner.py"),
        ("builtins", "breakpoint", "picklescan scanner.py"),
        ("builtins", "__import__", "picklescan scanner.py"),
        ("socket", "create_connection", "picklescan malicious6"),
        ("http.client", "HTTPSConnection", "picklescan malicious3"),
        ("urllib.request", "urlopen", "picklescan scanner.py"),
        ("requests.api", "get", "picklescan malicious4"),
        ("aiohttp.client", "ClientSession", "picklescan malicious5"),
        ("smtplib", "SMTP", "picklescan scanner.py"),
        ("ftplib", "FTP", "picklescan scanner.py"),
        ("webbrowser", "open", "picklescan scanner.py"),
        ("ssl", "get_server_certificate", "modelscan PR 313"),
        ("sys", "exit", "picklescan malicious8"),
        ("pickle", "loads", "picklescan malicious13"),
        ("_pickle", "Unpickler", "picklescan scanner.py"),
        ("dill", "loads", "modelaudit SUSPICIOUS_GLOBALS"),
        ("torch", "load", "picklescan scanner.py"),
        ("torch.serialization", "load", "picklescan scanner.py"),
        ("torch._inductor.codecache", "compile_file", "picklescan advisories 2025"),
        ("torch.utils.collect_env", "run", "picklescan advisories 2025"),
        ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression", "picklescan 2025"),
        ("torch._dynamo.guards", "GuardBuilder.get", "modelscan PR 313"),
        ("torch.utils._config_module", "ConfigModule.load_config", "picklescan advisories 2025"),
        ("torch.jit", "load", "modelaudit SUSPICIOUS_GLOBALS"),
        ("numpy", "load", "picklescan scanner.py"),
        ("numpy.f2py.crackfortran", "myeval", "picklescan advisories 2025"),
        ("joblib", "load", "modelaudit SUSPICIOUS_GLOBALS"),
        ("keras.utils", "get_file", "picklescan scanner.py"),
        ("tensorflow.io.gfile", "GFile", "picklescan scanner.py"),
        ("yaml", "unsafe_load", "modelaudit SUSPICIOUS_GLOBALS"),
        ("pandas", "read_pickle", "modelaudit SUSPICIOUS_GLOBALS"),
        ("functools", "partial", "picklescan scanner.py"),
        ("functools", "reduce", "modelaudit SUSPICIOUS_GLOBALS"),
        ("types", "FunctionType", "fickling test_missing_marshal_and_types"),
        ("marshal", "loads", "picklescan PR 74"),
        ("importlib", "import_module", "picklescan PR 74"),
        ("importlib.util", "find_spec", "picklescan issue 66"),
        ("ctypes", "CDLL", "fickling test_missing_ctypes"),
        ("os", "popen", "picklescan scanner.py"),
        ("os", "execv", "picklescan scanner.py"),
        ("pathlib", "Path.write_text", "issue 17 review: methods of allowed path classes"),
        ("pathlib", "Path.unlink", "issue 17 review"),
        ("pathlib", "PosixPath.write_bytes", "issue 17 review"),
        ("pathlib._local", "Path.write_text", "issue 17 review (Python 3.13 module)"),
        ("pathlib.Path", "write_text", "issue 17 review (module path through a class)"),
    ]
    for module, name, source in items:
        yield bad(f"gadget-{module}:{name}", "model.pkl", call(module, name, "id", proto=4), "6", source)
    # the same names by GLOBAL (protocol 2) for a sample of them, and INST
    for module, name, source in items[:12:3]:
        yield bad(f"gadget-{module}:{name}-p2", "model.pkl", call(module, name, "id", proto=2), "6", source)
    yield bad("gadget-pathlib-write-text-via-global", "model.pkl",
              b"cpathlib\nPath.write_text\n(cpathlib\nPath\n(S'/etc/x'\ntRS'x'\ntR.", "6", "issue 17 review")  # fmt: skip


def encrypted() -> Iterator[Sample]:
    """Class 8: a password-protected zip cannot be scanned: its own finding, medium (docs/security.md: no
    loader reads it without the password, so it does not fail a scan by default)."""
    src = "issue 17 class 8 (zip -e, PKWARE encryption)"
    yield bad("zipcrypto-evil", "model.zip", encrypted_zip("archive/data.pkl", EVIL), "8", src, MEDIUM)
    yield bad("zipcrypto-evil-pt", "model.pt", encrypted_zip("archive/data.pkl", EVIL4), "8", src, MEDIUM)
    aes = build_zip([Member("data.pkl", EVIL, method=99, flags=0x1, payload=_RNG.randbytes(40), usize=len(EVIL))])
    yield bad("zip-aes-evil", "model.zip", aes, "8", "WinZip AES (method 99)", MEDIUM)


def legacy_models() -> Iterator[Sample]:
    """Class 9: whole models in the legacy format; their classes come through persistent ids."""
    whole = torch_save(_whole_model, legacy=True)
    if whole is not None:
        yield bad("legacy-whole-model-injected", "model.pth", inject(EVIL, whole), "9", "fickling test_pytorch.py")


# --------------------------------------------------------------------------------------------
# Benign


def _main_class_pickles() -> Iterator[Sample]:
    src = "fickling test_benign_edge_cases.py (custom classes); issue 17: high, never critical"
    for proto in range(6):
        a = Asm(proto if proto >= 2 else None)
        a.proto = proto
        if proto < 2:
            a.op("GLOBAL", "copy_reg", "_reconstructor").op("MARK").op("GLOBAL", "__main__", "Config")
            a.op("GLOBAL", "__builtin__", "object").op("NONE").op("TUPLE").op("REDUCE")
        else:
            a.glob("__main__", "Config").op("EMPTY_TUPLE").op("NEWOBJ")
        if proto >= 1:
            a.op("MARK").str("name").str("bert").str("lr").op("BINFLOAT", 0.001)
        else:
            a.op("MARK").op("UNICODE", "name").op("UNICODE", "bert").op("UNICODE", "lr").op("FLOAT", 0.001)
        a.op("DICT").op("BUILD")
        yield Sample(f"main-class-p{proto}", "config.pkl", a.stop(), "user-class", HIGH, "benign", src)
    a = Asm(4).glob("__main__", "Color").int(2).op("TUPLE1").op("REDUCE")
    yield Sample("main-enum-p4", "labels.pkl", a.stop(), "user-class", HIGH, "benign", src)
    whole = torch_save(lambda t: {"model": _whole_model(t), "note": "a model whose class is the script's"})
    if whole is not None:
        members = _zip_members(whole)
        pkl = next(n for n in members if n.endswith("/data.pkl"))
        patched = members[pkl].replace(b"torch.nn.modules.container\nSequential", b"__main__\nNet")
        if patched != members[pkl]:
            data = real_zip(list(dict(members, **{pkl: patched}).items()))
            yield Sample("torch-whole-model-main-class", "model.pt", data, "user-class", HIGH, "benign", src,
                         ("torch.nn.modules.*",))  # fmt: skip


def benign() -> Iterator[Sample]:
    edge = "fickling test_benign_edge_cases.py"
    plain: list[tuple[str, object]] = [
        ("dict", {"key": "value", "num": 42, "nested": {"a": [1, 2, (3, 4)]}}),
        ("large-list", list(range(10000))),
        ("large-dict", {f"key_{i}": i for i in range(1000)}),
        ("unicode", "Hello 世界 🌍 αβγ"),
        (
            "code-like-strings",
            {
                "exec": "You must exec this",
                "eval": "os.system('rm -rf /')",
                "__reduce__": "v",
                "b": b"\x80\x04\x95 not a pickle at all",
            },
        ),
        ("same-string-10k", ["same"] * 10000),
        ("shared-list", [[0.0] * 4] * 200),
        ("deque", collections.deque([1, 2, 3], maxlen=5)),
        ("counter", collections.Counter("abracadabra")),
        ("ordereddict", collections.OrderedDict(a=1, b=2)),
        ("defaultdict", collections.defaultdict(list, {"a": [1]})),
        ("decimal", decimal.Decimal("123.456")),
        ("fraction", fractions.Fraction(1, 3)),
        ("datetime", datetime.datetime(2026, 12, 6, 12, 30, tzinfo=datetime.timezone.utc)),
        ("datetime-zoneinfo", datetime.datetime(2026, 12, 6, 12, 30, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))),
        ("date-time-delta", (datetime.date(2026, 1, 2), datetime.time(12, 30), datetime.timedelta(days=1))),
        ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
        ("paths", {"data": Path("/data/train"), "pure": PurePosixPath("/usr/local"), "win": PureWindowsPath("C:/x")}),
        (
            "stdlib-values",
            {
                "pat": re.compile(r"'s|'t| ?\w+| ?\d+"),
                "status": http.HTTPStatus.OK,
                "addr": ipaddress.ip_address("10.0.0.1"),
                "net": ipaddress.ip_network("fe80::/64"),
                "when": time.gmtime(0),
                "ids": array.array("l", [1, 2, 3]),
            },
        ),
        ("complex-set-range", (complex(1, 2), {1, 2}, frozenset("ab"), range(5), slice(1, 9, 2), bytearray(b"xy"))),
        (
            "hashes-and-tokens",
            {
                "sha256": "80" + "04" * 31,
                "token": base64.b64encode(b"cos-sim weights").decode(),
                "hex": "28" + "63" * 40,
            },
        ),
    ]
    for proto in range(6):
        for name, obj in plain:
            yield good(f"{name}-p{proto}", "data.pkl", pickle.dumps(obj, protocol=proto), edge)
        arrays = numpy_dumps(proto)
        if arrays is not None:
            yield good(f"numpy-arrays-p{proto}", "arrays.pkl", arrays, "picklescan numpy tests")
    # a pickle of many frames (> 64 KiB)
    yield good("many-frames-p5", "big.pkl", pickle.dumps([f"token{i}" for i in range(30000)], protocol=5), edge)
    # the staging pattern's benign twin: a value that is a benign pickle, or base64 of one
    inner = pickle.dumps({"vocab": {"a": 1}}, protocol=4)
    yield good("bytes-value-is-benign-pickle", "model.pkl", pickle.dumps({"blob": inner}, protocol=4),
               "issue 17 class 5 (benign)")  # fmt: skip
    yield good("base64-value-is-benign-pickle", "model.pkl",
               pickle.dumps({"b64": base64.b64encode(inner).decode()}, protocol=2), "issue 17 class 5 (benign)")  # fmt: skip
    # tokenizers: vocabularies, merges, tiktoken-style base64 ranks, a sentencepiece model's bytes
    vocab = {f"tok{i}": i for i in range(3000)}
    merges = [("t", "o"), ("to", "k"), ("c", "os"), ("sy", "stem")] * 100
    ranks = {
        base64.b64encode(w.encode()).decode(): i
        for i, w in enumerate(["class", "(cos", "]q", "}(", " system", "import", "\x80\x04", "getattr", "eval("] * 3)
    }
    spm = b"\n\x0c\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02" * 50
    for proto in (2, 4):
        yield good(f"tokenizer-vocab-merges-p{proto}", "tokenizer.pkl",
                   pickle.dumps({"vocab": vocab, "merges": merges, "ranks": ranks, "spm": spm}, protocol=proto),
                   "hf tokenizers saved with pickle")  # fmt: skip
    # torch, both formats
    for legacy in (False, True):
        fmt = "legacy" if legacy else "zip"
        for name, factory in (("state-dict", _state_dict), ("tied-weights", _tied),
                              ("training-checkpoint", _training_checkpoint),
                              ("lightning-checkpoint", _lightning_checkpoint), ("hf-rng-state", _hf_rng_state),
                              ("tensor-kinds", _tensor_kinds)):  # fmt: skip
            data = torch_save(factory, legacy=legacy)
            if data is not None:
                filename = "epoch=2.ckpt" if "lightning" in name else "pytorch_model.bin"
                yield good(f"torch-{name}-{fmt}", filename, data, "torch.save (real, dumped)")
        whole = torch_save(_whole_model, legacy=legacy)
        if whole is not None:
            yield good(f"torch-whole-model-{fmt}", "model.pt", whole, "issue 17 class 9", ("torch.nn.modules.*",))
    for name, filename, data in numpy_files():
        yield good(name, filename, data, "numpy.save / savez (real)")
    for name, filename, data in sklearn_models():
        yield good(name, filename, data, "sklearn + joblib (real)", ("sklearn.*",))
    yield good("joblib-arrays-hand-built", "model.joblib", joblib_pickle(), "joblib.dump layout")
    # a Hugging Face training_args.bin: a third-party dataclass with enum fields, allowlisted
    a = Asm(4).glob("transformers.training_args", "TrainingArguments").op("EMPTY_TUPLE").op("NEWOBJ").op("EMPTY_DICT")
    a.op("MARK").str("output_dir").str("out").str("learning_rate").op("BINFLOAT", 5e-5)
    a.str("eval_strategy").glob("transformers.trainer_utils", "IntervalStrategy").tuple(s("steps")).op("REDUCE")
    a.str("logging_dir").glob("pathlib", "PosixPath").tuple(s("out"), s("runs")).op("REDUCE")
    a.op("SETITEMS").op("BUILD")
    yield good("hf-training-args", "training_args.bin", framed(4, a.stop()[2:]), "transformers Trainer",
               ("transformers.*",))  # fmt: skip
    # archives of benign things
    state = pickle.dumps({"w": [1.0, 2.0]}, protocol=4)
    seven = sevenzip([("archive/data.pkl", state)])
    if seven is not None:
        yield good("7z-benign", "weights.7z", seven, "picklescan 7z")
    yield good("tar-gz-benign", "model.tar.gz", tar_of([("data.pkl", state)], "w:gz"), "modelaudit tar")
    yield good("gzip-benign", "model.pkl.gz", gzip.compress(state), "pandas to_pickle")
    yield good("xz-benign", "model.pkl.xz", lzma.compress(state), "pandas to_pickle")
    yield good("zip-benign-deflated", "bundle.zip", real_zip([("a/data.pkl", state), ("README.md", b"# hi")],
               zipfile.ZIP_DEFLATED), "zip")  # fmt: skip


def samples() -> Iterator[Sample]:
    """Every sample, malicious first."""
    for group in (classic, frames, containers, unparseable, expansion, nested, gadgets, encrypted, legacy_models):
        yield from group()
    yield from benign()
    yield from _main_class_pickles()


@functools.lru_cache(maxsize=1)
def all_samples() -> tuple[Sample, ...]:
    out = tuple(samples())
    names = [x.name for x in out]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"duplicate sample names: {sorted(dup)}"
    return out
