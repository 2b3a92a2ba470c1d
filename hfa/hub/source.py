"""The Hub endpoint as a :class:`~hfa.resolve.source.Source` for ``hfa pull``.

The client is created on first use: a pull whose files are all in the cache (a warm
``hfa pull --lock``) sends nothing and loads no client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hfa.config import Settings
from hfa.errors import HfaError, RepoNotFound
from hfa.hub.download import Fetcher, FetchOutcome, verify_bytes
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import read_cached

if TYPE_CHECKING:
    from hfa.hub.client import OnlineHub
    from hfa.store import BlobStore

__all__ = ["HubSource"]


class HubSource:
    """Answers from the endpoint of ``settings``; small files already in the cache are read from there."""

    offline = False

    def __init__(self, settings: Settings, hub: OnlineHub | None = None) -> None:
        self.settings = settings
        self._hub = hub
        self._making = threading.Lock()  # download threads may ask for the client at once

    @property
    def hub(self) -> OnlineHub:
        with self._making:
            if self._hub is None:
                from hfa.hub.client import OnlineHub

                self._hub = OnlineHub(self.settings)
            return self._hub

    @property
    def requests_made(self) -> int:
        return self._hub.requests_made if self._hub is not None else 0

    def resolve(self, ref: RepoRef) -> tuple[Resolved, bool]:
        """One API call; a model that is not found gets a hint when a dataset or space of that name exists."""
        hub = self.hub
        try:
            return hub.resolve(ref), True
        except RepoNotFound as exc:
            if ref.repo_type == "model":
                for other in ("dataset", "space"):
                    alt = RepoRef(ref.repo_id, other, ref.revision)
                    try:
                        hub.get_json(hub.url(f"/api/{other}s/{ref.repo_id}"), None, alt)
                    except HfaError:
                        continue
                    exc.hint = f"there is a {other} of that name: use {alt.display}"
                    break
            raise

    def read_small(self, ref: RepoRef, resolved: Resolved, f: RemoteFile) -> bytes:
        data = read_cached(self.settings.cache_dir, ref, f)
        if data is None:
            data = self.hub.read_small(ref, resolved.commit, f.path)
        verify_bytes(f, data)
        return data

    def fetcher(
        self,
        store: BlobStore,
        ref: RepoRef,
        commit: str,
        *,
        retry: str,
        named: RepoRef | None = None,
        workers: int,
        on_bytes: Callable[[int], None] | None = None,
        on_file: Callable[[FetchOutcome], None] | None = None,
        inspect: Callable[[RemoteFile, Path], None] | None = None,
        locked: bool = False,
        on_big_file: Callable[[RemoteFile], Callable[[int], None]] | None = None,
    ) -> Fetcher:
        return Fetcher(
            lambda: self.hub,  # created when a byte must cross the network, not before
            store,
            ref,
            commit,
            workers=workers,
            on_bytes=on_bytes,
            on_file=on_file,
            inspect=inspect,
            locked=locked,
            connections=self.settings.max_connections,
            on_big_file=on_big_file,
        )
