"""``hfa serve --infer``: the Inference API routes, for models in the served cache.

Routes (each also under ``/hf-inference``, the prefix the Hub's router uses):

* ``POST /models/{repo}``                 run the model's task (its card's ``pipeline_tag``);
* ``POST /models/{repo}/pipeline/{task}`` run ``task`` (what InferenceClient uses for embeddings);
* ``GET  /models/{repo}/info``            the model, its commit, task and load state;
* ``GET  /models/{repo}/health``          200 when it can answer, 503 while it loads;
* ``POST /``                              the one model this server runs, when it runs exactly one
  (``InferenceClient(base_url=URL)`` posts here); otherwise 404 naming the URL to use.

``InferenceClient(model=f"{URL}/models/{repo}")`` (or ``base_url=`` the same URL) posts every task
to ``POST /models/{repo}``: an embeddings model answers ``feature_extraction`` (text inputs) and
``sentence_similarity`` (``{"source_sentence": …, "sentences": […]}``) there alike.

Bodies are what huggingface_hub's ``InferenceClient`` sends: JSON ``{"inputs": …, "parameters": {…}}``
(feature-extraction's parameters at the top level), or the raw image bytes for image tasks.
Answers are the Hub's: JSON in each task's shape (see :mod:`hfa.infer.engines`), PNG bytes for
text-to-image, and errors as ``{"error": …}`` — 400 a bad request or a task the model cannot run,
403 a model the server's policy refuses (pickle weights, repository code), 404 a model it does
not serve, 500 a failure while loading or running, 501 (at once) a server without the optional
extra ``hfa[infer]``. A request for a model that is not loaded yet is held until it is (at most
``PoolConfig.hold`` seconds; with ``X-Wait-For-Model: true`` or ``"options": {"wait_for_model":
true}``, ``max_wait``), then answered 503 ``{"error": "Model … is currently loading",
"estimated_time": S}``; ``X-Wait-For-Model: false`` asks for that 503 at once.

The repository is looked up in the store (and so through ``--lock`` and ``--auth``) at its
default revision; only the files the store lists are ever given to the loader.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from hfa import __version__
from hfa.errors import HfaError, NotFound, UsageError
from hfa.infer.modelfiles import ModelFiles, ModelRefused, UnsupportedTask, explain_failure, normalize_task
from hfa.infer.pool import InferenceUnavailable, Loading, ModelPool, PoolConfig
from hfa.server.wire import HttpError, truthy

if TYPE_CHECKING:
    from hfa.server.auth import TokenRule
    from hfa.server.store import Repo, ServedStore, Snapshot

log = logging.getLogger("hfa.serve")

MAX_BODY = 64 * 1024 * 1024
TAILS = ("pipeline", "info", "health")
IMAGE_TASKS = ("image-classification",)


class InferHandler(Protocol):
    """What these routes use of the HTTP handler (:class:`hfa.server.handler.Request`): the request,
    the ways to answer it, and the handler's own repo lookup, so that ``--auth`` applies alike."""

    command: str
    headers: Any
    server: Any  # .infer is the InferenceService

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes, content_type: str) -> None: ...

    def read_body(self, length: int) -> bytes: ...

    def base_url(self) -> str: ...

    def repo_or_error(self, repo_type: str, repo_id: str, *, files: bool = False) -> tuple[Repo, TokenRule | None]: ...

    def commit_or_error(self, repo: Repo, revision: str | None) -> Snapshot: ...

    def mark_body_read(self) -> None: ...


class InferenceService:
    """What the HTTP handler needs for inference: the model pool, and the store models come from."""

    def __init__(self, config: PoolConfig, store: ServedStore) -> None:
        self.config = config
        self.store = store
        self.pool = ModelPool(config)
        self.jobs: Any = None  # the ServerJobs that use this pool (hfa.server.job_routes)

    def only_model(self) -> str | None:
        """The repo id of the one model this server runs (``--infer-models`` names one, or it serves one), else None."""
        if self.config.models is not None:
            return next(iter(self.config.models)) if len(self.config.models) == 1 else None
        models = self.store.repos("model")
        return models[0].repo_id if len(models) == 1 else None

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        self.pool.close()


def handle(handler: InferHandler, segs: list[str], head: bool) -> bool:
    """Answer an inference route and return True; False when ``segs`` is not one (the Hub routes try it)."""
    service: InferenceService = handler.server.infer
    rest = segs[1:] if segs[0] == "hf-inference" else segs
    if len(rest) < 2 or rest[0] != "models":
        return False
    repo_id, tail = _split(service.store, [unquote(s) for s in rest[1:]])
    method = handler.command
    if method == "POST" and (not tail or (len(tail) == 2 and tail[0] == "pipeline")):
        task = tail[1] if tail else None
    elif method in ("GET", "HEAD") and tail in (["info"], ["health"]):
        task = None
    else:
        return False
    _answer(handler, service, repo_id, method, task, tail, head)
    return True


def handle_root(handler: InferHandler) -> None:
    """``POST /``: what ``InferenceClient(base_url=URL)`` sends; answered when the server runs exactly one model."""
    service: InferenceService = handler.server.infer
    only = service.only_model()
    if only is None:
        base = handler.base_url()
        raise HttpError(
            404,
            "POST / names no model, and this server runs more than one: post to /models/{repo}, e.g. "
            f'InferenceClient(model="{base}/models/ORG/NAME") or hfa infer TASK --model ORG/NAME --endpoint-url {base}',
        )
    _answer(handler, service, only, "POST", None, [], False)


def _answer(
    handler: InferHandler,
    service: InferenceService,
    repo_id: str,
    method: str,
    task: str | None,
    tail: list[str],
    head: bool,
) -> None:
    try:
        body = _read_body(handler) if method == "POST" else b""
        model = served_model(handler, service, repo_id)
        if method == "POST":
            _post(handler, service, model, task, body)
        else:
            _status(handler, service, model, tail[0], head)
    except Loading as exc:
        _send(handler, 503, {"error": str(exc), "estimated_time": exc.estimated_time}, head=head)
    except InferenceUnavailable as exc:
        _send(handler, 501, {"error": str(exc)}, head=head)
    except ModelRefused as exc:
        _send(handler, 403, {"error": str(exc)}, code=exc.code, head=head)
    except (UnsupportedTask, UsageError) as exc:
        _send(handler, 400, {"error": str(exc)}, head=head)
    except NotFound as exc:
        _send(handler, 404, {"error": str(exc)}, head=head)
    except HttpError:
        raise
    except HfaError as exc:
        _send(handler, 500, {"error": str(exc)}, head=head)
    except Exception as exc:
        log.exception("inference on %s failed", repo_id)
        _send(handler, 500, {"error": f"{type(exc).__name__}: {exc}"[:1000]}, head=head)


def _split(store: ServedStore, parts: list[str]) -> tuple[str, list[str]]:
    """``org/name/...`` or ``name/...``: the store knows which repos exist."""
    if len(parts) >= 2 and store.exists("model", f"{parts[0]}/{parts[1]}"):
        n = 2
    elif store.exists("model", parts[0]):
        n = 1
    else:
        n = 2 if len(parts) >= 2 and parts[1] not in TAILS else 1
    return "/".join(parts[:n]), parts[n:]


def served_model(handler: InferHandler, service: InferenceService, repo_id: str) -> ModelFiles:
    try:
        repo, _rule = handler.repo_or_error("model", repo_id, files=True)  # --auth applies as for its files
    except HttpError as err:
        if err.code != "RepoNotFound":
            raise  # gated: 401/403 as for its files
        # Missing and private-without-access look alike, as on the Hub: 404 either way.
        raise NotFound(
            f"Model {repo_id} does not exist", "check the repo id; the server runs the models it serves"
        ) from None
    if not service.pool.may_run(repo_id):
        raise NotFound(
            f"Model {repo_id} is not served for inference here",
            "the server runs only the models named by --infer-models",
        )
    snap = handler.commit_or_error(repo, None)
    files = {path: entry.blob_path for path, entry in snap.files.items() if entry.blob_path is not None}
    return ModelFiles(repo_id, snap.commit, files, service.store.card_data(snap))


def _task(model: ModelFiles, asked: str | None) -> str:
    if asked is None:
        return model.default_task()
    task = normalize_task(asked)
    tag = model.pipeline_tag()
    if tag is not None and task != "feature-extraction":  # any encoder can embed; other tasks must match
        try:
            own = normalize_task(tag)
        except UnsupportedTask:
            own = tag
        if own != task:
            raise UnsupportedTask(
                f"Model {model.repo_id} is a {tag} model; it does not run {asked}",
                f"POST /models/{model.repo_id} runs its own task",
            )
    return task


def _post(handler: InferHandler, service: InferenceService, model: ModelFiles, asked: str | None, body: bytes) -> None:
    task = _task(model, asked)
    inputs, parameters, wait_asked = _request(handler, task, body)
    service.pool.check(model)
    header = (handler.headers.get("X-Wait-For-Model") or "").strip()
    if header:
        wait_asked = truthy(header)
    wait = service.config.max_wait if wait_asked else 0.0 if wait_asked is False else service.config.hold
    engine = service.pool.engine(model, task, wait=wait)
    try:
        result = engine.run(inputs, parameters)
    except HfaError:
        raise
    except Exception as exc:  # the model's libraries or its repository's code
        log.exception("running %s for %s failed", model.label, task)
        staged = getattr(getattr(engine, "staged", None), "path", None)
        raise explain_failure(exc, model, task, "running", staged) from exc
    if isinstance(result, bytes):
        _send_bytes(handler, result, "image/png")
    else:
        _send(handler, 200, result, extra={"X-Model-Commit": model.commit})


def _read_body(handler: InferHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding"):
        raise HttpError(411, "Send the body with a Content-Length")
    declared = (handler.headers.get("Content-Length") or "0").strip()
    if not declared.isascii() or not declared.isdigit():
        raise HttpError(400, "Invalid Content-Length")
    length = int(declared)
    if length > MAX_BODY:
        raise HttpError(413, f"Request body too large (at most {MAX_BODY // (1 << 20)} MiB)")
    body = handler.read_body(length)
    handler.mark_body_read()
    return body


def _request(handler: InferHandler, task: str, body: bytes) -> tuple[Any, dict[str, Any], bool | None]:
    """(inputs, parameters, wait_for_model if the body says) from the body, as InferenceClient sends it."""
    ctype = (handler.headers.get("Content-Type") or "").lower()
    is_json = "json" in ctype or (task not in IMAGE_TASKS and body.lstrip()[:1] in (b"{", b'"', b"["))
    if not is_json:
        if task not in IMAGE_TASKS:
            raise UsageError(f"{task} takes a JSON body", 'send {"inputs": "…", "parameters": {…}}')
        if not body:
            raise UsageError("The request has no image", "send the image bytes as the body")
        return body, {}, False
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        raise UsageError("The body is not valid JSON", 'send {"inputs": …}') from None
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise UsageError('The body must be a JSON object with "inputs"', 'send {"inputs": …, "parameters": {…}}')
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise UsageError('"parameters" must be a JSON object', 'e.g. "parameters": {"top_k": 2}')
    if doc.get("stream"):
        raise UsageError("Streaming is not supported by hfa serve", 'send "stream": false')
    options: dict[str, Any] = doc["options"] if isinstance(doc.get("options"), dict) else {}
    if task == "feature-extraction":  # InferenceClient sends these at the top level
        top = {k: v for k, v in doc.items() if k not in ("inputs", "parameters", "options", "stream") and v is not None}
        parameters = {**top, **parameters}
    inputs = doc["inputs"]
    if task in IMAGE_TASKS:
        inputs = _image(inputs)
    wait = options.get("wait_for_model")
    return inputs, parameters, wait if isinstance(wait, bool) else None


def _image(value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        raise UsageError('The image must be base64 in "inputs" (or the raw bytes as the body)', "send an image")
    if value.startswith(("http://", "https://")):
        raise UsageError("hfa serve does not fetch image URLs", "send the image bytes")
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError('"inputs" is not valid base64', "send the image base64-encoded") from None


def _status(handler: InferHandler, service: InferenceService, model: ModelFiles, what: str, head: bool) -> None:
    try:
        task: str | None = model.default_task()
    except UnsupportedTask:
        task = None
    state = service.pool.status(model, task) if task else {"state": "not loaded"}
    if what == "health":
        service.pool.check(model)
        if state["state"] == "loading":
            raise Loading(model.repo_id, float(state["estimated_time"]))
        _send(handler, 200, {"status": "ok", "model_id": model.repo_id, **state}, head=head)
        return
    doc = {
        "model_id": model.repo_id,
        "model_sha": model.commit,
        "model_pipeline_tag": model.pipeline_tag(),
        "task": task,
        "model_device_type": "cpu",
        "framework": "pytorch",
        "sentence_transformers": model.is_sentence_transformers,
        "max_models": service.config.max_models,
        "hfa": __version__,
        **state,
    }
    _send(handler, 200, doc, head=head)


def _send(
    handler: InferHandler,
    status: int,
    doc: Any,
    *,
    code: str | None = None,
    extra: dict[str, str] | None = None,
    head: bool = False,
) -> None:
    headers = [("X-Error-Code", code)] if code else []
    headers += list((extra or {}).items())
    handler.respond(status, headers, json.dumps(doc).encode(), "application/json")


def _send_bytes(handler: InferHandler, data: bytes, content_type: str) -> None:
    handler.respond(200, [], data, content_type)
