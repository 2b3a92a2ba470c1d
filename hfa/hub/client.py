"""What hfa may ask of a Hub endpoint: the Hub API on top of the one request loop.

:class:`OnlineHub` is a :class:`~hfa.hub.requests.Session` (the one loop of redirects, retries,
bounds and the Hub's error codes, see :mod:`hfa.hub.requests`) that knows the Hub's API: a
repo's commit and file listing (:meth:`OnlineHub.resolve`), a small file's bytes, the paged
model search. Answers of the wrong shape are refused, naming what is wrong; nothing foreign
leaves this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from hfa.cache.hashing import COMMIT_RE
from hfa.errors import CheckFailed, UsageError
from hfa.hub.requests import Session, follow, next_link
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.filters import NO_FILTERS, SearchFilters
from hfa.resolve.refs import RepoRef

if TYPE_CHECKING:
    from hfa.hub.transport import Response

__all__ = ["SORT_CHOICES", "ModelSummary", "OnlineHub", "path_conflict", "search_params"]

SORT_CHOICES = ("downloads", "likes", "last_modified", "created_at", "trending_score")
_SORT_PARAM = {
    "last_modified": "lastModified",
    "created_at": "createdAt",
    "trending_score": "trendingScore",
}


@dataclass(frozen=True)
class ModelSummary:
    id: str
    pipeline_tag: str | None
    library_name: str | None
    downloads: int | None
    likes: int | None
    last_modified: str | None
    private: bool
    gated: str | bool
    repo_type: str = "model"
    license: str | None = None  # from the "license:…" tag

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    """A Hub timestamp (``2026-01-02T03:04:05.000Z``) as ``2026-01-02T03:04:05Z`` in UTC; other text as is."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    import re

    text = str(value).strip()
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?", text)
    if m is None:
        return text
    base, zone = m.group(1), m.group(2)
    if zone in (None, "Z", "+00:00", "-00:00"):
        return base + "Z"
    from datetime import timezone

    return datetime.fromisoformat(base + zone).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def search_params(repo_type: str, query: str | None, filters: SearchFilters = NO_FILTERS) -> list[tuple[str, Any]]:
    """The query of a Hub search as huggingface_hub 2.x builds it: ``filter`` (repeated) carries the
    library, tags, ``license:X`` and the language (plain ``en`` for models, ``language:en`` for datasets,
    as the Hub tags them); a model's task is ``pipeline_tag``, a dataset's ``task_categories:X``;
    ``gated=true|false`` (models and datasets: the Hub has no gated spaces)."""
    if repo_type not in ("model", "dataset", "space"):
        raise UsageError(f"Unknown repo type '{repo_type}'", "use model, dataset or space")
    f = filters
    if f.gated is not None and repo_type == "space":
        raise UsageError("Spaces are never gated: --gated/--no-gated is for models and datasets", "drop it")
    params: list[tuple[str, Any]] = []
    tags: list[str] = []
    if f.library:
        tags.append(f.library if repo_type == "model" else _prefixed("library", f.library))
    tags += [_prefixed("license", x) for x in f.licenses]
    tags += [x if repo_type == "model" else _prefixed("language", x) for x in f.languages]
    tags += list(f.tags)
    if f.task:
        if repo_type == "model":
            params.append(("pipeline_tag", f.task))
        else:
            tags.append(_prefixed("task_categories", f.task))
    for key, value in (("search", query), ("author", f.author)):
        if value:
            params.append((key, value))
    params += [("filter", t) for t in tags]
    if f.gated is not None:
        params.append(("gated", "true" if f.gated else "false"))
    return params


def _prefixed(key: str, value: str) -> str:
    return value if value.startswith(f"{key}:") else f"{key}:{value}"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# The fields of a repo info hfa reads, with the types it accepts (None: the field may be absent or null).
_INFO_FIELDS: dict[str, tuple[type, ...]] = {"cardData": (dict,), "gated": (bool, str), "private": (bool,)}
_SIBLING_FIELDS: dict[str, tuple[type, ...]] = {"lfs": (dict,)}


def _check_shape(doc: dict[str, Any], ref: RepoRef) -> None:
    """Refuse a repo info whose fields hfa reads have the wrong type, naming the field."""

    def wrong(field: str, expected: str) -> CheckFailed:
        return CheckFailed(
            f"The endpoint answered a repo info for '{ref}' whose '{field}' is not {expected}",
            "check --endpoint / HF_ENDPOINT: it does not speak the Hub's API",
        )

    siblings = doc.get("siblings")
    if not isinstance(siblings, list):
        raise wrong("siblings", "a list of files")
    for name, types in _INFO_FIELDS.items():
        if doc.get(name) is not None and not isinstance(doc[name], types):
            raise wrong(name, " or ".join(t.__name__ for t in types))
    for i, sib in enumerate(siblings):
        if not isinstance(sib, dict):
            raise wrong(f"siblings[{i}]", "an object")
        if not isinstance(sib.get("rfilename"), str):
            raise wrong(f"siblings[{i}].rfilename", "a string")
        for name, types in _SIBLING_FIELDS.items():
            if sib.get(name) is not None and not isinstance(sib[name], types):
                raise wrong(f"siblings[{i}].{name}", " or ".join(t.__name__ for t in types))


def path_conflict(paths: Any) -> tuple[str, str] | None:
    """Two paths of a listing that cannot both exist (``x.json`` and ``x.json/y.json``), or None."""
    known = set(paths)
    for path in sorted(known):
        folder = path
        while "/" in folder:
            folder = folder.rsplit("/", 1)[0]
            if folder in known:
                return folder, path
    return None


class OnlineHub(Session):
    """The Hub API of one endpoint (see :class:`~hfa.hub.requests.Session` for how requests are sent)."""

    @contextmanager
    def stream(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        ref: RepoRef | None = None,
        path: str | None = None,
        allow: frozenset[int] = frozenset(),
    ) -> Iterator[Response]:
        """GET ``url``, body unread (a download): :meth:`Session.send` with ``stream=True``, closed after."""
        response = self.send(url, stream=True, headers=headers, timeout=timeout, ref=ref, path=path, allow=allow)
        with response:
            yield response

    def file_url(self, ref: RepoRef, commit: str, path: str) -> str:
        from urllib.parse import quote

        prefix = "" if ref.repo_type == "model" else f"/{ref.repo_type}s"
        return f"{self.settings.endpoint}{prefix}/{ref.repo_id}/resolve/{commit}/{quote(path)}"

    def resolve(self, ref: RepoRef) -> Resolved:
        """One API call: the commit a revision points to, and every file with size and hash."""
        from urllib.parse import quote

        path = f"/api/{ref.repo_type}s/{ref.repo_id}"
        if ref.revision is not None:
            path += f"/revision/{quote(ref.revision, safe='')}"
        doc = self.get_json(self.url(path), {"blobs": "true"}, ref)
        if not isinstance(doc, dict):
            raise CheckFailed(f"The endpoint answered an invalid repo info for '{ref}'", "check --endpoint")
        commit = doc.get("sha")
        if not isinstance(commit, str) or not COMMIT_RE.match(commit):
            raise CheckFailed(f"The endpoint gave no valid commit for '{ref}'", "check --endpoint")
        if ref.pinned and commit != ref.revision:
            raise CheckFailed(
                f"The endpoint resolved commit {ref.revision} to {commit}", "check --endpoint: it is not honest"
            )
        _check_shape(doc, ref)
        files: dict[str, RemoteFile] = {}
        for sib in doc["siblings"]:
            lfs = sib.get("lfs")
            sha256 = lfs.get("sha256") if lfs else None
            entry = RemoteFile.checked(sib["rfilename"], sib.get("size"), sib.get("blobId"), sha256)
            if lfs and lfs.get("size") not in (None, entry.size):
                raise CheckFailed(f"The endpoint listed two sizes for '{entry.path}'", "check --endpoint")
            if entry.path in files:
                raise CheckFailed(f"The endpoint listed '{entry.path}' twice", "check --endpoint")
            files[entry.path] = entry
        if conflict := path_conflict(files):
            raise CheckFailed(
                f"The endpoint listed both '{conflict[0]}' and '{conflict[1]}' for '{ref}':"
                f" '{conflict[0]}' cannot be a file and a folder",
                "check --endpoint: no commit holds both",
            )
        gated = doc.get("gated")
        return Resolved(
            ref=ref,
            commit=commit,
            files=files,
            card_data=doc.get("cardData") or {},
            gated=gated if isinstance(gated, str) else bool(gated),
            private=bool(doc.get("private")),
        )

    # -- the light path --------------------------------------------------------------
    def get_json(self, url: str, params: Any = None, ref: RepoRef | None = None) -> Any:
        """GET a JSON document through the one request loop, bounded (see :meth:`Session.send`)."""
        return self.get_json_answer(url, params, ref)[0]

    def get_json_answer(self, url: str, params: Any, ref: RepoRef | None) -> tuple[Any, Any]:
        """The document and the final response's headers (``Link`` for paging); at most ``jsonsafe.MAX_DEPTH`` deep."""
        from hfa import jsonsafe

        target = f"{url}?{urlencode(params)}" if params else url
        answer = self.send(target, ref=ref)
        what = f"'{ref}'" if ref is not None else urlsplit(target).path
        try:
            return jsonsafe.loads(answer.body), answer.headers
        except jsonsafe.JsonTooDeep as exc:
            raise CheckFailed(f"The endpoint answered {exc} for {what}", "check --endpoint") from None
        except ValueError:  # only here: an SSL certificate error is a ValueError too
            raise CheckFailed(f"The endpoint answered invalid JSON for {what}", "check --endpoint") from None

    def read_small(self, ref: RepoRef, commit: str, path: str, limit: int = 16 * 1024 * 1024) -> bytes:
        """The bytes of a small file (an index, a README), at most ``limit``."""
        url = self.file_url(ref, commit, path)
        with self.stream(url, ref=ref, path=path) as response:
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise CheckFailed(f"'{path}' is larger than {limit} bytes", "it is not a small file")
            return data

    def paginate(self, path: str, params: Any) -> Iterator[Any]:
        """Items of a Link-paged JSON list; the token never follows a link to another origin."""
        url: str | None = self.url(path)
        while url:
            doc, headers = self.get_json_answer(url, params, None)
            if not isinstance(doc, list):
                raise CheckFailed(f"The endpoint answered no list for {path}", "check --endpoint")
            if not doc:  # an empty page ends the listing: endless empty pages never loop forever
                return
            yield from doc
            nxt = next_link(headers.get("Link"))
            url = follow(url, nxt, "a next-page link") if nxt else None
            params = None

    # -- queries -------------------------------------------------------------------
    def search_models(
        self,
        query: str | None = None,
        *,
        author: str | None = None,
        task: str | None = None,
        library: str | None = None,
        sort: str | None = None,
        limit: int = 20,
    ) -> list[ModelSummary]:
        filters = SearchFilters(author=author, task=task, library=library)
        return self.search("model", query, filters, sort=sort, limit=limit)

    def search(
        self,
        repo_type: str = "model",
        query: str | None = None,
        filters: SearchFilters = NO_FILTERS,
        *,
        sort: str | None = None,
        limit: int = 20,
    ) -> list[ModelSummary]:
        """One search of ``/api/{models,datasets,spaces}`` with the filters huggingface_hub's
        ``list_models``/``list_datasets``/``list_spaces`` send (:func:`search_params`)."""
        if limit < 1:
            raise UsageError(f"--limit must be at least 1, not {limit}", "pass --limit 20 or another positive number")
        if sort is not None and sort not in SORT_CHOICES:
            raise UsageError(f"Unknown sort '{sort}'", f"use one of: {', '.join(SORT_CHOICES)}")
        params = search_params(repo_type, query, filters)
        params.insert(0, ("limit", limit))
        if sort:
            params += [("sort", _SORT_PARAM.get(sort, sort)), ("direction", -1)]
        out: list[ModelSummary] = []
        for item in self.paginate(f"/api/{repo_type}s", params):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise CheckFailed(f"The endpoint answered an invalid {repo_type} list", "check --endpoint")
            gated_value = item.get("gated")
            raw_tags = item.get("tags")
            item_tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
            out.append(
                ModelSummary(
                    id=item["id"],
                    pipeline_tag=_str_or_none(item.get("pipeline_tag")),
                    library_name=_str_or_none(item.get("library_name")),
                    downloads=_int_or_none(item.get("downloads")),
                    likes=_int_or_none(item.get("likes")),
                    last_modified=_iso(item.get("lastModified") or item.get("last_modified")),
                    private=bool(item.get("private")),
                    gated=gated_value if isinstance(gated_value, str) and gated_value else bool(gated_value),
                    repo_type=repo_type,
                    license=next(
                        (t[8:] for t in item_tags if isinstance(t, str) and t.startswith("license:") and t[8:]), None
                    ),
                )
            )
            if len(out) >= limit:
                break
        return out
