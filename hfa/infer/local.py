"""``hfa infer --local``: run a pinned model from the cache in-process, on CPU, with no server.

Imported only for ``--local`` (``hfa.infer.client.load_local_runner``): it needs the optional
extra ``hfa[infer]``; without torch the import fails and hfa names the extra to install.

The model is resolved offline (the cache's refs and snapshots, or the lock), loaded once per
task with :mod:`hfa.infer.engines` (safetensors only unless ``allow_pickle``, no repository code
unless ``trust_remote_code``), and answers in the shapes ``InferenceClient`` returns, so that
``--local`` and ``--endpoint-url`` give the same results.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import torch  # noqa: F401  - fail here, at import, when the extra is missing
import transformers  # noqa: F401

from hfa.config import Settings
from hfa.errors import HfaError, LocalError, UsageError
from hfa.infer.engines import Engine, load_engine
from hfa.infer.modelfiles import ModelFiles, client_view, explain_failure, from_cache, normalize_task
from hfa.resolve.refs import RepoRef


class LocalRunner:
    """A :class:`hfa.infer.tasks.Runner` that runs one model in this process."""

    def __init__(self, model: ModelFiles, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> None:
        self.model = model
        self.route = f"local:{model.repo_id}@{model.commit}"
        self.allow_pickle = allow_pickle
        self.trust_remote_code = trust_remote_code
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def engine(self, task: str) -> Engine:
        with self._lock:
            engine = self._engines.get(task)
            if engine is None:
                engine = load_engine(
                    self.model, task, allow_pickle=self.allow_pickle, trust_remote_code=self.trust_remote_code
                )
                self._engines[task] = engine
            return engine

    def run_wire(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
        """One request, answered in the Inference API's wire shape (what ``hfa serve --infer`` sends)."""
        name = normalize_task(task)
        engine = self.engine(name)
        try:
            return engine.run(inputs, parameters)
        except HfaError:
            raise
        except Exception as exc:  # the model's libraries or its repository's code: not a bug in hfa
            raise explain_failure(exc, self.model, name, "running", engine.staged.path) from exc

    def run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
        """One request as ``hfa infer`` makes it (image inputs are file paths); the result as InferenceClient parses it."""
        name = normalize_task(task)
        if name == "image-classification":
            inputs = _image_bytes(inputs)
        return client_view(name, self.run_wire(name, inputs, dict(parameters or {})))

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()


def _image_bytes(inputs: Any) -> bytes:
    if isinstance(inputs, (bytes, bytearray)):
        return bytes(inputs)
    if isinstance(inputs, str) and inputs.startswith("data:") and "," in inputs:
        return base64.b64decode(inputs.split(",", 1)[1])
    if not isinstance(inputs, (str, Path)):
        raise UsageError("image-classification inputs must be an image file path", "pass --input photo.jpg")
    try:
        return Path(inputs).expanduser().read_bytes()
    except OSError as exc:
        raise LocalError(f"Cannot read image '{inputs}': {exc.strerror}", "pass the path of an image file") from None


def make_runner(
    settings: Settings,
    ref: RepoRef,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    lock: Any = None,
) -> LocalRunner:
    """The ``--local`` runner for ``ref``, resolved offline from ``settings.cache_dir`` (and ``lock``, an hfa.lock.lockfile.Lock)."""
    model = from_cache(settings.cache_dir, ref, lock)
    return LocalRunner(model, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
