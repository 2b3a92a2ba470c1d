"""What a user names (``org/name@rev``, ``datasets/org/name``) and what a revision resolves to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hfa.cache.hashing import COMMIT_RE, SHA1_RE, SHA256_RE
from hfa.cache.layout import check_relpath, repo_folder_name, validate_repo_id
from hfa.errors import CheckFailed, UsageError

_TYPE_PREFIXES = {"datasets/": "dataset", "spaces/": "space", "models/": "model"}


@dataclass(frozen=True)
class RepoRef:
    """A repository and the revision the user asked for (None: the default branch)."""

    repo_id: str
    repo_type: str = "model"
    revision: str | None = None

    @classmethod
    def parse(cls, text: str, repo_type: str | None = None) -> RepoRef:
        """``org/name``, ``org/name@rev``, ``datasets/org/name@v1``; ``repo_type`` overrides the prefix."""
        raw = text.strip()
        if not raw:
            raise UsageError("Empty repository name", "give a repo id such as org/name or org/name@main")
        if "://" in raw:
            raise _url_given(raw)
        name, at, revision = raw.partition("@")
        detected = "model"
        for prefix, rtype in _TYPE_PREFIXES.items():
            if name.startswith(prefix):
                name, detected = name[len(prefix) :], rtype
                break
        if repo_type is not None and repo_type not in ("model", "dataset", "space"):
            raise UsageError(f"Unknown repo type '{repo_type}'", "use model, dataset or space")
        if at and not revision:
            raise UsageError(f"Empty revision in '{raw}'", "write org/name@main, org/name@v1.0 or org/name@<commit>")
        if revision and (revision.startswith("/") or ".." in revision.split("/") or "\\" in revision):
            raise UsageError(f"Invalid revision '{revision}'", "use a branch, a tag or a 40-character commit")
        return cls(validate_repo_id(name), repo_type or detected, revision or None)

    @classmethod
    def parse_spec(cls, text: str, repo_type: str | None = None) -> tuple[RepoRef, str | None]:
        """``REPO[@REV][:QUANT]`` (``org/x-GGUF:Q4_K_M``, as llama.cpp's ``-hf``): the ref and the quant, if any."""
        raw = text.strip()
        quant = None
        if ":" in raw and "://" not in raw:
            raw, _, quant = raw.rpartition(":")
            if not _QUANT_RE.fullmatch(quant):
                raise UsageError(
                    f"Invalid quantisation '{quant}' in '{text.strip()}'",
                    "write REPO:QUANT, e.g. org/model-GGUF:Q4_K_M",
                )
        return cls.parse(raw, repo_type), quant

    @property
    def revision_or_default(self) -> str:
        return self.revision or "main"

    @property
    def pinned(self) -> bool:
        return self.revision is not None and bool(COMMIT_RE.fullmatch(self.revision))

    @property
    def folder(self) -> str:
        return repo_folder_name(self.repo_id, self.repo_type)

    @property
    def display(self) -> str:
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"{prefix}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")

    def __str__(self) -> str:
        return self.display


_QUANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", re.ASCII)


def _url_given(raw: str) -> UsageError:
    """A URL pasted where a repo id belongs: the repo id to use instead."""
    from urllib.parse import unquote, urlsplit

    from hfa.config import DEFAULT_ENDPOINT, public_url

    try:
        parts = urlsplit(raw)
    except ValueError:
        return UsageError("A URL is not a repository id", "use org/name (add @REVISION for a branch, tag or commit)")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    prefix = ""
    if segments and segments[0] in ("models", "datasets", "spaces"):
        prefix = "" if segments[0] == "models" else segments[0] + "/"
        segments = segments[1:]
    repo = "/".join(segments[:2])
    rest = segments[2:]
    if len(rest) >= 2 and rest[0] in ("tree", "blob", "resolve", "commit") and rest[1] != "main":
        repo += f"@{rest[1]}"
    shown = public_url(raw)
    if not repo:
        return UsageError(f"'{shown}' is a URL, not a repository id", "use org/name")
    host = urlsplit(public_url(raw))._replace(path="", query="", fragment="").geturl()
    hint = f"use {prefix}{repo}"
    if host.rstrip("/") not in (DEFAULT_ENDPOINT, "https://hf.co", "https://www.huggingface.co"):
        hint += f", with --endpoint {host} if that is not already your endpoint"
    return UsageError(f"'{shown}' is a URL, not a repository id", hint)


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
