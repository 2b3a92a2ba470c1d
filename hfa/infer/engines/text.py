"""The text tasks on transformers' ``AutoModelFor…`` classes: text-classification,
zero-shot-classification, text-generation, summarization and translation (:class:`Seq2Seq`), and
question-answering.

transformers 5 dropped the summarization, translation and question-answering pipelines, so every
task here is written against the ``AutoModelFor…`` classes directly: the same code on every
transformers 5 release, and full control of the answer's shape.
"""

from __future__ import annotations

from typing import Any

import torch

from hfa.infer.engines.base import (
    BadInput,
    Engine,
    Loader,
    bool_param,
    float_param,
    input_texts,
    int_param,
    label_scores,
    max_length,
    ranked_labels,
)
from hfa.infer.modelfiles import UnsupportedTask

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


class TextClassification(Engine):
    def load(self, loader: Loader) -> None:
        from transformers import AutoModelForSequenceClassification

        self.tok = loader.tokenizer()
        self.net = loader.model(AutoModelForSequenceClassification, self.task)
        self.max_len = max_length(self.tok, self.net)

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
        texts, _single = input_texts(inputs)
        top_k = int_param(params, "top_k", None)
        config = self.net.config
        multi = getattr(config, "problem_type", None) == "multi_label_classification"
        scores = label_scores(self._logits(texts), params.get("function_to_apply"), multi)
        return [ranked_labels(config.id2label, row.tolist(), top_k) for row in scores]


class ZeroShotClassification(TextClassification):
    def load(self, loader: Loader) -> None:
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
        text = input_texts(inputs, allow_list=False)[0][0]
        labels = params.get("candidate_labels")
        if isinstance(labels, str):
            labels = [x.strip() for x in labels.split(",") if x.strip()]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise BadInput("zero-shot-classification needs candidate_labels, a list of strings", "send parameters")
        template = params.get("hypothesis_template") or "This example is {}."
        if not isinstance(template, str) or "{}" not in template:
            raise BadInput("hypothesis_template must be a string with {} in it", 'e.g. "This text is about {}."')
        multi = bool_param(params, "multi_label", False)
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
            out[name] = int_param(params, name, None, int(low), int(high))
        elif kind == "float":
            out[name] = float_param(params, name, float(low), float(high))
        else:
            out[name] = bool_param(params, name, False)
    if out.get("temperature") == 0.0:  # TGI's greedy
        out.pop("temperature")
        out["do_sample"] = False
    return out


def _seeded(params: dict[str, Any]) -> None:
    seed = int_param(params, "seed", None, 0, 2**63 - 1)
    if seed is not None:
        torch.manual_seed(seed)


class TextGeneration(Engine):
    def load(self, loader: Loader) -> None:
        from transformers import AutoModelForCausalLM

        self.tok = loader.tokenizer()
        self.net = loader.model(AutoModelForCausalLM, self.task)

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        prompt = input_texts(inputs, allow_list=False)[0][0]
        unused = [name for name in TGI_ONLY if params.get(name)]
        if unused:  # the sentence InferenceClient looks for, to retry without them
            raise BadInput(f"The following `model_kwargs` are not used by the model: {unused}", "drop them")
        known = {*_GENERATE, *TGI_ONLY, "seed", "return_full_text", "stop", "stop_sequences", "truncate"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise BadInput(f"The following `model_kwargs` are not used by the model: {unknown}", "drop them")
        kwargs = _generate_kwargs(params, [n for n in _GENERATE if n in params])
        kwargs.setdefault("max_new_tokens", 20)
        full = bool_param(params, "return_full_text", True)
        stops = params.get("stop") or params.get("stop_sequences") or []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise BadInput("stop must be a list of strings", "fix the parameters")
        enc = self.tok(prompt, return_tensors="pt")
        truncate = int_param(params, "truncate", None)
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

    def load(self, loader: Loader) -> None:
        from transformers import AutoModelForSeq2SeqLM

        self.tok = loader.tokenizer()
        self.net = loader.model(AutoModelForSeq2SeqLM, self.task)
        self.max_len = max_length(self.tok, self.net)
        specific = getattr(self.net.config, "task_specific_params", None) or {}
        key = self.task if self.task in specific else next((k for k in specific if k.startswith(self.task)), None)
        self.prefix = str((specific.get(key) or {}).get("prefix", "")) if key else ""

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        texts, _single = input_texts(inputs)
        gen = params.get("generate_parameters") or {}
        if not isinstance(gen, dict):
            raise BadInput("generate_parameters must be an object", 'e.g. {"max_new_tokens": 40}')
        kwargs = _generate_kwargs(gen)
        clean = bool_param(params, "clean_up_tokenization_spaces", False)
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
    def load(self, loader: Loader) -> None:
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
        top_k = int_param(params, "top_k", 1, 1, 100) or 1
        max_answer = int_param(params, "max_answer_len", 15, 1, 1024) or 15
        max_seq = int_param(params, "max_seq_len", max_length(self.tok, self.net, 384), 16, 8192)
        stride = int_param(params, "doc_stride", 128, 0, 4096) or 0
        impossible = bool_param(params, "handle_impossible_answer", False)
        max_q = int_param(params, "max_question_len", 64, 1, 4096) or 64
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
