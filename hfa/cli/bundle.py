"""``hfa export`` and ``hfa import``: verified bundles for air-gapped machines."""

from pathlib import Path
from typing import Annotated

import typer

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
    bundle_path: Annotated[Path, typer.Argument(metavar="FILE.tar", help="A bundle written by `hfa export`.")],
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
    """Snapshots and refs are rebuilt; blobs already cached are hash-checked (a corrupt copy is
    replaced); importing twice is a no-op; a bundle that is not sound is refused and nothing is
    published.
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
        from hfa import bundle
        from hfa.output import human_size

        with ctx.out.progress(transient=True) as bar:
            task = (
                bar.add_task("import", total=bundle_path.stat().st_size if bundle_path.is_file() else 0)
                if bar
                else None
            )
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
