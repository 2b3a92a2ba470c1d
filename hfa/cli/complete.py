"""Shell completion of repo ids (``hfa --install-completion``): what the cache's folder names and the
lock name, matched against what is typed. Cheap (no card, no network) and never an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["complete_repo"]


def complete_repo(ctx: Any, incomplete: str) -> list[str]:
    """Repo ids starting with ``incomplete`` from ``--cache-dir`` (else the default cache) and ``--lock``."""
    try:
        from hfa.config import default_cache_dir
        from hfa.discover import cached_repo_ids

        params = getattr(ctx, "params", None) or {}
        cache = params.get("cache_dir") or default_cache_dir()
        lock = params.get("lock") or Path("hfa.lock")
        return [r for r in cached_repo_ids(Path(cache), Path(lock)) if r.startswith(incomplete)]
    except Exception:  # a completion must never print a traceback into the shell
        return []
