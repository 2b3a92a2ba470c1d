"""Why the simulated unpickler stops short of STOP: each one is raised, never a finding by itself
(the driver, :mod:`hfa.scan.pickles.scan`, reports it through the judge)."""

from __future__ import annotations


class Malformed(Exception):
    """The stream is not one an unpickler would follow to STOP: it cannot be proven safe."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class ComputedImport(Malformed):
    """A STACK_GLOBAL whose module or name is no literal but the result of a call: CPython imports
    whatever the call returns (``builtins.str('os')`` reaches ``os.system``), so any global can be reached."""


class Truncated(Malformed):
    """The stream ends before the pickle does."""


class TooCostly(Malformed):
    """The file's work budget (:class:`hfa.scan.limits.Work`) is spent."""


class Enough(Exception):
    """A probe has seen enough opcodes to call it a pickle."""
