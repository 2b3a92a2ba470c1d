"""The image tasks: image-classification (transformers) and text-to-image (diffusers).

text-to-image: a diffusers pipeline loaded from the staged snapshot, on CPU, answering PNG bytes.
The pipeline class is the one ``model_index.json`` names, taken from diffusers itself; every
component must come from diffusers or transformers. A custom pipeline or component (code from
the repository, or a library diffusers would import by name) loads only when ``trust_remote_code``
names the repo. Weights load as safetensors only unless ``allow_pickle``, from local files only.
diffusers is imported when a text-to-image model loads, never before.

Parameters are the ones ``InferenceClient.text_to_image`` sends: ``negative_prompt``, ``height``,
``width``, ``num_inference_steps``, ``guidance_scale``, ``scheduler`` (a class name from the
pipeline's compatible schedulers) and ``seed``.
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any

import torch

from hfa.infer.engines.base import (
    BadInput,
    Engine,
    Loader,
    float_param,
    input_texts,
    int_param,
    label_scores,
    ranked_labels,
)
from hfa.infer.modelfiles import ModelRefused, UnsupportedTask, trust_hint

PARAMETERS = ("negative_prompt", "height", "width", "num_inference_steps", "guidance_scale", "scheduler", "seed")
SAFE_LIBRARIES = ("diffusers", "transformers")


class ImageClassification(Engine):
    def load(self, loader: Loader) -> None:
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
        top_k = int_param(params, "top_k", 5)
        logits = self.net(**self.processor(images=image, return_tensors="pt")).logits
        multi = getattr(self.net.config, "problem_type", None) == "multi_label_classification"
        scores = label_scores(logits, params.get("function_to_apply"), multi)[0]
        return ranked_labels(self.net.config.id2label, scores.tolist(), top_k)


class TextToImage(Engine):
    kind: str = "diffusers"

    def load(self, loader: Loader) -> None:
        if importlib.util.find_spec("diffusers") is None:
            raise UnsupportedTask(
                "text-to-image needs the diffusers package, which is not installed", "pip install 'hfa[infer]'"
            )
        import diffusers
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()
        trusted = bool(loader.common.get("trust_remote_code"))
        index = self.model.read_json("model_index.json")
        if index is None:
            raise UnsupportedTask(
                f"'{self.model.repo_id}' is not a diffusers pipeline (no model_index.json)",
                "text-to-image runs diffusers pipelines",
            )
        cls = pipeline_class(diffusers, index, self.model.repo_id, trusted, for_server=loader.for_server)
        kwargs: dict[str, Any] = {
            "local_files_only": True,
            "use_safetensors": None if loader.allow_pickle else True,
        }
        if trusted:
            kwargs["trust_remote_code"] = True
        # check_policy already refused pickle-only folders; the staged folder holds no pickle unless allowed
        self.pipe = cls.from_pretrained(loader.path, **kwargs)
        for component in self.pipe.components.values():  # CPU, float32 (fp16 weights would be slow or fail there)
            if isinstance(component, torch.nn.Module):
                component.to(device="cpu", dtype=torch.float32).eval()
        self.pipe.set_progress_bar_config(disable=True)
        self.scheduler = self.pipe.scheduler
        self.scale = int(getattr(self.pipe, "vae_scale_factor", 8) or 8)

    def _run(self, inputs: Any, params: dict[str, Any]) -> Any:
        prompt = input_texts(inputs, allow_list=False)[0][0]
        unknown = sorted(name for name, value in params.items() if value is not None and name not in PARAMETERS)
        if unknown:
            raise BadInput(f"text-to-image does not take {', '.join(unknown)}", f"it takes: {', '.join(PARAMETERS)}")
        kwargs: dict[str, Any] = {}
        steps = int_param(params, "num_inference_steps", None, 1, 500)
        if steps is not None:
            kwargs["num_inference_steps"] = steps
        for name in ("height", "width"):
            size = int_param(params, name, None, self.scale, 4096)
            if size is not None:
                if size % self.scale:
                    raise BadInput(f"{name} must be a multiple of {self.scale}, not {size}", "round it")
                kwargs[name] = size
        guidance = float_param(params, "guidance_scale", 0.0, 100.0)
        if guidance is not None:
            kwargs["guidance_scale"] = guidance
        negative = params.get("negative_prompt")
        if negative is not None:
            if not isinstance(negative, str):
                raise BadInput("negative_prompt must be a string", "fix the parameters")
            kwargs["negative_prompt"] = negative
        seed = int_param(params, "seed", None, 0, 2**63 - 1)
        if seed is not None:
            kwargs["generator"] = torch.Generator("cpu").manual_seed(seed)
        self.pipe.scheduler = self._scheduler(params.get("scheduler"))
        try:
            image = self.pipe(prompt, **kwargs).images[0]
        finally:
            self.pipe.scheduler = self.scheduler
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    def _scheduler(self, name: Any) -> Any:
        if name is None or name == type(self.scheduler).__name__:
            return self.scheduler
        compatible = {cls.__name__: cls for cls in getattr(self.scheduler, "compatibles", [])}
        if not isinstance(name, str) or name not in compatible:
            raise BadInput(
                f"scheduler must be one compatible with this pipeline, not {name!r}",
                f"use one of: {', '.join(sorted(compatible)) or type(self.scheduler).__name__}",
            )
        return compatible[name].from_config(self.scheduler.config)


def pipeline_class(
    diffusers: Any, index: dict[str, Any], repo_id: str, trusted: bool, *, for_server: bool = False
) -> Any:
    """The diffusers pipeline class to load with; refuses code from elsewhere unless ``trusted``."""
    name = index.get("_class_name")
    foreign = sorted(
        f"{key} from {spec[0]}"
        for key, spec in index.items()
        if not key.startswith("_")
        and isinstance(spec, list)
        and spec
        and isinstance(spec[0], str)
        and spec[0] not in SAFE_LIBRARIES
        and not hasattr(diffusers.pipelines, spec[0])
    )
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    is_pipeline = isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)
    if trusted:
        return cls if is_pipeline and not foreign else diffusers.DiffusionPipeline
    if foreign:
        raise ModelRefused(
            f"'{repo_id}' loads components from outside diffusers and transformers ({'; '.join(foreign[:3])});"
            " it is not loaded",
            trust_hint(repo_id, for_server=for_server),
            "RemoteCodeRefused",
        )
    if not is_pipeline:
        raise UnsupportedTask(
            f"'{repo_id}' names the pipeline {name!r}, which diffusers {diffusers.__version__} does not have",
            "upgrade diffusers; a custom pipeline runs only with --trust-remote-code",
        )
    return cls
