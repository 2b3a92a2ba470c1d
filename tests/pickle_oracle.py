"""CPython's own unpicklers as an oracle for hfa's pickle scanner: a worker run in a SUBPROCESS only.

Why this is safe (read before changing anything here):

* It is never imported by the test process: tests/test_scan_differential.py starts it with
  ``python tests/pickle_oracle.py`` and talks to it over pipes. The scanner itself (hfa.scan) never
  unpickles anything; only this worker does, and only to learn what CPython would import.
* Nothing from the input is ever imported or run. ``find_class`` is overridden to RECORD the
  (module, name) CPython asks for and return :class:`Stub`, an inert class defined here; the default
  ``find_class`` (which imports) is never reached. ``persistent_load`` returns the same stub. So every
  call, attribute write, ``__setstate__``, ``append``/``extend``/``add`` or item assignment a pickle
  can make lands on a stub that does nothing. Extension codes (EXT1/2/4) go through ``find_class`` too.
* The worker is bounded: ``RLIMIT_AS`` caps its memory, ``RLIMIT_CPU`` its CPU time, a per-input
  alarm its time per pickle, and the parent kills it past a deadline and starts a fresh one.

Readers (CPython reads framed pickles differently from memory and from a file, see
hfa/scan/pickles/reader.py): the pure-Python ``pickle._Unpickler`` from memory and from a file, and
the C ``pickle.Unpickler`` from memory (``loads``), from a file without ``peek`` (``io.BytesIO``),
and from buffered files with ``peek`` (as ``io.BufferedReader`` has it, default and tiny buffers). File readers
call ``load`` again after each pickle until the file ends or a load fails (stacked pickles, as a
legacy torch file holds them). The real ``pickle.loads`` is run too, with an audit hook that records
its first import and refuses it before anything is imported (``c-loads-real``).

Protocol on stdin/stdout: each request is a 4-byte little-endian length and that many bytes; each
answer is one JSON line: ``{"imports": {reader: [[module, name], ...]}, "errors": {reader: text}}``.
"""

from __future__ import annotations

import copyreg
import io
import json
import pickle
import resource
import signal
import struct
import sys

MEMORY = 768 << 20
SECONDS_PER_INPUT = 5
MAX_LOADS = 16  # pickles loaded per file reader

# Extension codes registered here AND (temporarily) in the test process, so that both agree on them.
EXTENSIONS = {0xF0: ("os", "system"), 0x1234: ("collections", "OrderedDict"), 0x7FFF0001: ("evil", "payload")}


def _absorb(*args: object, **kwargs: object) -> None:
    return None


class _Absorber:
    """A method that does nothing, on the stub class and on its instances alike."""

    def __get__(self, obj: object, owner: object = None) -> object:
        return _absorb


class _StubMeta(type):
    def __setitem__(cls, key: object, value: object) -> None:
        pass


class Stub(metaclass=_StubMeta):
    """What every imported global becomes: calling it, setting its state or items does nothing."""

    def __new__(cls, *args: object, **kwargs: object) -> Stub:
        return object.__new__(Stub)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> Stub:
        return object.__new__(Stub)

    def __setitem__(self, key: object, value: object) -> None:
        pass

    __setstate__ = _Absorber()
    append = _Absorber()
    extend = _Absorber()
    add = _Absorber()


class PeekFile:
    """A file with ``peek`` as ``io.BufferedReader`` has it (what is left of its buffer, or one refill of
    ``size`` bytes when it is empty), without BufferedReader's up-front allocation of ``read(n)``'s n
    bytes (which makes a huge length fail or pass by how much memory happens to be free)."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data
        self.pos = 0
        self.filled = 0  # the buffer holds data[pos:filled]
        self.size = size

    def peek(self, n: int = 0) -> bytes:
        if self.pos >= self.filled:
            self.filled = min(len(self.data), self.pos + self.size)
        return self.data[self.pos : self.filled]

    def read(self, n: int = -1) -> bytes:
        n = len(self.data) if n is None or n < 0 else n
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def readinto(self, buf: memoryview) -> int:
        out = self.read(len(buf))
        buf[: len(out)] = out
        return len(out)

    def readline(self, limit: int = -1) -> bytes:
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end + 1
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int) -> int:
        self.pos = pos
        return pos


class _Timeout(BaseException):
    pass


def _recorder(base: type) -> type:
    class Recording(base):  # type: ignore[misc, valid-type]
        seen: list[list[str]]

        def find_class(self, module: str, name: str) -> object:
            self.seen.append([str(module), str(name)])
            return Stub

        def persistent_load(self, pid: object) -> object:
            return Stub

    return Recording


PY = _recorder(pickle._Unpickler)  # type: ignore[attr-defined]
C = _recorder(pickle.Unpickler)


def _run(cls: type, fp: io.IOBase, seen: list[list[str]], many: bool) -> str | None:
    """Load from fp (once, or until it ends); the first error's text, or None."""
    for _ in range(MAX_LOADS if many else 1):
        u = cls(fp)
        u.seen = seen
        try:
            u.load()
        except _Timeout:
            raise
        except MemoryError:
            return "MemoryError"
        except BaseException as exc:  # any failure of CPython's reader is an answer
            return f"{type(exc).__name__}: {exc}"[:200]
        if not many:
            return None
        here = fp.tell()
        if not fp.read(1):
            return None
        fp.seek(here)
    return None


def readers(data: bytes) -> dict[str, tuple[type, io.IOBase, bool]]:
    return {
        "py-loads": (PY, io.BytesIO(data), False),
        "py-file": (PY, io.BytesIO(data), True),
        "c-loads": (C, io.BytesIO(data), False),
        "c-file": (C, io.BytesIO(data), True),
        "c-file-peek": (C, PeekFile(data, 8192), True),  # type: ignore[dict-item]
        "c-file-peek-16": (C, PeekFile(data, 16), True),  # type: ignore[dict-item]
        "c-file-peek-5": (C, PeekFile(data, 5), True),  # type: ignore[dict-item]
        "c-loads-real": (C, io.BytesIO(data), False),  # the real pickle.loads, up to its first import
    }


def judge(data: bytes) -> dict[str, dict[str, object]]:
    imports: dict[str, object] = {}
    errors: dict[str, object] = {}
    for name, (cls, fp, many) in readers(data).items():
        seen: list[list[str]] = []
        if name in ("c-loads", "c-loads-real"):
            try:
                err = (_loads_c if name == "c-loads" else _loads_real)(data, seen)
            except _Timeout:
                err = "timeout"
        else:
            try:
                err = _run(cls, fp, seen, many)
            except _Timeout:
                err = "timeout"
        imports[name] = seen
        if err is not None:
            errors[name] = err
    return {"imports": imports, "errors": errors}


def _loads_c(data: bytes, seen: list[list[str]]) -> str | None:
    """``pickle.loads`` with the C unpickler reads from memory and has no ``find_class`` hook. A C
    Unpickler over a buffered file whose first ``peek`` returns all of the bytes reads them exactly as
    from memory (_pickle.c reads on within a peeked buffer, and fails where memory ends)."""
    return _run(C, PeekFile(data, len(data) + 1), seen, False)  # type: ignore[arg-type]


class _Refused(Exception):
    pass


_ARMED: list[list[list[str]]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    """The real ``pickle.loads``: its first import is recorded by the audit event that precedes it,
    and refused there (nothing is imported: the event fires before the import)."""
    if event == "pickle.find_class" and _ARMED:
        _ARMED[-1].append([str(args[0]), str(args[1])])
        raise _Refused


def _loads_real(data: bytes, seen: list[list[str]]) -> str | None:
    _ARMED.append(seen)
    try:
        pickle.loads(data)
    except _Refused:
        return "refused at the first import"
    except _Timeout:
        raise
    except BaseException as exc:  # an answer too
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        _ARMED.pop()
    return None


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (600, 600))
    signal.signal(signal.SIGALRM, _alarm)
    sys.addaudithook(_audit)
    for code, (module, name) in EXTENSIONS.items():
        copyreg.add_extension(module, name, code)
    stdin = sys.stdin.buffer
    out = sys.stdout
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        (n,) = struct.unpack("<I", head)
        data = stdin.read(n)
        signal.alarm(SECONDS_PER_INPUT)
        try:
            answer = judge(data)
        finally:
            signal.alarm(0)
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
