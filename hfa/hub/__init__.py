"""Talking to a Hub endpoint: transport, the one request loop and failure classifier, the client, downloads.

Layers, bottom up: :mod:`~hfa.hub.transport` (HTTP/1.1 over the standard library, every wait
bounded), :mod:`~hfa.hub.classify` (what a foreign failure means, what is worth a retry),
:mod:`~hfa.hub.requests` (the one request loop: redirects, retries, bounds, the Hub's error
codes), :mod:`~hfa.hub.client` (the Hub API), :mod:`~hfa.hub.download` (resumable verified
downloads into a blob store; big files as parallel ranges through :mod:`~hfa.hub.ranged`), :mod:`~hfa.hub.source` (the Hub as a source for ``hfa pull``).

The names below are loaded on first use: importing ``hfa.hub`` loads no HTTP stack (a warm
pull never needs one).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hfa.hub.classify import error_reason, is_transient, network_failure
    from hfa.hub.client import OnlineHub
    from hfa.hub.download import Fetcher, FetchOutcome, HashMismatch, verify_bytes
    from hfa.hub.requests import RetryPolicy, Session, parse_retry_after
    from hfa.hub.source import HubSource

__all__ = [
    "FetchOutcome",
    "Fetcher",
    "HashMismatch",
    "HubSource",
    "OnlineHub",
    "RetryPolicy",
    "Session",
    "error_reason",
    "is_transient",
    "network_failure",
    "parse_retry_after",
    "verify_bytes",
]

_HOME = {
    "error_reason": "classify",
    "is_transient": "classify",
    "network_failure": "classify",
    "OnlineHub": "client",
    "Fetcher": "download",
    "FetchOutcome": "download",
    "HashMismatch": "download",
    "verify_bytes": "download",
    "RetryPolicy": "requests",
    "Session": "requests",
    "parse_retry_after": "requests",
    "HubSource": "source",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'hfa.hub' has no attribute {name!r}")
    return getattr(import_module(f"hfa.hub.{home}"), name)
