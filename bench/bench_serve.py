"""Download throughput of ``hfa serve`` against ``python -m http.server``, and hf_hub_download from hfa serve.

One LFS file (1 GiB; 64 MiB with --quick) is written straight into a huggingface_hub cache
under /tmp; ``python -m http.server`` serves a hard link to the same blob, so both servers
read the same inode from the same page cache. The same ``curl -o /dev/null`` fetches each
(one warm-up, then interleaved timed runs); the median of the per-pair throughput ratios
hfa/http.server is the result (goal >= 1.0), with each server's CPU time per GiB beside it.
Then ``hf_hub_download`` fetches the file from hfa serve into a fresh cache (in a subprocess,
timing only the call), beside curl writing the same file to disk as the baseline. Only
127.0.0.1 is contacted; servers and temp files are removed even when something fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import (
    bench_tmpdir,
    clean_env,
    goal_met,
    log_tail,
    median,
    read_line,
    row,
    start_hfa_serve,
    stop_process,
    write_big_repo,
)

GOAL = ">= 1.0"
MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000
REPO_ID = "bench/serve-big"
FILENAME = "model.safetensors"
START_TIMEOUT = 30  # seconds for a server to print its address
FETCH_TIMEOUT = 180  # seconds for one curl fetch
HF_TIMEOUT = 300  # seconds for one hf_hub_download subprocess

HF_DOWNLOAD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from huggingface_hub import hf_hub_download
t1 = time.perf_counter()
path = hf_hub_download(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "download_s": t2 - t1, "path": path, "size": os.path.getsize(path)}))
"""


def _start_http_server(directory: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    argv = [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(directory)]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=clean_env())
    try:
        line = read_line(proc, START_TIMEOUT)
        match = re.search(r"port (\d+)", line)
        if not match:
            raise RuntimeError(f"http.server printed {line!r}; log: {log_tail(log)}")
    except BaseException:
        stop_process(proc)
        raise
    return proc, f"http://127.0.0.1:{match.group(1)}"


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _curl(url: str, expected: int, out: str = "/dev/null") -> tuple[float, float]:
    """Fetch ``url`` to ``out``; return (seconds, bytes per second) as curl measured them."""
    fmt = "%{http_code} %{size_download} %{time_total}"
    argv = ["curl", "-sS", "--noproxy", "*", "--max-time", str(FETCH_TIMEOUT), "-o", out, "-w", fmt, url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT + 15, env=clean_env())
    if proc.returncode != 0:
        raise RuntimeError(f"curl {url} failed ({proc.returncode}): {proc.stderr.strip()}")
    code, got, seconds = proc.stdout.split()
    if code != "200" or int(float(got)) != expected:
        raise RuntimeError(f"curl {url}: HTTP {code}, {got} bytes (expected 200, {expected} bytes)")
    secs = float(seconds)
    return secs, expected / secs


def _hf_download(url: str, tmp: Path, expected: int) -> dict[str, Any]:
    cache = tmp / "hf-download-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = clean_env(
        HF_ENDPOINT=url,
        HF_HOME=str(tmp / "hf-home"),
        HF_HUB_CACHE=str(cache),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
    )
    env.pop("HF_HUB_OFFLINE", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", HF_DOWNLOAD, REPO_ID, FILENAME, str(cache)],
            capture_output=True,
            text=True,
            timeout=HF_TIMEOUT,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"hf_hub_download failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if result["size"] != expected:
            raise RuntimeError(f"hf_hub_download wrote {result['size']} bytes, expected {expected}")
        return result
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run(quick: bool) -> list[dict[str, Any]]:
    size = 64 * MIB if quick else 1024 * MIB
    runs = 3 if quick else 9
    hf_runs = 1 if quick else 2
    if shutil.which("curl") is None:
        raise FileNotFoundError("curl is needed on PATH")
    tmp = bench_tmpdir("hfa-bench-serve-")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        free = shutil.disk_usage(tmp).free
        if free < 2 * size + 512 * MIB:  # the blob, one hf_hub_download copy, and room to spare
            raise RuntimeError(f"{tmp}: {free / MIB:.0f} MiB free, need {(2 * size + 512 * MIB) / MIB:.0f} MiB")
        cache = tmp / "hub"
        blob = write_big_repo(cache, REPO_ID, FILENAME, size, "serve benchmark")
        www = tmp / "www"
        www.mkdir()
        try:
            os.link(blob, www / FILENAME)  # same inode: both servers read the same cached pages
        except OSError:
            os.symlink(blob, www / FILENAME)

        hfa_proc, hfa_url = start_hfa_serve(cache, tmp / "hfa-serve.log", START_TIMEOUT)
        procs.append(hfa_proc)
        hs_proc, hs_url = _start_http_server(www, tmp / "http-server.log")
        procs.append(hs_proc)
        urls = {
            "hfa serve": f"{hfa_url}/{REPO_ID}/resolve/main/{FILENAME}",
            "http.server": f"{hs_url}/{FILENAME}",
        }
        servers = {"hfa serve": hfa_proc, "http.server": hs_proc}
        for url in urls.values():  # warm-up (and a check that both serve the whole file)
            _curl(url, size)
        rates: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, list[float]] = {name: [] for name in urls}
        for i in range(runs):
            order = list(urls) if i % 2 == 0 else list(reversed(urls))  # alternate who goes first
            for name in order:
                before = _cpu_seconds(servers[name].pid)
                rates[name].append(_curl(urls[name], size)[1])
                after = _cpu_seconds(servers[name].pid)
                if before is not None and after is not None:
                    cpu[name].append(after - before)
        med = {name: median(r) for name, r in rates.items()}
        best = {name: max(r) for name, r in rates.items()}
        # Runs come in adjacent pairs: the median of per-pair ratios cancels slow drifts of the machine.
        ratio = median([a / b for a, b in zip(rates["hfa serve"], rates["http.server"], strict=True)])
        cpu_note = {  # summed over all runs: /proc counts in clock ticks, too coarse for one small fetch
            name: f", server CPU {sum(c) / (len(c) * size / GIB):.2f} s/GiB" if c else "" for name, c in cpu.items()
        }

        # http.server is no longer needed; stop it so it does not compete for CPU.
        stop_process(hs_proc)
        # Writing to disk is a large part of any download: curl writing a file is the baseline for hf_hub_download.
        to_file: list[float] = []
        downloads: list[dict[str, Any]] = []
        for _ in range(hf_runs):
            os.sync()  # do not let one run pay for the previous run's write-back
            to_file.append(_curl(urls["hfa serve"], size, str(tmp / "curl-out.bin"))[0])
            (tmp / "curl-out.bin").unlink()
            os.sync()
            downloads.append(_hf_download(hfa_url, tmp, size))
        fastest = min(downloads, key=lambda d: d["download_s"])
        hf_rate = size / fastest["download_s"]
        all_secs = ", ".join(f"{d['download_s']:.2f}" for d in downloads)
        curl_file = min(to_file)
    finally:
        for proc in procs:
            stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    mib = f"{size // MIB} MiB file"
    return [
        row(
            "hfa serve GET (curl)",
            med["hfa serve"] / MB,
            "MB/s",
            detail=f"median of {runs}, best {best['hfa serve'] / MB:,.0f} MB/s, {mib}{cpu_note['hfa serve']}",
        ),
        row(
            "http.server GET (curl)",
            med["http.server"] / MB,
            "MB/s",
            detail=f"median of {runs}, best {best['http.server'] / MB:,.0f} MB/s, {mib}{cpu_note['http.server']}",
        ),
        row(
            "serve throughput hfa/http.server",
            ratio,
            "x",
            GOAL,
            goal_met(ratio, GOAL),
            f"median of {runs} paired runs; ratio of bests {best['hfa serve'] / best['http.server']:.2f}",
        ),
        row(
            "curl to a file from hfa serve",
            curl_file,
            "s",
            detail=f"best of {hf_runs}, {size / curl_file / MB:,.0f} MB/s: the disk-bound baseline",
        ),
        row(
            "hf_hub_download from hfa serve",
            fastest["download_s"],
            "s",
            detail=f"best of {hf_runs} ({all_secs} s), {mib} into a fresh cache, "
            f"excl. import ({fastest['import_s']:.2f} s)",
        ),
        row(
            "hf_hub_download throughput",
            hf_rate / MB,
            "MB/s",
            detail=f"{fastest['download_s'] / curl_file:.2f}x the time of curl to a file",
        ),
    ]


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
