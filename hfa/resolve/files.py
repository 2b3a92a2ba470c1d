"""What a revision resolves to: the files of one commit as the Hub lists them (:class:`RemoteFile`,
checked when they come from a server) and the repository at that commit (:class:`Resolved`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfa.cache.hashing import SHA1_RE, SHA256_RE
from hfa.cache.layout import check_relpath
from hfa.errors import CheckFailed, UsageError
from hfa.resolve.refs import RepoRef


@dataclass(frozen=True)
class RemoteFile:
    """One file of a commit as the Hub lists it: path, size and content hash."""

    path: str
    size: int
    blob_id: str  # git sha1 of what git stores (for LFS files: of the pointer)
    lfs_sha256: str | None = None

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None

    @property
    def etag(self) -> str:
        """The blob name in the huggingface_hub cache."""
        return self.lfs_sha256 or self.blob_id

    @property
    def hash_algo(self) -> str:
        return "sha256" if self.lfs_sha256 else "git-sha1"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path, "size": self.size, "blob_id": self.blob_id}
        if self.lfs_sha256:
            doc["lfs_sha256"] = self.lfs_sha256
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RemoteFile:
        return cls.checked(str(doc["path"]), int(doc["size"]), str(doc["blob_id"]), doc.get("lfs_sha256"))

    @classmethod
    def checked(cls, path: str, size: Any, blob_id: Any, lfs_sha256: Any = None) -> RemoteFile:
        """Build from untrusted data (a server's answer): refuse unsafe paths and bad hashes."""
        if not isinstance(path, str):
            raise CheckFailed(f"The server listed a path that is not a string: {path!r:.80}", "check --endpoint")
        try:
            check_relpath(path)
        except UsageError:
            raise CheckFailed(
                f"The server listed an unsafe path '{path}'", "refusing to write outside the cache; check --endpoint"
            ) from None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise CheckFailed(f"The server listed '{path}' with an invalid size {size!r}", "check --endpoint")
        if not isinstance(blob_id, str) or not SHA1_RE.fullmatch(blob_id):
            raise CheckFailed(f"The server listed '{path}' with an invalid blob id {blob_id!r}", "check --endpoint")
        if lfs_sha256 is not None and (not isinstance(lfs_sha256, str) or not SHA256_RE.fullmatch(lfs_sha256)):
            raise CheckFailed(f"The server listed '{path}' with an invalid sha256 {lfs_sha256!r}", "check --endpoint")
        return cls(path, size, blob_id, lfs_sha256)


@dataclass
class Resolved:
    """A repository at one commit: the full file list and what the Hub says about it."""

    ref: RepoRef
    commit: str
    files: dict[str, RemoteFile]
    card_data: dict[str, Any] = field(default_factory=dict)
    gated: str | bool = False
    private: bool = False
    source: str = "online"  # or "cache"
