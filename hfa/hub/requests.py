"""The one request loop: every request hfa sends to a Hub endpoint goes through :meth:`Session.send`.

As huggingface_hub's ``_http_backoff_base(..., stream=…)``, one function

* sends the request through :mod:`hfa.hub.transport` (the standard library's ``http.client``);
* follows redirects by hand (at most :data:`MAX_HOPS`) and sends the token only to the
  endpoint's own origin, never to another host (a CDN, a paged link elsewhere);
* retries what is transient (:func:`hfa.hub.classify.is_transient`; 408, 429, 5xx) under the
  :class:`RetryPolicy` (exponential backoff with jitter, ``Retry-After``, a bounded number of
  tries), sleeping through the policy's public :meth:`RetryPolicy.sleep`;
* applies the bounds (docs/security.md, "Limits"): an API answer arrives within
  ``HFA_API_DEADLINE`` seconds in all (retries included, the waits between them not) and is at
  most :data:`MAX_API_BODY` bytes; a download keeps up ``HFA_MIN_SPEED`` bytes/s; a malformed
  URL in a ``Location`` or ``Link`` is a network error;
* reads the Hub's ``X-Error-Code`` as huggingface_hub's ``hf_raise_for_status`` does and
  raises :mod:`hfa.errors`;
* hands back the response: its body unread (``stream=True``, a download: the caller owns the
  body and its resumption) or read, bounded (an :class:`Answer`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urljoin, urlsplit

from hfa.config import Settings, check_token, env_count
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
)
from hfa.hub.classify import error_reason, is_transient, unreachable
from hfa.resolve.refs import RepoRef

if TYPE_CHECKING:
    from hfa.hub.transport import Response

__all__ = [
    "MAX_API_BODY",
    "MAX_HOPS",
    "MAX_SMALL_BODY",
    "RETRY_STATUSES",
    "Answer",
    "RetryPolicy",
    "Session",
    "answer_error",
    "follow",
    "next_link",
    "parse_retry_after",
]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_API_BODY = 64 * 1024 * 1024  # one JSON answer: a listing of ~300,000 files with hashes fits
MAX_SMALL_BODY = 64 * 1024  # a redirect's or an error's body
MAX_HOPS = 10  # redirects followed for one request
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what a URL may hold as is (requests' requote_uri keeps the same)


MOST_RETRIES = 100  # HFA_MAX_RETRIES at most (about 13 minutes of backoff at 8 s a try)


@dataclass(frozen=True)
class RetryPolicy:
    """How hfa retries: ``retries`` more tries after the first, backoff doubling from ``base``.

    :meth:`sleep` is how every wait happens (``sleeper`` if given, else ``time.sleep``, looked
    up when called): tests pass a ``sleeper`` or monkeypatch :meth:`sleep`.
    """

    retries: int = 3
    base: float = 0.5
    max_wait: float = 8.0
    max_retry_after: float = 60.0
    sleeper: Callable[[float], None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_env(cls) -> RetryPolicy:
        retries = env_count("HFA_MAX_RETRIES", cls.retries)
        if retries > MOST_RETRIES:  # each retry waits up to max_wait: more would only hide a dead endpoint
            raise UsageError(
                f"HFA_MAX_RETRIES must be a whole number from 0 to {MOST_RETRIES}, not '{retries}'",
                f"set HFA_MAX_RETRIES={cls.retries}, or unset it",
            )
        return cls(retries=retries)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (attempt counts from 0)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_retry_after)
        import random

        backoff = min(self.max_wait, self.base * (2**attempt))
        return backoff * (0.5 + random.random() / 2)  # jitter: never two clients in lockstep

    def sleep(self, seconds: float) -> None:
        (self.sleeper or time.sleep)(seconds)

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Sleep before try ``attempt + 1``; return the seconds slept (they do not count against a deadline)."""
        seconds = self.delay(attempt, retry_after)
        self.sleep(seconds)
        return seconds


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None  # nan, inf: unreadable
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def answer_error(
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
            return RepoNotFound(ref.repo_id, ref.repo_type, token_sent)
        if code == "EntryNotFound":
            return EntryNotFound(ref.repo_id, path or "?", ref.revision)
    if status in (401, 403):
        return AccessDenied(f"The endpoint refused access (HTTP {status}): {message}", "check --token / HF_TOKEN")
    if status == 400:
        return UsageError(f"The endpoint refused the request: {message or 'HTTP 400'}", "check the arguments")
    if status == 404 and ref is not None:
        return (
            RepoNotFound(ref.repo_id, ref.repo_type, token_sent)
            if path is None
            else EntryNotFound(ref.repo_id, path, ref.revision)
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
    host = urlsplit(url).hostname or ""
    if link_local(host) and not link_local(urlsplit(base).hostname or ""):
        raise CheckFailed(
            f"The endpoint sent {what} to the link-local address {host} (a cloud metadata service); refused",
            "check --endpoint / HF_ENDPOINT: no Hub sends clients there",
        )
    return url


def link_local(host: str) -> bool:
    """``host`` is a literal link-local address (169.254.0.0/16, fe80::/10), however spelled:
    ``169.254.169.254``, ``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ``[::ffff:169.254.169.254]``."""
    import ipaddress
    import socket

    text = host.strip("[]").rstrip(".").split("%")[0]
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(text))  # the forms the C resolver accepts
        except (OSError, ValueError):
            return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local


def next_link(value: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 ``Link`` header, or None."""
    import re

    for target, params in re.findall(r"<([^>]*)>([^<]*)", value or ""):
        for rel in re.findall(r'rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))', params):
            if "next" in " ".join(rel).lower().split():
                return str(target)
    return None


@dataclass(frozen=True)
class Answer:
    """A response read whole (``stream=False``): the final URL, its status, headers and body."""

    url: str
    status: int
    headers: Any
    body: bytes


class Session:
    """Talks to one endpoint with one token under one retry policy; counts the requests it sends."""

    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if settings.offline:
            raise OfflineError(
                "This command needs the network but offline mode is on",
                "drop --offline / unset HF_HUB_OFFLINE, or use a command that works from the cache",
            )
        check_token(settings.token)
        self.settings = settings
        self.retry = retry or RetryPolicy.from_env()
        if sleep is not None:
            self.retry = replace(self.retry, sleeper=sleep)
        self.requests_made = 0

    def url(self, path: str) -> str:
        return self.settings.endpoint + path

    def headers(self, url: str, accept: str = "application/json") -> dict[str, str]:
        """What every request to ``url`` carries; the token only when ``url`` is on the endpoint's origin."""
        import platform

        headers = {
            "User-Agent": f"hfa/{_version()}; python/{platform.python_version()}",
            "Accept": accept,
            "Accept-Encoding": "identity",
        }
        if self.settings.token and origin(url) == origin(self.settings.endpoint):
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return headers

    @overload
    def send(
        self,
        url: str,
        *,
        stream: Literal[True],
        headers: dict[str, str] | None = ...,
        timeout: float | None = ...,
        ref: RepoRef | None = ...,
        path: str | None = ...,
        allow: frozenset[int] = ...,
    ) -> Response: ...

    @overload
    def send(
        self,
        url: str,
        *,
        stream: Literal[False] = ...,
        headers: dict[str, str] | None = ...,
        timeout: float | None = ...,
        ref: RepoRef | None = ...,
        path: str | None = ...,
        allow: frozenset[int] = ...,
    ) -> Answer: ...

    def send(
        self,
        url: str,
        *,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        ref: RepoRef | None = None,
        path: str | None = None,
        allow: frozenset[int] = frozenset(),
    ) -> Response | Answer:
        """GET ``url``: the one loop of redirects, retries and bounds (see the module's text).

        ``stream=True`` (a download): the response comes back with its body unread, for the
        caller to read and close; timeouts are the download's (``timeout`` or
        ``settings.download_timeout``, ``HFA_MIN_SPEED``); a failure to connect that stays
        after the retries is raised as is, for the caller (which resumes) to classify.

        ``stream=False`` (an API call): the body is read here, at most :data:`MAX_API_BODY`
        bytes, all within ``settings.api_deadline`` seconds; a body that breaks off is retried
        like a failed connection; every failure is an :class:`~hfa.errors.HfaError`.

        An error status becomes hfa's error (naming ``ref`` and ``path`` when given), unless it
        is in ``allow``: those are handed back for the caller to deal with.
        """
        from hfa.hub import transport

        settings = self.settings
        what = f"'{ref}'" if ref is not None else urlsplit(url).path
        deadline = time.monotonic() + settings.api_deadline
        accept = "*/*" if stream else "application/json"
        download = transport.Bounds(
            timeout or settings.download_timeout, min_speed=settings.min_speed, speed_time=settings.min_speed_time
        )
        attempt = 0
        hops = 0
        while True:
            sent = {**self.headers(url, accept), **(headers or {})}
            bounds = download if stream else transport.Bounds(settings.api_timeout, deadline)
            self.requests_made += 1
            response: Response | None = None
            try:
                response = transport.open_url("GET", url, sent, bounds=bounds)
                status = response.status_code
                if response.is_redirect and hops < MAX_HOPS:
                    response.read(MAX_SMALL_BODY)  # a redirect's body is small; reading it keeps the connection
                    url = follow(url, response.headers["Location"])
                    hops += 1
                    continue
                if status in RETRY_STATUSES and attempt < self.retry.retries:
                    deadline += self.retry.wait(attempt, parse_retry_after(response.headers.get("Retry-After")))
                    attempt += 1
                    continue
                if status >= 300 and status not in allow:  # also a 3xx left over
                    body = response.read(MAX_SMALL_BODY)
                    token_sent = "Authorization" in sent
                    raise answer_error(status, response.headers, body, ref, settings.endpoint, path, token_sent)
                if stream:
                    handed, response = response, None  # the caller closes it
                    return handed
                return Answer(url, status, response.headers, read_capped(response, what))
            except HfaError:
                raise
            except Exception as exc:
                if stream:
                    if not is_transient(exc) or attempt >= self.retry.retries:
                        raise
                    self.retry.wait(attempt)
                    attempt += 1
                    continue
                if not _network(exc):
                    raise
                if time.monotonic() >= deadline - 0.05:
                    raise NetworkError(
                        f"The endpoint's answer for {what} did not arrive within {settings.api_deadline:g} s"
                        f" ({error_reason(exc)})",
                        "retry later, or allow more time with HFA_API_DEADLINE=<seconds>",
                    ) from None
                if not is_transient(exc) or attempt >= self.retry.retries:
                    raise NetworkError(*unreachable(exc)) from None
                deadline += self.retry.wait(attempt)
                attempt += 1
            finally:
                if response is not None:
                    response.close()


def _network(exc: BaseException) -> bool:
    """What a request may raise that is about the network (every other exception is a bug, raised as is)."""
    import http.client

    return isinstance(exc, (OSError, http.client.HTTPException))


def read_capped(response: Response, what: str) -> bytes:
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


def _version() -> str:
    from hfa import __version__

    return __version__
