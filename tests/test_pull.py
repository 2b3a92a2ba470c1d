"""`hfa pull` against `hfa serve`: selection, cache layout, huggingface_hub compatibility, offline mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOKEN, World
from helpers import corrupt_blobs, hfa, snapshot_listing

from hfa.errors import ExitCode
from hfa.server import HubServer

FOLDER = "models--org--model"


def pull_json(server: HubServer, cache: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    result = hfa("pull", *args, "--endpoint", server.url, "--cache-dir", str(cache), "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_pull_default_selection_into_cache_layout(server: HubServer, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    doc = pull_json(server, cache, "org/model")
    v2 = world.commits["org/model@v2"]
    assert doc["commit"] == v2
    pulled = {f["path"] for f in doc["files"]}
    assert pulled == {"README.md", "config.json", "model.safetensors", "sub/dir/notes.txt"}
    skipped = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert "big.bin" in skipped and "safetensors" in skipped["big.bin"]
    assert all(f["status"] == "downloaded" for f in doc["files"])
    listing = snapshot_listing(cache, FOLDER, v2)
    assert set(listing) == pulled
    for path in pulled:
        assert (cache / FOLDER / "snapshots" / v2 / path).read_bytes() == world.contents["org/model@v2"][path]
    assert (cache / FOLDER / "refs" / "main").read_text() == v2
    assert corrupt_blobs(cache) == []
    assert not list(cache.glob("*/blobs/*.incomplete"))
    # LFS files are named by sha256, regular files by git-sha1 — as huggingface_hub names them.
    assert len(listing["model.safetensors"]) == 64 and len(listing["config.json"]) == 40


def test_huggingface_hub_finds_pulled_files_offline(server: HubServer, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pull_json(server, cache, "org/model")
    from huggingface_hub import hf_hub_download, snapshot_download

    snap = snapshot_download("org/model", cache_dir=cache, local_files_only=True)
    assert (Path(snap) / "model.safetensors").read_bytes() == world.contents["org/model@v2"]["model.safetensors"]
    path = hf_hub_download("org/model", "config.json", cache_dir=cache, local_files_only=True)
    assert Path(path).read_bytes() == world.contents["org/model@v2"]["config.json"]
    # The same under HF_HUB_OFFLINE=1 (read at import, so in a fresh interpreter).
    code = (
        "import sys; from huggingface_hub import snapshot_download, hf_hub_download;"
        f"p = snapshot_download('org/model', cache_dir={str(cache)!r});"
        f"q = hf_hub_download('org/model', 'sub/dir/notes.txt', cache_dir={str(cache)!r});"
        "print(open(q).read().strip())"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "nested file"


def test_pull_tag_and_commit(server: HubServer, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    v1 = world.commits["org/model@v1"]
    doc = pull_json(server, cache, "org/model@v1.0")
    assert doc["commit"] == v1
    assert (cache / FOLDER / "refs" / "v1.0").read_text() == v1
    doc = pull_json(server, cache, f"org/model@{v1}")
    assert doc["commit"] == v1
    assert all(f["status"] == "cached" for f in doc["files"])
    assert doc["bytes_downloaded"] == 0
    assert not (cache / FOLDER / "refs" / v1).exists()


def test_second_pull_downloads_nothing(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = pull_json(server, cache, "org/model")
    assert first["bytes_downloaded"] > 0
    second = pull_json(server, cache, "org/model")
    assert second["bytes_downloaded"] == 0
    assert {f["status"] for f in second["files"]} == {"cached"}


def test_dry_run_writes_nothing(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    doc = pull_json(server, cache, "org/model", "--dry-run")
    assert doc["dry_run"] is True
    assert {f["status"] for f in doc["files"]} == {"would-download"}
    assert all(f["reason"] for f in doc["files"])
    assert not cache.exists() or not any(cache.rglob("*"))
    human = hfa("pull", "org/model", "--dry-run", "--endpoint", server.url, "--cache-dir", str(cache))
    assert human.exit_code == 0
    assert "Would fetch 4 file(s)" in human.stdout
    assert "big.bin" in human.stdout  # listed as skipped, with its reason


def test_selection_options(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    doc = pull_json(server, cache, "org/model", "--config-only", "--dry-run")
    assert {f["path"] for f in doc["files"]} == {"README.md", "config.json"}
    doc = pull_json(server, cache, "org/model", "--framework", "pt", "--dry-run")
    assert "big.bin" in {f["path"] for f in doc["files"]}
    assert "model.safetensors" not in {f["path"] for f in doc["files"]}
    doc = pull_json(server, cache, "org/model", "--all", "--exclude", "sub/*", "--dry-run")
    assert {f["path"] for f in doc["files"]} == {"README.md", "config.json", "model.safetensors", "big.bin"}
    doc = pull_json(server, cache, "org/model", "--subfolder", "sub", "--dry-run")
    assert {f["path"] for f in doc["files"]} == {"sub/dir/notes.txt"}


def test_pull_dataset(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for spec, extra in (("datasets/org/data", []), ("org/data", ["--repo-type", "dataset"])):
        doc = pull_json(server, cache, spec, *extra)
        assert doc["repo_type"] == "dataset"
        assert {f["path"] for f in doc["files"]} == {"README.md", "data/train.csv"}
    assert (cache / "datasets--org--data" / "refs" / "main").exists()


@pytest.mark.parametrize(
    ("spec", "args", "code", "message"),
    [
        ("org/nope", [], ExitCode.NOT_FOUND, "'org/nope' not found"),
        ("org/model@no-such-branch", [], ExitCode.NOT_FOUND, "Revision 'no-such-branch' not found"),
        ("org/private", [], ExitCode.NOT_FOUND, "'org/private' not found"),
        ("org/gated", [], ExitCode.ACCESS_DENIED, "is gated"),
        ("org/model@", [], ExitCode.USAGE, "Empty revision"),
        ("../etc", [], ExitCode.USAGE, "Invalid repository id"),
        ("org/model", ["--framework", "caffe"], ExitCode.USAGE, "Unknown framework"),
        ("org/model", ["--subfolder", "../x"], ExitCode.USAGE, "Invalid --subfolder"),
    ],
)
def test_pull_errors(server: HubServer, tmp_path: Path, spec: str, args: list[str], code: int, message: str) -> None:
    result = hfa("pull", spec, *args, "--endpoint", server.url, "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert message in result.stderr
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr


def test_gated_error_names_where_to_accept(server: HubServer, tmp_path: Path) -> None:
    result = hfa("pull", "org/gated", "--endpoint", server.url, "--cache-dir", str(tmp_path / "c"))
    assert f"{server.url}/org/gated" in result.stderr
    ok = hfa("pull", "org/gated", "--endpoint", server.url, "--cache-dir", str(tmp_path / "c"), "--token", TOKEN)
    assert ok.exit_code == 0, ok.stderr
    assert TOKEN not in ok.stdout + ok.stderr


def test_private_repo_with_token(server: HubServer, tmp_path: Path) -> None:
    result = hfa(
        "pull",
        "org/private",
        "--endpoint",
        server.url,
        "--cache-dir",
        str(tmp_path / "c"),
        "--json",
        env={"HF_TOKEN": TOKEN},
    )
    assert result.exit_code == 0, result.stderr
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["config.json"]


def test_human_output_on_stdout_is_the_snapshot_path(server: HubServer, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = hfa("pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache))
    assert result.exit_code == 0
    assert result.stdout.strip() == str(cache / FOLDER / "snapshots" / world.commits["org/model@v2"])
    assert "4 file(s)" in result.stderr


# -- offline -------------------------------------------------------------------------------------


def test_offline_pull_from_cache_needs_no_server(server: HubServer, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pull_json(server, cache, "org/model")
    dead = "http://127.0.0.1:9"
    for env, flag in (({"HF_HUB_OFFLINE": "1"}, []), (None, ["--offline"])):
        result = hfa("pull", "org/model", *flag, "--endpoint", dead, "--cache-dir", str(cache), "--json", env=env)
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["offline"] is True and doc["commit"] == world.commits["org/model@v2"]
        assert {f["status"] for f in doc["files"]} == {"cached"}


def test_offline_names_exactly_what_is_missing(server: HubServer, world: World, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    pull_json(server, cache, "org/model", "--config-only")
    result = hfa("pull", "org/model", "--offline", "--cache-dir", str(cache), "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert sorted(json.loads(result.stdout)["error"]["details"]["missing"]) == [
        "model.safetensors",
        "sub/dir/notes.txt",
    ]
    assert "2 file(s) of 'org/model'" in result.stderr
    assert "model.safetensors" in result.stderr and "sub/dir/notes.txt" in result.stderr
    # A file deleted from under the snapshot is missing too.
    pull_json(server, cache, "org/model")
    blob = next(p for p in (cache / FOLDER / "blobs").iterdir() if len(p.name) == 64)
    blob.unlink()
    result = hfa("pull", "org/model", "--offline", "--cache-dir", str(cache))
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "1 file(s)" in result.stderr and "model.safetensors" in result.stderr


def test_offline_repo_not_in_cache(tmp_path: Path) -> None:
    result = hfa("pull", "org/model", "--offline", "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "is not in the cache" in result.stderr and "hfa pull org/model" in result.stderr


def test_private_repo_hint_tells_a_refused_token_from_none(server: HubServer, tmp_path: Path) -> None:
    """With no token the next step is a token; with a token that may not read it, that token's access."""
    from conftest import OTHER_TOKEN

    none = hfa("pull", "org/private", "--endpoint", server.url, "--cache-dir", str(tmp_path / "c"))
    other = hfa(
        "pull", "org/private", "--endpoint", server.url, "--cache-dir", str(tmp_path / "c"), "--token", OTHER_TOKEN
    )
    assert none.exit_code == other.exit_code == ExitCode.NOT_FOUND
    assert "pass a token with --token" in none.stderr
    assert "check that the token given (--token / HF_TOKEN) may read it" in other.stderr
    assert OTHER_TOKEN not in other.stderr
