"""The static pickle scanner: it reads the opcode stream and never unpickles, imports or runs it.

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
there). The wrapper global is therefore not reported once its array data is located; imported and
never used so (only imported, or read as ``pickle.load`` reads it) it is an unknown global like any
other, and a wrapper whose array data cannot be located is malformed (the pickle is read on, as
``pickle.load`` reads it). Because the same file could also be opened with
``pickle.load``, which would read those array bytes as opcodes, bytes that start with a valid
opcode are additionally scanned as a continuation ("shadow" scan) and any import found there is
reported. ``joblib.load`` itself stays dangerous.

Frames (protocol 4+) are enforced as CPython reads them (:mod:`~hfa.scan.pickles.reader`): an
opcode that runs past its frame's end is critical, and the stream is judged again in every way
``_pickle.c`` may read its frames from a file (straight on, or the frame's rest dropped, frame by
frame). tests/test_scan_differential.py holds the scanner to CPython's own unpicklers. Values that hold pickles (bytes, latin-1, base64 or hex text) are scanned too
(:mod:`~hfa.scan.pickles.nested`), and a pickle whose memo fetches build a huge shared structure is
an expansion bomb (:mod:`~hfa.scan.pickles.expansion`).

Interpret, then judge (as fickling separates its interpreter from its analysis): bytes flow
through :mod:`~hfa.scan.pickles.reader` (bounded reads, payloads skipped) and
:mod:`~hfa.scan.pickles.operands` into the machine (:mod:`~hfa.scan.pickles.machine`: stack, memo,
the run loop; :mod:`~hfa.scan.pickles.handlers`: each opcode of :mod:`~hfa.scan.pickles.opcodes`,
on the values of :mod:`~hfa.scan.pickles.values`), which emits events
(:mod:`~hfa.scan.pickles.events`: a global imported, something called, an imported object
changed). The judge (:mod:`~hfa.scan.pickles.judge`) turns them into findings with the verdicts
of :mod:`hfa.scan.denylist`; :mod:`~hfa.scan.pickles.scan` drives a run and reports it.
"""

from hfa.scan.pickles.opcodes import VALID_OPCODES
from hfa.scan.pickles.scan import PickleReport, looks_like_pickle, probe_pickle, scan_pickle, scan_pickles
from hfa.scan.pickles.values import KEEP_ITEMS, KEEP_ITEMS_LARGE, Global, ListValue

__all__ = [
    "KEEP_ITEMS",
    "KEEP_ITEMS_LARGE",
    "VALID_OPCODES",
    "Global",
    "ListValue",
    "PickleReport",
    "looks_like_pickle",
    "probe_pickle",
    "scan_pickle",
    "scan_pickles",
]
