"""``hfa pin``: record repos at exact commits, with every selected file's hash, in hfa.lock."""

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


def pin(
    repos: Annotated[
        list[str] | None,
        typer.Argument(
            help="REPO\\[@REVISION][:QUANT] to add or update (QUANT: this repo's GGUF quantisation); with"
            " --upgrade/--check/--remove, repos to act on.",
            show_default=False,
            autocompletion=complete_repo,
        ),
    ] = None,
    repo_type: RepoTypeOpt = None,
    lock: LockOpt = Path("hfa.lock"),
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Re-resolve the asked-for revisions (all, or the named repos).")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 if upstream moved or disagrees with the lock (CI)."),
    ] = False,
    remove: Annotated[
        bool,
        typer.Option("--remove", help="Remove the named repos, and the dependencies nothing else requires."),
    ] = False,
    no_deps: Annotated[
        bool,
        typer.Option(
            "--no-deps",
            help="Pin (or --upgrade) just the named repos, not what they require (an adapter's base model).",
        ),
    ] = False,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="Set the default model of an `hfa infer` task: `--task TASK REPO\\[@REV]`, or without REPO the"
            " model the endpoint recommends (its /api/tasks); with --upgrade, move only this task's default.",
            show_default=False,
            metavar="TASK",
        ),
    ] = None,
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
    """`hfa pin REPO\\[@REV]` adds or updates an entry, and one for each repo it requires (an adapter's
    base model), recording who requires it and why; `hfa pin` alone normalises the lock without
    network (but resolves the task defaults hfa.toml's \\[infer.tasks] adds or changes); `--upgrade`
    moves pins (and their closure) and task defaults and reports what moved; `--check` reports drift
    for CI. `hfa pin --task TASK \\[REPO\\[@REV]]` pins the model `hfa infer TASK` runs without --model.
    Several repos are pinned all or nothing. Selection options apply to every repo named, except
    `--quant`, which applies only to repos with GGUF files; `REPO:QUANT` picks one repo's quantisation
    (`hfa pin org/x-GGUF:Q4_K_M org/y`). A \\[policy] in hfa.toml beside the lock refuses repos that break
    it (exit 1, the lock unchanged; docs/policy.md).
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
        from hfa import pin as core
        from hfa.errors import CheckFailed, UsageError
        from hfa.resolve.refs import RepoRef

        modes = [m for m, on in (("--upgrade", upgrade), ("--check", check), ("--remove", remove)) if on]
        if len(modes) > 1:
            raise UsageError(f"{' and '.join(modes)} cannot be combined", "run them one at a time")
        if task is not None:
            _pin_task(ctx, lock, task, repos or [], upgrade, [m for m in modes if m != "--upgrade"], sel.given())
            return
        specs = [RepoRef.parse_spec(r, repo_type) for r in repos or []]
        refs = [ref for ref, _ in specs]
        sel_given = sel.given() or any(quant is not None for _, quant in specs)
        if modes and sel_given:
            raise UsageError(
                f"selection options do not apply to {modes[0]}",
                "the lock keeps each repo's selection; change it with `hfa pin REPO [options]`",
            )
        out = ctx.out

        if check:
            report = core.check(ctx.settings, lock, refs)

            def human_check() -> None:
                for d in report.drift:
                    if d.moved:
                        for line in d.lines():
                            out.line(line)
                for t in report.tasks:
                    if t.moved:
                        out.line(t.line())
                if report.current:
                    tasks = f", {len(report.tasks)} task default(s)" if report.tasks else ""
                    out.success(f"{lock} is current ({report.checked} repo(s){tasks} checked).")

            out.result(report.to_json(), human_check)
            if not report.current:
                raise CheckFailed(
                    f"{lock} has drifted from upstream", "review the diff, then move the pins with `hfa pin --upgrade`"
                )
            return

        if remove:
            if not refs:
                raise UsageError("--remove needs the repos to remove", "e.g. hfa pin --remove org/model")
            gone = core.remove_many(lock, refs)
            removed = gone.removed
            out.result(
                {"lock": str(lock), "removed": removed, "written": gone.written},
                lambda: out.success(f"Removed {', '.join(removed)} from {lock}."),
            )
            return

        if upgrade:
            result = core.upgrade(ctx.settings, lock, refs, deps=not no_deps)
        elif refs:
            from dataclasses import replace

            options = sel.to_options()
            requests = []
            for ref, quant in specs:
                if quant is not None and options.quant is not None and quant.upper() != options.quant.upper():
                    raise UsageError(
                        f"{ref.display}:{quant} and --quant {options.quant} disagree", "give the quantisation once"
                    )
                if quant is not None:
                    requests.append(core.PinRequest(ref, replace(options, quant=quant)))
                else:
                    requests.append(core.PinRequest(ref, options, fit=len(specs) > 1))
            result = core.pin_many(ctx.settings, lock, requests, deps=not no_deps)
        else:
            result = core.normalise(lock, ctx.settings)
        for warning in result.warnings:
            out.warn(warning)

        def human() -> None:
            for task_change in result.tasks:
                if task_change.moved:
                    out.line(task_change.line())
            for change in result.changes:
                if change.old_commit is None:
                    out.line(f"+ {change.repo}@{change.revision} → {change.new_commit} ({len(change.added)} file(s))")
                elif change.moved:
                    for line in change.lines():
                        out.line(line)
                else:
                    out.line(f"= {change.repo}@{change.revision} {change.new_commit} (unchanged)")
                for req in result.required_by.get(change.repo, []):
                    out.line(f"  required by {req.display} ({req.reason})")
            for gone in result.removed:
                out.line(f"- {gone} (nothing requires it any more)")
            out.success(f"{'Wrote' if result.written else 'Unchanged:'} {lock}")

        out.result(result.to_json(), human)


def _pin_task(ctx: Ctx, lock: Path, task: str, repos: list[str], upgrade: bool, modes: list[str], sel: bool) -> None:
    """``hfa pin --task TASK [REPO[@REV]]`` and ``hfa pin --upgrade --task TASK``."""
    from hfa import pin as core
    from hfa.errors import UsageError, command_text

    if modes or sel:
        raise UsageError(
            f"--task does not combine with {modes[0] if modes else 'selection options'}",
            "a task default is a model and a commit: hfa pin --task TASK org/model[@rev]",
        )
    if len(repos) > 1 or (upgrade and repos):
        raise UsageError(
            "--task takes at most one model" + (" (none with --upgrade)" if upgrade else ""),
            command_text("hfa", "pin", "--task", task, "org/model"),
        )
    out = ctx.out
    if upgrade:
        result = core.upgrade(ctx.settings, lock, [], task=task)
        if not result.tasks:
            raise UsageError(
                f"{lock} has no default for {task} to upgrade", command_text("hfa", "pin", "--task", task, "org/model")
            )
    else:
        result = core.pin_task(ctx.settings, lock, task, repos[0] if repos else None)
    for warning in result.warnings:
        out.warn(warning)

    def human() -> None:
        for change in result.tasks:
            out.line(change.line())
        out.success(f"{'Wrote' if result.written else 'Unchanged:'} {lock}")

    out.result(result.to_json(), human)
