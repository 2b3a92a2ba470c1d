"""``hfa pull``: fetch exactly what a model needs, verified, into the huggingface_hub cache.

The command's options; its body is :mod:`hfa.cli.pulling` (free of typer, and the path without it)."""

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
from hfa.cli.pulling import DEFAULT_LOCK, DEFAULT_WORKERS, bucket_source, run_pull
from hfa.cli.pulling import RichProgress as RichProgress  # its home is free of typer (hfa push uses it)
from hfa.cli.selection import (
    AllOpt,
    ConfigOnlyOpt,
    ExcludeOpt,
    FrameworkOpt,
    IncludeOpt,
    LockOpt,
    QuantOpt,
    RepoTypeOpt,
    SelectionArgs,
    SubfolderOpt,
    TrustRemoteCodeOpt,
    VariantOpt,
)


def pull(
    repo: Annotated[
        str | None,
        typer.Argument(
            help="REPO\\[@REVISION][:QUANT]: org/name, org/name@v1.0, datasets/org/name@<commit>,"
            " org/name-GGUF:Q4_K_M. Omitted: everything the lock names.",
            show_default=False,
            autocompletion=complete_repo,
        ),
    ] = None,
    repo_type: RepoTypeOpt = None,
    workers: Annotated[int, typer.Option(help="Parallel downloads.", min=1, max=64)] = DEFAULT_WORKERS,
    connections: Annotated[
        int | None,
        typer.Option(
            help="Connections open at once for the whole pull, shared by files and by the ranges of big files"
            " (default: HFA_MAX_CONNECTIONS, else 16; at most 256).",
            min=1,
            max=256,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be fetched and why; fetch nothing.")
    ] = False,
    lock: LockOpt = DEFAULT_LOCK,
    locked: Annotated[
        bool,
        typer.Option("--locked", help="Use the lock; fail (exit 1) if it would have to change for this command."),
    ] = False,
    frozen: Annotated[bool, typer.Option("--frozen", help="Use the lock as it is, without checking it.")] = False,
    allow_unsafe: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe",
            help="Publish files the scan refuses (pickles that run code, Git-LFS stubs). Never load them.",
        ),
    ] = False,
    no_deps: Annotated[
        bool,
        typer.Option(
            "--no-deps",
            help="Fetch just the repo (or the lock's directly pinned repos), not what it requires"
            " (an adapter's base model).",
        ),
    ] = False,
    tasks: Annotated[
        bool,
        typer.Option(
            "--tasks",
            help="From the lock: also fetch the model of every task default (`hfa pin --task`), for"
            " `hfa infer --local`. Without it, only those a `local` provider in hfa.toml runs.",
        ),
    ] = False,
    framework: FrameworkOpt = None,
    quant: QuantOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    all_files: AllOpt = False,
    config_only: ConfigOnlyOpt = False,
    subfolder: SubfolderOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    variant: VariantOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    from_store: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Fill the cache from a bucket written by `hfa push`: s3://BUCKET/PREFIX (no Hub request;"
            " every byte hashed before it is published). AWS credentials and endpoint from the environment.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Safetensors over pickle, only the shards the index references, one GGUF quant; configs and
    tokenizer always; *.py only with --trust-remote-code. The repos it requires (an adapter's base
    model) come too, unless --no-deps. Interrupted pulls resume. With --offline, everything comes
    from the cache and a missing file is an error (exit 1) naming it. From the lock, the \\[policy]
    of hfa.toml beside it is checked before anything is fetched (docs/policy.md).
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
    if connections is not None:
        from dataclasses import replace

        ctx.settings = replace(ctx.settings, max_connections=connections)
    sel = SelectionArgs(
        framework=framework,
        quant=quant,
        include=include,
        exclude=exclude,
        all_files=all_files,
        config_only=config_only,
        subfolder=subfolder,
        trust_remote_code=trust_remote_code,
        variant=variant,
    )
    with guarded(ctx.out):
        source = bucket_source(ctx, from_store, workers, offline) if from_store else None
        run_pull(
            ctx, repo, repo_type, sel, workers, dry_run, lock, locked, frozen, allow_unsafe, source, no_deps, tasks
        )
