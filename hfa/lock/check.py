"""``hfa pull --locked`` / ``--frozen``: the lock entries a pull takes, checked against the command line.

``--locked`` fails (exit 1, :class:`hfa.errors.CheckFailed`) when the lock would have to change
for the command as given (another revision, other selection options), naming the ``hfa pin``
that updates it; ``--frozen`` takes the entry as it is. Either fails when the repo is not locked.
"""

from __future__ import annotations

from pathlib import Path

from hfa.errors import CheckFailed, UsageError, command_text
from hfa.lock.lockfile import DEFAULT_LOCK, Lock, LockedRepo
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions


def lock_args(lock_path: Path) -> list[str]:
    """The ``--lock`` option that names ``lock_path`` in a command to paste (none for the default lock)."""
    return [] if lock_path == Path(DEFAULT_LOCK) else ["--lock", str(lock_path)]


def all_entries(lock: Lock, lock_path: Path) -> list[LockedRepo]:
    """Every entry of ``lock`` (``hfa pull`` without REPO); a lock naming none is a usage error."""
    entries = list(lock.repos)
    if not entries:
        raise UsageError(f"{lock_path} names no repos", "add one with `hfa pin REPO[@REVISION]`")
    return entries


def locked_entry(
    lock: Lock, lock_path: Path, ref: RepoRef, options: SelectOptions, *, given: bool, locked: bool
) -> LockedRepo:
    """The entry of ``ref`` in ``lock``; with ``locked``, one that the command (``options``, if ``given``) matches."""
    entry = lock.get(ref.repo_id, ref.repo_type)
    if entry is None:
        pin = command_text("hfa", "pin", ref.display, *options.to_args(), *lock_args(lock_path))
        raise CheckFailed(
            f"'{ref.display}' is not in {lock_path}, but --{'locked' if locked else 'frozen'} was given",
            f"add it with `{pin}`",
        )
    if locked:
        reasons = []
        if ref.revision and ref.revision not in (entry.revision, entry.commit):
            reasons.append(f"revision {ref.revision} (locked: {entry.revision})")
        if given and options != entry.selection:
            reasons.append("other selection options")
        if reasons:
            wanted = options if given else entry.selection
            pin = command_text("hfa", "pin", ref.display, *wanted.to_args(), *lock_args(lock_path))
            raise CheckFailed(
                f"The lock at {lock_path} needs to be updated for {ref.display} ({'; '.join(reasons)}),"
                " but --locked was given",
                f"to update the lock, run `{pin}`",
            )
    return entry
