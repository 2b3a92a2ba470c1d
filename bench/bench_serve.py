"""Download throughput of ``hfa serve`` against ``python -m http.server`` and the pre-waitress hfa server,
and hf_hub_download from hfa serve.

One LFS file (1 GiB; 64 MiB with --quick) is written straight into a huggingface_hub cache under
/tmp; ``python -m http.server`` serves a hard link to the same blob, so every server reads the same
inode from the same page cache. The servers, side by side in one run:

- ``hfa serve``: this tree's server (the WSGI app on waitress; file answers read 256 KiB at a time,
  each byte once, and sent from memory);
- ``hfa serve, sendfile``: the same with ``HFA_SERVE_SENDFILE=1`` (on Linux): file answers sent with
  ``os.sendfile`` (an option; see hfa.server.http.file_wrapper);
- ``http.server``: ``python -m http.server`` (a thread per connection, 64 KiB reads and ``sendall``);
- ``hfa serve (pre-waitress)``: hfa's own ``http.server``-based server as it was before waitress
  (commit 2ff5dc1, the parent of "hfa serve is a WSGI app ... run by waitress"; it is no longer in
  the tree), extracted from git history with ``git archive`` and run with this venv; a row says
  so when there is no history (a shallow clone);
- ``HFA_BENCH_SERVE_REVS=REV[,REV…]``: more hfa servers from git revisions, e.g. the branch point of
  a change, for a before/after in the same run.

The same ``curl -o /dev/null`` fetches the file from each (one warm-up each, then rounds in which
every server is fetched once, in an order rotated each round). Figures:

- MB/s per server: the median over rounds of curl's own size/time (wall clock of one fetch);
- ratio hfa/peer: the median over rounds of (hfa MB/s / peer MB/s) within the same round (adjacent
  fetches, so a slow drift of a shared machine cancels out); goal >= 1.0 against http.server;
- CPU s/GiB: the server process's user+system CPU time (``/proc/PID/stat``, all its threads)
  across all timed fetches, divided by the GiB it served: what serving costs the machine, which
  wall time on a loaded machine hides. curl's own CPU (receiving) is not in it.

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
import tarfile
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
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
PRE_WAITRESS = "2ff5dc11a3945c97515864b504b18fa264728726"  # the last commit with hfa's http.server-based server
HFA = "hfa serve"
PEER = "http.server"
OLD = "hfa serve (pre-waitress)"
SENDFILE = "hfa serve, sendfile"

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


def _hfa_at(rev: str, dest: Path) -> Path:
    """The ``hfa`` package as it was at git revision ``rev``, extracted under ``dest``; return ``dest``."""
    dest.mkdir(parents=True)
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "hfa"], capture_output=True, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git archive {rev}: {proc.stderr.decode(errors='replace').strip()[-300:]}")
    tar = dest / "hfa.tar"
    tar.write_bytes(proc.stdout)
    with tarfile.open(tar) as archive:
        archive.extractall(dest, filter="data")
    tar.unlink()
    return dest


def _start_hfa_from(tree: Path, cache: Path, log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m hfa serve`` of ``cache`` with the hfa package of ``tree`` first on the path."""
    argv = [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(cache), "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=tree,
            env=clean_env(PYTHONPATH=str(tree), **env),
        )
    try:
        url = read_line(proc, START_TIMEOUT)
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"hfa serve ({tree.name}) printed {url!r}; log: {log_tail(log)}")
    except BaseException:
        stop_process(proc)
        raise
    return proc, url.rstrip("/")


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
        path = f"/{REPO_ID}/resolve/main/{FILENAME}"
        urls = {HFA: hfa_url + path, PEER: f"{hs_url}/{FILENAME}"}
        servers = {HFA: hfa_proc, PEER: hs_proc}
        missing: dict[str, str] = {}  # a server that could not be measured: why
        revs = [(OLD, PRE_WAITRESS)] + [
            (f"hfa serve @{r.strip()}", r.strip())
            for r in os.environ.get("HFA_BENCH_SERVE_REVS", "").split(",")
            if r.strip()
        ]
        if sys.platform.startswith("linux"):  # this tree's server with os.sendfile
            proc, url = _start_hfa_from(ROOT, cache, tmp / "sendfile.log", HFA_SERVE_SENDFILE="1")
            procs.append(proc)
            urls[SENDFILE], servers[SENDFILE] = url + path, proc
        for i, (name, rev) in enumerate(revs):
            try:
                tree = _hfa_at(rev, tmp / f"rev{i}")
                proc, url = _start_hfa_from(tree, cache, tmp / f"rev{i}.log")
            except (OSError, RuntimeError, subprocess.SubprocessError, tarfile.TarError) as exc:
                missing[name] = f"not measured: {str(exc).splitlines()[0][:200]}"
                continue
            procs.append(proc)
            urls[name], servers[name] = url + path, proc
        for url in urls.values():  # warm-up (and a check that every server sends the whole file)
            _curl(url, size)
        rates: dict[str, list[float]] = {name: [] for name in urls}
        cpu: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for i in range(runs):
            order = names[i % len(names) :] + names[: i % len(names)]  # rotate who goes first
            for name in order:
                before = _cpu_seconds(servers[name].pid)
                rates[name].append(_curl(urls[name], size)[1])
                after = _cpu_seconds(servers[name].pid)
                if before is not None and after is not None:
                    cpu[name].append(after - before)
        # http.server and the older servers are no longer needed; stop them so they do not compete for CPU.
        for name, proc in servers.items():
            if name != HFA:
                stop_process(proc)
        throughput_rows = _throughput_rows(names, rates, cpu, missing, runs, size)

        # Writing to disk is a large part of any download: curl writing a file is the baseline for hf_hub_download.
        to_file: list[float] = []
        downloads: list[dict[str, Any]] = []
        for _ in range(hf_runs):
            os.sync()  # do not let one run pay for the previous run's write-back
            to_file.append(_curl(urls[HFA], size, str(tmp / "curl-out.bin"))[0])
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
        *throughput_rows,
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


def _throughput_rows(
    names: list[str],
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    missing: dict[str, str],
    runs: int,
    size: int,
) -> list[dict[str, Any]]:
    """A row per server (median MB/s, CPU s/GiB), then hfa's ratio to each peer (median of per-round ratios)."""
    mib = f"{size // MIB} MiB file"
    rows = []
    for name in names:
        c = cpu[name]  # summed over all runs: /proc counts in clock ticks, too coarse for one small fetch
        cpu_note = f", server CPU {sum(c) / (len(c) * size / GIB):.3f} s/GiB" if c else ""
        rows.append(
            row(
                f"{name} GET (curl)",
                median(rates[name]) / MB,
                "MB/s",
                detail=f"median of {runs}, best {max(rates[name]) / MB:,.0f} MB/s, {mib}{cpu_note}",
            )
        )
    for name in names:
        c = cpu[name]
        if c:
            rows.append(row(f"{name} CPU per GiB served", sum(c) / (len(c) * size / GIB), "s", detail="user+sys"))
    for name, why in missing.items():
        rows.append(row(f"{name} GET (curl)", None, "MB/s", detail=why))
    for name in names:
        if name == HFA:
            continue
        ratio = median([a / b for a, b in zip(rates[HFA], rates[name], strict=True)])
        best = max(rates[HFA]) / max(rates[name])
        goal = GOAL if name == PEER else None
        rows.append(
            row(
                f"serve throughput hfa/{name}",
                ratio,
                "x",
                goal,
                goal_met(ratio, GOAL) if goal else None,
                f"median of {runs} per-round ratios; ratio of bests {best:.2f}",
            )
        )
    return rows


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
