"""``hfa search --offline``: search what is here -- the cached repos' cards and the lock -- with no network.

Each cached repo is described by the card (README.md front matter) of its ``main`` snapshot, else
of its newest one: licence, task (``pipeline_tag``; a dataset's ``task_categories``), library,
tags and languages. A repo the lock names that the cache does not hold is listed by its id alone.
The query matches, case-insensitively, a part of the id, the licence, the task, the library or a
tag; the filters are exact, as the Hub's are. Gated is read from the card (``gated`` or an
``extra_gated_*`` key): the cache does not know what the Hub would say.

Also the cheap lists shell completion offers (:func:`cached_repo_ids`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.cache.layout import RepoDir, iter_repos
from hfa.lock.lockfile import Lock
from hfa.resolve.filters import NO_FILTERS, SearchFilters

__all__ = ["LocalRepo", "cached_repo_ids", "describe", "search_local"]

MAX_CARD = 4 * 1024 * 1024


@dataclass
class LocalRepo:
    repo_id: str
    repo_type: str
    license: str | None = None
    task: str | None = None
    library: str | None = None
    tags: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    gated: bool = False
    commit: str | None = None  # the snapshot the card was read from
    in_cache: bool = False
    locked: str | None = None  # the lock's revision, when the lock names it

    @property
    def label(self) -> str:
        return self.repo_id if self.repo_type == "model" else f"{self.repo_type}s/{self.repo_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.repo_id,
            "type": self.repo_type,
            "license": self.license,
            "task": self.task,
            "library": self.library,
            "tags": self.tags,
            "languages": self.languages,
            "gated": self.gated,
            "commit": self.commit,
            "in_cache": self.in_cache,
            "locked_revision": self.locked,
        }


def _card_commit(repo: RepoDir) -> str | None:
    commit = repo.read_ref("main")
    commits = repo.list_commits()
    if commit in commits:
        return commit
    if not commits:
        return None

    def mtime(c: str) -> float:
        try:
            return os.stat(repo.snapshot(c)).st_mtime
        except OSError:
            return 0.0

    return max(commits, key=lambda c: (mtime(c), c))


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v)]


def describe(repo: RepoDir) -> LocalRepo:
    """A cached repo as its card describes it (an empty description when there is no readable card)."""
    from hfa.cache.walk import snapshot_file
    from hfa.resolve.card import parse_card

    found = LocalRepo(repo.repo_id, repo.repo_type, in_cache=True)
    found.commit = _card_commit(repo)
    entry = snapshot_file(repo, found.commit, "README.md") if found.commit else None
    if entry is None or entry.real is None:
        return found
    try:
        with entry.real.open("rb") as fp:
            raw = fp.read(MAX_CARD + 1)
    except OSError:
        return found
    if len(raw) > MAX_CARD:
        return found
    card = parse_card(raw).data
    licenses = _strings(card.get("license"))
    found.license = licenses[0] if licenses else None
    task_key = "task_categories" if repo.repo_type == "dataset" else "pipeline_tag"
    tasks = _strings(card.get(task_key))
    found.task = tasks[0] if tasks else None
    libraries = _strings(card.get("library_name"))
    found.library = libraries[0] if libraries else None
    found.tags = _strings(card.get("tags"))
    found.languages = _strings(card.get("language"))
    found.gated = bool(card.get("gated")) or any(k.startswith("extra_gated_") for k in card)
    return found


def search_local(
    cache_dir: Path,
    lock: Lock | None,
    repo_type: str | None = None,
    query: str | None = None,
    filters: SearchFilters = NO_FILTERS,
    *,
    limit: int = 20,
) -> list[LocalRepo]:
    """The cached and locked repos (of ``repo_type``, if given) that match; sorted by type, then id."""
    found: dict[tuple[str, str], LocalRepo] = {}
    for repo in iter_repos(cache_dir):
        if repo_type is None or repo.repo_type == repo_type:
            found[(repo.repo_type, repo.repo_id)] = describe(repo)
    for entry in lock.repos if lock is not None else ():
        if repo_type is not None and entry.repo_type != repo_type:
            continue
        item = found.setdefault((entry.repo_type, entry.repo_id), LocalRepo(entry.repo_id, entry.repo_type))
        item.locked = entry.revision
    needle = (query or "").lower()
    f = filters
    out: list[LocalRepo] = []
    for item in sorted(found.values(), key=lambda r: (r.repo_type, r.repo_id.lower())):
        fields = [item.repo_id, item.license or "", item.task or "", item.library or "", *item.tags]
        if needle and not any(needle in f.lower() for f in fields):
            continue
        if f.author and item.repo_id.split("/")[0] != f.author:
            continue
        if f.task and item.task != f.task:
            continue
        if f.library and item.library != f.library:
            continue
        if f.licenses and item.license not in f.licenses:
            continue
        if f.languages and not set(f.languages) & set(item.languages):
            continue
        if f.tags and not set(f.tags) <= set(item.tags) | set(item.languages):
            continue
        if f.gated is not None and item.gated != f.gated:
            continue
        out.append(item)
        if len(out) >= limit:
            break
    return out


def cached_repo_ids(cache_dir: Path, lock_path: Path | None = None, limit: int = 1000) -> list[str]:
    """Repo ids as commands take them (``org/name``, ``datasets/org/name``) from the cache's folder names
    and the lock: cheap (no card is read), for shell completion."""
    ids: set[str] = set()
    for repo in iter_repos(cache_dir)[:limit]:
        ids.add(repo.label)
    if lock_path is not None:
        from hfa.errors import HfaError
        from hfa.lock import lockfile

        try:
            lock = lockfile.read(lock_path, missing_ok=True)
        except (HfaError, OSError):  # completion never fails on a broken lock
            lock = Lock()
        for entry in lock.repos:
            ids.add(RepoDir(cache_dir, entry.repo_type, entry.repo_id).label)
    return sorted(ids)
