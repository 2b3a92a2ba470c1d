"""``hfa scan`` and ``hfa verify``: content safety and cache integrity, offline.

``hfa scan`` with plain arguments usually runs without this module (hfa.cli.scanning explains
why); its checks' options are declared from the one table both paths read, ``SCAN_OPTIONS``.
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from hfa.cli import scanning
from hfa.cli.complete import complete_repo
from hfa.cli.options import (
    CacheDirOpt,
    Ctx,
    EndpointOpt,
    JsonOpt,
    OfflineOpt,
    QuietOpt,
    TokenOpt,
    VerboseOpt,
    guarded,
)
from hfa.cli.scanning import SCAN_OPTIONS, count_text, finish

CHECKS = "Checks"

FailOnOpt = Annotated[
    str,
    typer.Option(SCAN_OPTIONS["fail_on"].flag, help=SCAN_OPTIONS["fail_on"].help, rich_help_panel=CHECKS),
]
SarifOpt = Annotated[
    Path | None,
    typer.Option(
        SCAN_OPTIONS["sarif"].flag,
        help=SCAN_OPTIONS["sarif"].help,
        dir_okay=False,
        rich_help_panel=CHECKS,
        show_default=False,
    ),
]
AllowlistOpt = Annotated[
    Path | None,
    typer.Option(
        SCAN_OPTIONS["allowlist"].flag,
        help=SCAN_OPTIONS["allowlist"].help,
        dir_okay=False,
        rich_help_panel=CHECKS,
        show_default=False,
    ),
]


def scan(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files, folders, a huggingface_hub cache, or REPO\\[@REV] in the cache. Default: the cache.",
            show_default=False,
        ),
    ] = None,
    fail_on: FailOnOpt = "high",
    sarif: SarifOpt = None,
    allowlist: AllowlistOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Content is recognised by its bytes, not its name. Nothing is ever unpickled or executed."""
    ctx = Ctx.from_options(
        endpoint=endpoint,
        cache_dir=cache_dir,
        token=token,
        offline=offline,
        json_output=json_output,
        quiet=quiet,
        verbose=verbose,
    )
    with guarded(ctx.out):
        scanned = scanning.scan(ctx.settings.cache_dir, targets or [], allowlist)
        scanning.finish_scan(ctx.out, scanned, fail_on, sarif)


def verify(
    target: Annotated[
        str | None,
        typer.Argument(
            help="REPO\\[@REV] in the cache, or a folder/file on disk. Default: the whole cache.",
            show_default=False,
            autocompletion=complete_repo,
        ),
    ] = None,
    lock: Annotated[
        Path | None,
        typer.Option(
            "--lock",
            help="Verify exactly what this lock names, and check the \\[policy] of hfa.toml beside it (docs/policy.md).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Re-fetch missing or corrupt files (online); replace LFS stubs in a folder."),
    ] = False,
    no_scan: Annotated[bool, typer.Option("--no-scan", help="Only integrity; skip the content scan.")] = False,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="For --fix on a folder: the repo it came from (default: from .git/config).",
            show_default=False,
            autocompletion=complete_repo,
        ),
    ] = None,
    fail_on: FailOnOpt = "high",
    sarif: SarifOpt = None,
    allowlist: AllowlistOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Every blob's content must hash to its name; every snapshot link must resolve inside the cache;
    every locked file must be present with the locked hash. `--fix` repairs what it can (online).
    """
    ctx = Ctx.from_options(
        endpoint=endpoint,
        cache_dir=cache_dir,
        token=token,
        offline=offline,
        json_output=json_output,
        quiet=quiet,
        verbose=verbose,
    )
    with guarded(ctx.out):
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
