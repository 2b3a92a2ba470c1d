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
   hf/hfa time, goal >= 1.5;
2. cold pull of the big file, no latency: hf/hfa time, goal >= 1.0;
3. warm pull of the repo from (1), each tool on its own cache: hfa/hf time, goal <= 0.5.

Every row's detail names how many HTTP requests each tool made (counted by the server).
Only 127.0.0.1 is contacted; the server and temp files are removed even on failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import bench_tmpdir, bin_path, clean_env, goal_met, median, row

MIB = 1 << 20
MB = 1_000_000
LATENCY = 0.02  # seconds added to every request in the many-files runs
MANY = "bench/pull-many"
BIG = "bench/pull-big"
BIG_FILE = "model.safetensors"
N_FILES = 50
GOAL_COLD = ">= 1.5"  # hf time / hfa time
GOAL_BIG = ">= 1.0"  # hf time / hfa time
GOAL_WARM = "<= 0.5"  # hfa time / hf time
TIMEOUT = 120  # seconds for one small pull
BIG_TIMEOUT = 600  # seconds for one pull of the big file
# huggingface_hub fetches this registry at most once a day and caches it in HF_HOME; hfa serve
# does not serve it. Seed the cache (empty, as an unreachable Hub would leave it) so neither tool
# spends a request on it: that is what a user who ran hf in the last day sees.
AGENT_REGISTRY = {"standardEnvVars": [], "harnesses": {}}


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


def _write_blob(blobs: Path, size: int) -> Path:
    """Write ``size`` bytes (one random 1 MiB block, repeated) as a blob named by its sha256."""
    blobs.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MIB)
    h = hashlib.sha256()
    tmp = blobs / ".tmp-bench"
    with tmp.open("wb") as fp:
        left = size
        while left > 0:
            chunk = block if left >= MIB else block[:left]
            fp.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    target = blobs / h.hexdigest()
    os.replace(tmp, target)
    return target


def _build(cache: Path, big_size: int) -> tuple[dict[str, int], dict[str, int]]:
    """Both repositories into ``cache``; return {path: size} of each."""
    from hfa.cache import RepoDir
    from hfa.testing import write_repo

    many = _many_files()
    write_repo(cache, MANY, many)
    blob = _write_blob(RepoDir(cache, "model", BIG).blobs, big_size)
    # The blob is already where write_repo would put it: it hashes the Path, finds the blob, copies nothing.
    write_repo(cache, BIG, {BIG_FILE: blob}, lfs={BIG_FILE: True})
    sizes = {p: len(c.encode() if isinstance(c, str) else c) for p, c in many.items()}
    return sizes, {BIG_FILE: big_size}


# -- running the tools -----------------------------------------------------------------
def _env(url: str, home: Path) -> dict[str, str]:
    env = clean_env(
        HF_ENDPOINT=url,
        HF_HOME=str(home),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
    )
    for key in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HUB_ENABLE_HF_TRANSFER", "HF_TOKEN_PATH"):
        env.pop(key, None)
    # An installed tool has its byte-code cached; without this the editable hfa checkout would
    # recompile every module on every run while site-packages (hf) is precompiled.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


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

    def pull(self, tool: str, repo: str, cache: Path, expected: dict[str, int], timeout: float) -> tuple[float, Counter]:
        """One pull into ``cache``; return (wall seconds, Counter of request methods); check the result."""
        argv = _argv(tool, repo, self.server.url, cache)
        env = {**self.env, "HF_HUB_CACHE": str(cache)}
        self.server.reset_requests()
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
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
        return elapsed, requests


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
    return f"{sum(c.values())} requests ({', '.join(f'{n} {m}' for m, n in sorted(c.items()))})"


def _pairs(
    runner: Runner,
    repo: str,
    expected: dict[str, int],
    runs: int,
    fresh: Any,
    timeout: float,
    sync: bool = False,
) -> tuple[dict[str, list[float]], dict[str, Counter]]:
    """``runs`` interleaved pulls per tool; ``fresh(tool, i)`` gives (and clears) the cache dir."""
    times: dict[str, list[float]] = {"hfa": [], "hf": []}
    reqs: dict[str, Counter] = {}
    for i in range(runs):
        for tool in ("hfa", "hf") if i % 2 == 0 else ("hf", "hfa"):
            cache = fresh(tool, i)
            if sync:
                os.sync()  # do not let one run pay for the previous run's write-back
            elapsed, reqs[tool] = runner.pull(tool, repo, cache, expected, timeout)
            times[tool].append(elapsed)
    return times, reqs


def _rows(
    label: str,
    times: dict[str, list[float]],
    reqs: dict[str, Counter],
    goal: str,
    hfa_over_hf: bool,
    note: str,
) -> list[dict[str, Any]]:
    runs = len(times["hfa"])
    pairs = list(zip(times["hfa"], times["hf"], strict=True))
    ratio = median([a / b for a, b in pairs] if hfa_over_hf else [b / a for a, b in pairs])
    rows = [
        row(
            f"{label}: {tool}",
            median(ts),
            "s",
            detail=f"median of {runs} (best {min(ts):.3f} s); {_fmt_requests(reqs[tool])}{note}",
        )
        for tool, ts in times.items()
    ]
    name = f"{label}: {'hfa/hf' if hfa_over_hf else 'hf/hfa'} time"
    rows.append(
        row(
            name,
            ratio,
            "x",
            goal,
            goal_met(ratio, goal),
            f"median of {runs} paired runs; requests hfa {sum(reqs['hfa'].values())} vs hf {sum(reqs['hf'].values())}",
        )
    )
    return rows


def run(quick: bool) -> list[dict[str, Any]]:
    from hfa.server.faults import FaultPlan
    from hfa.server.http import HubServer, ServerConfig

    big_size = 64 * MIB if quick else 1024 * MIB
    cold_runs, warm_runs, big_runs = (2, 3, 1) if quick else (7, 9, 3)
    tmp = bench_tmpdir("hfa-bench-pull-")
    server: HubServer | None = None
    try:
        free = shutil.disk_usage(tmp).free
        need = 3 * big_size + 512 * MIB  # the served blob, one copy per tool, room to spare
        if free < need:
            raise RuntimeError(f"{tmp}: {free / MIB:.0f} MiB free, need {need / MIB:.0f} MiB")
        many, big = _build(tmp / "served", big_size)
        home = tmp / "hf-home"
        home.mkdir()
        (home / ".agent_harnesses.json").write_text(json.dumps(AGENT_REGISTRY), encoding="utf-8")
        faults = FaultPlan(latency=LATENCY)
        server = HubServer(ServerConfig(cache_dir=tmp / "served", faults=faults)).start()
        runner = Runner(server, _env(server.url, home))

        def fresh(tool: str, i: int) -> Path:
            cache = tmp / "caches" / f"{tool}-{i}"
            shutil.rmtree(cache, ignore_errors=True)
            return cache

        def fresh_latest(tool: str, i: int) -> Path:
            # One cache per tool, emptied before each run (the big file: keep at most one copy each).
            cache = tmp / "caches" / f"{tool}-big"
            shutil.rmtree(cache, ignore_errors=True)
            return cache

        _check_selection(runner, tmp, many)
        # Warm-up: byte-code caches, the page cache, the server's listings; not timed.
        _pairs(runner, MANY, many, 1, lambda tool, i: fresh(tool, -1), TIMEOUT)

        # 1. cold, many files, 20 ms per request
        cold, cold_reqs = _pairs(runner, MANY, many, cold_runs, fresh, TIMEOUT)
        # 3. warm: the same tool again on the cache its last cold run filled
        last = cold_runs - 1
        warm, warm_reqs = _pairs(runner, MANY, many, warm_runs, lambda tool, i: tmp / "caches" / f"{tool}-{last}", TIMEOUT)
        for tool in ("hfa", "hf"):
            for i in range(-1, cold_runs):
                shutil.rmtree(tmp / "caches" / f"{tool}-{i}", ignore_errors=True)

        # 2. cold, one big file, no latency
        faults.latency = 0.0
        big_times, big_reqs = _pairs(runner, BIG, big, big_runs, fresh_latest, BIG_TIMEOUT, sync=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    total = sum(many.values())
    rate = {tool: big_size / median(ts) / MB for tool, ts in big_times.items()}
    lat = f"; {LATENCY * 1000:.0f} ms per request"
    rows = _rows(
        f"cold {N_FILES} files",
        cold,
        cold_reqs,
        GOAL_COLD,
        False,
        f"; {total / MIB:.1f} MiB{lat}",
    )
    rows += _rows(
        f"cold {big_size // MIB} MiB file",
        big_times,
        big_reqs,
        GOAL_BIG,
        False,
        "; no latency",
    )
    for r, tool in zip(rows[-3:-1], ("hfa", "hf"), strict=True):
        r["detail"] += f"; {rate[tool]:,.0f} MB/s"
    rows += _rows(f"warm {N_FILES} files", warm, warm_reqs, GOAL_WARM, True, lat)
    return rows


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
