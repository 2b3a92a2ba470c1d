"""What a search keeps: one value for the Hub's search and the cache's.

``hfa search`` sends these to the endpoint (:func:`hfa.hub.client.search_params` builds the query
huggingface_hub sends) or, offline, matches them against the cached repos' cards and the lock
(:func:`hfa.discover.search_local`): the same filters either way, spelled once.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NO_FILTERS", "SearchFilters"]


@dataclass(frozen=True)
class SearchFilters:
    author: str | None = None  # the user or organisation (the repo id's first part)
    task: str | None = None  # a model's pipeline_tag, a dataset's task_categories
    library: str | None = None
    licenses: tuple[str, ...] = ()  # any of them
    languages: tuple[str, ...] = ()  # any of them
    tags: tuple[str, ...] = ()  # all of them
    gated: bool | None = None  # None: either


NO_FILTERS = SearchFilters()  # keep every repo
