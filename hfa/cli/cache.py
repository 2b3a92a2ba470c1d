"""``hfa cache``: ls, rm, prune and gc over the huggingface_hub cache (logic in hfa.cache.plan).

hfa.cli.app mounts these functions as the subcommands of ``hfa cache``."""

import time
from pathlib import Path
from typing import Annotated, Any

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

DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show exactly what would be removed, and the bytes; change nothing.")
]


def _ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    age = max(0.0, time.time() - ts)
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if age >= seconds:
            n = int(age // seconds)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _report(ctx: Ctx, plan: Any, dry_run: bool) -> None:
    """Apply (or preview) a plan, print what went and what was kept, exit 6 if anything failed."""
    import hfa.cache as cache_ops
    from hfa.errors import LocalError
    from hfa.output import human_size

    result = cache_ops.preview(plan) if dry_run else cache_ops.apply(plan)
    out = ctx.out

    def human() -> None:
        verb = "would remove" if dry_run else "removed"
        for item in result.removed:
            size = f" ({human_size(item.size)})" if item.size else ""
            out.line(f"{verb} {item.kind:<10} {item.rel}{size}  [{item.reason}]")
        for skip in result.skipped:
            if skip.item.kind == "folder" and not skip.why.startswith("in use"):
                out.debug(f"kept {skip.item.rel}: {skip.why}")
            else:
                out.warn(f"kept {skip.item.rel}: {skip.why}")
        for fail in result.failed:
            out.error(f"could not remove {fail.item.rel}: {fail.why}")
        what = []
        if plan.repos:
            what.append(f"{len(plan.repos)} repo(s)")
        if plan.revisions:
            what.append(f"{len(plan.revisions)} revision(s)")
        counts = result.counts()
        what += [f"{counts[k]} {k}(s)" for k in ("blob", "incomplete", "link", "ref") if counts[k]]
        summary = ", ".join(what) or "nothing"
        if dry_run:
            out.info(f"Dry run: would free {human_size(result.bytes_freed)} ({summary}); nothing was removed.")
        elif result.removed:
            out.success(f"Freed {human_size(result.bytes_freed)} ({summary}).")
        else:
            out.info("Nothing to remove.")

    out.result(result.to_json(), human)
    if result.failed:
        raise LocalError(
            f"{len(result.failed)} path(s) could not be removed", "see the messages above; check permissions"
        )


def ls(
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """List every repo in the cache: revisions (refs -> commit, detached ones), files, size, last use.

    Size counts each file once per repo, and shared (hard-linked) files once in the total.
    Last use is the latest access or modification of the repo's blobs and snapshot entries.
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
        import hfa.cache as cache_ops
        from hfa.infer.cache import cache_stats
        from hfa.output import human_size

        listing = cache_ops.list_cache(ctx.settings.cache_dir)
        results = cache_stats()
        doc = listing.to_json()
        doc["inference_results"] = results.to_json()
        out = ctx.out

        def human() -> None:
            if not listing.repos:
                out.info(f"No repos in the cache {listing.cache_dir}.")
                return
            rows = []
            for repo in listing.repos:
                revs = [f"{r.commit[:12]} ({', '.join(r.refs) or 'detached'})" for r in repo.revisions]
                revs += [f"{name} -> {c[:12]} (missing)" for name, c in repo.dangling_refs.items()]
                used, source = repo.last_used
                rows.append(
                    [
                        repo.repo.repo_type,
                        repo.repo.repo_id,
                        "; ".join(revs) or "-",
                        str(repo.files),
                        human_size(repo.size),
                        f"{_ago(used)} ({source})" if source else "-",
                    ]
                )
            out.table(
                ["type", "repo", "revisions", "files", "size", "last used"],
                rows,
                justify={"files": "right", "size": "right"},
            )
            totals = doc["totals"]
            out.line(
                f"Total: {totals['repos']} repo(s), {totals['revisions']} revision(s), {totals['files']} file(s),"
                f" {human_size(totals['size'])} on disk in {listing.cache_dir}"
            )
            if results.entries:
                out.line(
                    f"Inference results (hfa infer): {results.entries} cached, {human_size(results.bytes)} in"
                    f" {results.root} (`hfa cache clear-results`)"
                )
            for repo in listing.repos:
                for warning in repo.warnings:
                    out.warn(f"{repo.repo.path.name}: {warning}")

        out.result(doc, human)


def clear_results(
    dry_run: DryRunOpt = False,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Remove the cached results of `hfa infer` ($HFA_INFER_CACHE, else $HF_HOME/hfa/infer-cache)."""
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
        from hfa.infer.cache import clear_cache
        from hfa.output import human_size

        removed = clear_cache(dry_run=dry_run)
        verb = "Would remove" if dry_run else "Removed"
        ctx.out.result(
            {**removed.to_json(), "dry_run": dry_run},
            lambda: ctx.out.success(
                f"{verb} {removed.entries} cached inference result(s), {human_size(removed.bytes)}, from {removed.root}"
            ),
        )


def rm(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="REPO to remove whole, or REPO@REV (a ref, a commit or its prefix) to remove one revision.",
            show_default=False,
        ),
    ],
    dry_run: DryRunOpt = False,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Remove repos, or single revisions with their refs and the blobs no other revision uses.

    `hfa cache rm org/model` removes the repo; `hfa cache rm org/model@v1.0` removes that
    revision's snapshot, every ref pointing at it, and the blobs only it used.
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
        import hfa.cache as cache_ops

        _report(ctx, cache_ops.plan_rm(ctx.settings.cache_dir, targets), dry_run)


def prune(
    dry_run: DryRunOpt = False,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Remove detached revisions, leftover .incomplete files, blobs nothing links to, and empty folders.

    A detached revision is a snapshot no ref points to (e.g. after a branch moved on).
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
        import hfa.cache as cache_ops

        _report(ctx, cache_ops.plan_prune(ctx.settings.cache_dir), dry_run)


def gc(
    keep_lock: Annotated[
        list[Path] | None,
        typer.Option(
            "--keep-lock",
            help="Keep exactly what this hfa.lock names (repeat for several locks). Required.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    dry_run: DryRunOpt = False,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Remove everything the given locks do not name: other repos, revisions, files and blobs.

    Refs that point at kept commits stay. Afterwards `hfa pull --offline --lock L` still works.
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
        import hfa.cache as cache_ops
        from hfa.errors import UsageError
        from hfa.lock import lockfile

        if not keep_lock:
            raise UsageError(
                "hfa cache gc needs at least one --keep-lock",
                "e.g. hfa cache gc --keep-lock hfa.lock; to drop only unreferenced files, run `hfa cache prune`",
            )
        cache_ops.cache_root(ctx.settings.cache_dir)  # refuse '/' and home before reading anything
        locks = [lockfile.read(path) for path in keep_lock]
        _report(ctx, cache_ops.plan_gc(ctx.settings.cache_dir, locks), dry_run)
