"""``hfa serve --store s3://BUCKET/PREFIX``: repositories served from a bucket written by ``hfa push``.

:class:`BucketStore` answers what the request handler asks of a store (as
:class:`~hfa.server.store.CacheStore` does from a cache) from the bucket alone, with no local state:
several replicas behind a load balancer share one bucket. Repos are the ``card.json`` keys under
``repos/``; refs the ``refs/<revision>`` objects; a commit's file list, sizes, hashes and card data its
manifest (:mod:`hfa.store.s3` has the layout). Manifests are immutable and kept in memory (bounded);
listings and refs for :data:`TTL` seconds, so a push shows within that time on every replica.

A file is either streamed through the server or, with ``redirect``, answered by a 302 to a presigned
URL of its blob. Streamed bytes are hashed as they pass (sha256 for LFS files, git-sha1 otherwise):
the last chunk is held back until the whole object has been read and matched its hash and size, so
a tampered or truncated object never reaches a client whole: the server logs it and stops short of
the ``Content-Length``, the engine closes the connection, and the client fails (its partial file is
dropped). A ``Range`` still reads and hashes the whole object, sending only the part asked for.
With ``redirect`` the bytes go from the bucket to the client and the server never sees them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from hfa.cache.hashing import COMMIT_RE
from hfa.errors import HfaError
from hfa.resolve.refs import RepoRef
from hfa.server.downloads import verified_body
from hfa.server.store import FileEntry, Repo, Snapshot
from hfa.server.wire import HttpError
from hfa.store.s3 import SMALL_LIMIT, S3Store, parse_s3_url, s3_error

__all__ = ["TTL", "BucketStore"]

log = logging.getLogger("hfa.serve")

TTL = 10.0  # seconds listings and refs are reused before the bucket is asked again
MAX_MANIFESTS = 1024  # commit file lists kept in memory
MAX_LISTED = 1_000_000  # keys listed at most per listing
PRESIGN_SECONDS = 3600  # how long a redirect URL stays valid
_EPOCH = "1970-01-01T00:00:00.000Z"


def _unavailable(err: HfaError) -> HttpError:
    return HttpError(502, f"the store did not answer: {err.message}")


class BucketStore:
    """A bucket prefix (``s3://BUCKET/PREFIX``) as the server's store. Thread-safe, read-only."""

    def __init__(self, url: str, *, redirect: bool = False, s3: S3Store | None = None) -> None:
        self.s3 = s3 or S3Store(parse_s3_url(url))
        self.redirect = redirect
        self.downloads: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._timed: dict[Any, tuple[float, Any]] = {}
        self._manifests: OrderedDict[tuple[str, str, str], Snapshot | None] = OrderedDict()

    def forget(self, repo_type: str, repo_id: str) -> None:
        """Drop what this replica remembers of the repo's listing, refs and commits (it was just written)."""
        with self._lock:
            for key in (("repos", repo_type), ("refs", repo_type, repo_id), ("commits", repo_type, repo_id)):
                self._timed.pop(key, None)
            self._timed.pop(("card", repo_type, repo_id), None)

    def check(self) -> None:
        """Reach the bucket once (HfaError with the fix if it cannot be read): ``hfa serve`` calls it at start."""
        self._list_repos("model", fresh=True)

    # -- caching -----------------------------------------------------------------
    def _cached(self, key: Any, make: Any, fresh: bool = False) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._timed.get(key)
        if hit and not fresh and now - hit[0] < TTL:
            return hit[1]
        try:
            value = make()
        except HfaError as err:
            if fresh:
                raise
            raise _unavailable(err) from None
        with self._lock:
            if len(self._timed) > 100_000:
                self._timed.clear()
            self._timed[key] = (now, value)
        return value

    def _list(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, relative to it (bounded)."""
        keys: list[str] = []
        try:
            pages = self.s3.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.s3.location.bucket, Prefix=prefix
            )
            for page in pages:
                self.s3.requests_made += 1
                keys += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
                if len(keys) >= MAX_LISTED:
                    log.warning("more than %d keys under %s: the rest are not served", MAX_LISTED, prefix)
                    break
        except HfaError:
            raise
        except Exception as exc:
            raise s3_error(exc, f"{self.s3.location.url} ({prefix})") from None
        return keys

    # -- repositories --------------------------------------------------------------
    def _list_repos(self, repo_type: str, fresh: bool = False) -> list[str]:
        prefix = self.s3.key("repos", f"{repo_type}s") + "/"

        def make() -> list[str]:
            ids = []
            for rel in self._list(prefix):
                parts = rel.split("/")
                if parts[-1] == "card.json" and len(parts) in (2, 3) and "refs" not in parts[:-1]:
                    ids.append("/".join(parts[:-1]))
            return sorted(ids)

        return list(self._cached(("repos", repo_type), make, fresh))

    def repos(self, repo_type: str | None = None) -> list[Repo]:
        types = [repo_type] if repo_type else ["model", "dataset", "space"]
        return [Repo(t, rid) for t in types for rid in self._list_repos(t)]

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return repo_id in self._list_repos(repo_type)

    def repo(self, repo_type: str, repo_id: str) -> Repo | None:
        return Repo(repo_type, repo_id) if self.exists(repo_type, repo_id) else None

    def count_download(self, repo: Repo) -> None:
        key = (repo.repo_type, repo.repo_id)
        with self._lock:
            self.downloads[key] = self.downloads.get(key, 0) + 1

    def download_count(self, repo: Repo) -> int:
        return self.downloads.get((repo.repo_type, repo.repo_id), 0)

    # -- refs ------------------------------------------------------------------------
    def refs(self, repo: Repo) -> dict[str, str]:
        prefix = self.s3.repo_key(repo.repo_type, repo.repo_id, "refs") + "/"

        def make() -> dict[str, str]:
            out = {}
            for name in self._list(prefix):
                commit = self._read_ref(repo, name)
                if commit:
                    out[name] = commit
            return out

        return dict(self._cached(("refs", repo.repo_type, repo.repo_id), make))

    def _read_ref(self, repo: Repo, name: str) -> str | None:
        data = self.s3.get_bytes(
            self.s3.repo_key(repo.repo_type, repo.repo_id, "refs", name), limit=SMALL_LIMIT, missing_ok=True
        )
        commit = (data or b"").decode("ascii", "replace").strip()
        return commit if COMMIT_RE.fullmatch(commit) else None

    def commits(self, repo: Repo) -> list[str]:
        prefix = self.s3.repo_key(repo.repo_type, repo.repo_id, "commits") + "/"

        def make() -> list[str]:
            names = (rel.removesuffix(".json") for rel in self._list(prefix) if rel.endswith(".json"))
            return sorted(c for c in names if COMMIT_RE.fullmatch(c))

        return list(self._cached(("commits", repo.repo_type, repo.repo_id), make))

    def resolve(self, repo: Repo, revision: str) -> str | None:
        """Branch, tag, ``refs/heads/x``, ``refs/tags/x``, ``refs/pr/N`` or a commit -> commit (with a manifest)."""
        if COMMIT_RE.fullmatch(revision):
            return revision if self.snapshot(repo, revision) is not None else None
        if ".." in revision.split("/") or revision.startswith("/"):
            return None
        refs = self.refs(repo)
        for name in (revision, revision.removeprefix("refs/heads/"), revision.removeprefix("refs/tags/")):
            sha = refs.get(name)
            if sha and self.snapshot(repo, sha) is not None:
                return sha
        return None

    def default_commit(self, repo: Repo) -> str | None:
        sha = self.resolve(repo, "main")
        if sha:
            return sha
        card = self._cached(("card", repo.repo_type, repo.repo_id), lambda: self._read_card(repo))
        commit = card.get("commit") if isinstance(card, dict) else None
        return commit if isinstance(commit, str) and self.snapshot(repo, commit) is not None else None

    def _read_card(self, repo: Repo) -> dict[str, Any]:
        import json

        data = self.s3.get_bytes(
            self.s3.repo_key(repo.repo_type, repo.repo_id, "card.json"), limit=SMALL_LIMIT, missing_ok=True
        )
        try:
            doc = json.loads(data) if data else {}
        except (ValueError, RecursionError):
            doc = {}
        return doc if isinstance(doc, dict) else {}

    # -- snapshots -------------------------------------------------------------------
    def snapshot(self, repo: Repo, commit: str) -> Snapshot | None:
        if not COMMIT_RE.fullmatch(commit):
            return None
        key = (repo.repo_type, repo.repo_id, commit)
        with self._lock:
            if key in self._manifests:
                self._manifests.move_to_end(key)
                return self._manifests[key]
        snap = self._read_snapshot(repo, commit)
        if snap is None:
            return None  # not remembered: it may be pushed later
        with self._lock:
            self._manifests[key] = snap
            while len(self._manifests) > MAX_MANIFESTS:
                self._manifests.popitem(last=False)
        return snap

    def _read_snapshot(self, repo: Repo, commit: str) -> Snapshot | None:
        from hfa.errors import CheckFailed, RevisionNotFound
        from hfa.store.s3source import read_manifest

        bad_key = ("bad", repo.repo_type, repo.repo_id, commit)
        with self._lock:
            bad = self._timed.get(bad_key)
        if bad is not None and time.monotonic() - bad[0] < TTL:
            raise HttpError(502, bad[1].message)  # a damaged manifest is not read again (it may be big) before TTL
        ref = RepoRef(repo.repo_id, repo.repo_type, commit)
        try:
            resolved = read_manifest(self.s3, ref, commit)
        except RevisionNotFound:
            return None
        except CheckFailed as err:  # a manifest that is too big, not JSON, or lists unsafe paths or bad hashes
            log.warning("%s@%s in %s: %s", repo.repo_id, commit[:12], self.s3.location.url, err.message)
            damaged = HttpError(
                502,
                f"the store's manifest of {repo.repo_id}@{commit[:12]} is damaged ({err.message}); "
                f"push the repo again: hfa push --to {self.s3.location.url} {ref.display}",
            )
            with self._lock:
                self._timed[bad_key] = (time.monotonic(), damaged)
            raise damaged from None
        except HfaError as err:
            raise _unavailable(err) from None
        files = {f.path: FileEntry(f.path, f.size, None, f.blob_id, f.lfs_sha256) for f in resolved.files.values()}
        return Snapshot(commit=commit, files=files, date=_EPOCH, title="", card=dict(resolved.card_data or {}))

    def card_data(self, snap: Snapshot | None) -> dict[str, Any]:
        from hfa.server.store import jsonable

        return jsonable(snap.card, ()) if snap is not None and snap.card else {}

    # -- file bodies -------------------------------------------------------------------
    def blob_url(self, entry: FileEntry, path: str) -> str | None:
        if not self.redirect:
            return None
        try:
            url: str = self.s3.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.s3.location.bucket, "Key": self.s3.blob_key(entry.etag)},
                ExpiresIn=PRESIGN_SECONDS,
            )
        except Exception as exc:
            raise _unavailable(s3_error(exc, f"blob {entry.etag}")) from None
        return url

    def open_file(
        self, environ: dict[str, Any], entry: FileEntry, path: str, snap: Snapshot, start: int, length: int
    ) -> Iterable[bytes]:
        if length == 0:
            return [b""]
        try:
            body = self.s3.open_blob(entry.etag)
        except HfaError as err:
            raise HttpError(502, f"cannot read '{path}' from the store: {err.message}") from None
        url = self.s3.location.url

        def failed(what: str, exc: BaseException | None) -> None:
            if exc is not None:
                log.error(
                    "reading '%s' of %s@%s from %s failed: %s; the download was cut",
                    path, snap.commit[:12], entry.etag, url, s3_error(exc, "").message,
                )  # fmt: skip
            else:
                log.error(
                    "refused '%s' (commit %s): %s in %s; the object was changed or cut in the bucket; the download"
                    " was cut short. Push it again from a verified cache: hfa push --to %s",
                    path, snap.commit[:12], what, url, url,
                )  # fmt: skip

        return verified_body(body, entry, start, length, failed)
