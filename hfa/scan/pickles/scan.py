"""The driver: runs the machine over a byte range, hands its events to a judge, and reports.

:func:`scan_pickles` follows stacked pickles to the end of the range (trailing bytes that start
no pickle are a finding); :func:`probe_pickle` tells whether bytes start a pickle at all.
"""

from __future__ import annotations

import io

from hfa.scan.limits import Work
from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles.errors import ComputedImport, Enough, Malformed, TooCostly, Truncated
from hfa.scan.pickles.events import DROPPED
from hfa.scan.pickles.expansion import exceeds
from hfa.scan.pickles.handlers import Simulator
from hfa.scan.pickles.judge import Judge
from hfa.scan.pickles.opcodes import VALID_OPCODES
from hfa.scan.pickles.reader import Reader
from hfa.scan.pickles.values import KEEP_ITEMS

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any, BinaryIO


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
    legacy_torch: bool = False,
) -> PickleReport:
    """Scan pickles stacked in [start, end): at most ``max_pickles``, else until the end.

    After a pickle's STOP, more bytes must start another pickle; bytes that cannot start one are
    reported as ``pickle.trailing-data`` (when ``trailing``) and end the scan. With ``collect``,
    every STOP value and every torch storage persistent id is returned too. ``continuation``
    says [start, end) follows an earlier STOP, so its first byte is held to the same rule.
    ``work`` is the file's budget (default: one for [start, end) alone); past it the scan stops
    with a ``scan.too-costly`` finding. ``legacy_torch``: the pickles of a legacy ``torch.save`` file,
    whose ``("module", class, ...)`` persistent ids torch resolves to the class.
    """
    if start is None:
        start = fp.tell()
    if end is None and not stream:
        end = _file_end(fp)
    judge = Judge(display, policy)
    reader = Reader(fp, start, end, stream=stream or end is None)
    reader.partial_lines = True
    if work is None:
        work = Work(None if end is None else end - start)
    sim = Simulator(reader, judge, collect=collect, keep_items=keep_items, work=work)
    sim.pickle_index = first_index
    sim.legacy_torch = legacy_torch
    done = 0
    complete = True
    while max_pickles is None or done < max_pickles:
        here = reader.tell()
        first = reader.peek()
        if first is None:
            if done == 0 and not continuation:
                judge.issue(
                    Severity.HIGH, "pickle.malformed", "the stream is empty: no pickle to prove safe", offset=here
                )
                complete = False
            break
        if (done > 0 or continuation) and first not in VALID_OPCODES:
            if trailing:
                size = None if reader.end is None else reader.end - here
                judge.issue(
                    Severity.MEDIUM,
                    "pickle.trailing-data",
                    f"{'unknown amount of' if size is None else size} bytes after the last pickle "
                    "that are not another pickle",
                    offset=here,
                    size=size,
                )
            break
        broke = False
        try:
            sim.run_pickle()
        except TooCostly as exc:
            if not work.reported:
                work.reported = True
                judge.issue(Severity.HIGH, "scan.too-costly", f"cannot be proven safe: {exc.reason}", offset=exc.offset)
            complete = False
            broke = True
        except ComputedImport as exc:
            judge.computed_import(exc.reason, exc.offset, pickle=sim.pickle_index)
            complete = False
            broke = True
        except Malformed as exc:
            judge.malformed(exc.reason, exc.offset, pickle=sim.pickle_index)
            complete = False
            broke = True
        if exceeds(sim.fetches, sim.expanded, sim.ops_in_pickle):
            judge.expansion(sim.fetches, sim.expanded, sim.ops_in_pickle, here, sim.pickle_index)
        if broke:
            break
        done += 1
        sim.pickle_index += 1
    if reader.choices and not work.exhausted:
        # Frames that CPython's file readers may read another way: judge what each other way runs.
        _other_readings(fp, start, end, stream or end is None, judge, work, first_index, reader.choices, max_pickles)
    judge.frames(reader.overruns, reader.mismatches)
    if reader.short is not None:
        judge.malformed(f"a frame of {reader.short[1]} bytes runs past the end of the stream", reader.short[0])
        complete = False
    for reason, at in sim.soft:
        judge.malformed(reason, at)
    return PickleReport(
        findings=judge.findings(),
        end=reader.tell(),
        pickles=done,
        stop_values=sim.stop_values if collect else [],
        storage_ids=sim.pids,
        complete=complete,
    )


MAX_READINGS = 64  # other readings of a stream's frames judged; past it one finding


def _other_readings(
    fp: BinaryIO,
    start: int,
    end: int | None,
    stream: bool,
    judge: Judge,
    work: Work,
    first_index: int,
    met: int,
    max_pickles: int | None,
) -> None:
    """Scan the pickles at ``start`` again for every other way CPython's file readers may read their frames
    (:mod:`hfa.scan.pickles.reader`): the main scan read every frame that matters straight on (``met`` of
    them); here first every one with ``read(n)`` (``pickle.load`` of a file without ``peek``, the pure-Python
    unpickler), then each mix of the two (a file with ``peek``), each frame met deciding afresh, up to
    :data:`MAX_READINGS`. Their imports and calls are judged like any other, in the context
    :data:`~hfa.scan.pickles.events.DROPPED`."""
    every = _reading(fp, start, end, stream, judge, work, first_index, (), True, max_pickles)
    all_dropped = (True,) * every
    # Each plan is a prefix of decisions (True: read with read(n)); frames past it are read straight on.
    # A plan whose run meets more frames than it decides spawns one plan per later frame read with read(n):
    # together they are every sequence of decisions, each run once.
    queue = [(False,) * j + (True,) for j in range(met)]
    runs = 1
    while queue and not work.exhausted:
        plan = queue.pop(0)
        if plan == all_dropped:
            continue
        if runs >= MAX_READINGS:
            judge.malformed(f"its frames can be read in more than {MAX_READINGS} ways: not all were judged", start)
            return
        runs += 1
        seen = _reading(fp, start, end, stream, judge, work, first_index, plan, False, max_pickles)
        queue.extend(plan + (False,) * j + (True,) for j in range(seen - len(plan)))


def _reading(
    fp: BinaryIO,
    start: int,
    end: int | None,
    stream: bool,
    judge: Judge,
    work: Work,
    first_index: int,
    plan: tuple[bool, ...],
    default: bool,
    max_pickles: int | None,
) -> int:
    """One reading of the stacked pickles at ``start`` (as ``pickle.load`` called again and again reads them),
    with frames read as ``plan`` and ``default`` say; returns how many frames mattered."""
    reader = Reader(fp, start, end, stream=stream)
    reader.plan = plan
    reader.default = default
    reader.partial_lines = True
    sim = Simulator(reader, judge, mode="plain", work=work)
    sim.context = DROPPED
    sim.pickle_index = first_index
    done = 0
    while max_pickles is None or done < max_pickles:
        first = reader.peek()
        if first is None or first not in VALID_OPCODES:
            break
        try:
            sim.run_pickle()
        except TooCostly as exc:
            if not work.reported:
                work.reported = True
                judge.issue(Severity.HIGH, "scan.too-costly", f"cannot be proven safe: {exc.reason}", offset=exc.offset)
            break
        except ComputedImport as exc:
            judge.computed_import(exc.reason, exc.offset, pickle=sim.pickle_index)
            break
        except Malformed:  # CPython fails there too: nothing after it runs
            break
        done += 1
        sim.pickle_index += 1
    return reader.choices


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
    reader = Reader(fp, start, end, stream=stream, chunk=4096)
    sim = Simulator(reader, None, mode="probe", budget=64)
    first = True
    while True:
        here = reader.tell()
        has_proto = False
        try:
            if reader.peek() == 0x80:
                has_proto = 2 <= reader.read(2)[1] <= 5
                reader.jump(here)
            sim.run_pickle()
        except Enough:
            return True
        except Truncated:
            if sim.imports:
                return True
            return soft_end and first and sim.ops >= (2 if has_proto else 4)
        except Malformed:
            return bool(sim.imports)
        if sim.imports or has_proto or sim.ops_in_pickle > 2:
            return True
        nxt = reader.peek()
        if nxt is None:
            return not soft_end  # the whole stream is a valid (if trivial) pickle
        if nxt not in VALID_OPCODES:
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
