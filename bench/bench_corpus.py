"""Detection on issue 17's corpus: hfa against picklescan, on the same files, side by side.

The corpus is tests/corpus17.py: malicious samples for every class of issue 17 and the classic
attacks (modelled on the public tests of picklescan, fickling, modelscan and modelaudit and the
2025-2026 advisories), benign files dumped by the real libraries (torch, numpy, sklearn, joblib) and
a few ``__main__`` classes. Nothing is ever unpickled. Each file is written to a temporary folder
under its name and scanned by each tool as a library:

* hfa: :func:`hfa.scan.scanner.scan_file` (what ``hfa scan`` runs per file). Detected: a finding at
  or above the severity the sample expects (critical where a loader runs code, high where hfa fails
  closed, medium for an encrypted member). A false alarm: any finding above info on a benign file.
* picklescan: ``scan_file_path`` in a subprocess (its 7z support extracts to a temporary folder:
  kept inside the bench's). Detected or a false alarm: what makes ``picklescan --path`` exit
  non-zero, a dangerous global (``issues_count``) or a scan error.

Goals (issue 17): hfa misses nothing and raises no false alarm; a ``__main__`` class is high, never
critical. The corpus takes the same time in ``--quick`` mode (a few seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import ROOT, clean_env, row, temp_dir

sys.path.insert(0, str(ROOT / "tests"))

PICKLESCAN = """
import json, logging, sys
logging.disable(logging.CRITICAL)
from picklescan.scanner import scan_file_path
out = {}
for path in sys.argv[1:]:
    try:
        r = scan_file_path(path)
        out[path] = bool(r.issues_count or r.infected_files or r.scan_err)
    except Exception as exc:  # a crash: picklescan's CLI exits non-zero on it too
        out[path] = True
print(json.dumps(out))
"""


def _hfa_verdicts(files: list[tuple[Any, Path]]) -> dict[str, tuple[bool, str]]:
    from hfa.scan.model import ScanPolicy, Severity
    from hfa.scan.scanner import scan_file

    out: dict[str, tuple[bool, str]] = {}
    for sample, path in files:
        found = scan_file(path, sample.filename, ScanPolicy(extra=sample.allow))
        worst = max((f.severity for f in found), default=None)
        label = "clean" if worst is None else worst.label
        if sample.label == "malicious":
            ok = worst is not None and worst >= Severity.parse(sample.expect)
        elif sample.label == "benign":
            ok = not [f for f in found if f.severity > Severity.INFO]
        else:
            ok = worst is Severity.HIGH
        out[sample.name] = (ok, label)
    return out


def _picklescan_verdicts(files: list[tuple[Any, Path]], tmp: Path) -> dict[str, bool] | None:
    try:
        import picklescan  # noqa: F401
    except ImportError:
        return None
    jail = tmp / "ps" / "a" / "b" / "c"
    jail.mkdir(parents=True)
    env = clean_env(TMPDIR=str(jail))
    proc = subprocess.run(
        [sys.executable, "-c", PICKLESCAN, *[str(p) for _, p in files]],
        capture_output=True,
        text=True,
        env=env,
        cwd=jail,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"picklescan run failed: {proc.stderr.strip().splitlines()[-1:]}")
    by_path = json.loads(proc.stdout.strip().splitlines()[-1])
    return {s.name: by_path[str(p)] for s, p in files}


def run(quick: bool) -> list[dict[str, Any]]:
    from corpus17 import all_samples

    samples = all_samples()
    with temp_dir("hfa-bench-corpus-") as tmp:
        files = []
        for i, sample in enumerate(samples):
            folder = tmp / "files" / str(i)
            folder.mkdir(parents=True)
            path = folder / sample.filename
            path.write_bytes(sample.data)
            files.append((sample, path))
        hfa = _hfa_verdicts(files)
        ps = _picklescan_verdicts(files, tmp)

    bad = [s for s in samples if s.label == "malicious"]
    good = [s for s in samples if s.label == "benign"]
    main = [s for s in samples if s.label == "user-class"]
    hfa_hits = [s for s in bad if hfa[s.name][0]]
    hfa_false = [s for s in good if not hfa[s.name][0]]
    missed = ", ".join(f"{s.name} ({hfa[s.name][1]})" for s in bad if not hfa[s.name][0])[:300]
    false = ", ".join(f"{s.name} ({hfa[s.name][1]})" for s in hfa_false)[:300]
    classes = sorted({s.klass for s in bad}, key=lambda k: (len(k), k))
    per_class = "; ".join(
        f"{k}: {sum(hfa[s.name][0] for s in bad if s.klass == k)}"
        + (f"/{sum(ps[s.name] for s in bad if s.klass == k)}" if ps is not None else "")
        + f" of {sum(1 for s in bad if s.klass == k)}"
        for k in classes
    )
    rows = [
        row(
            "malicious detected: hfa",
            len(hfa_hits),
            f"of {len(bad)}",
            f">= {len(bad)}",
            len(hfa_hits) == len(bad),
            f"at the expected severity; missed: {missed or 'none'}",
        ),
        row(
            "benign false alarms: hfa",
            len(hfa_false),
            f"of {len(good)}",
            "<= 0",
            not hfa_false,
            f"any finding above info; {false or 'none'}",
        ),
        row(
            "__main__ classes high, never critical: hfa",
            sum(hfa[s.name][0] for s in main),
            f"of {len(main)}",
            f">= {len(main)}",
            all(hfa[s.name][0] for s in main),
            "unknown global (high)",
        ),
    ]
    if ps is not None:
        ps_hits = sum(ps[s.name] for s in bad)
        ps_false = [s.name for s in good if ps[s.name]]
        ps_missed = [s for s in bad if not ps[s.name]]
        by_class: dict[str, int] = {}
        for s in ps_missed:
            by_class[s.klass] = by_class.get(s.klass, 0) + 1
        rows += [
            row(
                "malicious detected: picklescan",
                ps_hits,
                f"of {len(bad)}",
                None,
                None,
                "missed by class: " + ", ".join(f"{k}: {n}" for k, n in sorted(by_class.items())),
            ),
            row(
                "benign false alarms: picklescan",
                len(ps_false),
                f"of {len(good)}",
                None,
                None,
                ", ".join(ps_false)[:300] or "none",
            ),
            row(
                "__main__ classes flagged: picklescan",
                sum(ps[s.name] for s in main),
                f"of {len(main)}",
                None,
                None,
                "picklescan rates an unknown global 'suspicious', which does not fail it",
            ),
        ]
    rows.append(row("detected by class, hfa/picklescan", None, "", None, None, per_class))
    return rows


if __name__ == "__main__":
    from _common import standalone

    standalone(run, __doc__)
