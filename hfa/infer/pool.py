"""The models ``hfa serve --infer`` keeps in memory: loaded lazily, in the background, at most N at once.

The first request for a (model, commit, task) starts loading it in a background thread; it and
the requests that come while it loads are held until it is loaded, up to a bound (``hold``, or
``max_wait`` when they ask to wait), and then answered :class:`Loading` (the server's 503 with
``estimated_time``, as the Hub does). Models load one at a time per process (transformers' loading
is not thread-safe, see :mod:`hfa.infer.engines`), so a model queued behind others says so in its
estimate. A failed load is reported to the requests waiting for it and cleared, so the next
request tries again. Beyond ``max_models`` loaded models, the least recently used one is dropped.

Importing this module does not import torch: :mod:`hfa.infer.engines` is imported in the loading
thread, so a server without the optional extra starts, and answers each inference request 501
at once.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hfa.errors import HfaError
from hfa.infer.modelfiles import ModelFiles, check_policy, estimated_load_seconds

log = logging.getLogger("hfa.serve")

Loader = Callable[..., Any]  # (model: ModelFiles, task: str, *, allow_pickle, trust_remote_code) -> Engine


@dataclass
class PoolConfig:
    """``hfa serve --infer`` settings."""

    max_models: int = 2  # --infer-max-models
    allow_pickle: bool = False  # --allow-pickle
    trust_remote_code: frozenset[str] = frozenset()  # --trust-remote-code REPO (repeatable)
    models: frozenset[str] | None = None  # --infer-models: only these may run (None: every served model)
    load_delay: float = 0.0  # test-only: seconds added to every load, so "loading" can be observed
    max_wait: float = 300.0  # the longest an X-Wait-For-Model request is held while its model loads
    hold: float = 60.0  # the longest any other request is held while its model loads, then 503
    loader: Loader | None = field(default=None, repr=False)  # test-only: replaces engines.load_engine


class Loading(Exception):
    """The model is loading; ask again in about ``estimated_time`` seconds."""

    def __init__(self, repo_id: str, estimated_time: float) -> None:
        super().__init__(f"Model {repo_id} is currently loading")
        self.repo_id = repo_id
        self.estimated_time = estimated_time


@dataclass
class _Slot:
    model: ModelFiles
    task: str
    started: float
    estimate: float
    state: str = "loading"  # loading | ready | failed
    engine: Any = None
    error: BaseException | None = None
    loaded_in: float | None = None
    event: threading.Event = field(default_factory=threading.Event)

    def remaining(self, now: float) -> float:
        return round(max(1.0, self.started + self.estimate - now), 1)


class InferenceUnavailable(HfaError):
    """This server cannot run models at all: the optional extra is not installed (HTTP 501)."""


def missing_extra() -> str | None:
    """The first package of the ``infer`` extra that is not installed (checked without importing it), or None."""
    for name in ("torch", "transformers"):
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _unavailable(missing: str) -> InferenceUnavailable:
    return InferenceUnavailable(
        f"This server cannot run models: the optional extra is not installed (missing {missing})",
        "install it where hfa serve runs: pip install 'hfa[infer]'",
    )


def _default_loader(model: ModelFiles, task: str, *, allow_pickle: bool, trust_remote_code: bool) -> Any:
    try:
        from hfa.infer.engines import load_engine
    except ImportError as exc:
        raise _unavailable(getattr(exc, "name", None) or str(exc)) from None
    return load_engine(model, task, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, for_server=True)


class ModelPool:
    """Thread-safe. ``engine()`` returns a loaded engine or raises Loading, ModelRefused or the load's error."""

    def __init__(self, config: PoolConfig, clock: Callable[[], float] = time.monotonic) -> None:
        if config.max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.config = config
        self._loader = config.loader or _default_loader
        self._clock = clock
        self._slots: OrderedDict[tuple[str, str, str], _Slot] = OrderedDict()
        self._lock = threading.Lock()
        self._closed = False
        self.loads = 0  # loads started (tests count them)

    def may_run(self, repo_id: str) -> bool:
        return self.config.models is None or repo_id in self.config.models

    def check(self, model: ModelFiles) -> None:
        """Raise ModelRefused if policy forbids running ``model`` (no loading involved)."""
        check_policy(
            model,
            allow_pickle=self.config.allow_pickle,
            trust_remote_code=model.repo_id in self.config.trust_remote_code,
            for_server=True,
        )

    def engine(self, model: ModelFiles, task: str, *, wait: float = 0.0) -> Any:
        key = (model.repo_id, model.commit, task)
        deadline = self._clock() + min(max(0.0, wait), self.config.max_wait)
        slot: _Slot | None = None
        while True:
            with self._lock:
                if slot is None:  # first look; later, the slot being waited for is checked again
                    slot = self._slots.get(key)
                    if slot is None:
                        self.check(model)
                        if self.config.loader is None and (missing := missing_extra()) is not None:
                            raise _unavailable(missing)  # at once, not 503 "loading" first
                        slot = self._start(key, model, task)
                if slot.state == "ready":
                    if self._slots.get(key) is slot:
                        self._slots.move_to_end(key)
                    return slot.engine
                if slot.state == "failed":
                    if self._slots.get(key) is slot:
                        del self._slots[key]  # reported once: the next request loads afresh
                    assert slot.error is not None
                    raise slot.error
                now = self._clock()
                remaining = slot.remaining(now)
            if now >= deadline:
                raise Loading(model.repo_id, remaining)
            slot.event.wait(max(0.01, deadline - now))

    def _start(self, key: tuple[str, str, str], model: ModelFiles, task: str) -> _Slot:
        # A loader given in the config (tests) is not assumed to import torch.
        torch_ready = "torch" in sys.modules or self.config.loader is not None
        now = self._clock()
        # Loads run one at a time: a model queued behind others waits for them first.
        ahead = sum(s.remaining(now) for s in self._slots.values() if s.state == "loading")
        estimate = ahead + self.config.load_delay + estimated_load_seconds(model, torch_ready)
        slot = _Slot(model, task, now, estimate)
        self._slots[key] = slot
        self.loads += 1
        log.warning("loading %s for %s (about %.0f s)", model.label, task, estimate)
        threading.Thread(target=self._load, args=(key, slot), name=f"hfa-load-{model.repo_id}", daemon=True).start()
        return slot

    def _load(self, key: tuple[str, str, str], slot: _Slot) -> None:
        started = time.monotonic()
        engine: Any = None
        error: BaseException | None = None
        try:
            if self.config.load_delay:
                time.sleep(self.config.load_delay)
            engine = self._loader(
                slot.model,
                slot.task,
                allow_pickle=self.config.allow_pickle,
                trust_remote_code=slot.model.repo_id in self.config.trust_remote_code,
            )
        except BaseException as exc:  # a background thread: everything is reported to the next request
            error = exc
        evicted: list[_Slot] = []
        with self._lock:
            current = self._slots.get(key)
            if error is None and (self._closed or current is not slot):
                evicted.append(_Slot(slot.model, slot.task, 0.0, 0.0, "ready", engine))
            elif error is None:
                slot.engine, slot.state, slot.loaded_in = engine, "ready", time.monotonic() - started
                self._slots.move_to_end(key)
                evicted += self._evict(keep=key)
            else:
                slot.error, slot.state = error, "failed"
            slot.event.set()
        if error is not None:
            log.error("loading %s for %s failed: %s: %s", slot.model.label, slot.task, type(error).__name__, error)
        else:
            log.warning("loaded %s for %s in %.1f s", slot.model.label, slot.task, time.monotonic() - started)
        for old in evicted:
            _close(old)

    def _evict(self, keep: tuple[str, str, str]) -> list[_Slot]:
        """Drop least recently used loaded models beyond max_models (called with the lock held)."""
        ready = [k for k, s in self._slots.items() if s.state == "ready"]
        out = []
        for k in ready[: max(0, len(ready) - self.config.max_models)]:
            if k != keep:
                out.append(self._slots.pop(k))
                log.warning("unloaded %s for %s (--infer-max-models %d)", k[0], k[2], self.config.max_models)
        return out

    def status(self, model: ModelFiles, task: str) -> dict[str, Any]:
        with self._lock:
            slot = self._slots.get((model.repo_id, model.commit, task))
            if slot is None:
                return {"state": "not loaded"}
            doc: dict[str, Any] = {"state": slot.state}
            if slot.state == "loading":
                doc["estimated_time"] = slot.remaining(self._clock())
            if slot.state == "ready":
                doc["loaded_in"] = round(slot.loaded_in or 0.0, 3)
                doc["library"] = getattr(slot.engine, "kind", None)
                stats = getattr(slot.engine, "stats", None)
                if isinstance(stats, dict):
                    doc["stats"] = dict(stats)
            if slot.error is not None:
                doc["error"] = str(slot.error)
            return doc

    def loaded(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return [k for k, s in self._slots.items() if s.state == "ready"]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slots, self._slots = list(self._slots.values()), OrderedDict()
        for slot in slots:
            if slot.state == "ready":
                _close(slot)


def _close(slot: _Slot) -> None:
    close = getattr(slot.engine, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # pragma: no cover - best effort
            log.exception("closing %s failed", slot.model.label)
