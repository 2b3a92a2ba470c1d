"""Embeddings (feature-extraction), with concurrent requests merged into shared forward passes.

The same engine answers sentence-similarity: inputs ``{"source_sentence": …, "sentences": […]}``
get the cosine similarity of the source to each sentence (what ``InferenceClient.sentence_similarity``
sends and parses), computed from normalised embeddings of the same forward pass.

A sentence-transformers repository (``modules.json``) runs through sentence-transformers, so its
pooling and normalisation modules apply exactly as in ``SentenceTransformer.encode``; any other
encoder runs through transformers' ``AutoModel`` with mean pooling over the attention mask.

Batching: one forward pass runs at a time. Requests that arrive meanwhile queue up, and the next
pass serves all of them that share parameters (up to :data:`MAX_BATCH` texts). Under concurrent
load the pass waits a moment (at most a quarter of the last pass's time, :data:`MAX_WAIT` at most)
for as many requests as were recently in flight, so the clients just answered can join it rather
than the next one; a lone client never waits. Padding a merged batch changes results by float
rounding only (well under 1e-5).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from hfa.infer.engines.base import BadInput, Engine, Loader, bool_param, input_texts, int_param, max_length

MAX_BATCH = 64  # texts merged into one forward pass
MAX_WAIT = 0.010  # seconds a pass may wait for more requests (only under concurrent load)


@dataclass
class _Pending:
    texts: list[str]
    key: tuple[Any, ...]
    done: bool = False
    result: list[list[float]] | None = None
    error: BaseException | None = None


class FeatureExtraction(Engine):
    """Embeddings: sentence-transformers when the repo is one (modules.json), else mean pooling."""

    def load(self, loader: Loader) -> None:
        self._queue: list[_Pending] = []
        self._qlock = threading.Lock()
        self._in_flight = 0  # requests inside run()
        self._peak = 1  # requests recently in flight at once (decays by one per pass)
        self._last_pass = 0.0  # seconds the last forward pass took
        self.stats = {"forward_passes": 0, "requests": 0}  # shown by GET …/info
        if self.model.is_sentence_transformers:
            from sentence_transformers import SentenceTransformer

            self.kind = "sentence-transformers"
            self.st = SentenceTransformer(
                loader.path,
                device="cpu",
                local_files_only=True,
                trust_remote_code=loader.common["trust_remote_code"],
                model_kwargs={"use_safetensors": None if loader.allow_pickle else True, "dtype": torch.float32},
            )
            self.st.eval()
            self.prompts = dict(getattr(self.st, "prompts", None) or {})
        else:
            from transformers import AutoModel

            self.tok = loader.tokenizer()
            self.net = loader.model(AutoModel, self.task)
            self.max_len = max_length(self.tok, self.net)
            self.prompts = {}

    def run(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        if isinstance(inputs, dict):
            return self._similarity(inputs, parameters)
        texts, single = input_texts(inputs)
        item = _Pending(texts, self._key(parameters))
        with self._qlock:
            self._queue.append(item)
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
        try:
            with self._lock:  # one pass at a time; whoever holds the lock serves every waiting request alike
                if not item.done:
                    self._pass(item.key)
        finally:
            with self._qlock:
                self._in_flight -= 1
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result[0] if single else item.result

    def _similarity(self, inputs: dict[str, Any], parameters: dict[str, Any]) -> list[float]:
        """sentence-similarity: the cosine similarity of ``source_sentence`` to each of ``sentences``."""
        source, others = inputs.get("source_sentence"), inputs.get("sentences")
        if not isinstance(source, str) or not isinstance(others, list) or not others:
            raise BadInput(
                'sentence-similarity inputs must be {"source_sentence": "…", "sentences": ["…", …]}', "fix the inputs"
            )
        vectors = self.run([source, *others], {**parameters, "normalize": True})
        return [float(sum(a * b for a, b in zip(vectors[0], v, strict=True))) for v in vectors[1:]]

    def _pass(self, key: tuple[Any, ...]) -> None:
        """One forward pass for the queued requests with parameters ``key`` (called with the run lock held)."""
        deadline = time.monotonic() + min(MAX_WAIT, self._last_pass / 4)
        while time.monotonic() < deadline:
            with self._qlock:
                waiting = sum(len(p.texts) for p in self._queue if p.key == key)
                if len(self._queue) >= self._peak or waiting >= MAX_BATCH:
                    break
            time.sleep(0.0005)
        with self._qlock:
            batch: list[_Pending] = []
            size = 0
            for p in self._queue:
                if p.key == key and (not batch or size + len(p.texts) <= MAX_BATCH):
                    batch.append(p)
                    size += len(p.texts)
            self._queue = [p for p in self._queue if p not in batch]
            self._peak = max(1, self._in_flight, self._peak - 1)
            self.stats["forward_passes"] += 1
            self.stats["requests"] += len(batch)
        started = time.monotonic()
        try:
            with torch.inference_mode():
                vectors = self._embed([t for p in batch for t in p.texts], key)
            for p in batch:
                p.result, vectors = vectors[: len(p.texts)], vectors[len(p.texts) :]
        except BaseException as exc:
            for p in batch:
                p.error = exc
        for p in batch:
            p.done = True
        self._last_pass = time.monotonic() - started

    def _key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        normalize = params.get("normalize")
        if normalize is not None and not isinstance(normalize, bool):
            raise BadInput("normalize must be true or false", "fix the parameters")
        prompt_name = params.get("prompt_name")
        if prompt_name is not None and prompt_name not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise BadInput(f"unknown prompt_name {prompt_name!r}", f"this model's prompts: {known}")
        direction = params.get("truncation_direction") or "right"
        if direction not in ("left", "right", "Left", "Right"):
            raise BadInput("truncation_direction must be left or right", "fix the parameters")
        dimensions = int_param(params, "dimensions", None, 1, 1 << 16)
        truncate = bool_param(params, "truncate", True)
        return (normalize, prompt_name, direction.lower(), dimensions, truncate)

    def _embed(self, texts: list[str], key: tuple[Any, ...]) -> list[list[float]]:
        normalize, prompt_name, direction, dimensions, _truncate = key
        if hasattr(self, "st"):
            tok = getattr(self.st, "tokenizer", None)
            if tok is not None:
                tok.truncation_side = direction
            vectors = self.st.encode(
                texts,
                prompt_name=prompt_name,
                batch_size=32,
                show_progress_bar=False,
                convert_to_tensor=True,
                normalize_embeddings=bool(normalize),
                truncate_dim=dimensions,
            )
        else:
            self.tok.truncation_side = direction
            enc = self.tok(texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt")
            hidden = self.net(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if dimensions:
                vectors = vectors[:, :dimensions]
            if normalize:
                vectors = torch.nn.functional.normalize(vectors, dim=-1)
        result: list[list[float]] = vectors.float().cpu().tolist()
        return result
