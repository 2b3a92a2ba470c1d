"""``hfa offline status|env|run``: is what the lock names here and sound, the environment that keeps
the Hugging Face libraries off the network, and running a job in it (docs/offline.md)."""

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

LockOpt = Annotated[
    Path, typer.Option("--lock", help="The lock naming what must be here (dependencies included).", dir_okay=False)
]


def status(
    lock: LockOpt = Path("hfa.lock"),
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Say, per locked repo, whether every file is in the cache and hashes right: ready / missing / corrupt.

    Exit 0 when every repo is ready, 1 otherwise. No network. What an air-gapped job runs before it starts.
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
        from hfa.lock import lockfile
        from hfa.offline import readiness

        statuses = readiness(ctx.settings.cache_dir, lockfile.read(lock))
        ready = all(s.ready for s in statuses)
        doc = {
            "lock": str(lock),
            "cache_dir": str(ctx.settings.cache_dir),
            "ready": ready,
            "repos": [s.to_json() for s in statuses],
        }

        def human() -> None:
            ctx.out.table(
                ["repo", "commit", "state", "files", "problems"],
                [
                    [
                        s.entry.display,
                        s.entry.commit[:12],
                        s.state,
                        len(s.entry.files),
                        _problems(s.missing, s.corrupt),
                    ]
                    for s in statuses
                ],
                justify={"files": "right"},
            )
            if ready:
                ctx.out.success(f"Ready: {len(statuses)} repo(s) of {lock} are in {ctx.settings.cache_dir}")
            else:
                not_ready = sum(not s.ready for s in statuses)
                from hfa.errors import command_text

                ctx.out.error(
                    f"{not_ready} of {len(statuses)} repo(s) not ready — run"
                    f" `{command_text('hfa', 'pull', '--lock', str(lock), *_cache_args(ctx))}` where there is a network,"
                    " or import a"
                    f" bundle (`{command_text('hfa', 'import', 'FILE.tar', *_cache_args(ctx))}`)"
                )

        ctx.out.result(doc, human)
    if not ready:
        raise typer.Exit(1)


def _cache_args(ctx: Ctx) -> list[str]:
    """``--cache-dir DIR`` when the command was given one: a pasted hint must act on the same cache."""
    return ["--cache-dir", str(ctx.settings.cache_dir)] if ctx.cache_dir_given else []


def _problems(missing: list[str], corrupt: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing: {', '.join(missing[:3])}" + (f" (+{len(missing) - 3})" if len(missing) > 3 else ""))
    if corrupt:
        parts.append(f"corrupt: {', '.join(corrupt[:3])}" + (f" (+{len(corrupt) - 3})" if len(corrupt) > 3 else ""))
    return "; ".join(parts)


def env(
    shell: Annotated[
        str, typer.Option("--shell", help="Quote for this shell: bash, zsh, fish or powershell.")
    ] = "bash",
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Print the environment that keeps huggingface_hub, transformers, datasets and friends on this cache, offline.

    HF_HUB_OFFLINE=1, HF_HUB_CACHE, TRANSFORMERS_OFFLINE=1, HF_DATASETS_OFFLINE=1, telemetry off.
    Use it with `eval "$(hfa offline env)"` (fish: `hfa offline env --shell fish | source`;
    PowerShell: `hfa offline env --shell powershell | Invoke-Expression`).
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
        from hfa.offline import offline_env, render_env

        variables = offline_env(ctx.settings.cache_dir)
        text = render_env(variables, shell)
        ctx.out.result({"shell": shell, "env": variables}, lambda: ctx.out.line(text.rstrip("\n")))


def run(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="CMD",
            help="The command and its arguments: hfa's options go before it (`--` before it also works).",
            show_default=False,
        ),
    ] = None,
    lock: LockOpt = Path("hfa.lock"),
    no_network: Annotated[
        bool,
        typer.Option(
            "--no-network",
            help="Run the command with no network at all (Linux user+network namespaces); exit 6 where that"
            " is not possible, without running it.",
        ),
    ] = False,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Check that the lock's files are here, then run a command offline on this cache; exit with its code.

    Exit 1 without running it when something is missing or corrupt (see `hfa offline status`).
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
        from hfa.errors import CheckFailed, UsageError, command_text
        from hfa.lock import lockfile
        from hfa.offline import no_network_prefix, offline_env, readiness, run_command

        if not command:
            raise UsageError("No command to run", "name it last, e.g. hfa offline run python train.py")
        prefix = no_network_prefix() if no_network else []  # before anything runs: never fall back to the network
        statuses = readiness(ctx.settings.cache_dir, lockfile.read(lock))
        bad = [s for s in statuses if not s.ready]
        if bad:
            shown = ", ".join(f"{s.entry.display} ({s.state})" for s in bad[:5])
            raise CheckFailed(
                f"Not ready, the command was not run: {shown}",
                f"see `{command_text('hfa', 'offline', 'status', '--lock', str(lock), *_cache_args(ctx))}`; fetch with"
                f" `{command_text('hfa', 'pull', '--lock', str(lock), *_cache_args(ctx))}` where there is a network",
                details={"repos": [s.to_json() for s in bad]},
            )
        ctx.out.info(
            f"Ready: {len(statuses)} repo(s); running {command[0]} offline" + (" with no network" if prefix else "")
        )
        code = run_command([*prefix, *command], offline_env(ctx.settings.cache_dir))
    raise typer.Exit(code)
