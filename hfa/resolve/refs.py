"""What a user names: ``org/name@rev``, ``datasets/org/name`` (a :class:`RepoRef`).

What a revision resolves to (:class:`~hfa.resolve.files.RemoteFile`, :class:`~hfa.resolve.files.Resolved`)
lives in :mod:`hfa.resolve.files`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hfa.cache.hashing import COMMIT_RE
from hfa.cache.layout import repo_folder_name, validate_repo_id
from hfa.errors import UsageError

_TYPE_PREFIXES = {"datasets/": "dataset", "spaces/": "space", "models/": "model"}


# Hub hosts a user may paste without a scheme (``hf.co/org/name``): never a repo id, whose org has no dot.
_HUB_HOSTS = ("hf.co/", "huggingface.co/", "www.huggingface.co/", "www.hf.co/")


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
        if raw.lower().startswith(_HUB_HOSTS):  # hf.co/org/name, pasted without its scheme
            raise _url_given("https://" + raw)
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
    def key(self) -> tuple[str, str]:
        """``(repo_id, repo_type)``: one repository whatever its revision (as a lock entry's ``key``)."""
        return (self.repo_id, self.repo_type)

    @property
    def display(self) -> str:
        prefix = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"{prefix}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")

    def __str__(self) -> str:
        return self.display


_QUANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", re.ASCII)


def _url_given(raw: str) -> UsageError:
    """A URL pasted where a repo id belongs: the repo id to use instead."""
    from urllib.parse import unquote, urlsplit, urlunsplit

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
    host = urlunsplit((*urlsplit(public_url(raw))[:2], "", "", ""))
    hint = f"use {prefix}{repo}"
    if host.rstrip("/") not in (DEFAULT_ENDPOINT, "https://hf.co", "https://www.huggingface.co"):
        hint += f", with --endpoint {host} if that is not already your endpoint"
    return UsageError(f"'{shown}' is a URL, not a repository id", hint)
