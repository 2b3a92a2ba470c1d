"""What a model is made of, before anything is loaded: its files, its task, and whether it may run.

Shared by ``hfa infer --local`` (:mod:`hfa.infer.local`) and ``hfa serve --infer``
(:mod:`hfa.infer.pool`). Nothing here imports torch or transformers, so the server can refuse
a model, or name its task, without the optional extra; and nothing here executes content.

Safety rules, applied before a model is loaded:

* pickle files (``.bin``, ``.pt``, ``.pth``, ``.ckpt``, ``.pkl``, …) are never loaded unless
  ``allow_pickle``: they are left out of the folder the model is loaded from, and a model whose
  weights exist only as pickles is refused. Even when allowed, a pickle that hfa's scanner finds
  dangerous is refused;
* repository code (``auto_map`` in a config, custom sentence-transformers modules, custom diffusers
  pipelines or components in ``model_index.json``, ``*.py``) runs
  only when ``trust_remote_code`` is given for that repo; otherwise the model is refused and the
  ``.py`` files are left out of the load folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.errors import CheckFailed, UsageError
from hfa.resolve.refs import RepoRef

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
SAFETENSORS_SUFFIX = ".safetensors"
# Tasks hfa can run; the names are the Inference API's (and huggingface_hub's).
TASKS = (
    "text-generation",
    "text-classification",
    "summarization",
    "translation",
    "question-answering",
    "zero-shot-classification",
    "text-to-image",
    "image-classification",
    "feature-extraction",
)
TASK_ALIASES = {
    "sentiment-analysis": "text-classification",
    "embeddings": "feature-extraction",
    "sentence-similarity": "feature-extraction",
    "sentence-embeddings": "feature-extraction",
}
# Architecture name endings -> the task a model without a pipeline_tag most likely serves.
_ARCH_TASKS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "image-classification"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "summarization"),
)


class ModelRefused(CheckFailed):
    """The model may not run under the current policy (pickle weights, repository code, dangerous content)."""

    def __init__(self, message: str, hint: str, code: str) -> None:
        super().__init__(message, hint)
        self.code = code  # "PickleRefused", "RemoteCodeRefused" or "UnsafeContent"


class UnsupportedTask(UsageError):
    """The task is unknown, or this model cannot run it."""


class ModelFailed(CheckFailed):
    """Loading or running a model raised (its files, its libraries, or its repository's own code)."""


def trust_hint(repo_id: str, *, for_server: bool) -> str:
    """How to let ``repo_id``'s own code run, in the syntax of the command that refused it."""
    if for_server:
        return f"if you have read and trust that code: start hfa serve with --infer --trust-remote-code {repo_id}"
    return "if you have read and trust that code: add --trust-remote-code to this `hfa infer --local` command"


def normalize_task(name: str) -> str:
    key = name.strip().lower()
    key = TASK_ALIASES.get(key, key)
    if key not in TASKS:
        raise UnsupportedTask(f"Unsupported task '{name}'", f"use one of: {', '.join(TASKS)}")
    return key


@dataclass(frozen=True)
class ModelFiles:
    """One commit of a model: repository paths mapped to the real files (cache blobs) holding them."""

    repo_id: str
    commit: str
    files: Mapping[str, Path]
    card: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.commit[:12]}"

    def read_json(self, path: str) -> dict[str, Any] | None:
        real = self.files.get(path)
        if real is None:
            return None
        try:
            if real.stat().st_size > 4 * 1024 * 1024:
                return None
            doc = json.loads(real.read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    @property
    def is_sentence_transformers(self) -> bool:
        return "modules.json" in self.files

    def weight_bytes(self) -> int:
        total = 0
        for path, real in self.files.items():
            if path.endswith((SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)):
                with contextlib.suppress(OSError):
                    total += real.stat().st_size
        return total

    def pipeline_tag(self) -> str | None:
        tag = self.card.get("pipeline_tag")
        return tag if isinstance(tag, str) and tag else None

    def default_task(self) -> str:
        """The task to run when none is asked for: the card's pipeline_tag, else a guess from the files."""
        tag = self.pipeline_tag()
        if tag is not None:
            try:
                return normalize_task(tag)
            except UnsupportedTask:
                raise UnsupportedTask(
                    f"'{self.repo_id}' is a {tag} model, which hfa cannot run",
                    f"hfa runs: {', '.join(TASKS)}",
                ) from None
        if self.is_sentence_transformers:
            return "feature-extraction"
        if "model_index.json" in self.files:
            return "text-to-image"
        config = self.read_json("config.json") or {}
        archs = config.get("architectures") or []
        for arch in archs if isinstance(archs, list) else []:
            for suffix, task in _ARCH_TASKS:
                if isinstance(arch, str) and arch.endswith(suffix):
                    return task
        raise UnsupportedTask(
            f"'{self.repo_id}' names no task (no pipeline_tag in its card)",
            "ask for one: POST /models/{repo}/pipeline/{task}, or set pipeline_tag in README.md",
        )


def from_cache(cache_dir: Path, ref: RepoRef, lock: Any = None) -> ModelFiles:
    """Resolve ``ref`` offline from the cache (and the lock, when given): the snapshot's files, never the network."""
    from hfa.cache.layout import RepoDir
    from hfa.cache.walk import walk_snapshot
    from hfa.resolve.resolver import resolve_offline

    if ref.repo_type != "model":
        raise UsageError(f"'{ref.display}' is a {ref.repo_type}; inference runs models", "pass a model repo")
    entry = lock.get(ref.repo_id) if lock is not None else None
    if entry is not None and ref.revision in (None, entry.revision, entry.commit):
        ref = RepoRef(ref.repo_id, "model", entry.commit)
    resolved, _complete = resolve_offline(cache_dir, ref)
    allowed = {f.path for f in entry.files} if entry is not None else None
    files: dict[str, Path] = {}
    for found in walk_snapshot(RepoDir(Path(cache_dir), "model", ref.repo_id), resolved.commit):
        if found.real is None:
            continue  # not a blob of this repo nor a plain copy (hfa.cache.walk's rule)
        if allowed is not None and found.rel not in allowed:
            continue
        files[found.rel] = found.real
    if not files:
        raise CheckFailed(
            f"The snapshot of '{ref.display}' ({resolved.commit[:12]}) holds no files", f"run `hfa pull {ref.display}`"
        )
    return ModelFiles(ref.repo_id, resolved.commit, files, dict(resolved.card_data or {}))


# -- policy -----------------------------------------------------------------------------------------
def remote_code_reasons(model: ModelFiles) -> list[str]:
    """Why loading ``model`` would run code from its repository (empty: it would not)."""
    reasons: list[str] = []
    for path in sorted(model.files):
        name = path.rsplit("/", 1)[-1]
        if name in ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json"):
            doc = model.read_json(path) or {}
            if doc.get("auto_map"):
                reasons.append(f"auto_map in {path}")
    reasons += _pipeline_code_reasons(model)
    modules = model.files.get("modules.json")
    if modules is not None:
        try:
            listed: Any = json.loads(modules.read_bytes())
        except (OSError, ValueError):
            listed = []
        for module in listed if isinstance(listed, list) else []:
            kind = module.get("type") if isinstance(module, dict) else None
            if isinstance(kind, str) and not kind.startswith("sentence_transformers."):
                reasons.append(f"custom module {kind} in modules.json")
    return reasons


def _pipeline_code_reasons(model: ModelFiles) -> list[str]:
    """A diffusers pipeline whose model_index.json names a custom pipeline or component from the repository."""
    index = model.read_json("model_index.json")
    if index is None:
        return []
    reasons = []
    name = index.get("_class_name")
    if isinstance(name, list) or (isinstance(name, str) and f"{name}.py" in model.files):
        reasons.append(f"custom pipeline {name} in model_index.json")
    if isinstance(index.get("custom_pipeline"), str):
        reasons.append(f"custom pipeline {index['custom_pipeline']} in model_index.json")
    for key, spec in sorted(index.items()):
        if key.startswith("_") or not isinstance(spec, list) or not spec or not isinstance(spec[0], str):
            continue
        if f"{key}/{spec[0]}.py" in model.files or f"{spec[0]}.py" in model.files:
            reasons.append(f"custom component {key} ({spec[0]}.py) in model_index.json")
    return reasons


def pickle_only_weights(model: ModelFiles) -> list[str]:
    """Pickle weight files in folders that hold no safetensors: what could only load by unpickling."""
    folders_with_safetensors = {p.rpartition("/")[0] for p in model.files if p.endswith(SAFETENSORS_SUFFIX)}
    out = []
    for path in sorted(model.files):
        name = path.rsplit("/", 1)[-1]
        if not path.endswith(PICKLE_SUFFIXES) or name.startswith(("training_args", "optimizer", "scheduler", "rng")):
            continue
        if path.rpartition("/")[0] not in folders_with_safetensors:
            out.append(path)
    return out


def check_policy(model: ModelFiles, *, allow_pickle: bool, trust_remote_code: bool, for_server: bool = False) -> None:
    """Refuse (ModelRefused) what may not run; cheap, reads only small JSON files and pickle opcodes.

    ``for_server``: the hints name ``hfa serve``'s options rather than ``hfa infer --local``'s.
    """
    reasons = remote_code_reasons(model)
    if reasons and not trust_remote_code:
        raise ModelRefused(
            f"'{model.repo_id}' runs code from its repository ({'; '.join(reasons[:3])}); it is not loaded",
            trust_hint(model.repo_id, for_server=for_server),
            "RemoteCodeRefused",
        )
    pickles = pickle_only_weights(model)
    if pickles and not allow_pickle:
        raise ModelRefused(
            f"'{model.repo_id}' has weights only as pickle ({', '.join(pickles[:3])}), which can run code when loaded;"
            " it is not loaded",
            "prefer a revision with .safetensors weights; or check it with `hfa scan` and pass --allow-pickle",
            "PickleRefused",
        )
    if pickles:
        from hfa.scan.model import ScanPolicy, Severity
        from hfa.scan.scanner import scan_file

        for path in pickles:
            found = [f for f in scan_file(model.files[path], path, ScanPolicy()) if f.severity >= Severity.CRITICAL]
            if found:
                raise ModelRefused(
                    f"'{model.repo_id}': {path} is unsafe ({found[0].message}); it is never loaded",
                    f"inspect it with `hfa scan {model.repo_id}`",
                    "UnsafeContent",
                )


def explain_failure(exc: Exception, model: ModelFiles, task: str, phase: str, staged: Any = None) -> ModelFailed:
    """An exception from loading or running a model, as an error that says whose code raised it."""
    what = f"{type(exc).__name__}: {exc}"[:1000]
    code = _repository_frame(exc, staged)
    if code is not None:
        return ModelFailed(
            f"The repository code of {model.label} raised while {phase} it for {task} ({code}): {what}",
            "the error is in the model repository's own code, not in hfa: check that repository",
        )
    return ModelFailed(
        f"{phase.capitalize()} {model.label} for {task} failed: {what}",
        "check the model's files (hfa verify) and that it suits this task",
    )


def _repository_frame(exc: BaseException, staged: Any) -> str | None:
    """The file name of the innermost traceback frame that is a repository's code (trust_remote_code), if any."""
    roots = [f"{os.sep}transformers_modules{os.sep}", f"{os.sep}diffusers_modules{os.sep}"]
    if staged is not None:
        roots.append(str(staged) + os.sep)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if any(root in filename for root in roots):
            found = os.path.basename(filename)
        tb = tb.tb_next
    return found


class StagedModel:
    """A private folder of links to exactly the files a model may be loaded from; removed by :meth:`close`.

    Pickle files are left out unless ``allow_pickle``, Python files unless ``trust_remote_code``:
    a loader cannot reach what is not there.
    """

    def __init__(self, model: ModelFiles, *, allow_pickle: bool, trust_remote_code: bool) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hfa-model-")
        self.path = Path(self._tmp.name) / model.repo_id.replace("/", "--")
        for rel, real in model.files.items():
            if rel.endswith(PICKLE_SUFFIXES) and not allow_pickle:
                continue
            if rel.endswith(".py") and not trust_remote_code:
                continue
            link = self.path.joinpath(*rel.split("/"))
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(real, link)
        self.path.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self._tmp.cleanup()


def estimated_load_seconds(model: ModelFiles, torch_loaded: bool) -> float:
    """A guess at how long loading takes here: importing torch, then reading the weights."""
    return (0.0 if torch_loaded else 6.0) + 0.5 + model.weight_bytes() / 400e6


# -- results as InferenceClient parses them ---------------------------------------------------------
def client_view(task: str, wire: Any) -> Any:
    """What huggingface_hub's ``InferenceClient`` method returns for the wire answer ``wire``, as plain JSON.

    The local runner answers in these shapes, so ``--local`` and a server give the same results.
    """
    if task == "text-classification":
        return wire[0] if isinstance(wire, list) and wire and isinstance(wire[0], list) else wire
    if task in ("summarization", "translation"):
        return wire[0] if isinstance(wire, list) else wire
    if task == "text-generation":
        item = wire[0] if isinstance(wire, list) else wire
        return item["generated_text"]
    return wire
