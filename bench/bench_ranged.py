"""A big file on a link that caps each connection, as a CDN edge does: ``hfa pull`` (parallel ranges,
every byte hashed) beside ``hf download``, hf_transfer (8 and 16 connections; it verifies nothing)
and curl (one connection), side by side in one run.

One ``hfa serve`` (a subprocess) serves ``bench/ranged``: one ``model.safetensors`` of 256 MiB
(64 MiB with --quick). ``bench/throttle.py`` (a subprocess) relays it at 40 MB/s per connection.
Every tool runs as a subprocess into a fresh folder (wall time, start-up included); runs rotate
which tool goes first; each figure is a median (1 run each with --quick): single runs on this
2-core machine vary by up to 2x (the proxy, the server and the client share the cores). On the
capped link the tools that take about a second (hfa, hf_transfer) rotate among themselves for 9
runs each, and the one-connection tools (hf download, curl: 7 s a run) for 3 after them; the
unthrottled rows take 5 runs each. A run
right after 7 s with the cores mostly idle (curl, or a 7 s sleep) measured ~0.25 s slower
whichever tool it was (hfa 0.94-0.98 s against 0.70-0.76 s, hf_transfer-16 0.97-1.17 s against
0.71-0.86 s), and in one rotation of all five hfa followed curl in 4 rounds of 5. The fast runs
still land either way (~0.7 or ~0.9 s, both tools), so the goal's ratio takes 9 of each.

1. capped: every tool through the throttling proxy. Goals (issue 18): hfa within 1.2x of
   hf_transfer with 16 connections (hfa/hf_transfer time <= 1.2), and at least 6x ``hf download``.
2. unthrottled, straight to the server: hfa's ranged path (which measures its first connection and
   keeps one stream when that reaches ``HFA_RANGED_TARGET``) against hfa with ranges disabled
   (``HFA_RANGED_THRESHOLD`` above the file's size, the single-stream path), hfa opening every
   connection at once (``HFA_RANGED_TARGET=0``, for information) and ``hf download``; goal: the
   ranged path is not slower than the single stream (single/ranged time >= 1.0).
3. kill and resume, capped: ``hfa pull`` is killed (SIGKILL) once the proxy has relayed half
   the file, then run again; the time the second run takes to finish, and the bytes fetched
   twice (what the proxy relayed over both runs, less the file's size: ranges in flight at
   the kill, plus HTTP headers).

hf_transfer is driven by calling ``hf_transfer.download`` (huggingface_hub 1.x and later no longer
use it under ``HF_HUB_ENABLE_HF_TRANSFER``) with 10 MB chunks, as huggingface_hub did. Only
127.0.0.1 is contacted; the processes and temp files are removed even on failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    bench_tmpdir,
    bin_path,
    goal_met,
    hub_env,
    median,
    read_line,
    row,
    start_hfa_serve,
    stop_process,
    write_big_repo,
)

MIB = 1 << 20
MB = 1_000_000
RATE = 40 * MB  # bytes/s per connection through the proxy
REPO = "bench/ranged"
FILE = "model.safetensors"
GOAL_VS_TRANSFER = "<= 1.2"  # hfa time / hf_transfer (16 connections) time
GOAL_VS_HF = ">= 6"  # hf download time / hfa time
GOAL_UNTHROTTLED = ">= 1.0"  # single-stream time / ranged time
TIMEOUT = 600

_TRANSFER = (
    "import sys, hf_transfer; "
    "hf_transfer.download(sys.argv[1], sys.argv[2], max_files=int(sys.argv[3]), chunk_size=10 * 1024 * 1024)"
)


class Bench:
    def __init__(self, tmp: Path, home: Path, size: int) -> None:
        self.tmp = tmp
        self.home = home
        self.size = size
        self.url = ""

    def argv(self, tool: str, url: str, out: Path) -> tuple[list[str], dict[str, str]]:
        env = hub_env(url, self.home)
        file_url = f"{url}/{REPO}/resolve/main/{FILE}"
        if tool in ("hfa", "hfa-single", "hfa-all"):
            if tool == "hfa-single":
                env["HFA_RANGED_THRESHOLD"] = str(self.size + 1)
            if tool == "hfa-all":
                env["HFA_RANGED_TARGET"] = "0"
            argv = [bin_path("hfa"), "pull", REPO, "--endpoint", url, "--cache-dir", str(out), "-q"]
            return argv, env
        if tool == "hf":
            return [bin_path("hf"), "download", REPO, FILE, "--cache-dir", str(out), "--quiet"], env
        if tool.startswith("hf_transfer-"):
            out.mkdir(parents=True, exist_ok=True)
            return [sys.executable, "-c", _TRANSFER, file_url, str(out / FILE), tool.split("-")[1]], env
        if tool == "curl":
            out.mkdir(parents=True, exist_ok=True)
            return ["curl", "-sSf", "-o", str(out / FILE), file_url], env
        raise ValueError(tool)

    def run(self, tool: str, url: str) -> float:
        out = self.tmp / "out" / tool
        shutil.rmtree(out, ignore_errors=True)
        argv, env = self.argv(tool, url, out)
        os.sync()  # no run pays for the previous run's write-back
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise RuntimeError(f"{tool}: {' '.join(argv[:3])} … exited {proc.returncode}: {err}")
        got = [p for p in out.rglob(FILE) if p.is_file()]
        if not got or got[0].stat().st_size != self.size:
            raise RuntimeError(f"{tool} left no {FILE} of {self.size} bytes in {out}")
        shutil.rmtree(out, ignore_errors=True)
        return elapsed

    def series(self, tools: list[str], url: str, runs: int) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {t: [] for t in tools}
        for i in range(runs):
            order = tools[i % len(tools) :] + tools[: i % len(tools)]
            for tool in order:
                times[tool].append(self.run(tool, url))
        return times


def _relayed(stats: Path) -> int:
    try:
        return int(stats.read_text(encoding="utf-8") or 0)
    except (OSError, ValueError):
        return 0


def _recorded(out: Path) -> int:
    """Bytes the ranged pull into ``out`` has recorded as written (hfa.hub.ranged's record)."""
    import json

    for record in out.glob("*/.hfa/partials/*.json"):
        try:
            return sum(b - a for a, b in json.loads(record.read_text(encoding="utf-8"))["done"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0
    return 0


def _kill_and_resume(bench: Bench, url: str, stats: Path) -> tuple[float, int, float]:
    """(seconds the rerun took, bytes relayed beyond the file's size over both runs, share recorded at the kill)."""
    out = bench.tmp / "out" / "kill"
    shutil.rmtree(out, ignore_errors=True)
    argv, env = bench.argv("hfa", url, out)
    time.sleep(0.2)
    before = _relayed(stats)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + TIMEOUT
    try:
        while _recorded(out) < bench.size // 2:
            if proc.poll() is not None:
                raise RuntimeError("hfa pull finished before it could be killed at 50 %")
            if time.monotonic() > deadline:
                raise RuntimeError("hfa pull did not reach 50 % in time")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        stop_process(proc)
    at_kill = _recorded(out)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the rerun after the kill failed: {done.stderr.decode('utf-8', 'replace')[-1500:]}")
    time.sleep(0.2)
    total = _relayed(stats) - before
    shutil.rmtree(out, ignore_errors=True)
    return elapsed, total - bench.size, at_kill / bench.size


def _start_proxy(upstream: str, stats: Path) -> tuple[subprocess.Popen[bytes], str]:
    host_port = upstream.removeprefix("http://")
    argv = [sys.executable, str(BENCH_DIR / "throttle.py"), "--upstream", host_port, "--rate", str(RATE)]
    proc = subprocess.Popen([*argv, "--stats", str(stats)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        return proc, read_line(proc, 30)
    except BaseException:
        stop_process(proc)
        raise


def run(quick: bool) -> list[dict[str, Any]]:
    size = 64 * MIB if quick else 256 * MIB
    runs = 1 if quick else 5
    fast_runs, slow_runs = (1, 1) if quick else (9, 3)
    tmp = bench_tmpdir("hfa-bench-ranged-")
    server = proxy = None
    try:
        free = shutil.disk_usage(tmp).free
        if free < 3 * size + 256 * MIB:
            raise RuntimeError(f"{tmp}: {free / MIB:.0f} MiB free, need {(3 * size + 256 * MIB) / MIB:.0f} MiB")
        write_big_repo(tmp / "served", REPO, FILE, size, "ranged download benchmark")
        server, url = start_hfa_serve(tmp / "served", tmp / "serve.log", extra=["--threads", "48"])
        stats = tmp / "relayed"
        proxy, capped = _start_proxy(url, stats)
        bench = Bench(tmp, tmp / "hf-home", size)
        bench.run("hfa", url)  # warm-up: byte-code, the page cache, the server; not timed
        # The tools that take about a second rotate among themselves, then the two that take seven:
        # a run right after a seven-second one (one connection at 40 MB/s, the cores mostly idle) took
        # ~0.25 s longer here whichever tool it was, and with all five in one rotation hfa followed
        # curl in 4 rounds of 5.
        slow = bench.series(["hfa", "hf_transfer-8", "hf_transfer-16"], capped, fast_runs)
        slow.update(bench.series(["hf", "curl"], capped, slow_runs))
        fast = bench.series(["hfa", "hfa-single", "hfa-all", "hf"], url, runs)
        resume, twice, at_kill = _kill_and_resume(bench, capped, stats)
    finally:
        stop_process(proxy)
        stop_process(server)
        shutil.rmtree(tmp, ignore_errors=True)
    return _rows(size, slow, fast, resume, twice, at_kill)


def _rows(
    size: int,
    slow: dict[str, list[float]],
    fast: dict[str, list[float]],
    resume: float,
    twice: int,
    at_kill: float,
) -> list[dict[str, Any]]:
    mib = size // MIB
    label = f"{mib} MiB at {RATE // MB} MB/s per connection"
    names = {
        "hfa": "hfa pull (up to 16 connections as measured, verified)",
        "hfa-single": "hfa pull, ranges disabled (one stream)",
        "hfa-all": "hfa pull, 16 connections at once (HFA_RANGED_TARGET=0)",
        "hf": "hf download",
        "hf_transfer-8": "hf_transfer, 8 connections",
        "hf_transfer-16": "hf_transfer, 16 connections",
        "curl": "curl, one connection",
    }

    def timing(prefix: str, times: dict[str, list[float]]) -> list[dict[str, Any]]:
        out = []
        for tool, ts in times.items():
            m = median(ts)
            each = " ".join(f"{t:.2f}" for t in ts)
            detail = f"median of {len(ts)} (runs {each} s); {size / m / MB:,.0f} MB/s"
            out.append(row(f"{prefix}: {names[tool]}", m, "s", detail=detail))
        return out

    def ratio(name: str, a: list[float], b: list[float], goal: str, detail: str) -> dict[str, Any]:
        value = median(a) / median(b)
        best = f"; best of {len(a)} against best of {len(b)}: {min(a) / min(b):.2f}x"  # this VM's runs that write at disk speed vary
        return row(name, value, "x", goal, goal_met(value, goal), detail + best)

    hfa_capped = median(slow["hfa"])
    return [
        *timing(f"capped {label}", slow),
        ratio(
            f"capped {mib} MiB: hfa/hf_transfer-16 time",
            slow["hfa"],
            slow["hf_transfer-16"],
            GOAL_VS_TRANSFER,
            "hf_transfer verifies nothing; hfa hashes every byte before publishing",
        ),
        ratio(f"capped {mib} MiB: hf/hfa time", slow["hf"], slow["hfa"], GOAL_VS_HF, "hf download: one connection"),
        *timing(f"unthrottled {mib} MiB", fast),
        ratio(
            f"unthrottled {mib} MiB: single-stream/ranged time",
            fast["hfa-single"],
            fast["hfa"],
            GOAL_UNTHROTTLED,
            "parallel ranges must not make the fast case slower than one stream",
        ),
        row(
            f"capped {mib} MiB: finish after a kill at 50 %",
            resume,
            "s",
            detail=f"killed with {at_kill:.0%} recorded; a cold pull takes {hfa_capped:.2f} s",
        ),
        row(
            f"capped {mib} MiB: bytes fetched twice after the kill",
            twice / MIB,
            "MiB",
            detail="relayed over both runs less the file's size: what arrived after the last record"
            " (every 50 ms), what sat in socket buffers at the kill, and headers",
        ),
    ]


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
