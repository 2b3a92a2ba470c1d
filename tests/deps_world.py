"""A served world of repositories that need one another (issue 15, part 1): adapters and their bases,
provenance-only base models, sentence-transformers and Modular Diffusers references, cycles, and
broken configs. Deterministic: fixed dates, so the same commits every time."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from pathlib import Path

from hfa.testing import make_safetensors, model_card
from hfa.testing import write_repo as _write_repo


def adapter_config(base: str, revision: str | None = None) -> bytes:
    doc: dict[str, object] = {"peft_type": "LORA", "base_model_name_or_path": base, "r": 8}
    if revision is not None:
        doc["revision"] = revision
    return json.dumps(doc).encode()


def build_deps_world(cache: Path) -> dict[str, str]:
    """Write the repos into ``cache``; return their commits by name (``base/model@v1``, ``org/adapter``, ...)."""
    write = functools.partial(_write_repo, date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    commits: dict[str, str] = {}
    weights = make_safetensors({"w": ("F32", [4, 4])}, seed=7)
    lora = make_safetensors({"lora_A": ("F32", [2, 4])}, seed=8)
    base_v1 = {
        "README.md": model_card(license="apache-2.0", library_name="transformers").encode(),
        "config.json": b'{"model_type": "bert", "hidden_size": 4}',
        "model.safetensors": weights,
    }
    commits["base/model@v1"] = write(cache, "base/model", base_v1, tags=["v1.0"], message="first")
    base_v2 = {**base_v1, "config.json": b'{"model_type": "bert", "hidden_size": 8}'}
    commits["base/model@v2"] = write(cache, "base/model", base_v2, parent=commits["base/model@v1"], message="second")

    def adapter(repo_id: str, base: str, revision: str | None = None, **card: object) -> None:
        files = {"adapter_config.json": adapter_config(base, revision), "adapter_model.safetensors": lora}
        if card:
            files["README.md"] = model_card(**card).encode()
        commits[repo_id] = write(cache, repo_id, files)

    # A PEFT adapter whose card says so too; one at a tag of its base; one on top of another adapter.
    adapter("org/adapter", "base/model", base_model="base/model", base_model_relation="adapter", license="mit")
    adapter("org/adapter-v1", "base/model", "v1.0")
    adapter("org/chain", "org/adapter")
    # Only the card says adapter; a fine-tune whose base is provenance only.
    commits["org/card-adapter"] = write(
        cache,
        "org/card-adapter",
        {
            "README.md": model_card(base_model="base/model", base_model_relation="adapter").encode(),
            "adapter_model.safetensors": lora,
        },
    )
    commits["org/finetune"] = write(
        cache,
        "org/finetune",
        {
            "README.md": model_card(base_model="base/model", base_model_relation="finetune").encode(),
            "config.json": b'{"model_type": "bert"}',
            "model.safetensors": weights,
        },
    )
    # A cycle, a base that is not there, a local path, a config that is not JSON.
    adapter("cycle/a", "cycle/b")
    adapter("cycle/b", "cycle/a")
    adapter("org/orphan", "nobody/there")
    adapter("org/local", "./checkpoints/base")
    commits["org/bad-json"] = write(
        cache, "org/bad-json", {"adapter_config.json": b'{"base_model_name_or_path": ', "x.safetensors": lora}
    )
    # sentence-transformers: one module in this repo, one a Hub repo id.
    commits["st/dense"] = write(cache, "st/dense", {"config.json": b'{"in_features": 4}', "model.safetensors": weights})
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "st/dense", "type": "sentence_transformers.models.Dense"},
    ]
    commits["org/st"] = write(
        cache,
        "org/st",
        {
            "modules.json": json.dumps(modules).encode(),
            "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
            "config.json": b'{"model_type": "bert"}',
            "model.safetensors": weights,
        },
    )
    # Modular Diffusers: a component from another repo, and one from this repo (not a dependency).
    index = {
        "_class_name": "TinyModularPipeline",
        "vae": ["diffusers", "AutoencoderKL", {"repo": "base/model", "subfolder": "vae", "revision": None}],
        "unet": ["diffusers", "UNet", {"pretrained_model_name_or_path": "org/modular", "subfolder": "unet"}],
    }
    commits["org/modular"] = write(
        cache,
        "org/modular",
        {"modular_model_index.json": json.dumps(index).encode(), "unet/config.json": b"{}"},
    )
    return commits
