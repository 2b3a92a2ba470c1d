"""``hfa jobs``: the batches ``hfa infer --jsonl FILE --submit`` runs in the background (docs/infer.md, "Jobs").

ls, status, wait, results, cancel, resume; with ``--endpoint-url`` status/wait/results/cancel ask
another machine's ``hfa serve --infer`` instead of this machine's jobs folder.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hfa.cli.options import Ctx, JsonOpt, QuietOpt, TokenOpt, VerboseOpt, guarded

if TYPE_CHECKING:
    from hfa.infer.jobrun import JobBackend

JobIdArg = Annotated[
    str, typer.Argument(help="The job id (job-… as `hfa infer --submit` printed it).", show_default=False)
]
JobIdsArg = Annotated[list[str], typer.Argument(help="One or more job ids.", show_default=False)]
JobsEndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Ask the jobs of this `hfa serve --infer` (where `hfa infer --submit --endpoint-url` sent them).",
        show_default=False,
    ),
]
WaitTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Give up after this many seconds (exit 7, the jobs go on). Default: wait as long as it takes.",
        show_default=False,
    ),
]


def _ctx(token: str | None, json_output: bool, quiet: int, verbose: int) -> Ctx:
    return Ctx.from_options(token=token, json_output=json_output, quiet=quiet, verbose=verbose)


def _backend(ctx: Ctx, endpoint_url: str | None) -> "JobBackend":
    if endpoint_url:
        from hfa.infer.jobs_remote import RemoteJobs

        ctx.out.add_secret(endpoint_url)  # a URL password is never printed
        return RemoteJobs(endpoint_url, ctx.settings.token)
    from hfa.infer.jobs import JobStore

    return JobStore()


def _summary(status: dict[str, Any]) -> str:
    counts = status["counts"]
    text = (
        f"{status['id']}  {status['status']}  {counts['completed']} completed, {counts['failed']} failed"
        f" of {counts['total']}  ({status.get('task')} on {status.get('model')})"
    )
    for extra in (status.get("message"), status.get("error")):
        if extra:
            text += f"\n  {extra}"
    return text


def ls(
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """List this machine's jobs, oldest first: id, status, counts, task and model."""
    ctx = _ctx(None, json_output, quiet, verbose)
    with guarded(ctx.out):
        from hfa.infer.jobs import JobStore

        store = JobStore()
        rows = store.statuses()
        out = ctx.out

        def human() -> None:
            if not rows:
                out.info(f"No jobs in {store.root}; submit one with hfa infer TASK --jsonl FILE --submit")
                return
            out.table(
                ["id", "status", "completed", "failed", "total", "task", "model"],
                [
                    [r["id"], r["status"], r["counts"]["completed"], r["counts"]["failed"], r["counts"]["total"],
                     r["task"], r["model"]]
                    for r in rows
                ],
            )  # fmt: skip

        out.result({"root": str(store.root), "jobs": rows}, human)


def status(
    job_id: JobIdArg,
    endpoint_url: JobsEndpointOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Show a job's status and counts (total, completed, failed); "died" when its worker was killed."""
    ctx = _ctx(token, json_output, quiet, verbose)
    with guarded(ctx.out):
        from hfa.infer.jobs import check_job_id

        doc = _backend(ctx, endpoint_url).status(check_job_id(job_id))
        ctx.out.result(doc, lambda: ctx.out.line(_summary(doc)))


def wait(
    job_ids: JobIdsArg,
    timeout: WaitTimeoutOpt = None,
    endpoint_url: JobsEndpointOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Wait for jobs to finish: exit 0 when every line of every job succeeded, 1 when any failed (or a
    job failed, was cancelled or its worker died), 7 when --timeout passed first."""
    ctx = _ctx(token, json_output, quiet, verbose)
    with guarded(ctx.out):
        from hfa.infer.jobrun import Job, outcome_error, wait_all

        backend = _backend(ctx, endpoint_url)
        jobs = [Job(job_id, backend) for job_id in job_ids]
        statuses = wait_all(jobs, timeout)
        error = outcome_error(statuses)
        out = ctx.out
        if out.json_mode:
            out.emit_json({"jobs": statuses, "ok": error is None})
        else:
            for doc in statuses:
                out.line(_summary(doc))
        if error is not None:
            if out.json_mode:
                out.error(str(error))
                raise typer.Exit(int(error.exit_code))
            raise error


def results(
    job_id: JobIdArg,
    endpoint_url: JobsEndpointOpt = None,
    token: TokenOpt = None,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Print a finished job's results as JSON lines, in input order, as `hfa infer --jsonl` does (exit 1 if
    any line failed; 7 if the job is still running)."""
    ctx = _ctx(token, False, quiet, verbose)
    with guarded(ctx.out):
        from hfa.errors import CheckFailed
        from hfa.infer.jobrun import Job

        lines = Job(job_id, _backend(ctx, endpoint_url)).result()
        out = ctx.out
        for line in lines:
            out.stdout.write(out.redact(json.dumps(line, ensure_ascii=False)) + "\n")
        out.stdout.flush()
        failed = sum(1 for line in lines if "error" in line)
        if failed:
            raise CheckFailed(
                f"{failed} of {len(lines)} request(s) failed", 'their lines carry "error"; the others are valid'
            )


def cancel(
    job_id: JobIdArg,
    endpoint_url: JobsEndpointOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Cancel a job: the requests not sent yet are not sent; the lines answered stay in its results."""
    ctx = _ctx(token, json_output, quiet, verbose)
    with guarded(ctx.out):
        from hfa.infer.jobs import check_job_id

        doc = _backend(ctx, endpoint_url).cancel(check_job_id(job_id))
        ctx.out.result(doc, lambda: ctx.out.line(_summary(doc)))


def resume(
    job_id: JobIdArg,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Finish a job whose worker died (or that was cancelled) in a new worker: lines already answered
    are not asked again."""
    ctx = _ctx(token, json_output, quiet, verbose)
    with guarded(ctx.out):
        from hfa.infer.jobrun import resume as resume_job
        from hfa.infer.jobs import JobStore, check_job_id

        doc = resume_job(JobStore(), check_job_id(job_id), ctx.settings)
        ctx.out.result(doc, lambda: ctx.out.line(_summary(doc)))


# -- hfa infer --submit ----------------------------------------------------------------------------------
def submit_batch(
    ctx: Ctx,
    task: str,
    *,
    model: str | None,
    jsonl: str,
    params: dict[str, Any],
    context: str | None,
    endpoint_url: str | None,
    lock: Path,
    local: bool,
    local_options: dict[str, Any],
    timeout: float,
    concurrency: int,
    use_cache: bool,
) -> None:
    """``hfa infer TASK --jsonl FILE --submit``: write the job and start its worker (or send it to
    ``endpoint_url``'s ``hfa serve --infer``); print its id at once."""
    from hfa.errors import UsageError

    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, not {concurrency}", "pass --concurrency 4")
    from hfa.infer.batch import read_jsonl

    lines = read_jsonl(jsonl)
    out = ctx.out
    if endpoint_url:
        from hfa.infer.jobs_remote import RemoteJobs

        out.add_secret(endpoint_url)
        doc: dict[str, Any] = {"task": task, "model": model, "parameters": params, "context": context, "lines": lines}
        doc["concurrency"] = min(concurrency, 16)
        answer = RemoteJobs(endpoint_url, ctx.settings.token).submit(doc)
        shown = {"id": answer["id"], "status": answer.get("status", "queued")}
    else:
        from hfa.infer.jobrun import submit_local
        from hfa.infer.jobs import JobStore

        spec = {
            "task": task,
            "model": model,
            "parameters": params,
            "context": context,
            "concurrency": concurrency,
            "timeout": timeout,
            "use_cache": use_cache,
            "local": local,
            "local_options": {k: v for k, v in local_options.items() if k != "lock"},
            "lock": str(lock.resolve()),
        }
        job = submit_local(JobStore(), ctx.settings, lines, spec)
        shown = {"id": job.id, "status": "queued"}
    where = f" --endpoint-url {endpoint_url}" if endpoint_url else ""

    def human() -> None:
        out.line(shown["id"])
        out.info(f"submitted; follow it with hfa jobs status {shown['id']}{where}")

    out.result(shown, human)
