"""Cache integrity: `hfa verify` of a ~2 GB cache against one core hashing the same blobs.

The cache holds several large LFS blobs (valid safetensors files, so the content scan
runs too) plus small files. Two anchors: Python's hashlib on one core (OpenSSL's sha256, the
machine's floor per core; a fresh interpreter reading each blob into one buffer) and the
`sha256sum` command. All read from the page cache (one warm-up each), then run alternately;
each result is the anchor's wall time over hfa's, the median of the per-round ratios.
Goals: at least 1.8x one-core hashlib (issue 18; the limit is the core count, 2 here) and
1.6x sha256sum. Byte-code caching is left on, as in bench_pull.
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

GOAL = ">= 1.6"  # sha256sum/hfa
GOAL_HASHLIB = ">= 1.8"  # one-core hashlib/hfa
# One core hashing every blob with hashlib, as fast as Python goes: readinto one buffer, no copies.
HASHLIB_ONE_CORE = """
import hashlib, sys
buf = bytearray(4 << 20)
view = memoryview(buf)
for path in sys.argv[1:]:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fp:
        while n := fp.readinto(buf):
            h.update(view[:n])
    print(h.hexdigest(), path)
"""


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
    runs = 2 if quick else 5
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    with temp_dir("hfa-bench-verify-") as root:
        cache = _build(root, total, count)
        blobs = sorted(str(p) for p in (cache / "models--bench--verify" / "blobs").iterdir())
        env = clean_env(HF_HUB_OFFLINE="1")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        hfa = [bin_path("hfa"), "verify", "--cache-dir", str(cache), "-q"]
        peer = ["sha256sum", *blobs]
        one_core = [sys.executable, "-c", HASHLIB_ONE_CORE, *blobs]
        _time(hfa, env)
        _time(peer, env)
        _time(one_core, env)
        t_hfa, t_peer, t_one = [], [], []
        for _ in range(runs):
            t_hfa.append(_time(hfa, env))
            t_peer.append(_time(peer, env))
            t_one.append(_time(one_core, env))
    h, p, o = median(t_hfa), median(t_peer), median(t_one)
    ratio = median([b / a for a, b in zip(t_hfa, t_peer, strict=True)])
    ratio_one = median([b / a for a, b in zip(t_hfa, t_one, strict=True)])
    gb = total / 1e9
    return [
        row(
            "hfa verify",
            h,
            "s",
            detail=f"{gb:.2f} GB in {count} blobs + scan, {gb / h:.2f} GB/s, {os.cpu_count()} cores",
        ),
        row("sha256sum", p, "s", detail=f"same blobs, {gb / p:.2f} GB/s"),
        row("hashlib, one core", o, "s", detail=f"same blobs, {gb / o:.2f} GB/s: the floor per core"),
        row("verify speed sha256sum/hfa", ratio, "x", GOAL, goal_met(ratio, GOAL), f"median of {runs}"),
        row(
            "verify speed one-core hashlib/hfa",
            ratio_one,
            "x",
            GOAL_HASHLIB,
            goal_met(ratio_one, GOAL_HASHLIB),
            f"median of {runs} rounds; the limit is {os.cpu_count()} (cores)",
        ),
    ]


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
