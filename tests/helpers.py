"""Test helpers: cache integrity checks and a CLI runner."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hfa.cli.app import app

runner = CliRunner()


def hfa(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def blob_digest(path: Path) -> str:
    data = path.read_bytes()
    if len(path.name) == 64:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def corrupt_blobs(cache: Path) -> list[Path]:
    """Every blob whose content does not hash to its name (there must never be one)."""
    bad = []
    for blob in cache.glob("*/blobs/*"):
        if blob.name.endswith(".incomplete") or blob.name.startswith("."):
            continue
        if blob_digest(blob) != blob.name:
            bad.append(blob)
    return bad


def snapshot_listing(cache: Path, folder: str, commit: str) -> dict[str, str]:
    """path -> blob name for every link of a snapshot (links must be relative and stay in blobs/)."""
    snap = cache / folder / "snapshots" / commit
    out = {}
    for dirpath, _dirs, files in os.walk(snap):
        for name in files:
            link = Path(dirpath, name)
            assert link.is_symlink(), link
            target = os.readlink(link)
            assert not os.path.isabs(target), target
            real = Path(os.path.realpath(link))
            assert real.parent == (cache / folder / "blobs").resolve(), real
            out[link.relative_to(snap).as_posix()] = real.name
    return out


_ENTRY = """
import sys
sys.argv = [{prog!r}, *{argv!r}]
from {module} import main
try:
    main()
    rc = 0
except SystemExit as exc:
    rc = exc.code or 0
sys.stdout.flush()
sys.stderr.write("\\n@@ %s %s\\n" % (rc, ",".join(m for m in ("typer", "rich", "click") if m in sys.modules)))
"""


def entry_code(module: str, argv: list[str], prog: str = "hfa") -> str:
    """Python source that runs ``prog argv`` through ``module``'s main, then writes ``@@ RC LOADED`` (its exit
    code, and which of typer, rich and click it loaded) as the last line of stderr."""
    return _ENTRY.format(module=module, argv=argv, prog=prog)


def run_child(
    module: str, argv: list[str], env: dict[str, str], cwd: Path | None = None, prog: str = "hfa"
) -> tuple[int, str, str, list[str]]:
    """:func:`entry_code` in a fresh interpreter: exit code, stdout, stderr (without the marker), and the
    modules of typer, rich and click it loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", entry_code(module, argv, prog)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    stderr, _, marker = proc.stderr.rstrip("\n").rpartition("\n@@ ")
    rc, _, loaded = marker.partition(" ")
    return int(rc), proc.stdout, stderr, [m for m in loaded.split(",") if m]


def run_entry(
    module: str, argv: list[str], cwd: Path, drop: tuple[str, ...] = ("COLUMNS",)
) -> tuple[int, str, str, bool]:
    """``hfa argv`` through ``module``'s main in a fresh interpreter (the plain paths' tests run the console
    script's ``hfa.cli.entry`` and typer's ``hfa.cli.app`` on the same arguments): exit code, stdout, stderr,
    whether typer was loaded. ``drop``: environment variables the child does not get."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    rc, out, err, loaded = run_child(module, argv, env, cwd)
    return rc, out, err, "typer" in loaded
