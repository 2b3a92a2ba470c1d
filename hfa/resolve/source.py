"""Where ``hfa pull`` reads a repository from: one :class:`Source` interface, chosen once.

As pip-tools' ``BaseRepository`` is what its resolver may ask of an index, a :class:`Source`
is what a pull may ask: the commit and file list of a revision (:meth:`Source.resolve`), the
verified bytes of a small file (an index, a card: :meth:`Source.read_small`), and a
:class:`Fetching` that puts files into a :class:`~hfa.store.BlobStore` and links them into the
snapshot. :class:`~hfa.hub.source.HubSource` answers from the endpoint (online);
:class:`CacheSource` from the cache alone (offline: a file that is not there is a
:class:`MissingFiles` naming every one of them, never a partial snapshot).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hfa.errors import CheckFailed
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import read_cached, resolve_offline

if TYPE_CHECKING:
    from hfa.hub.connections import Connections
    from hfa.hub.download import FetchOutcome
    from hfa.store import BlobStore

__all__ = ["CacheSource", "FetchOptions", "Fetching", "MissingFiles", "Source"]


@dataclass(frozen=True)
class FetchOptions:
    """How a :class:`Fetching` fetches and whom it tells: the one value every :meth:`Source.fetcher` takes.

    A source uses what applies to it: the cache only ``retry`` and ``named``; a bucket has no ranges, so
    no ``on_big_file``, ``on_prefix`` or ``connections``.
    """

    retry: str  # the command a user reruns to get what is missing
    workers: int = 1  # files fetched at once
    named: RepoRef | None = None  # the ref as the user named it (the fetcher's may be pinned to the commit)
    on_bytes: Callable[[int], None] | None = None  # bytes arrived (the progress bar)
    on_file: Callable[[FetchOutcome], None] | None = None  # a file is done
    inspect: Callable[[RemoteFile, Path], None] | None = None  # verified bytes before publishing; may raise
    locked: bool = False  # the hashes come from a lock: a server that disagrees is reported at once
    # A file is fetched as parallel ranges: returns what counts its bytes (its own progress line).
    on_big_file: Callable[[RemoteFile], Callable[[int], None]] | None = None
    # How many bytes from the start of the partial file are written, as that grows (the mirror streams them).
    on_prefix: Callable[[int], None] | None = None
    # A bound shared with other fetchers (the mirror's, across its flights); None: the source's own setting.
    connections: Connections | None = None


class Fetching(Protocol):
    """Puts files of one commit into a store and links them into its snapshot."""

    def fetch_one(self, f: RemoteFile) -> FetchOutcome: ...

    def fetch_all(self, files: list[RemoteFile]) -> list[FetchOutcome]: ...

    def check(self, files: list[RemoteFile]) -> None:
        """Raise when these files (not in the store) cannot be fetched; a dry run asks this."""
        ...


class Source(Protocol):
    """What a pull may ask of where a repository comes from."""

    offline: bool  # reported (``"offline": true``), never branched on

    @property
    def requests_made(self) -> int: ...

    def resolve(self, ref: RepoRef) -> tuple[Resolved, bool]:
        """The commit ``ref`` names and its files; and whether that file list is complete."""
        ...

    def read_small(self, ref: RepoRef, resolved: Resolved, f: RemoteFile) -> bytes:
        """The verified bytes of a small file (an index, a card) of ``resolved``."""
        ...

    def fetcher(self, store: BlobStore, ref: RepoRef, commit: str, options: FetchOptions) -> Fetching:
        """A :class:`Fetching` of ``ref``'s ``commit`` into ``store``, as ``options`` say."""
        ...


class MissingFiles(CheckFailed):
    def __init__(self, ref: RepoRef, commit: str, missing: list[str], retry: str) -> None:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        super().__init__(
            f"{len(missing)} file(s) of '{ref.display}' ({commit[:12]}) are missing from the cache: {shown}",
            f"run `{retry}` with network (offline mode never returns a partial snapshot)",
            details={"repo": ref.display, "commit": commit, "missing": list(missing)},
        )
        self.missing = missing


class CacheSource:
    """The cache alone (offline): no request is ever made."""

    offline = True
    requests_made = 0

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def resolve(self, ref: RepoRef) -> tuple[Resolved, bool]:
        return resolve_offline(self.cache_dir, ref)

    def read_small(self, ref: RepoRef, resolved: Resolved, f: RemoteFile) -> bytes:
        data = read_cached(self.cache_dir, ref, f)
        if data is None:
            raise CheckFailed(
                f"'{f.path}' of '{ref.display}' is not in the cache",
                f"run `hfa pull {ref.display}` with network",
            )
        return data

    def fetcher(self, store: BlobStore, ref: RepoRef, commit: str, options: FetchOptions) -> CacheFetcher:
        return CacheFetcher(store, options.named or ref, commit, options.retry)


class CacheFetcher:
    """Fetches what the store already holds (links it into the snapshot); anything else is missing."""

    def __init__(self, store: BlobStore, ref: RepoRef, commit: str, retry: str) -> None:
        self.store = store
        self.ref = ref
        self.commit = commit
        self.retry = retry

    def check(self, files: list[RemoteFile]) -> None:
        missing = [f.path for f in files if not self.store.has(f.etag, f.size)]
        if missing:
            raise MissingFiles(self.ref, self.commit, missing, self.retry)

    def fetch_one(self, f: RemoteFile) -> FetchOutcome:
        from hfa.hub.download import FetchOutcome

        with self.store.lock(f.etag):
            self.check([f])
            self.store.link(self.commit, f.path, f.etag)
        return FetchOutcome(f.path, f.etag, f.size, "cached", 0)

    def fetch_all(self, files: list[RemoteFile]) -> list[FetchOutcome]:
        self.check(files)
        return [self.fetch_one(f) for f in sorted(files, key=lambda f: f.path)]
