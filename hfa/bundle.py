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

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from hfa import __version__, jsonsafe
from hfa.cache.hashing import SHA1_RE, SHA256_RE
from hfa.cache.layout import RepoDir, atomic_write_text, check_ref_name, check_relpath
from hfa.errors import CheckFailed, LocalError, UsageError
from hfa.lock import lockfile
from hfa.lock.lockfile import Lock, LockedFile, LockedRepo
from hfa.store import LocalStore

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
    from hfa.resolve.resolver import resolve_offline
    from hfa.resolve.selection import SelectOptions

    lock = Lock()
    for ref in specs:
        resolved, _complete = resolve_offline(cache_dir, ref)
        writer = LocalStore(cache_dir, ref.repo_type, ref.repo_id)
        files = tuple(
            sorted(
                LockedFile.from_remote(f)
                for f in resolved.files.values()
                if writer.linked(resolved.commit, f.path, f.etag, f.size)
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
        writer = LocalStore(cache_dir, entry.repo_type, entry.repo_id)
        for f in entry.files:
            remote = f.to_remote()
            if writer.has(remote.etag, f.size):
                plan.sources.setdefault(remote.etag, writer.path(remote.etag))
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
    present: int = 0  # blobs already in the cache, hash-checked
    repaired: int = 0  # of the blobs written, those that replaced a corrupt cached copy
    bytes_imported: int = 0
    links: int = 0
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "repos": self.repos,
            "blobs_imported": self.imported,
            "blobs_present": self.present,
            "blobs_repaired": self.repaired,
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
        doc = jsonsafe.loads(fp.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleRefused(f"the manifest is not valid JSON ({exc})") from None
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


STAGING = ".hfa-import"
FREE_MARGIN = 64 * 1024 * 1024  # left free on the cache's file system after an import


def _remove_staging(staging: Path) -> None:
    """Remove what a killed import left; a planted link or file is unlinked, never followed."""
    try:
        st = os.lstat(staging)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(staging)  # does not follow links inside, and refuses a link swapped in
    else:
        os.unlink(staging)


def _fresh_staging(cache_dir: Path) -> Path:
    """A new, empty, private staging folder inside the cache (created here, so never a link)."""
    staging = cache_dir / STAGING
    _remove_staging(staging)
    os.mkdir(staging, 0o700)
    return staging


def import_bundle(cache_dir: Path, path: Path, *, on_bytes: Callable[[int], None] | None = None) -> ImportResult:
    from filelock import FileLock

    started = time.monotonic()
    if not path.is_file():
        raise UsageError(f"No bundle at {path}", "give the .tar file `hfa export` wrote")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # One import at a time per cache; whatever a killed import left in staging is wiped first.
    with FileLock(str(cache_dir / ".hfa-import.lock")):
        try:
            return _import(cache_dir, path, started, on_bytes)
        finally:
            with contextlib.suppress(OSError):
                _remove_staging(cache_dir / STAGING)


@dataclass
class _Staged:
    path: Path
    writers: list[LocalStore]  # the repos whose copy is missing or corrupt
    repaired: bool  # a corrupt copy of the same size was in the cache


def _import(cache_dir: Path, path: Path, started: float, on_bytes: Callable[[int], None] | None) -> ImportResult:
    staged: dict[str, _Staged] = {}
    try:
        # A stream: members in order, no seeking, no listing up front.
        with tarfile.open(path, "r|") as tar:
            lock, listed = _read_manifest(tar)
            check_layout(cache_dir, lock)  # the whole manifest, before anything is written
            owners = _owners(cache_dir, lock)
            _check_space(cache_dir, path, listed, owners)
            staging = _fresh_staging(cache_dir)
            intact = _IntactBlobs()
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                blob = _check_member(member, listed, seen)
                writers = [w for w in owners[blob.name] if not intact(w, blob)]
                if not writers:
                    continue  # already in every repo that uses it, verified: a no-op
                repaired = any(w.has(blob.name, blob.size) for w in writers)
                staged[blob.name] = _Staged(_stage(tar, member, blob, staging, on_bytes), writers, repaired)
            missing = sorted(set(listed) - seen)
            if missing:
                raise BundleRefused(f"{len(missing)} blob(s) listed in the manifest are missing (truncated?)")
        result = _publish(cache_dir, lock, staged)
    except (tarfile.TarError, EOFError) as exc:
        raise BundleRefused(f"the tar is damaged or truncated ({exc})") from None
    result.elapsed = time.monotonic() - started
    return result


def _is_sparse(member: tarfile.TarInfo) -> bool:
    return (
        member.issparse()
        or member.type == tarfile.GNUTYPE_SPARSE
        or any(k.startswith("GNU.sparse.") for k in member.pax_headers)
    )


def _check_member(member: tarfile.TarInfo, listed: dict[str, BlobEntry], seen: set[str]) -> BlobEntry:
    """The manifest entry a member carries, or a refusal; nothing about it has been written yet."""
    name = member.name
    if not name.startswith(PREFIX + "blobs/") or name.count("/") != 2:
        raise BundleRefused(f"unexpected member {name!r}")
    blob_name = name.rsplit("/", 1)[1]
    blob = listed.get(blob_name)
    if blob is None:
        raise BundleRefused(f"member {name!r} is not in the manifest")
    if _is_sparse(member):  # its holes would be written out as zeros: a few KB can declare terabytes
        raise BundleRefused(f"member {name!r} is a sparse file; bundles carry blobs whole")
    if not member.isreg():
        raise BundleRefused(f"member {name!r} is not a regular file (link or device)")
    if blob_name in seen:
        raise BundleRefused(f"member {name!r} appears twice")
    seen.add(blob_name)
    if member.size != blob.size:
        raise BundleRefused(f"member {name!r} has {member.size} bytes; the manifest says {blob.size}")
    return blob


def _stage(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    blob: BlobEntry,
    staging: Path,
    on_bytes: Callable[[int], None] | None,
) -> Path:
    """Copy one member into staging (a new file, never through a link), hashing it; refuse a mismatch."""
    fp = tar.extractfile(member)
    assert fp is not None
    target = staging / blob.name
    # 0o666: the umask applies, as open() gives (the staging folder itself is 0700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    h = _hasher(blob)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while written < blob.size and (chunk := fp.read(min(CHUNK, blob.size - written))):
            h.update(chunk)
            out.write(chunk)
            written += len(chunk)
            if on_bytes:
                on_bytes(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if written != blob.size or h.hexdigest() != blob.name:
        raise BundleRefused(f"member {member.name!r} does not match its {blob.algo}")
    return target


class _IntactBlobs:
    """Whether a repo's cached copy of a blob has the right size and hash (each file hashed once)."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int], bool] = {}

    def __call__(self, writer: LocalStore, blob: BlobEntry) -> bool:
        try:
            fd = os.open(
                writer.path(blob.name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            )
        except OSError:
            return False
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != blob.size:  # judged before a file object refuses a folder
            os.close(fd)
            return False
        with os.fdopen(fd, "rb") as fp:
            key = (st.st_dev, st.st_ino)
            if key not in self._memo:
                h = _hasher(blob)
                while chunk := fp.read(CHUNK):
                    h.update(chunk)
                self._memo[key] = h.hexdigest() == blob.name
            return self._memo[key]


def _check_space(
    cache_dir: Path, path: Path, listed: dict[str, BlobEntry], owners: dict[str, list[LocalStore]]
) -> None:
    """Refuse a manifest that declares more than the tar can hold, and an import the disk cannot take."""
    declared = sum(b.size for b in listed.values())
    if declared > path.stat().st_size:  # sparse members are refused, so every byte is in the tar
        raise BundleRefused(f"the manifest declares {declared} bytes of blobs but the bundle has {path.stat().st_size}")
    needed = sum(b.size for b in listed.values() if not all(w.has(b.name, b.size) for w in owners[b.name]))
    free = shutil.disk_usage(cache_dir).free
    if needed + FREE_MARGIN > free:
        raise LocalError(
            f"Not enough free space in {cache_dir}: the import writes {needed} bytes, {free} are free",
            "free some space or import into another --cache-dir",
        )


def check_layout(cache_dir: Path, lock: Lock) -> None:
    """Everything publishing will create must be creatable: refuse contradictions up front.

    The lock must not name a path both as a file and as a folder, nor a revision that is not a
    plain ref name; the cache must not hold, where a link, folder or ref goes, something that
    cannot be replaced (a folder where a link goes, a file where a folder goes, a linked folder).
    """
    for entry in lock.repos:
        try:
            check_relpath(entry.revision)
            check_ref_name(entry.revision)
        except UsageError:
            raise BundleRefused(f"{entry.display}: revision {entry.revision!r} is not a valid ref name") from None
        paths = {f.path for f in entry.files}
        for p in sorted(paths):
            parent = p.rpartition("/")[0]
            while parent:
                if parent in paths:
                    raise BundleRefused(f"{entry.display}: '{parent}' is both a file and a folder ('{p}')")
                parent = parent.rpartition("/")[0]
        repo = RepoDir(cache_dir, entry.repo_type, entry.repo_id)
        for folder in (repo.path, repo.blobs, repo.snapshots, repo.refs, repo.snapshot(entry.commit)):
            _must_be_folder(folder, entry.display)
        for p in paths:
            _check_slot(repo.snapshot(entry.commit), p, entry.display)
        if entry.revision != entry.commit:
            _check_slot(repo.refs, entry.revision, entry.display)


def _must_be_folder(path: Path, display: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise LocalError(f"{display}: {path} is a link or a file, not a folder", "move it away, then import again")


def _check_slot(root: Path, relpath: str, display: str) -> None:
    """Every folder on the way to ``root/relpath`` is a real folder (or absent); the entry is not a folder."""
    parts = relpath.split("/")
    for i in range(1, len(parts)):
        _must_be_folder(root.joinpath(*parts[:i]), display)
    leaf = root.joinpath(*parts)
    try:
        st = os.lstat(leaf)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise LocalError(f"{display}: {leaf} is a folder where a file goes", "move it away, then import again")


def _owners(cache_dir: Path, lock: Lock) -> dict[str, list[LocalStore]]:
    owners: dict[str, list[LocalStore]] = {}
    for entry in lock.repos:
        writer = LocalStore(cache_dir, entry.repo_type, entry.repo_id)
        for f in entry.files:
            lst = owners.setdefault(f.digest, [])
            if all(w.repo != writer.repo for w in lst):
                lst.append(writer)
    return owners


def _publish(cache_dir: Path, lock: Lock, staged: dict[str, _Staged]) -> ImportResult:
    """Every blob is verified by now: rename (or link) them into place, then snapshots, then refs."""
    result = ImportResult(repos=[RepoDir(cache_dir, r.repo_type, r.repo_id).path.name for r in lock.repos])
    for name, item in sorted(staged.items()):
        src = item.path
        size = src.stat().st_size
        placed = False
        for writer in item.writers:  # each lacked the blob or held a corrupt copy: replace it
            with writer.lock(name):
                # the first owner takes the staged file; later owners link to (or copy) the published one
                src = writer.publish(name, src, keep_source=placed)
                placed = True
        result.imported += 1
        result.repaired += item.repaired
        result.bytes_imported += size
    result.present = len({f.digest for r in lock.repos for f in r.files}) - result.imported
    for entry in lock.repos:
        writer = LocalStore(cache_dir, entry.repo_type, entry.repo_id)
        for f in entry.files:
            etag = f.digest
            if not writer.linked(entry.commit, f.path, etag, f.size):
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
