"""`hfa verify` keeps the hashing on the critical path alone: the checks and the content scan run on
the main thread while the blobs hash, with the findings in the order they had when they ran after,
and verifying a cache imports neither the lock module nor filelock, nor the scanner before the
blobs hash (issue 18)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hfa import verify as verify_module
from hfa.scan.model import ScanPolicy
from hfa.testing import write_repo

RUN = """
import sys
sys.argv = ["hfa", "verify", "--cache-dir", sys.argv[1], "-q"]
from hfa.cli.entry import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(code, sorted(m for m in ("filelock", "hfa.lock.lockfile") if m in sys.modules))
"""


def test_verifying_a_cache_imports_no_lock_module(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    write_repo(cache, "org/model", {"config.json": b"{}", "README.md": b"# hi\n"})
    proc = subprocess.run([sys.executable, "-c", RUN, str(cache)], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["0", "[]"], proc.stderr


def test_the_scanner_is_imported_while_the_blobs_hash() -> None:
    """Before the first blob is hashed, verify needs no scanner: the checks and the scan that run
    meanwhile import it (and the pickle and archive readers through it)."""
    code = "import sys, hfa.verify; print(sorted(m for m in sys.modules if m.startswith('hfa.scan.')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["['hfa.scan.model']"], proc.stderr


def test_meanwhile_runs_while_the_blobs_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = []
    for i in range(3):
        blob = tmp_path / f"{i:064x}"
        blob.write_bytes(b"x" * (1000 + i))
        blobs.append(blob)
    started = threading.Event()
    release = threading.Event()
    real = verify_module.hash_blob

    def slow_hash(path: Path) -> tuple[str, int]:
        started.set()
        assert release.wait(10)
        return real(path)

    monkeypatch.setattr(verify_module, "hash_blob", slow_hash)
    seen: list[bool] = []

    def meanwhile() -> None:
        seen.append(started.wait(10))  # a blob is hashing already: the pool started before this ran
        release.set()

    hashed = verify_module._hash_all(blobs, 2, meanwhile)
    assert seen == [True]
    assert {p: r for p, r in hashed.items()} == {p: real(p) for p in blobs}


def test_a_failing_meanwhile_does_not_wait_for_every_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = [tmp_path / f"{i:064x}" for i in range(20)]
    for blob in blobs:
        blob.write_bytes(b"y")
    hashed: list[Path] = []

    def slow_hash(path: Path) -> tuple[str, int]:
        time.sleep(0.05)
        hashed.append(path)
        return "0" * 64, 1

    monkeypatch.setattr(verify_module, "hash_blob", slow_hash)

    def meanwhile() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        verify_module._hash_all(blobs, 2, meanwhile)
    assert len(hashed) < len(blobs)


def test_findings_keep_their_order_with_the_checks_beside_the_hashing(tmp_path: Path) -> None:
    """A corrupt blob, an incomplete download, a dangling ref, an LFS stub and a pickle: same report as the
    checks-then-hash-then-scan order gave (findings with equal sort keys keep the order they were found in)."""
    import pickle

    cache = tmp_path / "cache"
    commit = write_repo(
        cache,
        "org/model",
        {"config.json": b"{}", "model.bin": pickle.dumps({"a": 1}), "evil.pkl": b"cos\nsystem\n(S'x'\ntR."},
    )
    repo = cache / "models--org--model"
    (repo / "refs" / "dangling").write_text("f" * 40)
    (repo / "blobs" / ("0" * 64 + ".incomplete")).write_bytes(b"partial")
    blob = next(p for p in (repo / "blobs").iterdir() if (repo / "snapshots" / commit / "config.json").resolve() == p)
    blob.chmod(0o644)
    blob.write_bytes(b'{"tampered": 1}')
    report = verify_module.verify_cache(cache, None, ScanPolicy())
    codes = [(f.code, f.path) for f in report.findings]
    assert ("hash.mismatch", f"org/model/blobs/{blob.name}") in codes
    assert any(code == "cache.dangling-ref" for code, _ in codes)
    assert any(code == "cache.incomplete" for code, _ in codes)
    assert report.files >= 3 and report.blobs == 3
    expected = sorted(report.findings, key=lambda f: (-f.severity, f.path, f.code))
    assert report.findings == expected
    assert report.to_refetch == [("model", "org/model", commit, "config.json")]
