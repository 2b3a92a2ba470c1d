"""Repository search for ``hfa serve`` (``GET /api/models`` and friends): the Hub's query
parameters, applied to what the cache holds and the token may see, one page at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hfa.server.auth import AuthPolicy, TokenRule
from hfa.server.store import Repo, ServedStore, Snapshot
from hfa.server.wire import HttpError, cursor, truthy

_SORT_KEYS = {
    "downloads": "downloads",
    "likes": "likes",
    "lastModified": "lastModified",
    "last_modified": "lastModified",
    "createdAt": "createdAt",
    "created_at": "createdAt",
    "trendingScore": "likes",
    "trending_score": "likes",
}


def search_page(
    store: ServedStore,
    policy: AuthPolicy,
    rule: TokenRule | None,
    repo_type: str,
    q: dict[str, list[str]],
    info: Callable[[Repo, Snapshot], dict[str, Any]],
    page_size: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the repos of ``repo_type`` that match ``q`` and that ``rule`` may see, as the
    documents ``info`` makes; and the cursor of the next page, or None on the last one."""
    search = (q.get("search", [""])[-1] or "").lower()
    author = q.get("author", [""])[-1]
    filters = [f for f in q.get("filter", []) if f]
    pipeline = q.get("pipeline_tag", [""])[-1]
    gated_q = q.get("gated", [""])[-1]
    sort = q.get("sort", [""])[-1]
    direction = q.get("direction", ["-1"])[-1]
    try:
        limit = int(q.get("limit", ["0"])[-1] or 0)
    except ValueError:
        raise HttpError(400, "limit must be an integer") from None
    if sort and sort not in _SORT_KEYS:
        raise HttpError(400, f"Invalid sort '{sort}': use one of {', '.join(sorted(_SORT_KEYS))}")
    results: list[dict[str, Any]] = []
    for repo in store.repos(repo_type):
        if policy.is_private(repo.repo_type, repo.repo_id) and not policy.may_read(rule, repo.repo_type, repo.repo_id):
            continue
        if search and search not in repo.repo_id.lower():
            continue
        if author and repo.repo_id.split("/")[0] != author:
            continue
        try:
            commit = store.default_commit(repo)
            snap = store.snapshot(repo, commit) if commit else None
        except HttpError as err:
            if err.status != 502:
                raise
            continue  # one repo the store cannot answer for (a damaged record) does not hide the others
        if snap is None:
            continue
        doc = info(repo, snap)
        tags = set(doc.get("tags", []))
        if pipeline and doc.get("pipeline_tag") != pipeline:
            continue
        if any(f not in tags for f in filters):
            continue
        if gated_q and truthy(gated_q) != bool(doc.get("gated")):
            continue
        results.append(doc)
    if sort:
        key = _SORT_KEYS[sort]
        results.sort(key=lambda d: (d.get(key) or 0, d["id"]), reverse=direction != "1")
    if limit > 0:
        results = results[:limit]
    size = limit if limit > 0 else page_size
    size = min(size, page_size)
    start = cursor(q)
    page = results[start : start + size]
    return page, (start + size if start + size < len(results) else None)
