"""``hfa serve`` as a WSGI application: the whole Hub contract (and ``--infer``) behind one callable.

:func:`create_app` is the factory any WSGI server can import::

    waitress-serve --call 'hfa.server.wsgi:create_app'         # configured by the environment
    gunicorn -k gthread --threads 8 'hfa.server.wsgi:create_app()'

With no argument it reads ``HFA_SERVE_CACHE`` (default: the huggingface_hub cache, ``HF_HUB_CACHE``),
``HFA_SERVE_AUTH`` (an ``--auth`` TOML file), ``HFA_SERVE_LOCK`` (an ``hfa.lock`` to serve only
what it names), ``HFA_SERVE_STORE`` (``s3://BUCKET/PREFIX``: serve a bucket instead of a cache),
``HFA_SERVE_REDIRECT=1`` (with a store: redirect downloads to presigned URLs), ``HFA_SERVE_UPSTREAM``
(``--upstream``, into the cache or the store), ``HFA_SERVE_UPSTREAM_TOKEN_FILE`` (``--upstream-token-file``)
and ``HFA_SERVE_TTL`` (``--ttl``). ``hfa serve`` runs the
app on waitress (hfa.server.http).

Every answer carries ``X-Request-Id`` (the client's, when it sent a plain one, else a new one) and
is written to the access log (logger ``hfa.serve``, level INFO) with its status and size.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.server.downloads import ServedCache
from hfa.server.handler import Request
from hfa.server.store import LockScope, ServedStore

if TYPE_CHECKING:
    from hfa.server.config import ServerConfig

log = logging.getLogger("hfa.serve")

StartResponse = Callable[..., Any]
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REASONS = {
    200: "OK", 206: "Partial Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    302: "Found", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
    413: "Content Too Large", 416: "Range Not Satisfiable", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


def status_line(status: int) -> str:
    return f"{status} {REASONS.get(status, 'Unknown')}"


class HubApp:
    """The WSGI application: the store and settings every request shares, and the request log tests read."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        scope = LockScope.from_lock(config.lock) if config.lock is not None else None
        self.store: ServedStore
        self.mirror: Any = None  # a Mirror with --upstream (hfa.server.mirror)
        self._staging: Any = None  # with --store and --upstream: a temporary folder
        if config.store is not None:
            from hfa.server.bucket import BucketStore

            bucket = BucketStore(config.store, redirect=config.redirect)
            self.store = bucket
            if config.upstream:
                import tempfile

                from hfa.server.mirror import Mirror
                from hfa.server.mirror_bucket import BucketTarget

                self._staging = tempfile.TemporaryDirectory(prefix="hfa-mirror-")  # blobs on their way up
                self.mirror = Mirror(config, scope, BucketTarget(bucket, Path(self._staging.name)))
        elif config.upstream:
            from hfa.server.mirror import Mirror
            from hfa.server.mirror_store import CacheTarget, MirrorCache

            cache = MirrorCache(config.cache_dir, scope)
            self.store = cache
            self.mirror = cache.mirror = Mirror(config, scope, CacheTarget(config.cache_dir))
        else:
            self.store = ServedCache(config.cache_dir, scope)
        self.request_log: list[tuple[str, str]] = []  # (method, path): tests count requests
        self._log_lock = threading.Lock()
        self.infer: Any = None  # an InferenceService with --infer (hfa.server.infer_routes)
        if config.infer is not None:
            from hfa.server.infer_routes import InferenceService

            self.infer = InferenceService(config.infer, self.store)
        self.jobs: Any = None  # ServerJobs with --infer: jobs over HTTP (hfa.server.job_routes)
        if config.infer is not None:
            from hfa.server.job_routes import ServerJobs

            self.jobs = ServerJobs(self.infer, config.jobs_dir or default_serve_jobs_dir(), max_jobs=config.max_jobs)
            self.infer.jobs = self.jobs  # stopped first when the models are released

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ, self)
        request.dispatch()
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        rid = rid if REQUEST_ID_RE.fullmatch(rid) else uuid.uuid4().hex[:16]
        headers = [*request.out_headers, ("X-Request-Id", rid)]
        size = next((v for k, v in headers if k == "Content-Length"), "-")
        log.info(
            '%s "%s %s" %s %s %s',
            environ.get("REMOTE_ADDR", "-"),
            request.command,
            request.path.partition("?")[0],
            request.status,
            size,
            rid,
        )
        start_response(status_line(request.status), headers)
        return request.body

    def record(self, method: str, path: str) -> None:
        """Add a request to :attr:`request_log`."""
        with self._log_lock:
            self.request_log.append((method, path))

    def requests(self) -> list[tuple[str, str]]:
        with self._log_lock:
            return list(self.request_log)

    def reset_requests(self) -> None:
        with self._log_lock:
            self.request_log.clear()

    def close(self) -> None:
        """Release the inference models and the mirror's staging folder."""
        if self.infer is not None:
            self.infer.close()
        if self._staging is not None:
            self._staging.cleanup()


def default_serve_jobs_dir() -> Path:
    """Where ``hfa serve --infer`` keeps the jobs it is sent: ``$HF_HOME/hfa/serve-jobs``."""
    from hfa.config import hf_home

    return hf_home() / "hfa" / "serve-jobs"


def create_app(config: ServerConfig | None = None) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app serving ``config`` (None: from ``HFA_SERVE_*`` environment variables, see above).

    With ``config.faults`` (tests only) the app is wrapped in hfa.server.faults' middleware.
    """
    if config is None:
        config = config_from_env(os.environ)
    app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]] = HubApp(config)
    if config.faults is not None:
        from hfa.server.faults import FaultMiddleware

        app = FaultMiddleware(app, config.faults)
    return app


def config_from_env(env: Any) -> ServerConfig:
    """A :class:`ServerConfig` from the ``HFA_SERVE_*`` variables (see the module doc)."""
    from hfa.server.auth import AuthPolicy, load_policy
    from hfa.server.config import DEFAULT_TTL, ServerConfig

    cache = env.get("HFA_SERVE_CACHE")
    if not cache:
        from hfa.config import default_cache_dir

        cache = str(default_cache_dir())
    auth = env.get("HFA_SERVE_AUTH")
    lock = None
    if env.get("HFA_SERVE_LOCK"):
        from hfa.lock import lockfile

        lock = lockfile.read(Path(env["HFA_SERVE_LOCK"]))
    store = env.get("HFA_SERVE_STORE") or None
    if store is not None and lock is not None:
        from hfa.errors import UsageError

        raise UsageError("HFA_SERVE_LOCK does not apply with HFA_SERVE_STORE", "unset one of them")
    from hfa.config import normalize_endpoint

    upstream = normalize_endpoint(env["HFA_SERVE_UPSTREAM"]) if env.get("HFA_SERVE_UPSTREAM") else None
    token = None
    if env.get("HFA_SERVE_UPSTREAM_TOKEN_FILE"):
        from hfa.config import read_token_file

        token = read_token_file(Path(env["HFA_SERVE_UPSTREAM_TOKEN_FILE"]), "HFA_SERVE_UPSTREAM_TOKEN_FILE")
    ttl = DEFAULT_TTL
    if env.get("HFA_SERVE_TTL"):
        try:
            ttl = float(env["HFA_SERVE_TTL"])
        except ValueError:
            ttl = -1.0
        if not 0 <= ttl < float("inf"):
            from hfa.errors import UsageError

            raise UsageError(f"HFA_SERVE_TTL must be seconds, not '{env['HFA_SERVE_TTL']}'", "set HFA_SERVE_TTL=300")
    return ServerConfig(
        cache_dir=Path(cache),
        auth=load_policy(Path(auth)) if auth else AuthPolicy(),
        lock=lock,
        store=store,
        redirect=env.get("HFA_SERVE_REDIRECT", "") in ("1", "true", "yes"),
        upstream=upstream,
        upstream_token=token,
        ttl=ttl,
    )
