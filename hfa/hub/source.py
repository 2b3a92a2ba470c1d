"""The Hub endpoint as a :class:`~hfa.resolve.source.Source` for ``hfa pull``.

The client is created on first use: a pull whose files are all in the cache (a warm
``hfa pull --lock``) sends nothing and loads no client.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from hfa.config import Settings
from hfa.errors import HfaError, RepoNotFound
from hfa.hub.download import Fetcher, verify_bytes
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import read_cached

if TYPE_CHECKING:
    from hfa.hub.client import OnlineHub
    from hfa.resolve.source import FetchOptions
    from hfa.store import BlobStore

__all__ = ["HubSource"]

# What the first download of a pull imports (hfa.hub.download, hfa.pull.content_inspector, the cache's lock).
_DOWNLOAD_MODULES = (
    "hashlib",
    "filelock",
    "hfa.hub.ranged",
    "hfa.hub.batch",
    "hfa.scan.model",
    "hfa.scan.scanner",
    "hfa.scan.archive",
)


def _load_download_modules() -> None:
    from importlib import import_module

    for name in _DOWNLOAD_MODULES:
        try:
            import_module(name)
        except Exception:  # the download's own import reports it
            continue


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

    def load_ahead(self) -> threading.Thread | None:
        """Load what downloads need on another thread while this one waits for the listing (a cold pull).

        The HTTP stack is loaded here first, so the thread runs while this one waits on the network, not
        while it imports: the file lock library (~30 ms of CPU), hashlib and the content scanner are then
        loaded before the first worker asks for them, instead of holding up every worker at once. Join it
        before the downloads start (no import then runs on two threads at once).
        """
        try:
            self.hub  # noqa: B018 - the client, on this thread
            import hfa.hub.transport  # noqa: F401 - its HTTP stack (http.client, ~15 ms), needed first
        except Exception:  # resolve() reports it
            return None
        thread = threading.Thread(target=_load_download_modules, name="hfa-load-ahead")
        thread.start()
        return thread

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

    def fetcher(self, store: BlobStore, ref: RepoRef, commit: str, options: FetchOptions) -> Fetcher:
        return Fetcher(
            lambda: self.hub,  # created when a byte must cross the network, not before
            store,
            ref,
            commit,
            workers=options.workers,
            on_bytes=options.on_bytes,
            on_file=options.on_file,
            inspect=options.inspect,
            locked=options.locked,
            connections=self.settings.max_connections if options.connections is None else options.connections,
            on_big_file=options.on_big_file,
            on_prefix=options.on_prefix,
        )
