"""The body of ``hfa pull``, free of typer, and its path without typer.

Why a second path: a cold ``hfa pull`` of small files is bound by round trips and start-up, and
importing the CLI framework (typer and its click) costs ~40 ms of CPU before the first request
(bench/bench_pull.py, docs/pull.md "Figures"). So the console script (hfa.cli.entry) hands
``hfa pull ARGS`` to :func:`pull_plain` first, which runs a pull of one repo given with the common
options only (``--endpoint``, ``--cache-dir``, ``--token``, ``-q``, ``-v``, ``--json``) through the
same function as the typer command (:func:`run_pull`), with the same defaults, and writes the same
output, errors included (:mod:`hfa.cli.context`). Anything else (another option, ``--help``, a
repeated or empty value, no repo) returns None before anything is done, and the full CLI runs the
command. tests/test_cli_pull_plain.py runs both paths on the same arguments and compares them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hfa.cli.context import Ctx, guarded, parse_plain
from hfa.cli.selecting import SelectionArgs, repo_and_options
from hfa.output import human_size

__all__ = ["RichProgress", "bucket_source", "pull_plain", "run_pull"]

DEFAULT_WORKERS = 16  # the typer command's --workers default (a test checks they agree)
DEFAULT_LOCK = Path("hfa.lock")  # and its --lock default

# The common options the plain path takes: spelling -> the command's parameter name.
PLAIN_VALUES = {"--endpoint": "endpoint", "--cache-dir": "cache_dir", "--token": "token"}
PLAIN_FLAGS = {"-q": "quiet", "--quiet": "quiet", "-v": "verbose", "--verbose": "verbose", "--json": "json_output"}


def pull_plain(argv: list[str]) -> int | None:
    """Run ``hfa pull ARGV`` without typer when it is one repo and common options; None: it is not."""
    parsed = parse_plain(argv, PLAIN_FLAGS, PLAIN_VALUES)
    if parsed is None:
        return None  # another option, --help, `--`, a repeated value: the full CLI
    counts, values, repos = parsed.counts, parsed.values, parsed.positionals
    cache_dir = values.get("cache_dir")
    if len(repos) != 1 or counts["json_output"] > 1 or (cache_dir is not None and os.path.isfile(cache_dir)):
        return None  # no repo or several, a repeated flag, a file where a folder goes: the full CLI's message
    ctx = Ctx.from_options(
        endpoint=values.get("endpoint"),
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        token=values.get("token"),
        json_output=bool(counts["json_output"]),
        quiet=counts["quiet"],
        verbose=counts["verbose"],
    )
    with guarded(ctx.out):
        run_pull(ctx, repos[0], None, SelectionArgs(), DEFAULT_WORKERS, False, DEFAULT_LOCK, False, False, False)
    return 0


class RichProgress:
    """Total bytes, speed and files done, on stderr, only on a terminal."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None
        self.files_total = 0
        self.files_done = 0
        self.big: dict[str, Any] = {}

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
        task = self.big.pop(outcome.path, None)
        if task is not None:
            self.progress.remove_task(task)

    def big_file(self, f: Any) -> Any:
        """A line of its own for a file fetched as parallel ranges: its aggregate speed over all its connections."""
        task = self.big.get(f.path)
        if task is None:
            task = self.big[f.path] = self.progress.add_task(f"  {f.path}", total=f.size)
        else:  # fetched again (its bytes failed the hash): the same line, from the start
            self.progress.reset(task, total=f.size)

        def count(nbytes: int) -> None:
            self.progress.update(task, advance=nbytes)

        return count


def warn_pulled(ctx: Ctx, result: Any) -> None:
    """The warnings and findings of a pull and of each dependency it pulled."""
    for r in [result, *result.dependencies]:
        for warning in r.warnings:
            ctx.out.warn(warning)
        warn_findings(ctx, r.findings)


def warn_findings(ctx: Ctx, findings: list[Any]) -> None:
    if not findings:
        return
    from hfa.scan.model import Severity

    for f in findings:
        if f.severity >= Severity.MEDIUM:
            ctx.out.warn(f"{f.severity.label}: {f.path}: {f.message} [{f.code}]")


def check_policy(ctx: Ctx, lock_path: Path, entries: list[Any], tasks: tuple[Any, ...] | list[Any] = ()) -> None:
    """Refuse, before anything is fetched, entries (and task defaults) the policy beside the lock forbids
    (docs/policy.md)."""
    from hfa.policy import enforce, load_policy

    cleared = enforce(
        load_policy(lock_path), entries, doing="nothing was fetched", cache_dir=ctx.settings.cache_dir, tasks=tasks
    )
    for v in cleared:
        ctx.out.warn(f"policy: {v.text()}")


def pull_from_lock(
    ctx: Ctx,
    repo: str | None,
    repo_type: str | None,
    sel: SelectionArgs,
    lock_path: Path,
    locked: bool,
    frozen: bool,
    workers: int,
    dry_run: bool,
    allow_unsafe: bool = False,
    source: Any = None,
    no_deps: bool = False,
    tasks: bool = False,
) -> None:
    from hfa.errors import LockMismatch, UsageError, command_text
    from hfa.lock import lockfile
    from hfa.lock.check import all_entries, lock_args, locked_entry
    from hfa.pull import pull_locked

    if locked and frozen:
        raise UsageError("--locked and --frozen contradict each other", "pass one of them")
    mode_args = ["--locked"] if locked else ["--frozen"] if frozen else []
    lock = lockfile.read(lock_path)
    if tasks and repo is not None:
        raise UsageError("--tasks pulls the lock's task defaults, not one REPO", "drop REPO, or drop --tasks")
    if repo is None:
        if sel.given():
            raise UsageError(
                "selection options need a REPO argument", "the lock keeps each repo's selection; see `hfa pin`"
            )
        wanted = _task_defaults(lock, lock_path, tasks)
        if not lock.repos and lock.tasks and not wanted:
            raise UsageError(
                f"{lock_path} names no repos, and no `local` provider in hfa.toml runs its task defaults",
                f"fetch their models for `hfa infer --local`: {command_text('hfa', 'pull', '--tasks', *lock_args(lock_path))}",
            )
        entries = all_entries(lock, lock_path) if lock.repos or not wanted else []
        if no_deps:
            entries = [e for e in entries if e.direct]
    else:
        wanted = []
        ref, options = repo_and_options(repo, repo_type, sel)
        given = sel.given() or options.quant is not None
        entries = [locked_entry(lock, lock_path, ref, options, given=given, locked=locked)]
        if not no_deps:
            entries += lock.requires(entries[0])
    check_policy(ctx, lock_path, entries, [default for default, _ in wanted])
    retry = command_text("hfa", "pull", *([entries[0].ref.display] if repo else []), *mode_args, *lock_args(lock_path))
    with ctx.out.progress(transient=True) as bar:
        sink = RichProgress(bar) if bar is not None else None
        try:
            result = pull_locked(
                ctx.settings,
                entries,
                dry_run=dry_run,
                workers=workers,
                progress=sink,
                allow_unsafe=allow_unsafe,
                retry_command=retry,
                source=source,
            )
        except LockMismatch as exc:
            exc.hint = (
                f"compare the lock with upstream: `{command_text('hfa', 'pin', '--check', *lock_args(lock_path))}`"
            )
            raise
    for r in result.results:
        warn_findings(ctx, r.findings)
    defaults = _pull_task_defaults(ctx, lock, wanted, no_deps, dry_run, workers, allow_unsafe, source)
    doc = result.to_json(lock_path)
    doc["tasks"] = [{"task": d.task, "why": why, **r.to_json()} for d, why, r in defaults]

    def human() -> None:
        out = ctx.out
        for default, why, r in defaults:
            pulled = [r, *r.dependencies]
            if dry_run:
                wanted = sum(1 for p in pulled for f in p.files if f.status == "would-download")
                out.line(
                    f"task {default.task}: {default.display} at {r.commit[:12]} ({why}):"
                    f" would fetch {wanted} of {sum(len(p.files) for p in pulled)} file(s)"
                )
                continue
            got = sum(1 for p in pulled for f in p.files if f.status in ("downloaded", "resumed"))
            out.line(str(r.snapshot))
            out.success(
                f"task {default.task}: {default.display} → {r.commit[:12]} ({why}): {len(r.files)} file(s),"
                f" {got} fetched ({human_size(sum(p.bytes_downloaded for p in pulled))})"
            )
        for r in result.results:
            fetched = sum(1 for f in r.files if f.status in ("downloaded", "resumed"))
            if dry_run:
                todo = [f for f in r.files if f.status == "would-download"]
                out.line(f"{r.ref.display} at {r.commit[:12]}: would fetch {len(todo)} of {len(r.files)} file(s)")
            else:
                out.line(str(r.snapshot))
                out.success(
                    f"{r.ref.display} → {r.commit[:12]} (locked): {len(r.files)} file(s), {fetched} fetched"
                    f" ({human_size(r.bytes_downloaded)})"
                )
        if not dry_run:
            requests = result.requests + sum(r.requests for _, _, r in defaults)
            more = f" and {len(defaults)} task default(s)" if defaults else ""
            out.info(f"{len(result.results)} repo(s){more} from {lock_path}, {requests} request(s).")

    ctx.out.result(doc, human)


def _task_defaults(lock: Any, lock_path: Path, every: bool) -> list[tuple[Any, str]]:
    """The lock's task defaults a ``local`` provider of hfa.toml runs (all of them with ``--tasks``), and why."""
    from hfa.infer.defaults import defaults_to_pull
    from hfa.infer.providers import parse_providers
    from hfa.project import project_for_lock

    if not lock.tasks:
        return []
    providers: list[Any] = []
    if not every:
        project = project_for_lock(lock_path)
        providers = parse_providers(project.table("infer"), project.origin or "hfa.toml")
    return defaults_to_pull(lock, providers, every=every)


def _pull_task_defaults(
    ctx: Ctx,
    lock: Any,
    wanted: list[tuple[Any, str]],
    no_deps: bool,
    dry_run: bool,
    workers: int,
    allow_unsafe: bool,
    source: Any,
) -> list[tuple[Any, str, Any]]:
    """Pull each default of ``wanted`` at its pinned commit with the default selection: (default, why, PullResult)."""
    from hfa.closure import pull_pinned
    from hfa.store.local import LocalStore

    out = []
    for default, why in wanted:
        ctx.out.debug(f"task {default.task}: pulling {default.display} at {default.commit} ({why})")
        pulled = pull_pinned(
            ctx.settings,
            default.pinned_ref,
            deps=not no_deps,
            dry_run=dry_run,
            workers=workers,
            allow_unsafe=allow_unsafe,
            source=source,
        )
        warn_pulled(ctx, pulled)
        if not dry_run and lock.get(default.repo_id) is None:  # as a lock pull does: the revision names the commit
            LocalStore(ctx.settings.cache_dir, "model", default.repo_id).write_ref(default.revision, default.commit)
        out.append((default, why, pulled))
    return out


def bucket_source(ctx: Ctx, url: str, workers: int, offline: bool) -> Any:
    from hfa.cli.bucket import open_bucket, protect_aws
    from hfa.errors import UsageError
    from hfa.store.s3source import S3Source

    if offline:
        raise UsageError("--from and --offline contradict each other", "pass one of them")
    protect_aws(ctx.out)
    return S3Source(open_bucket(url, workers), ctx.settings.cache_dir)


def run_pull(
    ctx: Ctx,
    repo: str | None,
    repo_type: str | None,
    sel: SelectionArgs,
    workers: int,
    dry_run: bool,
    lock: Path,
    locked: bool,
    frozen: bool,
    allow_unsafe: bool,
    source: Any = None,
    no_deps: bool = False,
    tasks: bool = False,
) -> None:
    from hfa.closure import pull_closure

    if repo is None or locked or frozen:
        pull_from_lock(
            ctx, repo, repo_type, sel, lock, locked, frozen, workers, dry_run, allow_unsafe, source, no_deps, tasks
        )
        return
    if tasks:
        from hfa.errors import UsageError

        raise UsageError("--tasks pulls the lock's task defaults, not one REPO", "drop REPO, or drop --tasks")
    if allow_unsafe:
        ctx.out.warn("--allow-unsafe: files that can run code when loaded will be published. Never load them.")
    ref, options = repo_and_options(repo, repo_type, sel)
    with ctx.out.progress(transient=True) as bar:
        sink = RichProgress(bar) if bar is not None else None
        result = pull_closure(
            ctx.settings,
            ref,
            options,
            deps=not no_deps,
            dry_run=dry_run,
            workers=workers,
            progress=sink,
            allow_unsafe=allow_unsafe,
            source=source,
        )
    warn_pulled(ctx, result)

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
            for dep in result.dependencies:
                todo = [f for f in dep.files if f.status == "would-download"]
                why = "; ".join(f"required by {r['repo']} ({r['reason']})" for r in dep.required_by)
                out.line(
                    f"Would fetch {len(todo)} file(s), {human_size(sum(f.size for f in todo))}, of"
                    f" {dep.ref.display} at {dep.commit}; {why}."
                )
            return
        out.line(str(result.snapshot))
        out.success(
            f"{ref.display} → {result.commit[:12]}: {len(result.files)} file(s), {fetched} fetched"
            f" ({human_size(result.bytes_downloaded)}), {cached} cached, {len(result.skipped)} skipped"
            f" in {result.elapsed:.1f}s"
        )
        for dep in result.dependencies:
            why = "; ".join(f"required by {r['repo']} ({r['reason']})" for r in dep.required_by)
            got = sum(1 for f in dep.files if f.status in ("downloaded", "resumed"))
            out.line(str(dep.snapshot))
            out.success(
                f"{dep.ref.display} → {dep.commit[:12]}: {len(dep.files)} file(s), {got} fetched"
                f" ({human_size(dep.bytes_downloaded)}); {why}"
            )

    ctx.out.result(result.to_json(), human)
