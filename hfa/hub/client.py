"""The network behind one abstraction: what hfa may ask of a Hub endpoint.

Every HTTP request hfa makes (but the Inference API's, which huggingface_hub's
``InferenceClient`` sends) goes through :class:`OnlineHub`, which

* sends it through :mod:`hfa.hub.transport` (the standard library's ``http.client``: keep-alive
  per thread, TLS verified with the CA bundle httpx would use, proxies from the environment);
* follows redirects by hand and sends the token only to the endpoint's own origin, never
  to another host (a CDN, a paged link elsewhere);
* applies hfa's retry policy (connection errors, 408, 429 with ``Retry-After``, 5xx;
  exponential backoff with jitter, a bounded number of tries);
* reads the Hub's ``X-Error-Code`` as huggingface_hub's ``hf_raise_for_status`` does and
  raises :mod:`hfa.errors`: nothing foreign leaves this module;
* bounds what a server can make it do (docs/security.md, "Limits"): a JSON answer is at
  most ``MAX_API_BODY`` bytes, nested at most :data:`hfa.jsonsafe.MAX_DEPTH` deep, and
  arrives within ``HFA_API_DEADLINE`` seconds in all (retries included, waits between them
  not); a download keeps up ``HFA_MIN_SPEED`` bytes/s; a malformed URL in a ``Location`` or
  ``Link`` is a network error; answers of the wrong shape are refused, naming what is wrong.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from hfa.cache.hashing import COMMIT_RE
from hfa.config import Settings, check_token
from hfa.errors import (
    AccessDenied,
    CheckFailed,
    EntryNotFound,
    GatedRepo,
    HfaError,
    NetworkError,
    OfflineError,
    RepoNotFound,
    RevisionNotFound,
    UsageError,
    from_exception,
)
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef

if TYPE_CHECKING:
    from hfa.hub.transport import Response

SORT_CHOICES = ("downloads", "likes", "last_modified", "created_at", "trending_score")
_SORT_PARAM = {
    "last_modified": "lastModified",
    "created_at": "createdAt",
    "trending_score": "trendingScore",
}
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_API_BODY = 64 * 1024 * 1024  # one JSON answer: a listing of ~300,000 files with hashes fits
MAX_SMALL_BODY = 64 * 1024  # a redirect's or an error's body
MAX_HOPS = 10  # redirects followed for one request
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what a URL may hold as is (requests' requote_uri keeps the same)


@dataclass(frozen=True)
class RetryPolicy:
    """How hfa retries: ``retries`` more tries after the first, backoff doubling from ``base``."""

    retries: int = 3
    base: float = 0.5
    max_wait: float = 8.0
    max_retry_after: float = 60.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        raw = os.environ.get("HFA_MAX_RETRIES", "").strip()
        try:
            retries = int(raw) if raw else cls.retries
        except ValueError:
            raise UsageError(f"HFA_MAX_RETRIES must be a number, not '{raw}'", "set it to 0 or more") from None
        return cls(retries=max(0, retries))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (attempt counts from 0)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after)
        import random

        backoff = min(self.max_wait, self.base * (2**attempt))
        return backoff * (0.5 + random.random() / 2)  # jitter: never two clients in lockstep


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


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


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _answer_error(
    status: int,
    headers: Any,
    body: bytes,
    ref: RepoRef | None,
    endpoint: str,
    path: str | None = None,
    token_sent: bool | None = None,
) -> HfaError:
    """The Hub's answer as hfa's error, as huggingface_hub's hf_raise_for_status would classify it."""
    from hfa import jsonsafe

    code = headers.get("X-Error-Code") or ""
    message = headers.get("X-Error-Message") or ""
    try:
        doc = jsonsafe.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            message = message or doc["error"]
    except ValueError:
        pass
    if ref is not None:
        if code == "GatedRepo":
            page = f"{endpoint}/{'' if ref.repo_type == 'model' else ref.repo_type + 's/'}{ref.repo_id}"
            return GatedRepo(ref.repo_id, page, token_sent)
        if code == "RevisionNotFound":
            return RevisionNotFound(ref.repo_id, ref.revision_or_default)
        if code == "RepoNotFound" or (status == 401 and not code):
            return RepoNotFound(ref.repo_id, ref.repo_type)
        if code == "EntryNotFound":
            return EntryNotFound(ref.repo_id, path or "?", ref.revision)
    if status in (401, 403):
        return AccessDenied(f"The endpoint refused access (HTTP {status}): {message}", "check --token / HF_TOKEN")
    if status == 400:
        return UsageError(f"The endpoint refused the request: {message or 'HTTP 400'}", "check the arguments")
    if status == 404 and ref is not None:
        return (
            RepoNotFound(ref.repo_id, ref.repo_type) if path is None else EntryNotFound(ref.repo_id, path, ref.revision)
        )
    return NetworkError(
        f"The endpoint answered HTTP {status}: {message or 'no message'}",
        "retry later, or check --endpoint / HF_ENDPOINT",
    )


def follow(base: str, location: str, what: str = "a redirect") -> str:
    """The absolute URL a ``Location`` or ``Link`` names, relative to ``base``; NetworkError if malformed.

    As requests does: bytes the server sent as UTF-8 (read as latin-1 by ``http.client``) are
    taken as UTF-8, and spaces or other characters no URL holds are percent-encoded.
    """
    from urllib.parse import quote

    from hfa.hub.transport import redact

    text = location.strip()
    with suppress(UnicodeEncodeError, UnicodeDecodeError):
        text = text.encode("latin-1").decode("utf-8")
    try:
        url = urljoin(base, quote(text, safe=_URL_SAFE))
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # "Invalid IPv6 URL", a port out of range or not a number
        ok = False
    if not ok:
        raise NetworkError(
            f"The endpoint sent a malformed URL in {what}: '{redact(location)}'",
            "check --endpoint / HF_ENDPOINT: the server (or a proxy before it) is broken",
        )
    return url


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


class OnlineHub:
    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if settings.offline:
            raise OfflineError(
                "This command needs the network but offline mode is on",
                "drop --offline / unset HF_HUB_OFFLINE, or use a command that works from the cache",
            )
        check_token(settings.token)
        self.settings = settings
        self.retry = retry or RetryPolicy.from_env()
        self._sleep = sleep
        self.requests_made = 0

    # -- plumbing ----------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.settings.endpoint + path

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
        """GET ``url``, body unread, through :mod:`hfa.hub.transport`; retries before the body starts.

        Redirects are followed by hand and the token goes only to the endpoint's origin: a
        redirect to a CDN is followed without it. An error status becomes hfa's error (naming
        ``ref`` and ``path`` when given), as huggingface_hub would classify it, unless it
        is in ``allow``: those are handed back for the caller to deal with.
        """
        from hfa.hub import transport

        settings = self.settings
        bounds = transport.Bounds(
            timeout or settings.download_timeout, min_speed=settings.min_speed, speed_time=settings.min_speed_time
        )
        attempt = 0
        hops = 0
        while True:
            all_headers = {**self._headers(url, accept="*/*"), **(headers or {})}
            self.requests_made += 1
            try:
                response = transport.open_url("GET", url, all_headers, bounds=bounds)
            except Exception as exc:
                if not _is_transient(exc) or attempt >= self.retry.retries:
                    raise
                self._sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            with response:
                if response.is_redirect and hops < MAX_HOPS:
                    response.read(MAX_SMALL_BODY)  # a redirect's body is small; reading it keeps the connection
                    url = follow(url, response.headers["Location"])
                    hops += 1
                    continue
                if response.status_code in RETRY_STATUSES and attempt < self.retry.retries:
                    wait = self.retry.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
                    attempt += 1
                    self._sleep(wait)
                    continue
                if response.status_code >= 300 and response.status_code not in allow:  # also a 3xx left over
                    body = response.read(MAX_SMALL_BODY)
                    raise _answer_error(
                        response.status_code,
                        response.headers,
                        body,
                        ref,
                        settings.endpoint,
                        path,
                        "Authorization" in all_headers,
                    )
                yield response
                return

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
        """GET a JSON document: hfa's retry policy, redirects by hand, the Hub's errors mapped."""
        return self._get_json(url, params, ref)[0]

    def _get_json(self, url: str, params: Any, ref: RepoRef | None) -> tuple[Any, Any]:
        """The document and the final response's headers (``Link`` for paging).

        Bounded: the answer must arrive within ``settings.api_deadline`` seconds in all (the
        waits between retries are not counted), be at most ``MAX_API_BODY`` bytes and nest at
        most ``jsonsafe.MAX_DEPTH`` deep.
        """
        import http.client
        from urllib.parse import urlencode

        from hfa import jsonsafe
        from hfa.hub import transport

        target = f"{url}?{urlencode(params)}" if params else url
        what = f"'{ref}'" if ref is not None else urlsplit(target).path
        settings = self.settings
        deadline = time.monotonic() + settings.api_deadline
        attempt = 0
        hops = 0
        while True:
            self.requests_made += 1
            bounds = transport.Bounds(settings.api_timeout, deadline)
            try:
                with transport.open_url("GET", target, self._headers(target), bounds=bounds) as response:
                    status = response.status_code
                    if response.is_redirect and hops < MAX_HOPS:
                        response.read(MAX_SMALL_BODY)
                        target = follow(target, response.headers["Location"])
                        hops += 1
                        continue
                    if status in RETRY_STATUSES and attempt < self.retry.retries:
                        deadline += self._wait(attempt, response.headers.get("Retry-After"))
                        attempt += 1
                        continue
                    if status >= 300:
                        body = response.read(MAX_SMALL_BODY)
                        sent = "Authorization" in self._headers(target)
                        raise _answer_error(status, response.headers, body, ref, settings.endpoint, None, sent)
                    body = _read_capped(response, what)
                    headers = response.headers
            except HfaError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                if time.monotonic() >= deadline - 0.05:
                    raise NetworkError(
                        f"The endpoint's answer for {what} did not arrive within {settings.api_deadline:g} s"
                        f" ({error_reason(exc)})",
                        "retry later, or allow more time with HFA_API_DEADLINE=<seconds>",
                    ) from None
                if not _is_transient(exc) or attempt >= self.retry.retries:
                    known = from_exception(exc)
                    raise (
                        known
                        if isinstance(known, NetworkError)
                        else NetworkError(
                            f"Could not reach the endpoint ({type(exc).__name__}: {error_reason(exc)})",
                            "check --endpoint / HF_ENDPOINT and your network, or use --offline",
                        )
                    ) from None
                deadline += self._wait(attempt)
                attempt += 1
                continue
            try:
                return jsonsafe.loads(body), headers
            except jsonsafe.JsonTooDeep as exc:
                raise CheckFailed(f"The endpoint answered {exc} for {what}", "check --endpoint") from None
            except ValueError:  # only here: an SSL certificate error is a ValueError too
                raise CheckFailed(f"The endpoint answered invalid JSON for {what}", "check --endpoint") from None

    def _wait(self, attempt: int, retry_after: str | None = None) -> float:
        """Sleep before try ``attempt + 1``; return the seconds slept (they do not count against a deadline)."""
        wait = self.retry.delay(attempt, parse_retry_after(retry_after))
        self._sleep(wait)
        return wait

    def _headers(self, url: str, accept: str = "application/json") -> dict[str, str]:
        import platform

        headers = {
            "User-Agent": f"hfa/{_version()}; python/{platform.python_version()}",
            "Accept": accept,
            "Accept-Encoding": "identity",
        }
        if self.settings.token and _origin(url) == _origin(self.settings.endpoint):
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return headers

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
            doc, headers = self._get_json(url, params, None)
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
        if limit < 1:
            raise UsageError(f"--limit must be at least 1, not {limit}", "pass --limit 20 or another positive number")
        if sort is not None and sort not in SORT_CHOICES:
            raise UsageError(f"Unknown sort '{sort}'", f"use one of: {', '.join(SORT_CHOICES)}")
        params: list[tuple[str, Any]] = [("limit", limit)]
        for key, value in (("search", query), ("author", author), ("pipeline_tag", task), ("filter", library)):
            if value:
                params.append((key, value))
        if sort:
            params += [("sort", _SORT_PARAM.get(sort, sort)), ("direction", -1)]
        out: list[ModelSummary] = []
        for item in self.paginate("/api/models", params):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise CheckFailed("The endpoint answered an invalid model list", "check --endpoint")
            gated = item.get("gated")
            out.append(
                ModelSummary(
                    id=item["id"],
                    pipeline_tag=_str_or_none(item.get("pipeline_tag")),
                    library_name=_str_or_none(item.get("library_name")),
                    downloads=_int_or_none(item.get("downloads")),
                    likes=_int_or_none(item.get("likes")),
                    last_modified=_iso(item.get("lastModified") or item.get("last_modified")),
                    private=bool(item.get("private")),
                    gated=gated if isinstance(gated, str) and gated else bool(gated),
                )
            )
            if len(out) >= limit:
                break
        return out


def _read_capped(response: Response, what: str) -> bytes:
    """A JSON answer's body, at most ``MAX_API_BODY`` bytes; one that broke off is ``IncompleteRead``."""
    import http.client

    announced = response.length
    too_big = NetworkError(
        f"The endpoint's answer for {what} is larger than {MAX_API_BODY // (1024 * 1024)} MiB, more than hfa reads",
        "check --endpoint / HF_ENDPOINT: no Hub answer is that large",
    )
    if announced is not None and announced > MAX_API_BODY:
        raise too_big
    body = response.read(MAX_API_BODY)
    if len(body) > MAX_API_BODY:
        raise too_big
    if response.length:  # the server closed before the announced length: detected at once, retried
        raise http.client.IncompleteRead(body, response.length)
    return body


_NET_ERRNOS = frozenset({100, 101, 103, 104, 110, 111, 112, 113})  # ENETDOWN … EHOSTUNREACH (Linux)


def _is_transient(exc: BaseException) -> bool:
    """Worth another try: the connection failed, broke off or timed out.

    Not a refused TLS certificate, not a malformed URL, and never a local file error (a full
    disk is reported as such, not retried as a network fault).
    """
    import http.client
    import socket

    name = type(exc).__name__
    if name in {"SSLCertVerificationError", "CertificateError", "InvalidURL"}:
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, http.client.HTTPException, socket.gaierror)):
        return True
    if name in {"SSLError", "SSLEOFError", "SSLZeroReturnError"}:
        return True
    if isinstance(exc, OSError) and exc.errno in _NET_ERRNOS and not exc.filename:
        return True
    return name in {
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
    }


def error_reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc).strip()
    return text.splitlines()[0] if text else "no detail"


def next_link(value: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` header, or None."""
    import re

    for target, params in re.findall(r"<([^>]*)>([^<]*)", value or ""):
        for rel in re.findall(r'rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', params):
            if "next" in " ".join(rel).lower().split():
                return str(target)
    return None


def _version() -> str:
    from hfa import __version__

    return __version__
