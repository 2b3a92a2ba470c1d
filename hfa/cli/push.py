"""``hfa push``: repositories of the local cache into an S3-compatible bucket, each blob once."""

from pathlib import Path
from typing import Annotated

import typer

from hfa.cli.bucket import open_bucket, protect_aws
from hfa.cli.complete import complete_repo
from hfa.cli.options import CacheDirOpt, Ctx, JsonOpt, QuietOpt, VerboseOpt, guarded
from hfa.cli.selection import LockOpt, RepoTypeOpt
from hfa.output import human_size


def push(
    repos: Annotated[
        list[str] | None,
        typer.Argument(
            help="Repos in the cache, each REPO or REPO@REVISION: org/name, org/name@v1.0, datasets/org/name@<commit>."
            " Omitted: everything the lock names.",
            show_default=False,
            autocompletion=complete_repo,
        ),
    ] = None,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The bucket: s3://BUCKET/PREFIX. Credentials, region and endpoint come from the AWS"
            " environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_PROFILE, ...).",
            show_default=False,
        ),
    ] = ...,  # type: ignore[assignment]
    repo_type: RepoTypeOpt = None,
    lock: LockOpt = Path("hfa.lock"),
    workers: Annotated[int, typer.Option(help="Parallel uploads.", min=1, max=64)] = 8,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be uploaded; upload nothing.")] = False,
    cache_dir: CacheDirOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Each blob goes up once, named by its sha256 (LFS) or git-sha1, with its checksum so the
    store verifies it, put-if-absent so racing pushers cannot clash; then each commit's file
    manifest, the ref and the card data. A second push uploads nothing. Every cached blob is
    hashed first: a corrupt cache is refused (exit 1), not copied.
    """
    ctx = Ctx.from_options(cache_dir=cache_dir, json_output=json_output, quiet=quiet, verbose=verbose)
    protect_aws(ctx.out)
    with guarded(ctx.out):
        _push(ctx, repos or [], repo_type, lock, to, workers, dry_run)


def _push(ctx: Ctx, repos: list[str], repo_type: str | None, lock: Path, to: str, workers: int, dry_run: bool) -> None:
    from hfa.cli.pull import RichProgress
    from hfa.push import push as do_push
    from hfa.push import targets_from_lock, targets_from_refs
    from hfa.resolve.refs import RepoRef

    s3 = open_bucket(to, workers)
    if repos:
        targets = targets_from_refs(ctx.settings, [RepoRef.parse(r, repo_type) for r in repos])
    else:
        from hfa.lock import lockfile
        from hfa.lock.check import all_entries

        targets = targets_from_lock(ctx.settings, all_entries(lockfile.read(lock), lock))
    with ctx.out.progress(transient=True) as bar:
        sink = RichProgress(bar) if bar is not None else None
        result = do_push(ctx.settings, s3, targets, dry_run=dry_run, workers=workers, progress=sink)
    for r in result.repos:
        if r.not_cached:
            ctx.out.warn(
                f"{r.ref.display}: {len(r.not_cached)} file(s) of {r.commit[:12]} are not in the cache and were not"
                " pushed (a pull from the bucket that needs them fails)"
            )

    def human() -> None:
        out = ctx.out
        verb = "Would upload" if dry_run else "Uploaded"
        for r in result.repos:
            named = f"{r.revision} → " if r.revision else ""
            out.line(
                f"{r.ref.display}: {named}{r.commit[:12]}, {r.files} file(s), manifest {r.manifest}, ref {r.ref_status}"
            )
        out.success(
            f"{verb} {result.blobs_uploaded} blob(s), {human_size(result.bytes_uploaded)}, to {result.to}"
            f" ({result.blobs_present} already there) in {result.elapsed:.1f}s"
        )

    ctx.out.result(result.to_json(), human)
