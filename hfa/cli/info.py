"""``hfa info``: what a repository holds, its card facts and risks, and what `hfa pull` would take."""

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
from hfa.cli.selection import (
    AllOpt,
    ConfigOnlyOpt,
    ExcludeOpt,
    FrameworkOpt,
    IncludeOpt,
    QuantOpt,
    RepoTypeOpt,
    SelectionArgs,
    SubfolderOpt,
    TrustRemoteCodeOpt,
    VariantOpt,
    repo_and_options,
)


def info(
    repo: Annotated[
        str,
        typer.Argument(
            help="REPO\\[@REVISION][:QUANT]: org/name, org/name@v1.0, datasets/org/name.",
            autocompletion=complete_repo,
        ),
    ],
    repo_type: RepoTypeOpt = None,
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
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """The card's facts (license, task, library, base model, gated); the repos it requires (an
    adapter's base model: pinned and pulled with it) and why; every file with its size, kind and
    flags (pickle, lfs, remote-code, gated); and which files `hfa pull` would select, and why.
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
        from hfa.info import info as do_info
        from hfa.output import human_size

        ref, options = repo_and_options(repo, repo_type, sel)
        result = do_info(ctx.settings, ref, options)
        for warning in result.warnings:
            ctx.out.warn(warning)

        def human() -> None:
            out = ctx.out
            out.line(f"{ref.display}  commit {result.commit}")
            facts = dict(result.card)
            facts["gated"] = result.gated or "no"
            if result.private:
                facts["private"] = "yes"
            if result.remote_code:
                facts["remote code"] = "yes (needs --trust-remote-code)"
            if result.quants:
                facts["quantisations"] = result.quants
            for key, value in facts.items():
                shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                out.line(f"  {key}: {shown}")
            for req in result.requires:
                out.line(f"  requires: {req.display} ({req.reason})")
            for req in result.provenance:
                out.line(f"  base model: {req.repo_id} ({req.relation}: provenance only, not fetched)")
            out.table(
                ["file", "size", "kind", "flags", "pull", "why"],
                [
                    [f.path, human_size(f.size), f.kind, ",".join(f.flags), "yes" if f.selected else "no", f.reason]
                    for f in result.files
                ],
                justify={"size": "right"},
            )

        ctx.out.result(result.to_json(), human)
