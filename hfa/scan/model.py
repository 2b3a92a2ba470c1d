"""What every scanner returns: findings with a severity, and the policy they were judged by.

The scanner's modules (this one, :mod:`hfa.scan.archive`, :mod:`hfa.scan.pickles` and the parts
they use) import nothing but ``struct``, ``zlib``, ``io`` and ``enum`` from the standard library
at run time: no ``typing``, ``dataclasses``, ``re`` or ``pickletools``, which together cost more
than scanning a PyTorch checkpoint does (bench/bench_scan.py). A process that scans one file
and exits, a loader hook, or a pre-commit check starts in a few milliseconds.
tests/test_scan_archive.py holds the list and fails when an import joins it.
"""

from __future__ import annotations

from enum import IntEnum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy reads it the same way
if TYPE_CHECKING:
    from typing import Any


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            from hfa.errors import UsageError

            raise UsageError(f"Unknown severity '{text}'", "use one of: info, low, medium, high, critical") from None


class Finding:
    """One problem found in one file.

    ``code`` is stable and machine-readable (e.g. ``pickle.dangerous-global``); ``path`` is
    what the user knows the file as (a repo path, or a path on disk, with ``!member`` for
    a member of an archive); ``detail`` carries facts such as the global's name.
    """

    __slots__ = ("code", "detail", "message", "path", "severity")

    def __init__(
        self, severity: Severity, code: str, message: str, path: str, detail: dict[str, Any] | None = None
    ) -> None:
        self.severity = severity
        self.code = code
        self.message = message
        self.path = path
        self.detail: dict[str, Any] = {} if detail is None else detail

    def _fields(self) -> tuple[Any, ...]:
        return (self.severity, self.code, self.message, self.path, self.detail)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Finding) and self._fields() == (
            other.severity,
            other.code,
            other.message,
            other.path,
            other.detail,
        )

    __hash__ = None  # type: ignore[assignment]  # detail is a dict: findings are not hashable

    def __repr__(self) -> str:
        return "Finding(severity={!r}, code={!r}, message={!r}, path={!r}, detail={!r})".format(*self._fields())

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "code": self.code,
            "message": self.message,
            "path": self.path,
            "detail": self.detail,
        }


# The built-in allowlist: globals a benign PyTorch / NumPy / plain pickle needs, and nothing
# that can run code, touch files, the network, processes, or the import machinery.
DEFAULT_ALLOWLIST: tuple[str, ...] = (
    "collections.OrderedDict",
    "collections.defaultdict",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "builtins.range",
    "builtins.complex",
    "builtins.bytearray",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.str",
    "builtins.bytes",
    "__builtin__.set",
    "__builtin__.frozenset",
    "__builtin__.slice",
    "__builtin__.complex",
    "copy_reg._reconstructor",
    "copyreg._reconstructor",
    # Protocols 0-2 write every non-empty bytes object as _codecs.encode(latin-1 text, "latin1")
    # (numpy array data included). It only encodes a str; the codec name is looked up in the
    # codec registry (the stdlib encodings package), as torch's weights_only unpickler allows.
    "_codecs.encode",
    "builtins.object",
    "__builtin__.object",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._tensor._rebuild_from_type_v2",
    "torch.Size",
    "torch.device",
    "torch.float16",
    "torch.float32",
    "torch.float64",
    "torch.bfloat16",
    "torch.int8",
    "torch.int16",
    "torch.int32",
    "torch.int64",
    "torch.uint8",
    "torch.bool",
    "torch.complex64",
    "torch.complex128",
    "torch.float8_e4m3fn",
    "torch.float8_e5m2",
    "torch.per_tensor_affine",
    "torch.per_channel_affine",
    "torch.FloatStorage",
    "torch.DoubleStorage",
    "torch.HalfStorage",
    "torch.BFloat16Storage",
    "torch.LongStorage",
    "torch.IntStorage",
    "torch.ShortStorage",
    "torch.CharStorage",
    "torch.ByteStorage",
    "torch.BoolStorage",
    "torch.ComplexFloatStorage",
    "torch.ComplexDoubleStorage",
    # The tensor types a legacy tar checkpoint (torch < 0.4) names in its ``tensors`` member.
    "torch.FloatTensor",
    "torch.DoubleTensor",
    "torch.HalfTensor",
    "torch.BFloat16Tensor",
    "torch.LongTensor",
    "torch.IntTensor",
    "torch.ShortTensor",
    "torch.CharTensor",
    "torch.ByteTensor",
    "torch.BoolTensor",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.nn.parameter.Parameter",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    # -- harmless constructors and pure functions of the standard library (issue 17): each builds a
    # value from the values it is given, or computes one; none imports, opens, runs or loops unbounded.
    "__future__.annotations",  # a feature flag (a _Feature record); calling it fails
    "__future__.division",  # the same, for each feature __future__ names
    "__future__.absolute_import",
    "__future__.print_function",
    "__future__.unicode_literals",
    "__future__.generator_stop",
    "__future__.nested_scopes",
    "__future__.generators",
    "__future__.with_statement",
    "__future__.barry_as_FLUFL",
    "__future__._Feature",  # the record class of those flags: stores two version tuples and a flag
    "collections.deque",  # a double-ended queue of the given items
    "collections.Counter",  # a dict of counts
    "collections.ChainMap",  # a view over the given mappings
    "collections.UserDict",  # a dict wrapper
    "collections.UserList",  # a list wrapper
    "collections.UserString",  # a str wrapper
    "collections.abc.Mapping",  # abstract base classes: cannot even be instantiated
    "collections.abc.MutableMapping",
    "collections.abc.Sequence",
    "collections.abc.MutableSequence",
    "collections.abc.Set",
    "collections.abc.MutableSet",
    "collections.abc.Iterable",
    "collections.abc.Iterator",
    "collections.abc.Collection",
    "collections.abc.Container",
    "collections.abc.Hashable",
    "collections.abc.Sized",
    "collections.abc.Callable",
    "decimal.Decimal",  # a decimal number from a string or tuple
    "fractions.Fraction",  # a rational number
    "datetime.datetime",  # dates and times from their packed bytes or fields
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "datetime.tzinfo",
    # A zone by its IANA key, from the system's tz database (keys are checked: no absolute path or ``..``);
    # a zone-aware datetime pickles its zone as getattr(ZoneInfo, "_unpickle")(key, from_cache).
    "zoneinfo.ZoneInfo",
    "zoneinfo.ZoneInfo._unpickle",
    "uuid.UUID",  # a 128-bit value (uuid's command-running helpers stay denied)
    "re._compile",  # a compiled regular expression (tokenizers keep their split pattern so): pattern and flags
    "array.array",  # a typed array of numbers
    "array._array_reconstructor",  # ... from its bytes (its first argument must be an array type)
    "ipaddress.IPv4Address",  # addresses and networks: values parsed from strings or ints
    "ipaddress.IPv6Address",
    "ipaddress.IPv4Network",
    "ipaddress.IPv6Network",
    "ipaddress.IPv4Interface",
    "ipaddress.IPv6Interface",
    "time.struct_time",  # the tuple time.gmtime() returns
    "http.HTTPStatus",  # an IntEnum of status codes (the rest of http stays denied: hfa.scan.denylist)
    "argparse.Namespace",  # attributes set from keywords (fairseq and Lightning keep args so)
    "types.SimpleNamespace",  # the same, as a type
    "builtins.len",  # pure functions of what the pickle built (pow is left out: unbounded work)
    "builtins.abs",
    "builtins.min",
    "builtins.max",
    "builtins.sum",
    "builtins.round",
    "builtins.divmod",
    "builtins.sorted",
    "builtins.reversed",
    "builtins.enumerate",
    "builtins.zip",
    "builtins.repr",
    "builtins.hash",
    "builtins.ord",
    "builtins.chr",
    "builtins.NotImplemented",  # singletons
    "builtins.Ellipsis",
    "numpy.random._pickle.__randomstate_ctor",  # numpy's RNG states: a generator by its known name
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    # ... and what those constructors are given: the bit generator classes (seeded from the state the
    # pickle holds) and the SeedSequence Cython writes through its unpickle helper, which only builds a
    # SeedSequence (``SeedSequence.__new__`` of anything else fails) and sets its fields.
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
    # Paths (Lightning hparams, argparse namespaces, training arguments): the path classes build a path
    # from strings and touch nothing (hfa.scan.denylist keeps the rest of pathlib, and any method reached
    # through a dotted name such as ``Path.write_text``, critical). Python 3.13+ defines them in pathlib._local.
    "pathlib.Path",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePath",
    "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath",
    "pathlib._local.Path",
    "pathlib._local.PosixPath",
    "pathlib._local.WindowsPath",
    "pathlib._local.PurePath",
    "pathlib._local.PurePosixPath",
    "pathlib._local.PureWindowsPath",
    "torch.strided",  # tensor layouts, memory formats and the remaining dtypes: constants
    "torch.sparse_coo",
    "torch.sparse_csr",
    "torch.contiguous_format",
    "torch.channels_last",
    "torch.preserve_format",
    "torch.uint16",
    "torch.uint32",
    "torch.uint64",
    "torch.complex32",
    "torch.qint8",
    "torch.quint8",
    "torch.qint32",
    "torch.float8_e4m3fnuz",
    "torch.float8_e5m2fnuz",
    # Quantized tensors' storages and schemes, the storages of old CUDA checkpoints, and the lookup of a
    # sparse tensor's layout by name (a dict of torch's layout constants): torch's weights_only loader
    # allows each of them (torch/_weights_only_unpickler.py).
    "torch.QInt8Storage",
    "torch.QUInt8Storage",
    "torch.QInt32Storage",
    "torch.QUInt4x2Storage",
    "torch.QUInt2x4Storage",
    "torch.per_tensor_symmetric",
    "torch.per_channel_symmetric",
    "torch.per_channel_affine_float_qparams",
    "torch.cuda.FloatStorage",
    "torch.cuda.DoubleStorage",
    "torch.cuda.HalfStorage",
    "torch.cuda.BFloat16Storage",
    "torch.cuda.LongStorage",
    "torch.cuda.IntStorage",
    "torch.cuda.ShortStorage",
    "torch.cuda.CharStorage",
    "torch.cuda.ByteStorage",
    "torch.cuda.BoolStorage",
    "torch.cuda.ComplexFloatStorage",
    "torch.cuda.ComplexDoubleStorage",
    "torch.serialization._get_layout",
)


class ScanPolicy:
    """How findings are judged: the allowlist (built-in plus user extensions, never silent)."""

    __slots__ = ("allow", "extended_from", "extra")

    def __init__(
        self,
        allow: tuple[str, ...] = DEFAULT_ALLOWLIST,
        extended_from: list[str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.allow = allow
        self.extended_from: list[str] = [] if extended_from is None else extended_from  # files that added entries
        self.extra = extra  # the user's additions

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScanPolicy) and (self.allow, self.extended_from, self.extra) == (
            other.allow,
            other.extended_from,
            other.extra,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ScanPolicy(allow={self.allow!r}, extended_from={self.extended_from!r}, extra={self.extra!r})"

    def allows(self, module: str, name: str) -> bool:
        full = f"{module}.{name}"
        for pattern in (*self.allow, *self.extra):
            if full == pattern:
                return True
            if "*" in pattern:
                import fnmatch  # only for a user's wildcard entries

                if fnmatch.fnmatchcase(full, pattern):
                    return True
        return False
