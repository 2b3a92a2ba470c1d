"""The Hub API answers of ``hfa serve`` (``/api/{type}s/...``): repo info, file trees, paths-info,
refs, commits, search and whoami, as JSON documents in the shapes huggingface_hub 2.x reads.

Each answer takes the request's :class:`~hfa.server.handler.Request`: its query, its token, its
repo lookup (so ``--auth`` and ``--lock`` apply alike) and its way to send JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode

from hfa.server.search import search_page
from hfa.server.store import Repo, Snapshot, tree_oid
from hfa.server.wire import (
    HttpError,
    card_tags,
    created_at,
    cursor,
    dirs_of,
    file_doc,
    folder_oid,
    sibling,
    tree_entries,
    truthy,
)

if TYPE_CHECKING:
    from hfa.server.handler import Request as Handler

MAX_PATHS_INFO_BODY = 16 * 1024 * 1024


def answer(handler: Handler, repo_type: str, repo_id: str, action: str | None, args: list[str], head: bool) -> None:
    """``/api/{type}s/{repo_id}[/{action}/{args...}]``; HttpError 404 for a route the Hub does not have."""
    method = handler.command
    if action is None and method in ("GET", "HEAD"):
        repo, snap = handler.snapshot_or_error(repo_type, repo_id, None)
        handler.send_json(info(handler, repo, snap, detailed=True), head=head)
    elif action == "revision" and args and method in ("GET", "HEAD"):
        repo, snap = handler.snapshot_or_error(repo_type, repo_id, unquote("/".join(args)))
        handler.send_json(info(handler, repo, snap, detailed=True), head=head)
    elif action == "tree" and args and method in ("GET", "HEAD"):
        _, snap = handler.snapshot_or_error(repo_type, repo_id, unquote(args[0]))
        tree(handler, snap, unquote("/".join(args[1:])).strip("/"), head)
    elif action == "paths-info" and args and method == "POST":
        _, snap = handler.snapshot_or_error(repo_type, repo_id, unquote(args[0]))
        paths_info(handler, snap)
    elif action == "refs" and not args and method in ("GET", "HEAD"):
        repo, _ = handler.repo_or_error(repo_type, repo_id)
        refs(handler, repo, head)
    elif action == "commits" and args and method in ("GET", "HEAD"):
        _, snap = handler.snapshot_or_error(
            repo_type, repo_id, unquote("/".join(args))
        )  # the cache knows one commit, not history
        doc: dict[str, Any] = {
            "id": snap.commit,
            "authors": [],
            "date": snap.date,
            "title": snap.title,
            "message": "",
        }
        if "formatted" in handler.query().get("expand[]", []):
            doc["formatted"] = {"title": snap.title, "message": ""}
        handler.send_json([doc], head=head)
    else:
        raise HttpError(404, f"Not found: {method} {handler.path.partition('?')[0]}")


def info(handler: Handler, repo: Repo, snap: Snapshot, detailed: bool) -> dict[str, Any]:
    """The repo's info document (``detailed``: as ``/api/{type}s/{repo}`` gives it, else as search lists it)."""
    store = handler.server.store
    policy = handler.server.config.auth
    card = store.card_data(snap)
    query = handler.query()
    blobs = truthy(query.get("blobs", ["false"])[-1])
    doc: dict[str, Any] = {
        "_id": tree_oid([repo.repo_type, repo.repo_id])[:24],
        "id": repo.repo_id,
        "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
        "sha": snap.commit,
        "lastModified": snap.date,
        "createdAt": created_at(repo, snap),
        "private": policy.is_private(repo.repo_type, repo.repo_id),
        "gated": policy.gated(repo.repo_type, repo.repo_id),
        "disabled": False,
        "downloads": store.download_count(repo),
        "likes": int(repo.meta.get("likes", 0) or 0),
        "tags": card_tags(repo, card),
    }
    if repo.repo_type == "model":
        doc["modelId"] = repo.repo_id
        doc["pipeline_tag"] = card.get("pipeline_tag") if isinstance(card.get("pipeline_tag"), str) else None
        doc["library_name"] = card.get("library_name") if isinstance(card.get("library_name"), str) else None
    if detailed or truthy(query.get("cardData", ["false"])[-1]) or truthy(query.get("full", ["false"])[-1]):
        doc["cardData"] = card
    if detailed or truthy(query.get("full", ["false"])[-1]):
        doc["siblings"] = [sibling(e, blobs) for e in sorted(snap.files.values(), key=lambda e: e.path)]
        if blobs:
            doc["usedStorage"] = sum(e.size for e in snap.files.values())
    expand = query.get("expand[]", []) + query.get("expand", [])
    if expand:
        keep = set(expand) | {"id", "_id"}
        if "siblings" in keep:
            doc["siblings"] = [sibling(e, blobs) for e in sorted(snap.files.values(), key=lambda e: e.path)]
        if "cardData" in keep:
            doc["cardData"] = card
        doc = {k: v for k, v in doc.items() if k in keep or (k == "sha" and "sha" in keep)}
    return doc


def _next_link(handler: Handler, params: Any) -> str:
    return f'<{handler.base_url()}{handler.path.partition("?")[0]}?{urlencode(params)}>; rel="next"'


def tree(handler: Handler, snap: Snapshot, prefix: str, head: bool) -> None:
    """``/tree/{revision}/{prefix}``: the entries under ``prefix``, one page (``Link``-paged)."""
    query = handler.query()
    recursive = truthy(query.get("recursive", ["false"])[-1])
    expand = truthy(query.get("expand", ["false"])[-1])
    entries = tree_entries(snap, prefix, recursive)
    if expand:
        last = {"id": snap.commit, "title": snap.title, "date": snap.date}
        for e in entries:
            e["lastCommit"] = last
    size = handler.server.config.tree_page_size
    start = cursor(query)
    page = entries[start : start + size]
    headers = {}
    if start + size < len(entries):
        params = {k: v[-1] for k, v in query.items() if k != "cursor"}
        params["cursor"] = str(start + size)
        headers["Link"] = _next_link(handler, params)
    handler.send_json(page, headers, head)


def paths_info(handler: Handler, snap: Snapshot) -> None:
    """``POST /paths-info/{revision}``: the entries of the paths the body names (JSON or a form)."""
    declared = (handler.headers.get("Content-Length") or "0").strip()
    if not declared.isascii() or not declared.isdigit():
        raise HttpError(400, "Invalid Content-Length")
    length = int(declared)
    if length > MAX_PATHS_INFO_BODY:
        raise HttpError(413, "Request body too large")
    raw = handler.read_body(length).decode("utf-8", "replace")
    if not handler.headers.get("Transfer-Encoding"):
        handler.mark_body_read()
    ctype = handler.headers.get("Content-Type", "")
    if "json" in ctype:
        try:
            body = json.loads(raw or "{}")
        except ValueError:
            raise HttpError(400, "Invalid JSON body") from None
        paths = body.get("paths", [])
        expand = bool(body.get("expand", False))
        paths = [paths] if isinstance(paths, str) else list(paths)
    else:
        form = parse_qs(raw, keep_blank_values=True)
        paths = form.get("paths", [])
        expand = truthy(form.get("expand", ["false"])[-1])
    dirs = dirs_of(snap.files)
    out: list[dict[str, Any]] = []
    for path in paths:
        path = str(path).strip("/")
        if path in snap.files:
            out.append(file_doc(snap.files[path]))
        elif path in dirs:
            out.append({"type": "directory", "oid": folder_oid(snap.files, path), "size": 0, "path": path})
    if expand:
        for e in out:
            e["lastCommit"] = {"id": snap.commit, "title": snap.title, "date": snap.date}
    handler.send_json(out)


def refs(handler: Handler, repo: Repo, head: bool) -> None:
    """``/refs``: branches, tags (and pull requests with ``include_prs``) whose commit the cache holds."""
    store = handler.server.store
    branches, tags, prs = [], [], []
    commits = set(store.commits(repo))
    for name, sha in sorted(store.refs(repo).items()):
        if sha not in commits:
            continue
        if name.startswith("refs/pr/"):
            prs.append({"name": name.removeprefix("refs/"), "ref": name, "targetCommit": sha})
        elif name in repo.tags:
            tags.append({"name": name, "ref": f"refs/tags/{name}", "targetCommit": sha})
        else:
            branches.append({"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha})
    doc: dict[str, Any] = {"branches": branches, "tags": tags, "converts": []}
    if truthy(handler.query().get("include_prs", ["0"])[-1]):
        doc["pullRequests"] = prs
    handler.send_json(doc, head=head)


def whoami(handler: Handler, head: bool) -> None:
    """``/api/whoami-v2``: the name ``--auth`` gives the request's token; 401 without a known one."""
    rule = handler.server.config.auth.who(handler.token())
    if rule is None:
        raise HttpError(401, "Invalid credentials in Authorization header")
    handler.send_json({"type": "user", "name": rule.name, "auth": {"type": "access_token"}}, head=head)


def tasks(handler: Handler, head: bool) -> None:
    """``/api/tasks``: per pipeline tag, the models served with it (``widgetModels``, by id), as the Hub's
    task table is shaped; huggingface_hub takes the first as the task's recommended model."""
    policy = handler.server.config.auth
    rule = policy.who(handler.token())
    by_tag: dict[str, list[str]] = {}
    start: int | None = 0
    while start is not None:
        q = {"cursor": [str(start)]} if start else {}
        page, start = search_page(
            handler.server.store,
            policy,
            rule,
            "model",
            q,
            lambda repo, snap: info(handler, repo, snap, detailed=False),
            handler.server.config.page_size,
        )
        for doc in page:
            if isinstance(doc.get("pipeline_tag"), str) and not doc.get("gated"):
                by_tag.setdefault(doc["pipeline_tag"], []).append(doc["id"])
    body = {tag: {"id": tag, "widgetModels": sorted(ids)} for tag, ids in sorted(by_tag.items())}
    handler.send_json(body, head=head)


def search(handler: Handler, repo_type: str, head: bool) -> None:
    """``/api/{type}s``: one page of the repos that match the query and the token may see."""
    policy = handler.server.config.auth
    rule = policy.who(handler.token())
    q = handler.query()
    page, next_cursor = search_page(
        handler.server.store,
        policy,
        rule,
        repo_type,
        q,
        lambda repo, snap: info(handler, repo, snap, detailed=False),
        handler.server.config.page_size,
    )
    headers = {}
    if next_cursor is not None:
        params = [(k, v) for k, vs in q.items() if k != "cursor" for v in vs]
        params.append(("cursor", str(next_cursor)))
        headers["Link"] = _next_link(handler, params)
    handler.send_json(page, headers, head)
