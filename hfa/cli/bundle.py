"""``hfa export`` and ``hfa import``: verified bundles for air-gapped machines."""

from pathlib import Path
from typing import Annotated

import typer

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
from hfa.cli.selection import RepoTypeOpt


def export(
    repos: Annotated[
        list[str] | None,
        typer.Argument(
            help="REPO\\[@REV] to export as the cache holds them. Default: what the lock names.", show_default=False
        ),
    ] = None,
    lock: Annotated[Path, typer.Option("--lock", help="Export exactly what this lock names.", dir_okay=False)] = Path(
        "hfa.lock"
    ),
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="The bundle to write (a .tar).", dir_okay=False, show_default=False),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show size and contents; write nothing.")] = False,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Carry it to a machine with no network and run `hfa import` there."""
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
        from hfa import bundle
        from hfa.errors import UsageError
        from hfa.lock import lockfile
        from hfa.output import human_size
        from hfa.resolve.refs import RepoRef

        cache = ctx.settings.cache_dir
        the_lock = bundle.lock_from_cache(cache, [RepoRef.parse(r) for r in repos]) if repos else lockfile.read(lock)
        if dry_run:
            plan = bundle.plan_export(cache, the_lock)

            def human_plan() -> None:
                for r in the_lock.repos:
                    ctx.out.line(f"{r.display} {r.commit} ({len(r.files)} file(s))")
                ctx.out.line(f"{len(plan.blobs)} blob(s), {human_size(plan.total_bytes)}")
                for m in plan.missing:
                    ctx.out.warn(f"not in the cache: {m}")

            ctx.out.result({**plan.to_json(), "dry_run": True}, human_plan)
            return
        if output is None:
            raise UsageError("No output file", "pass -o FILE.tar")
        with ctx.out.progress(transient=True) as bar:
            task = bar.add_task("export", total=bundle.plan_export(cache, the_lock).total_bytes) if bar else None
            plan = bundle.export(
                cache, the_lock, output, on_bytes=(lambda n: bar.update(task, advance=n)) if bar else None
            )
        doc = {**plan.to_json(), "output": str(output), "dry_run": False}
        ctx.out.result(
            doc,
            lambda: ctx.out.success(
                f"Wrote {output}: {len(the_lock.repos)} repo(s), {len(plan.blobs)} blob(s), {human_size(plan.total_bytes)}"
            ),
        )


def import_(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.tar|DIR",
            help="A bundle written by `hfa export`, or a model folder / git clone to adopt (with --repo).",
        ),
    ],
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="Adopt DIR as this repo: org/name (datasets/org/name for a dataset).",
            show_default=False,
            autocompletion=complete_repo,
        ),
    ] = None,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision",
            help="The ref to record DIR under (default: the clone's branch, else main); a 40-hex commit is taken"
            " as the commit itself.",
            show_default=False,
        ),
    ] = None,
    repo_type: RepoTypeOpt = None,
    fix: Annotated[
        bool,
        typer.Option("--fix", help="Fetch the content of Git-LFS pointer stubs in DIR from the endpoint (online)."),
    ] = False,
    write_lock: Annotated[
        Path | None,
        typer.Option(
            "--write-lock",
            help="Also write the lock the bundle carries to this path.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """A bundle: every blob verified before it is published; snapshots and refs rebuilt; blobs
    already cached are hash-checked (a corrupt copy is replaced); importing twice is a no-op; a
    bundle that is not sound is refused and nothing is published.

    A folder: its files hashed into blobs as the Hub names them, a snapshot and a ref; the commit
    from the clone's .git, else derived from the content (docs/offline.md). Git-LFS pointer stubs
    are refused (exit 1) unless --fix fetches them.
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
        from hfa.errors import UsageError

        if source.is_dir() or repo is not None:
            if repo is None:
                raise UsageError(
                    f"{source} is a folder: name the repo to adopt it as",
                    f"hfa import {source} --repo org/name",
                )
            if write_lock is not None:
                raise UsageError("--write-lock is for bundles", "pin the adopted repo with `hfa pin REPO --offline`")
            _adopt(ctx, source, repo, revision, repo_type, fix)
            return
        if revision is not None or repo_type is not None or fix:
            raise UsageError("--revision, --repo-type and --fix are for adopting a folder", "add --repo org/name")
        _import_bundle(ctx, source, write_lock)


def _import_bundle(ctx: Ctx, bundle_path: Path, write_lock: Path | None) -> None:
    from hfa import bundle
    from hfa.output import human_size

    with ctx.out.progress(transient=True) as bar:
        task = bar.add_task("import", total=bundle_path.stat().st_size if bundle_path.is_file() else 0) if bar else None
        result = bundle.import_bundle(
            ctx.settings.cache_dir, bundle_path, on_bytes=(lambda n: bar.update(task, advance=n)) if bar else None
        )
    if write_lock is not None:
        bundle.write_lock(write_lock, bundle.bundle_lock_text(bundle_path))
    ctx.out.result(
        result.to_json(),
        lambda: ctx.out.success(
            f"Imported {len(result.repos)} repo(s) into {ctx.settings.cache_dir}: {result.imported} blob(s)"
            f" ({human_size(result.bytes_imported)}) written, {result.present} already present,"
            f" {result.links} link(s) made"
            + (f"; {result.repaired} corrupt cached blob(s) replaced" if result.repaired else "")
        ),
    )


def _adopt(ctx: Ctx, folder: Path, repo: str, revision: str | None, repo_type: str | None, fix: bool) -> None:
    from hfa.adopt import adopt
    from hfa.errors import UsageError
    from hfa.output import human_size
    from hfa.resolve.refs import RepoRef

    ref = RepoRef.parse(repo, repo_type)
    if ref.revision is not None and revision is not None and ref.revision != revision:
        raise UsageError(f"Two revisions: {repo} and --revision {revision}", "give one of them")
    fetch = None
    if fix:
        from hfa.errors import OfflineError

        if ctx.settings.offline:
            raise OfflineError("--fix fetches the stubs' content and offline mode is on", "drop --offline")
        from hfa.adopt import stub_fetcher

        fetch = stub_fetcher(ctx.settings, ref)
    result = adopt(
        ctx.settings.cache_dir, folder, ref.repo_id, ref.repo_type, revision or ref.revision, fetch_stubs=fetch
    )
    ctx.out.result(
        {**result.to_json(), "cache_dir": str(ctx.settings.cache_dir)},
        lambda: ctx.out.success(
            f"Adopted {folder} as {result.display} (commit {result.commit[:12]}, from {result.source}):"
            f" {len(result.files)} file(s), {result.blobs_written} blob(s) ({human_size(result.bytes_written)}) written"
            + (f", {result.stubs_fetched} LFS stub(s) fetched" if result.stubs_fetched else "")
        ),
    )
