"""The body of ``hfa scan`` (and the report of ``hfa verify``, :mod:`hfa.cli.verifying`), and ``hfa scan``'s path without typer.

Why a second path: ``hfa scan PATH...`` is often run once per file (a loader hook, a pre-commit
check), where start-up is most of its time; importing the CLI framework (typer, and its rich
help machinery) costs ~30 ms of it, and issue 11 asks the command to start at least as fast as
picklescan's. So the console script (hfa.cli.entry) hands ``hfa scan ARGS`` to :func:`scan_plain`
first, which runs a clean scan of existing files and folders without importing typer, through
the same functions as the typer command (hfa.cli.scan), and writes the same output.

One table of options for both paths: :data:`SCAN_OPTIONS` (``--fail-on``, ``--sarif``,
``--allowlist``) is what the typer command declares its checks from, and what :func:`scan_plain`
parses; :data:`PLAIN_COMMON` names the common options it takes (``-q``, ``-v``, ``--json``) by the
command's parameter names. Anything else (the other common options, ``--help``, a repo id, a
missing path, a bad value, any error) returns None before writing anything, and the full CLI runs
the command: one place reports errors. Findings at or above ``--fail-on`` are not an error of the
command: the report is written and the check's exit code (1) returned here.
tests/test_cli_scan_plain.py runs both paths on the same arguments and compares them, and checks
the table against the typer command's options.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.output import Output


@dataclass
class Scanned:
    findings: list[Any]
    files: int
    in_cache: set[str] = field(default_factory=set)  # names of cache entries (not files on disk)


def scan(cache_dir: Path, names: list[str], allowlist: Path | None) -> Scanned:
    """Scan ``names`` (files, folders, a cache, REPO[@REV] in ``cache_dir``; none: the cache)."""
    from hfa.scan.policy import load_policy
    from hfa.scan.scanner import scan_targets
    from hfa.scan.targets import targets

    policy, notes = load_policy(allowlist)
    found, in_cache = targets(cache_dir, names)
    report = scan_targets(found, policy)
    return Scanned(notes + report.findings, report.files, in_cache)


def finish_scan(out: Output, scanned: Scanned, fail_on: str, sarif: Path | None) -> None:
    from hfa.scan.report import Locator, counts

    findings = scanned.findings
    doc = {"files_scanned": scanned.files, "counts": counts(findings), "findings": [f.to_json() for f in findings]}
    summary = f"Scanned {scanned.files} file(s): {count_text(findings)}."
    finish(out, findings, fail_on, sarif, doc, summary, Locator(logical=scanned.in_cache.__contains__), "hfa-scan")


class ScanOption:
    """One of ``hfa scan``'s own options that take a value (hfa.cli.scan declares it from this).

    A plain class: a dataclass would cost this start-up-bound path ~0.15 ms to build.
    """

    __slots__ = ("flag", "help")

    def __init__(self, flag: str, help: str) -> None:
        self.flag = flag
        self.help = help


DEFAULT_FAIL_ON = "high"  # --fail-on of hfa scan and hfa verify, when not given
# parameter name of the command -> its option
SCAN_OPTIONS = {
    "fail_on": ScanOption(
        "--fail-on", "Exit 1 when a finding is at or above this level: info, low, medium, high, critical."
    ),
    "sarif": ScanOption("--sarif", "Also write the findings as SARIF 2.1.0 to this file."),
    "allowlist": ScanOption(
        "--allowlist", 'TOML file extending the pickle allowlist (allow = ["pkg.Class"]); reported.'
    ),
}
# The common options the plain path takes, spelling -> parameter name (hfa.cli.options declares them).
PLAIN_COMMON = {"-q": "quiet", "--quiet": "quiet", "-v": "verbose", "--verbose": "verbose", "--json": "json_output"}
_BY_FLAG = {option.flag: name for name, option in SCAN_OPTIONS.items()}


def scan_plain(argv: list[str]) -> int | None:
    """Run ``hfa scan ARGV`` without typer when it is plain and clean (see above); None: it is not."""
    from hfa.cli.context import parse_plain  # with hfa.config, which the scan reads anyway

    parsed = parse_plain(argv, PLAIN_COMMON, _BY_FLAG, os.path.exists)
    if parsed is None:
        return None  # another option, --help, `--`, a repo id, a missing path: the full CLI
    opts, values, names = parsed.counts, parsed.values, parsed.positionals
    sarif, allowlist = values.get("sarif"), values.get("allowlist")
    if not names or opts["json_output"] > 1 or any(f is not None and os.path.isdir(f) for f in (sarif, allowlist)):
        return None  # a repeated flag, or a folder where a file goes: the full CLI's message
    out = Output(
        json_mode=bool(opts["json_output"]),
        quiet=opts["quiet"],
        verbose=opts["verbose"],
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    try:
        from hfa.config import Settings
        from hfa.errors import CheckFailed
        from hfa.scan.model import Severity

        settings = Settings.resolve()
        out.add_secret(settings.token)
        fail_on = values.get("fail_on", DEFAULT_FAIL_ON)
        Severity.parse(fail_on)  # a bad level raises: the full CLI reports it
        scanned = scan(settings.cache_dir, names, Path(allowlist) if allowlist else None)
        finish_scan(out, scanned, fail_on, Path(sarif) if sarif else None)
    except CheckFailed as failed:
        # Findings at or above --fail-on: the report is out; end as the full CLI's run_guarded does
        # (the command's own document stands for the --json error document). Scanning twice cost a
        # second pass over exactly the files that matter most.
        out.error(str(failed))
        return int(failed.exit_code)
    except KeyboardInterrupt:
        out.error("interrupted")
        from hfa.errors import ExitCode

        return int(ExitCode.INTERRUPTED)
    except Exception:
        return None
    return 0


def finish(
    out: Output,
    findings: list[Any],
    fail_on: str,
    sarif: Path | None,
    document: dict[str, Any],
    summary: str,
    locate: Any,
    category: str,
) -> None:
    from hfa import __version__
    from hfa.errors import CheckFailed
    from hfa.scan.model import Severity
    from hfa.scan.report import human_lines, write_sarif

    level = Severity.parse(fail_on)
    if sarif is not None:
        write_sarif(sarif, findings, __version__, locate, category=category)
    failing = [f for f in findings if f.severity >= level]
    document["fail_on"] = level.label
    document["failed"] = bool(failing)

    def human() -> None:
        for line in human_lines(findings):
            out.line(line)
        out.info(summary)

    out.result(document, human)
    if failing:
        raise CheckFailed(
            f"{len(failing)} finding(s) at or above '{level.label}'",
            "review them; nothing was loaded or executed" + (f"; SARIF in {sarif}" if sarif else ""),
        )


def count_text(findings: list[Any]) -> str:
    from hfa.scan.report import counts

    parts = [f"{n} {level}" for level, n in counts(findings).items() if n]
    return ", ".join(parts) if parts else "no findings"
