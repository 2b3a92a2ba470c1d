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

This module holds the entry points. The verdict on a global is in :mod:`hfa.scan.denylist`; the
simulated unpickler is in ``_pickle_parts`` (limits, stack values, reader, findings sink),
``_pickle_vm`` (state, operands, stack, imports and calls) and ``_pickle_ops`` (opcode handlers).
"""

from __future__ import annotations

import io

from hfa.scan._pickle_ops import _Sim
from hfa.scan._pickle_parts import (
    _VALID_OPCODES,
    _Budget,
    _Malformed,
    _Reader,
    _Sink,
    _TooCostly,
    _Truncated,
)

# Re-exported (``as``): hfa.scan.archive and other callers import these from here.
from hfa.scan._pickle_parts import KEEP_ITEMS as KEEP_ITEMS
from hfa.scan._pickle_parts import KEEP_ITEMS_LARGE as KEEP_ITEMS_LARGE
from hfa.scan._pickle_parts import _Global as _Global
from hfa.scan._pickle_parts import _List as _List
from hfa.scan.denylist import classify_global as classify_global
from hfa.scan.limits import Work
from hfa.scan.model import Finding, ScanPolicy, Severity

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

_SEV_HIGH = Severity.HIGH

# --------------------------------------------------------------------------------------------
# Public API


class PickleReport:
    """What scanning a run of pickles found, for callers that need more than findings."""

    __slots__ = ("complete", "end", "findings", "pickles", "stop_values", "storage_ids")

    def __init__(
        self,
        findings: list[Finding],
        end: int,
        pickles: int,
        stop_values: list[Any] | None = None,
        storage_ids: list[Any] | None = None,
        complete: bool = True,
    ) -> None:
        self.findings = findings
        self.end = end  # offset after the last byte consumed
        self.pickles = pickles  # complete pickles seen
        self.stop_values: list[Any] = [] if stop_values is None else stop_values
        self.storage_ids: list[Any] = [] if storage_ids is None else storage_ids
        self.complete = complete  # False when a malformed stream stopped the scan


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
    work: Work | None = None,
) -> PickleReport:
    """Scan pickles stacked in [start, end): at most ``max_pickles``, else until the end.

    After a pickle's STOP, more bytes must start another pickle; bytes that cannot start one are
    reported as ``pickle.trailing-data`` (when ``trailing``) and end the scan. With ``collect``,
    every STOP value and every torch storage persistent id is returned too. ``continuation``
    says [start, end) follows an earlier STOP, so its first byte is held to the same rule.
    ``work`` is the file's budget (default: one for [start, end) alone); past it the scan stops
    with a ``scan.too-costly`` finding.
    """
    if start is None:
        start = fp.tell()
    if end is None and not stream:
        end = _file_end(fp)
    sink = _Sink(display, policy)
    reader = _Reader(fp, start, end, stream=stream or end is None)
    if work is None:
        work = Work(None if end is None else end - start)
    sim = _Sim(reader, sink, collect=collect, keep_items=keep_items, work=work)
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
        except _TooCostly as exc:
            if not work.reported:
                work.reported = True
                sink.issue(_SEV_HIGH, "scan.too-costly", f"cannot be proven safe: {exc.reason}", offset=exc.offset)
            complete = False
            break
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
