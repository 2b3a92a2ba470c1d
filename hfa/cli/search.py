"""``hfa search``: find models, datasets and spaces on the endpoint, or (``--offline``) in the cache and the lock."""

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
from hfa.cli.selection import RepoTypeOpt
from hfa.resolve.filters import SearchFilters

_PREFIXES = {"datasets/": "dataset", "spaces/": "space", "models/": "model"}


def search(
    query: Annotated[
        str | None,
        typer.Argument(
            help="Text to look for in repo ids; a datasets/ or spaces/ prefix searches that kind.", show_default=False
        ),
    ] = None,
    repo_type: RepoTypeOpt = None,
    author: Annotated[str | None, typer.Option(help="Only repos of this user or organisation.")] = None,
    task: Annotated[
        str | None,
        typer.Option(help="Only repos with this task, e.g. text-classification (a dataset's task_categories)."),
    ] = None,
    library: Annotated[str | None, typer.Option(help="Only repos of this library, e.g. transformers.")] = None,
    license_: Annotated[
        list[str] | None,
        typer.Option("--license", help="Only repos under this licence id, e.g. apache-2.0 (repeatable: any of them)."),
    ] = None,
    language: Annotated[
        list[str] | None, typer.Option("--language", help="Only repos in this language, e.g. en (repeatable).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only repos with this tag (repeatable: all of them).")
    ] = None,
    gated: Annotated[
        bool | None,
        typer.Option(
            "--gated/--no-gated", help="Only gated repos, or only repos that are not gated.", show_default=False
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option(help="Sort by downloads, likes, last_modified, created_at or trending_score (descending)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many results.", min=1)] = 20,
    lock: Annotated[
        Path,
        typer.Option("--lock", help="With --offline: also list what this lock names.", dir_okay=False),
    ] = Path("hfa.lock"),
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    token: TokenOpt = None,
    offline: OfflineOpt = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = 0,
    verbose: VerboseOpt = 0,
) -> None:
    """With --offline, searches what is here instead: the cached repos' cards and the lock, no network."""
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

        kind = repo_type
        for prefix, prefixed_type in _PREFIXES.items():
            if query is not None and query.startswith(prefix):
                if kind is not None and kind != prefixed_type:
                    raise UsageError(f"'{query}' and --repo-type {kind} disagree", "give one of them")
                query, kind = query[len(prefix) :] or None, prefixed_type
        if kind is not None and kind not in ("model", "dataset", "space"):
            raise UsageError(f"Unknown repo type '{kind}'", "use model, dataset or space")
        filters = SearchFilters(
            author=author,
            task=task,
            library=library,
            licenses=tuple(license_ or ()),
            languages=tuple(language or ()),
            tags=tuple(tag or ()),
            gated=gated,
        )
        if ctx.settings.offline:
            _search_here(ctx, kind, query, filters, limit, lock)
            return
        _search_endpoint(ctx, kind or "model", query, filters, sort, limit)


def _search_endpoint(
    ctx: Ctx, kind: str, query: str | None, filters: SearchFilters, sort: str | None, limit: int
) -> None:
    from hfa.errors import NetworkError, OfflineError
    from hfa.hub.client import OnlineHub

    try:
        found = OnlineHub(ctx.settings).search(kind, query, filters, sort=sort, limit=limit)
    except NetworkError as exc:
        if not isinstance(exc, OfflineError):
            exc.hint = "check --endpoint / HF_ENDPOINT and your network, then retry"
        raise

    def human() -> None:
        if not found:
            ctx.out.info(f"No {kind}s matched.")
            return
        if kind == "model":
            columns = ["id", "task", "library", "downloads", "likes", "last modified"]
            rows = [
                [m.id, m.pipeline_tag or "", m.library_name or "", m.downloads, m.likes, m.last_modified or ""]
                for m in found
            ]
        else:
            columns = ["id", "license", "downloads", "likes", "last modified"]
            rows = [[m.id, m.license or "", m.downloads, m.likes, m.last_modified or ""] for m in found]
        ctx.out.table(columns, rows, justify={"downloads": "right", "likes": "right"})

    ctx.out.result({f"{kind}s": [m.to_json() for m in found]}, human)


def _search_here(
    ctx: Ctx, kind: str | None, query: str | None, filters: SearchFilters, limit: int, lock_path: Path
) -> None:
    from hfa.discover import search_local
    from hfa.lock import lockfile

    lock = lockfile.read(lock_path, missing_ok=True)
    found = search_local(ctx.settings.cache_dir, lock, kind, query, filters, limit=limit)

    def human() -> None:
        if not found:
            ctx.out.info(f"Nothing in {ctx.settings.cache_dir} or {lock_path} matched.")
            return
        ctx.out.table(
            ["id", "license", "task", "library", "tags", "where"],
            [
                [
                    r.label,
                    r.license or "",
                    r.task or "",
                    r.library or "",
                    ", ".join(r.tags[:5]),
                    "+".join(w for w, on in (("cache", r.in_cache), ("lock", r.locked is not None)) if on),
                ]
                for r in found
            ],
        )

    ctx.out.result(
        {"offline": True, "cache_dir": str(ctx.settings.cache_dir), "repos": [r.to_json() for r in found]}, human
    )
