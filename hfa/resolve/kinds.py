"""What a repository file is, from its path alone: its kind (weights of which framework, an
index, a config, a tokenizer, code, docs), the variant of a weight file, and the quantization a
GGUF file names. Pure functions over names: no I/O. :mod:`hfa.resolve.selection` decides from
these which files a pull takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase

FRAMEWORKS = ("pt", "safetensors", "tf", "flax", "onnx", "openvino", "gguf")
"""What ``--framework`` accepts. ``pt`` means pickle files (``.bin``, ``.pt``, ``.pth``, ``.ckpt``)."""

KINDS = (
    "safetensors",
    "pickle",
    "gguf",
    "onnx",
    "tf",
    "flax",
    "rust",
    "openvino",
    "coreml",
    "index",
    "config",
    "tokenizer",
    "code",
    "docs",
    "other",
)
"""Every value :func:`classify` returns."""

WEIGHT_KINDS = frozenset({"safetensors", "pickle", "gguf", "onnx", "tf", "flax", "rust", "openvino", "coreml"})
"""Kinds that hold model weights; a model pulls one (or the requested) framework of them."""


FRAMEWORK_KIND = {
    "pt": "pickle",
    "safetensors": "safetensors",
    "tf": "tf",
    "flax": "flax",
    "onnx": "onnx",
    "openvino": "openvino",
    "gguf": "gguf",
}
KIND_FRAMEWORK = {kind: framework for framework, kind in FRAMEWORK_KIND.items()}
# Without --framework, the first of these present is the repository's weights.
DEFAULT_ORDER = ("safetensors", "pickle", "gguf", "onnx", "tf", "flax", "openvino")

_EXT_KIND = {
    ".safetensors": "safetensors",
    ".bin": "pickle",
    ".pt": "pickle",
    ".pth": "pickle",
    ".ckpt": "pickle",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".gguf": "gguf",
    ".ggml": "gguf",
    ".h5": "tf",
    ".keras": "tf",
    ".tflite": "tf",
    ".msgpack": "flax",
    ".ot": "rust",
    ".mlmodel": "coreml",
    ".mlpackage": "coreml",
}
_TF_NAMES = frozenset({"saved_model.pb", "keras_metadata.pb", "variables.index"})
_TOKENIZER_NAMES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "merges.txt",
        "special_tokens_map.json",
        "added_tokens.json",
        "spiece.model",
    }
)
_CONFIG_NAMES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "modules.json",
        "model_index.json",
        "preprocessor_config.json",
        "sentence_bert_config.json",
    }
)
# model.safetensors.index.json, and diffusers' variant form x.safetensors.index.fp16.json.
INDEX_RE = re.compile(r"(?P<base>.+)\.index(?:\.(?P<variant>[A-Za-z0-9_-]+))?\.json\Z")
# A weight file's name without its extension: stem, then .variant, then -00001-of-00002 (either order).
SHARD_SUFFIX_RE = re.compile(r"-\d+-of-\d+$")
VARIANT_RE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
# model-00001-of-00003.safetensors, pytorch_model-00002-of-00002.bin, ...
SHARD_RE = re.compile(r"\d+-of-\d+")
# Q4_K_M, Q8_0, IQ2_XS, Q4_0_4_4, TQ1_0, F16, BF16, F32, ...; the last one in a name wins.
QUANT_RE = re.compile(
    r"(?<![a-z0-9])((?:i?q|tq)\d+(?:_(?:\d+|k|xxs|xs|s|m|l|xl|nl))*|bf16|fp16|fp32|f16|f32|f64|mxfp4)(?![a-z0-9])",
    re.IGNORECASE,
)


def classify(path: str) -> str:
    """The kind of a repository file, from its name alone (see :data:`KINDS`).

    Folder names count: everything under ``onnx/`` is ONNX, under ``openvino/`` OpenVINO,
    under ``*.mlpackage/`` Core ML — so an export's own configs come only with its framework.
    """
    parts = path.lower().split("/")
    name, folders = parts[-1], parts[:-1]
    ext = name[name.rfind(".") :] if "." in name else ""
    if any(f.endswith((".mlpackage", ".mlmodelc")) for f in folders):
        return "coreml"
    if "openvino" in folders or (name.startswith("openvino") and ext in (".xml", ".bin")):
        return "openvino"
    if "onnx" in folders or name.endswith((".onnx", ".onnx_data", ".onnx.data")):
        return "onnx"
    if INDEX_RE.match(name):
        return "index"
    if ext in _EXT_KIND:
        return _EXT_KIND[ext]
    if name in _TF_NAMES or name.startswith("variables.data-"):
        return "tf"
    if name in _TOKENIZER_NAMES or name.startswith("vocab.") or ext in (".model", ".tiktoken"):
        return "tokenizer"
    if name in _CONFIG_NAMES or fnmatchcase(name, "*config*.json"):
        return "config"
    if ext == ".py":
        return "code"
    if ext == ".md" or name.startswith("license") or name == ".gitattributes":
        return "docs"
    return "other"


def index_kind(path: str) -> str | None:
    """The weight kind a ``*.index.json`` maps (``pytorch_model.bin.index.json`` → pickle), or None."""
    folder, _, name = path.rpartition("/")
    m = INDEX_RE.match(name.lower())
    if not m:
        return None
    kind = classify(f"{folder}/{m['base']}" if folder else m["base"])
    return kind if kind in WEIGHT_KINDS else None


def gguf_quants(paths: Iterable[str]) -> list[str]:
    """The quantizations named by the GGUF files among ``paths`` (upper case, fewest bits first).

    ``model.Q4_K_M.gguf`` → ``Q4_K_M``; split parts count once; multimodal projectors
    (``mmproj-*.gguf``) are companions, not quantizations, and are left out.
    """
    found = {q for p in paths if classify(p) == "gguf" and not is_mmproj(p) and (q := quant_of(p))}
    return sorted(found, key=quant_sort_key)


def weight_variant(path: str) -> tuple[str, str | None]:
    """(stem, variant) of a weight file or index: ``unet/x.fp16-00001-of-00002.safetensors`` →
    ``("x", "fp16")``, ``model.safetensors.index.fp16.json`` → ``("model", "fp16")``,
    ``model-00001-of-00002.safetensors`` → ``("model", None)``."""
    name = basename(path)
    variant: str | None = None
    m = INDEX_RE.match(name)
    if m is not None:
        name, variant = m.group("base"), m.group("variant")
    base = name.rpartition(".")[0] or name  # drop the extension
    base = SHARD_SUFFIX_RE.sub("", base)
    stem, dot, rest = base.partition(".")
    if dot:
        rest = SHARD_SUFFIX_RE.sub("", rest)
        variant = variant or rest or None
    return SHARD_SUFFIX_RE.sub("", stem), variant


def quant_of(path: str) -> str | None:
    """The quantization a GGUF path names: the last one in its file name, else in its folders."""
    folder, _, name = path.rpartition("/")
    for text in (name, folder):
        found = QUANT_RE.findall(text)
        if found:
            return str(found[-1]).upper()
    return None


def quant_matches(quant: str, path: str) -> bool:
    """``Q4_K_M`` matches ``x.Q4_K_M.gguf`` and ``x-q4_k_m-00001-of-00002.gguf``; ``Q4_K`` does not."""
    if quant_of(path) == quant.upper():
        return True
    bounded = rf"(?<![A-Za-z0-9_]){re.escape(quant)}(?![A-Za-z0-9_])"
    return re.search(bounded, path, re.IGNORECASE) is not None


def quant_sort_key(quant: str) -> tuple[int, str]:
    digits = re.search(r"\d+", quant)
    return (int(digits.group()) if digits else 0, quant)


def is_mmproj(path: str) -> bool:
    return basename(path).lower().startswith("mmproj")


def folder_of(path: str) -> str:
    return path.rpartition("/")[0]


def basename(path: str) -> str:
    return path.rpartition("/")[2]
