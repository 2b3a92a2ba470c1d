"""The body of ``hfa verify``, free of typer, and its path without typer.

Why a second path: ``hfa verify`` of a cache hashes every blob on every core, and issue 18 asks
it to be at least 1.8x one core hashing the same blobs on a 2-core machine, where the limit is
2x: every millisecond before the first byte is hashed counts, and importing the CLI framework
(typer and its click) costs ~30 ms of them (bench/bench_verify.py, docs/pull.md "Figures"). So
the console script (hfa.cli.entry) hands ``hfa verify ARGS`` to :func:`verify_plain` first, which
runs a verify given an optional TARGET and the common options it takes only (``--cache-dir``,
``--offline``, ``--no-scan``, ``-q``, ``-v``, ``--json``) through the same function as the typer
command (:func:`run_verify`), with the same defaults, and writes the same output, errors
included (:mod:`hfa.cli.context`). Anything else (another option, ``--help``, a repeated or empty
value, ``--``, several targets) returns None before anything is done, and the full CLI runs the
command. tests/test_cli_verify_plain.py runs both paths on the same arguments and compares them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hfa.cli.context import Ctx, guarded, parse_plain
from hfa.cli.scanning import DEFAULT_FAIL_ON, count_text, finish

__all__ = ["PLAIN_FLAGS", "PLAIN_VALUES", "run_verify", "verify_plain"]

# The options the plain path takes: spelling -> the command's parameter name.
PLAIN_VALUES = {"--cache-dir": "cache_dir"}
PLAIN_FLAGS = {
    "-q": "quiet",
    "--quiet": "quiet",
    "-v": "verbose",
    "--verbose": "verbose",
    "--json": "json_output",
    "--offline": "offline",
    "--no-scan": "no_scan",
}
_COUNTED = ("quiet", "verbose")  # -qq, -vv count; the other flags given twice go to the full CLI


def verify_plain(argv: list[str]) -> int | None:
    """Run ``hfa verify ARGV`` without typer when it is at most one target and the options above;
    None: it is not."""
    parsed = parse_plain(argv, PLAIN_FLAGS, PLAIN_VALUES)
    if parsed is None:
        return None  # another option, --help, `--`, a repeated value: the full CLI
    counts, values, targets = parsed.counts, parsed.values, parsed.positionals
    cache_dir = values.get("cache_dir")
    repeated = any(n > 1 for name, n in counts.items() if name not in _COUNTED)
    if len(targets) > 1 or repeated or (cache_dir is not None and os.path.isfile(cache_dir)):
        return None  # several targets, a repeated flag, a file where a folder goes: the full CLI's message
    ctx = Ctx.from_options(
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        offline=bool(counts["offline"]),
        json_output=bool(counts["json_output"]),
        quiet=counts["quiet"],
        verbose=counts["verbose"],
    )
    with guarded(ctx.out):
        run_verify(ctx, targets[0] if targets else None, no_scan=bool(counts["no_scan"]))
    return 0


def run_verify(
    ctx: Ctx,
    target: str | None,
    *,
    lock: Path | None = None,
    fix: bool = False,
    no_scan: bool = False,
    repo: str | None = None,
    fail_on: str = DEFAULT_FAIL_ON,
    sarif: Path | None = None,
    allowlist: Path | None = None,
) -> None:
    """Verify ``target`` (REPO[@REV] in the cache, a folder or file; None: the whole cache) or the
    files ``lock`` names, repair with ``fix``, and report (exit 1 for findings at or above ``fail_on``)."""
    from hfa import verify as core
    from hfa.errors import UsageError
    from hfa.resolve.refs import RepoRef
    from hfa.scan.policy import load_policy
    from hfa.scan.report import Locator

    policy, notes = load_policy(allowlist)
    cache = ctx.settings.cache_dir
    folder = Path(target) if target is not None and Path(target).exists() else None
    if lock is not None and target is not None:
        raise UsageError("give either a target or --lock", "e.g. hfa verify --lock hfa.lock")
    if target is not None and folder is None and core.looks_like_path(target):
        raise UsageError(f"No such file or folder: {target}", "check the path, or give REPO[@REV] of a cached repo")
    if folder is None and not cache.is_dir():
        raise UsageError(
            f"No cache at {cache}: the folder does not exist",
            "check --cache-dir / HF_HUB_CACHE, or pull something first with `hfa pull REPO`",
        )
    # SARIF: a folder's files are on disk; a cache's are cache entries; a lock's point at its lines.
    on_disk = {n.path for n in notes}
    locate = Locator() if folder is not None else Locator(logical=lambda p: p not in on_disk, cache_dir=cache)
    locked = None
    if lock is not None:
        from hfa.lock import lockfile

        locked = lockfile.read(lock)
        entries = [(e.repo_type, e.repo_id, e.commit) for e in locked.repos]
        from hfa.config import LOCK_FILE_LIMIT, read_small_file

        text = read_small_file(lock, LOCK_FILE_LIMIT, "lock file", "--lock").decode("utf-8")  # bounded, as read()
        locate = locate.with_lock(lock, text, entries)

    def run() -> Any:
        if locked is not None:
            return core.verify_lock(cache, locked, policy, scan=not no_scan)
        if folder is not None:
            return core.verify_folder(folder, policy)
        refs = [RepoRef.parse(target)] if target else None
        return core.verify_cache(cache, refs, policy, scan=not no_scan)

    report = run()
    if fix:
        from hfa.repair import repair

        fixed = repair(ctx.settings, report, lock=lock, folder=folder, repo=repo)
        for line in fixed:
            ctx.out.info(line)
        if fixed:
            report = run()
    findings = notes + report.findings
    if locked is not None:  # the policy beside the lock, when there is one (docs/policy.md)
        from hfa import policy as project

        rules = project.load_policy(lock)
        if rules.declared:
            found = project.findings(
                project.check_entries(rules, locked.repos, cache_dir=cache, strict=True, tasks=locked.tasks)
            )
            findings = sorted(findings + found, key=lambda f: (-f.severity, f.path, f.code))
    doc = report.to_json()
    doc["findings"] = [f.to_json() for f in findings]
    if locked is not None and len(findings) != len(notes) + len(report.findings):
        from hfa.scan.report import counts

        doc["counts"] = counts(findings)
    summary = (
        f"Verified {len(report.repos)} target(s), {report.blobs} blob(s), "
        f"{report.bytes_hashed / 1e6:.1f} MB hashed, {report.files} file(s) scanned in "
        f"{report.elapsed:.1f}s: {count_text(findings)}."
    )
    finish(ctx.out, findings, fail_on, sarif, doc, summary, locate, "hfa-verify")
