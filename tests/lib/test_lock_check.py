"""hfa.lock.check: which lock entries `hfa pull --locked/--frozen` takes, without the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfa.errors import CheckFailed, UsageError
from hfa.lock.check import all_entries, lock_args, locked_entry
from hfa.lock.lockfile import Lock, LockedRepo
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions

COMMIT = "a" * 40
ENTRY = LockedRepo("org/model", "model", "main", COMMIT, SelectOptions(), ())
LOCK = Lock(repos=(ENTRY,))


def test_lock_args_name_only_a_lock_other_than_the_default() -> None:
    assert lock_args(Path("hfa.lock")) == []
    assert lock_args(Path("ci/x.lock")) == ["--lock", "ci/x.lock"]


def test_all_entries_of_an_empty_lock_is_a_usage_error() -> None:
    assert all_entries(LOCK, Path("hfa.lock")) == [ENTRY]
    with pytest.raises(UsageError, match="names no repos"):
        all_entries(Lock(repos=()), Path("hfa.lock"))


@pytest.mark.parametrize("locked", [True, False])
def test_a_repo_not_in_the_lock_fails_naming_the_pin(locked: bool) -> None:
    with pytest.raises(CheckFailed) as info:
        locked_entry(LOCK, Path("x.lock"), RepoRef("org/other"), SelectOptions(), given=False, locked=locked)
    assert ("--locked" if locked else "--frozen") in info.value.message
    assert info.value.hint == "add it with `hfa pin org/other --lock x.lock`"


def test_locked_takes_the_entry_the_command_matches() -> None:
    for revision in (None, "main", COMMIT):
        ref = RepoRef("org/model", "model", revision)
        assert locked_entry(LOCK, Path("hfa.lock"), ref, SelectOptions(), given=True, locked=True) is ENTRY


def test_locked_fails_when_the_lock_would_change() -> None:
    ref = RepoRef("org/model", "model", "v2")
    other = SelectOptions(all=True)
    with pytest.raises(CheckFailed) as info:
        locked_entry(LOCK, Path("hfa.lock"), ref, other, given=True, locked=True)
    assert "revision v2 (locked: main); other selection options" in info.value.message
    assert info.value.hint == "to update the lock, run `hfa pin org/model@v2 --all`"


def test_frozen_takes_the_entry_as_it_is() -> None:
    ref = RepoRef("org/model", "model", "v2")
    assert locked_entry(LOCK, Path("hfa.lock"), ref, SelectOptions(all=True), given=True, locked=False) is ENTRY
