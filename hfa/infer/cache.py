"""The inference result cache: one content-addressed JSON file per request.

Where: ``$HFA_INFER_CACHE``, else ``$HF_HOME/hfa/infer-cache`` (next to the ``hub`` cache, not in it:
results are not Hub content). Layout: ``<root>/<key[:2]>/<key>.json``, where ``key`` is the sha256 of
the canonical JSON of (cache version, route, model, commit, task, inputs, parameters); an image input
counts by the sha256 of its bytes, not its path. Entries are written through a temporary file and a
rename, so a reader never sees half an entry; an unreadable entry is a miss.

:func:`cache_stats` and :func:`clear_cache` are the API ``hfa cache`` uses to see and clear it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfa.config import hf_home
from hfa.infer.tasks import Outcome, Runner, get_task, input_identity

CACHE_VERSION = 1
MISS = object()


def default_cache_root() -> Path:
    value = os.environ.get("HFA_INFER_CACHE", "").strip()
    if value:
        return Path(os.path.expandvars(os.path.expanduser(value)))
    return hf_home() / "hfa" / "infer-cache"


def request_key(
    *, route: str, model: str, commit: str | None, task: str, inputs: Any, parameters: dict[str, Any]
) -> str:
    """The sha256 naming one request's entry (``inputs`` already as :func:`input_identity` gives them)."""
    material = {
        "v": CACHE_VERSION,
        "route": route,
        "model": model,
        "commit": commit,
        "task": task,
        "inputs": inputs,
        "parameters": parameters,
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResultCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_cache_root()

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any:
        """The cached result, or the sentinel :data:`MISS`."""
        return self.get_entry(key)[0]

    def get_entry(self, key: str) -> tuple[Any, dict[str, Any]]:
        """The cached result (or :data:`MISS`) and its entry's other fields (``provider``, ``route`` …)."""
        try:
            doc = json.loads(self.path_for(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return MISS, {}
        if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION or doc.get("key") != key:
            return MISS, {}
        meta = {k: v for k, v in doc.items() if k not in ("result", "result_base64")}
        if "result_base64" in doc:
            try:
                return base64.b64decode(doc["result_base64"], validate=True), meta
            except (ValueError, TypeError):
                return MISS, {}
        return doc.get("result", MISS), meta

    def put(self, key: str, result: Any, meta: dict[str, Any]) -> None:
        from hfa.cache.layout import atomic_write_text

        doc: dict[str, Any] = {"version": CACHE_VERSION, "key": key, "created": time.time(), **meta}
        if isinstance(result, bytes):
            doc["result_base64"] = base64.b64encode(result).decode("ascii")
        else:
            doc["result"] = result
        atomic_write_text(self.path_for(key), json.dumps(doc, ensure_ascii=False, sort_keys=True))


class CachedRunner:
    """Wraps a Runner: identical requests are answered from the cache (``cache=None``: never)."""

    def __init__(self, runner: Runner, cache: ResultCache | None, *, model: str, commit: str | None) -> None:
        self.runner = runner
        self.cache = cache
        self.model = model
        self.commit = commit
        self.route = runner.route

    def key(self, task: str, inputs: Any, parameters: dict[str, Any]) -> str:
        spec = get_task(task)
        return request_key(
            route=self.runner.route,
            model=self.model,
            commit=self.commit,
            task=spec.name,
            inputs=input_identity(spec, inputs),
            parameters=parameters,
        )

    def run_with_info(self, task: str, inputs: Any, parameters: dict[str, Any]) -> tuple[Any, bool]:
        """(result, whether it came from the cache)."""
        outcome = self.run_outcome(task, inputs, parameters)
        return outcome.result, outcome.cached

    def _run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Outcome:
        run_outcome = getattr(self.runner, "run_outcome", None)
        if callable(run_outcome):
            outcome: Outcome = run_outcome(task, inputs, parameters)
            return outcome
        started = time.monotonic()
        result = self.runner.run(task, inputs, parameters)
        return Outcome(result, attempts=1, latency_ms=round((time.monotonic() - started) * 1000))

    def run_outcome(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Outcome:
        """The result and how it was answered; identical requests come from the cache (``cached``,
        with the provider that answered them first)."""
        if self.cache is None:
            return self._run(task, inputs, parameters)
        key = self.key(task, inputs, parameters)
        hit, entry = self.cache.get_entry(key)
        if hit is not MISS:
            provider = entry.get("provider")
            return Outcome(hit, provider=provider if isinstance(provider, str) else None, cached=True)
        outcome = self._run(task, inputs, parameters)
        from hfa.errors import public_url

        route = public_url(self.runner.route)  # an --endpoint-url's password is never written down
        meta = {"route": route, "model": self.model, "commit": self.commit, "task": get_task(task).name}
        if outcome.provider is not None:
            meta["provider"] = outcome.provider
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs a later request
            self.cache.put(key, outcome.result, meta)
        return outcome

    def run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
        return self.run_with_info(task, inputs, parameters)[0]


@dataclass(frozen=True)
class CacheStats:
    root: Path
    entries: int
    bytes: int
    oldest: float | None = None  # mtime, seconds since the epoch
    newest: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.root),
            "entries": self.entries,
            "bytes": self.bytes,
            "oldest": self.oldest,
            "newest": self.newest,
        }


def _entries(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("??/*.json") if len(p.stem) == 64 and not p.name.startswith("."))


def cache_stats(root: Path | None = None) -> CacheStats:
    """How many entries the result cache holds, their total size, and their age range."""
    root = root if root is not None else default_cache_root()
    count = size = 0
    times: list[float] = []
    for path in _entries(root):
        try:
            st = path.stat()
        except OSError:
            continue
        count += 1
        size += st.st_size
        times.append(st.st_mtime)
    return CacheStats(root, count, size, min(times, default=None), max(times, default=None))


def clear_cache(root: Path | None = None, *, dry_run: bool = False) -> CacheStats:
    """Remove every entry (and leftover temporary files); returns what was (or would be) removed."""
    root = root if root is not None else default_cache_root()
    before = cache_stats(root)
    if dry_run or not root.is_dir():
        return before
    for path in [*_entries(root), *root.glob("??/.*.tmp")]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for sub in root.glob("??"):
        with contextlib.suppress(OSError):
            sub.rmdir()
    return before
