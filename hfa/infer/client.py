"""The Inference API client: huggingface_hub's ``InferenceClient`` plus the retry policy it lacks.

Each request is built and parsed by the official client (its per-task method, or for
feature-extraction and text-to-image its request helper, so neither numpy nor Pillow is needed).
Around each call hfa adds:

* exponential backoff with jitter on 408, 429 (honouring ``Retry-After``) and 5xx, and on dropped
  or refused connections — at most ``RetryPolicy.retries`` more tries;
* on 503 ``{"error": "… loading …", "estimated_time": S}``: wait about S (at most
  ``max_loading_wait``) and ask again; these waits do not use up the retries;
* one total deadline per request (``--timeout``): every attempt's HTTP timeout is what is left of it,
  and no wait runs past it; then a clear :class:`~hfa.errors.NetworkError`;
* final errors in hfa's tree: gated (exit 4), not found (3), a request the model cannot serve (2).

The token goes only to the Hub endpoint's own origin (and, for the default huggingface.co, to its
inference router and dedicated Inference Endpoints). Without that, the official client would send
``HF_TOKEN`` to any URL it is given.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hfa.cache.hashing import COMMIT_RE
from hfa.config import DEFAULT_ENDPOINT, Settings, check_token
from hfa.errors import (
    AccessDenied,
    CheckFailed,
    GatedRepo,
    HfaError,
    NetworkError,
    NotFound,
    OfflineError,
    UsageError,
)
from hfa.hub.requests import RETRY_STATUSES, RetryPolicy, parse_retry_after
from hfa.infer.tasks import Runner, Task, get_task
from hfa.resolve.refs import RepoRef

DEFAULT_TIMEOUT = 300.0
DEFAULT_RETRIES = 8
HF_ROUTER = "https://router.huggingface.co/hf-inference"  # huggingface_hub's INFERENCE_PROXY_TEMPLATE
_TRUSTED_HF_HOSTS = ("router.huggingface.co",)
_TRUSTED_HF_SUFFIXES = (".endpoints.huggingface.cloud",)


@dataclass(frozen=True)
class RequestHooks:
    """What the orchestrator adds to one request of an :class:`InferenceAPI` (see ``run_until``)."""

    before_attempt: Callable[[], None] | None = None
    observe: Callable[[int, Any], None] | None = None
    waited: Callable[[float], None] | None = None


class Clock:
    """Time as the retry loop sees it; tests inject one whose ``sleep`` returns at once."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


CLOCK = Clock()  # the default for every InferenceAPI (tests may replace it)


def retry_policy() -> RetryPolicy:
    """hfa's RetryPolicy, with more tries by default: the deadline is what bounds inference."""
    if os.environ.get("HFA_MAX_RETRIES", "").strip():
        return RetryPolicy.from_env()
    return RetryPolicy(retries=DEFAULT_RETRIES)


# -- where requests go ----------------------------------------------------------------------------
def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def inference_base(endpoint: str) -> str:
    """The hf-inference route under a Hub endpoint: the router for huggingface.co, else ``{endpoint}/hf-inference``."""
    endpoint = endpoint.rstrip("/")
    return HF_ROUTER if endpoint == DEFAULT_ENDPOINT else f"{endpoint}/hf-inference"


def model_url(settings: Settings, ref: RepoRef | None, endpoint_url: str | None = None) -> tuple[str, bool]:
    """The URL requests for ``ref`` go to, and whether ``/pipeline/{task}`` may be appended to it.

    Without ``endpoint_url``: ``{inference_base}/models/{repo}``. With it: ``{endpoint_url}/models/{repo}``,
    or the URL as given when it already names a model route (``…/models/…``) or no model is named
    (a dedicated Inference Endpoint serves one model at its root).
    """
    if endpoint_url is None:
        if ref is None:
            raise UsageError("No model given", "pass --model org/name, or --endpoint-url for a dedicated endpoint")
        return f"{inference_base(settings.endpoint)}/models/{ref.repo_id}", True
    url = endpoint_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"Invalid --endpoint-url '{endpoint_url}'", "give a URL such as http://host:8080")
    if "/models/" in parts.path + "/":
        return url, "/pipeline/" not in parts.path
    if ref is None:
        return url, False
    return f"{url}/models/{ref.repo_id}", True


def token_for(url: str, settings: Settings) -> str | None:
    """The token, if ``url`` may receive it: the Hub endpoint's own origin only (plus HF's own inference hosts)."""
    if not settings.token:
        return None
    check_token(settings.token)
    if _origin(url) == _origin(settings.endpoint):
        return settings.token
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if (
        settings.endpoint.rstrip("/") == DEFAULT_ENDPOINT
        and parts.scheme == "https"
        and (host in _TRUSTED_HF_HOSTS or host.endswith(_TRUSTED_HF_SUFFIXES))
    ):
        return settings.token
    return None


def resolve_commit(settings: Settings, ref: RepoRef, *, ask_hub: bool = True) -> tuple[str, str]:
    """The commit ``ref`` points to, for the cache key, and where it came from.

    A pinned commit is used as is ("pinned"); else the Hub is asked once ("hub", unless offline or
    ``ask_hub`` is false, as for ``--local``); else the local cache's ref file is read ("cache");
    else the revision string stands in ("revision").
    """
    if ref.pinned:
        return str(ref.revision), "pinned"
    if ask_hub and not settings.offline:
        from hfa.hub.client import OnlineHub

        try:
            return OnlineHub(settings, retry=RetryPolicy(retries=0)).resolve(ref).commit, "hub"
        except Exception:  # best effort: the inference itself reports real problems
            pass
    ref_file = settings.cache_dir / ref.folder / "refs" / ref.revision_or_default
    try:
        commit = ref_file.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        commit = ""
    if COMMIT_RE.match(commit):
        return commit, "cache"
    return ref.revision_or_default, "revision"


# -- runners --------------------------------------------------------------------------------------
def make_runner(
    settings: Settings,
    ref: RepoRef | None,
    *,
    endpoint_url: str | None = None,
    local: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_wait: Callable[[str], None] | None = None,
    local_options: dict[str, Any] | None = None,
) -> Runner:
    """The runner ``hfa infer`` uses: ``--local`` in-process, offline (cache only), or the Inference API."""
    if local:
        if endpoint_url is not None:
            raise UsageError("--local and --endpoint-url exclude each other", "drop one of them")
        if ref is None:
            raise UsageError("--local needs --model", "pass --model org/name[@rev]")
        return load_local_runner(settings, ref, **(local_options or {}))
    url, pipeline_routes = model_url(settings, ref, endpoint_url)
    if settings.offline:
        return OfflineRunner(url)
    return InferenceAPI(
        url,
        model=ref.repo_id if ref else None,
        token=token_for(url, settings),
        pipeline_routes=pipeline_routes,
        timeout=timeout,
        on_wait=on_wait,
        hub_endpoint=settings.endpoint,
    )


def load_local_runner(settings: Settings, ref: RepoRef, **options: Any) -> Runner:
    """``hfa.infer.local.make_runner(settings, ref, **options)``, imported only now (it needs torch).

    ``options``: ``allow_pickle``, ``trust_remote_code``, ``lock`` (an hfa.lock.lockfile.Lock).
    """
    hint = "or drop --local to use an inference endpoint"
    try:
        module = importlib.import_module("hfa.infer.local")
    except ModuleNotFoundError as exc:
        missing = "" if exc.name == "hfa.infer.local" else f" (missing module '{exc.name}')"
        raise UsageError(f"--local needs the optional extra{missing}: pip install 'hfa[infer]'", hint) from None
    except ImportError as exc:
        raise UsageError(f"--local needs the optional extra ({exc}): pip install 'hfa[infer]'", hint) from None
    # Only the options that were given: a minimal runner need not accept them all.
    runner: Runner = module.make_runner(settings, ref, **{k: v for k, v in options.items() if v})
    return runner


class OfflineRunner:
    """Offline mode: results come only from the result cache; a miss is an OfflineError."""

    def __init__(self, route: str) -> None:
        self.route = route

    def run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
        raise OfflineError(
            "Offline mode is on and this request is not in the inference cache",
            "drop --offline / HF_HUB_OFFLINE, or run the model in-process with --local",
        )


class InferenceAPI:
    """A :class:`~hfa.infer.tasks.Runner` over HTTP: one model URL, hfa's retries, one deadline per request."""

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        token: str | None = None,
        pipeline_routes: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        on_wait: Callable[[str], None] | None = None,
        max_loading_wait: float = 60.0,
        hub_endpoint: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise UsageError(f"--timeout must be positive, not {timeout:g}", "pass seconds, e.g. --timeout 300")
        self.route = url
        self.model = model or url
        self._token = token
        self.pipeline_routes = pipeline_routes
        self.timeout = timeout
        self.retry = retry or retry_policy()
        self.clock = clock or CLOCK
        self.on_wait = on_wait
        self.max_loading_wait = max_loading_wait
        self.hub_endpoint = hub_endpoint
        self._lock = threading.Lock()
        self.requests_made = 0

    def url_for(self, task: Task) -> str:
        if task.pipeline_route and self.pipeline_routes:
            return f"{self.route}/pipeline/{task.name}"
        return self.route

    def _client(self, url: str, timeout: float) -> Any:
        from huggingface_hub import InferenceClient

        # authorization None: without it the client falls back to HF_TOKEN / the stored token, for any URL.
        headers: dict[str, Any] = {"authorization": None}
        if self._token:
            headers = {}
        return InferenceClient(model=url, token=self._token, timeout=timeout, headers=headers)

    def run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
        return self.run_until(task, inputs, parameters)

    def run_until(
        self,
        task: str,
        inputs: Any,
        parameters: dict[str, Any],
        deadline: float | None = None,
        hooks: RequestHooks | None = None,
    ) -> Any:
        """:meth:`run` within ``deadline`` (``clock.now()`` time; default: ``timeout`` from now).

        ``hooks`` (the orchestrator's): ``before_attempt()`` runs before every HTTP request, a loading
        poll included (it may wait, or raise to stop); ``observe(status, headers)`` sees every error
        answer's status and headers (``RateLimit-*``, ``Retry-After``).
        """
        spec = get_task(task)
        url = self.url_for(spec)
        kwargs = _kwargs_for(spec, parameters)
        if deadline is None:
            deadline = self.clock.now() + self.timeout
        retries = 0
        last = "no answer yet"
        status: int | None = None
        retry_after: float | None = None
        while True:
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                raise self._deadline_error(url, last, status, retry_after)
            if hooks is not None and hooks.before_attempt is not None:
                hooks.before_attempt()
                remaining = deadline - self.clock.now()
            with self._lock:
                self.requests_made += 1
            try:
                return self._call(url, remaining, spec, inputs, kwargs)
            except HfaError:
                raise
            except Exception as exc:
                loading, retry_after, last, status = self._classify(exc, spec, url, hooks)
            if loading is not None:
                wait = loading  # waiting for a model to load does not use up a retry
            else:
                if retries >= self.retry.retries:
                    raise NetworkError(
                        f"{url} kept failing: {last} (after {retries + 1} tries)",
                        "retry later; HFA_MAX_RETRIES and --timeout set how long hfa keeps trying",
                        details={"status": status, "retry_after": retry_after, "reason": "retries"},
                    )
                wait = self.retry.delay(retries, retry_after)
                retries += 1
            if wait >= deadline - self.clock.now() or (retry_after is not None and retry_after >= deadline - self.clock.now()):
                raise self._deadline_error(url, last, status, retry_after)
            if self.on_wait is not None:
                self.on_wait(f"{last}; retrying in {wait:.1f} s")
            if hooks is not None and hooks.waited is not None:
                hooks.waited(wait)
            self.clock.sleep(wait)

    def _call(self, url: str, timeout: float, spec: Task, inputs: Any, kwargs: dict[str, Any]) -> Any:
        return _call(self._client(url, timeout), spec, url, inputs, kwargs)

    def _deadline_error(
        self, url: str, last: str, status: int | None = None, retry_after: float | None = None
    ) -> NetworkError:
        return NetworkError(
            f"No answer from {url} within the {self.timeout:g} s deadline ({last})",
            "raise --timeout, or retry later",
            details={"status": status, "retry_after": retry_after, "reason": "deadline"},
        )

    def _classify(
        self, exc: Exception, task: Task, url: str, hooks: RequestHooks | None = None
    ) -> tuple[float | None, float | None, str, int | None]:
        """(seconds to wait for a loading model or None, Retry-After, what happened, HTTP status),
        or raise the final error."""
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError

        http = _in_chain(exc, HfHubHTTPError)
        if http is not None and getattr(http, "response", None) is not None:
            response = http.response
            status = response.status_code
            body = _error_body(response)
            message = _message(body, response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if hooks is not None and hooks.observe is not None:
                hooks.observe(status, response.headers)
            if status == 503 and isinstance(body, dict) and _is_loading(body):
                estimated = body.get("estimated_time")
                guess = estimated if isinstance(estimated, (int, float)) and estimated > 0 else retry_after
                wait = min(max(1.0, float(guess or 0.0)), self.max_loading_wait)
                return wait, None, f"the model is loading (estimated {float(guess or 0):.0f} s)", status
            if status in (402, 403, 429) and _is_quota(message):
                raise NetworkError(
                    f"{url} says its quota is used up (HTTP {status}): {message}",
                    "wait for the quota to renew, or add another provider to hfa.toml (docs/infer.md)",
                    details={"status": status, "retry_after": retry_after, "reason": "quota"},
                )
            if status in RETRY_STATUSES:
                return None, retry_after, f"HTTP {status}: {message}", status
            error = self._final_error(status, message, http, task, url)
            error.details.setdefault("status", status)
            raise error
        if _in_chain(exc, TimeoutError) is not None or _in_chain(exc, httpx2.TimeoutException) is not None:
            return None, None, "the request timed out", None
        transport = _in_chain(exc, httpx2.TransportError) or _in_chain(exc, ConnectionError)
        if transport is not None:
            return None, None, f"connection failed ({type(transport).__name__}: {transport})", None
        if isinstance(exc, (ValueError, KeyError, TypeError, IndexError)):
            raise CheckFailed(
                f"{url} answered {task.name} with a body InferenceClient cannot read ({type(exc).__name__}: {exc})",
                "check that the endpoint speaks the Inference API for this task",
            ) from exc
        raise exc

    def _final_error(self, status: int, message: str, http: Exception, task: Task, url: str) -> HfaError:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        response: Any = getattr(http, "response", None)
        code = response.headers.get("X-Error-Code", "") if response is not None else ""
        if (
            isinstance(http, GatedRepoError)
            or code == "GatedRepo"
            or (status in (401, 403) and any(w in message.lower() for w in ("gated", "restricted", "accept")))
        ):
            page = f"{self.hub_endpoint}/{self.model}" if self.hub_endpoint and self.model != url else None
            return GatedRepo(self.model, page)
        if code in ("PickleRefused", "RemoteCodeRefused", "UnsafeContent"):
            return CheckFailed(
                f"{url} refused to run '{self.model}': {message}",
                "the server's policy forbids it (hfa serve --infer --allow-pickle / --trust-remote-code REPO)",
            )
        if status == 501:
            return UsageError(
                f"{url} cannot run models: {message}",
                "install the extra on the server (pip install 'hfa[infer]') and start it with --infer",
            )
        if status in (401, 403):
            return AccessDenied(
                f"{url} refused access (HTTP {status}): {message}",
                "pass a token that may use this model with --token or HF_TOKEN (it is sent only to the Hub's origin)",
            )
        if status == 404 or isinstance(http, RepositoryNotFoundError) or code == "RepoNotFound":
            return NotFound(
                f"Model '{self.model}' not found at {url}: {message}",
                "check --model; with --endpoint-url, check that this server serves the model",
            )
        if status == 400:
            return UsageError(
                f"'{self.model}' cannot run {task.name} at {url}: {message}",
                f"check that the model's pipeline_tag is {task.name} (`hfa info {self.model}`), and the inputs",
            )
        if status in (413, 422):
            return UsageError(
                f"{url} rejected the request (HTTP {status}): {message}", "check the inputs and --parameters"
            )
        return NetworkError(f"{url} answered HTTP {status}: {message}", "retry later, or check --endpoint-url")


def _in_chain(exc: BaseException, kind: Any) -> Any:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _error_body(response: Any) -> Any:
    try:
        return json.loads(response.content or b"null")
    except Exception:
        return None


def _message(body: Any, response: Any) -> str:
    if isinstance(body, dict) and body.get("error"):
        error = body["error"]
        text = "; ".join(map(str, error)) if isinstance(error, list) else str(error)
    else:
        try:
            text = response.text.strip()
        except Exception:
            text = ""
    text = text.splitlines()[0] if text else (getattr(response, "reason_phrase", "") or "no message")
    return text[:300]


_QUOTA_WORDS = ("quota", "exceeded your monthly", "credits", "usage limit", "billing")


def _is_quota(message: str) -> bool:
    """A message saying the account's quota or credits are used up (retrying soon cannot help)."""
    lower = message.lower()
    return any(word in lower for word in _QUOTA_WORDS)


def _is_loading(body: dict[str, Any]) -> bool:
    return "estimated_time" in body or "loading" in str(body.get("error", "")).lower()


# -- the official client's calls -------------------------------------------------------------------
_POSITIONAL = {"text": ("text",), "qa": ("question", "context"), "image": ("image",)}
_FIRST_ARG = {"text_generation": "prompt", "text_to_image": "prompt"}


def _kwargs_for(task: Task, parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` as keyword arguments of the task's InferenceClient method; unknown names are usage errors."""
    from huggingface_hub import InferenceClient

    if task.name == "text-to-image":  # the method merges anything else into the body (extra_body)
        return dict(parameters)
    signature = inspect.signature(getattr(InferenceClient, task.method))
    skip = {"self", "model", "stream", "extra_body", *_POSITIONAL[task.input_kind], _FIRST_ARG.get(task.method, "")}
    allowed = sorted(name for name in signature.parameters if name not in skip)
    unknown = sorted(set(parameters) - set(allowed))
    if unknown:
        raise UsageError(
            f"{task.name} does not take the parameter(s) {', '.join(unknown)}",
            f"InferenceClient.{task.method} takes: {', '.join(allowed) or 'none'}",
        )
    return dict(parameters)


def plain_value(value: Any) -> Any:
    """What json cannot write, as plain data: numpy arrays (the public embedding methods) as lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _private_request_path(client: Any) -> tuple[Any, Any] | None:
    """huggingface_hub's request helper and ``InferenceClient._inner_post``, or None when they moved.

    The only private API of a dependency hfa uses: with it, text-to-image and feature-extraction
    post the prepared request and get the raw answer (no numpy or Pillow needed to decode it).
    huggingface_hub is bounded (<3) and tested at 2.4; should a release move either name, the
    task goes through the client's public method instead (which needs numpy / Pillow), never an
    error of hfa's (tests/test_infer_client.py simulates it).
    """
    try:
        from huggingface_hub.inference._providers import get_provider_helper
    except ImportError:
        return None
    inner_post = getattr(client, "_inner_post", None)
    return (get_provider_helper, inner_post) if callable(inner_post) else None


def _call(client: Any, task: Task, url: str, inputs: Any, kwargs: dict[str, Any]) -> Any:
    """One request through the official client; the result as plain JSON (bytes for images)."""
    direct = _private_request_path(client) if task.direct else None
    if direct is not None:
        get_provider_helper, inner_post = direct
        helper = get_provider_helper("hf-inference", task=task.name, model=url)
        request = helper.prepare_request(
            inputs=inputs, parameters=kwargs, headers=client.headers, model=url, api_key=client.token
        )
        response = helper.get_response(inner_post(request), request)
        return response if task.binary_output else json.loads(json.dumps(response))
    method = getattr(client, task.method)
    if task.input_kind == "qa":
        result = method(inputs["question"], inputs["context"], **kwargs)
    elif task.input_kind == "image":
        result = method(Path(inputs), **kwargs)
    else:
        result = method(inputs, **kwargs)
    return json.loads(json.dumps(result, default=plain_value))
