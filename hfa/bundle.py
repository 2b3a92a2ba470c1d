"""Air-gapped seeding: export what a lock names as one verified tar, import it with no network.

Bundle layout (a plain, uncompressed tar)::

    hfa-bundle/manifest.json      first member: format, hfa version, the lock text, every blob
    hfa-bundle/blobs/<hash>       each blob once (deduplicated across repos), named by its hash

Export streams blobs from the cache straight into the tar (no staging copies), hashing
each as it goes and aborting on a mismatch, and writes the tar atomically. Import reads
the tar as a stream, refuses anything that is not exactly a manifest-listed regular file
of the listed size and hash, stages verified blobs inside the cache, and only when the
whole bundle has proven sound publishes them (renames), then rebuilds snapshots and refs.
An interrupted import leaves nothing corrupt, and a rerun completes; a second import is a
no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from hfa import __version__, lockfile
from hfa.cache import CacheWriter, RepoDir, atomic_write_text
from hfa.errors import CheckFailed, UsageError
from hfa.hashing import SHA1_RE, SHA256_RE
from hfa.lockfile import Lock, LockedFile, LockedRepo

FORMAT = "hfa-bundle"
VERSION = 1
PREFIX = "hfa-bundle/"
MANIFEST = PREFIX + "manifest.json"
MAX_MANIFEST = 64 * 1024 * 1024
CHUNK = 4 << 20


class BundleRefused(CheckFailed):
    """The bundle is not sound; nothing was published."""

    def __init__(self, what: str) -> None:
        super().__init__(f"Bundle refused: {what}", "nothing was imported; get a fresh bundle (`hfa export`)")


@dataclass(frozen=True)
class BlobEntry:
    name: str  # the hash: sha256 (64 hex) or git-sha1 (40 hex)
    size: int

    @property
    def algo(self) -> str:
        return "sha256" if len(self.name) == 64 else "git-sha1"


def _hasher(blob: BlobEntry) -> Any:
    return hashlib.sha256() if blob.algo == "sha256" else hashlib.sha1(b"blob %d\0" % blob.size)


def blobs_of(lock: Lock) -> list[BlobEntry]:
    seen: dict[str, BlobEntry] = {}
    for entry in lock.repos:
        for f in entry.files:
            b = BlobEntry(f.digest, f.size)
            if seen.get(b.name, b) != b:
                raise UsageError(f"The lock lists blob {b.name} with two sizes", "regenerate it with `hfa pin`")
            seen[b.name] = b
    return sorted(seen.values(), key=lambda b: b.name)


# -- export ------------------------------------------------------------------------------------


@dataclass
class ExportPlan:
    lock: Lock
    blobs: list[BlobEntry]
    sources: dict[str, Path]  # blob name -> a cached copy to read
    missing: list[str] = field(default_factory=list)  # "repo@commit/path" not in the cache

    @property
    def total_bytes(self) -> int:
        return sum(b.size for b in self.blobs)

    def to_json(self) -> dict[str, Any]:
        return {
            "repos": [
                {
                    "id": r.repo_id,
                    "type": r.repo_type,
                    "revision": r.revision,
                    "commit": r.commit,
                    "files": len(r.files),
                }
                for r in self.lock.repos
            ],
            "blobs": len(self.blobs),
            "bytes": self.total_bytes,
            "missing": self.missing,
        }


def lock_from_cache(cache_dir: Path, specs: list[Any]) -> Lock:
    """Lock entries for REPO[@REV] arguments, from what the cache holds for those revisions."""
    from hfa.resolver import resolve_offline
    from hfa.select import SelectOptions

    lock = Lock()
    for ref in specs:
        resolved, _complete = resolve_offline(cache_dir, ref)
        writer = CacheWriter(cache_dir, ref.repo_type, ref.repo_id)
        files = tuple(
            sorted(
                LockedFile.from_remote(f)
                for f in resolved.files.values()
                if writer.linked_ok(resolved.commit, f.path, f.etag, f.size)
            )
        )
        lock = lock.upsert(
            LockedRepo(ref.repo_id, ref.repo_type, ref.revision_or_default, resolved.commit, SelectOptions(), files)
        )
    return lock


def plan_export(cache_dir: Path, lock: Lock) -> ExportPlan:
    if not lock.repos:
        raise UsageError("Nothing to export", "name repos, or a lock with repos in it")
    plan = ExportPlan(lock, blobs_of(lock), {})
    for entry in lock.repos:
        writer = CacheWriter(cache_dir, entry.repo_type, entry.repo_id)
        for f in entry.files:
            remote = f.to_remote()
            if writer.has_blob(remote.etag, f.size):
                plan.sources.setdefault(remote.etag, writer.blob_path(remote.etag))
            elif remote.etag not in plan.sources:
                plan.missing.append(f"{entry.display}/{f.path}")
    return plan


class _HashingReader:
    """Feeds tarfile from a blob while hashing it; the tar member is exactly ``size`` bytes."""

    def __init__(self, fp: BinaryIO, blob: BlobEntry) -> None:
        self.fp = fp
        self.blob = blob
        self.h = _hasher(blob)
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fp.read(n if n >= 0 else CHUNK)
        self.h.update(data)
        self.read_bytes += len(data)
        return data


def export(cache_dir: Path, lock: Lock, out: Path, *, on_bytes: Callable[[int], None] | None = None) -> ExportPlan:
    plan = plan_export(cache_dir, lock)
    if plan.missing:
        shown = ", ".join(plan.missing[:5]) + (f" and {len(plan.missing) - 5} more" if len(plan.missing) > 5 else "")
        raise CheckFailed(f"{len(plan.missing)} file(s) are not in the cache: {shown}", "run `hfa pull` first")
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "hfa_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lock": lockfile.dumps(lock),
        "blobs": [{"name": b.name, "algo": b.algo, "size": b.size} for b in plan.blobs],
    }
    raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(raw)
            info.mtime = int(time.time())
            info.mode = 0o644
            import io

            tar.addfile(info, io.BytesIO(raw))
            for blob in plan.blobs:
                src = plan.sources[blob.name]
                with src.open("rb") as fp:
                    info = tarfile.TarInfo(PREFIX + "blobs/" + blob.name)
                    info.size = blob.size
                    info.mtime = int(time.time())
                    info.mode = 0o644
                    reader = _HashingReader(fp, blob)
                    tar.addfile(info, reader)  # type: ignore[arg-type,unused-ignore]
                    if reader.h.hexdigest() != blob.name:
                        raise CheckFailed(
                            f"cached blob {blob.name} is corrupt", "repair the cache with `hfa verify --fix` first"
                        )
                    if on_bytes:
                        on_bytes(blob.size)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return plan


# -- import ------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    repos: list[str]
    imported: int = 0  # blobs written
    present: int = 0  # blobs already in the cache
    bytes_imported: int = 0
    links: int = 0
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "repos": self.repos,
            "blobs_imported": self.imported,
            "blobs_present": self.present,
            "bytes_imported": self.bytes_imported,
            "links_created": self.links,
            "elapsed_seconds": round(self.elapsed, 3),
        }


def _read_manifest(tar: tarfile.TarFile) -> tuple[Lock, dict[str, BlobEntry]]:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise BundleRefused(f"the first member must be {MANIFEST}")
    if not first.isreg() or first.size > MAX_MANIFEST:
        raise BundleRefused("the manifest is not a regular file of sane size")
    fp = tar.extractfile(first)
    assert fp is not None
    try:
        doc = json.loads(fp.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleRefused("the manifest is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleRefused("this is not an hfa bundle")
    if doc.get("version") != VERSION:
        raise BundleRefused(f"bundle version {doc.get('version')!r}; this hfa reads version {VERSION}")
    try:
        lock = lockfile.loads(str(doc.get("lock", "")), "the bundle's lock")
    except UsageError as exc:
        raise BundleRefused(str(exc)) from None
    listed: dict[str, BlobEntry] = {}
    for item in doc.get("blobs") or []:
        if not isinstance(item, dict):
            raise BundleRefused("a manifest blob entry is not an object")
        name, size = item.get("name"), item.get("size")
        if not isinstance(name, str) or not (SHA256_RE.match(name) or SHA1_RE.match(name)):
            raise BundleRefused(f"the manifest lists an invalid blob name {name!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleRefused(f"the manifest lists blob {name} with an invalid size")
        if name in listed:
            raise BundleRefused(f"the manifest lists blob {name} twice")
        listed[name] = BlobEntry(name, size)
    needed = {b.name: b for b in blobs_of(lock)}
    if needed != listed:
        raise BundleRefused("the manifest's blob list does not match its lock")
    return lock, listed


def _staging(cache_dir: Path) -> Path:
    return cache_dir / ".hfa-import"


def import_bundle(cache_dir: Path, path: Path, *, on_bytes: Callable[[int], None] | None = None) -> ImportResult:
    from filelock import FileLock

    started = time.monotonic()
    if not path.is_file():
        raise UsageError(f"No bundle at {path}", "give the .tar file `hfa export` wrote")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # One import at a time per cache; whatever a killed import left in staging is wiped first.
    with FileLock(str(cache_dir / ".hfa-import.lock")):
        shutil.rmtree(_staging(cache_dir), ignore_errors=True)
        try:
            return _import(cache_dir, path, started, on_bytes)
        finally:
            shutil.rmtree(_staging(cache_dir), ignore_errors=True)


def _import(cache_dir: Path, path: Path, started: float, on_bytes: Callable[[int], None] | None) -> ImportResult:
    staging = _staging(cache_dir)
    staged: dict[str, Path] = {}
    try:
        # A stream: members in order, no seeking, no listing up front.
        with tarfile.open(path, "r|") as tar:
            lock, listed = _read_manifest(tar)
            owners = _owners(cache_dir, lock)
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                name = member.name
                if not name.startswith(PREFIX + "blobs/") or name.count("/") != 2:
                    raise BundleRefused(f"unexpected member {name!r}")
                blob_name = name.rsplit("/", 1)[1]
                blob = listed.get(blob_name)
                if blob is None:
                    raise BundleRefused(f"member {name!r} is not in the manifest")
                if not member.isreg():
                    raise BundleRefused(f"member {name!r} is not a regular file (link or device)")
                if blob_name in seen:
                    raise BundleRefused(f"member {name!r} appears twice")
                seen.add(blob_name)
                if member.size != blob.size:
                    raise BundleRefused(f"member {name!r} has {member.size} bytes; the manifest says {blob.size}")
                if all(w.has_blob(blob.name, blob.size) for w in owners[blob.name]):
                    continue  # already in every repo that uses it: a no-op
                fp = tar.extractfile(member)
                assert fp is not None
                staging.mkdir(parents=True, exist_ok=True)
                target = staging / blob.name
                h = _hasher(blob)
                with target.open("wb") as out:
                    while chunk := fp.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
                if h.hexdigest() != blob.name:
                    raise BundleRefused(f"member {name!r} does not match its {blob.algo}")
                staged[blob.name] = target
            missing = sorted(set(listed) - seen)
            if missing:
                raise BundleRefused(f"{len(missing)} blob(s) listed in the manifest are missing (truncated?)")
        result = _publish(cache_dir, lock, staged, owners)
    except (tarfile.TarError, EOFError) as exc:
        raise BundleRefused(f"the tar is damaged or truncated ({exc})") from None
    result.elapsed = time.monotonic() - started
    return result


def _owners(cache_dir: Path, lock: Lock) -> dict[str, list[CacheWriter]]:
    owners: dict[str, list[CacheWriter]] = {}
    for entry in lock.repos:
        writer = CacheWriter(cache_dir, entry.repo_type, entry.repo_id)
        for f in entry.files:
            lst = owners.setdefault(f.digest, [])
            if all(w.repo != writer.repo for w in lst):
                lst.append(writer)
    return owners


def _publish(
    cache_dir: Path, lock: Lock, staged: dict[str, Path], owners: dict[str, list[CacheWriter]]
) -> ImportResult:
    """Every blob is verified by now: rename (or link) them into place, then snapshots, then refs."""
    result = ImportResult(repos=[RepoDir(cache_dir, r.repo_type, r.repo_id).path.name for r in lock.repos])
    for name, src in sorted(staged.items()):
        size = src.stat().st_size
        placed = False
        for writer in owners[name]:
            if writer.has_blob(name, size):
                continue
            dest = writer.blob_path(name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with writer.lock(name):
                if writer.has_blob(name, size):
                    continue
                tmp = dest.with_name(f".{name}.import")
                if not placed:
                    os.replace(src, tmp)
                    src = dest  # later owners link to (or copy) the published one
                    placed = True
                else:
                    try:
                        os.link(src, tmp)
                    except OSError:
                        shutil.copyfile(src, tmp)
                os.replace(tmp, dest)
        result.imported += 1
        result.bytes_imported += size
    result.present = len({f.digest for r in lock.repos for f in r.files}) - result.imported
    for entry in lock.repos:
        writer = CacheWriter(cache_dir, entry.repo_type, entry.repo_id)
        for f in entry.files:
            etag = f.digest
            if not writer.linked_ok(entry.commit, f.path, etag, f.size):
                writer.link(entry.commit, f.path, etag)
                result.links += 1
        writer.repo.snapshot(entry.commit).mkdir(parents=True, exist_ok=True)
        if entry.revision != entry.commit:
            writer.write_ref(entry.revision, entry.commit)
    return result


def bundle_lock_text(path: Path) -> str:
    """The lock a bundle carries (for `hfa import --write-lock`)."""
    with tarfile.open(path, "r|") as tar:
        lock, _ = _read_manifest(tar)
    return lockfile.dumps(lock)


def write_lock(path: Path, text: str) -> None:
    atomic_write_text(path, text)
