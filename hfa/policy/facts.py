"""What a policy judges about one repo: its licence, gating, remote code, pickles, size and author.

At pin time they come from the resolution (:func:`record_facts`: the Hub's card data and
gating, config.json's ``auto_map``) and are recorded in the lock entry (``facts``), so
``hfa policy check`` and ``hfa pull`` judge a lock without network. The size, the pickle files
and the author follow from the entry itself. For an entry written before facts were recorded,
:func:`entry_facts` reads the card and config.json of the locked commit from the cache when they
are there; what it cannot learn stays unknown (None), and a check treats unknown as failing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hfa.lock.lockfile import LockedFacts, LockedRepo, TaskDefault
from hfa.resolve.files import RemoteFile, Resolved

__all__ = ["RepoFacts", "card_licenses", "entry_facts", "record_facts", "task_facts"]

SMALL = 4 * 1024 * 1024  # a card or config.json larger than this is not read for facts


@dataclass(frozen=True)
class RepoFacts:
    """One locked repo as a policy sees it; None is "not known"."""

    repo_id: str
    repo_type: str
    commit: str
    licenses: tuple[str, ...] | None
    gated: bool | None
    remote_code: bool | None
    size: int | None  # None: not known (a task default pinned before its facts were recorded)
    pickle_files: tuple[RemoteFile, ...] | None  # selected files that are pickles (.bin, .pt, .pth, .ckpt, .pkl)
    task: str = ""  # set when these are the facts of a task default (``[[task]]``), not of a ``[[repo]]``

    @property
    def pickles(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.pickle_files or ())

    @property
    def label(self) -> str:
        """``org/name`` for a model, ``datasets/org/name`` otherwise (as commands and reports name it)."""
        return self.repo_id if self.repo_type == "model" else f"{self.repo_type}s/{self.repo_id}"

    @property
    def author(self) -> str:
        """The org or user the repo belongs to (its namespace); a repo id without one is its own author."""
        return self.repo_id.split("/", 1)[0].lower()


def card_licenses(card: dict[str, Any]) -> tuple[str, ...]:
    """The licence ids a card's ``license`` field names, lowercase (a string or a list of them)."""
    value = card.get("license")
    items = value if isinstance(value, list) else [value]
    out = [str(v).strip().lower() for v in items if isinstance(v, (str, int, float)) and str(v).strip()]
    return tuple(dict.fromkeys(x for x in out if x.isprintable()))


def _auto_map(raw: bytes | None) -> bool:
    if not raw:
        return False
    from hfa import jsonsafe

    try:
        doc = jsonsafe.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and bool(doc.get("auto_map"))


def _code(paths: Iterable[str]) -> bool:
    from hfa.resolve.kinds import classify

    return any(classify(p) == "code" for p in paths)


def record_facts(
    resolved: Resolved, selected: Iterable[str], read: Callable[[RemoteFile], bytes | None]
) -> LockedFacts:
    """The facts a lock entry records: from the Hub's card data (else the README, read with ``read``),
    its gating, and config.json's ``auto_map`` (read with ``read``) or selected ``*.py`` files."""
    from hfa.resolve.card import parse_card

    card = resolved.card_data if isinstance(resolved.card_data, dict) else {}
    readme = resolved.files.get("README.md")
    if not card and readme is not None and readme.size <= SMALL:
        card = parse_card(read(readme)).data
    config = resolved.files.get("config.json")
    auto_map = config is not None and config.size <= SMALL and _auto_map(read(config))
    return LockedFacts(card_licenses(card), bool(resolved.gated), auto_map or _code(selected))


def entry_facts(entry: LockedRepo, cache_dir: Path | None = None) -> RepoFacts:
    """A lock entry as a policy sees it: its recorded facts, else what the cache says of its commit."""
    from hfa.resolve.kinds import classify

    pickles = tuple(f.to_remote() for f in entry.files if classify(f.path) == "pickle")
    facts = RepoFacts(
        entry.repo_id, entry.repo_type, entry.commit, None, None, None, sum(f.size for f in entry.files), pickles
    )
    if entry.facts is not None:
        return replace(
            facts, licenses=entry.facts.license, gated=entry.facts.gated, remote_code=entry.facts.remote_code
        )
    licenses: tuple[str, ...] | None = None
    remote_code: bool | None = True if _code(f.path for f in entry.files) else None
    if cache_dir is not None:
        from hfa.resolve.card import parse_card
        from hfa.resolve.resolver import read_cached

        files = entry.remote_files()
        readme, config = files.get("README.md"), files.get("config.json")
        raw = read_cached(cache_dir, entry.pinned_ref, readme) if readme and readme.size <= SMALL else None
        if raw is not None:
            licenses = card_licenses(parse_card(raw).data)
        if remote_code is None:
            if config is None:
                remote_code = False  # no config.json locked: nothing maps classes to repo code
            elif config.size <= SMALL and (data := read_cached(cache_dir, entry.pinned_ref, config)) is not None:
                remote_code = _auto_map(data)
    return replace(facts, licenses=licenses, remote_code=remote_code)


def task_facts(default: TaskDefault) -> RepoFacts:
    """A task default (``[[task]]``) as a policy sees it: the facts recorded when it was pinned (the
    repo's, and the size and pickles of its default selection), else nothing known but its author."""
    recorded = default.facts
    if recorded is None:
        return RepoFacts(default.repo_id, "model", default.commit, None, None, None, None, None, default.task)
    return RepoFacts(
        default.repo_id,
        "model",
        default.commit,
        recorded.facts.license,
        recorded.facts.gated,
        recorded.facts.remote_code,
        recorded.size,
        tuple(f.to_remote() for f in recorded.pickles),
        default.task,
    )
