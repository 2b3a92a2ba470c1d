"""Inference on pinned models: ``hfa infer`` (see docs/infer.md).

* :mod:`hfa.infer.tasks`  the task table, request shapes, result checks (selftest) and the
  :class:`Runner` protocol every way of running a model implements;
* :mod:`hfa.infer.client` :class:`InferenceAPI`, the Inference API runner (huggingface_hub's
  ``InferenceClient`` plus retries, a deadline and hfa's errors);
* :mod:`hfa.infer.cache`  the content-addressed result cache (``cache_stats``, ``clear_cache``);
* :mod:`hfa.infer.batch`  JSON-lines batches, in order, with concurrency;
* :mod:`hfa.infer.session` :class:`Session`, one ``hfa infer`` run: the runner behind the result
  cache, the cache-key policy, one request, a selftest or a batch, and atomic output files;
* :mod:`hfa.infer.orchestrator` :class:`Orchestrator`, the Python API; :mod:`hfa.infer.chain` the provider chain: ``[[infer.providers]]`` in
  order with fallback; :mod:`hfa.infer.providers` reads them, :mod:`hfa.infer.limits` keeps their
  limits and cooldowns; :mod:`hfa.infer.defaults` the task defaults pinned in the lock;
* :mod:`hfa.infer.jobs` jobs on disk (submit now, collect later), :mod:`hfa.infer.jobrun` their
  detached worker and :class:`Job`, :mod:`hfa.infer.jobs_remote` jobs on an ``hfa serve --infer``;
* :mod:`hfa.infer.modelfiles` a model's files, its policy checks and staging (no torch);
* :mod:`hfa.infer.pool`   the model pool ``hfa serve --infer`` loads engines into (no torch until a load);

and, needing the optional extra ``hfa[infer]`` (torch), imported only when a model runs in-process:

* ``hfa.infer.engines``   the engines (text, embeddings, image), :data:`ENGINES` and ``load_engine``;
* ``hfa.infer.local``     an in-process runner for ``--local``.

Importing this package stays cheap: no torch or transformers, and huggingface_hub is imported only
when a request is made.
"""

from __future__ import annotations

from typing import Any

from hfa.infer.batch import BatchRequest, parse_lines, run_batch
from hfa.infer.cache import CachedRunner, ResultCache, cache_stats, clear_cache, default_cache_root
from hfa.infer.client import Clock, InferenceAPI, make_runner, model_url, resolve_commit, token_for
from hfa.infer.session import Session
from hfa.infer.tasks import Runner, Task, build_parameters, get_task, make_inputs, selftest

__all__ = [
    "BatchRequest",
    "CachedRunner",
    "Clock",
    "InferenceAPI",
    "Job",
    "Orchestrator",
    "ResultCache",
    "Runner",
    "Session",
    "Task",
    "build_parameters",
    "cache_stats",
    "clear_cache",
    "default_cache_root",
    "get_task",
    "make_inputs",
    "make_runner",
    "model_url",
    "parse_lines",
    "resolve_commit",
    "run_batch",
    "selftest",
    "token_for",
]


def __getattr__(name: str) -> Any:
    """``Orchestrator`` and ``Job`` are imported on first use: a plain ``hfa infer`` never needs them."""
    if name == "Job":
        from hfa.infer.jobrun import Job

        return Job
    if name == "Orchestrator":
        from hfa.infer.orchestrator import Orchestrator

        return Orchestrator
    raise AttributeError(f"module 'hfa.infer' has no attribute {name!r}")
