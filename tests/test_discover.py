"""Discovery: `hfa search` over models, datasets and spaces with the Hub's filters (answered by
`hfa serve`), `hfa search --offline` over the cache's cards and the lock, and shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import hfa

from hfa.cli.complete import complete_repo
from hfa.errors import ExitCode
from hfa.hub.client import search_params
from hfa.resolve.filters import SearchFilters
from hfa.server import HubServer, ServerConfig
from hfa.testing import model_card, write_repo


def ids(result) -> list[str]:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    (key,) = [k for k in doc if k.endswith("s")]
    return sorted(r["id"] for r in doc[key])


def test_search_datasets_by_type_and_prefix(server: HubServer) -> None:
    by_type = hfa("search", "--repo-type", "dataset", "--endpoint", server.url, "--json")
    assert ids(by_type) == ["org/data"]
    assert json.loads(by_type.stdout)["datasets"][0]["license"] == "cc-by-4.0"
    assert ids(hfa("search", "datasets/data", "--endpoint", server.url, "--json")) == ["org/data"]
    assert ids(hfa("search", "datasets/", "--endpoint", server.url, "--json")) == ["org/data"]
    clash = hfa("search", "datasets/x", "--repo-type", "model", "--endpoint", server.url)
    assert clash.exit_code == ExitCode.USAGE


def test_search_license_tag_gated(server: HubServer) -> None:
    base = ["search", "--endpoint", server.url, "--json", "--limit", "50"]
    assert ids(hfa(*base, "--license", "mit")) == ["org/model"]
    assert ids(hfa(*base, "--license", "apache-2.0")) == ["other/thing"]
    assert ids(hfa(*base, "--tag", "test")) == ["org/model"]
    assert ids(hfa(*base, "--gated")) == ["org/gated"]
    assert "org/gated" not in ids(hfa(*base, "--no-gated")) and "org/model" in ids(hfa(*base, "--no-gated"))
    spaces = hfa("search", "--repo-type", "space", "--gated", "--endpoint", server.url)
    assert spaces.exit_code == ExitCode.USAGE and "never gated" in spaces.stderr


@pytest.fixture
def lang_server(tmp_path: Path) -> Iterator[HubServer]:
    cache = tmp_path / "served"
    write_repo(cache, "lang/en-model", {"README.md": model_card(language="en", license="mit").encode()})
    write_repo(cache, "lang/de-model", {"README.md": model_card(language=["de"], license="mit").encode()})
    card = model_card(language=["fr", "en"], license="cc-by-4.0", task_categories=["translation"])
    write_repo(cache, "lang/fr-data", {"README.md": card.encode()}, repo_type="dataset")
    write_repo(cache, "lang/de-data", {"README.md": model_card(language="de").encode()}, repo_type="dataset")
    write_repo(cache, "lang/demo", {"README.md": model_card(sdk="gradio").encode()}, repo_type="space")
    with HubServer(ServerConfig(cache_dir=cache)) as srv:
        yield srv


def test_search_language_models_and_datasets(lang_server: HubServer) -> None:
    base = ["search", "--endpoint", lang_server.url, "--json"]
    assert ids(hfa(*base, "--language", "en")) == ["lang/en-model"]
    assert ids(hfa(*base, "--repo-type", "dataset", "--language", "fr")) == ["lang/fr-data"]
    assert ids(hfa(*base, "--repo-type", "dataset", "--language", "en", "--task", "translation")) == ["lang/fr-data"]
    assert ids(hfa(*base, "spaces/")) == ["lang/demo"]


def test_serve_answers_huggingface_hubs_own_filters(lang_server: HubServer) -> None:
    """The official client's list_datasets(language=…, license via filter) reaches hfa serve as the Hub's query."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=lang_server.url)
    assert [d.id for d in api.list_datasets(language="fr")] == ["lang/fr-data"]
    assert [d.id for d in api.list_datasets(filter="license:cc-by-4.0")] == ["lang/fr-data"]
    assert sorted(m.id for m in api.list_models(filter=["license:mit", "de"])) == ["lang/de-model"]
    assert [m.id for m in api.list_models(gated=True)] == []


def test_search_params_match_huggingface_hub() -> None:
    assert search_params(
        "dataset", "q", SearchFilters(licenses=("mit",), languages=("fr",), task="translation", gated=False)
    ) == [
        ("search", "q"),
        ("filter", "license:mit"),
        ("filter", "language:fr"),
        ("filter", "task_categories:translation"),
        ("gated", "false"),
    ]
    assert search_params("model", None, SearchFilters(library="gguf", languages=("en",), tags=("x",), task="t")) == [
        ("pipeline_tag", "t"),
        ("filter", "gguf"),
        ("filter", "en"),
        ("filter", "x"),
    ]


# -- offline --------------------------------------------------------------------------------------


def test_search_offline_reads_cards_and_lock(tmp_path: Path) -> None:
    served = tmp_path / "served"
    write_repo(
        served,
        "org/model",
        {
            "README.md": model_card(
                license="mit", pipeline_tag="text-classification", library_name="transformers", tags=["test"]
            ).encode()
        },
    )
    write_repo(served, "org/data", {"README.md": b"---\nlicense: cc-by-4.0\n---\n"}, repo_type="dataset")
    write_repo(served, "other/thing", {"README.md": model_card(license="apache-2.0").encode()})
    cache, lock = tmp_path / "cache", tmp_path / "hfa.lock"
    with HubServer(ServerConfig(cache_dir=served)) as srv:
        url = srv.url
        assert (
            hfa(
                "pin", "org/model", "datasets/org/data", "other/thing", "--endpoint", url, "--lock", str(lock)
            ).exit_code
            == 0
        )
        assert hfa("pull", "org/model", "--endpoint", url, "--cache-dir", str(cache)).exit_code == 0
        assert hfa("pull", "datasets/org/data", "--endpoint", url, "--cache-dir", str(cache)).exit_code == 0
    # the server is stopped: nothing but the cache and the lock can answer
    base = ["search", "--offline", "--endpoint", url, "--cache-dir", str(cache), "--lock", str(lock), "--json"]
    result = hfa(*base)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    by_id = {r["id"]: r for r in doc["repos"]}
    assert set(by_id) == {"org/model", "org/data", "other/thing"}
    assert by_id["org/model"]["license"] == "mit" and by_id["org/model"]["task"] == "text-classification"
    assert by_id["org/model"]["in_cache"] and by_id["org/model"]["locked_revision"] == "main"
    assert not by_id["other/thing"]["in_cache"] and by_id["other/thing"]["locked_revision"] == "main"
    assert [r["id"] for r in json.loads(hfa(*base, "transformers").stdout)["repos"]] == ["org/model"]
    assert [r["id"] for r in json.loads(hfa(*base, "--license", "cc-by-4.0").stdout)["repos"]] == ["org/data"]
    assert [r["id"] for r in json.loads(hfa(*base, "datasets/").stdout)["repos"]] == ["org/data"]
    assert [r["id"] for r in json.loads(hfa(*base, "--tag", "test").stdout)["repos"]] == ["org/model"]
    human = hfa("search", "--offline", "--cache-dir", str(cache), "--lock", str(lock), "thing")
    assert human.exit_code == 0 and "other/thing" in human.stdout and "lock" in human.stdout
    online = hfa("search", "--endpoint", url, "--cache-dir", str(cache))
    assert online.exit_code == ExitCode.NETWORK and "Could not reach" in online.stderr


def test_search_offline_with_no_cache_and_no_lock(tmp_path: Path) -> None:
    result = hfa("search", "--offline", "--cache-dir", str(tmp_path / "none"), "--lock", str(tmp_path / "no.lock"))
    assert result.exit_code == 0 and "matched" in result.stderr


# -- completion -----------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, params: dict) -> None:  # type: ignore[type-arg]
        self.params = params


def test_complete_repo_from_cache_and_lock(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_repo(cache, "org/model", {"a.txt": b"a"})
    write_repo(cache, "org/data", {"a.txt": b"a"}, repo_type="dataset")
    lock = tmp_path / "hfa.lock"
    lock.write_text(
        'version = 1\n\n[[repo]]\nid = "zed/locked"\ntype = "model"\nrevision = "main"\n'
        f'commit = "{"a" * 40}"\nselection = {{}}\nfiles = []\n'
    )
    ctx = _Ctx({"cache_dir": cache, "lock": lock})
    assert complete_repo(ctx, "") == ["datasets/org/data", "org/model", "zed/locked"]
    assert complete_repo(ctx, "org/") == ["org/model"]
    lock.write_text("not toml [")
    assert complete_repo(ctx, "") == ["datasets/org/data", "org/model"]  # a broken lock never breaks completion


def test_completion_through_the_console_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_repo(cache, "org/model", {"a.txt": b"a"})
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "_HFA_COMPLETE": "complete_bash"}
    code = "import sys; sys.argv[0] = 'hfa'; from hfa.cli.entry import main; main()"
    for words, cword, expected in (("hfa inf", "1", "info"), ("hfa pull or", "2", "org/model")):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "COMP_WORDS": words, "COMP_CWORD": cword},
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout.split()
    shown = hfa("--show-completion", "bash")
    assert shown.exit_code == 0 and "complete" in shown.stdout
