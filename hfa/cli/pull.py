"""``hfa pull``: fetch exactly what a model needs, verified, into the huggingface_hub cache."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hfa.cli.options import Ctx, command
from hfa.cli.selection import (
    AllOpt,
    ConfigOnlyOpt,
    ExcludeOpt,
    FrameworkOpt,
    IncludeOpt,
    QuantOpt,
    RepoTypeOpt,
    SubfolderOpt,
    TrustRemoteCodeOpt,
    build_options,
)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


class RichProgress:
    """Total bytes, speed and files done, on stderr, only on a terminal."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None
        self.files_total = 0
        self.files_done = 0

    def start(self, total_bytes: int, total_files: int) -> None:
        self.files_total = total_files
        self.task = self.progress.add_task(f"files 0/{total_files}", total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=nbytes)

    def file_done(self, outcome: Any) -> None:
        self.files_done += 1
        if self.task is not None:
            self.progress.update(self.task, description=f"files {self.files_done}/{self.files_total}")


def register(app: typer.Typer) -> None:
    @command(app, "pull")
    def pull(
        ctx: Ctx,
        repo: Annotated[
            str, typer.Argument(help="REPO[@REVISION]: org/name, org/name@v1.0, datasets/org/name@<commit>.")
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
        workers: Annotated[int, typer.Option(help="Parallel downloads.", min=1, max=64)] = 8,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show what would be fetched and why; fetch nothing.")
        ] = False,
    ) -> None:
        """Fetch only the files a model needs, verifying every byte, into the huggingface_hub cache.

        Safetensors over pickle, only the shards the index references, one GGUF quant; configs and
        tokenizer always; *.py only with --trust-remote-code. Interrupted pulls resume. With --offline,
        everything comes from the cache and a missing file is an error (exit 1) naming it.
        """
        from hfa.pull import pull as do_pull
        from hfa.refs import RepoRef

        ref = RepoRef.parse(repo, repo_type)
        options = build_options(
            framework, quant, include, exclude, all_files, config_only, subfolder, trust_remote_code
        )
        with ctx.out.progress(transient=True) as bar:
            sink = RichProgress(bar) if bar is not None else None
            result = do_pull(ctx.settings, ref, options, dry_run=dry_run, workers=workers, progress=sink)
        for warning in result.warnings:
            ctx.out.warn(warning)

        def human() -> None:
            out = ctx.out
            if dry_run or out.verbose:
                out.table(
                    ["file", "size", "status", "why"],
                    [[f.path, human_size(f.size), f.status, f.reason] for f in result.files],
                    justify={"size": "right"},
                )
                if result.skipped:
                    out.table(["skipped", "why"], [[d.path, d.reason] for d in result.skipped])
            fetched = sum(1 for f in result.files if f.status in ("downloaded", "resumed"))
            cached = sum(1 for f in result.files if f.status == "cached")
            if dry_run:
                todo = [f for f in result.files if f.status == "would-download"]
                out.line(
                    f"Would fetch {len(todo)} file(s), {human_size(sum(f.size for f in todo))}, of {ref.display} at"
                    f" {result.commit} ({cached} cached, {len(result.skipped)} skipped)."
                )
                return
            out.line(str(result.snapshot))
            out.success(
                f"{ref.display} → {result.commit[:12]}: {len(result.files)} file(s), {fetched} fetched"
                f" ({human_size(result.bytes_downloaded)}), {cached} cached, {len(result.skipped)} skipped"
                f" in {result.elapsed:.1f}s"
            )

        ctx.out.result(result.to_json(), human)
