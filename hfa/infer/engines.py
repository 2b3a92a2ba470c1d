"""In-process models on CPU, one per (model, task), answering in the Inference API's wire shapes.

Needs the optional extra ``hfa[infer]`` (torch, transformers, sentence-transformers, pillow, diffusers).
transformers 5 dropped the summarization, translation and question-answering pipelines, so every
task here is written against the ``AutoModelFor…`` classes directly: the same code on every
transformers 5 release, and full control of the answer's shape.

Wire shapes (what the Hub's hf-inference answers, and ``InferenceClient`` parses):

=========================  ===============================================================
text-classification        ``[[{label, score}, …]]`` (one inner list per input text)
zero-shot-classification   ``[{label, score}, …]``
summarization              ``[{"summary_text": …}]``
translation                ``[{"translation_text": …}]``
question-answering         ``{answer, score, start, end}`` (a list of them when top_k > 1)
text-generation            ``[{"generated_text": …}]``
image-classification       ``[{label, score}, …]``
feature-extraction         ``[float, …]`` for one string, ``[[float, …], …]`` for a list
text-to-image              PNG bytes (diffusers, :mod:`hfa.infer.image_engine`)
=========================  ===============================================================

Every engine is safe to call from many threads: forward passes run one at a time per engine;
feature-extraction requests that arrive meanwhile are merged into the next forward pass
(:mod:`hfa.infer.embeddings`).

Loading is not: transformers' ``from_pretrained`` patches torch process-wide while it builds a
model (the default device becomes ``meta``, init functions are swapped out), so two loads in
parallel threads can leave one model with weights that were never loaded (seen as T5 answering
"Tensor.item() cannot be called on meta tensors" forever). :func:`load_engine` therefore loads one
model at a time per process, and refuses a model that still holds meta tensors once loaded.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from hfa.errors import HfaError, UsageError
from hfa.infer.modelfiles import ModelFailed, ModelFiles, StagedModel, UnsupportedTask, check_policy, explain_failure

# One model loads at a time in this process: from_pretrained is not thread-safe (see the module doc).
_LOADING = threading.Lock()

TGI_ONLY = (
    "adapter_id",
    "best_of",
    "decoder_input_details",
    "details",
    "frequency_penalty",
    "grammar",
    "top_n_tokens",
    "watermark",
)


class BadInput(UsageError):
    """The request's inputs or parameters are wrong for this task (HTTP 400)."""


# -- parameters --------------------------------------------------------------------------------------
def _texts(inputs: Any, *, allow_list: bool = True) -> tuple[list[str], bool]:
    """The input texts, and whether a single string was given."""
    if isinstance(inputs, str):
        return [inputs], True
    if allow_list and isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs):
        return list(inputs), False
    kind = "a string or a list of strings" if allow_list else "a string"
    raise BadInput(f"inputs must be {kind}, not {type(inputs).__name__}", 'send {"inputs": "some text"}')


def _int(params: dict[str, Any], name: str, default: int | None, low: int = 1, high: int = 1 << 20) -> int | None:
    value = params.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"parameter {name} must be an integer in [{low}, {high}], not {value!r}", "fix the parameters")
    return value


def _float(params: dict[str, Any], name: str, low: float = 0.0, high: float = 1e6) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadInput(f"parameter {name} must be a number in [{low:g}, {high:g}], not {value!r}", "fix the parameters")
    return float(value)


def _bool(params: dict[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadInput(f"parameter {name} must be true or false, not {value!r}", "fix the parameters")
    return value


def _scores(logits: torch.Tensor, function: str | None, multi_label: bool) -> torch.Tensor:
    name = function or ("sigmoid" if multi_label or logits.shape[-1] == 1 else "softmax")
    if name == "softmax":
        return logits.softmax(-1)
    if name == "sigmoid":
        return logits.sigmoid()
    if name == "none":
        return logits
    raise BadInput(f"function_to_apply must be softmax, sigmoid or none, not {function!r}", "fix the parameters")


def _ranked(labels: dict[int, str], scores: list[float], top_k: int | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"label": labels.get(i, f"LABEL_{i}"), "score": float(s)} for i, s in enumerate(scores)
    ]
    items.sort(key=lambda item: -float(item["score"]))
    return items[:top_k] if top_k else items


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

    def load(self, loader: _Loader) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, inputs: Any, parameters: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        self.staged.close()


class _Loader:
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


class TextClassification(Engine):
    def load(self, loader: _Loader) -> None:
        from transformers import AutoModelForSequenceClassification

        self.tok = loader.tokenizer()
        self.net = loader.model(AutoModelForSequenceClassification, self.task)
        self.max_len = _max_length(self.tok, self.net)

    def _logits(self, texts: list[str], pairs: list[str] | None = None) -> torch.Tensor:
        enc = self.tok(
            texts,
            pairs,
            padding=True,
            truncation="only_first" if pairs else True,
            max_length=self.max_len,
            return_tensors="pt",
        )
        return self.net(**enc).logits

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        texts, _single = _texts(inputs)
        top_k = _int(params, "top_k", None)
        config = self.net.config
        multi = getattr(config, "problem_type", None) == "multi_label_classification"
        scores = _scores(self._logits(texts), params.get("function_to_apply"), multi)
        return [_ranked(config.id2label, row.tolist(), top_k) for row in scores]


class ZeroShotClassification(TextClassification):
    def load(self, loader: _Loader) -> None:
        super().load(loader)
        labels = {str(v).lower(): int(k) for k, v in self.net.config.id2label.items()}
        self.entail = next((i for name, i in labels.items() if name.startswith("entail")), None)
        self.contra = next((i for name, i in labels.items() if name.startswith("contra")), None)
        if self.entail is None:
            raise UnsupportedTask(
                "zero-shot-classification needs an NLI model (an 'entailment' label in config.json's id2label)",
                "use a model fine-tuned on NLI (MNLI, XNLI)",
            )

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        text = _texts(inputs, allow_list=False)[0][0]
        labels = params.get("candidate_labels")
        if isinstance(labels, str):
            labels = [x.strip() for x in labels.split(",") if x.strip()]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise BadInput("zero-shot-classification needs candidate_labels, a list of strings", "send parameters")
        template = params.get("hypothesis_template") or "This example is {}."
        if not isinstance(template, str) or "{}" not in template:
            raise BadInput("hypothesis_template must be a string with {} in it", 'e.g. "This text is about {}."')
        multi = _bool(params, "multi_label", False)
        logits = self._logits([text] * len(labels), [template.format(label) for label in labels])
        entail: int = self.entail  # type: ignore[assignment]  # load() refused models without one
        if multi or len(labels) == 1:
            contra = self.contra if self.contra is not None else 1 - entail if logits.shape[-1] == 2 else 0
            scores = logits[:, [contra, entail]].softmax(-1)[:, 1]
        else:
            scores = logits[:, entail].softmax(0)
        items = [{"label": label, "score": float(s)} for label, s in zip(labels, scores.tolist(), strict=True)]
        return sorted(items, key=lambda item: -item["score"])


_GENERATE = {  # generate() keyword: (kind, low, high)
    "max_new_tokens": ("int", 1, 4096),
    "min_new_tokens": ("int", 0, 4096),
    "max_length": ("int", 1, 8192),
    "min_length": ("int", 0, 8192),
    "num_beams": ("int", 1, 16),
    "top_k": ("int", 0, 100000),
    "no_repeat_ngram_size": ("int", 0, 64),
    "temperature": ("float", 0.0, 100.0),
    "top_p": ("float", 0.0, 1.0),
    "typical_p": ("float", 0.0, 1.0),
    "repetition_penalty": ("float", 0.0, 100.0),
    "length_penalty": ("float", -100.0, 100.0),
    "do_sample": ("bool", 0, 0),
    "early_stopping": ("bool", 0, 0),
}


def _generate_kwargs(params: dict[str, Any], names: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names if names is not None else list(params):
        if name not in params or params[name] is None:
            continue
        if name not in _GENERATE:
            raise BadInput(f"unknown generation parameter {name}", f"use: {', '.join(sorted(_GENERATE))}")
        kind, low, high = _GENERATE[name]
        if kind == "int":
            out[name] = _int(params, name, None, int(low), int(high))
        elif kind == "float":
            out[name] = _float(params, name, float(low), float(high))
        else:
            out[name] = _bool(params, name, False)
    if out.get("temperature") == 0.0:  # TGI's greedy
        out.pop("temperature")
        out["do_sample"] = False
    return out


def _seeded(params: dict[str, Any]) -> None:
    seed = _int(params, "seed", None, 0, 2**63 - 1)
    if seed is not None:
        torch.manual_seed(seed)


class TextGeneration(Engine):
    def load(self, loader: _Loader) -> None:
        from transformers import AutoModelForCausalLM

        self.tok = loader.tokenizer()
        self.net = loader.model(AutoModelForCausalLM, self.task)

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        prompt = _texts(inputs, allow_list=False)[0][0]
        unused = [name for name in TGI_ONLY if params.get(name)]
        if unused:  # the sentence InferenceClient looks for, to retry without them
            raise BadInput(f"The following `model_kwargs` are not used by the model: {unused}", "drop them")
        known = {*_GENERATE, *TGI_ONLY, "seed", "return_full_text", "stop", "stop_sequences", "truncate"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise BadInput(f"The following `model_kwargs` are not used by the model: {unknown}", "drop them")
        kwargs = _generate_kwargs(params, [n for n in _GENERATE if n in params])
        kwargs.setdefault("max_new_tokens", 20)
        full = _bool(params, "return_full_text", True)
        stops = params.get("stop") or params.get("stop_sequences") or []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise BadInput("stop must be a list of strings", "fix the parameters")
        enc = self.tok(prompt, return_tensors="pt")
        truncate = _int(params, "truncate", None)
        if truncate is not None:
            enc = {k: v[:, -truncate:] for k, v in enc.items()}
        _seeded(params)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        out = self.net.generate(**enc, pad_token_id=pad, **kwargs)
        new = self.tok.decode(out[0][enc["input_ids"].shape[1] :], skip_special_tokens=True)
        cut = min((new.find(s) + len(s) for s in stops if s and s in new), default=len(new))
        new = new[:cut]
        return [{"generated_text": prompt + new if full else new}]


class Seq2Seq(Engine):
    """summarization and translation."""

    def load(self, loader: _Loader) -> None:
        from transformers import AutoModelForSeq2SeqLM

        self.tok = loader.tokenizer()
        self.net = loader.model(AutoModelForSeq2SeqLM, self.task)
        self.max_len = _max_length(self.tok, self.net)
        specific = getattr(self.net.config, "task_specific_params", None) or {}
        key = self.task if self.task in specific else next((k for k in specific if k.startswith(self.task)), None)
        self.prefix = str((specific.get(key) or {}).get("prefix", "")) if key else ""

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        texts, _single = _texts(inputs)
        gen = params.get("generate_parameters") or {}
        if not isinstance(gen, dict):
            raise BadInput("generate_parameters must be an object", 'e.g. {"max_new_tokens": 40}')
        kwargs = _generate_kwargs(gen)
        clean = _bool(params, "clean_up_tokenization_spaces", False)
        truncation = params.get("truncation") or "longest_first"
        if truncation not in ("do_not_truncate", "longest_first", "only_first", "only_second"):
            raise BadInput("truncation must be do_not_truncate, longest_first, only_first or only_second", "fix it")
        prefix = self.prefix
        src, tgt = params.get("src_lang"), params.get("tgt_lang")
        if (src is None) != (tgt is None):
            raise BadInput("translation needs both src_lang and tgt_lang, or neither", "send both")
        if src is not None:
            prefix = self._languages(str(src), str(tgt), kwargs)
        _seeded(gen)
        enc = self.tok(
            [prefix + t for t in texts],
            padding=True,
            truncation=truncation != "do_not_truncate",
            max_length=self.max_len,
            return_tensors="pt",
        )
        out = self.net.generate(**enc, **kwargs)
        key = "summary_text" if self.task == "summarization" else "translation_text"
        decoded = self.tok.batch_decode(out, skip_special_tokens=True, clean_up_tokenization_spaces=clean)
        return [{key: text} for text in decoded]

    def _languages(self, src: str, tgt: str, kwargs: dict[str, Any]) -> str:
        """Multilingual tokenizers (mBART, NLLB, M2M) take language codes; T5 takes them in the prompt."""
        if hasattr(self.tok, "src_lang"):
            self.tok.src_lang = src
            lang_id = self.tok.get_lang_id(tgt) if hasattr(self.tok, "get_lang_id") else None
            if lang_id is None:
                lang_id = self.tok.convert_tokens_to_ids(tgt)
            if lang_id is None or lang_id == self.tok.unk_token_id:
                raise BadInput(f"unknown tgt_lang '{tgt}' for this tokenizer", "use the model's language codes")
            kwargs["forced_bos_token_id"] = lang_id
            return ""
        return f"translate {src} to {tgt}: "


class QuestionAnswering(Engine):
    def load(self, loader: _Loader) -> None:
        from transformers import AutoModelForQuestionAnswering

        self.tok = loader.tokenizer()
        if not getattr(self.tok, "is_fast", False):
            raise UnsupportedTask("question-answering needs a fast tokenizer (tokenizer.json)", "add tokenizer.json")
        self.net = loader.model(AutoModelForQuestionAnswering, self.task)

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inputs, dict) or not isinstance(inputs.get("question"), str):
            raise BadInput('question-answering inputs must be {"question": …, "context": …}', "fix the inputs")
        question, context = inputs["question"], inputs.get("context")
        if not isinstance(context, str) or not context or not question:
            raise BadInput("question-answering needs a non-empty question and context", "fix the inputs")
        top_k = _int(params, "top_k", 1, 1, 100) or 1
        max_answer = _int(params, "max_answer_len", 15, 1, 1024) or 15
        max_seq = _int(params, "max_seq_len", _max_length(self.tok, self.net, 384), 16, 8192)
        stride = _int(params, "doc_stride", 128, 0, 4096) or 0
        impossible = _bool(params, "handle_impossible_answer", False)
        max_q = _int(params, "max_question_len", 64, 1, 4096) or 64
        q_ids = self.tok(question, add_special_tokens=False)["input_ids"][:max_q]
        question = self.tok.decode(q_ids) if len(q_ids) == max_q else question
        enc = self.tok(
            question,
            context,
            truncation="only_second",
            max_length=max_seq,
            stride=min(stride, max(0, (max_seq or 384) // 2)),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping")
        enc.pop("overflow_to_sample_mapping", None)
        out = self.net(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
        answers: list[dict[str, Any]] = []
        null = 0.0
        for i in range(out.start_logits.shape[0]):
            is_context = torch.tensor([s == 1 for s in enc.sequence_ids(i)])
            keep = is_context.clone()
            keep[0] = keep[0] or impossible
            start = out.start_logits[i].masked_fill(~keep, -1e4).softmax(-1)
            end = out.end_logits[i].masked_fill(~keep, -1e4).softmax(-1)
            null = max(null, float(start[0] * end[0])) if impossible else 0.0
            pair = torch.triu(start[:, None] * end[None, :]).tril(max_answer - 1)
            pair = pair * is_context[:, None] * is_context[None, :]
            flat = pair.flatten()
            for idx in flat.topk(min(top_k, flat.numel())).indices.tolist():
                s, e = divmod(idx, pair.shape[1])
                if not (is_context[s] and is_context[e]):
                    continue
                a, b = int(offsets[i][s][0]), int(offsets[i][e][1])
                answers.append({"answer": context[a:b], "score": float(flat[idx]), "start": a, "end": b})
        if impossible:
            answers.append({"answer": "", "score": null, "start": 0, "end": 0})
        answers.sort(key=lambda x: -x["score"])
        if not answers:
            answers = [{"answer": "", "score": 0.0, "start": 0, "end": 0}]
        return answers[0] if top_k == 1 else answers[:top_k]


class ImageClassification(Engine):
    def load(self, loader: _Loader) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.processor = AutoImageProcessor.from_pretrained(loader.path, **loader.common)
        self.net = loader.model(AutoModelForImageClassification, self.task)

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        from PIL import Image, UnidentifiedImageError

        if not isinstance(inputs, (bytes, bytearray)) or not inputs:
            raise BadInput("image-classification inputs must be an image (raw bytes, or base64 in JSON)", "send one")
        try:
            with Image.open(io.BytesIO(inputs)) as img:
                image = img.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise BadInput(f"cannot read the image: {exc}", "send a PNG, JPEG, GIF or WebP image") from None
        top_k = _int(params, "top_k", 5)
        logits = self.net(**self.processor(images=image, return_tensors="pt")).logits
        multi = getattr(self.net.config, "problem_type", None) == "multi_label_classification"
        scores = _scores(logits, params.get("function_to_apply"), multi)[0]
        return _ranked(self.net.config.id2label, scores.tolist(), top_k)


def _text_to_image(**kwargs: Any) -> Engine:
    from hfa.infer.image_engine import TextToImage  # diffusers: its own module, imported when asked for

    return TextToImage(**kwargs)


def _max_length(tok: Any, net: Any, cap: int = 512) -> int:
    limits = [cap]
    model_max = getattr(tok, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 1_000_000:
        limits.append(model_max)
    positions = getattr(net.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits)


ENGINES: dict[str, Callable[..., Engine]] = {
    "text-classification": TextClassification,
    "zero-shot-classification": ZeroShotClassification,
    "text-generation": TextGeneration,
    "summarization": Seq2Seq,
    "translation": Seq2Seq,
    "question-answering": QuestionAnswering,
    "image-classification": ImageClassification,
    "text-to-image": _text_to_image,
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
    if task == "feature-extraction":
        from hfa.infer.embeddings import FeatureExtraction

        factory: Callable[..., Engine] | None = FeatureExtraction
    else:
        factory = ENGINES.get(task)
    if factory is None:
        raise UnsupportedTask(f"hfa cannot run {task}", f"it runs: {', '.join(sorted(ENGINES))}")
    with _LOADING:
        staged = StagedModel(model, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        try:
            engine = factory(task=task, model=model, staged=staged)
            engine.load(_Loader(staged, allow_pickle, trust_remote_code, for_server))
            unloaded = _meta_tensors(engine)
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


def _meta_tensors(engine: Engine) -> list[str]:
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
