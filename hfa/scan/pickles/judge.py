"""The judge: turns the events of a simulated unpickler into findings, by the scan policy.

Each global imported is judged once per stream by :func:`hfa.scan.denylist.classify_global`
(allowed: nothing to report; a known code-execution, file, network, process or import-machinery
global, or a dotted or dunder name: ``pickle.dangerous-global``, critical; anything else:
``pickle.unknown-global``, high) and reported once, with how often it is imported and where it
is called. A call of anything but an imported global, an imported global changed in place, an
unknown extension code and a stream that cannot be followed are findings too (high): none of
them can be proven safe. Events are described in :mod:`hfa.scan.pickles.events`.
"""

from __future__ import annotations

from hfa.scan.denylist import classify_global
from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.pickles.events import SHADOW, Observer
from hfa.scan.pickles.values import Global, Passed, describe

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any

MAX_CALL_OFFSETS = 8  # call sites listed per global in a finding


class GlobalHit:
    """One global a stream imports, with where and how often."""

    __slots__ = (
        "called_at",
        "context",
        "count",
        "module",
        "name",
        "offset",
        "opcode",
        "pickle",
        "reason",
        "resolved",
        "severity",
    )

    def __init__(
        self,
        module: str,
        name: str,
        severity: Severity,
        reason: str,
        resolved: str | None,
        opcode: str,
        offset: int,
        pickle: int,
        context: str,
    ) -> None:
        self.module = module
        self.name = name
        self.severity = severity
        self.reason = reason
        self.resolved = resolved
        self.opcode = opcode
        self.offset = offset
        self.pickle = pickle
        self.context = context
        self.count = 1
        self.called_at: list[int] = []


class Judge(Observer):
    """Judges one stream's events (a file, an archive member) into findings, by the policy."""

    def __init__(self, display: str, policy: ScanPolicy) -> None:
        self.display = display
        self.policy = policy
        self.globals: dict[tuple[str, str, str], GlobalHit] = {}
        self.issues: list[Finding] = []
        self._issue_keys: set[tuple[str, str]] = set()
        self._verdicts: dict[tuple[str, str], tuple[Severity, str, str | None] | None] = {}
        self._followed: set[tuple[str, str, str]] = set()
        # getattr, per key: how often it is put on the stack, and how often it is a resolved call's function.
        # Only when every one is such a call is getattr itself no finding (each attribute is judged instead).
        self._getattr_refs: dict[tuple[str, str, str], int] = {}
        self._getattr_resolved: dict[tuple[str, str, str], int] = {}

    def verdict(self, module: str, name: str) -> tuple[Severity, str, str | None] | None:
        key = (module, name)
        if key not in self._verdicts:
            self._verdicts[key] = classify_global(module, name, self.policy)
        return self._verdicts[key]

    # -- events ------------------------------------------------------------------------------------

    def imported(self, glob: Global, opcode: str, pickle: int, context: str) -> None:
        if glob.kind == "getattr":
            self.reused(glob, context)
        verdict = self.verdict(glob.module, glob.name)
        if verdict is None:
            return
        key = (glob.module, glob.name, context)
        hit = self.globals.get(key)
        if hit is None:
            self.globals[key] = GlobalHit(
                glob.module, glob.name, verdict[0], verdict[1], verdict[2], opcode, glob.offset, pickle, context
            )
        else:
            hit.count += 1

    def followed(self, glob: Global, context: str) -> None:
        self._followed.add((glob.module, glob.name, context))

    def reused(self, glob: Global, context: str) -> None:
        key = (glob.module, glob.name, context)
        self._getattr_refs[key] = self._getattr_refs.get(key, 0) + 1

    def resolved(self, glob: Global, context: str) -> None:
        key = (glob.module, glob.name, context)
        self._getattr_resolved[key] = self._getattr_resolved.get(key, 0) + 1

    def called(self, func: Any, args: Any, at: int, opcode: str, context: str) -> None:
        if isinstance(func, Global):
            hit = self.globals.get((func.module, func.name, context))
            if hit is not None and len(hit.called_at) < MAX_CALL_OFFSETS:
                hit.called_at.append(at)
            return
        if context == SHADOW:
            return  # array bytes read as opcodes: only what they import counts
        self.issue(
            Severity.HIGH,
            "pickle.indirect-call",
            f"{opcode} calls an object that is not an imported global ({describe(func)})",
            offset=at,
            opcode=opcode,
            context=context or None,
        )

    def mutated(self, target: Any, at: int, opcode: str, context: str) -> None:
        if isinstance(target, Global) and context != SHADOW:
            self.issue(
                Severity.HIGH,
                "pickle.global-mutation",
                f"{opcode} modifies the imported global {target.module}.{target.name} in place",
                module=target.module,
                name=target.name,
                offset=at,
                opcode=opcode,
            )
        elif target.__class__ is Passed and context != SHADOW:
            self.issue(
                Severity.HIGH,
                "pickle.global-mutation",
                f"{opcode} modifies in place what min/max/sum returned: maybe a global among what they were given",
                offset=at,
                opcode=opcode,
            )

    def extension(self, code: int, at: int, opcode: str) -> None:
        self.issue(
            Severity.HIGH,
            "pickle.unknown-extension",
            f"{opcode} imports extension code {code}, which is not registered here; "
            "the loading machine's copyreg registry decides what it imports",
            extension=code,
            offset=at,
        )

    def hidden_call(self, reason: str, at: int, context: str) -> None:
        if context != SHADOW:  # array bytes read as opcodes: only what they import counts (as for indirect calls)
            self.issue(
                Severity.HIGH,
                "pickle.hidden-call",
                f"{reason} (with the state it is given: whatever it is, the scan cannot judge the call)",
                offset=at,
                context=context or None,
            )

    def problem(self, reason: str, at: int, context: str) -> None:
        self.malformed(reason, at, context=context or None)

    # -- what the driver found about the stream as a whole ------------------------------------------

    def expansion(self, fetches: int, expanded: int, ops: int, offset: int, pickle: int) -> None:
        """A pickle that builds a huge shared structure from few opcodes (see :mod:`hfa.scan.pickles.expansion`)."""
        self.issue(
            Severity.HIGH,
            "pickle.expansion",
            f"cannot be proven safe: {fetches} fetches of shared containers build a structure of "
            f"{expanded} elements from {ops} opcodes (an expansion bomb?)",
            offset=offset,
            pickle=pickle,
            fetches=fetches,
            expanded=expanded,
            opcodes=ops,
        )

    def frames(self, overruns: list[tuple[int, int]], mismatches: list[tuple[int, str]]) -> None:
        """Frames the stream breaks: readers disagree about what its bytes are (critical)."""
        for here, frame_end in overruns:
            self.issue(
                Severity.CRITICAL,
                "pickle.frame-overrun",
                f"an opcode read at offset {here} runs past its frame's end at {frame_end}: CPython reads "
                "such bytes differently from memory and from a file (a way to hide code from scanners)",
                offset=here,
                frame_end=frame_end,
            )
        for at, what in mismatches:
            self.issue(
                Severity.CRITICAL,
                "pickle.frame-mismatch",
                f"{what} (offset {at}): CPython's readers disagree about what follows",
                offset=at,
            )

    def computed_import(self, reason: str, offset: int, **detail: Any) -> None:
        self.issue(
            Severity.CRITICAL, "pickle.computed-import", f"{reason}: any global can be reached", offset=offset, **detail
        )

    def malformed(self, reason: str, offset: int, **detail: Any) -> None:
        self.issue(Severity.HIGH, "pickle.malformed", f"cannot be proven safe: {reason}", offset=offset, **detail)

    # -- findings -----------------------------------------------------------------------------------

    def issue(self, severity: Severity, code: str, message: str, **detail: Any) -> None:
        key = (code, message)
        if key in self._issue_keys:
            return
        self._issue_keys.add(key)
        self.issues.append(Finding(severity, code, message, self.display, detail))

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        # A getattr misused in one reading is critical wherever it was imported: a shadow reading (joblib array
        # data) starts with the stack and memo of the pickle before it, so its getattr was imported there.
        misused = {key[:2] for key, refs in self._getattr_refs.items() if self._getattr_resolved.get(key) != refs}
        for key, hit in self.globals.items():
            if key in self._followed:
                continue  # joblib's array wrapper, used as joblib.load uses it (hfa.scan.pickles)
            if key in self._getattr_refs and key[:2] not in misused:
                continue  # getattr only ever called on an imported global with a constant name, in every reading
            dangerous = hit.severity >= Severity.CRITICAL
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
