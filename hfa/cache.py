"""The huggingface_hub cache layout: ``<cache>/models--org--name/{blobs,snapshots,refs}``.

This module knows names and paths; it never touches the network. Every path it
builds from outside input goes through :func:`safe_join`, which refuses to leave
its root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hfa.errors import UsageError

REPO_TYPES = ("model", "dataset", "space")
_PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
_SINGULAR = {v: k for k, v in _PLURAL.items()}
REPO_ID_RE = re.compile(r"^(?:[A-Za-z0-9][\w.\-]{0,95}/)?[A-Za-z0-9][\w.\-]{0,95}$")
HFA_META = ".hfa.json"  # optional per-repo sidecar (tags, counters); ignored by huggingface_hub


def plural(repo_type: str) -> str:
    return _PLURAL[repo_type]


def singular(plural_name: str) -> str | None:
    return _SINGULAR.get(plural_name)


def validate_repo_id(repo_id: str) -> str:
    if not REPO_ID_RE.match(repo_id) or ".." in repo_id or "--" in repo_id:
        raise UsageError(
            f"Invalid repository id '{repo_id}'",
            "use 'name' or 'org/name' with letters, digits, '-', '_' and '.'",
        )
    return repo_id


def repo_folder_name(repo_id: str, repo_type: str = "model") -> str:
    """``models--org--name``, exactly as huggingface_hub names it."""
    return "--".join([plural(repo_type), *repo_id.split("/")])


def parse_repo_folder(name: str) -> tuple[str, str] | None:
    """``models--org--name`` -> (``model``, ``org/name``); None for anything else."""
    parts = name.split("--")
    if len(parts) < 2 or singular(parts[0]) is None:
        return None
    repo_type = singular(parts[0])
    repo_id = "/".join(parts[1:])
    if not REPO_ID_RE.match(repo_id):
        return None
    return repo_type, repo_id  # type: ignore[return-value]


def check_relpath(path: str) -> PurePosixPath:
    """A repository-relative POSIX path that cannot escape: no '..', no absolute, no odd separators."""
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or re.match(r"^[A-Za-z]:", path)
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise UsageError(f"Refusing unsafe path '{path}'", "repository paths must be relative, without '..'")
    return PurePosixPath(path)


def safe_join(root: Path, relpath: str) -> Path:
    """``root/relpath``, refusing anything that would resolve outside ``root``."""
    rel = check_relpath(relpath)
    candidate = root.joinpath(*rel.parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(candidate)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UsageError(f"Refusing path '{relpath}' that leaves {root}", "remove the link or the '..'")
    return candidate


@dataclass(frozen=True)
class RepoDir:
    """One repository folder of the cache."""

    cache_dir: Path
    repo_type: str
    repo_id: str

    @property
    def path(self) -> Path:
        return self.cache_dir / repo_folder_name(self.repo_id, self.repo_type)

    @property
    def blobs(self) -> Path:
        return self.path / "blobs"

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @property
    def refs(self) -> Path:
        return self.path / "refs"

    def snapshot(self, commit: str) -> Path:
        return self.snapshots / commit

    def read_ref(self, name: str) -> str | None:
        try:
            ref_path = safe_join(self.refs, name)
        except UsageError:
            return None
        try:
            value = ref_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return value or None

    def list_refs(self) -> dict[str, str]:
        """Every ref name (``main``, ``v1.0``, ``refs/pr/1``) -> commit."""
        out: dict[str, str] = {}
        if not self.refs.is_dir():
            return out
        for dirpath, _dirs, files in os.walk(self.refs):
            for name in files:
                full = Path(dirpath) / name
                rel = full.relative_to(self.refs).as_posix()
                value = self.read_ref(rel)
                if value:
                    out[rel] = value
        return out

    def list_commits(self) -> list[str]:
        if not self.snapshots.is_dir():
            return []
        return sorted(p.name for p in self.snapshots.iterdir() if p.is_dir())


def iter_repos(cache_dir: Path) -> list[RepoDir]:
    """Every repository folder in a cache, sorted by type then id."""
    repos: list[RepoDir] = []
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return repos
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        parsed = parse_repo_folder(entry.name)
        if parsed is None:
            continue
        repos.append(RepoDir(cache_dir, parsed[0], parsed[1]))
    repos.sort(key=lambda r: (r.repo_type, r.repo_id.lower()))
    return repos
