"""``hfa serve`` as a running server: its configuration, the threading HTTP server that accepts
connections (bounded in time and number, hfa.server.conns) and the :class:`HubServer` that runs it.

Built on the standard library's threading HTTP server (HTTP/1.1, keep-alive); each request is
answered by :class:`hfa.server.handler.Handler`, as huggingface_hub 2.x expects.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.server.auth import AuthPolicy
from hfa.server.conns import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    ConnectionLimiter,
    fd_bound_connections,
    refuse,
)
from hfa.server.handler import Handler
from hfa.server.store import CacheStore

if TYPE_CHECKING:
    from hfa.server.faults import FaultPlan

log = logging.getLogger("hfa.serve")


@dataclass
class ServerConfig:
    cache_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    page_size: int = 100  # search results per page (Link-paged)
    tree_page_size: int = 1000  # tree entries per page (Link-paged)
    faults: FaultPlan | None = None  # test-only fault injection: served by hfa.server.faults.FaultyHandler
    lock: Any = None  # an hfa.lock.lockfile.Lock: serve only what it names (`hfa serve --lock`)
    infer: Any = None  # an hfa.infer.pool.PoolConfig: also answer the Inference API (`hfa serve --infer`)
    timeout: float = DEFAULT_TIMEOUT  # seconds for a request head (idle included), and per stalled read/write
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # served at once (lowered to fit the fd limit)


class HubHTTPServer(ThreadingHTTPServer):
    """The listening socket and what every request's handler shares: config, store, limiter, log."""

    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, config: ServerConfig, store: CacheStore, handler: type[Handler] = Handler) -> None:
        self.config = config
        self.store = store
        self.request_log: list[tuple[str, str]] = []  # (method, path): tests count requests
        self.infer: Any = None  # an InferenceService with --infer (hfa.server.infer_routes)
        self._log_lock = threading.Lock()
        cap = fd_bound_connections(config.max_connections)
        if cap < config.max_connections:
            log.warning("serving at most %d connections at once (the open-file limit allows no more)", cap)
        self.limiter = ConnectionLimiter(cap)
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self.address_family = family
        super().__init__((config.host, config.port), handler)

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

    def process_request(self, request: Any, client_address: Any) -> None:
        # At the cap: the longest-waiting connection makes room, or (all busy) a quick 503, no thread.
        if not self.limiter.admit(request):
            log.warning("refused a connection from %s: %d connections busy", client_address[0], self.limiter.active)
            refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.limiter.release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.limiter.release(request)


class HubServer:
    """A running (or ready to run) server. Use as a context manager in tests."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        from hfa.server.store import LockScope

        scope = LockScope.from_lock(config.lock) if config.lock is not None else None
        self.store = CacheStore(config.cache_dir, scope)
        handler = Handler
        if config.faults is not None:  # tests only: a handler that fails as told, in place of the real one
            from hfa.server.faults import FaultyHandler

            handler = FaultyHandler
        self._httpd = HubHTTPServer(config, self.store, handler)
        self._thread: threading.Thread | None = None
        if config.infer is not None:
            from hfa.server.infer_routes import InferenceService

            self._httpd.infer = InferenceService(config.infer, self.store)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request served so far, as (method, path without query)."""
        return self._httpd.requests()

    def reset_requests(self) -> None:
        self._httpd.reset_requests()

    @property
    def connections(self) -> int:
        """Connections being served right now."""
        return self._httpd.limiter.active

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        host = str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.serve_forever, name="hfa-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start` (its serve loop), then :meth:`close` it."""
        self._httpd.shutdown()
        self.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        """Release the socket and the inference models. For a server whose :meth:`serve_forever` ran
        in the caller's thread (``hfa serve``) and has returned; :meth:`stop` does it for :meth:`start`."""
        self._httpd.server_close()
        if self._httpd.infer is not None:
            self._httpd.infer.close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
