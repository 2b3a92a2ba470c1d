"""`hfa info`: commit, card facts, files with kinds and flags, and what pull would select."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import World
from helpers import hfa

from hfa.errors import ExitCode
from hfa.resolve.card import parse_card
from hfa.server import HubServer, ServerConfig
from hfa.testing import model_card, write_repo


def info_json(url: str, *args: str) -> dict:
    result = hfa("info", *args, "--endpoint", url, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_info_facts_and_files(server: HubServer, world: World) -> None:
    doc = info_json(server.url, "org/model")
    assert doc["commit"] == world.commits["org/model@v2"]
    assert doc["card"]["license"] == "mit"
    assert doc["card"]["pipeline_tag"] == "text-classification"
    assert doc["card"]["library_name"] == "transformers"
    assert doc["card"]["base_model"] == "org/base"
    files = {f["path"]: f for f in doc["files"]}
    assert files["big.bin"]["kind"] == "pickle" and "pickle" in files["big.bin"]["flags"]
    assert "lfs" in files["model.safetensors"]["flags"] and files["model.safetensors"]["selected"]
    assert files["config.json"]["flags"] == [] and files["config.json"]["hash"].startswith("git-sha1:")
    assert files["model.safetensors"]["hash"].startswith("sha256:")
    assert not files["big.bin"]["selected"] and "safetensors" in files["big.bin"]["reason"]
    assert doc["selected"] == ["README.md", "config.json", "model.safetensors", "sub/dir/notes.txt"]
    assert doc["gated"] is False and doc["remote_code"] is False


def test_info_at_tag_and_gated(server: HubServer, world: World) -> None:
    assert info_json(server.url, "org/model@v1.0")["commit"] == world.commits["org/model@v1"]
    gated = info_json(server.url, "org/gated")
    assert gated["gated"] == "manual"
    assert all("gated" in f["flags"] for f in gated["files"])


def test_info_human_output(server: HubServer) -> None:
    result = hfa("info", "org/model", "--endpoint", server.url)
    assert result.exit_code == 0
    assert "license: mit" in result.stdout
    assert "big.bin" in result.stdout and "pickle" in result.stdout


@pytest.fixture
def odd_server(tmp_path: Path):
    cache = tmp_path / "odd"
    write_repo(
        cache,
        "org/remote-code",
        {
            "README.md": model_card(license="mit", library_name="transformers"),
            "config.json": json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel"}}),
            "modeling_x.py": "class XModel: ...\n",
            "model.safetensors": b"\0" * 16,
        },
    )
    write_repo(cache, "org/bad-card", {"README.md": "---\nlicense: [unclosed\n---\n# x\n", "config.json": "{}"})
    write_repo(cache, "org/no-card", {"config.json": "{}"})
    write_repo(cache, "org/plain-card", {"README.md": "# just text\n", "config.json": "{}"})
    with HubServer(ServerConfig(cache_dir=cache)) as srv:
        yield srv


def test_remote_code_flagged(odd_server: HubServer) -> None:
    doc = info_json(odd_server.url, "org/remote-code")
    files = {f["path"]: f for f in doc["files"]}
    assert doc["remote_code"] is True
    assert "remote-code" in files["modeling_x.py"]["flags"] and not files["modeling_x.py"]["selected"]
    assert "trust-remote-code" in files["modeling_x.py"]["reason"]
    assert "remote-code" in files["config.json"]["flags"]
    trusted = info_json(odd_server.url, "org/remote-code", "--trust-remote-code")
    assert "modeling_x.py" in trusted["selected"]


@pytest.mark.parametrize(
    ("repo", "warning"),
    [
        ("org/bad-card", "malformed YAML"),
        ("org/no-card", "no model card"),
        ("org/plain-card", "no YAML front matter"),
    ],
)
def test_card_problems_are_warnings(odd_server: HubServer, repo: str, warning: str) -> None:
    result = hfa("info", repo, "--endpoint", odd_server.url, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert any(warning in w for w in doc["warnings"])
    assert "Warning: README.md" in result.stderr or "Warning: no model card" in result.stderr


def test_info_offline_from_cache(server: HubServer, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert hfa("pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache)).exit_code == 0
    result = hfa("info", "org/model", "--offline", "--cache-dir", str(cache), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["commit"] == world.commits["org/model@v2"]
    assert doc["card"]["license"] == "mit"
    assert "big.bin" in {f["path"] for f in doc["files"]}  # hfa recorded the full file list


def test_info_missing_repo(server: HubServer) -> None:
    result = hfa("info", "org/nothing", "--endpoint", server.url)
    assert result.exit_code == ExitCode.NOT_FOUND


def test_parse_card_crlf_and_bom() -> None:
    card = parse_card("\ufeff---\r\nlicense: mit\r\ntags:\r\n- a\r\n---\r\nbody".encode())
    assert card.data == {"license": "mit", "tags": ["a"]} and card.warning is None
