"""A static pickle scanner: it reads the opcode stream and never unpickles, imports or runs it.

The scanner simulates what an unpickler would do with the stack, the mark stack and the
memo, so that it knows every global the pickle would import and every call it would make,
however the pickle moves values around (memo tricks, DUP, MEMOIZE mixed with PUT, globals
stored in the memo and called later). Each import is judged by the :class:`ScanPolicy`:

* allowed (the built-in allowlist or the user's additions) → nothing to report;
* a known code-execution, file, network, process or import-machinery global, or any dotted or
  dunder attribute name → ``pickle.dangerous-global`` (critical);
* anything else → ``pickle.unknown-global`` (high): an unknown global can still run code.

A stream the scanner cannot follow exactly (unknown opcode, stack underflow, missing memo key,
non-string ``STACK_GLOBAL`` operands, EOF before ``STOP``, absurd lengths) is reported as
``pickle.malformed`` (high): it cannot be proven safe, and the scan never passes it.

Memory stays bounded: payloads (bytes, long strings) are skipped with ``seek`` and only their
offsets are kept; a string is read back only if it is used as a ``STACK_GLOBAL`` operand.

joblib: ``joblib.numpy_pickle.NumpyArrayWrapper`` is recognised structurally, never by file
name. When a pickle builds such a wrapper (an empty instance, then ``BUILD`` with a literal
state of shape, dtype and alignment), the raw array bytes that joblib writes right after the
``BUILD`` opcode are skipped (or, for object arrays, scanned as the nested pickle joblib writes
there). The wrapper global itself is therefore not reported; used any other way the array data
cannot be located and the stream is malformed. Because the same file could also be opened with
``pickle.load``, which would read those array bytes as opcodes, bytes that start with a valid
opcode are additionally scanned as a continuation ("shadow" scan) and any import found there is
reported. ``joblib.load`` itself stays dangerous.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import contextlib
import copyreg
import io
import pickletools
import re
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from hfa.scan.model import Finding, ScanPolicy, Severity

# Limits. Values above them are skipped (payloads) or make the stream malformed (operands).
MAX_OPERAND = 1 << 20  # a STACK_GLOBAL operand or GLOBAL line longer than this is malformed
KEEP_STR = 256  # strings up to this many bytes are kept in memory; longer ones as offsets
KEEP_BYTES = 64  # bytes payloads kept (for recognised structures); longer ones are skipped
KEEP_ITEMS = 64  # items kept per tuple/list/dict; beyond that the container is opaque
KEEP_ITEMS_LARGE = 1 << 20  # the same, for the storage-keys pickle of a legacy torch file
MAX_LINE = 1 << 20  # text arguments that must be parsed (ints, keys, globals)
STACK_CAP = 1 << 16  # deeper stack segments are folded into a count of unknown items
MAX_MARKS = 1 << 16  # open MARKs (container nesting); picklers recurse, real pickles stay far below
MAX_MEMO = 1 << 23  # memo entries before the stream is declared too complex
KEEP_BUDGET = 1 << 18  # container items kept per stream; past it new containers are opaque
MAX_PIDS = 1 << 20  # persistent ids remembered (legacy torch storage layout)
MAX_CALL_OFFSETS = 8  # call sites listed per global in a finding
MAX_NESTING = 2  # nested pickles inside joblib object arrays
SHADOW_WINDOW = 1 << 20  # look-ahead for shadow scans of a stream that cannot seek back cheaply
CHUNK = 1 << 16
SHADOW_CONTEXT = "in joblib array data, run if the file is opened with pickle.load instead of joblib.load"

_SEV_CRIT = Severity.CRITICAL
_SEV_HIGH = Severity.HIGH

# --------------------------------------------------------------------------------------------
# What is dangerous. A module entry covers the module and all its submodules; a (module, names)
# entry covers those attributes (and their own attributes: "Profile" covers "Profile.run").
# Anything not allowlisted is at least "unknown" (high); this list decides what is critical.


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_DANGEROUS_MODULES: frozenset[str] = _words(
    """
    _ctypes _frozen_importlib _frozen_importlib_external _imp _interpchannels _interpreters _lsprof
    _multiprocessing _osx_support _pickle _posixsubprocess _signal _socket _sqlite3 _ssl _testcapi
    _testinternalcapi _thread _winapi _winreg _xxsubinterpreters aiohttp asyncio atexit bdb bz2 cffi
    cloudpickle code codeop commands compileall concurrent cPickle cProfile ctypes dbm dill distutils
    doctest ensurepip faulthandler fcntl filecmp fileinput ftplib gc glob gzip http httplib httpx idlelib
    imaplib imp importlib inspect joblib.numpy_pickle_compat jsonpickle keras.utils lib2to3 linecache
    logging.config lzma mailbox mailcap marshal mlflow mmap msvcrt multiprocessing nntplib nt
    numpy.ctypeslib numpy.distutils numpy.f2py numpy.lib._format_impl numpy.lib._npyio_impl
    numpy.lib.format numpy.lib.npyio numpy.testing os pandas.io pathlib pdb pickle pickletools pip
    pkg_resources pkgutil platform popen2 poplib posix profile pty py_compile pydoc requests resource
    runpy sched select selectors setuptools shelve shutil signal site smtpd smtplib socket socketserver
    sqlite3 ssl subprocess sys tarfile telnetlib tempfile tensorflow.io termios test threading timeit
    torch._dynamo torch._export torch._inductor torch.distributed torch.export torch.fx torch.hub
    torch.jit torch.multiprocessing torch.onnx torch.package torch.serialization
    torch.utils._config_module torch.utils.bottleneck torch.utils.collect_env torch.utils.cpp_extension
    torch.utils.data.datapipes trace tty unittest urllib urllib2 urllib3 venv webbrowser winreg wsgiref
    xmlrpc xmlrpclib zipapp zipfile zipimport
    """
)
_DANGEROUS_NAMES: dict[str, frozenset[str]] = {
    "builtins": _words(
        """
        __build_class__ __import__ __loader__ __spec__ apply breakpoint compile delattr eval exec
        execfile exit file getattr globals help input locals memoryview open quit reload setattr vars
        """
    ),
    "types": _words(
        """
        BuiltinFunctionType BuiltinMethodType CodeType coroutine FunctionType LambdaType MethodType
        ModuleType new_class
        """
    ),
    "functools": _words("partial partialmethod reduce singledispatch"),
    "_functools": _words("partial reduce"),
    "operator": _words("attrgetter call itemgetter methodcaller"),
    "_operator": _words("attrgetter call itemgetter methodcaller"),
    "io": _words(
        """
        BufferedRandom BufferedReader BufferedRWPair BufferedWriter FileIO open open_code
        TextIOWrapper
        """
    ),
    "_io": _words(
        """
        BufferedRandom BufferedReader BufferedRWPair BufferedWriter FileIO open open_code
        TextIOWrapper
        """
    ),
    "codecs": _words("EncodedFile open StreamReaderWriter StreamRecoder"),
    "weakref": _words("finalize"),
    "uuid": _words(
        """
        _arp_getnode _find_mac _find_mac_near_keyword _find_mac_under_heading _get_command_stdout
        _ifconfig_getnode _ip_getnode _lanscan_getnode _netstat_getnode _popen
        """
    ),
    "numpy": _words(
        """
        ctypeslib DataSource f2py fromfile fromregex genfromtxt load loads loadtxt memmap save savetxt
        savez savez_compressed testing
        """
    ),
    "numpy.core.memmap": _words("memmap"),
    "numpy._core.memmap": _words("memmap"),
    "numpy.core.multiarray": _words("fromfile"),
    "numpy._core.multiarray": _words("fromfile"),
    "torch": _words("_C _dynamo _inductor _load _ops compile from_file hub jit load ops package save"),
    "torch.storage": _words("_load_from_bytes"),
    "torch._C": _words(
        """
        _get_tracing_state _jit_pass _load_for_lite_interpreter import_ir_module
        import_ir_module_from_buffer
        """
    ),
    "torch.jit.unsupported_tensor_ops": _words("execWrapper"),
    "joblib": _words("delayed dump load Memory Parallel"),
    "joblib.numpy_pickle": _words(
        """
        _read_fileobject _unpickle dump load load_compatibility NumpyPickler NumpyUnpickler
        """
    ),
    "pandas": _words(
        """
        eval read_clipboard read_csv read_excel read_feather read_fwf read_hdf read_html read_json
        read_orc read_parquet read_pickle read_sas read_spss read_sql read_sql_query read_stata
        read_table read_xml
        """
    ),
    "sklearn.externals.joblib": _words("load"),
}
# Names that run code whatever module they come from (numpy.testing._private.utils.runstring, ...).
_DANGEROUS_ANYWHERE: frozenset[str] = _words(
    """
    __import__ _run_code check_call check_output eval exec exec_module execfile execl execlp execv execve
    getoutput getstatusoutput import_module load_module load_source popen Popen resolve_name run_code
    run_module run_path runcode runsource runstring spawnl spawnlp spawnv spawnve system
    """
)

# joblib's array wrapper, recognised structurally (see the module docstring).
_JOBLIB_WRAPPERS: frozenset[tuple[str, str]] = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)
_ARRAY_CLASSES: frozenset[tuple[str, str]] = frozenset({("numpy", "ndarray"), ("numpy", "memmap")})
_DTYPE_CLASSES: frozenset[tuple[str, str]] = frozenset({("numpy", "dtype")})
_RECONSTRUCTORS: frozenset[tuple[str, str]] = frozenset({("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")})

_VALID_OPCODES: frozenset[int] = frozenset(ord(op.code) for op in pickletools.opcodes)
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))


# --------------------------------------------------------------------------------------------
# Verdicts on globals


def _importable(dotted: str) -> bool:
    """Whether a name could be a module path or attribute path: identifiers (any script), or file
    names with dashes, joined by dots. Prose ("lass Foo:", "mport torch") is not; the probe uses
    this to tell a protocol 0 pickle from text that starts with 'c' or 'i'."""
    return bool(dotted) and all(part.replace("-", "_").isidentifier() for part in dotted.split("."))


def _bad_attribute(module: str, name: str) -> str | None:
    """Why (module, name) must be treated as dangerous whatever the policy says, or None."""
    if "." in name:
        return "dotted attribute name (reaches attributes of attributes)"
    parts = name.split(".")
    if any(p.startswith("__") and p.endswith("__") and len(p) > 4 for p in parts):
        return "dunder attribute name"
    for part in module.split("."):
        if part.startswith("__") and part.endswith("__") and part not in ("__builtin__", "__main__"):
            return "dunder module name"
    return None


def _in_module(module: str, prefixes: frozenset[str]) -> bool:
    if module in prefixes:
        return True
    cut = module.rfind(".")
    while cut > 0:
        module = module[:cut]
        if module in prefixes:
            return True
        cut = module.rfind(".")
    return False


def _denied(module: str, name: str) -> bool:
    if _in_module(module, _DANGEROUS_MODULES) or _in_module(f"{module}.{name}", _DANGEROUS_MODULES):
        return True
    head = name.split(".", 1)[0]
    names = _DANGEROUS_NAMES.get(module)
    if names is not None and (name in names or head in names):
        return True
    return head in _DANGEROUS_ANYWHERE or name.rsplit(".", 1)[-1] in _DANGEROUS_ANYWHERE


def _policy_verdict(module: str, name: str, policy: ScanPolicy) -> tuple[Severity, str] | None:
    """None when allowed; else (severity, reason). Exact allow entries beat the denylist, patterns do not."""
    bad = _bad_attribute(module, name)
    if bad:
        return _SEV_CRIT, bad
    full = f"{module}.{name}"
    entries = (*policy.allow, *policy.extra)
    if full in entries:
        return None
    if _denied(module, name):
        return _SEV_CRIT, "known to run code, touch files, the network, processes or the import machinery"
    if policy.allows(module, name):
        return None
    return _SEV_HIGH, "not in the allowlist; importing or calling it may run arbitrary code"


def _compat_pair(module: str, name: str) -> tuple[str, str]:
    """What a protocol 0-2 unpickler (fix_imports, the default) really imports for a Python 2 name."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        mapped: tuple[str, str] = _compat_pickle.NAME_MAPPING[(module, name)]
        return mapped
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name


def classify_global(module: str, name: str, policy: ScanPolicy) -> tuple[Severity, str, str | None] | None:
    """Judge one global: None if allowed, else (severity, reason, the Python 3 name it maps to).

    Both the name as written and the name the compatibility mapping turns it into are judged,
    and the worse verdict wins; a Python 2-only module name that no Python 3 can import counts
    only through its mapping.
    """
    mapped = _compat_pair(module, name)
    candidates = [(module, name)]
    resolved = None
    if mapped != (module, name):
        resolved = f"{mapped[0]}.{mapped[1]}"
        top = module.split(".", 1)[0]
        py2_only = module in _compat_pickle.IMPORT_MAPPING and top not in _STDLIB and mapped[0] != module
        candidates = [mapped] if py2_only else [(module, name), mapped]
    worst: tuple[Severity, str] | None = None
    for mod, nm in candidates:
        v = _policy_verdict(mod, nm, policy)
        if v is not None and (worst is None or v[0] > worst[0]):
            worst = v
    return None if worst is None else (worst[0], worst[1], resolved)


# --------------------------------------------------------------------------------------------
# Values on the simulated stack. Small literals are real Python values (int, float, str, bytes,
# tuple, None, bool); everything else is one of these.


class _Opaque:
    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


RESULT = _Opaque("result of a call")  # the object a REDUCE/NEWOBJ/BUILD/persistent load produced
BIG = _Opaque("large literal")  # bytes, ints, sets and containers too large to keep
LOST = _Opaque("unknown item")  # an item folded away from a very deep stack, or an unknown extension
BUFFER = _Opaque("out-of-band buffer")


class _Global:
    __slots__ = ("kind", "module", "name", "offset")

    def __init__(self, module: str, name: str, offset: int, kind: str) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.kind = kind  # "" | "joblib" | "dtype" | "array" | "reconstructor"

    def __repr__(self) -> str:
        return f"<global {self.module}.{self.name}>"


class _Obj:
    """An object the scanner needs to follow: a numpy dtype, or a joblib array wrapper."""

    __slots__ = ("args", "kind", "state")

    def __init__(self, kind: str, args: Any = None) -> None:
        self.kind = kind
        self.args = args
        self.state: Any = None


class _List:
    __slots__ = ("items", "overflow")

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items: list[Any] = items if items is not None else []
        self.overflow = False


class _Dict:
    __slots__ = ("overflow", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []
        self.overflow = False


class _LazyStr:
    """A string too long to keep: where it is and how to decode it, read back only if needed."""

    __slots__ = ("kind", "offset", "size")

    def __init__(self, offset: int, size: int, kind: str) -> None:
        self.offset = offset
        self.size = size
        self.kind = kind  # "utf8" | "latin1" | "string" (quoted, escaped) | "rawunicode"


class _Run:
    """The bottom of a very deep stack segment: ``count`` items the scanner no longer holds."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count


def _copy_segment(items: list[Any]) -> list[Any]:
    if items and isinstance(items[0], _Run):
        return [_Run(items[0].count), *items[1:]]
    return list(items)


class _Malformed(Exception):
    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class _Truncated(_Malformed):
    pass


class _Budget(Exception):
    """The probe has seen enough opcodes."""


# --------------------------------------------------------------------------------------------
# A buffered reader over [start, end) of a file that skips payloads by seeking.


class _Reader:
    __slots__ = ("base", "buf", "chunk", "end", "fp", "pos", "stream")

    def __init__(self, fp: BinaryIO, start: int, end: int | None, *, stream: bool, chunk: int = CHUNK) -> None:
        self.fp = fp
        self.chunk = chunk
        self.base = start  # file offset of buf[0]
        self.buf = b""
        self.pos = 0
        self.end = end  # absolute end, or None when unknown (a decompressing stream)
        self.stream = stream  # skip by reading (no reliable size), not by seeking

    def tell(self) -> int:
        return self.base + self.pos

    def jump(self, offset: int) -> None:
        self.base = offset
        self.buf = b""
        self.pos = 0

    def _fill(self, need: int) -> None:
        """Make ``need`` bytes available at pos, or raise _Truncated."""
        rest = self.buf[self.pos :]
        here = self.base + self.pos
        want = max(need - len(rest), self.chunk)
        if self.end is not None:
            want = min(want, self.end - here - len(rest))
        data = b""
        if want > 0:
            self.fp.seek(here + len(rest))
            data = self.fp.read(want)
        self.buf = rest + data
        self.base = here
        self.pos = 0
        if len(self.buf) < need:
            raise _Truncated("the stream ends in the middle of an opcode (truncated before STOP)", here)

    def byte(self) -> int:
        p = self.pos
        if p >= len(self.buf):
            self._fill(1)
            p = 0
        self.pos = p + 1
        return self.buf[p]

    def peek(self) -> int | None:
        try:
            if self.pos >= len(self.buf):
                self._fill(1)
        except _Truncated:
            return None
        return self.buf[self.pos]

    def at_end(self) -> bool:
        return self.peek() is None

    def peek_bytes(self, n: int) -> bytes:
        """Up to n bytes from the current position, without consuming them."""
        with contextlib.suppress(_Truncated):  # a short fill keeps what it got
            self._fill(n)
        return self.buf[self.pos : self.pos + n]

    def read(self, n: int) -> bytes:
        p = self.pos
        q = p + n
        if q > len(self.buf):
            self._fill(n)
            p, q = 0, n
        self.pos = q
        return self.buf[p:q]

    def skip(self, n: int) -> None:
        p = self.pos + n
        if p <= len(self.buf):
            self.pos = p
            return
        target = self.base + p
        if self.end is not None and target > self.end:
            raise _Truncated(f"a payload of {n} bytes runs past the end of the stream", self.tell())
        if not self.stream and self.end is not None:
            self.jump(target)
            return
        # A stream of unknown size: read and discard, so truncation is noticed.
        left = target - (self.base + len(self.buf))
        self.fp.seek(self.base + len(self.buf))
        while left > 0:
            got = self.fp.read(min(left, 1 << 20))
            if not got:
                raise _Truncated(f"a payload of {n} bytes runs past the end of the stream", self.tell())
            left -= len(got)
        self.jump(target)

    def readline(self, keep: int, cap: int) -> bytes | tuple[int, int]:
        """The next line without its newline; a (offset, length) pair if longer than ``keep``."""
        start = self.tell()
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos : i]
                self.pos = i + 1
                return line
            have = len(self.buf) - self.pos
            if have > keep:
                break
            self._fill(have + 1)
        # Too long to keep: scan for the newline chunk by chunk.
        if keep >= cap:
            raise _Malformed(f"a text argument longer than {cap} bytes", start)
        length = len(self.buf) - self.pos
        self.jump(self.base + len(self.buf))
        while True:
            if length > cap:
                raise _Malformed(f"a text argument longer than {cap} bytes", start)
            self._fill(1)
            i = self.buf.find(b"\n")
            if i >= 0:
                self.pos = i + 1
                return (start, length + i)
            length += len(self.buf)
            self.jump(self.base + len(self.buf))

    def read_at(self, offset: int, size: int) -> bytes:
        """Read back bytes already passed (a lazy string); the reader's position is unchanged."""
        self.fp.seek(offset)
        data = self.fp.read(size)
        if len(data) != size:
            raise _Truncated("could not read back a string operand", offset)
        return data


# --------------------------------------------------------------------------------------------
# Findings collected for one stream (a file or an archive member).


@dataclass
class _GlobalHit:
    module: str
    name: str
    severity: Severity
    reason: str
    resolved: str | None
    opcode: str
    offset: int
    pickle: int
    context: str
    count: int = 1
    called_at: list[int] = field(default_factory=list)


class _Sink:
    def __init__(self, display: str, policy: ScanPolicy) -> None:
        self.display = display
        self.policy = policy
        self.globals: dict[tuple[str, str, str], _GlobalHit] = {}
        self.issues: list[Finding] = []
        self._issue_keys: set[tuple[str, str]] = set()
        self._verdicts: dict[tuple[str, str], tuple[Severity, str, str | None] | None] = {}

    def verdict(self, module: str, name: str) -> tuple[Severity, str, str | None] | None:
        key = (module, name)
        if key not in self._verdicts:
            self._verdicts[key] = classify_global(module, name, self.policy)
        return self._verdicts[key]

    def issue(self, severity: Severity, code: str, message: str, **detail: Any) -> None:
        key = (code, message)
        if key in self._issue_keys:
            return
        self._issue_keys.add(key)
        self.issues.append(Finding(severity, code, message, self.display, detail))

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for hit in self.globals.values():
            dangerous = hit.severity >= _SEV_CRIT
            code = "pickle.dangerous-global" if dangerous else "pickle.unknown-global"
            what = "a dangerous" if dangerous else "an unknown"
            message = f"imports {what} global {hit.module}.{hit.name}"
            if hit.called_at:
                message += " and calls it"
            if hit.context:
                message += f" ({hit.context})"
            detail: dict[str, Any] = {
                "module": hit.module,
                "name": hit.name,
                "opcode": hit.opcode,
                "offset": hit.offset,
                "pickle": hit.pickle,
                "count": hit.count,
                "reason": hit.reason,
            }
            if hit.called_at:
                detail["called_at"] = hit.called_at
            if hit.resolved:
                detail["resolves_to"] = hit.resolved
            if hit.context:
                detail["context"] = hit.context
            out.append(Finding(hit.severity, code, message, self.display, detail))
        return out + self.issues


# --------------------------------------------------------------------------------------------
# The simulation


def _dtype_info(value: Any, depth: int = 0) -> tuple[int, bool] | None:
    """(itemsize, has objects) of a numpy dtype rebuilt by the pickle, or None if unknown."""
    if depth > 8 or not isinstance(value, _Obj) or value.kind != "dtype":
        return None
    args = value.args
    if not isinstance(args, tuple) or not args or not isinstance(args[0], str):
        return None
    m = re.fullmatch(r"([biufcmMOSUV])(\d+)", args[0])
    if m is None:
        return None
    kind, n = m.group(1), int(m.group(2))
    itemsize = n * 4 if kind == "U" else n
    hasobject = kind == "O"
    state = value.state
    if kind == "V" and isinstance(state, tuple) and len(state) >= 5:
        sub, fields = state[2], state[4]
        if isinstance(sub, tuple) and sub:
            info = _dtype_info(sub[0], depth + 1)
            if info is None:
                return None
            hasobject = hasobject or info[1]
        elif sub is not None:
            return None
        if isinstance(fields, _Dict):
            if fields.overflow:
                return None
            for _k, v in fields.pairs:
                if not isinstance(v, tuple) or not v:
                    return None
                info = _dtype_info(v[0], depth + 1)
                if info is None:
                    return None
                hasobject = hasobject or info[1]
        elif fields is not None:
            return None
    return itemsize, hasobject


class _Sim:
    """Runs the opcode stream of one or more pickles through a simulated unpickler."""

    def __init__(
        self,
        reader: _Reader,
        sink: _Sink | None,
        *,
        mode: str = "scan",  # "scan" | "probe" | "shadow" | "plain"
        budget: int = 0,
        depth: int = 0,
        collect: bool = False,
        keep_items: int = KEEP_ITEMS,
    ) -> None:
        self.r = reader
        self.sink = sink
        self.mode = mode
        self.joblib = mode in ("scan",)  # joblib arrays are read inline only by joblib's own unpickler
        self.budget = budget
        self.depth = depth
        self.collect = collect
        self.keep_items = keep_items
        self.context = SHADOW_CONTEXT if mode == "shadow" else ""
        self.pickle_index = 0
        self.ops = 0
        self.ops_in_pickle = 0
        self.imports = 0
        self.soft: list[tuple[str, int]] = []
        self.stop_values: list[Any] = []
        self.pids: list[Any] = []
        self.stack: list[Any] = []
        self.meta: list[list[Any]] = []
        self.memo: list[Any] = []  # keys 0..n-1, as picklers write them
        self.memo_far: dict[int, Any] = {}  # any other key (always >= len(memo))
        self.kept = KEEP_BUDGET
        self.proto = 0
        self.frame_end: int | None = None

    # -- argument readers (formats from pickletools' table) -------------------------------------

    def _a_uint1(self) -> int:
        return self.r.byte()

    def _a_uint2(self) -> int:
        v: int = struct.unpack("<H", self.r.read(2))[0]
        return v

    def _a_int4(self) -> int:
        v: int = struct.unpack("<i", self.r.read(4))[0]
        return v

    def _a_uint4(self) -> int:
        v: int = struct.unpack("<I", self.r.read(4))[0]
        return v

    def _a_uint8(self) -> int:
        v: int = struct.unpack("<Q", self.r.read(8))[0]
        return v

    def _a_float8(self) -> float:
        v: float = struct.unpack(">d", self.r.read(8))[0]
        return v

    def _long(self, n: int) -> Any:
        if n < 0:
            raise _Malformed("LONG4 with a negative byte count", self.r.tell())
        if n > KEEP_BYTES * 16:
            self.r.skip(n)
            return BIG
        return int.from_bytes(self.r.read(n), "little", signed=True)

    def _a_long1(self) -> Any:
        return self._long(self.r.byte())

    def _a_long4(self) -> Any:
        return self._long(self._a_int4())

    def _a_line(self) -> bytes | tuple[int, int]:
        return self.r.readline(4096, 1 << 62)

    def _a_pair(self) -> tuple[Any, Any]:
        at = self.r.tell()
        lines = []
        for _ in range(2):
            line = self.r.readline(MAX_OPERAND, MAX_OPERAND)
            assert isinstance(line, bytes)
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                raise _Malformed("a GLOBAL/INST name that is not UTF-8", at) from None
        return lines[0], lines[1]

    def _payload(self, n: int, keep: int, kind: str) -> Any:
        """n payload bytes: kept (bytes) if small, else skipped and remembered as a lazy string / BIG."""
        if n < 0:
            raise _Malformed("a negative length", self.r.tell())
        if n > sys.maxsize:
            raise _Malformed(f"a length of {n} bytes exceeds what any unpickler accepts", self.r.tell())
        if n <= keep:
            return self.r.read(n)
        at = self.r.tell()
        self.r.skip(n)
        return _LazyStr(at, n, kind) if kind else BIG

    def _a_string1(self) -> Any:
        return self._latin1(self._payload(self.r.byte(), KEEP_STR, "latin1"))

    def _a_string4(self) -> Any:
        return self._latin1(self._payload(self._a_int4(), KEEP_STR, "latin1"))

    @staticmethod
    def _latin1(v: Any) -> Any:
        # STRING opcodes give str or bytes depending on the loader's encoding; as operands
        # judge them by the most permissive decoding.
        return v.decode("latin-1") if isinstance(v, bytes) else v

    def _a_stringnl(self) -> Any:
        at = self.r.tell()
        line = self.r.readline(KEEP_STR + 2, 1 << 62)
        if isinstance(line, tuple):
            return _LazyStr(line[0], line[1], "string")
        return self._decode_string(line, at)

    @staticmethod
    def _decode_string(line: bytes, at: int) -> str:
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            try:
                return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
            except ValueError:
                raise _Malformed("a STRING argument with a bad escape", at) from None
        raise _Malformed("the STRING opcode argument must be quoted", at)

    def _a_bytes1(self) -> Any:
        return self._payload(self.r.byte(), KEEP_BYTES, "")

    def _a_bytes4(self) -> Any:
        return self._payload(self._a_uint4(), KEEP_BYTES, "")

    def _a_bytes8(self) -> Any:
        return self._payload(self._a_uint8(), KEEP_BYTES, "")

    def _utf8(self, v: Any, at: int) -> Any:
        if isinstance(v, bytes):
            try:
                return v.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                raise _Malformed("a unicode string that is not UTF-8", at) from None
        return v

    def _a_unicode1(self) -> Any:
        at = self.r.tell()
        return self._utf8(self._payload(self.r.byte(), KEEP_STR, "utf8"), at)

    def _a_unicode4(self) -> Any:
        at = self.r.tell()
        return self._utf8(self._payload(self._a_uint4(), KEEP_STR, "utf8"), at)

    def _a_unicode8(self) -> Any:
        at = self.r.tell()
        return self._utf8(self._payload(self._a_uint8(), KEEP_STR, "utf8"), at)

    def _a_unicodenl(self) -> Any:
        at = self.r.tell()
        line = self.r.readline(KEEP_STR, 1 << 62)
        if isinstance(line, tuple):
            return _LazyStr(line[0], line[1], "rawunicode")
        try:
            return line.decode("raw-unicode-escape")
        except UnicodeDecodeError:
            raise _Malformed("a UNICODE argument that does not decode", at) from None

    def _materialise(self, v: Any, at: int) -> str:
        """A STACK_GLOBAL operand as a str, or malformed."""
        if isinstance(v, str):
            return v
        if isinstance(v, _LazyStr):
            if v.size > MAX_OPERAND:
                raise _Malformed(f"a STACK_GLOBAL operand of {v.size} bytes is too long to analyse", at)
            data = self.r.read_at(v.offset, v.size)
            if v.kind == "utf8":
                try:
                    return data.decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    raise _Malformed("a unicode string that is not UTF-8", at) from None
            if v.kind == "latin1":
                return data.decode("latin-1")
            if v.kind == "string":
                return self._decode_string(data, at)
            return data.decode("raw-unicode-escape", "replace")
        what = "an item the scanner could not follow" if v is LOST else type(v).__name__
        if isinstance(v, _Opaque):
            what = v.what
        raise _Malformed(f"STACK_GLOBAL operand is not a string ({what})", at)

    # -- stack helpers ---------------------------------------------------------------------------

    def _push(self, v: Any) -> None:
        st = self.stack
        st.append(v)
        if len(st) > STACK_CAP:
            half = STACK_CAP // 2
            head = st[:half]
            count = sum(x.count if isinstance(x, _Run) else 1 for x in head)
            del st[:half]
            st.insert(0, _Run(count))

    def _pop(self, at: int) -> Any:
        st = self.stack
        if not st:
            raise _Malformed("stack underflow", at)
        v = st.pop()
        if st or v.__class__ is not _Run:
            return v
        if v.count > 1:
            v.count -= 1
            st.append(v)
        return LOST

    def _top(self, at: int) -> Any:
        st = self.stack
        if not st:
            raise _Malformed("stack underflow", at)
        v = st[-1]
        return LOST if v.__class__ is _Run else v

    def _pop_mark(self, at: int) -> list[Any]:
        if not self.meta:
            raise _Malformed("an opcode needs a MARK that is not there (mark stack underflow)", at)
        items = self.stack
        self.stack = self.meta.pop()
        return items

    @staticmethod
    def _true_len(items: list[Any]) -> int:
        if items and items[0].__class__ is _Run:
            return len(items) - 1 + int(items[0].count)
        return len(items)

    def _items(self, items: list[Any]) -> list[Any] | None:
        """The items as values, or None if too many to keep (or the stream's budget is spent)."""
        n = len(items)
        if n > self.keep_items or self.kept < n or (items and items[0].__class__ is _Run):
            return None
        self.kept -= n
        return items

    # -- imports and calls -----------------------------------------------------------------------

    def _import(self, module: str, name: str, at: int, opname: str) -> _Global:
        if self.mode in ("probe", "shadow") and not (_importable(module) and _importable(name)):
            # A loader would fail to import this; in a probe or a shadow scan that means "not a pickle".
            raise _Malformed("not a name an unpickler could import", at)
        self.imports += 1
        key = (module, name)
        kind = ""
        if key in _JOBLIB_WRAPPERS:
            kind = "joblib"
        elif key in _DTYPE_CLASSES:
            kind = "dtype"
        elif key in _ARRAY_CLASSES:
            kind = "array"
        elif key in _RECONSTRUCTORS:
            kind = "reconstructor"
        g = _Global(module, name, at, kind)
        sink = self.sink
        if sink is None or kind == "joblib":
            return g
        verdict = sink.verdict(module, name)
        if verdict is None:
            return g
        hkey = (module, name, self.context)
        hit = sink.globals.get(hkey)
        if hit is None:
            sink.globals[hkey] = _GlobalHit(
                module, name, verdict[0], verdict[1], verdict[2], opname, at, self.pickle_index, self.context
            )
        else:
            hit.count += 1
        return g

    def _call(self, func: Any, args: Any, at: int, opname: str) -> Any:
        if isinstance(func, _Global):
            if self.sink is not None and func.kind != "joblib":
                hit = self.sink.globals.get((func.module, func.name, self.context))
                if hit is not None and len(hit.called_at) < MAX_CALL_OFFSETS:
                    hit.called_at.append(at)
            if func.kind == "dtype" and isinstance(args, tuple):
                return _Obj("dtype", args)
            if func.kind == "joblib":
                # Any instance counts: joblib reads array bytes after BUILD on whatever instance.
                return _Obj("joblib")
            if (
                func.kind == "reconstructor"
                and isinstance(args, tuple)
                and len(args) == 3
                and isinstance(args[0], _Global)
                and args[0].kind == "joblib"
            ):
                return _Obj("joblib")
            return RESULT
        if self.sink is not None and self.mode != "shadow":
            what = func.what if isinstance(func, _Opaque) else type(func).__name__.strip("_").lower()
            self.sink.issue(
                _SEV_HIGH,
                "pickle.indirect-call",
                f"{opname} calls an object that is not an imported global ({what})",
                offset=at,
                opcode=opname,
                context=self.context or None,
            )
        return RESULT

    def _mutation(self, target: Any, at: int, opname: str) -> None:
        if isinstance(target, _Global) and self.sink is not None and self.mode != "shadow":
            self.sink.issue(
                _SEV_HIGH,
                "pickle.global-mutation",
                f"{opname} modifies the imported global {target.module}.{target.name} in place",
                module=target.module,
                name=target.name,
                offset=at,
                opcode=opname,
            )

    # -- the loop ----------------------------------------------------------------------------------

    def run_pickle(self) -> Any:
        """Run one pickle to its STOP; return the value it stops with."""
        self.stack = []
        self.meta = []
        self.memo = []
        self.memo_far = {}
        self.proto = 0
        self.frame_end = None
        self.ops_in_pickle = 0
        table = _TABLE
        r = self.r
        budget = self.budget
        ops = start = self.ops
        try:
            while True:
                p = r.pos
                if p < len(r.buf):
                    code = r.buf[p]
                    r.pos = p + 1
                    at = r.base + p
                else:
                    at = r.base + p
                    try:
                        code = r.byte()
                    except _Truncated:
                        raise _Truncated("the stream ends before STOP (truncated pickle)", at) from None
                entry = table[code]
                if entry is None:
                    raise _Malformed(f"unknown opcode 0x{code:02x}", at)
                ops += 1
                if budget and ops > budget:
                    raise _Budget
                arg_reader, handler = entry
                if handler(self, arg_reader(self) if arg_reader is not None else None, at):
                    return self.stop_values[-1] if self.stop_values else None
        finally:
            self.ops = ops
            self.ops_in_pickle = ops - start

    # -- opcode handlers (names from pickletools) --------------------------------------------------

    def _op_PROTO(self, v: int, at: int) -> None:
        if v > 5:
            raise _Malformed(f"unsupported pickle protocol {v}", at)
        self.proto = v

    def _op_FRAME(self, n: int, at: int) -> None:
        here = self.r.tell()
        if self.r.end is not None and here + n > self.r.end:
            raise _Truncated(f"a frame of {n} bytes runs past the end of the stream", at)
        self.frame_end = here + n

    def _op_STOP(self, _: None, at: int) -> bool:
        v = self._pop(at)
        if self.collect:
            self.stop_values.append(v)
        else:
            self.stop_values[:] = [v]
        return True

    def _op_MARK(self, _: None, at: int) -> None:
        if len(self.meta) >= MAX_MARKS:
            raise _Malformed(f"more than {MAX_MARKS} nested MARKs: too deep to analyse", at)
        self.meta.append(self.stack)
        self.stack = []

    def _op_POP(self, _: None, at: int) -> None:
        if self.stack:
            self._pop(at)
        else:
            self._pop_mark(at)

    def _op_POP_MARK(self, _: None, at: int) -> None:
        self._pop_mark(at)

    def _op_DUP(self, _: None, at: int) -> None:
        self._push(self._top(at))

    # memo
    def _memo_put(self, key: int, at: int) -> None:
        value = self._top(at)
        memo = self.memo
        n = len(memo)
        if key == n:
            if self.memo_far:
                self.memo_far.pop(key, None)
            if n >= MAX_MEMO:
                raise _Malformed(f"more than {MAX_MEMO} memo entries: too complex to analyse", at)
            memo.append(value)
        elif 0 <= key < n:
            memo[key] = value
        elif key < 0:
            raise _Malformed("negative PUT argument", at)
        else:
            if len(self.memo_far) >= MAX_MEMO:
                raise _Malformed(f"more than {MAX_MEMO} memo entries: too complex to analyse", at)
            self.memo_far[key] = value

    def _memo_get(self, key: int, at: int) -> None:
        memo = self.memo
        if 0 <= key < len(memo):
            self._push(memo[key])
            return
        try:
            self._push(self.memo_far[key])
        except KeyError:
            raise _Malformed(f"memo key {key} is read before it is written", at) from None

    def _int_key(self, line: Any, at: int) -> int:
        if isinstance(line, tuple):
            raise _Malformed("a memo key argument that is far too long", at)
        try:
            return int(line)
        except ValueError:
            raise _Malformed("a memo key that is not an integer", at) from None

    def _op_PUT(self, line: Any, at: int) -> None:
        self._memo_put(self._int_key(line, at), at)

    def _op_BINPUT(self, key: int, at: int) -> None:
        self._memo_put(key, at)

    def _op_LONG_BINPUT(self, key: int, at: int) -> None:
        self._memo_put(key, at)

    def _op_MEMOIZE(self, _: None, at: int) -> None:
        self._memo_put(len(self.memo) + len(self.memo_far), at)

    def _op_GET(self, line: Any, at: int) -> None:
        self._memo_get(self._int_key(line, at), at)

    def _op_BINGET(self, key: int, at: int) -> None:
        self._memo_get(key, at)

    def _op_LONG_BINGET(self, key: int, at: int) -> None:
        self._memo_get(key, at)

    # literals
    def _op_NONE(self, _: None, at: int) -> None:
        self._push(None)

    def _op_NEWTRUE(self, _: None, at: int) -> None:
        self._push(True)

    def _op_NEWFALSE(self, _: None, at: int) -> None:
        self._push(False)

    def _soft(self, reason: str, at: int) -> None:
        if len(self.soft) < 16:
            self.soft.append((reason, at))

    def _op_INT(self, line: Any, at: int) -> None:
        if line == b"00" or line == b"01":
            self._push(line == b"01")
            return
        try:
            self._push(int(line, 0) if isinstance(line, bytes) else BIG)
        except ValueError:
            self._soft("an INT argument that is not a Python integer", at)
            self._push(BIG)

    def _op_LONG(self, line: Any, at: int) -> None:
        if isinstance(line, tuple):
            self._push(BIG)
            return
        text = line[:-1] if line.endswith(b"L") else line
        try:
            self._push(int(text, 0))
        except ValueError:
            self._soft("a LONG argument that is not a Python integer", at)
            self._push(BIG)

    def _op_FLOAT(self, line: Any, at: int) -> None:
        try:
            self._push(float(line) if isinstance(line, bytes) else BIG)
        except ValueError:
            self._soft("a FLOAT argument that is not a number", at)
            self._push(BIG)

    def _plain_push(self, v: Any, at: int) -> None:
        self._push(v)

    _op_BININT = _op_BININT1 = _op_BININT2 = _op_LONG1 = _op_LONG4 = _plain_push
    _op_BINFLOAT = _op_STRING = _op_BINSTRING = _op_SHORT_BINSTRING = _plain_push
    _op_BINBYTES = _op_SHORT_BINBYTES = _op_BINBYTES8 = _plain_push
    _op_UNICODE = _op_SHORT_BINUNICODE = _op_BINUNICODE = _op_BINUNICODE8 = _plain_push

    def _op_BYTEARRAY8(self, v: Any, at: int) -> None:
        self._push(BIG)

    def _op_NEXT_BUFFER(self, _: None, at: int) -> None:
        self._push(BUFFER)

    def _op_READONLY_BUFFER(self, _: None, at: int) -> None:
        self._top(at)

    # containers
    def _op_EMPTY_TUPLE(self, _: None, at: int) -> None:
        self._push(())

    def _op_TUPLE(self, _: None, at: int) -> None:
        items = self._items(self._pop_mark(at))
        self._push(BIG if items is None else tuple(items))

    def _small_tuple(self, items: tuple[Any, ...]) -> Any:
        if self.kept < len(items):
            return BIG
        self.kept -= len(items)
        return items

    def _op_TUPLE1(self, _: None, at: int) -> None:
        self._push(self._small_tuple((self._pop(at),)))

    def _op_TUPLE2(self, _: None, at: int) -> None:
        b = self._pop(at)
        self._push(self._small_tuple((self._pop(at), b)))

    def _op_TUPLE3(self, _: None, at: int) -> None:
        c = self._pop(at)
        b = self._pop(at)
        self._push(self._small_tuple((self._pop(at), b, c)))

    def _op_EMPTY_LIST(self, _: None, at: int) -> None:
        self._push(_List() if self.kept else BIG)

    def _op_LIST(self, _: None, at: int) -> None:
        items = self._items(self._pop_mark(at))
        lst = _List(None if items is None else list(items))
        lst.overflow = items is None
        self._push(lst)

    def _extend(self, target: Any, items: list[Any], at: int, opname: str) -> None:
        if self.mode == "shadow":
            return
        if isinstance(target, _List):
            if target.overflow:
                return
            kept = self._items(items) if len(target.items) + len(items) <= self.keep_items else None
            if kept is None:
                target.overflow = True
                target.items = []
            else:
                target.items.extend(kept)
        else:
            self._mutation(target, at, opname)

    def _op_APPEND(self, _: None, at: int) -> None:
        v = self._pop(at)
        self._extend(self._top(at), [v], at, "APPEND")

    def _op_APPENDS(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        self._extend(self._top(at), items, at, "APPENDS")

    def _op_EMPTY_DICT(self, _: None, at: int) -> None:
        self._push(_Dict() if self.kept else BIG)

    def _set_items(self, target: Any, items: list[Any], at: int, opname: str) -> None:
        if self._true_len(items) % 2:
            raise _Malformed(f"odd number of items for {opname}", at)
        if self.mode == "shadow":
            return
        if isinstance(target, _Dict):
            if target.overflow:
                return
            kept = self._items(items) if len(target.pairs) * 2 + len(items) <= self.keep_items * 2 else None
            if kept is None:
                target.overflow = True
                target.pairs = []
            else:
                target.pairs.extend(zip(kept[::2], kept[1::2], strict=True))
        else:
            self._mutation(target, at, opname)

    def _op_DICT(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        d = _Dict()
        self._set_items(d, items, at, "DICT")
        self._push(d)

    def _op_SETITEM(self, _: None, at: int) -> None:
        v = self._pop(at)
        k = self._pop(at)
        self._set_items(self._top(at), [k, v], at, "SETITEM")

    def _op_SETITEMS(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        self._set_items(self._top(at), items, at, "SETITEMS")

    def _op_EMPTY_SET(self, _: None, at: int) -> None:
        self._push(BIG)

    def _op_ADDITEMS(self, _: None, at: int) -> None:
        self._pop_mark(at)
        self._mutation(self._top(at), at, "ADDITEMS")

    def _op_FROZENSET(self, _: None, at: int) -> None:
        self._pop_mark(at)
        self._push(BIG)

    # globals and calls
    def _op_GLOBAL(self, pair: tuple[str, str], at: int) -> None:
        self._push(self._import(pair[0], pair[1], at, "GLOBAL"))

    def _op_STACK_GLOBAL(self, _: None, at: int) -> None:
        name = self._pop(at)
        module = self._pop(at)
        self._push(self._import(self._materialise(module, at), self._materialise(name, at), at, "STACK_GLOBAL"))

    def _op_INST(self, pair: tuple[str, str], at: int) -> None:
        g = self._import(pair[0], pair[1], at, "INST")
        args = self._pop_mark(at)
        self._push(self._call(g, tuple(args) if len(args) <= self.keep_items else None, at, "INST"))

    def _op_OBJ(self, _: None, at: int) -> None:
        items = self._pop_mark(at)
        if not items:
            raise _Malformed("OBJ without a class", at)
        cls = LOST if items[0].__class__ is _Run else items[0]
        self._push(self._call(cls, tuple(items[1:]) if len(items) <= self.keep_items else None, at, "OBJ"))

    def _op_REDUCE(self, _: None, at: int) -> None:
        args = self._pop(at)
        func = self._top(at)
        self.stack[-1] = self._call(func, args, at, "REDUCE")

    def _op_NEWOBJ(self, _: None, at: int) -> None:
        args = self._pop(at)
        cls = self._pop(at)
        self._push(self._call(cls, args, at, "NEWOBJ"))

    def _op_NEWOBJ_EX(self, _: None, at: int) -> None:
        kwargs = self._pop(at)
        args = self._pop(at)
        cls = self._pop(at)
        if isinstance(kwargs, _Dict) and not kwargs.pairs and not kwargs.overflow:
            kwargs = None
        self._push(self._call(cls, args if kwargs is None else BIG, at, "NEWOBJ_EX"))

    def _ext(self, code: int, at: int, opname: str) -> None:
        registry: dict[int, tuple[str, str]] = getattr(copyreg, "_inverted_registry", {})
        key = registry.get(code)
        if key is not None:
            self._push(self._import(key[0], key[1], at, opname))
            return
        self.imports += 1
        if self.sink is not None:
            self.sink.issue(
                _SEV_HIGH,
                "pickle.unknown-extension",
                f"{opname} imports extension code {code}, which is not registered here; "
                "the loading machine's copyreg registry decides what it imports",
                extension=code,
                offset=at,
            )
        self._push(LOST)

    def _op_EXT1(self, code: int, at: int) -> None:
        self._ext(code, at, "EXT1")

    def _op_EXT2(self, code: int, at: int) -> None:
        self._ext(code, at, "EXT2")

    def _op_EXT4(self, code: int, at: int) -> None:
        self._ext(code, at, "EXT4")

    def _op_PERSID(self, line: Any, at: int) -> None:
        if isinstance(line, bytes):
            try:
                line.decode("ascii")
            except UnicodeDecodeError:
                raise _Malformed("a PERSID argument that is not ASCII", at) from None
        self._push(RESULT)

    def _op_BINPERSID(self, _: None, at: int) -> None:
        pid = self._pop(at)
        if self.collect and len(self.pids) < MAX_PIDS and isinstance(pid, tuple) and pid and pid[0] == "storage":
            self.pids.append(pid)
        self._push(RESULT)

    def _op_BUILD(self, _: None, at: int) -> None:
        state = self._pop(at)
        inst = self._top(at)
        if isinstance(inst, _Global):
            self._mutation(inst, at, "BUILD")
        elif isinstance(inst, _Obj) and self.mode != "shadow":
            inst.state = state
            if inst.kind == "joblib":
                self.stack[-1] = RESULT
                if self.joblib:
                    self._joblib_array(inst, at)

    # -- joblib arrays -------------------------------------------------------------------------------

    def _joblib_array(self, wrapper: _Obj, at: int) -> None:
        state = wrapper.state
        if not isinstance(state, _Dict) or state.overflow:
            raise _Malformed("a joblib array wrapper whose state cannot be read", at)
        fields = {k: v for k, v in state.pairs if isinstance(k, str)}
        shape = fields.get("shape")
        if not isinstance(shape, tuple) or not all(type(x) is int and x >= 0 for x in shape):
            raise _Malformed("a joblib array wrapper without a literal shape", at)
        info = _dtype_info(fields.get("dtype"))
        if info is None:
            raise _Malformed("a joblib array wrapper whose dtype cannot be read", at)
        subclass = fields.get("subclass")
        if not isinstance(subclass, _Global):
            raise _Malformed("a joblib array wrapper without an array class", at)
        align = fields.get("numpy_array_alignment_bytes")
        if align is not None and type(align) is not int:
            raise _Malformed("a joblib array wrapper with a bad alignment", at)
        r = self.r
        here = r.tell()
        if self.frame_end is not None and here < self.frame_end:
            raise _Malformed("joblib array data placed inside a pickle frame", at)
        count = 1
        for x in shape:
            count *= x
        itemsize, hasobject = info
        if hasobject:
            # joblib writes the array with pickle.dump (protocol 2) right here: scan that pickle.
            if self.depth >= MAX_NESTING:
                raise _Malformed("joblib object arrays nested too deeply", at)
            nested = _Sim(r, self.sink, mode="plain", depth=self.depth + 1)
            nested.context = self.context
            nested.pickle_index = self.pickle_index
            try:
                nested.run_pickle()
            finally:
                self.soft.extend(nested.soft)
            return
        first = r.peek()
        size = count * itemsize
        region = size + (1 + (first or 0) if align is not None else 0)
        if first is not None and first in _VALID_OPCODES and self.sink is not None:
            self._shadow(here, here + region)
        if align is not None:
            pad = r.byte()
            r.skip(pad)
        r.skip(size)

    def _shadow(self, start: int, end: int) -> None:
        """Scan array bytes as pickle.load would see them: as more opcodes of this pickle."""
        end = min(end, self.r.end) if self.r.end is not None else end
        window = None
        if self.r.stream:  # a decompressing stream: look ahead in memory instead of seeking back
            window = self.r.peek_bytes(min(end - start, SHADOW_WINDOW))
            reader = _Reader(io.BytesIO(), start, start + len(window), stream=False)
            reader.buf = window
        else:
            reader = _Reader(self.r.fp, start, end, stream=False)
        sim = _Sim(reader, self.sink, mode="shadow", depth=self.depth + 1)
        # Copies of the stacks (a folded bottom holds a count that pops change); containers stay shared,
        # so the shadow never mutates them (see _extend, _set_items and BUILD).
        sim.stack = _copy_segment([*self.stack[:-1], RESULT])
        sim.meta = [_copy_segment(seg) for seg in self.meta]
        sim.memo = list(self.memo)
        sim.memo_far = dict(self.memo_far)
        sim.proto = self.proto
        sim.pickle_index = self.pickle_index
        try:
            sim._continue()
        except _Truncated:
            if window is not None and start + len(window) < end and self.sink is not None:
                self.sink.issue(
                    _SEV_HIGH,
                    "pickle.malformed",
                    f"cannot be proven safe: joblib array data still parses as opcodes after {len(window)} bytes",
                    offset=start,
                    context=SHADOW_CONTEXT,
                )
        except (_Malformed, _Budget):
            pass

    def _continue(self) -> None:
        table = _TABLE
        r = self.r
        while True:
            at = r.base + r.pos
            code = r.byte()
            entry = table[code]
            if entry is None:
                return
            arg_reader, handler = entry
            if handler(self, arg_reader(self) if arg_reader is not None else None, at):
                return


def _build_table() -> list[Any]:
    """Opcode byte -> (argument reader, handler), from pickletools' table of opcodes and formats."""
    readers = {
        "uint1": _Sim._a_uint1,
        "uint2": _Sim._a_uint2,
        "int4": _Sim._a_int4,
        "uint4": _Sim._a_uint4,
        "uint8": _Sim._a_uint8,
        "long1": _Sim._a_long1,
        "long4": _Sim._a_long4,
        "decimalnl_short": _Sim._a_line,
        "decimalnl_long": _Sim._a_line,
        "floatnl": _Sim._a_line,
        "float8": _Sim._a_float8,
        "stringnl": _Sim._a_stringnl,
        "stringnl_noescape": _Sim._a_line,
        "stringnl_noescape_pair": _Sim._a_pair,
        "string1": _Sim._a_string1,
        "string4": _Sim._a_string4,
        "bytes1": _Sim._a_bytes1,
        "bytes4": _Sim._a_bytes4,
        "bytes8": _Sim._a_bytes8,
        "bytearray8": _Sim._a_bytes8,
        "unicodestringnl": _Sim._a_unicodenl,
        "unicodestring1": _Sim._a_unicode1,
        "unicodestring4": _Sim._a_unicode4,
        "unicodestring8": _Sim._a_unicode8,
    }
    table: list[Any] = [None] * 256
    for op in pickletools.opcodes:
        handler = getattr(_Sim, "_op_" + op.name)  # every opcode of this Python has a handler
        table[ord(op.code)] = (readers[op.arg.name] if op.arg is not None else None, handler)
    return table


_TABLE = _build_table()


# --------------------------------------------------------------------------------------------
# Public API


@dataclass
class PickleReport:
    """What scanning a run of pickles found, for callers that need more than findings."""

    findings: list[Finding]
    end: int  # offset after the last byte consumed
    pickles: int  # complete pickles seen
    stop_values: list[Any] = field(default_factory=list)
    storage_ids: list[Any] = field(default_factory=list)
    complete: bool = True  # False when a malformed stream stopped the scan


def _file_end(fp: BinaryIO) -> int | None:
    try:
        here = fp.tell()
        end = fp.seek(0, io.SEEK_END)
        fp.seek(here)
        return int(end)
    except (OSError, ValueError, AttributeError):
        return None


def scan_pickles(
    fp: BinaryIO,
    display: str,
    policy: ScanPolicy,
    *,
    start: int | None = None,
    end: int | None = None,
    max_pickles: int | None = None,
    first_index: int = 0,
    collect: bool = False,
    keep_items: int = KEEP_ITEMS,
    stream: bool = False,
    trailing: bool = True,
    continuation: bool = False,
) -> PickleReport:
    """Scan pickles stacked in [start, end): at most ``max_pickles``, else until the end.

    After a pickle's STOP, more bytes must start another pickle; bytes that cannot start one are
    reported as ``pickle.trailing-data`` (when ``trailing``) and end the scan. With ``collect``,
    every STOP value and every torch storage persistent id is returned too. ``continuation``
    says [start, end) follows an earlier STOP, so its first byte is held to the same rule.
    """
    if start is None:
        start = fp.tell()
    if end is None and not stream:
        end = _file_end(fp)
    sink = _Sink(display, policy)
    reader = _Reader(fp, start, end, stream=stream or end is None)
    sim = _Sim(reader, sink, collect=collect, keep_items=keep_items)
    sim.pickle_index = first_index
    done = 0
    complete = True
    while max_pickles is None or done < max_pickles:
        here = reader.tell()
        first = reader.peek()
        if first is None:
            if done == 0 and not continuation:
                sink.issue(_SEV_HIGH, "pickle.malformed", "the stream is empty: no pickle to prove safe", offset=here)
                complete = False
            break
        if (done > 0 or continuation) and first not in _VALID_OPCODES:
            if trailing:
                size = None if reader.end is None else reader.end - here
                sink.issue(
                    Severity.MEDIUM,
                    "pickle.trailing-data",
                    f"{'unknown amount of' if size is None else size} bytes after the last pickle "
                    "that are not another pickle",
                    offset=here,
                    size=size,
                )
            break
        try:
            sim.run_pickle()
        except _Malformed as exc:
            sink.issue(
                _SEV_HIGH,
                "pickle.malformed",
                f"cannot be proven safe: {exc.reason}",
                offset=exc.offset,
                pickle=sim.pickle_index,
            )
            complete = False
            break
        done += 1
        sim.pickle_index += 1
    for reason, at in sim.soft:
        sink.issue(_SEV_HIGH, "pickle.malformed", f"cannot be proven safe: {reason}", offset=at)
    return PickleReport(
        findings=sink.findings(),
        end=reader.tell(),
        pickles=done,
        stop_values=sim.stop_values if collect else [],
        storage_ids=sim.pids,
        complete=complete,
    )


def scan_pickle(
    fp: BinaryIO,
    display: str,
    policy: ScanPolicy,
    *,
    start: int | None = None,
    end: int | None = None,
) -> list[Finding]:
    """Scan every pickle in [start, end) of ``fp`` (default: from the current position to EOF).

    Returns an empty list for a clean stream. Never unpickles anything.
    """
    return scan_pickles(fp, display, policy, start=start, end=end).findings


def probe_pickle(fp: BinaryIO, start: int, end: int | None, *, stream: bool = False, soft_end: bool = False) -> bool:
    """Whether [start, end) really starts a pickle, judged by simulating its first opcodes.

    True when an import is seen (a loader would run it even if the stream breaks later), when a
    pickle that starts with PROTO 2-5 reaches STOP, when a protocol 0/1 pickle that does more
    than push one value reaches STOP, when the pickles fill the whole stream exactly, or when 64
    opcodes parse cleanly. A lone scalar followed by other bytes is not a pickle (tensor data can
    start like one). Stacked pickles are
    followed (a legacy torch file starts with a one-number pickle). With ``soft_end`` (only a
    head is available), running out of bytes after a clean start (PROTO and one opcode, or four
    protocol 0/1 opcodes) also counts.
    """
    reader = _Reader(fp, start, end, stream=stream, chunk=4096)
    sim = _Sim(reader, None, mode="probe", budget=64)
    first = True
    while True:
        here = reader.tell()
        has_proto = False
        try:
            if reader.peek() == 0x80:
                has_proto = 2 <= reader.read(2)[1] <= 5
                reader.jump(here)
            sim.run_pickle()
        except _Budget:
            return True
        except _Truncated:
            if sim.imports:
                return True
            return soft_end and first and sim.ops >= (2 if has_proto else 4)
        except _Malformed:
            return bool(sim.imports)
        if sim.imports or has_proto or sim.ops_in_pickle > 2:
            return True
        nxt = reader.peek()
        if nxt is None:
            return not soft_end  # the whole stream is a valid (if trivial) pickle
        if nxt not in _VALID_OPCODES:
            return False
        first = False


def looks_like_pickle(head: bytes) -> bool:
    """Whether the first bytes of something look like a pickle (any protocol).

    A PROTO opcode with version 2-5 followed by opcodes that parse, or a protocol 0/1 start whose
    opcodes simulate cleanly for several steps, or that imports a global; text rarely survives.
    """
    if not head:
        return False
    return probe_pickle(io.BytesIO(head), 0, len(head), soft_end=True)
