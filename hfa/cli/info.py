"""``hfa info``: what a repository holds, its card facts and risks, and what `hfa pull` would take."""

from __future__ import annotations

from typing import Annotated

import typer

from hfa.cli.options import Ctx, command
from hfa.cli.selection import (
    RepoTypeOpt,
    Selection,
    repo_and_options,
    with_selection,
)


def register(app: typer.Typer) -> None:
    @command(app, "info")
    @with_selection
    def info(
        ctx: Ctx,
        repo: Annotated[
            str, typer.Argument(help="REPO[@REVISION][:QUANT]: org/name, org/name@v1.0, datasets/org/name.")
        ],
        repo_type: RepoTypeOpt = None,
        sel: Selection = Selection(),
    ) -> None:
        """Show what a repo holds: its commit, card facts, files with risk flags, and what pull would take.

        The card's facts (license, task, library, base model, gated); every file with its size, kind
        and flags (pickle, lfs, remote-code, gated); and which files `hfa pull` would select, and why.
        """
        from hfa.cli.pull import human_size
        from hfa.info import info as do_info

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
            out.table(
                ["file", "size", "kind", "flags", "pull", "why"],
                [
                    [f.path, human_size(f.size), f.kind, ",".join(f.flags), "yes" if f.selected else "no", f.reason]
                    for f in result.files
                ],
                justify={"size": "right"},
            )

        ctx.out.result(result.to_json(), human)
