"""Warm ``hfa pull --lock`` against the official ``hf download --revision <commit>``: everything cached.

One ``hfa serve`` (:class:`~hfa.server.http.HubServer`, in this process, on 127.0.0.1) serves
``bench/lock-many``, the 50-file repository of bench_pull (configs, tokenizer files, a sharded
safetensors model, JSON/text files of 4-256 KiB: exactly what hfa's default selection takes, so
``hf download``, which takes every file, fetches the same set). ``hfa pin`` writes a lock; then,
untimed, ``hfa pull --lock`` fills one cache and ``hf download REPO --revision <locked commit>``
another. Timed, alternating who goes first: warm runs of both, each on its own full cache
(subprocess wall time, start-up included, same environment as bench_pull).

1. hfa/hf wall time of a warm run (median of per-pair ratios), goal <= 0.5;
2. requests hfa makes per warm run, counted by the server, goal 0 (hf's count is reported beside).

Each run is checked: exit status 0 and the snapshot at the locked commit holds every file at
its size. Startup floors (``python -c pass``, ``hfa --version``) are reported for context.
Only 127.0.0.1 is contacted; the server and temp files are removed even on failure.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _common import bench_tmpdir, bin_path, goal_met, hub_env, median, row, snapshot_files

REPO = "bench/lock-many"
GOAL_RATIO = "<= 0.5"  # hfa time / hf time, warm
GOAL_REQUESTS = "<= 0"  # requests per warm hfa pull from a lock
TIMEOUT = 120  # seconds for one command


def _files() -> dict[str, bytes | str]:
    """bench_pull's 50-file repository; a plain stand-in if that module's builder moved."""
    try:
        from bench_pull import _many_files

        return _many_files()
    except ImportError:
        from hfa.testing import make_safetensors

        files: dict[str, bytes | str] = {
            "README.md": "---\nlicense: mit\n---\n\n# lock benchmark\n",
            "config.json": json.dumps({"model_type": "llama", "hidden_size": 256}),
            "model.safetensors": make_safetensors({"w": ("F32", [256, 512])}),
        }
        for i in range(47):
            files[f"data/part-{i:02d}.txt"] = f"{i}\n" * (2_000 + 4_000 * (i % 4))
        return files


def _expected(files: dict[str, bytes | str]) -> dict[str, int]:
    return {p: len(c.encode() if isinstance(c, str) else c) for p, c in files.items()}


class Runner:
    def __init__(self, server: Any, env: dict[str, str]) -> None:
        self.server = server
        self.env = env

    def run(self, argv: list[str], what: str) -> tuple[float, float, Counter, str]:
        """Run ``argv``; return (wall s, CPU s, Counter of request methods the server saw, stdout)."""
        self.server.reset_requests()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        requests = Counter(method for method, _ in self.server.requests)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise RuntimeError(f"{what}: {' '.join(argv)} exited {proc.returncode}: {err}")
        return elapsed, cpu, requests, proc.stdout.decode("utf-8", "replace")


def _check(tool: str, cache: Path, commit: str, expected: dict[str, int]) -> None:
    got = snapshot_files(cache, REPO, commit)
    if got != expected:
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        wrong = sorted(p for p in set(got) & set(expected) if got[p] != expected[p])[:5]
        raise RuntimeError(
            f"{tool}: snapshot {commit[:12]} holds {len(got)} files, expected {len(expected)}"
            f" (missing {missing}, extra {extra}, wrong size {wrong})"
        )


def _fmt_requests(c: Counter) -> str:
    n = sum(c.values())
    if not n:
        return "0 requests"
    return f"{n} request{'' if n == 1 else 's'} ({', '.join(f'{k} {m}' for m, k in sorted(c.items()))})"


def _floor(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall time of a trivial command: what start-up alone costs."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return median(times)


def run(quick: bool) -> list[dict[str, Any]]:
    from hfa.server.http import HubServer, ServerConfig
    from hfa.testing import write_repo

    runs = 3 if quick else 11
    tmp = bench_tmpdir("hfa-bench-lock-")
    server: HubServer | None = None
    try:
        files = _files()
        expected = _expected(files)
        commit = write_repo(tmp / "served", REPO, files)
        server = HubServer(ServerConfig(cache_dir=tmp / "served")).start()
        env = hub_env(server.url, tmp / "hf-home")
        runner = Runner(server, env)
        lock = tmp / "hfa.lock"
        c1, c2 = tmp / "cache-hfa", tmp / "cache-hf"
        hfa, hf = bin_path("hfa"), bin_path("hf")
        pin = [hfa, "pin", REPO, "--lock", str(lock), "--endpoint", server.url, "--cache-dir", str(tmp / "pin-cache")]
        pull = [hfa, "pull", "--lock", str(lock), "--endpoint", server.url, "--cache-dir", str(c1), "-q"]
        download = [hf, "download", REPO, "--revision", commit, "--cache-dir", str(c2), "--quiet"]

        runner.run(pin, "hfa pin")
        locked = [e for e in _read_lock(lock) if e.get("id") == REPO]
        if len(locked) != 1 or locked[0].get("commit") != commit:
            raise RuntimeError(f"hfa pin wrote {lock.read_text(encoding='utf-8')[:600]!r}; expected commit {commit}")
        if {f["path"] for f in locked[0].get("files", [])} != set(expected):
            raise RuntimeError(f"the lock names {len(locked[0].get('files', []))} files, the repo has {len(expected)}")

        # Cold, untimed: fill each tool's cache (and compile byte-code).
        _, _, cold_hfa, _ = runner.run(pull, "cold hfa pull --lock")
        _check("hfa", c1, commit, expected)
        _, _, cold_hf, _ = runner.run(download, "cold hf download")
        _check("hf", c2, commit, expected)

        times: dict[str, list[float]] = {"hfa": [], "hf": []}
        cpu: dict[str, list[float]] = {"hfa": [], "hf": []}
        reqs: dict[str, list[Counter]] = {"hfa": [], "hf": []}
        argvs = {"hfa": pull, "hf": download}
        caches = {"hfa": c1, "hf": c2}
        for i in range(runs):
            for tool in ("hfa", "hf") if i % 2 == 0 else ("hf", "hfa"):
                elapsed, secs, counted, _ = runner.run(argvs[tool], f"warm {tool}")
                _check(tool, caches[tool], commit, expected)
                times[tool].append(elapsed)
                cpu[tool].append(secs)
                reqs[tool].append(counted)

        floor_runs = 3 if quick else 7
        py_floor = _floor([bin_path("python"), "-c", "pass"], env, floor_runs)
        hfa_floor = _floor([hfa, "--version"], env, floor_runs)
        hf_floor = _floor([hf, "version"], env, floor_runs)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = median([a / b for a, b in zip(times["hfa"], times["hf"], strict=True)])
    most = {tool: max(sum(c.values()) for c in cs) for tool, cs in reqs.items()}
    worst = {tool: max(cs, key=lambda c: sum(c.values())) for tool, cs in reqs.items()}
    rows = [
        row(
            f"warm {len(expected)} files: {tool}",
            median(ts),
            "s",
            detail=f"median of {runs} (best {min(ts):.3f} s), CPU {median(cpu[tool]):.2f} s;"
            f" most requests in a run: {_fmt_requests(worst[tool])}",
        )
        for tool, ts in times.items()
    ]
    rows.append(
        row(
            "warm from lock: hfa/hf time",
            ratio,
            "x",
            GOAL_RATIO,
            goal_met(ratio, GOAL_RATIO),
            f"median of {runs} paired runs; hf download --revision <locked commit>",
        )
    )
    rows.append(
        row(
            "warm from lock: hfa requests",
            most["hfa"],
            "req",
            GOAL_REQUESTS,
            goal_met(most["hfa"], GOAL_REQUESTS),
            f"most in any of {runs} runs, counted by the server; hf: {most['hf']};"
            f" cold runs: hfa {_fmt_requests(cold_hfa)}, hf {_fmt_requests(cold_hf)}",
        )
    )
    rows.append(
        row(
            "start-up floors",
            hfa_floor,
            "s",
            detail=f"hfa --version (median of {floor_runs}); hf version {hf_floor:.3f} s;"
            f" python -c pass {py_floor:.3f} s",
        )
    )
    return rows


def _read_lock(lock: Path) -> list[dict[str, Any]]:
    import tomllib

    doc = tomllib.loads(lock.read_text(encoding="utf-8"))
    return list(doc.get("repo", []))


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
