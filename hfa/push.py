"""``hfa push --to s3://BUCKET/PREFIX``: the local cache's repositories into a shared bucket.

What a repository is at a commit comes from the cache alone (its refs, snapshots and hfa's record
of the full file list, :func:`~hfa.resolve.resolver.resolve_offline`); nothing asks the Hub.
Every blob in the cache is hashed before it goes up (a corrupt cache is refused, not copied),
uploaded once (a ``HEAD`` first; put-if-absent so racing pushers cannot clash), then the
commit's manifest, the ref and the card data (:mod:`hfa.store.s3` has the layout). A second push
of the same things sends no byte: blobs and manifests are there, refs and cards unchanged.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hfa.config import Settings
from hfa.errors import CheckFailed
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import resolve_offline
from hfa.store.local import LocalStore
from hfa.store.s3 import S3Store

__all__ = [
    "PushProgress",
    "PushResult",
    "PushTarget",
    "RepoPush",
    "push",
    "push_metadata",
    "targets_from_lock",
    "targets_from_refs",
]

HASH_CHUNK = 1 << 20


class PushProgress(Protocol):
    def start(self, total_bytes: int, total_files: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, outcome: Any) -> None: ...


@dataclass
class PushTarget:
    """One commit of one repository in the cache, and the ref (if any) that names it."""

    ref: RepoRef
    resolved: Resolved
    complete: bool
    revision: str | None  # written as refs/<revision>; None for a commit named by its hash
    required: frozenset[str] = frozenset()  # paths that must be in the cache (a lock's files)


@dataclass
class RepoPush:
    ref: RepoRef
    commit: str
    revision: str | None
    files: int
    not_cached: list[str]
    manifest: str = "present"  # "written", "present", "would-write"
    ref_status: str = "unchanged"  # "written", "unchanged", "would-write", "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.ref.display,
            "repo_type": self.ref.repo_type,
            "commit": self.commit,
            "revision": self.revision,
            "files": self.files,
            "not_cached": self.not_cached,
            "manifest": self.manifest,
            "ref": self.ref_status,
        }


@dataclass
class PushResult:
    to: str
    dry_run: bool
    repos: list[RepoPush] = field(default_factory=list)
    blobs_uploaded: int = 0
    blobs_present: int = 0
    bytes_uploaded: int = 0
    bytes_sent: int = 0  # blob bytes that crossed the network (a resumed upload's kept parts do not)
    requests: int = 0
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "dry_run": self.dry_run,
            "repos": [r.to_json() for r in self.repos],
            "blobs_uploaded": self.blobs_uploaded,
            "blobs_present": self.blobs_present,
            "bytes_uploaded": self.bytes_uploaded,
            "bytes_sent": self.bytes_sent,
            "requests": self.requests,
            "elapsed_seconds": round(self.elapsed, 3),
        }


def targets_from_refs(settings: Settings, refs: list[RepoRef]) -> list[PushTarget]:
    out = []
    for ref in refs:
        resolved, complete = resolve_offline(settings.cache_dir, ref)
        out.append(PushTarget(ref, resolved, complete, None if ref.pinned else ref.revision_or_default))
    return out


def targets_from_lock(settings: Settings, entries: list[Any]) -> list[PushTarget]:
    """Every entry of a lock (``LockedRepo``): its commit must be in the cache with every locked file."""
    out = []
    for entry in entries:
        locked = entry.remote_files()
        try:
            resolved, complete = resolve_offline(settings.cache_dir, entry.pinned_ref)
            files = {**locked, **resolved.files}
        except CheckFailed:
            resolved, complete, files = Resolved(entry.pinned_ref, entry.commit, {}), False, dict(locked)
        resolved = Resolved(entry.pinned_ref, entry.commit, files, card_data=resolved.card_data, source="cache")
        revision = entry.revision if entry.revision != entry.commit else None
        out.append(PushTarget(entry.ref, resolved, complete, revision, frozenset(locked)))
    return out


def _digests(f: RemoteFile, path: Path) -> str:
    """The sha256 of the cached blob at ``path``, after checking it is ``f``'s bytes."""
    from hfa.hub.download import expected_digest, new_hasher

    listed = new_hasher(f)
    sha256 = hashlib.sha256() if not f.is_lfs else listed
    size = 0
    with path.open("rb") as fp:
        while chunk := fp.read(HASH_CHUNK):
            size += len(chunk)
            listed.update(chunk)
            if sha256 is not listed:
                sha256.update(chunk)
    if size != f.size or listed.hexdigest() != expected_digest(f):
        raise CheckFailed(
            f"the cached blob of '{f.path}' does not match its {f.hash_algo} {expected_digest(f)}: not pushed",
            "repair the cache first: `hfa verify --repair` or `hfa pull` the repo again",
        )
    return str(sha256.hexdigest())


def push(
    settings: Settings,
    s3: S3Store,
    targets: list[PushTarget],
    *,
    dry_run: bool = False,
    workers: int = 8,
    progress: PushProgress | None = None,
) -> PushResult:
    """Upload each target's cached blobs (each once), its manifest, ref and card data."""
    started = time.monotonic()
    result = PushResult(s3.location.url, dry_run)
    blobs: dict[str, tuple[RemoteFile, Path]] = {}
    for t in targets:
        store = LocalStore(settings.cache_dir, t.ref.repo_type, t.ref.repo_id)
        not_cached = []
        for f in sorted(t.resolved.files.values(), key=lambda f: f.path):
            if store.has(f.etag, f.size):
                blobs.setdefault(f.etag, (f, store.path(f.etag)))
            else:
                not_cached.append(f.path)
        missing_required = sorted(set(not_cached) & t.required)
        if missing_required:
            raise CheckFailed(
                f"{len(missing_required)} locked file(s) of '{t.ref.display}' are not in the cache:"
                f" {', '.join(missing_required[:5])}",
                "pull them first: `hfa pull --lock LOCK`, then push again",
            )
        result.repos.append(RepoPush(t.ref, t.resolved.commit, t.revision, len(t.resolved.files), not_cached))

    pool_size = max(1, min(workers, len(blobs) or 1))
    with ThreadPoolExecutor(pool_size, thread_name_prefix="hfa-push") as pool:
        sizes = dict(zip(blobs, pool.map(s3.blob_size, blobs), strict=True))
        todo = [(f, path) for etag, (f, path) in blobs.items() if sizes[etag] != f.size]
        result.blobs_present = len(blobs) - len(todo)
        if progress and not dry_run:
            progress.start(sum(f.size for f, _ in todo), len(todo))

        def upload(item: tuple[RemoteFile, Path]) -> int:
            f, path = item
            sha256 = _digests(f, path)
            wrote = s3.put_blob(f.etag, path, sha256_hex=sha256, on_bytes=progress.advance if progress else None)
            if progress:
                progress.file_done(None)
            return f.size if wrote else 0

        if dry_run:
            result.blobs_uploaded = len(todo)
            result.bytes_uploaded = sum(f.size for f, _ in todo)
        else:
            for n in pool.map(upload, todo):
                result.blobs_uploaded += 1 if n else 0
                result.bytes_uploaded += n
                result.blobs_present += 0 if n else 1

    for t, r in zip(targets, result.repos, strict=True):
        push_metadata(s3, t, r, result, dry_run)
    result.requests = s3.requests_made
    result.bytes_sent = s3.bytes_sent
    result.elapsed = time.monotonic() - started
    return result


def push_metadata(s3: S3Store, t: PushTarget, r: RepoPush, result: PushResult, dry_run: bool = False) -> None:
    """Write ``t``'s manifest (put-if-absent), its ref and card data (each only if changed); ``r`` and
    ``result`` hear what was written. ``hfa serve --store --upstream`` records upstream answers so."""
    ref, resolved = t.ref, t.resolved
    manifest_key = s3.repo_key(ref.repo_type, ref.repo_id, "commits", f"{resolved.commit}.json")
    manifest = {
        "version": 1,
        "repo_id": ref.repo_id,
        "repo_type": ref.repo_type,
        "commit": resolved.commit,
        "complete": t.complete,
        "files": [f.to_json() for f in sorted(resolved.files.values(), key=lambda f: f.path)],
        "card_data": resolved.card_data,
    }
    if s3.exists(manifest_key):
        r.manifest = "present"
    elif dry_run:
        r.manifest = "would-write"
    else:
        body = _json_bytes(manifest)
        r.manifest = (
            "written"
            if s3.put_bytes(manifest_key, body, if_absent=True, content_type="application/json")
            else "present"
        )
        result.bytes_uploaded += len(body) if r.manifest == "written" else 0
    if t.revision is None:
        r.ref_status = "none"
    else:
        r.ref_status = _put_if_changed(
            s3, s3.repo_key(ref.repo_type, ref.repo_id, "refs", t.revision), resolved.commit.encode(), dry_run, result
        )
    card = {
        "repo_id": ref.repo_id,
        "repo_type": ref.repo_type,
        "commit": resolved.commit,
        "card_data": resolved.card_data,
    }
    _put_if_changed(s3, s3.repo_key(ref.repo_type, ref.repo_id, "card.json"), _json_bytes(card), dry_run, result)


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _put_if_changed(s3: S3Store, key: str, body: bytes, dry_run: bool, result: PushResult) -> str:
    from hfa.store.s3 import SMALL_LIMIT

    current = s3.get_bytes(key, limit=max(SMALL_LIMIT, len(body)), missing_ok=True)
    if current == body:
        return "unchanged"
    if dry_run:
        return "would-write"
    s3.put_bytes(key, body, if_absent=False, content_type="application/json" if key.endswith(".json") else "text/plain")
    result.bytes_uploaded += len(body)
    return "written"
