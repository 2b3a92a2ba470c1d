"""The task table of ``hfa infer``: names and aliases, inputs, wire parameters, result checks and rendering.

A request is ``(task, inputs, parameters)`` exactly as the Inference API carries it: ``inputs`` is
what goes in the body's ``"inputs"`` (a string; ``{"question", "context"}`` for question answering;
an image file path for image tasks), ``parameters`` the body's ``"parameters"``. A result is what
huggingface_hub's ``InferenceClient`` method for the task returns, as plain JSON (``bytes`` for
text-to-image). Every :class:`Runner` (the HTTP client in :mod:`hfa.infer.client`, a future in-process
runner in ``hfa.infer.local``) takes and gives these same shapes, so the cache, the batch runner, the
selftest and the output work with any of them.

Nothing here imports huggingface_hub.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from hfa.errors import CheckFailed, UsageError


@dataclass
class Outcome:
    """One answered request and how it was answered: which provider, after how many HTTP attempts,
    which providers failed first (``fallbacks``: ``[{provider, error}]``), how long it took and waited,
    and whether the result cache answered it."""

    result: Any
    provider: str | None = None
    attempts: int = 0
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    latency_ms: int = 0
    waited_s: float = 0.0
    cached: bool = False

    def fields(self) -> dict[str, Any]:
        """What ``--json`` and every JSONL line carry besides the result."""
        return {
            "provider": self.provider,
            "attempts": self.attempts,
            "fallbacks": self.fallbacks,
            "latency_ms": self.latency_ms,
            "waited_s": self.waited_s,
            "cached": self.cached,
        }


@runtime_checkable
class Runner(Protocol):
    """Runs one inference request. Implemented by :class:`hfa.infer.client.InferenceAPI` and ``--local``.

    ``route`` names where results come from (a model URL, or ``local:…``); it is part of the
    result-cache key. ``run`` raises :class:`hfa.errors.HfaError` subclasses on failure.

    A local runner lives in ``hfa.infer.local`` and is created by its
    ``make_runner(settings: Settings, ref: RepoRef) -> Runner``; it is imported only for ``--local``.
    """

    route: str

    def run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any: ...


# -- checks (selftest) -----------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_labels(result: Any, parameters: dict[str, Any]) -> str:
    if not isinstance(result, list) or not result:
        raise CheckFailed(f"expected a non-empty list of {{label, score}}, got {_kind(result)}")
    for item in result:
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise CheckFailed(f"expected {{label: str, score: float}} items, got {item!r:.80}")
        score: Any = item.get("score")
        if not _is_number(score) or not 0.0 <= score <= 1.0:
            raise CheckFailed(f"score of '{item['label']}' is not a number in [0, 1]: {score!r}")
    wanted = parameters.get("candidate_labels")
    if isinstance(wanted, list):
        got = {item["label"] for item in result}
        if not got <= set(wanted):
            raise CheckFailed(f"labels {sorted(got - set(wanted))} were not among the candidates {wanted}")
    top = max(result, key=lambda item: item["score"])
    return f"{len(result)} label(s), top '{top['label']}' ({top['score']:.4f})"


def _check_text_field(key: str) -> Callable[[Any, dict[str, Any]], str]:
    def check(result: Any, parameters: dict[str, Any]) -> str:
        if not isinstance(result, dict) or not isinstance(result.get(key), str):
            raise CheckFailed(f"expected {{{key}: str}}, got {_kind(result)}")
        return f"{len(result[key])} characters of {key}"

    return check


def _check_generated(result: Any, parameters: dict[str, Any]) -> str:
    text = result.get("generated_text") if isinstance(result, dict) else result
    if not isinstance(text, str):
        raise CheckFailed(f"expected the generated text (a string), got {_kind(result)}")
    return f"{len(text)} characters generated"


def _check_answer(result: Any, parameters: dict[str, Any]) -> str:
    items = result if isinstance(result, list) else [result]
    if not items:
        raise CheckFailed("expected an answer, got an empty list")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("answer"), str):
            raise CheckFailed(f"expected {{answer, score, start, end}}, got {_kind(item)}")
        if not _is_number(item.get("score")) or not 0.0 <= item["score"] <= 1.0:
            raise CheckFailed(f"answer score is not a number in [0, 1]: {item.get('score')!r}")
        start, end = item.get("start"), item.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
            raise CheckFailed(f"answer span is not 0 <= start <= end: {start!r}..{end!r}")
    return f"answer '{items[0]['answer']}' ({items[0]['score']:.4f})"


def embedding_shape(result: Any) -> list[int]:
    """The shape of a nested list of numbers; raises CheckFailed if it is ragged, empty or not numeric."""
    if _is_number(result):
        return []
    if not isinstance(result, list) or not result:
        raise CheckFailed(f"expected a non-empty list of floats, got {_kind(result)}")
    shapes = [embedding_shape(item) for item in result]
    if any(shape != shapes[0] for shape in shapes):
        raise CheckFailed("the embedding is ragged (rows of different lengths)")
    return [len(result), *shapes[0]]


def _check_embedding(result: Any, parameters: dict[str, Any]) -> str:
    shape = embedding_shape(result)
    if not shape:
        raise CheckFailed("expected a list of floats, got one number")
    return f"dimension {shape[-1]}" + (f" (shape {'x'.join(map(str, shape))})" if len(shape) > 1 else "")


IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF8": "image/gif",
    b"RIFF": "image/webp",
}


def image_type(data: bytes) -> str | None:
    for magic, mime in IMAGE_MAGIC.items():
        if data.startswith(magic):
            return mime
    return None


def _check_image(result: Any, parameters: dict[str, Any]) -> str:
    if not isinstance(result, bytes) or not result:
        raise CheckFailed(f"expected image bytes, got {_kind(result)}")
    mime = image_type(result)
    if mime is None:
        raise CheckFailed(f"the {len(result)} bytes are not a PNG, JPEG, GIF or WebP image")
    return f"{mime}, {len(result)} bytes"


def _kind(value: Any) -> str:
    if isinstance(value, (list, dict, str, bytes)):
        return f"{type(value).__name__} {value!r:.60}"
    return type(value).__name__


# -- the table -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """One task: how its inputs look, which InferenceClient call carries it, how to check a result."""

    name: str
    summary: str
    input_kind: str  # "text" | "qa" | "image"
    method: str  # the InferenceClient method that defines the request and the parsing
    check: Callable[[Any, dict[str, Any]], str]
    selftest_inputs: Any
    selftest_parameters: dict[str, Any] = field(default_factory=dict)
    options: frozenset[str] = frozenset()  # CLI task options it accepts
    direct: bool = False  # sent through the client's request helper, not the method (no numpy/Pillow)
    pipeline_route: bool = False  # POST …/models/{repo}/pipeline/{task}, as the client does
    binary_output: bool = False


SELFTEST_TEXT = "Hugging Face Hub assets, pinned and pulled, should just work. This sentence proves it."

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "text-generation",
            "continue a prompt",
            "text",
            "text_generation",
            _check_generated,
            "Once upon a time,",
            {"max_new_tokens": 8},
            frozenset({"max_new_tokens"}),
        ),
        Task(
            "text-classification",
            "labels with scores for a text (alias: sentiment-analysis)",
            "text",
            "text_classification",
            _check_labels,
            "I love this movie, it is wonderful.",
        ),
        Task(
            "summarization",
            "a shorter text",
            "text",
            "summarization",
            _check_text_field("summary_text"),
            SELFTEST_TEXT,
            options=frozenset({"max_new_tokens"}),
        ),
        Task(
            "translation",
            "the text in another language",
            "text",
            "translation",
            _check_text_field("translation_text"),
            "Hello, how are you today?",
            options=frozenset({"max_new_tokens", "src_lang", "tgt_lang"}),
        ),
        Task(
            "question-answering",
            "the span of --context that answers the question",
            "qa",
            "question_answering",
            _check_answer,
            {"question": "What does hfa manage?", "context": "hfa manages Hugging Face Hub assets like packages."},
            options=frozenset({"context"}),
        ),
        Task(
            "zero-shot-classification",
            "scores for --labels you choose",
            "text",
            "zero_shot_classification",
            _check_labels,
            "The stock market fell sharply today.",
            {"candidate_labels": ["finance", "sports", "cooking"]},
            frozenset({"labels"}),
        ),
        Task(
            "text-to-image",
            "an image from a prompt (raw bytes to --output)",
            "text",
            "text_to_image",
            _check_image,
            "a red square on a white background",
            direct=True,
            binary_output=True,
        ),
        Task(
            "image-classification",
            "labels with scores for an image file",
            "image",
            "image_classification",
            _check_labels,
            None,  # a tiny PNG made on the fly
        ),
        Task(
            "feature-extraction",
            "an embedding vector (alias: embeddings)",
            "text",
            "feature_extraction",
            _check_embedding,
            "hfa proves this model works.",
            direct=True,
            pipeline_route=True,
        ),
    )
}

ALIASES = {"sentiment-analysis": "text-classification", "embeddings": "feature-extraction"}


def task_names() -> list[str]:
    return sorted([*TASKS, *ALIASES])


def get_task(name: str) -> Task:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in TASKS:
        raise UsageError(f"Unknown task '{name}'", f"use one of: {', '.join(task_names())}")
    return TASKS[key]


# -- requests --------------------------------------------------------------------------------------
def build_parameters(
    task: Task,
    *,
    labels: str | None = None,
    max_new_tokens: int | None = None,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    context: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wire parameters from the CLI's task options; an option the task does not take is a usage error.

    Whether the parameters are complete is :func:`check_parameters`' job, once a request's own are merged in.
    """
    given = {
        "labels": labels,
        "max_new_tokens": max_new_tokens,
        "src_lang": src_lang,
        "tgt_lang": tgt_lang,
        "context": context,
    }
    for name, value in given.items():
        if value is not None and name not in task.options:
            flag = "--" + name.replace("_", "-")
            takers = sorted(t.name for t in TASKS.values() if name in t.options)
            raise UsageError(f"{flag} does not apply to {task.name}", f"it is for: {', '.join(takers)}")
    params: dict[str, Any] = dict(extra or {})
    if labels is not None:
        names = [part.strip() for part in labels.split(",") if part.strip()]
        if not names:
            raise UsageError("--labels is empty", "give candidate labels such as --labels finance,sports")
        params["candidate_labels"] = names
    if max_new_tokens is not None:
        if max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, not {max_new_tokens}", "pass a positive number")
        if task.name == "text-generation":
            params["max_new_tokens"] = max_new_tokens
        else:
            params["generate_parameters"] = {
                **(params.get("generate_parameters") or {}),
                "max_new_tokens": max_new_tokens,
            }
    if src_lang is not None:
        params["src_lang"] = src_lang
    if tgt_lang is not None:
        params["tgt_lang"] = tgt_lang
    return params


def check_parameters(task: Task, params: dict[str, Any]) -> None:
    """Refuse what no runner can do, before any request is sent."""
    if not isinstance(params, dict):
        raise UsageError(f"parameters must be a JSON object, not {type(params).__name__}", 'write {"top_k": 2}')
    if ("src_lang" in params) != ("tgt_lang" in params):
        raise UsageError("translation needs both --src-lang and --tgt-lang, or neither", "pass both")
    if task.name == "zero-shot-classification":
        labels = params.get("candidate_labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise UsageError("zero-shot-classification needs candidate labels", "pass --labels a,b,c")
    if params.get("stream"):
        raise UsageError("streaming is not supported by hfa infer", 'drop "stream" from --parameters')


def make_inputs(task: Task, raw: Any, *, context: str | None = None) -> Any:
    """Check and normalise one request's inputs for ``task`` (from --input, a file, or a JSONL line)."""
    if task.input_kind == "qa":
        if isinstance(raw, str):
            if context is None:
                raise UsageError("question-answering needs a context", "pass --context TEXT (the question is --input)")
            raw = {"question": raw, "context": context}
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("question"), str)
            or not isinstance(raw.get("context"), str)
        ):
            raise UsageError(
                'question-answering inputs must be a question string with --context, or {"question": …, "context": …}',
                "fix the input",
            )
        return {"question": raw["question"], "context": raw["context"]}
    if task.input_kind == "image":
        if not isinstance(raw, str) or not raw:
            raise UsageError(f"{task.name} inputs must be an image file path", "pass --input photo.jpg")
        path = Path(raw).expanduser()
        if not path.is_file():
            raise UsageError(f"Image file '{raw}' not found", "pass the path of an image file")
        return str(path)
    if task.name == "feature-extraction" and isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return raw
    if not isinstance(raw, str):
        raise UsageError(f"{task.name} inputs must be a string, not {type(raw).__name__}", "fix the input")
    return raw


def input_identity(task: Task, inputs: Any) -> Any:
    """What identifies ``inputs`` in the result-cache key: an image by its content, not its path."""
    if task.input_kind == "image":
        data = Path(inputs).read_bytes()
        return {"image_sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    return inputs


def tiny_png(width: int = 8, height: int = 8) -> bytes:
    """A valid RGB PNG (a gradient), built without Pillow: the selftest input for image tasks."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 32 % 256, y * 32 % 256, 128)) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# -- selftest --------------------------------------------------------------------------------------
@dataclass
class SelftestReport:
    task: str
    ok: bool
    summary: str
    result: Any

    def to_json(self) -> dict[str, Any]:
        result = {"bytes": len(self.result)} if isinstance(self.result, bytes) else self.result
        return {"task": self.task, "ok": self.ok, "summary": self.summary, "result": result}


def selftest(runner: Runner, task: Task, parameters: dict[str, Any] | None = None) -> SelftestReport:
    """Run the task's built-in input through ``runner`` and check the result's shape and type.

    Raises CheckFailed (exit 1) naming what is wrong; errors of the runner pass through.
    """
    import tempfile

    params = {**task.selftest_parameters, **(parameters or {})}
    if task.name == "translation" and "src_lang" not in params:
        params.pop("tgt_lang", None)
    check_parameters(task, params)
    with tempfile.TemporaryDirectory(prefix="hfa-selftest-") as tmp:
        inputs = task.selftest_inputs
        if task.input_kind == "image":
            image = Path(tmp) / "selftest.png"
            image.write_bytes(tiny_png())
            inputs = str(image)
        result = runner.run(task.name, inputs, params)
    try:
        summary = task.check(result, params)
    except CheckFailed as exc:
        raise CheckFailed(
            f"selftest of {task.name} failed: {exc.message}",
            "the model or endpoint does not answer this task correctly",
        ) from None
    return SelftestReport(task.name, True, summary, result)


# -- human output ----------------------------------------------------------------------------------
def render(task: Task, result: Any) -> list[str]:
    """Readable lines for one result (the CLI prints them on stdout)."""
    if task.check is _check_labels and isinstance(result, list):
        items = [item for item in result if isinstance(item, dict)]
        width = max((len(str(item.get("label"))) for item in items), default=5)
        return [f"{item.get('label')!s:<{width}}  {item.get('score') or 0:.4f}" for item in items]
    if task.name == "text-generation":
        return [result.get("generated_text", "") if isinstance(result, dict) else str(result)]
    if task.name in ("summarization", "translation") and isinstance(result, dict):
        return [str(result.get("summary_text", result.get("translation_text", "")))]
    if task.name == "question-answering":
        items = result if isinstance(result, list) else [result]
        return [
            f"{item.get('answer')}  (score {item.get('score', 0):.4f}, characters {item.get('start')}-{item.get('end')})"
            for item in items
            if isinstance(item, dict)
        ]
    if task.name == "feature-extraction":
        try:
            shape = embedding_shape(result)
        except CheckFailed:
            return [str(result)]
        first = result
        while isinstance(first, list) and first and isinstance(first[0], list):
            first = first[0]
        values = ", ".join(f"{v:.4f}" for v in first[:5]) if isinstance(first, list) else ""
        dims = f"dimension {shape[-1]}" if shape else "a number"
        extra = f", shape {'x'.join(map(str, shape))}" if len(shape) > 1 else ""
        return [f"embedding: {dims}{extra}", f"first values: {values}{', …' if shape and shape[-1] > 5 else ''}"]
    return [str(result)]
