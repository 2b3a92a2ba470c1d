"""A bucket written by ``hfa push`` as a :class:`~hfa.resolve.source.Source`: ``hfa pull --from s3://...``.

GPU nodes that reach object storage but not the Hub fill their cache from the bucket alone:
refs and manifests say what a revision is, blobs are streamed into the local store's partial
file and hashed as they arrive (sha256 for LFS files, git-sha1 otherwise). Only bytes of the
listed size and digest are published; a tampered or truncated object is a
:class:`~hfa.hub.download.HashMismatch` and the partial file is removed, so nothing of it
enters the cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from hfa.cache.hashing import SHA1_RE
from hfa.cache.layout import check_ref_name
from hfa.errors import CheckFailed, HfaError, NotFound, RevisionNotFound
from hfa.hub.download import FetchOutcome, HashMismatch, expected_digest, new_hasher, verify_bytes
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef
from hfa.store.s3 import MANIFEST_LIMIT, SMALL_LIMIT, S3Store, s3_error

if TYPE_CHECKING:
    from hfa.resolve.source import FetchOptions, Source
    from hfa.store import BlobStore

__all__ = ["S3Fetcher", "S3Source", "read_manifest"]

CHUNK = 1 << 20
SMALL_FILE_LIMIT = 16 * 1024 * 1024  # an index or README read into memory (the Hub client's bound too)


def read_manifest(s3: S3Store, ref: RepoRef, commit: str) -> Resolved:
    """The manifest of ``commit`` of ``ref``'s repository, checked like a server's answer."""
    key = s3.repo_key(ref.repo_type, ref.repo_id, "commits", f"{commit}.json")
    data = s3.get_bytes(key, limit=MANIFEST_LIMIT, missing_ok=True)
    if data is None:
        raise RevisionNotFound(
            ref.repo_id,
            commit,
            message=f"commit {commit[:12]} of '{ref.display}' is not in {s3.location.url}",
            hint=f"push it first: `hfa push --to {s3.location.url} {RepoRef(ref.repo_id, ref.repo_type, commit).display}`",
        )
    bad = CheckFailed(f"the manifest {key} in {s3.location.url} is not an hfa manifest", "push the repo again")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise bad from None
    if not isinstance(doc, dict) or doc.get("commit") != commit or not isinstance(doc.get("files"), list):
        raise bad
    files: dict[str, RemoteFile] = {}
    for item in doc["files"]:
        if not isinstance(item, dict):
            raise bad
        f = RemoteFile.checked(item.get("path", ""), item.get("size"), item.get("blob_id"), item.get("lfs_sha256"))
        files[f.path] = f
    card = doc.get("card_data")
    return Resolved(ref=ref, commit=commit, files=files, card_data=card if isinstance(card, dict) else {}, source="s3")


class S3Source:
    """Answers from a bucket written by ``hfa push``; no Hub request is ever made."""

    offline = False

    def __init__(self, s3: S3Store, cache_dir: Path) -> None:
        self.s3 = s3
        self.cache_dir = cache_dir

    @property
    def requests_made(self) -> int:
        return self.s3.requests_made

    def commit_of(self, ref: RepoRef) -> str:
        if ref.pinned and ref.revision:
            return ref.revision
        revision = check_ref_name(ref.revision_or_default)  # it names a key: no '.', '..' or empty parts
        key = self.s3.repo_key(ref.repo_type, ref.repo_id, "refs", revision)
        data = self.s3.get_bytes(key, limit=SMALL_LIMIT, missing_ok=True)
        if data is None:
            raise RevisionNotFound(
                ref.repo_id,
                revision,
                message=f"'{ref.display}' (revision '{revision}') is not in {self.s3.location.url}",
                hint=f"push it first: `hfa push --to {self.s3.location.url} {ref.display}`",
            )
        commit = data.decode("ascii", "replace").strip()
        if not SHA1_RE.fullmatch(commit):
            raise CheckFailed(f"the ref {key} in {self.s3.location.url} is not a commit", "push the repo again")
        return commit

    def resolve(self, ref: RepoRef) -> tuple[Resolved, bool]:
        return read_manifest(self.s3, ref, self.commit_of(ref)), True

    def read_small(self, ref: RepoRef, resolved: Resolved, f: RemoteFile) -> bytes:
        from hfa.resolve.resolver import read_cached

        data = read_cached(self.cache_dir, ref, f)
        if data is None:
            if f.size > SMALL_FILE_LIMIT:  # as from the Hub (hfa.hub.client.OnlineHub.read_small)
                raise CheckFailed(f"'{f.path}' is larger than {SMALL_FILE_LIMIT} bytes", "it is not a small file")
            body = self.s3.open_blob(f.etag)
            try:
                data = body.read(f.size + 1)
            except Exception as exc:
                raise s3_error(exc, f"'{f.path}'") from None
            finally:
                body.close()
        verify_bytes(f, data)
        return data

    def fetcher(self, store: BlobStore, ref: RepoRef, commit: str, options: FetchOptions) -> S3Fetcher:
        o = options  # a bucket has no ranges: on_big_file, on_prefix and connections do not apply
        return S3Fetcher(self.s3, store, o.named or ref, commit, o.retry, o.workers, o.on_bytes, o.on_file, o.inspect)


class S3Fetcher:
    """Streams blobs from the bucket into a local store, hashing every byte before it is published."""

    def __init__(
        self,
        s3: S3Store,
        store: BlobStore,
        ref: RepoRef,
        commit: str,
        retry: str,
        workers: int,
        on_bytes: Callable[[int], None] | None,
        on_file: Callable[[FetchOutcome], None] | None,
        inspect: Callable[[RemoteFile, Path], None] | None,
    ) -> None:
        self.s3 = s3
        self.store = store
        self.ref = ref
        self.commit = commit
        self.retry = retry
        self.workers = max(1, workers)
        self.on_bytes = on_bytes or (lambda n: None)
        self.on_file = on_file or (lambda o: None)
        self.inspect = inspect

    def check(self, files: list[RemoteFile]) -> None:
        missing = [f.path for f in files if self.s3.blob_size(f.etag) != f.size]
        if missing:
            raise self.missing(missing)

    def missing(self, paths: list[str]) -> CheckFailed:
        shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        return CheckFailed(
            f"{len(paths)} file(s) of '{self.ref.display}' ({self.commit[:12]}) are not in {self.s3.location.url}: {shown}",
            f"push them from a cache that holds them: `hfa push --to {self.s3.location.url}"
            f" {RepoRef(self.ref.repo_id, self.ref.repo_type, self.commit).display}` (after `hfa pull` there)",
            details={"repo": self.ref.display, "commit": self.commit, "missing": list(paths)},
        )

    def fetch_all(self, files: list[RemoteFile]) -> list[FetchOutcome]:
        if len(files) <= 1 or self.workers == 1:
            return [self.fetch_one(f) for f in files]
        with ThreadPoolExecutor(min(self.workers, len(files)), thread_name_prefix="hfa-s3") as pool:
            return list(pool.map(self.fetch_one, files))

    def fetch_one(self, f: RemoteFile) -> FetchOutcome:
        with self.store.lock(f.etag):
            if self.store.has(f.etag, f.size):
                self.store.link(self.commit, f.path, f.etag)
                outcome = FetchOutcome(f.path, f.etag, f.size, "cached", 0)
            else:
                partial = self.store.partial(f.etag)
                try:
                    self._receive(f, partial)
                    if self.inspect is not None:
                        self.inspect(f, partial)
                except BaseException:
                    partial.unlink(missing_ok=True)
                    raise
                self.store.publish(f.etag, partial)
                self.store.link(self.commit, f.path, f.etag)
                outcome = FetchOutcome(f.path, f.etag, f.size, "downloaded", f.size)
        self.on_file(outcome)
        return outcome

    def _receive(self, f: RemoteFile, partial: Path) -> None:
        try:
            body = self.s3.open_blob(f.etag)
        except NotFound:
            raise self.missing([f.path]) from None
        hasher = new_hasher(f)
        received = 0
        try:
            with partial.open("wb") as fp:
                while received <= f.size:
                    chunk = body.read(min(CHUNK, f.size + 1 - received))
                    if not chunk:
                        break
                    received += len(chunk)
                    hasher.update(chunk)
                    fp.write(chunk)
                    self.on_bytes(len(chunk))
        except HfaError:
            raise
        except Exception as exc:
            raise s3_error(exc, f"'{f.path}'") from None
        finally:
            body.close()
        if received != f.size or hasher.hexdigest() != expected_digest(f):
            how = f"{received} bytes instead of {f.size}" if received != f.size else f"another {f.hash_algo}"
            raise HashMismatch(
                f"'{f.path}' of '{self.ref.display}' in {self.s3.location.url} does not match its {f.hash_algo}"
                f" {expected_digest(f)} ({how}): the object was changed or cut in the bucket; nothing was written",
                f"push it again from a verified cache: `hfa push --to {self.s3.location.url} {self.ref.display}`",
                details={"path": f.path, "expected": expected_digest(f), "received_bytes": received},
            )


if TYPE_CHECKING:

    def _is_a_source(source: S3Source) -> Source:  # mypy checks S3Source against the Source protocol
        return source
