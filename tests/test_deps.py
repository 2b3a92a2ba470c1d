"""Dependencies (issue 15, part 1): `hfa info`, `hfa pin`, `hfa pull` and `hfa export` follow what a repo
requires (an adapter's base model), against `hfa serve` on loopback, through the CLI and the library."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from deps_world import adapter_config, build_deps_world
from helpers import hfa
from hypothesis import given, settings
from hypothesis import strategies as st

from hfa.config import Settings
from hfa.errors import ExitCode
from hfa.lock import lockfile
from hfa.pin import PinRequest, pin_many, remove_many, upgrade
from hfa.resolve.deps import DependencyError, find
from hfa.resolve.files import RemoteFile
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions
from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo

DEAD = "http://127.0.0.1:9"
REASON = "adapter_config.json base_model_name_or_path"


@pytest.fixture(scope="module")
def deps_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    served = tmp_path_factory.mktemp("deps-world") / "served"
    return served, build_deps_world(served)


@pytest.fixture(scope="module")
def deps_server(deps_world: tuple[Path, dict[str, str]]) -> Iterator[HubServer]:
    with HubServer(ServerConfig(cache_dir=deps_world[0])) as srv:
        yield srv


@pytest.fixture
def commits(deps_world: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return deps_world[1]


def run(url: str, *args: str, lock: Path, cache: Path | None = None):
    extra = ["--cache-dir", str(cache)] if cache else []
    return hfa(*args, "--endpoint", url, "--lock", str(lock), *extra)


def info(url: str, *args: str):
    return hfa("info", *args, "--endpoint", url)


# -- hfa info -------------------------------------------------------------------------------------


def test_info_shows_what_an_adapter_requires_and_why(deps_server: HubServer) -> None:
    result = info(deps_server.url, "org/adapter-v1")
    assert result.exit_code == 0, result.stderr
    assert f"requires: base/model@v1.0 ({REASON})" in result.stdout
    doc = json.loads(info(deps_server.url, "org/adapter", "--json").stdout)
    assert doc["requires"] == [{"repo": "base/model", "revision": None, "reason": REASON}]
    assert doc["base_models"] == []  # the card's base_model names the same repo: once, from the config


def test_info_shows_a_finetune_base_as_provenance_only(deps_server: HubServer) -> None:
    result = info(deps_server.url, "org/finetune")
    assert result.exit_code == 0, result.stderr
    assert "requires:" not in result.stdout
    assert "base model: base/model (finetune: provenance only, not fetched)" in result.stdout
    doc = json.loads(info(deps_server.url, "org/finetune", "--json").stdout)
    assert doc["requires"] == []
    assert doc["base_models"] == [
        {
            "repo": "base/model",
            "revision": None,
            "reason": "card base_model (relation: finetune)",
            "relation": "finetune",
        }
    ]


def test_info_card_adapter_st_and_modular_references(deps_server: HubServer) -> None:
    card = json.loads(info(deps_server.url, "org/card-adapter", "--json").stdout)
    assert card["requires"] == [
        {"repo": "base/model", "revision": None, "reason": "card base_model (relation: adapter)", "relation": "adapter"}
    ]
    st_doc = json.loads(info(deps_server.url, "org/st", "--json").stdout)
    assert st_doc["requires"] == [{"repo": "st/dense", "revision": None, "reason": "modules.json module path"}]
    modular = json.loads(info(deps_server.url, "org/modular", "--json").stdout)
    assert modular["requires"] == [  # its own unet is not a dependency
        {"repo": "base/model", "revision": None, "reason": "modular_model_index.json component vae"}
    ]


def test_info_notes_a_local_path_and_a_broken_config_without_failing(deps_server: HubServer) -> None:
    local = info(deps_server.url, "org/local")
    assert local.exit_code == 0, local.stderr
    assert "is a local path (./checkpoints/base): not fetched" in local.stderr
    assert "requires:" not in local.stdout
    bad = info(deps_server.url, "org/bad-json")
    assert bad.exit_code == 0, bad.stderr
    assert "adapter_config.json of org/bad-json is not valid JSON" in bad.stderr


# -- hfa pin --------------------------------------------------------------------------------------


def test_pin_pins_the_closure_with_required_by(deps_server: HubServer, commits: dict[str, str], tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(deps_server.url, "pin", "org/chain", lock=lock)
    assert result.exit_code == 0, result.stderr
    assert f"+ base/model@main → {commits['base/model@v2']}" in result.stdout
    assert f"  required by org/adapter ({REASON})" in result.stdout
    parsed = lockfile.read(lock)
    assert [r.repo_id for r in parsed.repos] == ["base/model", "org/adapter", "org/chain"]
    base, adapter, chain = parsed.repos
    assert chain.direct and not chain.required_by
    assert not adapter.direct and [(r.repo_id, r.reason) for r in adapter.required_by] == [("org/chain", REASON)]
    assert not base.direct and base.commit == commits["base/model@v2"]
    assert [f.path for f in base.files] == ["README.md", "config.json", "model.safetensors"]
    text = lock.read_text()
    assert "version = 2" in text
    assert f'required-by = [\n    {{id = "org/adapter", reason = "{REASON}"}},\n]' in text


def test_pin_uses_the_adapter_config_revision(deps_server: HubServer, commits: dict[str, str], tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(deps_server.url, "pin", "org/adapter-v1", "--json", lock=lock)
    assert result.exit_code == 0, result.stderr
    base = lockfile.read(lock).get("base/model")
    assert base is not None and base.revision == "v1.0" and base.commit == commits["base/model@v1"]
    doc = json.loads(result.stdout)
    [change] = [c for c in doc["changes"] if c["repo"] == "base/model"]
    assert change["required_by"] == [{"repo": "org/adapter-v1", "reason": REASON}]


def test_pin_no_deps_pins_just_the_repo(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(deps_server.url, "pin", "org/adapter", "--no-deps", lock=lock)
    assert result.exit_code == 0, result.stderr
    assert [r.repo_id for r in lockfile.read(lock).repos] == ["org/adapter"]


def test_finetune_base_is_not_pinned(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    assert run(deps_server.url, "pin", "org/finetune", "org/st", lock=lock).exit_code == 0
    assert [r.repo_id for r in lockfile.read(lock).repos] == ["org/finetune", "org/st", "st/dense"]


def test_remove_drops_dependencies_nothing_else_requires(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    assert run(deps_server.url, "pin", "org/adapter", "org/card-adapter", lock=lock).exit_code == 0
    base = lockfile.read(lock).get("base/model")
    assert base is not None and {r.repo_id for r in base.required_by} == {"org/adapter", "org/card-adapter"}
    refused = run(DEAD, "pin", "--remove", "base/model", lock=lock)
    assert refused.exit_code == ExitCode.USAGE
    assert "base/model is required by org/adapter" in refused.stderr and "hfa pin --remove" in refused.stderr
    one = run(DEAD, "pin", "--remove", "org/adapter", "--json", lock=lock)
    assert one.exit_code == 0, one.stderr
    assert json.loads(one.stdout)["removed"] == ["org/adapter"]  # org/card-adapter still requires the base
    base = lockfile.read(lock).get("base/model")
    assert base is not None and [r.repo_id for r in base.required_by] == ["org/card-adapter"]
    two = run(DEAD, "pin", "--remove", "org/card-adapter", lock=lock)
    assert two.exit_code == 0, two.stderr
    assert "org/card-adapter, base/model@main" in two.stderr
    assert lockfile.read(lock).repos == ()


def test_a_dependency_pinned_by_name_stays_when_its_requirer_goes(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    assert run(deps_server.url, "pin", "org/adapter", lock=lock).exit_code == 0
    assert run(deps_server.url, "pin", "base/model", lock=lock).exit_code == 0
    base = lockfile.read(lock).get("base/model")
    assert base is not None and base.direct and base.required_by  # both: `direct = true` beside required-by
    assert "direct = true" in lock.read_text()
    assert run(DEAD, "pin", "--remove", "org/adapter", lock=lock).exit_code == 0
    base = lockfile.read(lock).get("base/model")
    assert base is not None and base.direct and not base.required_by


def test_cycle_is_a_clear_error_and_the_lock_is_untouched(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    assert run(deps_server.url, "pin", "org/finetune", lock=lock).exit_code == 0
    before = lock.read_text()
    result = run(deps_server.url, "pin", "cycle/a", lock=lock)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "dependency cycle: cycle/a → cycle/b → cycle/a" in result.stderr
    assert "`hfa pin cycle/a --no-deps`" in result.stderr  # the root the user named, ready to paste
    assert lock.read_text() == before
    assert run(deps_server.url, "pin", "cycle/a", "--no-deps", lock=lock).exit_code == 0


def test_missing_dependency_names_who_requires_it(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(deps_server.url, "pin", "org/orphan", lock=lock)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert f"nobody/there, required by org/orphan ({REASON}): Model 'nobody/there' not found" in result.stderr
    assert "`hfa pin org/orphan --no-deps`" in result.stderr
    assert not lock.exists()


def test_bad_adapter_config_is_exit_1_never_70(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(deps_server.url, "pin", "org/bad-json", lock=lock)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "adapter_config.json of org/bad-json is not valid JSON" in result.stderr
    assert "--no-deps" in result.stderr and not lock.exists()


def test_two_revisions_of_one_dependency_conflict(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(deps_server.url, "pin", "org/adapter", "org/adapter-v1", lock=lock)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "requires base/model@v1.0" in result.stderr and "one revision" in result.stderr
    assert not lock.exists()
    # A base the user pinned by name wins over a requirement without a revision.
    ok = run(deps_server.url, "pin", "base/model@v1.0", "org/adapter", lock=lock)
    assert ok.exit_code == 0, ok.stderr
    base = lockfile.read(lock).get("base/model")
    assert base is not None and base.revision == "v1.0" and base.direct and base.required_by
    # Against the lock: a dependency locked at main for one adapter, wanted at v1.0 by another.
    other = tmp_path / "other.lock"
    assert run(deps_server.url, "pin", "org/adapter", lock=other).exit_code == 0
    before = other.read_text()
    clash = run(deps_server.url, "pin", "org/adapter-v1", lock=other)
    assert clash.exit_code == ExitCode.CHECK_FAILED
    assert "base/model@v1.0 is required, but the lock holds base/model@main (org/adapter requires it)" in clash.stderr
    assert other.read_text() == before


def test_upgrade_reresolves_the_closure(tmp_path: Path) -> None:
    served = tmp_path / "served"
    commits = build_deps_world(served)
    lock = tmp_path / "hfa.lock"
    with HubServer(ServerConfig(cache_dir=served)) as srv:
        assert run(srv.url, "pin", "org/adapter-v1", lock=lock).exit_code == 0
        # Upstream, the adapter moves to another base; the old base is then required by nothing.
        write_repo(served, "org/adapter-v1", {"adapter_config.json": adapter_config("st/dense")}, message="rebased")
        kept = run(srv.url, "pin", "--check", lock=lock)
        assert kept.exit_code == ExitCode.CHECK_FAILED and "~ adapter_config.json" in kept.stdout
        result = run(srv.url, "pin", "--upgrade", lock=lock)
        assert result.exit_code == 0, result.stderr
        assert "- base/model@v1.0 (nothing requires it any more)" in result.stdout
        assert [r.repo_id for r in lockfile.read(lock).repos] == ["org/adapter-v1", "st/dense"]
        # The base moves: pin again keeps the dependency where it is; --upgrade moves it.
        assert run(srv.url, "pin", "org/adapter", lock=lock).exit_code == 0
        base = lockfile.read(lock).get("base/model")
        assert base is not None and base.commit == commits["base/model@v2"]
        moved = write_repo(served, "base/model", {"config.json": b"{}"}, parent=commits["base/model@v2"])
        assert run(srv.url, "pin", "org/adapter", lock=lock).exit_code == 0
        assert lockfile.read(lock).get("base/model").commit == commits["base/model@v2"]  # type: ignore[union-attr]
        up = run(srv.url, "pin", "--upgrade", "org/adapter", lock=lock)
        assert up.exit_code == 0, up.stderr
        assert lockfile.read(lock).get("base/model").commit == moved  # type: ignore[union-attr]


def test_version_1_lock_is_read_and_rewritten_as_2_by_pin(deps_server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    v1 = (Path(__file__).parent / "golden" / "hfa-v1.lock").read_text()
    lock.write_text(v1)
    listed = run(DEAD, "pull", "--dry-run", "--offline", lock=lock, cache=tmp_path / "c")
    assert "lock version" not in listed.stderr and lock.read_text() == v1  # read, never rewritten by a pull
    assert run(DEAD, "pin", lock=lock).exit_code == 0
    assert lock.read_text() == v1.replace("version = 1", "version = 2")


# -- hfa pull and hfa export -------------------------------------------------------------------------


def test_ad_hoc_pull_fetches_the_closure(deps_server: HubServer, commits: dict[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = hfa("pull", "org/chain", "--endpoint", deps_server.url, "--cache-dir", str(cache), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    deps = {d["repo"]: d for d in doc["dependencies"]}
    assert set(deps) == {"org/adapter", "base/model"}
    assert deps["base/model"]["required_by"] == [{"repo": "org/adapter", "reason": REASON}]
    assert deps["base/model"]["commit"] == commits["base/model@v2"]
    assert (cache / "models--base--model" / "snapshots" / commits["base/model@v2"] / "model.safetensors").is_file()
    human = hfa("pull", "org/adapter", "--endpoint", deps_server.url, "--cache-dir", str(cache))
    assert human.exit_code == 0, human.stderr
    assert f"base/model → {commits['base/model@v2'][:12]}" in human.stderr and "required by org/adapter" in human.stderr


def test_ad_hoc_pull_no_deps_and_dry_run(deps_server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dry = hfa("pull", "org/adapter", "--dry-run", "--endpoint", deps_server.url, "--cache-dir", str(cache))
    assert dry.exit_code == 0, dry.stderr
    assert "of base/model at" in dry.stdout and "required by org/adapter" in dry.stdout
    assert not cache.exists() or not (cache / "models--base--model" / "snapshots").exists()
    only = hfa("pull", "org/adapter", "--no-deps", "--endpoint", deps_server.url, "--cache-dir", str(cache), "--json")
    assert only.exit_code == 0, only.stderr
    assert json.loads(only.stdout)["dependencies"] == []
    assert not (cache / "models--base--model").exists()


def test_ad_hoc_pull_of_a_cycle_fails_cleanly(deps_server: HubServer, tmp_path: Path) -> None:
    result = hfa("pull", "cycle/b", "--endpoint", deps_server.url, "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "dependency cycle: cycle/b → cycle/a → cycle/b" in result.stderr
    # the hint names the command that was run (it used to say "pin cycle/a" to a pull), and it works
    assert "`hfa pull cycle/b --no-deps`" in result.stderr
    again = hfa("pull", "cycle/b", "--no-deps", "--endpoint", deps_server.url, "--cache-dir", str(tmp_path / "c"))
    assert again.exit_code == 0, again.stderr


def test_locked_pull_fetches_the_closure_and_no_deps_skips_it(deps_server: HubServer, tmp_path: Path) -> None:
    lock, cache = tmp_path / "hfa.lock", tmp_path / "cache"
    assert run(deps_server.url, "pin", "org/chain", "org/finetune", lock=lock).exit_code == 0
    only = run(deps_server.url, "pull", "--no-deps", "--json", lock=lock, cache=cache)
    assert only.exit_code == 0, only.stderr
    assert [r["repo"] for r in json.loads(only.stdout)["repos"]] == ["org/chain", "org/finetune"]
    one = run(deps_server.url, "pull", "org/chain", "--frozen", "--json", lock=lock, cache=cache)
    assert one.exit_code == 0, one.stderr
    assert [r["repo"] for r in json.loads(one.stdout)["repos"]] == ["org/chain", "base/model", "org/adapter"]
    lone = run(deps_server.url, "pull", "org/chain", "--locked", "--no-deps", "--json", lock=lock, cache=cache)
    assert [r["repo"] for r in json.loads(lone.stdout)["repos"]] == ["org/chain"]
    everything = run(DEAD, "pull", "--offline", lock=lock, cache=cache)
    assert everything.exit_code == 0, everything.stderr  # the closure is all there now


def test_export_lock_bundles_the_closure(deps_server: HubServer, commits: dict[str, str], tmp_path: Path) -> None:
    lock, cache, out = tmp_path / "hfa.lock", tmp_path / "cache", tmp_path / "b.tar"
    assert run(deps_server.url, "pin", "org/adapter", lock=lock).exit_code == 0
    assert run(deps_server.url, "pull", lock=lock, cache=cache).exit_code == 0
    result = hfa("export", "--lock", str(lock), "-o", str(out), "--cache-dir", str(cache))
    assert result.exit_code == 0, result.stderr
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile("hfa-bundle/manifest.json").read())  # type: ignore[union-attr]
    carried = lockfile.loads(manifest["lock"])
    assert [r.repo_id for r in carried.repos] == ["base/model", "org/adapter"]
    imported = tmp_path / "offline-cache"
    assert hfa("import", str(out), "--cache-dir", str(imported)).exit_code == 0
    snap = imported / "models--base--model" / "snapshots" / commits["base/model@v2"]
    assert (snap / "model.safetensors").is_file()


# -- the library ------------------------------------------------------------------------------------


@pytest.fixture
def online(deps_server: HubServer, tmp_path: Path) -> Settings:
    return Settings.resolve(cache_dir=tmp_path / "cache", endpoint=deps_server.url)


def test_library_pin_remove_and_upgrade(online: Settings, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = pin_many(online, lock, [PinRequest(RepoRef("org/adapter"), SelectOptions())])
    assert [c.repo for c in result.changes] == ["org/adapter", "base/model"]
    assert [r.repo_id for r in result.required_by["base/model"]] == ["org/adapter"]
    assert upgrade(online, lock, [], deps=False).changes[0].moved is False
    gone = remove_many(lock, [RepoRef("org/adapter")])
    assert gone.removed == ["org/adapter", "base/model@main"] and lockfile.read(lock).repos == ()


def _file(path: str, size: int = 10) -> RemoteFile:
    return RemoteFile(path, size, "0" * 40)


def test_find_ignores_local_paths_and_self_references() -> None:
    for value in ("./base", "../base", "/abs/base", "~/base", "C:\\models\\base", "a/b/c", "not a repo!"):
        doc = json.dumps({"base_model_name_or_path": value}).encode()
        deps = find("org/x", {"adapter_config.json": _file("adapter_config.json")}, {}, lambda _p, d=doc: d)
        assert deps.requires == [] and len(deps.notes) == 1
    own = json.dumps({"base_model_name_or_path": "org/x"}).encode()
    assert find("org/x", {"adapter_config.json": _file("adapter_config.json")}, {}, lambda _p: own).requires == []


@pytest.mark.parametrize(
    "revision",
    ["../../../../etc/passwd", "/abs", "v1\n", "v1\x1b[2J", "v1\u202e", "a b", "x" * 5000, ["v1"], 3, "v1..v2"],
)
def test_a_revision_that_cannot_be_one_is_an_error_not_the_default_branch(revision: object) -> None:
    # It was dropped silently (the base pinned at its default branch: another base than the adapter's),
    # or printed raw in "Revision '…' not found" (a newline, a terminal escape from a file)
    doc = json.dumps({"base_model_name_or_path": "base/model", "revision": revision}).encode()
    with pytest.raises(DependencyError, match="not a branch, tag or commit") as err:
        find("org/x", {"adapter_config.json": _file("adapter_config.json")}, {}, lambda _p: doc)
    assert err.value.message.isprintable() and len(err.value.message) < 300
    assert "--no-deps" in (err.value.hint or "")
    for fine in (None, "", "v1.0", "refs/pr/1", "a" * 40, "release/2024-01"):
        doc = json.dumps({"base_model_name_or_path": "base/model", "revision": fine}).encode()
        found = find("org/x", {"adapter_config.json": _file("adapter_config.json")}, {}, lambda _p, d=doc: d)
        assert [(r.repo_id, r.revision) for r in found.requires] == [("base/model", fine or None)]


def test_find_bounds_the_config_it_reads() -> None:
    files = {"adapter_config.json": _file("adapter_config.json", 2 * 1024 * 1024)}
    with pytest.raises(DependencyError, match="more than"):
        find("org/x", files, {}, lambda _p: b"never read")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["adapter_config.json", "modules.json", "modular_model_index.json"]),
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=30),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=30), c, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    st.dictionaries(
        st.sampled_from(["base_model", "base_model_relation"]),
        st.none() | st.text(max_size=30) | st.lists(st.text(max_size=30), max_size=3),
        max_size=2,
    ),
)
def test_find_never_raises_anything_but_a_dependency_error(name: str, data: bytes, card: dict) -> None:
    try:
        deps = find("org/x", {name: _file(name, len(data))}, card, lambda _p: data)
    except DependencyError as exc:
        assert name in exc.message
    else:
        for req in deps.requires + deps.provenance:
            RepoRef.parse(req.repo_id)  # every requirement is a valid repo id


# -- policy on the closure ------------------------------------------------------------------------


def test_a_dependency_the_policy_refuses_is_named_with_who_requires_it(deps_server: HubServer, tmp_path: Path) -> None:
    lock, cache = tmp_path / "hfa.lock", tmp_path / "cache"
    (tmp_path / "hfa.toml").write_text('[policy.licenses]\ndeny = ["apache-2.0"]\n')
    result = run(deps_server.url, "pin", "org/adapter", lock=lock)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert not lock.exists()
    assert (
        f"base/model: licence 'apache-2.0' is denied by policy.licenses.deny (required by org/adapter: {REASON})"
        in (result.stderr)
    )
    assert "or `hfa pin org/adapter --no-deps`" in result.stderr
    doc = json.loads(run(deps_server.url, "pin", "org/adapter", "--json", lock=lock).stdout)
    assert doc["error"]["details"]["violations"][0]["required_by"] == [{"repo": "org/adapter", "reason": REASON}]
    # the hint works when pasted; a pull from a lock pinned before the policy names the requirer too
    assert run(deps_server.url, "pin", "org/adapter", "--no-deps", lock=lock).exit_code == 0
    (tmp_path / "hfa.toml").unlink()
    assert run(deps_server.url, "pin", "org/adapter", lock=lock).exit_code == 0
    (tmp_path / "hfa.toml").write_text('[policy.licenses]\ndeny = ["apache-2.0"]\n')
    pulled = run(deps_server.url, "pull", lock=lock, cache=cache)
    assert pulled.exit_code == ExitCode.CHECK_FAILED, pulled.stderr
    assert f"(required by org/adapter: {REASON}) (nothing was fetched)" in pulled.stderr
    assert not cache.exists() or not any(cache.rglob("blobs/*"))
    assert run(deps_server.url, "pull", "--no-deps", lock=lock, cache=cache).exit_code == 0
