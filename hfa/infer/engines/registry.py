"""Which engine runs which task (:data:`ENGINES`), and :func:`load_engine`, the one way to load one.

Loading is not thread-safe: transformers' ``from_pretrained`` patches torch process-wide while it
builds a model (the default device becomes ``meta``, init functions are swapped out), so two loads
in parallel threads can leave one model with weights that were never loaded (seen as T5 answering
"Tensor.item() cannot be called on meta tensors" forever). :func:`load_engine` therefore loads one
model at a time per process, and refuses a model that still holds meta tensors once loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

from hfa.errors import HfaError
from hfa.infer.engines.base import Engine, Loader
from hfa.infer.engines.embeddings import FeatureExtraction
from hfa.infer.engines.image import ImageClassification, TextToImage
from hfa.infer.engines.text import (
    QuestionAnswering,
    Seq2Seq,
    TextClassification,
    TextGeneration,
    ZeroShotClassification,
)
from hfa.infer.modelfiles import ModelFailed, ModelFiles, StagedModel, UnsupportedTask, check_policy, explain_failure

# One model loads at a time in this process: from_pretrained is not thread-safe (see the module doc).
_LOADING = threading.Lock()

ENGINES: dict[str, Callable[..., Engine]] = {
    "text-classification": TextClassification,
    "zero-shot-classification": ZeroShotClassification,
    "text-generation": TextGeneration,
    "summarization": Seq2Seq,
    "translation": Seq2Seq,
    "question-answering": QuestionAnswering,
    "image-classification": ImageClassification,
    "feature-extraction": FeatureExtraction,
    "text-to-image": TextToImage,
}


def load_engine(
    model: ModelFiles,
    task: str,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    for_server: bool = False,
) -> Engine:
    """Check the policy, stage the allowed files, load ``model`` for ``task`` (one load at a time per process).

    Raises ModelRefused, UnsupportedTask, or ModelFailed for anything the load itself raised.
    """
    check_policy(model, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code, for_server=for_server)
    factory = ENGINES.get(task)
    if factory is None:
        raise UnsupportedTask(f"hfa cannot run {task}", f"it runs: {', '.join(sorted(ENGINES))}")
    with _LOADING:
        staged = StagedModel(model, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        try:
            engine = factory(task=task, model=model, staged=staged)
            engine.load(Loader(staged, allow_pickle, trust_remote_code, for_server))
            unloaded = meta_tensors(engine)
            if unloaded:
                raise ModelFailed(
                    f"Loading {model.label} for {task} left {len(unloaded)} tensor(s) without data"
                    f" ({', '.join(unloaded[:3])})",
                    "ask again: the next request loads it afresh",
                )
        except BaseException as exc:
            staged.close()
            if isinstance(exc, Exception) and not isinstance(exc, HfaError):
                raise explain_failure(exc, model, task, "loading", staged.path) from exc
            raise
    return engine


def meta_tensors(engine: Engine) -> list[str]:
    """Names of the parameters and buffers of ``engine``'s torch modules that hold no data (device ``meta``)."""
    modules: list[tuple[str, Any]] = []
    for name, value in vars(engine).items():
        if isinstance(value, torch.nn.Module):
            modules.append((name, value))
        components = getattr(value, "components", None)  # a diffusers pipeline
        if isinstance(components, dict):
            modules += [(f"{name}.{k}", v) for k, v in components.items() if isinstance(v, torch.nn.Module)]
    out = []
    for prefix, module in modules:
        tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
        out += [f"{prefix}.{n}" for n, t in tensors if t.is_meta]
    return out
