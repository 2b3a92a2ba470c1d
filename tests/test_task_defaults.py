"""Task defaults beyond `hfa infer`: `hfa pin --check` reports their drift, `hfa pull` fetches their models
when a `local` provider runs them (or with `--tasks`), against a real `hfa serve` on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import hfa

from hfa.server import HubServer, ServerConfig
from hfa.testing import make_safetensors, model_card, write_repo


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HubServer, Path, str]]:
    """A served org/cls (and org/emb); the working directory is a project folder; returns (server, served, commit)."""
    served = tmp_path / "served"
    weights = make_safetensors({"w": ("F32", [4])})
    commit = write_repo(
        served,
        "org/cls",
        {
            "README.md": model_card(pipeline_tag="text-classification"),
            "config.json": "{}",
            "model.safetensors": weights,
        },
    )
    write_repo(served, "org/emb", {"README.md": model_card(pipeline_tag="feature-extraction"), "config.json": "{}"})
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    with HubServer(ServerConfig(cache_dir=served)) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        yield srv, served, commit


def _toml(text: str) -> None:
    Path("hfa.toml").write_text(text, encoding="utf-8")


def _snapshot(commit: str) -> Path:
    return Path(os.environ["HF_HUB_CACHE"]) / "models--org--cls" / "snapshots" / commit


LOCAL = '[[infer.providers]]\nname = "laptop"\nkind = "local"\n'


# -- hfa pin --check ---------------------------------------------------------------------------------
def test_pin_check_reports_a_task_default_whose_revision_moved(hub: tuple[HubServer, Path, str]) -> None:
    _srv, served, commit = hub
    assert hfa("pin", "--task", "sentiment-analysis", "org/cls").exit_code == 0
    current = hfa("pin", "--check")
    assert current.exit_code == 0, current.stderr
    assert "1 task default(s) checked" in current.stderr
    newer = write_repo(served, "org/cls", {"README.md": model_card(pipeline_tag="text-classification"), "x": "2"})
    drifted = hfa("pin", "--check")
    assert drifted.exit_code == 1
    assert f"task text-classification: org/cls@main: {commit[:12]} → {newer[:12]}" in drifted.stdout
    assert "has drifted" in drifted.stderr
    doc = json.loads(hfa("pin", "--check", "--json").stdout)
    assert doc["current"] is False and doc["tasks_checked"] == 1 and doc["drift"] == []
    assert doc["task_drift"] == [
        {
            "task": "text-classification",
            "repo": "org/cls@main",
            "old_commit": commit,
            "new_commit": newer,
            "error": None,
            "configured": None,
        }
    ]
    named = hfa("pin", "--check", "org/cls")  # a repo named only by a task default is checked, not refused
    assert named.exit_code == 1 and "task text-classification" in named.stdout
    assert hfa("pin", "--check", "org/emb").exit_code == 2  # neither pinned nor a default: as before


def test_pin_check_reports_a_gone_default_and_hfa_toml_disagreeing(hub: tuple[HubServer, Path, str]) -> None:
    _srv, _served, commit = hub
    assert hfa("pin", "--task", "embeddings", "org/emb").exit_code == 0
    assert hfa("pin", "--task", "text-classification", "org/cls").exit_code == 0
    _toml('[infer.tasks]\nembeddings = "org/cls"\n')
    result = hfa("pin", "--check", "--json")
    assert result.exit_code == 1
    drift = {d["task"]: d for d in json.loads(result.stdout)["task_drift"]}
    assert list(drift) == ["feature-extraction"] and drift["feature-extraction"]["configured"] == "org/cls"
    text = hfa("pin", "--check").stdout
    assert (
        "task feature-extraction: hfa.toml names org/cls, the lock holds org/emb@main (`hfa pin` resolves it)" in text
    )
    lock = Path("hfa.lock")
    lock.write_text(lock.read_text().replace('repo = "org/cls"', 'repo = "org/gone"'))
    _toml("")
    gone = hfa("pin", "--check", "--json")
    assert gone.exit_code == 1
    (entry,) = json.loads(gone.stdout)["task_drift"]
    assert entry["repo"] == "org/gone@main" and entry["old_commit"] == commit and entry["error"]


# -- hfa pull ----------------------------------------------------------------------------------------
def test_pull_fetches_the_defaults_a_local_provider_runs(hub: tuple[HubServer, Path, str]) -> None:
    _srv, _served, commit = hub
    assert hfa("pin", "--task", "text-classification", "org/cls").exit_code == 0
    assert hfa("pin", "--task", "embeddings", "org/emb").exit_code == 0
    _toml(LOCAL + 'tasks = ["sentiment-analysis"]\n')  # only the classifier runs in-process
    dry = hfa("pull", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "task text-classification: org/cls@main at" in dry.stdout and "would fetch 3 of 3" in dry.stdout
    assert not _snapshot(commit).exists()
    result = hfa("pull", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["repos"] == [] and [t["task"] for t in doc["tasks"]] == ["text-classification"]
    assert doc["tasks"][0]["commit"] == commit and "provider 'laptop'" in doc["tasks"][0]["why"]
    assert sorted(p.name for p in _snapshot(commit).iterdir()) == ["README.md", "config.json", "model.safetensors"]
    refs = Path(os.environ["HF_HUB_CACHE"]) / "models--org--cls" / "refs" / "main"
    assert refs.read_text() == commit  # as a lock pull points the revision at the commit
    assert not (Path(os.environ["HF_HUB_CACHE"]) / "models--org--emb").exists()
    warm = json.loads(hfa("pull", "--json").stdout)
    assert warm["tasks"][0]["requests"] == 0  # a warm pull asks nothing
    offline = hfa("pull", "--offline")
    assert offline.exit_code == 0, offline.stderr


def test_without_a_local_provider_pull_names_tasks(hub: tuple[HubServer, Path, str]) -> None:
    _srv, _served, commit = hub
    assert hfa("pin", "--task", "text-classification", "org/cls").exit_code == 0
    _toml('[[infer.providers]]\nname = "hub"\nkind = "hf-inference"\n')
    nothing = hfa("pull")
    assert nothing.exit_code == 2
    assert "no `local` provider" in nothing.stderr and "hfa pull --tasks" in nothing.stderr
    _toml(LOCAL + "enabled = false\n")  # a disabled local provider runs nothing
    assert hfa("pull").exit_code == 2
    every = hfa("pull", "--tasks")
    assert every.exit_code == 0, every.stderr
    assert "task text-classification: org/cls@main →" in every.stderr
    assert _snapshot(commit).is_dir()
    assert hfa("pull", "org/cls", "--tasks").exit_code == 2


def test_pull_offline_names_a_missing_default(hub: tuple[HubServer, Path, str]) -> None:
    assert hfa("pin", "--task", "text-classification", "org/cls").exit_code == 0
    _toml(LOCAL)
    result = hfa("pull", "--offline")
    assert result.exit_code == 1, result.stderr
    assert "org/cls" in result.stderr
