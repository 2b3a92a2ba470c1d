"""`hfa pull REPO` with the common options only runs without typer (hfa.cli.pulling.pull_plain) and
does and writes exactly what the full CLI does; everything else falls through to the full CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TOKEN, build_world
from helpers import run_entry

from hfa.server import HubServer, ServerConfig
from hfa.server.auth import load_policy


def _run(module: str, argv: list[str], cwd: Path) -> tuple[int, str, str, bool]:
    return run_entry(module, argv, cwd, drop=("COLUMNS", "HF_TOKEN", "HF_ENDPOINT"))


def _same(text: str, cache: Path) -> str:
    """``text`` with what differs between two pulls of the same files taken out: the cache, the times."""
    text = text.replace(str(cache), "CACHE")
    text = re.sub(r"in \d+\.\ds\b", "in Ts", text)
    return re.sub(r'"(elapsed_seconds|seconds)": [0-9.e-]+', r'"\1": 0', text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """This module's own server: its many pulls would change the session server's download counts."""
    world = build_world(tmp_path_factory.mktemp("plain-pull-world"))
    with HubServer(ServerConfig(cache_dir=world.cache_dir, auth=load_policy(world.auth_file))) as srv:
        yield srv


PLAIN = [
    ["org/model"],
    ["org/model", "--json"],
    ["org/model", "-q"],
    ["org/model", "-v", "--verbose"],
    ["org/sharded", "--json", "-q"],
    ["org/model@main", "--quiet"],
    ["org/private", "--token", TOKEN, "--json"],
    ["org/private", "--json"],  # no token: not found, exit 3, the error document
    ["org/none"],
    ["org/stub"],  # the scan refuses the Git-LFS stub: exit 1
    ["not a repo"],
    ["org/model", "--endpoint=http://127.0.0.1:1"],  # nothing listens there: exit 5
]
FULL = [
    ["org/model", "--dry-run"],
    ["org/model", "--help"],
    ["org/model", "--offline"],
    ["org/model", "-qq"],
    ["org/model", "--json", "--json"],
    ["org/model", "--token", ""],
    ["org/model", "--cache-dir", "afile"],  # a file where the cache folder goes
    ["org/model", "org/sharded"],
    ["--workers", "2", "org/model"],
    ["--", "org/model"],
    [],  # no repo: the lock (there is none)
]


@pytest.mark.parametrize("argv", PLAIN + FULL, ids=lambda argv: " ".join(argv) or "no-args")
def test_plain_path_does_what_the_full_cli_does(server: HubServer, tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "afile").write_text("")
    runs = []
    for module in ("hfa.cli.entry", "hfa.cli.app"):
        cache = tmp_path / module
        args = ["pull"]
        if not any(a.startswith("--endpoint") for a in argv):
            args += ["--endpoint", server.url]
        if "--cache-dir" not in argv:
            args += ["--cache-dir", str(cache)]
        args += argv
        rc, out, err, typer_loaded = _run(module, args, tmp_path)
        files = sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else []
        runs.append((rc, _same(out, cache), _same(err, cache), files, typer_loaded))
    fast, full = runs
    assert fast[:4] == full[:4]
    assert full[4] is True
    assert fast[4] is (argv not in PLAIN), "typer was loaded" if fast[4] else "the plain path ran"


def test_a_plain_pull_fetches_and_reports(server: HubServer, tmp_path: Path) -> None:
    rc, out, err, typer_loaded = _run(
        "hfa.cli.entry",
        ["pull", "org/model", "--endpoint", server.url, "--cache-dir", str(tmp_path), "--json"],
        tmp_path,
    )
    assert (rc, typer_loaded) == (0, False), err
    doc = json.loads(out)
    assert doc["files"] and {f["status"] for f in doc["files"]} == {"downloaded"}
    assert Path(doc["snapshot"]).is_dir()


def test_the_plain_path_reads_the_options_of_the_typer_command() -> None:
    """One table: each option the plain path parses is the typer command's option of that name, and the
    defaults it passes are the command's."""
    from typer.main import get_command

    from hfa.cli.app import build
    from hfa.cli.pulling import DEFAULT_LOCK, DEFAULT_WORKERS, PLAIN_FLAGS, PLAIN_VALUES

    pull = get_command(build(("pull",))).commands["pull"]  # type: ignore[attr-defined]
    options = {p.name: p for p in pull.params}
    for table in (PLAIN_VALUES, PLAIN_FLAGS):
        for flag, name in table.items():
            assert flag in options[name].opts, flag
    assert options["workers"].default == DEFAULT_WORKERS
    assert Path(options["lock"].default) == DEFAULT_LOCK
