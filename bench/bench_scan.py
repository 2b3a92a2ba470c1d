"""Pickle scanning: hfa against picklescan, on the same files in one run, measured two ways.

Two files, written fresh each run: a raw pickle holding one big bytes object (BINBYTES8), and a
torch.save-style zip (data.pkl plus stored tensors). Full size: 200 MB files; ``--quick``: 20 MB.

1. **Command against command** (what a user, a CI step or a pre-commit hook runs):
   ``hfa scan FILE -q`` against ``picklescan --path FILE``, each the installed console script,
   interleaved, one warm-up round. Goals (issue 18): hfa at least as fast on the torch zip, whose
   time is mostly each tool's start-up (ratio of median wall times >= 1), and 3x on the raw pickle.
   The whole process counts: interpreter start-up, each tool's imports, parsing, one scan.
2. **The library embedded in a process** (a loader hook, a script): each scanner in its own
   subprocess of the same interpreter, hfa through ``scan_serialized``, picklescan through its
   CLI entry point called as a function; the subprocess reports its own peak RSS. Goals: hfa at
   least 3x faster and under 50 MB peak. No CLI framework on either side here, so this ratio is
   higher than the commands' (start-up is most of a command's time on a checkpoint).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, bin_path, clean_env, goal_met, median, row, temp_dir

sys.path.insert(0, str(ROOT / "tests"))
from scan_corpus import write_big_pickle, write_torch_zip

SPEED_GOAL = ">= 3"  # the library embedded in a process
COMMAND_GOAL = ">= 1"  # hfa scan FILE against picklescan --path FILE: the torch zip
COMMAND_GOAL_RAW = ">= 3"  # the same on the raw pickle
MEMORY_GOAL = "< 50"
TIMEOUT = 600

# Each snippet scans argv[1] and prints one line: import seconds, scan seconds, peak RSS (KiB) and
# the verdict, space-separated. Neither imports anything for the harness's sake (json alone costs
# ~5 ms here, which both would pay): what is measured is each tool's own start, imports and scan.
# The peak is VmHWM, the process's own; ru_maxrss would not do: Linux carries the parent's peak
# into a child at exec, so a bench parent that had loaded torch would show in both tools.
PEAK = """
def peak_kb():
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""
HFA = """
import sys, time
t0 = time.perf_counter()
from hfa.scan.archive import scan_serialized
from hfa.scan.model import ScanPolicy
t1 = time.perf_counter()
with open(sys.argv[1], "rb") as fp:
    found = scan_serialized(fp, sys.argv[1], ScanPolicy())
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, peak_kb(), -1 if found is None else len(found))
"""
PICKLESCAN = """
import sys, time
t0 = time.perf_counter()
from picklescan.cli import main
t1 = time.perf_counter()
sys.argv = ["picklescan", "--path", sys.argv[1]]
rc = main()
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, peak_kb(), rc)
"""


def _env() -> dict[str, str]:
    # Both scanners run from cached bytecode, as installed packages do (pip compiles picklescan's at
    # install; hfa's is written by the warm-up run), even where PYTHONDONTWRITEBYTECODE is set.
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(snippet: str, path: Path) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK + snippet, str(path)], capture_output=True, timeout=TIMEOUT, env=_env(), text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"scanner exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    lines = proc.stdout.strip().splitlines()
    imports, scan, rss, verdict = lines[-1].split()
    report = {"imports": float(imports), "scan": float(scan), "rss_kb": int(rss), "verdict": int(verdict)}
    report["log"] = "\n".join(lines[:-1])[-300:]  # what the tool printed itself (picklescan's summary)
    return wall, report


def _compare(label: str, path: Path, runs: int) -> list[dict[str, Any]]:
    scanners = {"hfa": HFA, "picklescan": PICKLESCAN}
    info = {name: _run(code, path)[1] for name, code in scanners.items()}  # warm-up, and the verdicts
    if info["hfa"]["verdict"] != 0:
        raise RuntimeError(f"hfa did not find {path.name} clean: {info['hfa']}")
    if info["picklescan"]["verdict"] != 0 or "Scanned files: 1" not in info["picklescan"]["log"]:
        raise RuntimeError(f"picklescan did not scan {path.name} cleanly: {info['picklescan']}")
    walls: dict[str, list[float]] = {name: [] for name in scanners}
    scans: dict[str, list[float]] = {name: [] for name in scanners}
    imports: dict[str, list[float]] = {name: [] for name in scanners}
    rss: dict[str, int] = dict.fromkeys(scanners, 0)
    for _ in range(runs):
        for name, code in scanners.items():
            wall, report = _run(code, path)
            walls[name].append(wall)
            scans[name].append(report["scan"])
            imports[name].append(report["imports"])
            rss[name] = max(rss[name], report["rss_kb"])
    med = {name: median(v) for name, v in walls.items()}
    scan = {name: median(v) for name, v in scans.items()}
    ratio = med["picklescan"] / med["hfa"]
    hfa_mb = rss["hfa"] / 1024
    size_mb = path.stat().st_size / 1e6
    return [
        *(
            row(
                f"{label}, library in a process: {name}",
                med[name] * 1000,
                "ms",
                detail=f"{size_mb:.0f} MB file, process wall time, median of {runs}: imports "
                f"{median(imports[name]) * 1000:.0f} ms, scan {scan[name] * 1000:.1f} ms, peak RSS {rss[name] / 1024:.0f} MB",
            )
            for name in scanners
        ),
        row(
            f"{label}, library in a process: speedup picklescan/hfa",
            ratio,
            "x",
            SPEED_GOAL,
            goal_met(ratio, SPEED_GOAL),
            f"whole process, the scanners called as libraries (no CLI); scan alone"
            f" {scan['picklescan'] / scan['hfa']:.1f}x",
        ),
        row(
            f"{label}, library in a process: hfa peak memory",
            hfa_mb,
            "MB",
            MEMORY_GOAL,
            goal_met(hfa_mb, MEMORY_GOAL),
            "peak RSS of the scanning process (VmHWM)",
        ),
    ]


def _hfa_command() -> str:
    """The installed ``hfa`` console script; refuses a stale one (installed before hfa.cli.entry)."""
    script = bin_path("hfa")
    with open(script, encoding="utf-8", errors="replace") as fp:
        if "hfa.cli.entry" not in fp.read(2000):
            raise RuntimeError(f"{script} predates hfa.cli.entry: reinstall hfa (pip install -e .)")
    return script


def _commands(label: str, path: Path, runs: int, goal: str = COMMAND_GOAL) -> list[dict[str, Any]]:
    """Each tool's own command line, as a user runs it: ``hfa scan FILE`` and ``picklescan --path FILE``."""
    argvs = {
        "hfa": [_hfa_command(), "scan", str(path), "-q"],
        "picklescan": [bin_path("picklescan"), "--path", str(path)],
    }
    walls: dict[str, list[float]] = {name: [] for name in argvs}
    for i in range(runs + 1):
        for name, argv in argvs.items():
            start = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, env=_env())
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()[-300:]}")
            if i:  # the first round warms up
                walls[name].append(time.perf_counter() - start)
    med = {name: median(v) for name, v in walls.items()}
    ratio = med["picklescan"] / med["hfa"]
    size_mb = path.stat().st_size / 1e6
    commands = {"hfa": f"hfa scan {path.name}", "picklescan": f"picklescan --path {path.name}"}
    return [
        *(
            row(
                f"{label}, command: {commands[name]}",
                med[name] * 1000,
                "ms",
                detail=f"{size_mb:.0f} MB file, process wall time, median of {runs}",
            )
            for name in argvs
        ),
        row(
            f"{label}, command: speedup picklescan/hfa",
            ratio,
            "x",
            goal,
            goal_met(ratio, goal),
            f"hfa scan {med['hfa'] * 1000:.0f} ms vs picklescan --path {med['picklescan'] * 1000:.0f} ms,"
            " each tool's console script, start-up included",
        ),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    size = (20 if quick else 200) * 1024 * 1024
    runs = 3 if quick else 5
    with temp_dir("hfa-bench-scan-") as tmp:
        raw = tmp / "bytes.pkl"  # picklescan picks its scanner by extension; hfa ignores names
        write_big_pickle(raw, size, sparse=False)
        model = tmp / "pytorch_model.pt"
        write_torch_zip(model, n_tensors=200, tensor_bytes=size // 200, sparse=False)  # a BERT-base-like count
        return [
            *_commands("torch zip", model, runs),
            *_commands("raw pickle", raw, runs, COMMAND_GOAL_RAW),
            *_compare("torch zip", model, runs),
            *_compare("raw pickle", raw, runs),
        ]


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
