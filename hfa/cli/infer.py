"""``hfa infer``: run a model through the Inference API (or ``--local``), one request or a JSONL batch."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from hfa.infer.session import Session

PANEL_INPUT = "Input"
PANEL_TASK = "Task options"
PANEL_RUN = "Running"

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="REPO\\[@REV] to run, e.g. org/name@v1.0; the revision pins the result-cache key.",
        show_default=False,
    ),
]
InputOpt = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        help="The input text (the question for question-answering; the image path for image-classification).",
        rich_help_panel=PANEL_INPUT,
        show_default=False,
    ),
]
InputFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--input-file",
        help="Read the input text from a file (an image file for image-classification).",
        rich_help_panel=PANEL_INPUT,
        show_default=False,
        dir_okay=False,
    ),
]
JsonlOpt = Annotated[
    str | None,
    typer.Option(
        "--jsonl",
        help='Batch: one request per line ({"id": …, "inputs": …, "parameters": {…}}) from FILE, or - '
        "for stdin; one result line per request on stdout, in input order.",
        rich_help_panel=PANEL_INPUT,
        show_default=False,
        metavar="FILE|-",
    ),
]
LabelsOpt = Annotated[
    str | None,
    typer.Option(
        "--labels",
        help="zero-shot-classification: candidate labels, comma-separated.",
        rich_help_panel=PANEL_TASK,
        show_default=False,
    ),
]
ContextOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        help="question-answering: the text to find the answer in.",
        rich_help_panel=PANEL_TASK,
        show_default=False,
    ),
]
MaxNewTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--max-new-tokens",
        help="text-generation, summarization, translation: at most this many tokens.",
        rich_help_panel=PANEL_TASK,
        show_default=False,
    ),
]
SrcLangOpt = Annotated[
    str | None,
    typer.Option(
        "--src-lang",
        help="translation: source language (with --tgt-lang).",
        rich_help_panel=PANEL_TASK,
        show_default=False,
    ),
]
TgtLangOpt = Annotated[
    str | None,
    typer.Option("--tgt-lang", help="translation: target language.", rich_help_panel=PANEL_TASK, show_default=False),
]
ParametersOpt = Annotated[
    str | None,
    typer.Option(
        "--parameters",
        help="Any task parameters as a JSON object, e.g. '{\"top_k\": 3}'; the options above win over it.",
        rich_help_panel=PANEL_TASK,
        show_default=False,
    ),
]
EndpointUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send requests here (another machine's `hfa serve --infer`, an Inference "
        "Endpoint) instead of the hf-inference route of --endpoint.",
        rich_help_panel=PANEL_RUN,
        show_default=False,
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Seconds one request may take, retries and waits for a loading model included.",
        rich_help_panel=PANEL_RUN,
    ),
]
ConcurrencyOpt = Annotated[
    int,
    typer.Option("--concurrency", help="Batch: requests in flight at once.", rich_help_panel=PANEL_RUN),
]
NoCacheOpt = Annotated[
    bool,
    typer.Option("--no-cache", help="Neither read nor write the result cache.", rich_help_panel=PANEL_RUN),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="text-to-image: the image file (a directory with --jsonl). Other tasks: write the result as JSON here.",
        rich_help_panel=PANEL_RUN,
        show_default=False,
    ),
]
LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Run the model from the cache in-process (needs pip install 'hfa\\[infer]').",
        rich_help_panel=PANEL_RUN,
    ),
]
AllowPickleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="--local: allow pickle weights when a model has no safetensors (hfa's scanner still refuses dangerous ones).",
        rich_help_panel=PANEL_RUN,
    ),
]
TrustRemoteCodeInferOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="--local: run the repository's own code (auto_map, custom modules). Only for repos you trust.",
        rich_help_panel=PANEL_RUN,
    ),
]
InferLockOpt = Annotated[
    Path | None,
    typer.Option(
        "--lock",
        help="The lock whose task default runs when no --model is given (and, with --local, the model's"
        " commit); its folder's hfa.toml lists the providers. Default: ./hfa.lock.",
        dir_okay=False,
        rich_help_panel=PANEL_RUN,
        show_default=False,
    ),
]
UsageOpt = Annotated[
    bool,
    typer.Option(
        "--usage",
        help="Show each provider's limits (used and left per window), cooldowns and the state store's path;"
        " the same as `hfa infer usage`.",
        rich_help_panel=PANEL_RUN,
    ),
]
SubmitOpt = Annotated[
    bool,
    typer.Option(
        "--submit",
        help="With --jsonl: run the batch as a background job and print its id at once (`hfa jobs`);"
        " with --endpoint-url, as a job of that `hfa serve --infer`.",
        rich_help_panel=PANEL_RUN,
    ),
]
SelftestOpt = Annotated[
    bool,
    typer.Option(
        "--selftest",
        help="Run a built-in input and check the result's shape and type (exit 1 if wrong).",
        rich_help_panel=PANEL_RUN,
    ),
]


def infer(
    task: Annotated[
        str | None,
        typer.Argument(
            help="text-generation, text-classification (sentiment-analysis), summarization, translation, "
            "question-answering, zero-shot-classification, text-to-image, image-classification, "
            "feature-extraction (embeddings); or `usage` (as --usage).",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = None,
    input_text: InputOpt = None,
    input_file: InputFileOpt = None,
    jsonl: JsonlOpt = None,
    labels: LabelsOpt = None,
    context: ContextOpt = None,
    max_new_tokens: MaxNewTokensOpt = None,
    src_lang: SrcLangOpt = None,
    tgt_lang: TgtLangOpt = None,
    parameters: ParametersOpt = None,
    endpoint_url: EndpointUrlOpt = None,
    timeout: TimeoutOpt = 300.0,
    concurrency: ConcurrencyOpt = 4,
    no_cache: NoCacheOpt = False,
    output: OutputOpt = None,
    local: LocalOpt = False,
    allow_pickle: AllowPickleOpt = False,
    trust_remote_code: TrustRemoteCodeInferOpt = False,
    lock: InferLockOpt = None,
    selftest: SelftestOpt = False,
    usage: UsageOpt = False,
    submit: SubmitOpt = False,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """Requests go to the Inference API route of --endpoint (or to --endpoint-url), retried on 429 and 5xx, waiting while a model loads, within one --timeout per request. Identical requests are answered from the result cache.

    Without --model, the lock's default for the task runs (`hfa pin --task TASK`). With \\[\\[infer.providers]] in hfa.toml, requests go to the providers in order, falling over to the next, within their limits (`hfa infer usage`).

    A batch writes one line per request, in input order, and exits 1 if any line failed. See docs/infer.md.
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
        from hfa.errors import UsageError
        from hfa.infer.session import Session
        from hfa.infer.tasks import build_parameters, get_task

        lock_path = lock if lock is not None else Path("hfa.lock")
        if usage or task == "usage":
            _usage(ctx, lock_path)
            return
        if task is None:  # optional only so that `hfa infer --usage` needs none
            raise UsageError("Missing argument 'TASK'", "e.g. hfa infer embeddings --input 'hello'; see hfa infer -h")
        spec = get_task(task)
        sources = [
            name
            for name, given in (
                ("--input", input_text is not None),
                ("--input-file", input_file),
                ("--jsonl", jsonl),
                ("--selftest", selftest),
            )
            if given
        ]
        if len(sources) != 1:
            raise UsageError(
                "Give exactly one of --input, --input-file, --jsonl or --selftest"
                + (f" (got {', '.join(sources)})" if sources else ""),
                f"e.g. hfa infer {spec.name} --model org/name --input 'some text'",
            )
        extra = _parse_parameters(parameters)
        params = build_parameters(
            spec,
            labels=labels,
            max_new_tokens=max_new_tokens,
            src_lang=src_lang,
            tgt_lang=tgt_lang,
            context=context,
            extra=extra,
        )
        if not local and (allow_pickle or trust_remote_code):
            raise UsageError(
                "--allow-pickle and --trust-remote-code apply to --local",
                "add --local, or drop them (a server decides its own policy)",
            )
        local_options: dict[str, Any] = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
        if local and lock is not None:
            from hfa.lock import lockfile

            local_options["lock"] = lockfile.read(lock)
        out = ctx.out
        if submit:
            if not jsonl or output is not None:
                raise UsageError("--submit runs a --jsonl batch (without --output)", "pass --jsonl FILE --submit")
            _submit(ctx, spec.name, model, jsonl, params, context, endpoint_url, lock_path, local, local_options,
                    timeout, concurrency, not no_cache)  # fmt: skip
            return
        providers = _providers(lock_path) if not (local or endpoint_url) else []
        if model is None and endpoint_url is None:
            from hfa.infer.defaults import default_for

            default = default_for(lock_path, spec.name)  # no network: the lock says which commit
            model = f"{default.repo_id}@{default.commit}"
            out.debug(f"{spec.name}: the lock's default, {default.display} at {default.commit}")
        session = Session(
            ctx.settings,
            spec,
            model,
            endpoint_url=endpoint_url,
            local=local,
            timeout=timeout,
            use_cache=not (no_cache or selftest),
            on_wait=out.debug if jsonl else out.info,
            local_options=local_options,
            providers=providers,
            on_event=out.debug,
            on_warning=out.warn,
        )
        if session.cache_note:
            out.debug(session.cache_note)
        if selftest:
            _selftest(ctx, session, params)
        elif jsonl:
            _batch(ctx, session, jsonl, params, context, concurrency, output)
        else:
            _single(ctx, session, input_text, input_file, params, context, output)


def _submit(
    ctx: Ctx,
    task: str,
    model: str | None,
    jsonl: str,
    params: dict[str, Any],
    context: str | None,
    endpoint_url: str | None,
    lock_path: Path,
    local: bool,
    local_options: dict[str, Any],
    timeout: float,
    concurrency: int,
    use_cache: bool,
) -> None:
    from hfa.cli.jobs import submit_batch

    if model is None and endpoint_url is None:
        from hfa.infer.defaults import default_for

        default = default_for(lock_path, task)  # the worker runs exactly the lock's commit
        model = f"{default.repo_id}@{default.commit}"
    submit_batch(
        ctx,
        task,
        model=model,
        jsonl=jsonl,
        params=params,
        context=context,
        endpoint_url=endpoint_url,
        lock=lock_path,
        local=local,
        local_options=local_options,
        timeout=timeout,
        concurrency=concurrency,
        use_cache=use_cache,
    )


def _parse_parameters(text: str | None) -> dict[str, Any]:
    from hfa.errors import UsageError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--parameters is not JSON: {exc}", "write --parameters '{\"top_k\": 3}'") from None
    if not isinstance(value, dict):
        raise UsageError("--parameters must be a JSON object", "write --parameters '{\"top_k\": 3}'")
    return value


def _single(
    ctx: Ctx,
    session: "Session",
    text: str | None,
    file: Path | None,
    params: dict[str, Any],
    context: str | None,
    output: Path | None,
) -> None:
    from hfa.infer.tasks import render

    out, spec = ctx.out, session.spec
    result, cached = session.answer(text, file, params, context, output)
    outcome = session.last_outcome
    if cached:
        out.info("(answered from the inference cache; --no-cache to ask again)")
    elif outcome is not None and outcome.fallbacks:
        out.info(f"answered by provider '{outcome.provider}' after {len(outcome.fallbacks)} fallback(s)")
    shown = session.save(result, output)
    if shown is not None:  # an image: its file, not its bytes
        out.result(
            session.describe(shown, cached, outcome),
            lambda: out.line(f"wrote image to {output} ({len(result)} bytes)"),
        )
        return

    def human() -> None:
        for line in render(spec, result):
            out.line(line)
        if output is not None:
            out.info(f"wrote result to {output}")

    out.result(session.describe(result, cached, outcome), human)


def _providers(lock_path: Path) -> list[Any]:
    """hfa.toml's ``[[infer.providers]]`` beside the lock, in the order they are tried."""
    from hfa.infer.providers import parse_providers
    from hfa.project import project_for_lock

    project = project_for_lock(lock_path)
    return parse_providers(project.table("infer"), project.origin or "hfa.toml")


def _usage(ctx: Ctx, lock_path: Path) -> None:
    """``hfa infer usage``: per provider, each limit's used/left, its cooldown, and the store's path."""
    import time

    from hfa.infer.limits import StateStore, clock_time

    out = ctx.out
    store = StateStore(on_warning=out.warn)
    providers = _providers(lock_path)
    cooldowns = store.cooldowns()
    now = time.time()
    rows = []
    for spec in providers:
        cool = cooldowns.get(spec.name)
        rows.append(
            {
                **spec.describe(),
                "limits": store.usage(spec) if spec.rates or spec.chars_per_month else [],
                "cooldown": cool.to_json() if cool is not None and cool.until > now else None,
            }
        )
    doc = {"store": str(store.root), "providers": rows}

    def human() -> None:
        if not rows:
            out.line("No [[infer.providers]] in hfa.toml: requests go to one route, with no limits.")
        for row in rows:
            state = "" if row["enabled"] else " (disabled)"
            out.line(f"{row['name']} ({row['kind']}, priority {row['priority']}){state}")
            for limit in row["limits"]:
                free = f", next free at {clock_time(limit['next_free_at'])}" if limit["next_free_at"] else ""
                out.line(
                    f"  {limit['measure']}: {limit['used']} of {limit['limit']} per {limit['period']} used,"
                    f" {limit['left']} left{free}"
                )
            if not row["limits"]:
                limited = row["rate"] or row["chars_per_month"]
                out.line("  limits not counted: the store may not be written here" if limited else "  no limits")
            if row["cooldown"]:
                out.line(f"  cooling down until {clock_time(row['cooldown']['until'])}: {row['cooldown']['reason']}")
        out.line(f"state store: {store.root}")

    out.result(doc, human)


def _selftest(ctx: Ctx, session: "Session", params: dict[str, Any]) -> None:
    out = ctx.out
    report = session.selftest(params)
    doc = {**session.describe(None, False), **report.to_json()}
    doc.pop("cached")
    summary = f"selftest passed: {session.spec.name} on {session.model_label}: {report.summary}"
    out.result(doc, lambda: out.success(summary))


def _batch(
    ctx: Ctx,
    session: "Session",
    source: str,
    params: dict[str, Any],
    context: str | None,
    concurrency: int,
    output: Path | None,
) -> None:
    from hfa.errors import CheckFailed

    out = ctx.out
    lines, total = session.open_batch(source, concurrency, output)
    done = failed = 0
    with out.progress() as progress:
        bar = progress.add_task(f"{session.spec.name}", total=total) if progress is not None else None

        def on_done(ok: bool) -> None:
            if progress is not None:
                progress.advance(bar)

        for line in session.run_batch(lines, params, context, concurrency, output, on_done):
            done += 1
            failed += "error" in line
            out.stdout.write(out.redact(json.dumps(line, ensure_ascii=False)) + "\n")
            out.stdout.flush()
    if failed:
        raise CheckFailed(f"{failed} of {done} request(s) failed", 'their lines carry "error"; the others are valid')
    out.info(f"{done} request(s) done")
