"""What the simulated unpickler tells as it runs: the events a policy judges.

The machine (:mod:`hfa.scan.pickles.machine`) interprets opcodes and never decides what is
unsafe; it calls one method of an :class:`Observer` per event: a global imported, something
called (REDUCE, NEWOBJ, INST, OBJ), an imported object changed in place (BUILD, SETITEM, APPEND
on it), an extension code imported, a stretch it could not follow; and for ``getattr``, each time
it is put on the stack again and each call of it resolved to an attribute. The judge
(:class:`hfa.scan.pickles.judge.Judge`) turns them into findings by the allowlist and denylist;
a new check is one more observer method or one more rule there, not a change to the machine.
Events arrive in stream order, with the byte offset of their opcode. ``context`` names the
reading an event comes from: ``""`` for the pickle itself, :data:`SHADOW` for joblib array bytes
read as opcodes (what ``pickle.load`` of a joblib file would run), :data:`DROPPED` for the other readings of a
stream whose frames CPython's file readers may read another way (see :mod:`hfa.scan.pickles.reader`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from typing import Any

    from hfa.scan.pickles.values import Global

MAIN = ""
SHADOW = "in joblib array data, run if the file is opened with pickle.load instead of joblib.load"
DROPPED = "as pickle.load may read it from a file, where an opcode that crosses its frame's end is read from there"


class Observer:
    """The events of a run. This base ignores them all: a probe needs no verdicts."""

    __slots__ = ()

    def imported(self, glob: Global, opcode: str, pickle: int, context: str) -> None:
        """GLOBAL, STACK_GLOBAL or INST (or EXT with a registered code) imports ``glob``."""

    def called(self, func: Any, args: Any, at: int, opcode: str, context: str) -> None:
        """REDUCE, NEWOBJ, NEWOBJ_EX, INST or OBJ calls ``func`` (a Global, or any other value) with ``args``."""

    def mutated(self, target: Any, at: int, opcode: str, context: str) -> None:
        """BUILD, SETITEM(S), APPEND(S) or ADDITEMS changes ``target`` in place (not a list or dict the pickle built)."""

    def reused(self, glob: Global, context: str) -> None:
        """DUP or a memo GET puts ``glob`` (a getattr) on the stack once more."""

    def resolved(self, glob: Global, context: str) -> None:
        """``glob`` (a getattr) is called by REDUCE with an imported global and a constant name: what it
        returns is imported (judged) as that global's attribute."""

    def followed(self, glob: Global, context: str) -> None:
        """joblib's array wrapper ``glob`` was used as joblib uses it: its array data was located."""

    def extension(self, code: int, at: int, opcode: str) -> None:
        """EXT1/2/4 imports an extension code that no copyreg registry here knows."""

    def hidden_call(self, reason: str, at: int, context: str) -> None:
        """A call the unpickler will make that no REDUCE shows: ``__setstate__`` set as an object's attribute."""

    def problem(self, reason: str, at: int, context: str) -> None:
        """A stretch of the stream that could not be followed, though the run went on."""
