"""Tiny randomly initialised models of real architectures, for inference tests (needs torch and transformers).

Each builder writes ``save_pretrained(safe_serialization=True)`` output plus a README card into
a folder; :func:`write_tiny_repos` puts them into a served cache with ``hfa.testing.write_repo``.
Everything is seeded, a few hundred KiB in all, and built in about a second.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

from hfa.testing import model_card, write_repo

WORDS = [
    "the",
    "a",
    "an",
    "is",
    "was",
    "of",
    "to",
    "and",
    "in",
    "it",
    "this",
    "that",
    "movie",
    "film",
    "good",
    "bad",
    "great",
    "awful",
    "love",
    "hate",
    "i",
    "you",
    "he",
    "she",
    "we",
    "they",
    "stock",
    "market",
    "fell",
    "rose",
    "sharply",
    "today",
    "sports",
    "finance",
    "cooking",
    "hello",
    "how",
    "are",
    "world",
    "what",
    "does",
    "hfa",
    "manage",
    "hugging",
    "face",
    "hub",
    "assets",
    "like",
    "packages",
    "example",
    "about",
    "text",
    "very",
    "not",
    "proves",
    "works",
    "model",
    "sentence",
    "pinned",
]
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'"

# repo id -> task it is built for
REPOS = {
    "tiny/bert-sentiment": "text-classification",
    "tiny/bert-nli": "zero-shot-classification",
    "tiny/bert-qa": "question-answering",
    "tiny/bert-embed": "feature-extraction",
    "tiny/gpt2": "text-generation",
    "tiny/t5-summarize": "summarization",
    "tiny/t5-translate": "translation",
    "tiny/vit": "image-classification",
}
PICKLE_REPO = "tiny/bert-pickle"
DIFFUSION_REPO = "tiny/diffusion"  # a tiny Stable Diffusion pipeline (a stub card without diffusers installed)
REMOTE_CODE_REPO = "tiny/bert-remote-code"


def _bert_tokenizer():  # type: ignore[no-untyped-def]
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = specials + sorted(set(WORDS)) + list(LETTERS) + ["##" + c for c in LETTERS]
    return BertTokenizer(vocab={p: i for i, p in enumerate(dict.fromkeys(pieces))}, do_lower_case=True)


def _bert_config(**extra: object):  # type: ignore[no-untyped-def]
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(_bert_tokenizer()),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        **extra,
    )


def _save(model, tokenizer, folder: Path, safe: bool = True) -> None:  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    if not safe:  # transformers 5 writes safetensors only: make the pickle-only checkpoint of old repos
        import torch

        torch.save(model.state_dict(), folder / "pytorch_model.bin")
        (folder / "model.safetensors").unlink()
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def _labels(names: list[str]) -> dict[str, object]:
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


def build_sentiment(folder: Path, safe: bool = True) -> None:
    from transformers import BertForSequenceClassification

    _save(
        BertForSequenceClassification(_bert_config(**_labels(["NEGATIVE", "POSITIVE"]))),
        _bert_tokenizer(),
        folder,
        safe,
    )


def build_nli(folder: Path) -> None:
    from transformers import BertForSequenceClassification

    config = _bert_config(**_labels(["contradiction", "neutral", "entailment"]))
    _save(BertForSequenceClassification(config), _bert_tokenizer(), folder)


def build_qa(folder: Path) -> None:
    from transformers import BertForQuestionAnswering

    _save(BertForQuestionAnswering(_bert_config()), _bert_tokenizer(), folder)


def build_embed(folder: Path) -> None:
    from transformers import BertModel

    _save(BertModel(_bert_config(), add_pooling_layer=False), _bert_tokenizer(), folder)


def build_gpt2(folder: Path) -> None:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=[])
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=64, n_embd=16, n_layer=2, n_head=2, bos_token_id=256, eos_token_id=256
    )
    _save(GPT2LMHeadModel(config), tokenizer, folder)


def build_t5(folder: Path, task: str) -> None:
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -1.0) for w in sorted(set(WORDS))] + [(c, -5.0) for c in LETTERS] + [("▁", -3.0)]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0)
    config = T5Config(
        vocab_size=len(pieces),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        task_specific_params={
            "summarization": {"prefix": "summarize: "},
            "translation_en_to_de": {"prefix": "translate English to German: "},
        },
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 8
    _save(model, tokenizer, folder)


def build_vit(folder: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        **_labels(["cat", "dog", "bird"]),
    )
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    _save(ViTForImageClassification(config), processor, folder)


def build_diffusion(folder: Path) -> None:
    """A tiny Stable Diffusion pipeline, as diffusers' own tests build it (get_dummy_components), 32x32 by default."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    pieces = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = [("r", "e</w>"), ("s", "q"), ("sq", "u"), ("squ", "a"), ("squa", "r"), ("squar", "e</w>")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
        )
    )
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


def build_remote_code(folder: Path) -> None:
    build_sentiment(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("raise RuntimeError('repository code ran')\n")


BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny/bert-sentiment": build_sentiment,
    "tiny/bert-nli": build_nli,
    "tiny/bert-qa": build_qa,
    "tiny/bert-embed": build_embed,
    "tiny/gpt2": build_gpt2,
    "tiny/t5-summarize": lambda f: build_t5(f, "summarization"),
    "tiny/t5-translate": lambda f: build_t5(f, "translation"),
    "tiny/vit": build_vit,
    PICKLE_REPO: lambda f: build_sentiment(f, safe=False),
    REMOTE_CODE_REPO: build_remote_code,
}


def write_tiny_repos(cache: Path, scratch: Path) -> dict[str, str]:
    """Build every tiny model and write it into ``cache``; returns repo id -> commit."""
    import torch

    commits = {}
    for repo_id, build in BUILDERS.items():
        torch.manual_seed(0)
        folder = scratch / repo_id.replace("/", "--")
        build(folder)
        task = REPOS.get(repo_id, "text-classification")
        files: dict[str, bytes | str | Path] = {
            p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()
        }
        files["README.md"] = model_card(license="mit", pipeline_tag=task, library_name="transformers", tags=["tiny"])
        commits[repo_id] = write_repo(cache, repo_id, files)
    diffusion: dict[str, bytes | str | Path] = {
        "model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline"})
    }
    if importlib.util.find_spec("diffusers") is not None:
        torch.manual_seed(0)
        folder = scratch / DIFFUSION_REPO.replace("/", "--")
        build_diffusion(folder)
        diffusion = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    diffusion["README.md"] = model_card(license="mit", pipeline_tag="text-to-image", library_name="diffusers")
    commits[DIFFUSION_REPO] = write_repo(cache, DIFFUSION_REPO, diffusion)
    return commits


def tiny_png(color: tuple[int, int, int] = (200, 30, 30), size: int = 40) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()
