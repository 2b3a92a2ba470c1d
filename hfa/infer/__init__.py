"""Inference on pinned models: ``hfa infer`` (see docs/infer.md).

* :mod:`hfa.infer.tasks`  the task table, request shapes, result checks (selftest) and the
  :class:`Runner` protocol every way of running a model implements;
* :mod:`hfa.infer.client` :class:`InferenceAPI`, the Inference API runner (huggingface_hub's
  ``InferenceClient`` plus retries, a deadline and hfa's errors);
* :mod:`hfa.infer.cache`  the content-addressed result cache (``cache_stats``, ``clear_cache``);
* :mod:`hfa.infer.batch`  JSON-lines batches, in order, with concurrency;
* ``hfa.infer.local``     (optional extra ``hfa[infer]``) an in-process runner for ``--local``.

Importing this package stays cheap: huggingface_hub is imported only when a request is made.
"""

from __future__ import annotations

from hfa.infer.batch import BatchRequest, parse_lines, run_batch
from hfa.infer.cache import CachedRunner, ResultCache, cache_stats, clear_cache, default_cache_root
from hfa.infer.client import Clock, InferenceAPI, make_runner, model_url, resolve_commit, token_for
from hfa.infer.tasks import Runner, Task, build_parameters, get_task, make_inputs, selftest

__all__ = [
    "BatchRequest",
    "CachedRunner",
    "Clock",
    "InferenceAPI",
    "ResultCache",
    "Runner",
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
