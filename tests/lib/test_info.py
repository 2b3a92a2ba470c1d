"""hfa.info as a library: a repo's commit, card facts, files with kinds, flags and selection."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import World

from hfa.config import Settings
from hfa.errors import CheckFailed, RepoNotFound, RevisionNotFound
from hfa.info import info
from hfa.pull import pull
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions
from hfa.server import HubServer, ServerConfig
from hfa.testing import model_card, write_repo

MODEL = RepoRef("org/model")


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """Repos the session world lacks: GGUF quantisations, remote code, pickles, broken cards and configs."""
    cache = tmp_path_factory.mktemp("info-odd") / "served"
    write_repo(
        cache,
        "org/gguf",
        {
            "README.md": model_card(license="apache-2.0"),
            "m-Q8_0.gguf": b"GGUF" + bytes(40),
            "m-Q4_K_M.gguf": b"GGUF" + bytes(30),
            "mmproj-f16.gguf": b"GGUF" + bytes(20),
        },
    )
    write_repo(
        cache,
        "org/code",
        {
            "config.json": json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel"}}),
            "modeling_x.py": "class XModel: ...\n",
            "pytorch_model.bin": pickle.dumps({"w": [1, 2, 3]}),
        },
    )
    write_repo(cache, "org/broken", {"README.md": "---\nlicense: [unclosed\n---\n", "config.json": "{not json"})
    write_repo(cache, "org/nocard", {"config.json": "{}"})
    with HubServer(ServerConfig(cache_dir=cache)) as srv:
        yield srv


def at(server: HubServer, cache: Path) -> Settings:
    return Settings.resolve(cache_dir=cache, endpoint=server.url)


def test_info_lists_every_file_with_kind_flags_and_selection(online: Settings, world: World) -> None:
    result = info(online, MODEL, SelectOptions())
    assert result.commit == world.commits["org/model@v2"]
    files = {f.path: f for f in result.files}
    assert list(files) == sorted(world.contents["org/model@v2"])
    assert {p for p, f in files.items() if f.selected} == {
        "README.md",
        "config.json",
        "model.safetensors",
        "sub/dir/notes.txt",
    }
    assert (files["model.safetensors"].kind, files["model.safetensors"].flags) == ("safetensors", ["lfs"])
    assert files["config.json"].kind == "config" and files["config.json"].flags == []
    assert not files["big.bin"].selected and "safetensors" in files["big.bin"].reason
    assert files["model.safetensors"].hash.startswith("sha256:") and files["config.json"].hash.startswith("git-sha1:")
    assert files["big.bin"].size == len(world.contents["org/model@v2"]["big.bin"])
    assert result.remote_code is False and result.quants == [] and result.warnings == []


def test_info_card_facts_and_json(online: Settings) -> None:
    result = info(online, MODEL, SelectOptions())
    assert result.card == {
        "license": "mit",
        "pipeline_tag": "text-classification",
        "library_name": "transformers",
        "base_model": "org/base",
        "tags": ["test"],
    }
    doc = result.to_json()
    assert doc["repo"] == "org/model" and doc["revision"] == "main" and doc["gated"] is False
    assert doc["selected"] == [f.path for f in result.files if f.selected]


def test_info_writes_nothing_to_the_cache(online: Settings) -> None:
    info(online, MODEL, SelectOptions())
    assert not list(online.cache_dir.glob("*/snapshots/*"))


def test_info_follows_the_selection_options(online: Settings) -> None:
    result = info(online, MODEL, SelectOptions(config_only=True))
    assert [f.path for f in result.files if f.selected] == ["README.md", "config.json"]
    at_tag = info(online, RepoRef("org/model", revision="v1.0"), SelectOptions())
    assert at_tag.ref.revision == "v1.0" and at_tag.commit != result.commit


def test_gated_repo_is_flagged(online: Settings) -> None:
    result = info(online, RepoRef("org/gated"), SelectOptions())
    assert result.gated
    assert all("gated" in f.flags for f in result.files)


def test_missing_repo_and_revision(online: Settings) -> None:
    with pytest.raises(RepoNotFound):
        info(online, RepoRef("org/nothing"), SelectOptions())
    with pytest.raises(RevisionNotFound):
        info(online, RepoRef("org/model", revision="nope"), SelectOptions())


def test_gguf_quantisations_are_listed_and_explained(odd: HubServer, cache: Path) -> None:
    result = info(at(odd, cache), RepoRef("org/gguf"), SelectOptions())
    assert result.quants == ["Q4_K_M", "Q8_0"]  # fewest bits first; the projector is no quantisation
    assert not any(f.selected for f in result.files if f.kind == "gguf")
    [warning] = result.warnings
    assert "hfa pull org/gguf:Q4_K_M" in warning
    chosen = info(at(odd, cache), RepoRef("org/gguf"), SelectOptions(quant="Q8_0"))
    assert "m-Q8_0.gguf" in [f.path for f in chosen.files if f.selected] and chosen.warnings == []


def test_remote_code_and_pickles_are_flagged(odd: HubServer, cache: Path) -> None:
    result = info(at(odd, cache), RepoRef("org/code"), SelectOptions())
    files = {f.path: f for f in result.files}
    assert result.remote_code is True
    assert "remote-code" in files["config.json"].flags
    assert files["modeling_x.py"].kind == "code" and not files["modeling_x.py"].selected
    assert "trust-remote-code" in files["modeling_x.py"].reason
    assert files["pytorch_model.bin"].kind == "pickle" and "pickle" in files["pytorch_model.bin"].flags
    trusted = info(at(odd, cache), RepoRef("org/code"), SelectOptions(trust_remote_code=True))
    assert {f.path: f.selected for f in trusted.files}["modeling_x.py"] is True


def test_card_and_config_problems_are_warnings(odd: HubServer, cache: Path) -> None:
    broken = info(at(odd, cache), RepoRef("org/broken"), SelectOptions())
    assert any("malformed YAML" in w for w in broken.warnings)
    assert "config.json is not valid JSON" in broken.warnings
    assert broken.card == {}
    bare = info(at(odd, cache), RepoRef("org/nocard"), SelectOptions())
    assert any("no model card" in w for w in bare.warnings)


def test_offline_info_comes_from_the_cache(online: Settings, offline: Settings, world: World) -> None:
    pull(online, MODEL, SelectOptions(config_only=True))
    result = info(offline, MODEL, SelectOptions())
    assert result.commit == world.commits["org/model@v2"]
    assert result.card["license"] == "mit"
    assert {f.path for f in result.files} == set(world.contents["org/model@v2"])  # the full recorded list


def test_offline_info_of_an_uncached_repo(offline: Settings) -> None:
    with pytest.raises(CheckFailed) as exc:
        info(offline, MODEL, SelectOptions())
    assert "is not in the cache" in exc.value.message
