"""Helpers shared by the bench_*.py modules (not a benchmark itself: run.py only loads bench_*.py).

Every benchmark module exposes ``run(quick: bool) -> list[dict]``; each dict is one result
row with the keys of :func:`row`. Goals are written as text (``"<= 0.4"``, ``">= 1.0"``) and
``met`` is True/False when the row has a goal, None when it is for information only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
ROW_KEYS = ("name", "value", "unit", "goal", "met", "detail")


def row(
    name: str,
    value: float | None,
    unit: str,
    goal: str | None = None,
    met: bool | None = None,
    detail: str = "",
) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "goal": goal, "met": met, "detail": detail}


def goal_met(value: float, goal: str) -> bool:
    """Check ``value`` against a goal written as ``"<= X"``, ``">= X"``, ``"< X"`` or ``"> X"``."""
    op, _, bound = goal.strip().partition(" ")
    limit = float(bound)
    checks: dict[str, Callable[[float, float], bool]] = {
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
    }
    if op not in checks:
        raise ValueError(f"bad goal {goal!r}")
    return checks[op](value, limit)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2e}"


def bin_path(name: str) -> str:
    """An executable from the venv running this script, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"'{name}' not found next to {sys.executable} nor on PATH")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without proxies or Hub tokens (benchmarks talk to 127.0.0.1 only)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        and k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.update(extra)
    return env


def bench_tmpdir(prefix: str) -> Path:
    base = "/tmp" if os.path.isdir("/tmp") else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = bench_tmpdir(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The next stdout line of ``proc``, waiting at most ``timeout`` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no output line from {proc.args!r} within {timeout:.0f}s")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError(f"{proc.args!r} exited (code {proc.poll()}) before printing a line")
        buf += chunk
    return buf.decode("utf-8", "replace").strip()


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    """Terminate one process we started (SIGTERM, then SIGKILL), and reap it."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


def install_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop servers and delete temp files."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def format_table(rows: list[dict[str, Any]], bench_key: str | None = "benchmark") -> str:
    headers = (["benchmark"] if bench_key else []) + ["result", "value", "unit", "goal", "status", "detail"]
    lines: list[list[str]] = []
    for r in rows:
        status = "-" if r.get("met") is None else ("met" if r["met"] else "MISSED")
        if r.get("crashed"):
            status = "CRASHED"
        cells = [str(r.get(bench_key, ""))] if bench_key else []
        cells += [
            str(r["name"]),
            fmt_value(r["value"]),
            str(r["unit"] or ""),
            str(r["goal"] or "-"),
            status,
            str(r["detail"] or ""),
        ]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(headers)]
    right = {headers.index("value")}

    def render(cells: list[str]) -> str:
        out = []
        for i, (c, w) in enumerate(zip(cells, widths, strict=True)):
            last = i == len(cells) - 1
            out.append(c.rjust(w) if i in right else (c if last else c.ljust(w)))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([render(headers), sep, *(render(c) for c in lines)])


def standalone(run: Callable[[bool], list[dict[str, Any]]], doc: str | None) -> None:
    """``python bench/bench_x.py [--quick]``: run one module on its own and print its rows."""
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    args = parser.parse_args()
    install_sigterm()
    print(format_table(run(args.quick), bench_key=None))


# -- shared by the benchmarks that talk to a Hub server ---------------------------------------
MIB = 1 << 20
# huggingface_hub fetches this registry at most once a day and caches it in HF_HOME; hfa serve
# does not serve it. Seeding it (empty, as an unreachable Hub would leave it) saves each hf run a
# request, as for a user who ran hf in the last day.
AGENT_REGISTRY = {"standardEnvVars": [], "harnesses": {}}


def hub_env(url: str, home: Path) -> dict[str, str]:
    """The environment for hfa and hf talking to ``url``: HF_HOME at ``home`` (seeded), no token,
    no progress bars, telemetry or update checks, byte-code caching on."""
    import json

    home.mkdir(parents=True, exist_ok=True)
    registry = home / ".agent_harnesses.json"
    if not registry.exists():
        registry.write_text(json.dumps(AGENT_REGISTRY), encoding="utf-8")
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


def safetensors_head(size: int) -> bytes:
    """The header of a valid safetensors file of exactly ``size`` bytes holding one U8 tensor."""
    import json
    import struct

    n = size - 8
    while True:
        doc = json.dumps({"weight": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
        doc += b" " * (-len(doc) % 8)
        if 8 + len(doc) + n == size:
            return struct.pack("<Q", len(doc)) + doc
        n = size - 8 - len(doc)


def write_blob(blobs: Path, size: int, head: bytes = b"") -> Path:
    """Write ``size`` bytes (``head``, then one random 1 MiB block repeated) as a blob named by its sha256."""
    import hashlib

    blobs.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MIB)
    h = hashlib.sha256()
    tmp = blobs / ".tmp-bench"
    with tmp.open("wb") as fp:
        fp.write(head)
        h.update(head)
        left = size - len(head)
        while left > 0:
            chunk = block if left >= MIB else block[:left]
            fp.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    target = blobs / h.hexdigest()
    os.replace(tmp, target)
    return target


def write_big_repo(cache: Path, repo_id: str, filename: str, size: int, title: str) -> Path:
    """A model repository in ``cache``: one LFS file of ``size`` random bytes and a README; return the blob."""
    from hfa.cache.layout import RepoDir
    from hfa.testing import write_repo

    blob = write_blob(RepoDir(cache, "model", repo_id).blobs, size)
    # The blob is already where write_repo would put it: it hashes the Path, finds the blob, copies nothing.
    readme = f"---\nlicense: mit\n---\n# {title}\n"
    write_repo(cache, repo_id, {filename: blob, "README.md": readme}, lfs={filename: True})
    return blob


def snapshot_files(cache: Path, repo_id: str, commit: str | None = None) -> dict[str, int]:
    """{path: size} of the files in a model repo's snapshot ``commit`` (all snapshots if None) in ``cache``."""
    snaps = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    out: dict[str, int] = {}
    dirs = [snaps / commit] if commit else (list(snaps.iterdir()) if snaps.is_dir() else [])
    for snap in dirs:
        if not snap.is_dir():
            continue
        for path in snap.rglob("*"):
            if path.is_file():
                out[path.relative_to(snap).as_posix()] = path.stat().st_size
    return out


def log_tail(log: Path, n: int = 800) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-n:].strip() or "(empty)"
    except OSError:
        return "(none)"


def start_hfa_serve(
    cache: Path, log: Path, timeout: float = 30, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """``hfa serve`` of ``cache`` on 127.0.0.1 (a free port), stderr to ``log``; return (process, URL).

    ``extra`` are more ``hfa serve`` arguments (``--infer`` …).
    """
    argv = [bin_path("hfa"), "serve", "--cache-dir", str(cache), "--host", "127.0.0.1", "--port", "0", *extra]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=clean_env())
    try:
        url = read_line(proc, timeout)
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"hfa serve printed {url!r}, not a 127.0.0.1 URL; log: {log_tail(log)}")
    except BaseException:
        stop_process(proc)
        raise
    return proc, url.rstrip("/")
