"""hfa.pin as a library: pin, pin_many, remove, upgrade, check and normalise a lock, no CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TOKEN, World

from hfa.config import Settings
from hfa.errors import RepoNotFound, UsageError
from hfa.lock import lockfile
from hfa.lock.lockfile import LockError
from hfa.pin import PinRequest, check, normalise, pin, pin_many, remove, upgrade
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions
from hfa.server import HubServer
from hfa.testing import write_repo

MODEL = RepoRef("org/model")
DATA = RepoRef("org/data", "dataset")


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "hfa.lock"


@pytest.fixture
def fresh(fresh_server: HubServer, cache: Path) -> Settings:
    return Settings.resolve(cache_dir=cache, endpoint=fresh_server.url)


def move_main(world: World, extra: dict[str, bytes]) -> str:
    """A new commit on org/model's main: v2's files plus ``extra``."""
    files = {**world.contents["org/model@v2"], **extra}
    return write_repo(world.cache_dir, "org/model", files, parent=world.commits["org/model@v2"], message="moved")


def test_pin_writes_an_entry_with_hashes(online: Settings, world: World, lock_path: Path) -> None:
    result = pin(online, lock_path, MODEL, SelectOptions())
    assert result.written and result.lock_path == lock_path
    [change] = result.changes
    assert change.old_commit is None and change.new_commit == world.commits["org/model@v2"]
    assert change.added == ["README.md", "config.json", "model.safetensors", "sub/dir/notes.txt"]
    entry = lockfile.read(lock_path).get("org/model")
    assert entry is not None and entry.revision == "main" and entry.commit == change.new_commit
    algos = {f.path: f.algo for f in entry.files}
    assert algos["model.safetensors"] == "sha256" and algos["config.json"] == "git-sha1"
    assert {f.path: f.size for f in entry.files}["config.json"] == len(world.contents["org/model@v2"]["config.json"])


def test_pin_again_changes_nothing_and_does_not_rewrite(online: Settings, lock_path: Path) -> None:
    pin(online, lock_path, MODEL, SelectOptions())
    before = lock_path.stat().st_mtime_ns
    again = pin(online, lock_path, MODEL, SelectOptions())
    assert again.written is False
    assert not again.changes[0].moved
    assert lock_path.stat().st_mtime_ns == before


def test_pin_records_the_selection(online: Settings, lock_path: Path) -> None:
    pin(online, lock_path, MODEL, SelectOptions(config_only=True))
    entry = lockfile.read(lock_path).get("org/model")
    assert entry is not None and entry.selection == SelectOptions(config_only=True)
    assert [f.path for f in entry.files] == ["README.md", "config.json"]
    moved = pin(online, lock_path, MODEL, SelectOptions())
    assert moved.changes[0].selection_changed and moved.changes[0].moved
    assert "model.safetensors" in moved.changes[0].added


def test_pin_a_tag_keeps_the_tag_as_revision(online: Settings, world: World, lock_path: Path) -> None:
    pin(online, lock_path, RepoRef("org/model", revision="v1.0"), SelectOptions())
    entry = lockfile.read(lock_path).get("org/model")
    assert entry is not None and (entry.revision, entry.commit) == ("v1.0", world.commits["org/model@v1"])


def test_pin_many_is_all_or_nothing_and_names_the_repo(online: Settings, lock_path: Path) -> None:
    pin(online, lock_path, MODEL, SelectOptions())
    before = lock_path.read_bytes()
    requests = [PinRequest(DATA, SelectOptions()), PinRequest(RepoRef("org/nothing"), SelectOptions())]
    with pytest.raises(RepoNotFound) as exc:
        pin_many(online, lock_path, requests)
    assert "org/nothing" in exc.value.message and "left unchanged" in exc.value.message
    assert lock_path.read_bytes() == before
    ok = pin_many(online, lock_path, [PinRequest(DATA, SelectOptions())])
    assert ok.written
    assert [(r.repo_id, r.repo_type) for r in lockfile.read(lock_path).repos] == [
        ("org/data", "dataset"),
        ("org/model", "model"),
    ]


def test_pin_many_fit_applies_quant_only_where_there_is_gguf(online: Settings, lock_path: Path) -> None:
    quant = SelectOptions(quant="Q4_K_M", all=True)
    pin_many(online, lock_path, [PinRequest(MODEL, quant, fit=True)])
    entry = lockfile.read(lock_path).get("org/model")
    assert entry is not None and entry.selection.quant is None and entry.selection.all


def test_pin_needs_metadata_only_so_gated_pins_and_private_looks_missing(online: Settings, lock_path: Path) -> None:
    with pytest.raises(RepoNotFound) as exc:
        pin(online, lock_path, RepoRef("org/private"), SelectOptions())
    assert exc.value.repo_id == "org/private"
    assert not lock_path.exists()
    # As on the Hub, a gated repo's file list is public: pinning it needs no token (pulling does).
    pin(online, lock_path, RepoRef("org/gated"), SelectOptions())
    entry = lockfile.read(lock_path).get("org/gated")
    assert entry is not None and [f.path for f in entry.files] == ["README.md", "model.safetensors"]


def test_pin_with_a_token_never_writes_it(server: HubServer, cache: Path, lock_path: Path) -> None:
    settings = Settings.resolve(cache_dir=cache, endpoint=server.url, token=TOKEN)
    pin(settings, lock_path, RepoRef("org/private"), SelectOptions())
    text = lock_path.read_text()
    assert "org/private" in text and TOKEN not in text


def test_remove_drops_one_entry_and_refuses_an_unknown_one(online: Settings, lock_path: Path) -> None:
    pin_many(online, lock_path, [PinRequest(MODEL, SelectOptions()), PinRequest(DATA, SelectOptions())])
    result = remove(lock_path, DATA)
    assert result.removed == ["datasets/org/data"] and result.written
    assert [r.repo_id for r in lockfile.read(lock_path).repos] == ["org/model"]
    with pytest.raises(UsageError) as exc:
        remove(lock_path, DATA)
    assert "is not in" in exc.value.message


def test_normalise_restores_the_canonical_bytes(online: Settings, lock_path: Path) -> None:
    pin_many(online, lock_path, [PinRequest(MODEL, SelectOptions()), PinRequest(DATA, SelectOptions())])
    good = lock_path.read_text()
    head, first, second = good.split("[[repo]]")
    lock_path.write_text(head + "[[repo]]" + second.rstrip("\n") + "\n\n[[repo]]" + first.rstrip("\n") + "\n")
    assert normalise(lock_path).written
    assert lock_path.read_text() == good
    assert normalise(lock_path).written is False


def test_normalise_and_remove_need_an_existing_lock(lock_path: Path) -> None:
    with pytest.raises(LockError) as exc:
        normalise(lock_path)
    assert "No lock file" in exc.value.message
    with pytest.raises(LockError):
        remove(lock_path, MODEL)
    assert not lock_path.exists()


def test_check_is_current_then_reports_drift_and_writes_nothing(
    fresh: Settings, fresh_world: World, lock_path: Path
) -> None:
    pin(fresh, lock_path, MODEL, SelectOptions())
    current = check(fresh, lock_path, [])
    assert current.current and current.checked == 1
    before = lock_path.read_bytes()
    new = move_main(fresh_world, {"config.json": b'{"moved": true}', "tokenizer.json": b"{}"})
    drift = check(fresh, lock_path, [])
    assert not drift.current
    [d] = drift.drift
    assert (d.old_commit, d.new_commit) == (fresh_world.commits["org/model@v2"], new)
    assert d.added == ["tokenizer.json"] and [c[0] for c in d.changed] == ["config.json"]
    assert lock_path.read_bytes() == before


def test_check_reports_a_vanished_repo_as_drift_with_an_error(
    fresh: Settings, fresh_world: World, lock_path: Path
) -> None:
    import shutil

    pin_many(
        fresh, lock_path, [PinRequest(MODEL, SelectOptions()), PinRequest(RepoRef("other/thing"), SelectOptions())]
    )
    shutil.rmtree(fresh_world.cache_dir / "models--other--thing")
    result = check(fresh, lock_path, [])
    assert not result.current and result.checked == 2
    moved = [d for d in result.drift if d.moved]
    assert [d.repo for d in moved] == ["other/thing"]
    assert moved[0].new_commit is None and moved[0].error and "not found" in moved[0].error


def test_check_and_upgrade_refuse_a_repo_not_in_the_lock(online: Settings, lock_path: Path) -> None:
    pin(online, lock_path, MODEL, SelectOptions())
    for call in (check, upgrade):
        with pytest.raises(UsageError) as exc:
            call(online, lock_path, [DATA])
        assert "is not in" in exc.value.message and exc.value.hint and "hfa pin datasets/org/data" in exc.value.hint


def test_upgrade_moves_the_pin_and_keeps_the_selection(fresh: Settings, fresh_world: World, lock_path: Path) -> None:
    pin(fresh, lock_path, MODEL, SelectOptions(config_only=True))
    new = move_main(fresh_world, {"config.json": b'{"upgraded": 1}'})
    result = upgrade(fresh, lock_path, [])
    assert result.written
    [d] = result.changes
    assert d.new_commit == new and [c[0] for c in d.changed] == ["config.json"]
    entry = lockfile.read(lock_path).get("org/model")
    assert entry is not None and entry.commit == new and entry.selection == SelectOptions(config_only=True)
    assert check(fresh, lock_path, []).current


def test_upgrade_only_the_named_repo(fresh: Settings, fresh_world: World, lock_path: Path) -> None:
    pin_many(fresh, lock_path, [PinRequest(MODEL, SelectOptions()), PinRequest(DATA, SelectOptions())])
    data_before = lockfile.read(lock_path).get("org/data", "dataset")
    move_main(fresh_world, {"new.txt": b"x"})
    result = upgrade(fresh, lock_path, [MODEL])
    assert [d.repo for d in result.changes] == ["org/model"]
    assert lockfile.read(lock_path).get("org/data", "dataset") == data_before
