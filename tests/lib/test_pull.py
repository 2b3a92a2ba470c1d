"""hfa.pull as a library: `pull`, `plan` and `pull_locked` against `hfa serve`, no CLI."""

from __future__ import annotations

import os
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TOKEN, World

from hfa.cache.layout import RepoDir
from hfa.config import Settings
from hfa.errors import CheckFailed, GatedRepo, LockMismatch, NetworkError, RepoNotFound, RevisionNotFound, UsageError
from hfa.lock.lockfile import LockedFile, LockedRepo
from hfa.pull import MissingFiles, UnsafeContent, plan, pull, pull_locked
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import resolve_offline
from hfa.resolve.selection import SelectOptions
from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo

MODEL = RepoRef("org/model")
DEFAULT_FILES = {"README.md", "config.json", "model.safetensors", "sub/dir/notes.txt"}


def repo_dir(cache: Path, repo_id: str = "org/model", repo_type: str = "model") -> RepoDir:
    return RepoDir(cache, repo_type, repo_id)


# -- pull, online --------------------------------------------------------------------------------


def test_pull_fetches_the_default_selection_verified(online: Settings, world: World) -> None:
    result = pull(online, MODEL, SelectOptions())
    v2 = world.commits["org/model@v2"]
    assert result.commit == v2 and not result.dry_run and not result.offline
    assert {f.path for f in result.files} == DEFAULT_FILES
    assert {f.status for f in result.files} == {"downloaded"}
    assert (
        result.bytes_downloaded
        == result.total_bytes
        == sum(len(world.contents["org/model@v2"][p]) for p in DEFAULT_FILES)
    )
    assert {d.path: "safetensors" in d.reason for d in result.skipped} == {"big.bin": True}
    assert result.snapshot == repo_dir(online.cache_dir).snapshot(v2)
    for path in DEFAULT_FILES:
        link = result.snapshot / path
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        assert link.read_bytes() == world.contents["org/model@v2"][path]
    assert repo_dir(online.cache_dir).read_ref("main") == v2
    assert result.requests >= 1
    by_path = {f.path: f for f in result.files}
    assert by_path["model.safetensors"].hash_algo == "sha256" and by_path["config.json"].hash_algo == "git-sha1"


def test_pull_records_the_full_file_list_for_offline_use(online: Settings, world: World) -> None:
    pull(online, MODEL, SelectOptions())
    resolved, complete = resolve_offline(online.cache_dir, MODEL)
    assert complete is True
    assert resolved.commit == world.commits["org/model@v2"]
    assert set(resolved.files) == set(world.contents["org/model@v2"])  # big.bin too, though not fetched


def test_second_pull_downloads_nothing(online: Settings) -> None:
    pull(online, MODEL, SelectOptions())
    again = pull(online, MODEL, SelectOptions())
    assert {f.status for f in again.files} == {"cached"}
    assert again.bytes_downloaded == 0


def test_dry_run_reports_and_writes_nothing(online: Settings) -> None:
    result = pull(online, MODEL, SelectOptions(), dry_run=True)
    assert result.dry_run
    assert {f.status for f in result.files} == {"would-download"}
    assert {f.path for f in result.files} == DEFAULT_FILES
    assert not repo_dir(online.cache_dir).snapshots.exists()
    assert not list(online.cache_dir.glob("*/blobs/*"))


def test_tag_writes_its_ref_and_a_commit_writes_none(online: Settings, world: World) -> None:
    v1 = world.commits["org/model@v1"]
    result = pull(online, RepoRef("org/model", revision="v1.0"), SelectOptions(config_only=True))
    assert result.commit == v1
    assert repo_dir(online.cache_dir).read_ref("v1.0") == v1
    assert (result.snapshot / "config.json").read_bytes() == world.contents["org/model@v1"]["config.json"]
    v2 = world.commits["org/model@v2"]
    by_commit = pull(online, RepoRef("org/model", revision=v2), SelectOptions(config_only=True))
    assert by_commit.commit == v2
    assert repo_dir(online.cache_dir).list_refs() == {"v1.0": v1}


def test_selection_options_decide_the_files(online: Settings) -> None:
    config_only = pull(online, MODEL, SelectOptions(config_only=True))
    assert {f.path for f in config_only.files} == {"README.md", "config.json"}
    chosen = pull(online, MODEL, SelectOptions(include=("big.bin",), exclude=("*.md",)))
    assert {f.path for f in chosen.files} == DEFAULT_FILES - {"README.md"} | {"big.bin"}
    assert "README.md" in {d.path for d in chosen.skipped}


def test_dataset_takes_every_file(online: Settings, world: World) -> None:
    result = pull(online, RepoRef("org/data", "dataset"), SelectOptions())
    assert {f.path for f in result.files} == {"README.md", "data/train.csv"}
    assert (result.snapshot / "data/train.csv").read_bytes() == b"a,b\n1,2\n"
    assert result.snapshot.parent.parent.name == "datasets--org--data"


def test_missing_repo_raises_repo_not_found_with_a_hint_to_the_dataset(online: Settings) -> None:
    with pytest.raises(RepoNotFound) as exc:
        pull(online, RepoRef("org/nothing"), SelectOptions())
    assert exc.value.repo_id == "org/nothing"
    with pytest.raises(RepoNotFound) as exc:
        pull(online, RepoRef("org/data"), SelectOptions())
    assert exc.value.hint is not None and "datasets/org/data" in exc.value.hint
    assert not list(online.cache_dir.glob("*/snapshots/*"))


def test_missing_revision_raises_revision_not_found(online: Settings) -> None:
    with pytest.raises(RevisionNotFound) as exc:
        pull(online, RepoRef("org/model", revision="nope"), SelectOptions())
    assert (exc.value.repo_id, exc.value.revision) == ("org/model", "nope")


def test_private_looks_missing_and_gated_needs_a_token(server: HubServer, online: Settings) -> None:
    with pytest.raises(RepoNotFound):
        pull(online, RepoRef("org/private"), SelectOptions())
    with pytest.raises(GatedRepo) as exc:
        pull(online, RepoRef("org/gated"), SelectOptions())
    assert exc.value.token_sent is False and exc.value.repo_id == "org/gated"
    with_token = Settings.resolve(cache_dir=online.cache_dir, endpoint=server.url, token=TOKEN)
    assert [f.path for f in pull(with_token, RepoRef("org/private"), SelectOptions()).files] == ["config.json"]
    assert {f.status for f in pull(with_token, RepoRef("org/gated"), SelectOptions()).files} == {"downloaded"}


def test_dead_endpoint_is_a_network_error(cache: Path) -> None:
    settings = Settings.resolve(cache_dir=cache, endpoint="http://127.0.0.1:9")
    with pytest.raises(NetworkError):
        pull(settings, MODEL, SelectOptions())


def _evil_pickle() -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    return pickle.dumps(Evil(), protocol=2)  # never loaded: only scanned


def test_unsafe_pickle_is_refused_unless_allowed(tmp_path: Path) -> None:
    served = tmp_path / "served"
    write_repo(served, "bad/pickle", {"config.json": b"{}", "pytorch_model.bin": _evil_pickle()})
    with HubServer(ServerConfig(cache_dir=served)) as srv:
        settings = Settings.resolve(cache_dir=tmp_path / "cache", endpoint=srv.url)
        with pytest.raises(UnsafeContent) as exc:
            pull(settings, RepoRef("bad/pickle"), SelectOptions())
        assert "pytorch_model.bin" in exc.value.message
        assert not list((tmp_path / "cache").glob("*/snapshots/*/pytorch_model.bin"))
        allowed = pull(settings, RepoRef("bad/pickle"), SelectOptions(), allow_unsafe=True)
    assert (allowed.snapshot / "pytorch_model.bin").is_file()
    assert any(f.path == "pytorch_model.bin" for f in allowed.findings)


class Recorder:
    def __init__(self) -> None:
        self.started: tuple[int, int] | None = None
        self.bytes = 0
        self.done: list[str] = []

    def start(self, total_bytes: int, total_files: int) -> None:
        self.started = (total_bytes, total_files)

    def advance(self, nbytes: int) -> None:
        self.bytes += nbytes

    def file_done(self, outcome) -> None:
        self.done.append(outcome.path)


def test_progress_hears_every_byte(online: Settings) -> None:
    progress = Recorder()
    result = pull(online, MODEL, SelectOptions(), progress=progress)
    assert progress.started is not None and progress.started[1] == len(progress.done)
    assert progress.bytes == result.bytes_downloaded == progress.started[0]


# -- offline ---------------------------------------------------------------------------------------


def test_offline_pull_answers_from_the_cache(online: Settings, offline: Settings, world: World) -> None:
    pull(online, MODEL, SelectOptions())
    result = pull(offline, MODEL, SelectOptions())
    assert result.offline and result.commit == world.commits["org/model@v2"]
    assert {f.path for f in result.files} == DEFAULT_FILES
    assert {f.status for f in result.files} == {"cached"}
    assert result.requests == 0 and result.warnings == []


def test_offline_names_exactly_the_missing_files(online: Settings, offline: Settings) -> None:
    pull(online, MODEL, SelectOptions(config_only=True))
    with pytest.raises(MissingFiles) as exc:
        pull(offline, MODEL, SelectOptions())
    assert sorted(exc.value.missing) == ["model.safetensors", "sub/dir/notes.txt"]
    assert exc.value.hint is not None and "hfa pull org/model" in exc.value.hint


def test_offline_repo_not_in_cache_hint_keeps_the_selection(offline: Settings) -> None:
    with pytest.raises(CheckFailed) as exc:
        pull(offline, MODEL, SelectOptions(config_only=True))
    assert "is not in the cache" in exc.value.message
    assert exc.value.hint is not None and "hfa pull org/model --config-only" in exc.value.hint


def test_offline_snapshot_without_a_record_warns_that_the_list_may_be_partial(
    online: Settings, offline: Settings
) -> None:
    result = pull(online, MODEL, SelectOptions(config_only=True))
    for record in online.cache_dir.glob("*/.hfa/trees/*.json"):
        record.unlink()
    again = pull(offline, MODEL, SelectOptions(config_only=True))
    assert again.commit == result.commit
    assert any("full file list" in w for w in again.warnings)


# -- plan ------------------------------------------------------------------------------------------


def test_plan_selects_without_fetching(online: Settings, world: World) -> None:
    resolved, selection, warnings, options = plan(online, MODEL, SelectOptions())
    assert resolved.commit == world.commits["org/model@v2"]
    assert set(selection.selected) == DEFAULT_FILES
    assert warnings == [] and options == SelectOptions()
    assert not online.cache_dir.exists() or not list(online.cache_dir.glob("*/snapshots/*"))


def test_plan_fit_options_drops_quant_for_repos_without_gguf(online: Settings) -> None:
    asked = SelectOptions(quant="Q4_K_M")
    *_, fitted = plan(online, MODEL, asked, fit_options=True)
    assert fitted.quant is None
    with pytest.raises(UsageError) as exc:  # asked of this one repo, --quant must fit
        plan(online, MODEL, asked)
    assert "needs GGUF files" in exc.value.message


# -- pull_locked -----------------------------------------------------------------------------------


def locked_entry(world: World, paths: tuple[str, ...] = ("config.json", "model.safetensors")) -> LockedRepo:
    from hfa.cache.hashing import git_sha1

    files = world.contents["org/model@v2"]
    locked = []
    for p in paths:
        data = files[p]
        if p.endswith(".safetensors"):
            import hashlib

            locked.append(LockedFile(p, len(data), "sha256", hashlib.sha256(data).hexdigest()))
        else:
            locked.append(LockedFile(p, len(data), "git-sha1", git_sha1(data)))
    return LockedRepo("org/model", "model", "main", world.commits["org/model@v2"], SelectOptions(), tuple(locked))


def test_pull_locked_fetches_exactly_the_lock(online: Settings, world: World) -> None:
    entry = locked_entry(world)
    result = pull_locked(online, [entry])
    [repo] = result.results
    assert repo.commit == entry.commit
    assert {f.path: f.status for f in repo.files} == {"config.json": "downloaded", "model.safetensors": "downloaded"}
    assert {f.reason for f in repo.files} == {"locked"}
    snap = repo_dir(online.cache_dir).snapshot(entry.commit)
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "model.safetensors"]
    assert repo_dir(online.cache_dir).read_ref("main") == entry.commit
    assert result.requests >= 1


def test_pull_locked_warm_makes_no_request_even_with_a_dead_endpoint(online: Settings, world: World) -> None:
    entry = locked_entry(world)
    pull_locked(online, [entry])
    dead = Settings.resolve(cache_dir=online.cache_dir, endpoint="http://127.0.0.1:9")
    again = pull_locked(dead, [entry])
    assert again.requests == 0
    assert {f.status for f in again.results[0].files} == {"cached"}


def test_pull_locked_relinks_blobs_already_present_without_network(online: Settings, world: World) -> None:
    entry = locked_entry(world)
    pull_locked(online, [entry])
    snap = repo_dir(online.cache_dir).snapshot(entry.commit)
    (snap / "config.json").unlink()
    dead = Settings.resolve(cache_dir=online.cache_dir, endpoint="http://127.0.0.1:9", offline=True)
    again = pull_locked(dead, [entry])
    assert again.requests == 0
    assert (snap / "config.json").read_bytes() == world.contents["org/model@v2"]["config.json"]


def test_pull_locked_dry_run_and_offline_missing(online: Settings, offline: Settings, world: World) -> None:
    entry = locked_entry(world)
    dry = pull_locked(online, [entry], dry_run=True)
    assert {f.status for f in dry.results[0].files} == {"would-download"}
    assert not repo_dir(online.cache_dir).snapshots.exists()
    with pytest.raises(MissingFiles) as exc:
        pull_locked(offline, [entry], retry_command="hfa pull --lock x.lock")
    assert sorted(exc.value.missing) == ["config.json", "model.safetensors"]
    assert exc.value.hint is not None and "hfa pull --lock x.lock" in exc.value.hint


def test_pull_locked_refuses_a_server_that_disagrees_with_the_lock(online: Settings, world: World) -> None:
    from hfa.cache.hashing import git_sha1

    entry = locked_entry(world, ("config.json",))
    wrong = replace(entry.files[0], digest=git_sha1(b"not what the server has"))
    with pytest.raises(LockMismatch) as exc:
        pull_locked(online, [replace(entry, files=(wrong,))])
    assert (exc.value.repo, exc.value.path) == ("org/model", "config.json")
    assert exc.value.locked == wrong.hash
    assert not list(online.cache_dir.glob("*/snapshots/*/config.json"))
