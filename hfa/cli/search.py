"""``hfa search``: find models on the endpoint."""

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


def search(
    query: Annotated[str | None, typer.Argument(help="Text to look for in model ids.", show_default=False)] = None,
    author: Annotated[str | None, typer.Option(help="Only models of this user or organisation.")] = None,
    task: Annotated[
        str | None, typer.Option(help="Only models with this pipeline tag, e.g. text-classification.")
    ] = None,
    library: Annotated[str | None, typer.Option(help="Only models of this library, e.g. transformers.")] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="Sort by downloads, likes, last_modified, created_at or trending_score (descending)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many results.", min=1)] = 20,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
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
        from hfa.errors import NetworkError, OfflineError
        from hfa.hub.client import OnlineHub

        try:
            models = OnlineHub(ctx.settings).search_models(
                query, author=author, task=task, library=library, sort=sort, limit=limit
            )
        except NetworkError as exc:
            if not isinstance(exc, OfflineError):  # search has no offline form: never suggest --offline
                exc.hint = "check --endpoint / HF_ENDPOINT and your network, then retry"
            raise

        def human() -> None:
            if not models:
                ctx.out.info("No models matched.")
                return
            ctx.out.table(
                ["id", "task", "library", "downloads", "likes", "last modified"],
                [
                    [m.id, m.pipeline_tag or "", m.library_name or "", m.downloads, m.likes, m.last_modified or ""]
                    for m in models
                ],
                justify={"downloads": "right", "likes": "right"},
            )

        ctx.out.result({"models": [m.to_json() for m in models]}, human)
