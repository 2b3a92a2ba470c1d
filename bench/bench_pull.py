"""``hfa pull`` against the official ``hf download``: same server, same files, side by side.

One ``hfa serve`` (:class:`~hfa.server.http.HubServer`, in this process, on 127.0.0.1)
serves two repositories built straight into its cache:

* ``bench/pull-many``: 50 files (configs, tokenizer files, a README, a sharded
  safetensors model with its index, and 37 JSON/text files of 4-256 KiB), exactly the
  files hfa's default selection takes (checked with ``hfa pull --dry-run`` first), so
  ``hf download REPO``, which takes every file, fetches the same set;
* ``bench/pull-big``: one ``model.safetensors`` of 1 GiB (64 MiB with --quick).

Both tools run as subprocesses (wall time, start-up included) into fresh cache dirs,
with the same environment: HF_ENDPOINT at the server, HF_HUB_CACHE / --cache-dir,
progress bars, telemetry and update checks off, no token. Runs alternate which tool
goes first; each result is the median of the per-pair ratios.

1. cold pull of the 50-file repo with 20 ms latency added to every request:
   hf/hfa time, goal >= 4 (issue 18; docs/pull.md "Figures" says what bounds it);
2. cold pull of the big file, no latency: hf/hfa time, goal >= 1.0;
3. warm pull of the repo from (1), each tool on its own cache: hfa/hf time, goal <= 0.5.

Every row's detail names how many HTTP requests each tool made (counted by the server) and
its CPU time (user + system). Byte-code caching is left on (PYTHONDONTWRITEBYTECODE is
dropped) so the editable hfa checkout is not recompiled on every run while hf's
site-packages are precompiled. Only 127.0.0.1 is contacted; the server and temp files are removed even on failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import bench_tmpdir, bin_path, goal_met, hub_env, median, row, safetensors_head, write_blob

MIB = 1 << 20
MB = 1_000_000
LATENCY = 0.02  # seconds added to every request in the many-files runs
MANY = "bench/pull-many"
BIG = "bench/pull-big"
BIG_FILE = "model.safetensors"
N_FILES = 50
SERVER_THREADS = 64  # the latency stands for the network's: a real Hub holds no worker while a packet travels
GOAL_COLD = ">= 4"  # hf time / hfa time
GOAL_BIG = ">= 1.0"  # hf time / hfa time
GOAL_WARM = "<= 0.5"  # hfa time / hf time
TIMEOUT = 120  # seconds for one small pull
BIG_TIMEOUT = 600  # seconds for one pull of the big file


# -- the repositories ------------------------------------------------------------------
def _text(seed: str, size: int) -> str:
    """Deterministic text of exactly ``size`` characters."""
    return hashlib.shake_256(seed.encode()).hexdigest((size + 1) // 2)[:size]


def _many_files() -> dict[str, bytes | str]:
    from hfa.testing import make_safetensors

    files: dict[str, bytes | str] = {
        "README.md": "---\nlicense: mit\nlibrary_name: transformers\n---\n\n# pull benchmark\n",
        "config.json": json.dumps({"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4}),
        "generation_config.json": json.dumps({"bos_token_id": 1, "eos_token_id": 2, "max_length": 2048}),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"vocab": {f"tok{i}": i for i in range(20_000)}}}),
        "tokenizer_config.json": json.dumps({"model_max_length": 2048, "tokenizer_class": "LlamaTokenizer"}),
        "special_tokens_map.json": json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
        "vocab.json": json.dumps({f"tok{i}": i for i in range(5_000)}),
        "merges.txt": "\n".join(f"t{i} o{i}" for i in range(8_000)),
    }
    shards = 4
    weight_map: dict[str, str] = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        tensor = f"model.layers.{i}.weight"
        files[name] = make_safetensors({tensor: ("F32", [256, 512])}, seed=i)  # 512 KiB each
        weight_map[tensor] = name
    files["model.safetensors.index.json"] = json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map})
    sizes = (4_096, 16_384, 65_536, 262_144)
    i = 0
    while len(files) < N_FILES:
        size = sizes[i % len(sizes)]
        if i % 2:
            files[f"data/part-{i:02d}.json"] = json.dumps({"part": i, "data": _text(f"part{i}", size - 30)})
        else:
            files[f"data/part-{i:02d}.txt"] = _text(f"part{i}", size)
        i += 1
    return files


_write_blob = write_blob  # the shared helper in _common


def _build(cache: Path, big_size: int) -> tuple[dict[str, int], dict[str, int]]:
    """Both repositories into ``cache``; return {path: size} of each."""
    from hfa.cache.layout import RepoDir
    from hfa.testing import write_repo

    many = _many_files()
    write_repo(cache, MANY, many)
    blob = _write_blob(RepoDir(cache, "model", BIG).blobs, big_size, safetensors_head(big_size))  # a valid file
    # The blob is already where write_repo would put it: it hashes the Path, finds the blob, copies nothing.
    write_repo(cache, BIG, {BIG_FILE: blob}, lfs={BIG_FILE: True})
    sizes = {p: len(c.encode() if isinstance(c, str) else c) for p, c in many.items()}
    return sizes, {BIG_FILE: big_size}


# -- running the tools -----------------------------------------------------------------
def _argv(tool: str, repo: str, url: str, cache: Path) -> list[str]:
    if tool == "hfa":
        return [bin_path("hfa"), "pull", repo, "--endpoint", url, "--cache-dir", str(cache), "-q"]
    return [bin_path("hf"), "download", repo, "--cache-dir", str(cache), "--quiet"]


def _snapshot_files(cache: Path, repo: str) -> dict[str, int]:
    """{path: size} of every file in the repo's snapshot(s) in ``cache`` (symlinks followed)."""
    snaps = cache / ("models--" + repo.replace("/", "--")) / "snapshots"
    out: dict[str, int] = {}
    if not snaps.is_dir():
        return out
    for snap in snaps.iterdir():
        for path in snap.rglob("*"):
            if path.is_file():
                out[path.relative_to(snap).as_posix()] = path.stat().st_size
    return out


class Runner:
    def __init__(self, server: Any, env: dict[str, str]) -> None:
        self.server = server
        self.env = env

    def pull(
        self, tool: str, repo: str, cache: Path, expected: dict[str, int], timeout: float
    ) -> tuple[float, float, Counter]:
        """One pull into ``cache``; return (wall seconds, CPU seconds, Counter of request methods); check it."""
        argv = _argv(tool, repo, self.server.url, cache)
        env = {**self.env, "HF_HUB_CACHE": str(cache)}
        self.server.reset_requests()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the one child just reaped
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        requests = Counter(method for method, _ in self.server.requests)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err}")
        got = _snapshot_files(cache, repo)
        if got != expected:
            missing = sorted(set(expected) - set(got))[:5]
            extra = sorted(set(got) - set(expected))[:5]
            raise RuntimeError(
                f"{tool} left {len(got)} files of {repo}, expected {len(expected)} (missing {missing}, extra {extra},"
                f" or sizes differ)"
            )
        return elapsed, cpu, requests


def _check_selection(runner: Runner, tmp: Path, expected: dict[str, int]) -> None:
    """hfa's default selection must be the whole repo, or the comparison is not like for like."""
    cache = tmp / "dry-run"
    argv = [*_argv("hfa", MANY, runner.server.url, cache)[:-1], "--dry-run", "--json"]
    proc = subprocess.run(argv, env={**runner.env, "HF_HUB_CACHE": str(cache)}, capture_output=True, timeout=TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"hfa pull --dry-run failed: {proc.stderr.decode('utf-8', 'replace')[-1500:]}")
    doc = json.loads(proc.stdout)
    chosen = {f["path"] for f in doc["files"]}
    if chosen != set(expected):
        raise RuntimeError(
            f"hfa selects {len(chosen)} of the {len(expected)} files of {MANY}"
            f" (skips {sorted(set(expected) - chosen)[:8]}): fix the benchmark's repo to match the selection"
        )
    shutil.rmtree(cache, ignore_errors=True)


def _fmt_requests(c: Counter) -> str:
    n = sum(c.values())
    return f"{n} request{'' if n == 1 else 's'} ({', '.join(f'{k} {m}' for m, k in sorted(c.items()))})"


@dataclass
class Series:
    """Interleaved runs of both tools on one task."""

    times: dict[str, list[float]] = field(default_factory=lambda: {"hfa": [], "hf": []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"hfa": [], "hf": []})
    reqs: dict[str, Counter] = field(default_factory=dict)  # of each tool's last run

    def ratio(self, hfa_over_hf: bool) -> float:
        """Median of the per-pair ratios: adjacent runs share the machine's slow drifts."""
        pairs = zip(self.times["hfa"], self.times["hf"], strict=True)
        return median([a / b if hfa_over_hf else b / a for a, b in pairs])


def _pairs(
    runner: Runner,
    repo: str,
    expected: dict[str, int],
    runs: int,
    fresh: Callable[[str, int], Path],
    timeout: float,
    sync: bool = False,
) -> Series:
    """``runs`` interleaved pulls per tool, alternating who goes first; ``fresh(tool, i)`` gives the cache."""
    series = Series()
    for i in range(runs):
        for tool in ("hfa", "hf") if i % 2 == 0 else ("hf", "hfa"):
            cache = fresh(tool, i)
            if sync:
                os.sync()  # do not let one run pay for the previous run's write-back
            elapsed, cpu, series.reqs[tool] = runner.pull(tool, repo, cache, expected, timeout)
            series.times[tool].append(elapsed)
            series.cpu[tool].append(cpu)
    return series


def _rows(label: str, s: Series, goal: str, hfa_over_hf: bool, note: Callable[[str], str]) -> list[dict[str, Any]]:
    runs = len(s.times["hfa"])
    rows = [
        row(
            f"{label}: {tool}",
            median(ts),
            "s",
            detail=f"median of {runs} (best {min(ts):.3f} s), CPU {median(s.cpu[tool]):.2f} s;"
            f" {_fmt_requests(s.reqs[tool])}{note(tool)}",
        )
        for tool, ts in s.times.items()
    ]
    ratio = s.ratio(hfa_over_hf)
    rows.append(
        row(
            f"{label}: {'hfa/hf' if hfa_over_hf else 'hf/hfa'} time",
            ratio,
            "x",
            goal,
            goal_met(ratio, goal),
            f"median of {runs} paired runs; requests hfa {sum(s.reqs['hfa'].values())}"
            f" vs hf {sum(s.reqs['hf'].values())}",
        )
    )
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    from hfa.server.faults import FaultPlan
    from hfa.server.http import HubServer, ServerConfig

    big_size = 64 * MIB if quick else 1024 * MIB
    cold_runs, warm_runs, big_runs = (2, 3, 1) if quick else (7, 9, 5)
    tmp = bench_tmpdir("hfa-bench-pull-")
    caches = tmp / "caches"
    server: HubServer | None = None
    try:
        free = shutil.disk_usage(tmp).free
        need = 3 * big_size + 512 * MIB  # the served blob, one copy per tool, room to spare
        if free < need:
            raise RuntimeError(f"{tmp}: {free / MIB:.0f} MiB free, need {need / MIB:.0f} MiB")
        many, big = _build(tmp / "served", big_size)
        home = tmp / "hf-home"
        faults = FaultPlan(latency=LATENCY)
        server = HubServer(ServerConfig(cache_dir=tmp / "served", faults=faults, threads=SERVER_THREADS)).start()
        runner = Runner(server, hub_env(server.url, home))

        def fresh(name: str) -> Path:
            shutil.rmtree(caches / name, ignore_errors=True)
            return caches / name

        _check_selection(runner, tmp, many)
        # Warm-up: byte-code caches, the page cache, the server's listings; not timed.
        _pairs(runner, MANY, many, 1, lambda tool, i: fresh(f"{tool}-warmup"), TIMEOUT)
        # 1. cold, many files, 20 ms per request: a fresh cache per run
        cold = _pairs(runner, MANY, many, cold_runs, lambda tool, i: fresh(f"{tool}-{i}"), TIMEOUT)
        # 3. warm: each tool again, on the cache its last cold run filled
        warm = _pairs(runner, MANY, many, warm_runs, lambda tool, i: caches / f"{tool}-{cold_runs - 1}", TIMEOUT)
        shutil.rmtree(caches, ignore_errors=True)
        # 2. cold, one big file, no latency: one cache per tool, emptied before each run
        faults.latency = 0.0
        bulk = _pairs(runner, BIG, big, big_runs, lambda tool, i: fresh(f"{tool}-big"), BIG_TIMEOUT, sync=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    lat = f"; {LATENCY * 1000:.0f} ms per request"
    mib = sum(many.values()) / MIB
    return [
        *_rows(f"cold {N_FILES} files", cold, GOAL_COLD, False, lambda tool: f"; {mib:.1f} MiB{lat}"),
        *_rows(
            f"cold {big_size // MIB} MiB file",
            bulk,
            GOAL_BIG,
            False,
            lambda tool: f"; {big_size / median(bulk.times[tool]) / MB:,.0f} MB/s; no latency",
        ),
        *_rows(f"warm {N_FILES} files", warm, GOAL_WARM, True, lambda tool: lat),
    ]


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
