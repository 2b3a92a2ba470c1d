"""Start-up cost: wall time of ``hfa --help`` against the official ``hf --help``.

Each command runs as a fresh subprocess (one warm-up each, then interleaved timed runs);
the ratio of medians hfa/hf is the result. Goal: hfa's help at most 0.25 of hf's time (issue 18).
Byte-code caching is left on (PYTHONDONTWRITEBYTECODE dropped), as in bench_pull: hf's
site-packages are precompiled, and the editable hfa checkout should not be recompiled every run.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from _common import bin_path, clean_env, goal_met, median, row

GOAL = "<= 0.25"
TIMEOUT = 60  # seconds per invocation


def _time_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=TIMEOUT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err}")
    return elapsed


def run(quick: bool) -> list[dict[str, Any]]:
    runs = 3 if quick else 11
    # Same terminal width for both (rich lays help out by width); offline so neither touches a network.
    env = clean_env(COLUMNS="100", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    commands = {"hfa": [bin_path("hfa"), "--help"], "hf": [bin_path("hf"), "--help"]}
    for argv in commands.values():  # warm-up: byte-code compilation, page cache
        _time_once(argv, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(_time_once(argv, env))
    med = {name: median(ts) for name, ts in times.items()}
    best = {name: min(ts) for name, ts in times.items()}
    ratio = med["hfa"] / med["hf"]
    return [
        row("hfa --help", med["hfa"] * 1000, "ms", detail=f"median of {runs}, best {best['hfa'] * 1000:.0f} ms"),
        row("hf --help", med["hf"] * 1000, "ms", detail=f"median of {runs}, best {best['hf'] * 1000:.0f} ms"),
        row(
            "help time hfa/hf",
            ratio,
            "x",
            GOAL,
            goal_met(ratio, GOAL),
            f"best-of ratio {best['hfa'] / best['hf']:.3f}",
        ),
    ]


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
