"""What every scanner returns: findings with a severity, and the policy they were judged by."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from enum import IntEnum
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


@dataclass(frozen=True)
class Finding:
    """One problem found in one file.

    ``code`` is stable and machine-readable (e.g. ``pickle.dangerous-global``); ``path`` is
    what the user knows the file as (a repo path, or a path on disk, with ``!member`` for
    a member of an archive); ``detail`` carries facts such as the global's name.
    """

    severity: Severity
    code: str
    message: str
    path: str
    detail: dict[str, Any] = field(default_factory=dict)

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
)


@dataclass
class ScanPolicy:
    """How findings are judged: the allowlist (built-in plus user extensions, never silent)."""

    allow: tuple[str, ...] = DEFAULT_ALLOWLIST
    extended_from: list[str] = field(default_factory=list)  # files that added entries, reported
    extra: tuple[str, ...] = ()  # the user's additions

    def allows(self, module: str, name: str) -> bool:
        full = f"{module}.{name}"
        for pattern in (*self.allow, *self.extra):
            if full == pattern or ("*" in pattern and fnmatch.fnmatchcase(full, pattern)):
                return True
        return False
