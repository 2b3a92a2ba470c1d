"""``hfa pull`` as a library call: resolve, select, fetch verified, publish, report.

Everything is read through one :class:`~hfa.resolve.source.Source`, chosen once by
:func:`open_source`: online the Hub (one API call gives the commit and every file's size and
hash; the selected files are fetched in parallel), offline (``settings.offline``) the cache
alone, where a missing file is an error naming it: a partial snapshot is never reported as
success. Blobs go into the local cache through its :class:`~hfa.store.BlobStore`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from hfa.config import Settings
from hfa.errors import CheckFailed, HfaError, command_text
from hfa.hub.download import DEFAULT_WORKERS, FetchOutcome
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.kinds import WEIGHT_KINDS, classify
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import Decision, Selection, SelectOptions, select
from hfa.resolve.source import CacheSource, FetchOptions, MissingFiles, Source
from hfa.store import LocalStore

if TYPE_CHECKING:
    from hfa.hub.batch import Batch
    from hfa.lock.lockfile import LockedRepo

__all__ = [
    "FileReport",
    "LockedPullResult",
    "MissingFiles",
    "Plan",
    "PullResult",
    "UnsafeContent",
    "open_source",
    "plan",
    "pull",
    "pull_command",
    "pull_locked",
]


class Progress(Protocol):
    def start(self, total_bytes: int, total_files: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, outcome: FetchOutcome) -> None: ...
    def big_file(self, f: RemoteFile) -> Callable[[int], None]: ...  # a file fetched as parallel ranges


@dataclass
class FileReport:
    path: str
    size: int
    hash_algo: str
    hash: str
    reason: str
    status: str  # cached, downloaded, resumed, would-download, missing
    bytes_downloaded: int = 0
    seconds: float = 0.0  # wall time of its download
    connections: int = 0  # the most connections its download used at once

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "hash": f"{self.hash_algo}:{self.hash}",
            "reason": self.reason,
            "status": self.status,
            "bytes_downloaded": self.bytes_downloaded,
            "seconds": round(self.seconds, 3),
            "connections": self.connections,
        }


@dataclass
class PullResult:
    ref: RepoRef
    commit: str
    snapshot: Path
    files: list[FileReport]
    skipped: list[Decision]
    bytes_downloaded: int = 0
    elapsed: float = 0.0
    requests: int = 0
    dry_run: bool = False
    offline: bool = False
    warnings: list[str] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)  # scan findings on what was fetched
    resolved: Resolved | None = field(default=None, repr=False)  # what the pull resolved (its requirements)
    dependencies: list[PullResult] = field(default_factory=list)  # its closure (hfa.closure.pull_closure)
    required_by: list[dict[str, str]] = field(default_factory=list)  # for a dependency: who requires it, why

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.ref.repo_id,
            "repo_type": self.ref.repo_type,
            "revision": self.ref.revision_or_default,
            "commit": self.commit,
            "snapshot": str(self.snapshot),
            "dry_run": self.dry_run,
            "offline": self.offline,
            "files": [f.to_json() for f in self.files],
            "skipped": [{"path": d.path, "reason": d.reason} for d in self.skipped],
            "bytes_total": self.total_bytes,
            "bytes_downloaded": self.bytes_downloaded,
            "requests": self.requests,
            "elapsed_seconds": round(self.elapsed, 3),
            "warnings": self.warnings,
            "findings": [f.to_json() for f in self.findings],
            "required_by": self.required_by,
            "dependencies": [d.to_json() for d in self.dependencies],
        }


class UnsafeContent(CheckFailed):
    """A fetched file holds known-dangerous content; it was not published."""


def content_inspector(findings: list[Any], allow_unsafe: bool) -> Callable[[RemoteFile, Path], None]:
    """Scan each verified file before it is published; refuse known-dangerous pickles and Git-LFS
    pointer stubs unless allowed.

    The scanner is imported on the first file it sees: a pull that downloads nothing never loads it.
    """

    def inspect(f: RemoteFile, path: Path) -> None:
        from hfa.scan.model import ScanPolicy, Severity
        from hfa.scan.scanner import scan_file

        found = scan_file(path, f.path, ScanPolicy())
        findings.extend(found)
        dangerous = [x for x in found if x.severity >= Severity.CRITICAL]
        stub = [x for x in found if x.code == "lfs.pointer-stub"]
        if stub and not allow_unsafe:  # the repo holds pointer text where content should be: never a model
            raise UnsafeContent(
                f"'{f.path}' is a Git-LFS pointer stub, not its content (pushed without git-lfs upstream);"
                " it was not written to the cache",
                "ask the repo owner to push it with git-lfs; --allow-unsafe publishes the stub anyway",
            )
        if dangerous and not allow_unsafe:
            raise UnsafeContent(
                f"'{f.path}' is unsafe: {dangerous[0].message}; it was not written to the cache",
                "inspect it with `hfa scan`; --allow-unsafe publishes it anyway (never load it)",
            )

    return inspect


def _report(f: RemoteFile, decision: Decision, status: str, o: FetchOutcome | None = None) -> FileReport:
    report = FileReport(f.path, f.size, f.hash_algo, f.lfs_sha256 or f.blob_id, decision.reason, status)
    if o is not None:
        report.bytes_downloaded, report.seconds, report.connections = o.downloaded, o.seconds, o.connections
    return report


def pull_command(ref: RepoRef, options: SelectOptions) -> str:
    """The `hfa pull` that fetches ``ref`` with the same selection (for hints)."""
    return command_text("hfa", "pull", ref.display, *options.to_args())


class Plan(NamedTuple):
    resolved: Resolved
    selection: Selection
    warnings: list[str]
    options: SelectOptions  # as they applied to this repo (see SelectOptions.for_repo)


def open_source(settings: Settings) -> Source:
    """Where a pull reads from: the cache alone when offline, else the Hub (its client made on first use)."""
    if settings.offline:
        return CacheSource(settings.cache_dir)
    from hfa.hub.source import HubSource

    return HubSource(settings)


def _resolve(source: Source, ref: RepoRef, options: SelectOptions) -> tuple[Resolved, list[str]]:
    """``source.resolve(ref)``, with the warnings it calls for; a hint to pull names this selection."""
    try:
        resolved, complete = source.resolve(ref)
    except CheckFailed as exc:
        if exc.hint:
            exc.hint = exc.hint.replace(f"`hfa pull {ref.display}`", f"`{pull_command(ref, options)}`")
        raise
    warnings = []
    if not complete:
        warnings.append(
            f"no hfa record of the full file list of {resolved.commit[:12]}: "
            "only the files already in the snapshot can be checked"
        )
    return resolved, warnings


def plan(
    settings: Settings,
    ref: RepoRef,
    options: SelectOptions,
    *,
    need_quant: bool = True,
    fit_options: bool = False,
    source: Source | None = None,
) -> Plan:
    """Resolve and select without fetching (but index files may be read).

    ``need_quant=False`` (``hfa info``) leaves GGUF files out instead of asking for ``--quant``;
    ``fit_options`` applies ``--quant`` only if the repo has GGUF files (a multi-repo pin).
    """
    source = source or open_source(settings)
    resolved, warnings = _resolve(source, ref, options)
    if fit_options:
        options = options.for_repo(resolved.files)

    def read_index(path: str) -> bytes:
        try:
            return source.read_small(ref, resolved, resolved.files[path])
        except CheckFailed as exc:
            if exc.hint:
                exc.hint = exc.hint.replace(f"`hfa pull {ref.display}`", f"`{pull_command(ref, options)}`")
            raise

    selection = select(resolved.files, options, repo_type=ref.repo_type, read_index=read_index, need_quant=need_quant)
    return Plan(resolved, selection, warnings, options)


def pull(
    settings: Settings,
    ref: RepoRef,
    options: SelectOptions,
    *,
    dry_run: bool = False,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    allow_unsafe: bool = False,
    source: Source | None = None,
) -> PullResult:
    """Fetch what ``ref`` needs into the cache, from ``source`` (default: :func:`open_source`)."""
    started_at = time.monotonic()
    store = LocalStore(settings.cache_dir, ref.repo_type, ref.repo_id)
    source = source or open_source(settings)
    # A repo not in the cache yet is surely fetched: its download modules load while the listing is awaited.
    load_ahead = getattr(source, "load_ahead", None)
    loading = load_ahead() if load_ahead and not dry_run and not store.repo.path.exists() else None
    try:
        resolved, warnings = _resolve(source, ref, options)
    finally:
        if loading is not None:
            loading.join()
    findings: list[Any] = []
    sink = _LateStart(progress) if progress else None
    fetcher = source.fetcher(
        store,
        ref,
        resolved.commit,
        FetchOptions(
            retry=pull_command(ref, options),
            workers=workers,
            on_bytes=sink.advance if sink else None,
            on_file=sink.file_done if sink else None,
            inspect=content_inspector(findings, allow_unsafe),
            on_big_file=getattr(progress, "big_file", None),
        ),
    )
    # Files settled without the pool: already in the snapshot (nothing to do: a warm pull takes no lock and
    # starts no thread), or an index read by a fetcher that takes no files while it runs.
    early: dict[str, FetchOutcome] = {}
    # Asked once per file. A snapshot folder that is not there yet (a cold pull) has nothing linked: a file
    # linked meanwhile by another pull is found by its worker, under the blob's lock, and reported cached.
    known: dict[str, bool] = (
        {} if store.repo.snapshot(resolved.commit).exists() else dict.fromkeys(resolved.files, False)
    )

    def linked(f: RemoteFile) -> bool:
        ok = known.get(f.path)
        if ok is None:
            ok = known[f.path] = store.linked(resolved.commit, f.path, f.etag, f.size)
        if ok:
            early[f.path] = FetchOutcome(f.path, f.etag, f.size, "cached", 0)
        return ok

    # Online, the files the index cannot change (all but the weights) start at once, the index first: it is
    # read while they download, and the shards it names join the same workers (see hfa.hub.batch).
    batch, started = (None, set()) if dry_run else _start_sure(fetcher, resolved, options, ref.repo_type, linked)

    def read_index(path: str) -> bytes:
        f = resolved.files[path]
        if dry_run:
            return source.read_small(ref, resolved, f)
        if batch is not None and path in started:
            batch.result(path)
        elif not linked(f):
            early[path] = fetcher.fetch_one(f)
        return store.path(f.etag).read_bytes()

    try:
        selection = select(resolved.files, options, repo_type=ref.repo_type, read_index=read_index)
    except BaseException as exc:
        if batch is not None:  # the files already coming are finished (a refused index), unless interrupted
            batch.abort(cancel=not isinstance(exc, HfaError))
        raise
    chosen = [d for d in selection.decisions if d.selected]
    snapshot = store.repo.snapshot(resolved.commit)
    result = PullResult(
        ref=ref,
        commit=resolved.commit,
        snapshot=snapshot,
        files=[],
        skipped=list(selection.skipped),
        dry_run=dry_run,
        offline=source.offline,
        warnings=warnings,
        resolved=resolved,
    )
    todo = [
        f
        for f in (resolved.files[d.path] for d in chosen)
        if f.path not in early and f.path not in started and not linked(f)
    ]
    if dry_run:
        fetcher.check([f for f in todo if not store.has(f.etag, f.size)])
        for d in chosen:
            f = resolved.files[d.path]
            cached = f.path in early or store.has(f.etag, f.size)
            result.files.append(_report(f, d, "cached" if cached else "would-download"))
        result.requests = source.requests_made
        result.elapsed = time.monotonic() - started_at
        return result

    fetched = todo + [resolved.files[p] for p in started]
    if batch is None:
        if sink:
            sink.start(sum(f.size for f in fetched), len(fetched))
        outcomes = {o.path: o for o in fetcher.fetch_all(todo)}
    else:
        try:
            if sink:
                sink.start(sum(f.size for f in fetched), len(fetched))
            batch.add(todo)
            outcomes = batch.finish()
        except BaseException:
            batch.abort()
            raise
    outcomes.update(early)
    for d in chosen:
        o = outcomes[d.path]
        result.files.append(_report(resolved.files[d.path], d, o.status, o))
        result.bytes_downloaded += o.downloaded
    snapshot.mkdir(parents=True, exist_ok=True)
    if not ref.pinned:
        store.write_ref(ref.revision_or_default, resolved.commit)
    if not warnings:  # a complete file list: recorded for offline use (an incomplete one never is)
        store.write_tree_record(resolved.commit, [f.to_json() for f in resolved.files.values()])
    result.findings = sorted(findings, key=lambda x: (-x.severity, x.path))
    result.requests = source.requests_made
    result.elapsed = time.monotonic() - started_at
    return result


def _start_sure(
    fetcher: Any, resolved: Resolved, options: SelectOptions, repo_type: str, linked: Callable[[RemoteFile], bool]
) -> tuple[Batch | None, set[str]]:
    """Start fetching the files selected whatever the shard indexes say; (the batch, their paths).

    Only weights depend on an index (which shards it names): every other decision is the same with
    or without reading one, so a selection that reads none tells those files apart. (None, set())
    when the fetcher takes no files while it runs (offline, a bucket) or the options are refused
    (the real selection says why).
    """
    if not hasattr(fetcher, "start"):
        return None, set()
    try:
        probe = select(resolved.files, options, repo_type=repo_type, read_index=None)
    except HfaError:
        return None, set()
    # Whether each file is linked already is asked now, before the workers compete for the interpreter.
    selected = [d for d in probe.decisions if d.selected and not linked(resolved.files[d.path])]
    sure = [resolved.files[d.path] for d in selected if d.kind not in WEIGHT_KINDS]
    if not sure:
        return None, set()
    indexes = [f for f in sure if classify(f.path) == "index"]
    batch: Batch = fetcher.start()
    try:
        batch.add(indexes)  # first: the selection waits for them
        batch.add([f for f in sure if f not in indexes])
    except BaseException:
        batch.abort()
        raise
    return batch, {f.path for f in sure}


class _LateStart:
    """A :class:`Progress` told its totals after downloads began: what came before is passed on at ``start``."""

    def __init__(self, progress: Progress) -> None:
        import threading

        self.progress = progress
        self._lock = threading.Lock()
        self._started = False
        self._bytes = 0
        self._done: list[FetchOutcome] = []

    def start(self, total_bytes: int, total_files: int) -> None:
        with self._lock:
            self.progress.start(total_bytes, total_files)
            if self._bytes:
                self.progress.advance(self._bytes)
            for outcome in self._done:
                self.progress.file_done(outcome)
            self._started = True

    def advance(self, nbytes: int) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    self._bytes += nbytes
                    return
        self.progress.advance(nbytes)

    def file_done(self, outcome: FetchOutcome) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    self._done.append(outcome)
                    return
        self.progress.file_done(outcome)


# -- from the lock ---------------------------------------------------------------------------


@dataclass
class LockedPullResult:
    results: list[PullResult]
    requests: int
    elapsed: float

    def to_json(self, lock_path: Path) -> dict[str, Any]:
        return {
            "lock": str(lock_path),
            "repos": [r.to_json() for r in self.results],
            "bytes_downloaded": sum(r.bytes_downloaded for r in self.results),
            "requests": self.requests,
            "elapsed_seconds": round(self.elapsed, 3),
        }


def pull_locked(
    settings: Settings,
    entries: list[LockedRepo],
    *,
    dry_run: bool = False,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    allow_unsafe: bool = False,
    retry_command: str = "hfa pull",
    source: Source | None = None,
) -> LockedPullResult:
    """Make the cache hold exactly what the lock names, at the lock's commits, verified by the lock's hashes.

    No request is made when every locked file is already in the cache; offline, a missing
    file is an error naming it.
    """
    started = time.monotonic()
    source = source or open_source(settings)
    results: list[PullResult] = []
    plans: list[tuple[LockedRepo, LocalStore, list[RemoteFile]]] = []
    for entry in entries:
        store = LocalStore(settings.cache_dir, entry.repo_type, entry.repo_id)
        files = list(entry.remote_files().values())
        todo = [f for f in files if not store.linked(entry.commit, f.path, f.etag, f.size)]
        plans.append((entry, store, todo))
    missing_total = [(e, f) for e, s, todo in plans for f in todo if not s.has(f.etag, f.size)]
    if progress and not dry_run:
        progress.start(sum(f.size for _, f in missing_total), len(missing_total))
    for entry, store, todo in plans:
        result = PullResult(
            ref=entry.ref,
            commit=entry.commit,
            snapshot=store.repo.snapshot(entry.commit),
            files=[],
            skipped=[],
            dry_run=dry_run,
            offline=source.offline,
        )
        outcomes: dict[str, FetchOutcome] = {}
        if todo:
            fetcher = source.fetcher(
                store,
                entry.pinned_ref,
                entry.commit,
                FetchOptions(
                    retry=retry_command,
                    named=entry.ref,
                    workers=workers,
                    on_bytes=progress.advance if progress else None,
                    on_file=progress.file_done if progress else None,
                    inspect=content_inspector(result.findings, allow_unsafe),
                    locked=True,
                    on_big_file=getattr(progress, "big_file", None),
                ),
            )
            need_network = [f for f in todo if not store.has(f.etag, f.size)]
            fetcher.check(need_network)
            if dry_run:
                for f in todo:
                    status = "would-download" if f in need_network else "cached"
                    outcomes[f.path] = FetchOutcome(f.path, f.etag, f.size, status, 0)
            else:
                outcomes = {o.path: o for o in fetcher.fetch_all(todo)}
        for lf in entry.files:
            o = outcomes.get(lf.path)
            status = o.status if o else "cached"
            report = FileReport(lf.path, lf.size, lf.algo, lf.digest, "locked", status)
            if o is not None:
                report.bytes_downloaded, report.seconds, report.connections = o.downloaded, o.seconds, o.connections
            result.files.append(report)
            result.bytes_downloaded += o.downloaded if o else 0
        if not dry_run:
            store.repo.snapshot(entry.commit).mkdir(parents=True, exist_ok=True)
            if entry.revision != entry.commit:
                store.write_ref(entry.revision, entry.commit)
        results.append(result)
    return LockedPullResult(results, source.requests_made, time.monotonic() - started)
