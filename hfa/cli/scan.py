"""``hfa scan`` and ``hfa verify``: content safety and cache integrity, offline.

``hfa scan`` with plain arguments usually runs without this module (hfa.cli.scanning explains
why); its checks' options are declared from the one table both paths read, ``SCAN_OPTIONS``.
So does ``hfa verify`` with only the common options (hfa.cli.verifying): this module declares
its options, and its body is :func:`hfa.cli.verifying.run_verify`.
"""

from pathlib import Path
from typing import Annotated

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
from hfa.cli.scanning import DEFAULT_FAIL_ON, SCAN_OPTIONS
from hfa.cli.verifying import run_verify

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
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
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
    fail_on: FailOnOpt = DEFAULT_FAIL_ON,
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
        run_verify(
            ctx,
            target,
            lock=lock,
            fix=fix,
            no_scan=no_scan,
            repo=repo,
            fail_on=fail_on,
            sarif=sarif,
            allowlist=allowlist,
        )
