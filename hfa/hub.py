"""The network behind one abstraction: what hfa may ask of a Hub endpoint.

Everything that talks HTTP to a Hub goes through :class:`OnlineHub`, which wraps
huggingface_hub's ``HfApi`` with the endpoint and token hfa resolved itself (never
the ones huggingface_hub would read on its own). Foreign exceptions leave this
module translated into :mod:`hfa.errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hfa.config import Settings
from hfa.errors import HfaError, OfflineError, UsageError, from_exception

if TYPE_CHECKING:
    from huggingface_hub import HfApi

SORT_CHOICES = ("downloads", "likes", "last_modified", "created_at", "trending_score")


@dataclass(frozen=True)
class ModelSummary:
    id: str
    pipeline_tag: str | None
    library_name: str | None
    downloads: int | None
    likes: int | None
    last_modified: str | None
    private: bool
    gated: str | bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise huggingface_hub / HTTP errors as HfaError."""
    try:
        yield
    except HfaError:
        raise
    except Exception as exc:
        err = from_exception(exc)
        if err is None:
            raise
        raise err from exc


class OnlineHub:
    def __init__(self, settings: Settings) -> None:
        if settings.offline:
            raise OfflineError(
                "This command needs the network but offline mode is on",
                "drop --offline / unset HF_HUB_OFFLINE, or use a command that works from the cache",
            )
        self.settings = settings
        self._api: HfApi | None = None

    @property
    def api(self) -> HfApi:
        if self._api is None:
            from huggingface_hub import HfApi

            # token=False stops huggingface_hub from reading a token of its own choosing.
            self._api = HfApi(endpoint=self.settings.endpoint, token=self.settings.token or False)
        return self._api

    def search_models(
        self,
        query: str | None = None,
        *,
        author: str | None = None,
        task: str | None = None,
        library: str | None = None,
        sort: str | None = None,
        limit: int = 20,
    ) -> list[ModelSummary]:
        if limit < 1:
            raise UsageError(f"--limit must be at least 1, not {limit}", "pass --limit 20 or another positive number")
        if sort is not None and sort not in SORT_CHOICES:
            raise UsageError(f"Unknown sort '{sort}'", f"use one of: {', '.join(SORT_CHOICES)}")
        with translated():
            models = self.api.list_models(
                search=query or None,
                author=author or None,
                pipeline_tag=task or None,
                filter=library or None,
                sort=sort,  # type: ignore[arg-type]
                limit=limit,
            )
            return [
                ModelSummary(
                    id=m.id,
                    pipeline_tag=m.pipeline_tag,
                    library_name=m.library_name,
                    downloads=m.downloads,
                    likes=m.likes,
                    last_modified=_iso(m.last_modified),
                    private=bool(m.private),
                    gated=m.gated if m.gated else False,
                )
                for m in models
            ]
