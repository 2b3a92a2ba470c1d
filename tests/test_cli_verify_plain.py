"""`hfa verify [TARGET]` with the common options only runs without typer (hfa.cli.verifying.verify_plain)
and writes exactly what the full CLI writes; everything else falls through to the full CLI."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pytest
from helpers import run_entry

from hfa.testing import lfs_pointer_stub, write_repo


def _run(module: str, argv: list[str], cwd: Path) -> tuple[int, str, str, bool]:
    return run_entry(module, argv, cwd)


def _same(text: str) -> str:
    """``text`` with what differs between two runs over the same files taken out: the times."""
    text = re.sub(r"in \d+\.\ds\b", "in Ts", text)
    return re.sub(r'"elapsed_seconds": [0-9.e-]+', '"elapsed_seconds": 0', text)


def _safetensors(n: int) -> bytes:
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(range(n))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean cache, a cache with a corrupt blob, a folder, a folder with a Git-LFS stub, a file
    where a folder goes; verify (without --fix) changes none of them, so every run shares them."""
    root = tmp_path_factory.mktemp("plain-verify")
    model = {"config.json": b"{}", "README.md": b"# hi\n", "model.safetensors": _safetensors(64)}
    write_repo(root / "cache", "org/model", model)
    write_repo(root / "cache", "org/other", {"config.json": b'{"a": 1}'})
    write_repo(root / "corrupt", "org/model", model)
    blob = next(p for p in (root / "corrupt" / "models--org--model" / "blobs").iterdir() if len(p.name) == 64)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\xff")
    (root / "folder").mkdir()
    (root / "folder" / "model.safetensors").write_bytes(_safetensors(16))
    (root / "folder" / "evil.pkl").write_bytes(pickle.dumps(_Evil(), protocol=2))
    (root / "stubs").mkdir()
    (root / "stubs" / "model.safetensors").write_bytes(lfs_pointer_stub(b"abc"))
    (root / "afile").write_text("")
    return root


CACHE = ["--cache-dir", "cache"]
PLAIN = [
    CACHE,
    [*CACHE, "--json"],
    ["--cache-dir=cache", "-q"],
    [*CACHE, "-v", "--verbose"],
    [*CACHE, "--no-scan", "--json"],
    [*CACHE, "org/model"],
    ["org/model@main", *CACHE, "--offline", "-q", "--quiet"],
    [*CACHE, "org/none"],  # not in the cache: exit 1
    [*CACHE, "org/model@nope"],
    ["--cache-dir", "corrupt"],  # a blob that does not hash to its name: exit 1
    ["--cache-dir", "corrupt", "--json", "--no-scan"],
    ["--cache-dir", "missing"],  # no cache there: exit 2
    [],  # the default cache ($HF_HUB_CACHE), which does not exist: exit 2
    ["--json"],  # the same, with the error document
    ["folder/model.safetensors"],
    ["folder", "--json"],  # a pickle that runs code: exit 1
    ["stubs", "-v"],  # a Git-LFS stub: exit 1
    ["./missing"],  # no such file: exit 2
    ["not a repo!"],
]
FULL = [
    ["--help"],
    [*CACHE, "--fail-on", "critical"],
    [*CACHE, "--sarif", "out.sarif"],
    ["--lock", "hfa.lock"],
    [*CACHE, "--endpoint", "http://127.0.0.1:1"],
    [*CACHE, "--json", "--json"],
    [*CACHE, "--no-scan", "--no-scan"],
    [*CACHE, *CACHE],
    ["--cache-dir", "afile"],  # a file where the cache folder goes
    ["--cache-dir", ""],
    ["--cache-dir"],
    [*CACHE, "org/model", "org/other"],
    ["--", "org/model", *CACHE],
    ["-qq", *CACHE],
    ["-qv", *CACHE],
    [""],
]


@pytest.mark.parametrize("argv", PLAIN + FULL, ids=lambda argv: " ".join(argv) or "no-args")
def test_plain_path_writes_what_the_full_cli_writes(world: Path, argv: list[str]) -> None:
    sarif = world / "out.sarif"
    fast = _run("hfa.cli.entry", ["verify", *argv], world)
    fast_sarif = sarif.read_bytes() if sarif.exists() else None
    sarif.unlink(missing_ok=True)
    full = _run("hfa.cli.app", ["verify", *argv], world)
    full_sarif = sarif.read_bytes() if sarif.exists() else None
    sarif.unlink(missing_ok=True)
    assert (fast[0], _same(fast[1]), _same(fast[2])) == (full[0], _same(full[1]), _same(full[2]))
    assert fast_sarif == full_sarif
    assert full[3] is True
    assert fast[3] is (argv not in PLAIN), "typer was loaded" if fast[3] else "the plain path ran"


def test_the_argument_sets_cover_each_outcome(world: Path) -> None:
    """The comparison above means something: the plain runs end ok, with a failed check and with a
    usage error, and the corrupt blob is found."""
    for argv, code in ((CACHE, 0), (["--cache-dir", "missing"], 2), (["./missing"], 2)):
        assert argv in PLAIN
        assert _run("hfa.cli.entry", ["verify", *argv], world)[:1] == (code,), argv
    rc, out, _, typer_loaded = _run("hfa.cli.entry", ["verify", "--cache-dir", "corrupt", "--json"], world)
    assert (rc, typer_loaded) == (1, False)
    assert [f["code"] for f in json.loads(out)["findings"]] == ["hash.mismatch"]


def test_the_plain_path_reads_the_options_of_the_typer_command() -> None:
    """One table: each option the plain path parses is the typer command's option of that name, and the
    default it passes is the command's."""
    from typer.main import get_command

    from hfa.cli.app import build
    from hfa.cli.scanning import DEFAULT_FAIL_ON
    from hfa.cli.verifying import PLAIN_FLAGS, PLAIN_VALUES

    verify = get_command(build(("verify",))).commands["verify"]  # type: ignore[attr-defined]
    options = {p.name: p for p in verify.params}
    for table in (PLAIN_VALUES, PLAIN_FLAGS):
        for flag, name in table.items():
            assert flag in options[name].opts, flag
    assert options["fail_on"].default == DEFAULT_FAIL_ON
    taken = set(PLAIN_VALUES.values()) | set(PLAIN_FLAGS.values())
    declined = {n for n, p in options.items() if p.param_type_name == "option"} - taken
    assert declined == {"lock", "fix", "repo", "fail_on", "sarif", "allowlist", "endpoint", "token"}
