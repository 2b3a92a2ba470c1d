"""What ``hfa serve`` serves and how: :class:`ServerConfig`, shared by the WSGI app (hfa.server.wsgi)
and the server that runs it (hfa.server.http)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.server.auth import AuthPolicy

if TYPE_CHECKING:
    from hfa.server.faults import FaultPlan

DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_THREADS = 8
DEFAULT_GRACE = 30.0
DEFAULT_TTL = 300.0


@dataclass
class ServerConfig:
    cache_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    page_size: int = 100  # search results per page (Link-paged)
    tree_page_size: int = 1000  # tree entries per page (Link-paged)
    faults: FaultPlan | None = None  # test-only fault injection: a middleware (hfa.server.faults)
    lock: Any = None  # an hfa.lock.lockfile.Lock: serve only what it names (`hfa serve --lock`)
    infer: Any = None  # an hfa.infer.pool.PoolConfig: also answer the Inference API (`hfa serve --infer`)
    timeout: float = DEFAULT_TIMEOUT  # idle/stalled connections and request heads (see the module doc)
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open at once (lowered to fit the fd limit)
    threads: int = DEFAULT_THREADS  # requests answered at once
    grace: float = DEFAULT_GRACE  # seconds answers in flight get to finish after a stop request
    store: str | None = None  # s3://BUCKET/PREFIX: serve the bucket (hfa.server.bucket), not cache_dir
    redirect: bool = False  # with store: answer file downloads with a 302 to a presigned URL
    upstream: str | None = None  # `hfa serve --upstream URL`: fetch what the cache lacks (hfa.server.mirror)
    upstream_token: str | None = field(default=None, repr=False)  # the mirror's own token for the upstream
    ttl: float = DEFAULT_TTL  # seconds a branch or tag resolved upstream is trusted
    jobs_dir: Path | None = None  # --infer: where jobs sent over HTTP are kept (None: $HF_HOME/hfa/serve-jobs)
    max_jobs: int = 2  # --infer: jobs run at once (more are refused with 429)
    allow_unsafe: bool = False  # the mirror also caches and serves known-dangerous pickles
