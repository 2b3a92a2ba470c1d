"""The network behind one abstraction: what hfa may ask of a Hub endpoint.

Every HTTP request hfa makes goes through :meth:`OnlineHub.request`, which

* uses huggingface_hub's shared HTTP client and its error parser, so a server's
  ``X-Error-Code`` becomes the same exception the official client raises; plain
  ``http://`` URLs (a local mirror, ``hfa serve``) go through a client of the same
  make that skips loading CA certificates (~30 ms), and anything it is redirected to
  goes back through the shared, verifying one;
* applies hfa's retry policy (connection errors, 408, 429 with ``Retry-After``, 5xx;
  exponential backoff with jitter, a bounded number of tries);
* sends the token only to the endpoint's own origin, never to another host.

Foreign exceptions leave this module translated into :mod:`hfa.errors`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from hfa.config import Settings
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
from hfa.hashing import COMMIT_RE
from hfa.refs import RemoteFile, RepoRef, Resolved

if TYPE_CHECKING:
    import httpx2

SORT_CHOICES = ("downloads", "likes", "last_modified", "created_at", "trending_score")
_SORT_PARAM = {
    "last_modified": "lastModified",
    "created_at": "createdAt",
    "trending_score": "trendingScore",
}
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def translate(
    exc: BaseException, ref: RepoRef | None = None, path: str | None = None, endpoint: str | None = None
) -> HfaError | None:
    """A foreign exception as HfaError, naming ``ref`` and ``path`` where known; None if unknown."""
    err = from_exception(exc)
    if err is None or ref is None or isinstance(exc, HfaError):
        return err
    if isinstance(err, GatedRepo):
        url = f"{endpoint}/{'' if ref.repo_type == 'model' else ref.repo_type + 's/'}{ref.repo_id}"
        return GatedRepo(ref.repo_id, url if endpoint else None)
    if isinstance(err, RepoNotFound):
        return RepoNotFound(ref.repo_id, ref.repo_type)
    if isinstance(err, RevisionNotFound):
        return RevisionNotFound(ref.repo_id, ref.revision_or_default)
    if isinstance(err, EntryNotFound) and path is not None:
        return EntryNotFound(ref.repo_id, path, ref.revision)
    return err


@contextmanager
def translated(ref: RepoRef | None = None, path: str | None = None, endpoint: str | None = None) -> Iterator[None]:
    """Re-raise huggingface_hub / HTTP errors as HfaError, naming ``ref`` where known."""
    try:
        yield
    except HfaError:
        raise
    except Exception as exc:
        err = translate(exc, ref, path, endpoint)
        if err is None:
            raise
        raise err from exc


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


_PLAIN_LOCK = threading.Lock()
_PLAIN: httpx2.Client | None = None


def _plain_http_client() -> httpx2.Client:
    """The client for ``http://`` URLs: huggingface_hub's default client, less the CA certificates.

    Same request hook (request id, offline guard), proxies from the environment and no
    timeout of its own; but it never follows a redirect (the caller sends the request
    through the verifying client instead), and its TLS context trusts no certificate at
    all, so it could not speak TLS to anyone even if it were ever handed an https URL.
    """
    global _PLAIN
    with _PLAIN_LOCK:
        if _PLAIN is None:
            import ssl

            import httpx2
            from huggingface_hub.utils._http import hf_request_event_hook

            trusts_nothing = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies peers, has no CA to verify with
            _PLAIN = httpx2.Client(
                event_hooks={"request": [hf_request_event_hook]},
                follow_redirects=False,
                timeout=None,
                verify=trusts_nothing,
            )
        return _PLAIN


def _is_plain_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "http"


def _client_for(url: str) -> httpx2.Client:
    """The plain client for an ``http://`` URL, huggingface_hub's shared verifying client for any other."""
    if _is_plain_http(url):
        return _plain_http_client()
    from huggingface_hub.utils import get_session

    return get_session()


_LIGHT: Any = None


def _light_opener() -> Any:
    """A urllib opener that never follows redirects itself (get_json does, minding the token)."""
    global _LIGHT
    with _PLAIN_LOCK:
        if _LIGHT is None:
            import urllib.request

            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                    return None  # surfaces as an HTTPError carrying the Location

            _LIGHT = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=_tls_context()))
        return _LIGHT


def _tls_context() -> Any:
    """Verified TLS with the CA bundle httpx uses (SSL_CERT_FILE / SSL_CERT_DIR, else certifi's)."""
    import ssl

    cafile = os.environ.get("SSL_CERT_FILE")
    capath = os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:  # pragma: no cover
            cafile = None
    return ssl.create_default_context(cafile=cafile, capath=capath)


def _light_error(status: int, headers: Any, body: bytes, ref: RepoRef, endpoint: str) -> HfaError:
    """The Hub's answer as hfa's error, as huggingface_hub's hf_raise_for_status would classify it."""
    import json

    code = headers.get("X-Error-Code") or ""
    message = headers.get("X-Error-Message") or ""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            message = message or doc["error"]
    except ValueError:
        pass
    if code == "GatedRepo":
        page = f"{endpoint}/{'' if ref.repo_type == 'model' else ref.repo_type + 's/'}{ref.repo_id}"
        return GatedRepo(ref.repo_id, page)
    if code == "RevisionNotFound":
        return RevisionNotFound(ref.repo_id, ref.revision_or_default)
    if code == "RepoNotFound" or (status == 401 and not code):
        return RepoNotFound(ref.repo_id, ref.repo_type)
    if code == "EntryNotFound":
        return EntryNotFound(ref.repo_id, "?", ref.revision)
    if status in (401, 403):
        return AccessDenied(f"The endpoint refused access (HTTP {status}): {message}", "check --token / HF_TOKEN")
    if status == 400:
        return UsageError(f"The endpoint refused the request: {message or 'HTTP 400'}", "check the arguments")
    if status == 404:
        return RepoNotFound(ref.repo_id, ref.repo_type)
    return NetworkError(
        f"The endpoint answered HTTP {status}: {message or 'no message'}",
        "retry later, or check --endpoint / HF_ENDPOINT",
    )


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
        self.settings = settings
        self.retry = retry or RetryPolicy.from_env()
        self._sleep = sleep
        self.requests_made = 0

    # -- plumbing ----------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.settings.endpoint + path

    def headers_for(self, url: str) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        same_origin = _origin(url) == _origin(self.settings.endpoint)
        token: str | bool = self.settings.token if (same_origin and self.settings.token) else False
        return build_hf_headers(token=token, library_name="hfa", library_version=_version())

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = 30.0,
    ) -> httpx2.Response:
        """One request with hfa's retry policy; raises huggingface_hub's exception classes.

        Redirects are followed by huggingface_hub's shared client: a redirected plain-http
        request is sent again through it.
        """
        from huggingface_hub.utils import get_session, hf_raise_for_status

        _quiet_hf_logging()
        attempt = 0
        while True:
            all_headers = {**self.headers_for(url), **(headers or {})}
            try:
                self.requests_made += 1
                response = _client_for(url).request(
                    method, url, params=params, data=data, headers=all_headers, timeout=timeout
                )
                if response.is_redirect and _is_plain_http(url):
                    response.close()  # let the verifying client follow it, whatever scheme it leads to
                    self.requests_made += 1
                    response = get_session().request(
                        method, url, params=params, data=data, headers=all_headers, timeout=timeout
                    )
            except Exception as exc:
                if not _is_transient(exc) or attempt >= self.retry.retries:
                    raise
                self._sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retry.retries:
                wait = self.retry.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
                response.close()
                self._sleep(wait)
                attempt += 1
                continue
            hf_raise_for_status(response)
            return response

    @contextmanager
    def stream(
        self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 60.0
    ) -> Iterator[httpx2.Response]:
        """GET ``url`` streaming the body; retries before the body starts; redirects followed by hand.

        The token goes only to the endpoint's origin: a redirect to a CDN is followed without it.
        """
        from huggingface_hub.utils import hf_raise_for_status

        _quiet_hf_logging()

        attempt = 0
        hops = 0
        yielded = False
        while True:
            all_headers = {**self.headers_for(url), "Accept-Encoding": "identity", **(headers or {})}
            self.requests_made += 1
            try:
                with _client_for(url).stream(
                    "GET", url, headers=all_headers, timeout=timeout, follow_redirects=False
                ) as response:
                    if response.is_redirect and hops < 10:
                        location = response.headers.get("Location")
                        if location:
                            url = urljoin(url, location)
                            hops += 1
                            continue
                    if response.status_code in RETRY_STATUSES and attempt < self.retry.retries:
                        wait = self.retry.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
                        attempt += 1
                        self._sleep(wait)
                        continue
                    if response.status_code >= 400:
                        response.read()
                        hf_raise_for_status(response)
                    yielded = True
                    yield response
                    return
            except Exception as exc:
                if yielded or not _is_transient(exc) or attempt >= self.retry.retries:
                    raise
                attempt += 1
                self._sleep(self.retry.delay(attempt - 1))

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
        files: dict[str, RemoteFile] = {}
        for sib in doc.get("siblings") or []:
            if not isinstance(sib, dict):
                continue
            lfs = sib.get("lfs") if isinstance(sib.get("lfs"), dict) else None
            entry = RemoteFile.checked(
                str(sib.get("rfilename")), sib.get("size"), sib.get("blobId"), lfs.get("sha256") if lfs else None
            )
            if lfs and lfs.get("size") not in (None, entry.size):
                raise CheckFailed(f"The endpoint listed two sizes for '{entry.path}'", "check --endpoint")
            if entry.path in files:
                raise CheckFailed(f"The endpoint listed '{entry.path}' twice", "check --endpoint")
            files[entry.path] = entry
        gated = doc.get("gated")
        return Resolved(
            ref=ref,
            commit=commit,
            files=files,
            card_data=card if isinstance(card := doc.get("cardData"), dict) else {},
            gated=gated if isinstance(gated, str) else bool(gated),
            private=bool(doc.get("private")),
        )

    # -- the light path --------------------------------------------------------------
    def get_json(self, url: str, params: dict[str, str], ref: RepoRef) -> Any:
        """GET a small JSON document with the standard library only.

        ``hfa pull`` of a cached repo needs exactly this one call; importing huggingface_hub's
        HTTP stack (httpx2, httpcore2, its header builder) would cost more than the request
        (bench/bench_pull.py). Same rules as :meth:`request`: hfa's retry policy, the token
        only for the endpoint's origin, redirects followed by hand (the token dropped on
        another origin), TLS verified with the CA bundle httpx would use, proxies from the
        environment, and the Hub's ``X-Error-Code`` mapped to hfa's errors.
        """
        import json
        import urllib.error
        import urllib.request
        from urllib.parse import urlencode

        target = f"{url}?{urlencode(params)}" if params else url
        attempt = 0
        hops = 0
        while True:
            request = urllib.request.Request(target, headers=self._light_headers(target))
            self.requests_made += 1
            try:
                with _light_opener().open(request, timeout=30) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as err:
                status = err.code
                location = err.headers.get("Location") if 300 <= status < 400 else None
                if location and hops < 10:
                    target = urljoin(target, location)
                    hops += 1
                    continue
                if status in RETRY_STATUSES and attempt < self.retry.retries:
                    self._sleep(self.retry.delay(attempt, parse_retry_after(err.headers.get("Retry-After"))))
                    attempt += 1
                    continue
                raise _light_error(status, err.headers, err.read(), ref, self.settings.endpoint) from None
            except ValueError:
                raise CheckFailed(f"The endpoint answered invalid JSON for '{ref}'", "check --endpoint") from None
            except (OSError, urllib.error.URLError) as exc:
                if attempt >= self.retry.retries:
                    reason = getattr(exc, "reason", exc)
                    raise NetworkError(
                        f"Could not reach the endpoint ({type(exc).__name__}: {reason})",
                        "check --endpoint / HF_ENDPOINT and your network, or use --offline",
                    ) from None
                self._sleep(self.retry.delay(attempt))
                attempt += 1

    def _light_headers(self, url: str) -> dict[str, str]:
        import platform

        headers = {
            "User-Agent": f"hfa/{_version()}; python/{platform.python_version()}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        if self.settings.token and _origin(url) == _origin(self.settings.endpoint):
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return headers

    def read_small(self, ref: RepoRef, commit: str, path: str, limit: int = 16 * 1024 * 1024) -> bytes:
        """The bytes of a small file (an index, a README), at most ``limit``."""
        url = self.file_url(ref, commit, path)
        with translated(ref, path, self.settings.endpoint), self.stream(url) as response:
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
            response = self.request("GET", url, params=params)
            yield from response.json()
            nxt = response.links.get("next", {}).get("url")
            url = urljoin(url, nxt) if nxt else None
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
        with translated():
            from huggingface_hub.hf_api import ModelInfo

            out: list[ModelSummary] = []
            for item in self.paginate("/api/models", params):
                item.setdefault("siblings", None)
                m = ModelInfo(**item)
                out.append(
                    ModelSummary(
                        id=m.id,
                        pipeline_tag=m.pipeline_tag,
                        library_name=m.library_name,
                        downloads=m.downloads,
                        likes=m.likes,
                        last_modified=_iso(m.last_modified),
                        private=bool(m.private),
                        gated=m.gated if m.gated else False,
                    )
                )
                if len(out) >= limit:
                    break
            return out


def _is_transient(exc: BaseException) -> bool:
    name = type(exc).__name__
    return isinstance(exc, (ConnectionError, TimeoutError)) or name in {
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
    }


def _quiet_hf_logging() -> None:
    """huggingface_hub logs retries and warnings itself; hfa reports through Output instead."""
    import logging

    import huggingface_hub.utils.logging  # noqa: F401  (configures its root logger on import)

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def _version() -> str:
    from hfa import __version__

    return __version__
