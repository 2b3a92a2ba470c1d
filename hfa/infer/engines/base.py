"""What every engine shares: the :class:`Engine` base, the :class:`Loader` with hfa's safety settings,
:class:`BadInput`, and the readers that check a request's inputs and parameters.

Engines run on torch; importing this module imports torch (never imported by ``hfa.infer`` itself).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from hfa.errors import UsageError
from hfa.infer.modelfiles import ModelFiles, StagedModel, UnsupportedTask


class BadInput(UsageError):
    """The request's inputs or parameters are wrong for this task (HTTP 400)."""


# -- inputs and parameters ---------------------------------------------------------------------------
def input_texts(inputs: Any, *, allow_list: bool = True) -> tuple[list[str], bool]:
    """The input texts, and whether a single string was given."""
    if isinstance(inputs, str):
        return [inputs], True
    if allow_list and isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs):
        return list(inputs), False
    kind = "a string or a list of strings" if allow_list else "a string"
    raise BadInput(f"inputs must be {kind}, not {type(inputs).__name__}", 'send {"inputs": "some text"}')


def int_param(params: dict[str, Any], name: str, default: int | None, low: int = 1, high: int = 1 << 20) -> int | None:
    """``params[name]`` as an integer in [low, high], ``default`` when absent; BadInput otherwise."""
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"parameter {name} must be an integer in [{low}, {high}], not {value!r}", "fix the parameters")
    return value


def float_param(params: dict[str, Any], name: str, low: float = 0.0, high: float = 1e6) -> float | None:
    """``params[name]`` as a number in [low, high], None when absent; BadInput otherwise."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadInput(f"parameter {name} must be a number in [{low:g}, {high:g}], not {value!r}", "fix the parameters")
    return float(value)


def bool_param(params: dict[str, Any], name: str, default: bool) -> bool:
    """``params[name]`` as true or false, ``default`` when absent; BadInput otherwise."""
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadInput(f"parameter {name} must be true or false, not {value!r}", "fix the parameters")
    return value


def label_scores(logits: torch.Tensor, function: str | None, multi_label: bool) -> torch.Tensor:
    """Classification logits turned into scores by ``function_to_apply`` (the pipeline's default when None)."""
    name = function or ("sigmoid" if multi_label or logits.shape[-1] == 1 else "softmax")
    if name == "softmax":
        return logits.softmax(-1)
    if name == "sigmoid":
        return logits.sigmoid()
    if name == "none":
        return logits
    raise BadInput(f"function_to_apply must be softmax, sigmoid or none, not {function!r}", "fix the parameters")


def ranked_labels(labels: dict[int, str], scores: list[float], top_k: int | None) -> list[dict[str, Any]]:
    """``[{label, score}, …]``, best first, at most ``top_k``."""
    items: list[dict[str, Any]] = [
        {"label": labels.get(i, f"LABEL_{i}"), "score": float(s)} for i, s in enumerate(scores)
    ]
    items.sort(key=lambda item: -float(item["score"]))
    return items[:top_k] if top_k else items


def max_length(tok: Any, net: Any, cap: int = 512) -> int:
    """The longest input, in tokens, that both the tokenizer and the model take (at most ``cap``)."""
    limits = [cap]
    model_max = getattr(tok, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        limits.append(model_max)
    positions = getattr(net.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits)


# -- engines -----------------------------------------------------------------------------------------
@dataclass
class Engine:
    """One loaded model for one task. ``run`` answers one request in the wire shape."""

    task: str
    model: ModelFiles
    staged: StagedModel
    kind: str = "transformers"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        with self._lock, torch.inference_mode():
            return self._run(inputs, parameters)

    def load(self, loader: Loader) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, inputs: Any, parameters: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        self.staged.close()


class Loader:
    """from_pretrained with hfa's safety settings, from the staged folder only (never the network)."""

    def __init__(
        self, staged: StagedModel, allow_pickle: bool, trust_remote_code: bool, for_server: bool = False
    ) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # load reports and progress bars are not for hfa's users
        hf_logging.disable_progress_bar()
        self.path = str(staged.path)
        self.allow_pickle = allow_pickle
        self.for_server = for_server  # hints name hfa serve's options
        self.common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": trust_remote_code}
        self.weights: dict[str, Any] = {**self.common, "dtype": torch.float32}
        self.weights["use_safetensors"] = None if allow_pickle else True

    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.path, **self.common)

    def model(self, auto_class: Any, task: str) -> Any:
        try:
            return auto_class.from_pretrained(self.path, **self.weights).eval()
        except ValueError as exc:
            if "Unrecognized configuration class" in str(exc) or "does not recognize this architecture" in str(exc):
                raise UnsupportedTask(
                    f"this model's architecture cannot run {task}", "ask for the task in the model card's pipeline_tag"
                ) from None
            raise
