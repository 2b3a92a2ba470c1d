"""``hfa pull`` as a library call: resolve, select, fetch verified, publish, report.

Online, one API call gives the commit and every file's size and hash; the selected files
are fetched in parallel into the huggingface_hub cache. Offline (``settings.offline``),
everything comes from the cache, and a missing file is an error naming it: a partial
snapshot is never reported as success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from hfa.cache.layout import CacheWriter
from hfa.config import Settings
from hfa.errors import CheckFailed, HfaError, RepoNotFound
from hfa.hub.download import DEFAULT_WORKERS, Fetcher, FetchOutcome, verify_bytes
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import read_cached, resolve_offline
from hfa.resolve.selection import Decision, Selection, SelectOptions, select

if TYPE_CHECKING:
    from hfa.hub.client import OnlineHub
    from hfa.lock.lockfile import LockedRepo


class Progress(Protocol):
    def start(self, total_bytes: int, total_files: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, outcome: FetchOutcome) -> None: ...


@dataclass
class FileReport:
    path: str
    size: int
    hash_algo: str
    hash: str
    reason: str
    status: str  # cached, downloaded, resumed, would-download, missing

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "hash": f"{self.hash_algo}:{self.hash}",
            "reason": self.reason,
            "status": self.status,
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
        }


class UnsafeContent(CheckFailed):
    """A fetched file holds known-dangerous content; it was not published."""


def content_inspector(findings: list[Any], allow_unsafe: bool) -> Callable[[RemoteFile, Path], None]:
    """Scan each verified file before it is published; refuse known-dangerous pickles unless allowed.

    The scanner is imported on the first file it sees: a pull that downloads nothing never loads it.
    """

    def inspect(f: RemoteFile, path: Path) -> None:
        from hfa.scan.model import ScanPolicy, Severity
        from hfa.scan.scanner import scan_file

        found = scan_file(path, f.path, ScanPolicy())
        findings.extend(found)
        dangerous = [x for x in found if x.severity >= Severity.CRITICAL]
        if dangerous and not allow_unsafe:
            raise UnsafeContent(
                f"'{f.path}' is unsafe: {dangerous[0].message}; it was not written to the cache",
                "inspect it with `hfa scan`; --allow-unsafe publishes it anyway (never load it)",
            )

    return inspect


def _report(f: RemoteFile, decision: Decision, status: str) -> FileReport:
    return FileReport(f.path, f.size, f.hash_algo, f.lfs_sha256 or f.blob_id, decision.reason, status)


def command_text(*words: str) -> str:
    """A command line to paste: each word quoted for a POSIX shell where it needs it."""
    import shlex

    return " ".join(shlex.quote(w) for w in words)


def pull_command(ref: RepoRef, options: SelectOptions) -> str:
    """The `hfa pull` that fetches ``ref`` with the same selection (for hints)."""
    return command_text("hfa", "pull", ref.display, *options.to_args())


class Plan(NamedTuple):
    resolved: Resolved
    selection: Selection
    warnings: list[str]
    options: SelectOptions  # as they applied to this repo (see SelectOptions.for_repo)


def resolve_online(hub: OnlineHub, ref: RepoRef) -> Resolved:
    """``hub.resolve(ref)``; a model that is not found gets a hint when a dataset or space of that name exists."""
    try:
        return hub.resolve(ref)
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


def plan(
    settings: Settings,
    ref: RepoRef,
    options: SelectOptions,
    *,
    read_index: Callable[[RemoteFile], bytes] | None = None,
    need_quant: bool = True,
    fit_options: bool = False,
) -> Plan:
    """Resolve and select without fetching (but index files may be read).

    ``need_quant=False`` (``hfa info``) leaves GGUF files out instead of asking for ``--quant``;
    ``fit_options`` applies ``--quant`` only if the repo has GGUF files (a multi-repo pin).
    """
    warnings: list[str] = []
    if settings.offline:
        try:
            resolved, complete = resolve_offline(settings.cache_dir, ref)
        except CheckFailed as exc:  # its hint, with the selection this pull asked for
            if exc.hint:
                exc.hint = exc.hint.replace(f"`hfa pull {ref.display}`", f"`{pull_command(ref, options)}`")
            raise
        if not complete:
            warnings.append(
                f"no hfa record of the full file list of {resolved.commit[:12]}: "
                "only the files already in the snapshot can be checked"
            )
        if fit_options:
            options = options.for_repo(resolved.files)

        def offline_index(path: str) -> bytes:
            f = resolved.files[path]
            data = read_cached(settings.cache_dir, ref, f)
            if data is None:
                raise CheckFailed(
                    f"'{path}' of '{ref.display}' is not in the cache",
                    f"run `{pull_command(ref, options)}` with network",
                )
            return data

        selection = select(
            resolved.files, options, repo_type=ref.repo_type, read_index=offline_index, need_quant=need_quant
        )
        return Plan(resolved, selection, warnings, options)

    from hfa.hub.client import OnlineHub

    hub = OnlineHub(settings)
    resolved = resolve_online(hub, ref)
    if fit_options:
        options = options.for_repo(resolved.files)

    def online_index(path: str) -> bytes:
        f = resolved.files[path]
        if read_index is not None:
            return read_index(f)
        data = read_cached(settings.cache_dir, ref, f)
        if data is None:
            data = hub.read_small(ref, resolved.commit, path)
        verify_bytes(f, data)
        return data

    selection = select(resolved.files, options, repo_type=ref.repo_type, read_index=online_index, need_quant=need_quant)
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
) -> PullResult:
    started = time.monotonic()
    writer = CacheWriter(settings.cache_dir, ref.repo_type, ref.repo_id)
    if settings.offline:
        resolved, selection, warnings, _ = plan(settings, ref, options)
        return _offline_result(settings, ref, resolved, selection, warnings, writer, started, options)

    from hfa.hub.client import OnlineHub

    hub = OnlineHub(settings)
    resolved = resolve_online(hub, ref)
    findings: list[Any] = []
    fetcher = Fetcher(
        hub,
        writer,
        ref,
        resolved.commit,
        workers=workers,
        on_bytes=progress.advance if progress else None,
        on_file=progress.file_done if progress else None,
        inspect=content_inspector(findings, allow_unsafe),
    )
    # Files settled without the pool: an index read here, or already in the snapshot (nothing to do: a warm
    # pull takes no lock and starts no thread).
    early: dict[str, FetchOutcome] = {}

    def linked(f: RemoteFile) -> bool:
        if writer.linked_ok(resolved.commit, f.path, f.etag, f.size):
            early[f.path] = FetchOutcome(f.path, f.etag, f.size, "cached", 0)
            return True
        return False

    def read_index(path: str) -> bytes:
        f = resolved.files[path]
        if dry_run:
            data = read_cached(settings.cache_dir, ref, f) or hub.read_small(ref, resolved.commit, path)
            verify_bytes(f, data)
            return data
        if not linked(f):
            early[path] = fetcher.fetch_one(f)
        return writer.blob_path(f.etag).read_bytes()

    selection = select(resolved.files, options, repo_type=ref.repo_type, read_index=read_index)
    chosen = [d for d in selection.decisions if d.selected]
    missing_shards = list(getattr(selection, "missing", ()))
    snapshot = writer.repo.snapshot(resolved.commit)
    result = PullResult(
        ref=ref,
        commit=resolved.commit,
        snapshot=snapshot,
        files=[],
        skipped=list(selection.skipped),
        dry_run=dry_run,
    )
    if missing_shards:
        result.warnings.append(
            f"the weight index names {len(missing_shards)} shard(s) the repo does not hold: "
            + ", ".join(missing_shards[:5])
        )
    if dry_run:
        for d in chosen:
            f = resolved.files[d.path]
            cached = writer.linked_ok(resolved.commit, f.path, f.etag, f.size) or writer.has_blob(f.etag, f.size)
            result.files.append(_report(f, d, "cached" if cached else "would-download"))
        result.requests = hub.requests_made
        result.elapsed = time.monotonic() - started
        return result

    todo = [f for f in (resolved.files[d.path] for d in chosen) if f.path not in early and not linked(f)]
    if progress:
        progress.start(sum(f.size for f in todo), len(todo))
    outcomes = {o.path: o for o in fetcher.fetch_all(todo)}
    outcomes.update(early)
    for d in chosen:
        o = outcomes[d.path]
        result.files.append(_report(resolved.files[d.path], d, o.status))
        result.bytes_downloaded += o.downloaded
    snapshot.mkdir(parents=True, exist_ok=True)
    if not ref.pinned:
        writer.write_ref(ref.revision_or_default, resolved.commit)
    writer.write_tree_record(resolved.commit, [f.to_json() for f in resolved.files.values()])
    result.findings = sorted(findings, key=lambda x: (-x.severity, x.path))
    result.requests = hub.requests_made
    result.elapsed = time.monotonic() - started
    return result


def _offline_result(
    settings: Settings,
    ref: RepoRef,
    resolved: Resolved,
    selection: Selection,
    warnings: list[str],
    writer: CacheWriter,
    started: float,
    options: SelectOptions,
) -> PullResult:
    result = PullResult(
        ref=ref,
        commit=resolved.commit,
        snapshot=writer.repo.snapshot(resolved.commit),
        files=[],
        skipped=list(selection.skipped),
        offline=True,
        warnings=warnings,
    )
    missing: list[str] = []
    for d in selection.decisions:
        if not d.selected:
            continue
        f = resolved.files[d.path]
        if writer.linked_ok(resolved.commit, f.path, f.etag, f.size):
            result.files.append(_report(f, d, "cached"))
        else:
            missing.append(f.path)
            result.files.append(_report(f, d, "missing"))
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise MissingFiles(ref, resolved.commit, missing, shown, pull_command(ref, options))
    result.elapsed = time.monotonic() - started
    return result


class MissingFiles(CheckFailed):
    def __init__(self, ref: RepoRef, commit: str, missing: list[str], shown: str, retry: str) -> None:
        super().__init__(
            f"{len(missing)} file(s) of '{ref.display}' ({commit[:12]}) are missing from the cache: {shown}",
            f"run `{retry}` with network (offline mode never returns a partial snapshot)",
            details={"repo": ref.display, "commit": commit, "missing": list(missing)},
        )
        self.missing = missing


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
) -> LockedPullResult:
    """Make the cache hold exactly what the lock names, at the lock's commits, verified by the lock's hashes.

    No request is made when every locked file is already in the cache; offline, a missing
    file is an error naming it.
    """
    from hfa.hub.client import OnlineHub

    started = time.monotonic()
    hub: OnlineHub | None = None
    results: list[PullResult] = []
    plans: list[tuple[LockedRepo, CacheWriter, list[RemoteFile]]] = []
    for entry in entries:
        writer = CacheWriter(settings.cache_dir, entry.repo_type, entry.repo_id)
        files = list(entry.remote_files().values())
        todo = [f for f in files if not writer.linked_ok(entry.commit, f.path, f.etag, f.size)]
        plans.append((entry, writer, todo))
    missing_total = [(e, f) for e, w, todo in plans for f in todo if not w.has_blob(f.etag, f.size)]
    if progress and not dry_run:
        progress.start(sum(f.size for _, f in missing_total), len(missing_total))
    for entry, writer, todo in plans:
        ref = entry.pinned_ref
        result = PullResult(
            ref=entry.ref,
            commit=entry.commit,
            snapshot=writer.repo.snapshot(entry.commit),
            files=[],
            skipped=[],
            dry_run=dry_run,
            offline=settings.offline,
        )
        todo_paths = {f.path for f in todo}
        need_network = [f for f in todo if not writer.has_blob(f.etag, f.size)]
        if need_network and settings.offline:
            names = [f.path for f in need_network]
            shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            raise MissingFiles(entry.ref, entry.commit, names, shown, retry_command)
        outcomes: dict[str, FetchOutcome] = {}
        if dry_run:
            for f in todo:
                status = "would-download" if f in need_network else "cached"
                outcomes[f.path] = FetchOutcome(f.path, f.etag, f.size, status, 0)
        elif todo:
            if need_network and hub is None:
                hub = OnlineHub(settings)
            fetcher = Fetcher(
                hub or _NoHub(),  # type: ignore[arg-type]
                writer,
                ref,
                entry.commit,
                workers=workers,
                on_bytes=progress.advance if progress else None,
                on_file=progress.file_done if progress else None,
                inspect=content_inspector(result.findings, allow_unsafe),
                locked=True,
            )
            outcomes = {o.path: o for o in fetcher.fetch_all(todo)}
        for lf in entry.files:
            o = outcomes.get(lf.path)
            status = o.status if o else "cached"
            result.files.append(FileReport(lf.path, lf.size, lf.algo, lf.digest, "locked", status))
            result.bytes_downloaded += o.downloaded if o else 0
        if not dry_run:
            writer.repo.snapshot(entry.commit).mkdir(parents=True, exist_ok=True)
            if entry.revision != entry.commit:
                writer.write_ref(entry.revision, entry.commit)
        del todo_paths
        results.append(result)
    return LockedPullResult(results, hub.requests_made if hub else 0, time.monotonic() - started)


class _NoHub:
    """Stands in for the network when every blob is already in the cache: any use is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"network used ({name}) although every blob is cached")
