"""Run hfa's benchmarks and print each result beside its goal.

Every ``bench/bench_<name>.py`` is a benchmark: it exposes ``run(quick: bool) -> list[dict]``
returning result rows with the keys ``name, value, unit, goal, met, detail`` (``goal`` is
text such as ``"<= 0.4"``; ``met`` is True/False against it, None for a row without a goal).
Adding a benchmark is adding such a module; this runner finds it.

    python bench/run.py                 # everything, full sizes
    python bench/run.py --quick         # small sizes: a smoke run of a few seconds
    python bench/run.py --only serve    # one benchmark (repeatable, or comma-separated)

Prints an aligned table and writes a JSON copy to bench/results/latest.json. A missed goal
is reported as MISSED and still exits 0; the exit status is 1 only if a benchmark crashed
(2 for a bad argument). These are measurements, not tests: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from _common import ROW_KEYS, format_table, install_sigterm  # noqa: E402

RESULTS = BENCH_DIR / "results" / "latest.json"


def discover() -> dict[str, Path]:
    """``{short name: module file}`` for every bench_*.py, in name order."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH_DIR.glob("bench_*.py"))}


def _check_rows(name: str, rows: Any) -> list[dict[str, Any]]:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TypeError(f"bench_{name}.run() must return a list of dicts, got {type(rows).__name__}")
    for r in rows:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise TypeError(f"bench_{name}.run() row {r.get('name')!r} lacks {', '.join(missing)}")
    return rows


def run_one(name: str, quick: bool) -> tuple[list[dict[str, Any]], float, str | None]:
    """Run one benchmark; return (rows, seconds, traceback text if it crashed)."""
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"bench_{name}")
        rows = _check_rows(name, module.run(quick))
        return rows, time.perf_counter() - start, None
    except Exception:
        return [], time.perf_counter() - start, traceback.format_exc()


def _version() -> str | None:
    try:
        from hfa import __version__

        return __version__
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(
        description="Run hfa's benchmarks against their named peers and print results beside goals.",
        epilog=f"Benchmarks: {', '.join(available) or '(none)'}.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few seconds")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this benchmark ('serve' or 'bench_serve'); repeatable or comma-separated",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where to write results (default: {RESULTS})")
    args = parser.parse_args(argv)

    selected = list(available)
    if args.only:
        wanted = [w.strip().removeprefix("bench_").removesuffix(".py") for o in args.only for w in o.split(",")]
        unknown = [w for w in wanted if w and w not in available]
        if unknown:
            parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(available)}")
        selected = [n for n in available if n in wanted]

    install_sigterm()
    mode = "quick" if args.quick else "full"
    print(f"hfa benchmarks ({mode}): {', '.join(selected)}", flush=True)
    table: list[dict[str, Any]] = []
    report: list[dict[str, Any]] = []
    crashed: list[str] = []
    for name in selected:
        print(f"  running {name} ...", end="", flush=True)
        rows, seconds, error = run_one(name, args.quick)
        if error is None:
            print(f" {seconds:.1f} s", flush=True)
        else:
            crashed.append(name)
            print(f" CRASHED after {seconds:.1f} s\n{error}", file=sys.stderr, flush=True)
            print(flush=True)
            last = error.strip().splitlines()[-1]
            rows = [{"name": "(crashed)", "value": None, "unit": "", "goal": None, "met": None, "detail": last}]
        for r in rows:
            table.append({"benchmark": name, **r, "crashed": error is not None})
        report.append({"benchmark": name, "seconds": round(seconds, 3), "crashed": error, "results": rows})

    print()
    print(format_table(table))
    missed = [f"{r['benchmark']}: {r['name']}" for r in table if r.get("met") is False]
    with_goal = [r for r in table if r.get("met") is not None]
    print()
    print(
        f"{len(with_goal) - len(missed)}/{len(with_goal)} goals met"
        + (f"; MISSED: {'; '.join(missed)}" if missed else "")
        + (f"; CRASHED: {', '.join(crashed)}" if crashed else "")
    )

    doc = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": mode,
        "hfa": _version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "benchmarks": report,
        "missed": missed,
        "crashed": crashed,
    }
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.out}")
    except OSError as exc:
        print(f"could not write {args.out}: {exc}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
