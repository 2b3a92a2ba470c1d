"""Load test of ``hfa serve``: one big file to many clients at once, and a burst of small API requests.

One LFS file (1 GiB; 128 MiB with --quick) is written straight into a huggingface_hub cache
under /tmp (no copy) and ``hfa serve`` (a subprocess, ``--port 0``) serves it on 127.0.0.1.

1. one client: ``curl -o /dev/null`` of the resolve URL, median throughput of a few runs
   (after one warm-up that also fills the page cache);
2. N clients at once (N = 8 and 16; 8 with --quick), each a ``curl`` fetching the whole file:
   aggregate throughput (all bytes / wall time from the first start to the last finish), each
   client's own throughput (min/max), and errors (curl failing, a status other than 200, a byte
   count other than the file's, from curl's ``%{http_code}`` and ``%{size_download}``).
   Goals: no errors, and aggregate/single >= 0.8 (sharing the server costs at most 20%);
3. a burst of 500 ``GET /api/models/REPO`` from 16 threads (``http.client``, one keep-alive
   connection per thread, reconnecting after a failure): requests/s, latency, errors (goal 0).

The server's CPU time (from /proc) is given per GiB served. Only 127.0.0.1 is contacted;
everything is bounded by timeouts, and the server, clients and temp files are removed even on failure.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import (
    MIB,
    bench_tmpdir,
    clean_env,
    goal_met,
    log_tail,
    median,
    row,
    start_hfa_serve,
    stop_process,
    write_big_repo,
)

GIB = 1 << 30
MB = 1_000_000
REPO_ID = "bench/load-big"
FILENAME = "model.safetensors"
GOAL_RATIO = ">= 0.8"  # aggregate throughput of N clients / one client's
GOAL_ERRORS = "<= 0"
FETCH_TIMEOUT = 90  # seconds for one curl (each client of a concurrent round included)
API_TIMEOUT = 10  # seconds for one API request
API_REQUESTS = 500
API_THREADS = 16
API_DEADLINE = 60  # seconds for the whole burst


@dataclass
class Fetch:
    ok: bool
    seconds: float  # curl's time_total
    size: int  # bytes curl received
    error: str = ""


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _curl_argv(url: str) -> list[str]:
    fmt = "%{http_code} %{size_download} %{time_total}"
    return ["curl", "-sS", "--noproxy", "*", "--max-time", str(FETCH_TIMEOUT), "-o", "/dev/null", "-w", fmt, url]


def _parse(returncode: int, stdout: str, stderr: str, expected: int) -> Fetch:
    try:
        code, got, seconds = stdout.split()
        size, secs = int(float(got)), float(seconds)
    except ValueError:
        return Fetch(False, 0.0, 0, f"curl exit {returncode}, output {stdout!r} {stderr.strip()[:200]}")
    if returncode != 0:
        return Fetch(False, secs, size, f"curl exit {returncode}: {stderr.strip()[:200]}")
    if code != "200" or size != expected:
        return Fetch(False, secs, size, f"HTTP {code}, {size} bytes (expected 200, {expected})")
    return Fetch(True, secs, size)


def _fetch_one(url: str, expected: int) -> Fetch:
    proc = subprocess.run(_curl_argv(url), capture_output=True, text=True, timeout=FETCH_TIMEOUT + 15, env=clean_env())
    return _parse(proc.returncode, proc.stdout, proc.stderr, expected)


def _fetch_many(url: str, expected: int, n: int) -> tuple[list[Fetch], float]:
    """``n`` curls at once; return their results and the wall time from the first start to the last end."""
    procs: list[subprocess.Popen[str]] = []
    env = clean_env()
    try:
        start = time.perf_counter()
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    _curl_argv(url),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env=env,
                )
            )
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=FETCH_TIMEOUT + 15)
            results.append(_parse(proc.returncode, out, err, expected))
        return results, time.perf_counter() - start
    finally:
        for proc in procs:
            stop_process(proc)


@dataclass
class Burst:
    errors: list[str]
    seconds: float
    latencies: list[float]


def _api_burst(base: str, path: str, total: int, threads: int) -> Burst:
    """``total`` GETs of ``path`` spread over ``threads`` threads, each on its own keep-alive connection."""
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lock = threading.Lock()
    left = [total]
    errors: list[str] = []
    latencies: list[float] = []
    deadline = time.monotonic() + API_DEADLINE

    def take() -> bool:
        with lock:
            if left[0] <= 0 or time.monotonic() > deadline:
                return False
            left[0] -= 1
            return True

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        mine: list[float] = []
        bad: list[str] = []
        try:
            while take():
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=API_TIMEOUT)
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path, headers={"Accept": "application/json"})
                    resp = conn.getresponse()
                    body = resp.read()
                    mine.append(time.perf_counter() - t0)
                    if resp.status != 200:
                        bad.append(f"HTTP {resp.status}")
                    elif json.loads(body).get("id") != REPO_ID:
                        bad.append(f"unexpected body {body[:80]!r}")
                    if resp.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    bad.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()
            with lock:
                latencies.extend(mine)
                errors.extend(bad)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(API_DEADLINE + API_TIMEOUT + 5)
    seconds = time.perf_counter() - start
    if any(w.is_alive() for w in workers):
        errors.append("burst did not finish in time")
    with lock:
        if left[0] > 0:
            errors.append(f"{left[0]} requests not sent before the deadline")
    return Burst(errors, seconds, latencies)


def _errors_text(results: list[Fetch]) -> str:
    bad = [f.error for f in results if not f.ok]
    if not bad:
        return "no errors"
    return f"{len(bad)} errors, e.g. {bad[0]}"


def run(quick: bool) -> list[dict[str, Any]]:
    size = 128 * MIB if quick else 1024 * MIB
    single_runs = 3 if quick else 5
    counts = (8,) if quick else (8, 16)
    if shutil.which("curl") is None:
        raise FileNotFoundError("curl is needed on PATH")
    tmp = bench_tmpdir("hfa-bench-load-")
    proc: subprocess.Popen[bytes] | None = None
    log = tmp / "hfa-serve.log"
    try:
        free = shutil.disk_usage(tmp).free
        if free < size + 256 * MIB:
            raise RuntimeError(f"{tmp}: {free / MIB:.0f} MiB free, need {(size + 256 * MIB) / MIB:.0f} MiB")
        cache = tmp / "hub"
        write_big_repo(cache, REPO_ID, FILENAME, size, "load benchmark")
        proc, base = start_hfa_serve(cache, log)
        url = f"{base}/{REPO_ID}/resolve/main/{FILENAME}"

        def served(fn: Any) -> Any:
            """Run ``fn()``; return (its result, server CPU seconds it cost or None)."""
            before = _cpu_seconds(proc.pid)
            out = fn()
            after = _cpu_seconds(proc.pid)
            if proc.poll() is not None:
                raise RuntimeError(f"hfa serve exited ({proc.returncode}); log: {log_tail(log)}")
            return out, (after - before if before is not None and after is not None else None)

        warm = _fetch_one(url, size)  # warm-up: page cache, server threads
        if not warm.ok:
            raise RuntimeError(f"warm-up fetch failed: {warm.error}; log: {log_tail(log)}")

        singles: list[Fetch] = []
        single_cpu = 0.0
        for _ in range(single_runs):
            f, cpu = served(lambda: _fetch_one(url, size))
            singles.append(f)
            single_cpu += cpu or 0.0
        good = [size / f.seconds for f in singles if f.ok and f.seconds > 0]
        single_rate = median(good) if good else 0.0

        rounds: dict[int, tuple[list[Fetch], float, float | None]] = {}
        for n in counts:
            (results, wall), cpu = served(lambda n=n: _fetch_many(url, size, n))
            rounds[n] = (results, wall, cpu)

        api_path = f"/api/models/{REPO_ID}"
        burst, _ = served(lambda: _api_burst(base, api_path, API_REQUESTS, API_THREADS))
    finally:
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    label = f"{size // MIB} MiB"
    cpu_single = f", server CPU {single_cpu / (single_runs * size / GIB):.2f} s/GiB" if single_cpu else ""
    rows = [
        row(
            "1 client (curl)",
            single_rate / MB,
            "MB/s",
            detail=f"median of {single_runs}, best {max(good, default=0) / MB:,.0f} MB/s, {label} file,"
            f" {_errors_text(singles)}{cpu_single}",
        )
    ]
    for n, (results, wall, cpu) in rounds.items():
        ok = [f for f in results if f.ok]
        received = sum(f.size for f in results)
        aggregate = received / wall if wall > 0 else 0.0
        per = [size / f.seconds for f in ok if f.seconds > 0]
        spread = f"per client {min(per) / MB:,.0f}-{max(per) / MB:,.0f} MB/s" if per else "no client finished"
        cpu_note = f", server CPU {cpu / (received / GIB):.2f} s/GiB" if cpu and received else ""
        ratio = aggregate / single_rate if single_rate else 0.0
        errors = len(results) - len(ok)
        rows += [
            row(
                f"{n} clients at once: aggregate",
                aggregate / MB,
                "MB/s",
                detail=f"{n} x {label} in {wall:.2f} s; {spread}{cpu_note}",
            ),
            row(
                f"{n} clients: aggregate/single",
                ratio,
                "x",
                GOAL_RATIO,
                goal_met(ratio, GOAL_RATIO),
                f"{aggregate / MB:,.0f} vs {single_rate / MB:,.0f} MB/s",
            ),
            row(f"{n} clients: errors", errors, "", GOAL_ERRORS, goal_met(errors, GOAL_ERRORS), _errors_text(results)),
        ]
    lat = sorted(burst.latencies)
    pct = (
        f"latency p50 {lat[len(lat) // 2] * 1000:.1f} ms, p99 {lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000:.1f} ms"
        if lat
        else "no responses"
    )
    rows += [
        row(
            "API burst: requests/s",
            len(lat) / burst.seconds if burst.seconds > 0 else 0.0,
            "req/s",
            detail=f"{len(lat)} x GET {api_path} from {API_THREADS} threads (keep-alive) in {burst.seconds:.2f} s; {pct}",
        ),
        row(
            "API burst: errors",
            len(burst.errors),
            "",
            GOAL_ERRORS,
            goal_met(len(burst.errors), GOAL_ERRORS),
            f"first: {burst.errors[0]}" if burst.errors else f"{API_REQUESTS} requests, all 200 with the repo's id",
        ),
    ]
    return rows


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
