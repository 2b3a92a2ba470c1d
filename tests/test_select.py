"""hfa.resolve.selection: which files `hfa pull` fetches, and why — one test (at least) per rule."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hfa.errors import CheckFailed, UsageError
from hfa.resolve.files import RemoteFile
from hfa.resolve.selection import (
    FRAMEWORKS,
    KINDS,
    SMALL_FILE_LIMIT,
    WEIGHT_KINDS,
    Decision,
    Selection,
    SelectOptions,
    classify,
    gguf_quants,
    index_kind,
    select,
)

# --- helpers ---------------------------------------------------------------------------


def remote(path: str, size: int = 1000) -> RemoteFile:
    """A RemoteFile with fake but well-formed hashes; weights are LFS files."""
    blob_id = hashlib.sha1(path.encode()).hexdigest()
    lfs = hashlib.sha256(path.encode()).hexdigest() if classify(path) in WEIGHT_KINDS else None
    return RemoteFile.checked(path, size, blob_id, lfs)


def repo(*paths: str, sizes: Mapping[str, int] | None = None) -> dict[str, RemoteFile]:
    sizes = sizes or {}
    return {p: remote(p, sizes.get(p, 1000)) for p in paths}


def index_reader(indexes: Mapping[str, Iterable[str]]) -> Callable[[str], bytes]:
    """read_index for ``{index path: shard names}``; records what was read."""

    def read(path: str) -> bytes:
        read.calls.append(path)  # type: ignore[attr-defined]
        shards = list(indexes[path])
        weight_map = {f"layer.{i}.weight": shard for i, shard in enumerate(shards)}
        return json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map}).encode()

    read.calls = []  # type: ignore[attr-defined]
    return read


def decide(files: Mapping[str, RemoteFile], **kwargs: Any) -> dict[str, Decision]:
    repo_type = kwargs.pop("repo_type", "model")
    read_index = kwargs.pop("read_index", None)
    options = SelectOptions(**kwargs)
    return {d.path: d for d in select(files, options, repo_type=repo_type, read_index=read_index).decisions}


def chosen(decisions: Mapping[str, Decision]) -> set[str]:
    return {p for p, d in decisions.items() if d.selected}


BASICS = ("config.json", "tokenizer.json", "tokenizer_config.json", "README.md", ".gitattributes")

# --- classify --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("model.safetensors", "safetensors"),
        ("unet/diffusion_pytorch_model.fp16.safetensors", "safetensors"),
        ("pytorch_model.bin", "pickle"),
        ("model.pt", "pickle"),
        ("model.pth", "pickle"),
        ("sd-v1-5.ckpt", "pickle"),
        ("model.pkl", "pickle"),
        ("model.pickle", "pickle"),
        ("tf_model.h5", "tf"),
        ("model.keras", "tf"),
        ("saved_model/saved_model.pb", "tf"),
        ("flax_model.msgpack", "flax"),
        ("rust_model.ot", "rust"),
        ("model.onnx", "onnx"),
        ("model.onnx_data", "onnx"),
        ("onnx/config.json", "onnx"),
        ("openvino_model.xml", "openvino"),
        ("openvino_model.bin", "openvino"),
        ("openvino/anything.json", "openvino"),
        ("model.Q4_K_M.gguf", "gguf"),
        ("ggml-model.ggml", "gguf"),
        ("model.mlmodel", "coreml"),
        ("m.mlpackage/Data/com.apple.CoreML/weights/weight.bin", "coreml"),
        ("model.safetensors.index.json", "index"),
        ("pytorch_model.bin.index.json", "index"),
        ("unet/diffusion_pytorch_model.safetensors.index.json", "index"),
        ("config.json", "config"),
        ("generation_config.json", "config"),
        ("adapter_config.json", "config"),
        ("modules.json", "config"),
        ("model_index.json", "config"),
        ("preprocessor_config.json", "config"),
        ("sentence_bert_config.json", "config"),
        ("1_Pooling/config.json", "config"),
        ("tokenizer.json", "tokenizer"),
        ("tokenizer_config.json", "tokenizer"),
        ("vocab.txt", "tokenizer"),
        ("vocab.json", "tokenizer"),
        ("merges.txt", "tokenizer"),
        ("special_tokens_map.json", "tokenizer"),
        ("added_tokens.json", "tokenizer"),
        ("tokenizer.model", "tokenizer"),
        ("spiece.model", "tokenizer"),
        ("modeling_custom.py", "code"),
        ("README.md", "docs"),
        ("docs/usage.md", "docs"),
        ("LICENSE", "docs"),
        ("LICENSE.txt", "docs"),
        (".gitattributes", "docs"),
        ("chat_template.jinja", "other"),
        ("images/figure.png", "other"),
    ],
)
def test_classify(path: str, kind: str) -> None:
    assert classify(path) == kind
    assert kind in KINDS


def test_classify_openvino_wins_over_pickle_for_openvino_named_bin() -> None:
    assert classify("pytorch_model.bin") == "pickle"
    assert classify("openvino_model.bin") == "openvino"
    assert classify("openvino/openvino_model.bin") == "openvino"


def test_index_kind() -> None:
    assert index_kind("model.safetensors.index.json") == "safetensors"
    assert index_kind("pytorch_model.bin.index.json") == "pickle"
    assert index_kind("unet/diffusion_pytorch_model.safetensors.index.json") == "safetensors"
    assert index_kind("tf_model.h5.index.json") == "tf"
    assert index_kind("config.json") is None
    assert index_kind("faiss.index.json") is None


# --- the real file list of sentence-transformers/all-MiniLM-L6-v2 ----------------------

MINILM = (
    ".gitattributes",
    "1_Pooling/config.json",
    "README.md",
    "config.json",
    "config_sentence_transformers.json",
    "data_config.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "pytorch_model.bin",
    "rust_model.ot",
    "tf_model.h5",
    "onnx/model.onnx",
    "openvino/openvino_model.xml",
    "openvino/openvino_model.bin",
    "train_script.py",
)


def test_all_minilm_l6_v2() -> None:
    sizes = {"model.safetensors": 90_868_376, "pytorch_model.bin": 90_888_945, "tf_model.h5": 91_005_696}
    result = decide(repo(*MINILM, sizes=sizes))
    assert chosen(result) == {
        ".gitattributes",
        "1_Pooling/config.json",
        "README.md",
        "config.json",
        "config_sentence_transformers.json",
        "data_config.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    }
    assert result["model.safetensors"].reason == "safetensors weights (preferred)"
    assert result["pytorch_model.bin"].reason == "skipped: safetensors weights are preferred (use --framework pt)"
    assert result["tf_model.h5"].reason == "skipped: safetensors weights are preferred (use --framework tf)"
    assert result["onnx/model.onnx"].reason == "skipped: safetensors weights are preferred (use --framework onnx)"
    assert result["rust_model.ot"].reason == "skipped: safetensors weights are preferred (use --include)"
    assert result["train_script.py"].reason == "skipped: remote code (pass --trust-remote-code)"
    assert result["config.json"].reason == "config"
    assert result["tokenizer.json"].reason == "tokenizer"
    assert result["openvino/openvino_model.bin"].kind == "openvino"


# --- which weights ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "other", ["pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "rust_model.ot", "model.onnx", "model.mlmodel"]
)
def test_safetensors_preferred_over_every_other_copy(other: str) -> None:
    result = decide(repo("model.safetensors", other, *BASICS))
    assert result["model.safetensors"].selected
    assert not result[other].selected
    assert result[other].reason.startswith("skipped: safetensors weights are preferred")


def test_pickle_is_the_default_without_safetensors() -> None:
    result = decide(repo("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", *BASICS))
    assert chosen(result) == {"pytorch_model.bin", *BASICS}
    assert result["pytorch_model.bin"].reason == "pickle weights (no safetensors weights in this repository)"
    assert result["tf_model.h5"].reason == "skipped: pickle weights are preferred (use --framework tf)"


@pytest.mark.parametrize(
    ("present", "winner"),
    [
        (("model.onnx", "tf_model.h5", "flax_model.msgpack"), "model.onnx"),
        (("tf_model.h5", "flax_model.msgpack"), "tf_model.h5"),
        (("flax_model.msgpack",), "flax_model.msgpack"),
        (("openvino_model.xml", "openvino_model.bin"), "openvino_model.xml"),
    ],
)
def test_fallback_order_without_safetensors_or_pickle(present: tuple[str, ...], winner: str) -> None:
    result = decide(repo(*present, "config.json"))
    assert result[winner].selected
    assert "no safetensors or pickle weights" in result[winner].reason
    for path in present:
        if classify(path) != classify(winner):
            assert not result[path].selected


def test_gguf_comes_before_onnx_in_the_fallback() -> None:
    files = repo("model.Q4_K_M.gguf", "model.onnx", "config.json")
    with pytest.raises(UsageError):
        decide(files)  # gguf is the default, and needs --quant
    result = decide(files, quant="Q4_K_M")
    assert chosen(result) == {"model.Q4_K_M.gguf", "config.json"}


def test_rust_or_coreml_only_needs_include() -> None:
    result = decide(repo("rust_model.ot", "config.json"))
    assert not result["rust_model.ot"].selected
    assert result["rust_model.ot"].reason == "skipped: rust weights are not pulled by default (use --include)"


def test_pickle_only_folder_keeps_its_pickle_weights() -> None:
    files = repo(
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
        "vae/diffusion_flax_model.msgpack",
    )
    result = decide(files)
    assert result["unet/diffusion_pytorch_model.safetensors"].reason == "safetensors weights (preferred)"
    assert not result["unet/diffusion_pytorch_model.bin"].selected
    vae = result["vae/diffusion_pytorch_model.bin"]
    assert vae.selected
    assert vae.reason == "pickle weights: no safetensors copy in this folder"
    assert not result["vae/diffusion_flax_model.msgpack"].selected


def test_explicit_framework_selects_exactly_those_kinds() -> None:
    files = repo(*MINILM)
    result = decide(files, frameworks=("pt",))
    weights = {p for p in chosen(result) if classify(p) in WEIGHT_KINDS}
    assert weights == {"pytorch_model.bin"}
    assert result["pytorch_model.bin"].reason == "pickle weights (--framework pt)"
    assert result["model.safetensors"].reason == "skipped: safetensors weights not requested (--framework pt)"

    result = decide(files, frameworks=("onnx", "safetensors", "onnx"))
    weights = {p for p in chosen(result) if classify(p) in WEIGHT_KINDS}
    assert weights == {"onnx/model.onnx", "model.safetensors"}


def test_explicit_framework_disables_the_pickle_folder_fallback() -> None:
    files = repo("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin")
    result = decide(files, frameworks=("safetensors",))
    assert not result["vae/diffusion_pytorch_model.bin"].selected


def test_unknown_framework_is_a_usage_error_listing_valid_ones() -> None:
    with pytest.raises(UsageError) as err:
        decide(repo(*MINILM), frameworks=("pytorch",))
    assert "pytorch" in err.value.message
    assert all(name in (err.value.hint or "") for name in FRAMEWORKS)


def test_framework_names_are_case_insensitive() -> None:
    assert chosen(decide(repo(*MINILM), frameworks=("PT",))) >= {"pytorch_model.bin"}


def test_requested_framework_with_no_files_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        decide(repo("model.safetensors", "pytorch_model.bin"), frameworks=("flax",))
    assert "flax" in err.value.message
    assert "pt, safetensors" in (err.value.hint or "")


# --- sharded weights -------------------------------------------------------------------

SHARDED = (
    "config.json",
    "model.safetensors.index.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model-00001-of-00003.safetensors",  # stale shards of an older upload
    "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model-00001-of-00002.bin",
    "pytorch_model-00002-of-00002.bin",
)


def test_index_selects_only_the_shards_it_references() -> None:
    reader = index_reader(
        {"model.safetensors.index.json": ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]}
    )
    result = decide(repo(*SHARDED), read_index=reader)
    assert chosen(result) == {
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    assert reader.calls == ["model.safetensors.index.json"]  # type: ignore[attr-defined]  # pickle index not read
    assert result["model.safetensors.index.json"].reason == "index of safetensors weights"
    assert result["model-00001-of-00002.safetensors"].reason == (
        "safetensors shard listed in model.safetensors.index.json"
    )
    assert result["model-00003-of-00003.safetensors"].reason == (
        "skipped: shard not referenced by model.safetensors.index.json"
    )
    assert result["pytorch_model.bin.index.json"].reason == ("skipped: index of pickle weights, which are not selected")


def test_index_shards_are_relative_to_the_index_folder() -> None:
    files = repo(
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00001-of-00001.safetensors",
    )
    reader = index_reader(
        {
            "unet/diffusion_pytorch_model.safetensors.index.json": [
                "diffusion_pytorch_model-00001-of-00002.safetensors",
                "diffusion_pytorch_model-00002-of-00002.safetensors",
            ]
        }
    )
    result = decide(files, read_index=reader)
    assert chosen(result) == {
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
    }


def test_sharded_pickle_in_a_fallback_folder_reads_its_index() -> None:
    files = repo(
        "unet/diffusion_pytorch_model.safetensors",
        "text_encoder/pytorch_model.bin.index.json",
        "text_encoder/pytorch_model-00001-of-00002.bin",
        "text_encoder/pytorch_model-00002-of-00002.bin",
        "text_encoder/pytorch_model-00001-of-00009.bin",
    )
    reader = index_reader(
        {
            "text_encoder/pytorch_model.bin.index.json": [
                "pytorch_model-00001-of-00002.bin",
                "pytorch_model-00002-of-00002.bin",
            ]
        }
    )
    result = decide(files, read_index=reader)
    assert chosen(result) == set(files) - {"text_encoder/pytorch_model-00001-of-00009.bin"}


def test_unreferenced_non_shard_weights_next_to_an_index_are_skipped() -> None:
    # Mistral-style: consolidated.safetensors duplicates the sharded checkpoint.
    files = repo("model.safetensors.index.json", "model-00001-of-00001.safetensors", "consolidated.safetensors")
    reader = index_reader({"model.safetensors.index.json": ["model-00001-of-00001.safetensors"]})
    result = decide(files, read_index=reader)
    assert (
        result["consolidated.safetensors"].reason
        == "skipped: not referenced by model.safetensors.index.json (use --include)"
    )
    assert chosen(decide(files, read_index=reader, include=("consolidated.safetensors",))) == set(files)


def test_without_read_index_every_shard_is_kept() -> None:
    result = decide(repo(*SHARDED))
    safetensors = {p for p in SHARDED if p.endswith(".safetensors")}
    assert chosen(result) == {"config.json", "model.safetensors.index.json", *safetensors}
    assert result["model-00003-of-00003.safetensors"].reason == (
        "safetensors weights (index not read: keeping every shard)"
    )


def test_an_excluded_index_is_not_read_and_keeps_every_shard() -> None:
    reader = index_reader({})
    result = decide(repo(*SHARDED), read_index=reader, exclude=("*.index.json",))
    assert reader.calls == []  # type: ignore[attr-defined]
    assert result["model-00003-of-00003.safetensors"].selected
    assert result["model.safetensors.index.json"].reason == "--exclude *.index.json"


def test_shards_missing_from_the_repository_are_reported() -> None:
    files = repo("model.safetensors.index.json", "model-00001-of-00002.safetensors")
    reader = index_reader(
        {"model.safetensors.index.json": ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]}
    )
    selection = select(files, SelectOptions(), read_index=reader)
    assert selection.missing == ("model-00002-of-00002.safetensors",)
    assert [d.path for d in selection.decisions] == sorted(files)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "no 'weight_map'"),
        (b'{"metadata": {}}', "no 'weight_map'"),
        (b'{"weight_map": {"a": 3}}', "not a file name"),
        (b'{"weight_map": {"a": "../evil.safetensors"}}', "unsafe shard path"),
        (b'{"weight_map": {"a": "/etc/passwd"}}', "unsafe shard path"),
        (b'{"weight_map": {"a": "sub/../../x.safetensors"}}', "unsafe shard path"),
    ],
)
def test_malformed_index_is_a_check_failure(content: bytes, words: str) -> None:
    files = repo("model.safetensors.index.json", "model-00001-of-00001.safetensors")
    with pytest.raises(CheckFailed) as err:
        decide(files, read_index=lambda path: content)
    assert words in err.value.message
    assert "model.safetensors.index.json" in err.value.message
    assert err.value.hint


# --- GGUF ------------------------------------------------------------------------------

GGUF = (
    "README.md",
    "model.Q4_K.gguf",
    "model.Q4_K_M.gguf",
    "model.Q8_0.gguf",
    "model.IQ2_XS.gguf",
    "model-f16-00001-of-00002.gguf",
    "model-f16-00002-of-00002.gguf",
)


def test_gguf_quants_parses_names() -> None:
    assert gguf_quants(GGUF) == ["IQ2_XS", "Q4_K", "Q4_K_M", "Q8_0", "F16"]
    assert gguf_quants(["a-bf16.gguf", "b.F32.gguf", "mmproj-model-f16.gguf", "config.json"]) == ["BF16", "F32"]
    assert gguf_quants(["Q6_K/model-00001-of-00002.gguf"]) == ["Q6_K"]
    assert gguf_quants(["model.gguf"]) == []


def test_quant_selects_matching_files_only() -> None:
    result = decide(repo(*GGUF), quant="Q4_K_M")
    assert chosen(result) == {"README.md", "model.Q4_K_M.gguf"}
    assert result["model.Q4_K_M.gguf"].reason == "gguf weights (--quant Q4_K_M)"
    assert result["model.Q4_K.gguf"].reason == "skipped: not the Q4_K_M quantization"


def test_quant_prefix_does_not_match_a_longer_quant() -> None:
    assert chosen(decide(repo(*GGUF), quant="Q4_K")) == {"README.md", "model.Q4_K.gguf"}
    assert chosen(decide(repo("model_Q4_K_M.gguf", "model_Q4_K.gguf"), quant="q4_k")) == {"model_Q4_K.gguf"}


def test_quant_is_case_insensitive_and_takes_every_split_part() -> None:
    files = repo("model-q4_k_m-00001-of-00002.gguf", "model-q4_k_m-00002-of-00002.gguf", "model-q8_0.gguf")
    assert chosen(decide(files, quant="Q4_K_M")) == {
        "model-q4_k_m-00001-of-00002.gguf",
        "model-q4_k_m-00002-of-00002.gguf",
    }
    assert chosen(decide(repo(*GGUF), quant="f16")) == {
        "README.md",
        "model-f16-00001-of-00002.gguf",
        "model-f16-00002-of-00002.gguf",
    }


def test_gguf_without_quant_names_the_available_quants() -> None:
    with pytest.raises(UsageError) as err:
        decide(repo(*GGUF))
    assert "IQ2_XS, Q4_K, Q4_K_M, Q8_0, F16" in err.value.message
    assert "--quant Q4_K_M" in (err.value.hint or "")
    assert "rather than pulling gigabytes" in (err.value.hint or "")
    with pytest.raises(UsageError):
        decide(repo(*GGUF), frameworks=("gguf",))


def test_quant_matching_nothing_lists_the_available_quants() -> None:
    with pytest.raises(UsageError) as err:
        decide(repo(*GGUF), quant="Q5_K_S")
    assert "Q5_K_S" in err.value.message
    assert "IQ2_XS, Q4_K, Q4_K_M, Q8_0, F16" in (err.value.hint or "")


def test_gguf_include_instead_of_quant() -> None:
    result = decide(repo(*GGUF), include=("*Q8_0*",))
    assert chosen(result) == {"README.md", "model.Q8_0.gguf"}
    assert result["model.Q4_K_M.gguf"].reason == "skipped: gguf quantization not chosen (use --quant)"


def test_gguf_all_excluded_needs_no_quant() -> None:
    assert chosen(decide(repo(*GGUF), exclude=("*.gguf",))) == {"README.md"}


def test_gguf_without_quantization_names_is_taken_whole() -> None:
    result = decide(repo("model.gguf", "README.md"))
    assert result["model.gguf"].reason == "gguf weights (no quantization in the file names)"
    with pytest.raises(UsageError) as err:
        decide(repo("model.gguf"), quant="Q4_K_M")
    assert "--include" in (err.value.hint or "")


def test_gguf_multimodal_projector_comes_with_any_quant() -> None:
    files = repo("model-Q4_K_M.gguf", "model-Q8_0.gguf", "mmproj-model-f16.gguf")
    assert chosen(decide(files, quant="Q8_0")) == {"model-Q8_0.gguf", "mmproj-model-f16.gguf"}


def test_quant_alone_picks_gguf_over_safetensors() -> None:
    files = repo("model.safetensors", "model.Q4_K_M.gguf", "config.json")
    assert chosen(decide(files)) == {"model.safetensors", "config.json"}
    assert decide(files)["model.Q4_K_M.gguf"].reason == "skipped: safetensors weights are preferred (use --quant)"
    result = decide(files, quant="Q4_K_M")
    assert chosen(result) == {"model.Q4_K_M.gguf", "config.json"}
    assert result["model.safetensors"].reason == "skipped: safetensors weights not requested (--quant Q4_K_M)"


def test_quant_without_gguf_files_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        decide(repo("model.safetensors"), quant="Q4_K_M")
    assert "GGUF" in err.value.message


def test_quant_with_a_non_gguf_framework_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        decide(repo("model.safetensors", "model.Q4_K_M.gguf"), frameworks=("safetensors",), quant="Q4_K_M")
    assert "--framework gguf" in (err.value.hint or "")


# --- configs, tokenizer, docs, code, other ---------------------------------------------


def test_configs_tokenizer_docs_and_small_files_are_always_selected() -> None:
    files = repo(
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.model",
        "merges.txt",
        "README.md",
        "LICENSE",
        "chat_template.jinja",
        "big.npz",
        sizes={"big.npz": 5 << 20, "tokenizer.model": 5 << 20},
    )
    result = decide(files)
    assert chosen(result) == set(files) - {"big.npz"}
    assert result["config.json"].reason == "config"
    assert result["tokenizer.model"].reason == "tokenizer"
    assert result["LICENSE"].reason == "docs"
    assert result["chat_template.jinja"].reason == "small file of unknown kind"
    assert result["big.npz"].reason == "skipped: large file of unknown kind (use --include)"


def test_small_file_limit_is_exclusive() -> None:
    files = repo("under.bin.txt", "at.txt", sizes={"under.bin.txt": SMALL_FILE_LIMIT - 1, "at.txt": SMALL_FILE_LIMIT})
    result = decide(files)
    assert result["under.bin.txt"].selected
    assert not result["at.txt"].selected


def test_remote_code_needs_trust() -> None:
    files = repo("model.safetensors", "config.json", "modeling_x.py", "configuration_x.py")
    result = decide(files)
    assert not result["modeling_x.py"].selected
    assert result["modeling_x.py"].reason == "skipped: remote code (pass --trust-remote-code)"
    result = decide(files, trust_remote_code=True)
    assert result["modeling_x.py"].selected
    assert result["modeling_x.py"].reason == "remote code (--trust-remote-code)"


def test_config_only() -> None:
    files = repo(*MINILM, "model.safetensors.index.json", "notes.txt")
    result = decide(files, config_only=True)
    assert chosen(result) == {p for p in files if classify(p) in ("config", "tokenizer", "docs")}
    assert result["model.safetensors"].reason == "skipped: --config-only"
    assert result["train_script.py"].reason == "skipped: remote code (pass --trust-remote-code)"
    assert decide(files, config_only=True, trust_remote_code=True)["train_script.py"].selected


def test_config_only_ignores_gguf_quant_rules() -> None:
    assert chosen(decide(repo(*GGUF), config_only=True)) == {"README.md"}


# --- include, exclude, all -------------------------------------------------------------


def test_include_selects_a_skipped_file() -> None:
    result = decide(repo(*MINILM), include=("*.onnx",))
    assert result["onnx/model.onnx"].selected
    assert result["onnx/model.onnx"].reason == "--include *.onnx"
    assert result["model.safetensors"].reason == "safetensors weights (preferred)"  # already selected: rule reason


def test_include_matches_basename_and_folder_patterns() -> None:
    files = repo(*MINILM)
    assert decide(files, include=("openvino_model.xml",))["openvino/openvino_model.xml"].selected
    result = decide(files, include=("openvino/",))
    assert result["openvino/openvino_model.xml"].selected
    assert result["openvino/openvino_model.bin"].selected
    assert not result["onnx/model.onnx"].selected


def test_exclude_deselects_and_wins_over_include() -> None:
    result = decide(repo(*MINILM), include=("*.onnx", "*.h5"), exclude=("README.md", "*.h5"))
    assert not result["README.md"].selected
    assert result["README.md"].reason == "--exclude README.md"
    assert not result["tf_model.h5"].selected
    assert result["tf_model.h5"].reason == "--exclude *.h5"
    assert result["onnx/model.onnx"].selected


def test_all_selects_everything_but_excluded() -> None:
    result = decide(repo(*MINILM), all=True, exclude=("*.bin",))
    assert chosen(result) == set(MINILM) - {"pytorch_model.bin", "openvino/openvino_model.bin"}
    assert result["train_script.py"].reason == "--all"


def test_all_needs_no_quant() -> None:
    assert chosen(decide(repo(*GGUF), all=True)) == set(GGUF)


def test_empty_patterns_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        decide(repo(*MINILM), include=("",))
    with pytest.raises(UsageError):
        decide(repo(*GGUF), quant=" ")


# --- subfolder -------------------------------------------------------------------------

DIFFUSERS = (
    "model_index.json",
    "README.md",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "onnx/unet/model.onnx",
)


def test_subfolder_limits_the_scope() -> None:
    result = decide(repo(*DIFFUSERS), subfolder="unet")
    assert chosen(result) == {"unet/config.json", "unet/diffusion_pytorch_model.safetensors"}
    assert result["vae/config.json"].reason == "outside --subfolder unet"
    assert result["unet/diffusion_pytorch_model.bin"].reason.startswith("skipped: safetensors weights are preferred")
    assert decide(repo(*DIFFUSERS), subfolder="unet/") == result


def test_subfolder_applies_the_rules_within_it() -> None:
    # onnx/ alone has no safetensors or pickle weights, so its onnx weights are the default there.
    result = decide(repo(*DIFFUSERS), subfolder="onnx")
    assert chosen(result) == {"onnx/unet/model.onnx"}
    assert result["onnx/unet/model.onnx"].reason == "onnx weights (no safetensors or pickle weights in onnx/)"


def test_subfolder_include_and_all_stay_inside() -> None:
    result = decide(repo(*DIFFUSERS), subfolder="unet", all=True, include=("*",))
    assert chosen(result) == {p for p in DIFFUSERS if p.startswith("unet/")}
    # patterns may also be written relative to the subfolder
    assert decide(repo(*DIFFUSERS), subfolder="unet", include=("diffusion_pytorch_model.bin",))[
        "unet/diffusion_pytorch_model.bin"
    ].selected


def test_empty_subfolder_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        decide(repo(*DIFFUSERS), subfolder="text_encoder")
    assert "text_encoder" in err.value.message
    assert "onnx, unet, vae" in (err.value.hint or "")


@pytest.mark.parametrize("bad", ["../etc", "/abs", "a/../b", ""])
def test_unsafe_subfolder_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        decide(repo(*DIFFUSERS), subfolder=bad)


# --- datasets and spaces ---------------------------------------------------------------


@pytest.mark.parametrize("repo_type", ["dataset", "space"])
def test_datasets_and_spaces_take_every_file(repo_type: str) -> None:
    files = repo(
        "README.md", "data/train.parquet", "data/test.parquet", "loader.py", "big.bin", sizes={"big.bin": 9 << 30}
    )
    result = decide(files, repo_type=repo_type)
    assert chosen(result) == set(files)
    assert result["loader.py"].reason == f"{repo_type} file"


def test_datasets_honour_include_exclude_and_subfolder() -> None:
    files = repo("README.md", "data/train.parquet", "data/test.parquet", "extra/x.csv")
    result = decide(files, repo_type="dataset", subfolder="data", exclude=("*test*",))
    assert chosen(result) == {"data/train.parquet"}
    assert result["README.md"].reason == "outside --subfolder data"
    assert result["data/test.parquet"].reason == "--exclude *test*"


def test_unknown_repo_type_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        decide(repo("README.md"), repo_type="collection")


# --- the Selection object and determinism ----------------------------------------------


def test_selection_accessors() -> None:
    selection = select(repo(*MINILM), SelectOptions())
    assert selection.selected == sorted(selection.selected)
    assert "model.safetensors" in selection.selected
    assert all(not d.selected for d in selection.skipped)
    assert len(selection.selected) + len(selection.skipped) == len(MINILM)
    assert selection.get("rust_model.ot") in selection.skipped
    assert selection.get("nope") is None


def test_output_is_deterministic_and_independent_of_input_order() -> None:
    files = repo(*MINILM)
    reversed_files = dict(reversed(list(files.items())))
    first = select(files, SelectOptions(include=("*.onnx",)))
    assert first == select(reversed_files, SelectOptions(include=("*.onnx",)))
    assert [d.path for d in first.decisions] == sorted(MINILM)


# --- variants ----------------------------------------------------------------------------

VARIANTS_REPO = (
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",  # no fp16 copy: the plain file serves every variant
    "text_encoder/config.json",
    "text_encoder/model.safetensors.index.json",
    "text_encoder/model-00001-of-00002.safetensors",
    "text_encoder/model-00002-of-00002.safetensors",
    "text_encoder/model.safetensors.index.fp16.json",
    "text_encoder/model.fp16-00001-of-00002.safetensors",
    "text_encoder/model.fp16-00002-of-00002.safetensors",
)
VARIANT_INDEXES = {
    "text_encoder/model.safetensors.index.json": [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ],
    "text_encoder/model.safetensors.index.fp16.json": [
        "model.fp16-00001-of-00002.safetensors",
        "model.fp16-00002-of-00002.safetensors",
    ],
}


@pytest.mark.parametrize(
    ("path", "stem", "variant"),
    [
        ("unet/diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model", "fp16"),
        ("unet/diffusion_pytorch_model.safetensors", "diffusion_pytorch_model", None),
        ("t/model.fp16-00001-of-00002.safetensors", "model", "fp16"),
        ("diffusion_pytorch_model-00001-of-00002.fp16.safetensors", "diffusion_pytorch_model", "fp16"),
        ("model-00001-of-00002.safetensors", "model", None),
        ("model.safetensors.index.fp16.json", "model", "fp16"),
        ("model.safetensors.index.json", "model", None),
        ("pytorch_model.non_ema.bin", "pytorch_model", "non_ema"),
    ],
)
def test_weight_variant_names(path: str, stem: str, variant: str | None) -> None:
    from hfa.resolve.selection import weight_variant

    assert weight_variant(path) == (stem, variant)


def test_plain_files_are_taken_and_variants_skipped_by_default() -> None:
    reader = index_reader(VARIANT_INDEXES)
    got = decide(repo(*VARIANTS_REPO), read_index=reader)
    assert chosen(got) == {
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors.index.json",
        "text_encoder/model-00001-of-00002.safetensors",
        "text_encoder/model-00002-of-00002.safetensors",
    }
    assert (
        got["unet/diffusion_pytorch_model.fp16.safetensors"].reason == "skipped: the fp16 variant (use --variant fp16)"
    )
    assert got["unet/diffusion_pytorch_model.non_ema.safetensors"].reason.endswith("(use --variant non_ema)")
    assert (
        got["text_encoder/model.safetensors.index.fp16.json"].reason == "skipped: the fp16 variant (use --variant fp16)"
    )
    assert got["text_encoder/model.fp16-00001-of-00002.safetensors"].reason.startswith("skipped: the fp16 variant")
    assert "skipped: safetensors" in got["unet/diffusion_pytorch_model.fp16.bin"].reason  # framework rule first
    assert reader.calls == ["text_encoder/model.safetensors.index.json"]  # the variant's index is not even read


def test_variant_takes_its_copies_and_the_plain_file_where_there_is_none() -> None:
    reader = index_reader(VARIANT_INDEXES)
    got = decide(repo(*VARIANTS_REPO), read_index=reader, variant="fp16")
    weights = {p for p in chosen(got) if "config" not in p and p != "model_index.json"}
    assert weights == {
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors.index.fp16.json",
        "text_encoder/model.fp16-00001-of-00002.safetensors",
        "text_encoder/model.fp16-00002-of-00002.safetensors",
    }
    assert (
        got["unet/diffusion_pytorch_model.safetensors"].reason
        == "skipped: replaced by its fp16 variant (--variant fp16)"
    )
    assert (
        got["unet/diffusion_pytorch_model.non_ema.safetensors"].reason
        == "skipped: the non_ema variant, not --variant fp16"
    )
    assert got["text_encoder/model-00001-of-00002.safetensors"].reason.startswith("skipped: replaced by its fp16")
    assert reader.calls == ["text_encoder/model.safetensors.index.fp16.json"]


def test_variant_no_weight_has_is_refused_with_the_ones_there() -> None:
    with pytest.raises(UsageError, match="variant 'bf16'") as err:
        decide(repo(*VARIANTS_REPO), variant="bf16")
    assert "fp16, non_ema" in (err.value.hint or "")
    with pytest.raises(UsageError, match="variant 'fp16'") as err:
        decide(repo(*MINILM), variant="fp16")
    assert "no variants" in (err.value.hint or "")


@pytest.mark.parametrize("bad", ["", "fp16/../x", "a b", "."])
def test_malformed_variant_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="--variant"):
        decide(repo(*VARIANTS_REPO), variant=bad)


def test_a_file_with_only_variants_keeps_them_all() -> None:
    files = repo("config.json", "model.fp16.safetensors", "model.bf16.safetensors")
    assert chosen(decide(files)) == set(files)  # no plain copy to prefer: nothing judged
    assert chosen(decide(files, variant="bf16")) == {"config.json", "model.bf16.safetensors"}


def test_include_brings_a_skipped_variant_back() -> None:
    got = decide(repo(*VARIANTS_REPO), include=("*.non_ema.safetensors",))
    assert got["unet/diffusion_pytorch_model.non_ema.safetensors"].selected


# --- SelectOptions round-trip ----------------------------------------------------------


def test_select_options_json_only_non_defaults() -> None:
    assert SelectOptions().to_json() == {}
    options = SelectOptions(frameworks=("pt",), quant="Q4_K_M", exclude=("*.md",), trust_remote_code=True)
    assert options.to_json() == {
        "frameworks": ["pt"],
        "quant": "Q4_K_M",
        "exclude": ["*.md"],
        "trust_remote_code": True,
    }
    assert SelectOptions.from_json(json.loads(json.dumps(options.to_json()))) == options


@pytest.mark.parametrize(
    "doc",
    [
        {"bogus": True},
        {"frameworks": "pt"},
        {"frameworks": [1]},
        {"all": "yes"},
        {"quant": 4},
        ["frameworks"],
    ],
)
def test_select_options_from_json_refuses_bad_input(doc: Any) -> None:
    with pytest.raises(UsageError):
        SelectOptions.from_json(doc)


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
options_strategy = st.builds(
    SelectOptions,
    frameworks=st.lists(st.sampled_from(FRAMEWORKS), max_size=3).map(tuple),
    quant=st.none() | _text,
    include=st.lists(_text, max_size=3).map(tuple),
    exclude=st.lists(_text, max_size=3).map(tuple),
    all=st.booleans(),
    config_only=st.booleans(),
    subfolder=st.none() | _text,
    variant=st.none() | _text,
    trust_remote_code=st.booleans(),
)


@given(options_strategy)
def test_select_options_round_trip(options: SelectOptions) -> None:
    assert SelectOptions.from_json(json.loads(json.dumps(options.to_json()))) == options


# --- property test ---------------------------------------------------------------------

FOLDERS = ("", "unet/", "vae/", "onnx/", "openvino/", "1_Pooling/", "a/b/")
NAMES = (
    "config.json",
    "tokenizer.json",
    "README.md",
    "model.safetensors",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model-00001-of-00002.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "flax_model.msgpack",
    "rust_model.ot",
    "model.onnx",
    "openvino_model.xml",
    "model.Q4_K_M.gguf",
    "model-q8_0-00001-of-00002.gguf",
    "model.gguf",
    "mmproj-f16.gguf",
    "modeling.py",
    "blob.dat",
    "model.mlmodel",
)
GLOBS = ("*.json", "*.safetensors", "model*", "onnx/", "*Q4_K_M*", "*.gguf", "unet/*", "README.md", "[!a]*")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, RemoteFile], SelectOptions, str, Callable[[str], bytes] | None]:
    paths = draw(st.lists(st.tuples(st.sampled_from(FOLDERS), st.sampled_from(NAMES)), max_size=14))
    sizes = st.sampled_from([0, 10, SMALL_FILE_LIMIT - 1, SMALL_FILE_LIMIT, 3 << 30])
    files = {f + n: remote(f + n, draw(sizes)) for f, n in paths}
    options = SelectOptions(
        frameworks=tuple(draw(st.just(()) | st.lists(st.sampled_from((*FRAMEWORKS, "bogus")), max_size=2))),
        quant=draw(st.sampled_from([None, None, "Q4_K_M", "Q4_K", "Q8_0", "F16", "nope"])),
        include=tuple(draw(st.lists(st.sampled_from(GLOBS), max_size=2))),
        exclude=tuple(draw(st.lists(st.sampled_from(GLOBS), max_size=2))),
        all=draw(st.booleans()),
        config_only=draw(st.booleans()),
        subfolder=draw(st.sampled_from([None, None, None, "unet", "onnx", "a", "missing"])),
        trust_remote_code=draw(st.booleans()),
    )
    repo_type = draw(st.sampled_from(["model", "model", "model", "dataset", "space"]))
    shard_names = [n for n in NAMES if "-of-" in n]
    referenced = draw(st.lists(st.sampled_from(shard_names), max_size=3))

    def read(path: str) -> bytes:
        return json.dumps({"weight_map": {f"t{i}": s for i, s in enumerate(referenced)}}).encode()

    return files, options, repo_type, draw(st.sampled_from([None, read]))


def _excluded(path: str, patterns: Iterable[str]) -> bool:
    name = path.rpartition("/")[2]
    for pattern in patterns:
        glob = pattern + "*" if pattern.endswith("/") else pattern
        if fnmatchcase(path, glob) or fnmatchcase(name, glob):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_select_properties(scenario: tuple[dict[str, RemoteFile], SelectOptions, str, Any]) -> None:
    files, options, repo_type, read_index = scenario
    try:
        selection = select(files, options, repo_type=repo_type, read_index=read_index)
    except UsageError as exc:
        assert exc.message and exc.hint  # every refusal says what and how to fix
        return
    assert isinstance(selection, Selection)
    paths = [d.path for d in selection.decisions]
    assert paths == sorted(files)  # exactly one decision per input path, sorted
    for decision in selection.decisions:
        assert decision.reason
        assert decision.kind == classify(decision.path)
        if decision.selected:
            assert not _excluded(decision.path, options.exclude)
            if options.subfolder:
                assert decision.path.startswith(options.subfolder + "/")
    assert select(files, options, repo_type=repo_type, read_index=read_index) == selection
    assert select(dict(reversed(list(files.items()))), options, repo_type=repo_type, read_index=read_index) == selection


def test_quant_is_trimmed() -> None:
    assert chosen(decide(repo(*GGUF), quant=" Q8_0 ")) == {"README.md", "model.Q8_0.gguf"}
