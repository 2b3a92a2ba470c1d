"""Cache integrity: `hfa verify` of a ~2 GB cache against `sha256sum` over the same blobs.

The cache holds several large LFS blobs (valid safetensors files, so the content scan
runs too) plus small files. Both tools read from the page cache (one warm-up each), then
run alternately; the result is sha256sum's wall time over hfa's. Goal: hfa at least 1.6x
faster on 2 cores (it hashes blobs in parallel; sha256sum reads them one after another).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import bin_path, clean_env, goal_met, median, row, temp_dir

GOAL = ">= 1.6"


def _write_blob(blobs: Path, size: int, seed: int) -> tuple[str, int]:
    """A safetensors file of ``size`` bytes written straight into blobs/, named by its sha256."""
    header_len = 96  # fixed, padded with spaces as safetensors allows
    n_data = size - 8 - header_len
    header = json.dumps({"w": {"dtype": "U8", "shape": [n_data], "data_offsets": [0, n_data]}}).encode()
    header = header.ljust(header_len, b" ")
    block = hashlib.shake_256(str(seed).encode()).digest(1 << 20)
    h = hashlib.sha256()
    tmp = blobs / f".tmp-{seed}"
    with tmp.open("wb") as fp:
        head = len(header).to_bytes(8, "little") + header
        fp.write(head)
        h.update(head)
        left = n_data
        while left > 0:
            chunk = block[: min(len(block), left)]
            fp.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    name = h.hexdigest()
    os.replace(tmp, blobs / name)
    return name, size


def _build(root: Path, total: int, count: int) -> Path:
    from hfa.testing import write_repo

    cache = root / "cache"
    commit = write_repo(cache, "bench/verify", {"config.json": b"{}", "README.md": b"# bench\n"})
    repo = cache / "models--bench--verify"
    for i in range(count):
        name, _ = _write_blob(repo / "blobs", total // count, i)
        os.symlink(f"../../blobs/{name}", repo / "snapshots" / commit / f"model-{i:05d}.safetensors")
    return cache


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.decode()[-400:]}")
    return elapsed


def run(quick: bool) -> list[dict[str, Any]]:
    total = (128 if quick else 2048) * 1024 * 1024
    count = 8
    runs = 2 if quick else 3
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with temp_dir("hfa-bench-verify-") as root:
        cache = _build(root, total, count)
        blobs = sorted(str(p) for p in (cache / "models--bench--verify" / "blobs").iterdir())
        env = clean_env(HF_HUB_OFFLINE="1")
        hfa = [bin_path("hfa"), "verify", "--cache-dir", str(cache), "-q"]
        peer = ["sha256sum", *blobs]
        _time(hfa, env)
        _time(peer, env)
        t_hfa, t_peer = [], []
        for _ in range(runs):
            t_hfa.append(_time(hfa, env))
            t_peer.append(_time(peer, env))
    h, p = median(t_hfa), median(t_peer)
    ratio = p / h
    gb = total / 1e9
    return [
        row(
            "hfa verify",
            h,
            "s",
            detail=f"{gb:.2f} GB in {count} blobs + scan, {gb / h:.2f} GB/s, {os.cpu_count()} cores",
        ),
        row("sha256sum", p, "s", detail=f"same blobs, {gb / p:.2f} GB/s"),
        row("verify speed sha256sum/hfa", ratio, "x", GOAL, goal_met(ratio, GOAL), f"median of {runs}"),
    ]


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
