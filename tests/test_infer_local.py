"""``hfa infer --local``: models run in-process from the cache (hfa.infer.local), and the rules before loading.

The policy and file tests need neither torch nor a model; the rest skip without the optional extra.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import hfa

from hfa.config import Settings
from hfa.demo import MINILM_ID
from hfa.errors import CheckFailed, UsageError
from hfa.infer.modelfiles import (
    ModelFiles,
    ModelRefused,
    StagedModel,
    UnsupportedTask,
    check_policy,
    client_view,
    from_cache,
    normalize_task,
)
from hfa.resolve.refs import RepoRef
from hfa.testing import model_card, write_repo

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market crashed today."]


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _model(tmp_path: Path, files: dict[str, bytes | str], card: dict | None = None) -> ModelFiles:
    cache = tmp_path / "cache"
    if card is not None:
        files = {**files, "README.md": model_card(**card)}
    write_repo(cache, "org/m", files)
    return from_cache(cache, RepoRef.parse("org/m"))


# -- rules before loading (no torch) -----------------------------------------------------------------
def test_pickle_only_weights_are_refused_unless_allowed(tmp_path: Path) -> None:
    model = _model(tmp_path, {"config.json": "{}", "pytorch_model.bin": b"\x80\x02}q\x00."})
    with pytest.raises(ModelRefused) as err:
        check_policy(model, allow_pickle=False, trust_remote_code=False)
    assert err.value.code == "PickleRefused"
    assert "pytorch_model.bin" in err.value.message and "--allow-pickle" in str(err.value)
    check_policy(model, allow_pickle=True, trust_remote_code=False)  # a benign pickle, allowed


def test_a_dangerous_pickle_is_refused_even_when_pickles_are_allowed(tmp_path: Path) -> None:
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    model = _model(tmp_path, {"config.json": "{}", "pytorch_model.bin": evil})
    with pytest.raises(ModelRefused) as err:
        check_policy(model, allow_pickle=True, trust_remote_code=False)
    assert err.value.code == "UnsafeContent"


def test_safetensors_beside_pickle_is_fine_and_the_pickle_is_never_staged(tmp_path: Path) -> None:
    model = _model(
        tmp_path,
        {
            "config.json": "{}",
            "model.safetensors": b"x",
            "pytorch_model.bin": b"pickle",
            "training_args.bin": b"pickle",
            "code.py": "print()",
        },
    )
    check_policy(model, allow_pickle=False, trust_remote_code=False)
    staged = StagedModel(model, allow_pickle=False, trust_remote_code=False)
    try:
        names = sorted(p.name for p in staged.path.iterdir())
        assert names == ["config.json", "model.safetensors"]
        assert (staged.path / "model.safetensors").resolve() == model.files["model.safetensors"]
    finally:
        staged.close()
    assert not staged.path.exists()


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"config.json": json.dumps({"auto_map": {"AutoModel": "m.M"}}), "m.py": "x = 1"}, "auto_map in config.json"),
        ({"tokenizer_config.json": json.dumps({"auto_map": {"AutoTokenizer": ["t.T", None]}})}, "tokenizer_config"),
        ({"modules.json": json.dumps([{"type": "custom.Module", "path": ""}])}, "custom module custom.Module"),
        ({"model_index.json": json.dumps({"_class_name": ["pipe", "MyPipeline"]})}, "custom pipeline"),
        (
            {"model_index.json": json.dumps({"_class_name": "P", "unet": ["my_unet", "U"]}), "unet/my_unet.py": ""},
            "unet",
        ),
    ],
)
def test_repository_code_is_refused_unless_trusted(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    model = _model(tmp_path, {**files, "model.safetensors": b"x"})
    with pytest.raises(ModelRefused) as err:
        check_policy(model, allow_pickle=False, trust_remote_code=False)
    assert err.value.code == "RemoteCodeRefused" and reason in err.value.message
    # The hint is in the syntax of the command that refused: hfa infer's flag takes no repo, hfa serve's does.
    assert (
        err.value.hint
        == "if you have read and trust that code: add --trust-remote-code to this `hfa infer --local` command"
    )
    with pytest.raises(ModelRefused) as err:
        check_policy(model, allow_pickle=False, trust_remote_code=False, for_server=True)
    assert "hfa serve with --infer --trust-remote-code org/m" in str(err.value)
    check_policy(model, allow_pickle=False, trust_remote_code=True)


def test_default_task_from_card_files_or_architecture(tmp_path: Path) -> None:
    assert _model(tmp_path / "a", {"x": "1"}, {"pipeline_tag": "sentence-similarity"}).default_task() == (
        "feature-extraction"
    )
    assert _model(tmp_path / "b", {"modules.json": "[]"}).default_task() == "feature-extraction"
    arch = json.dumps({"architectures": ["GPT2LMHeadModel"]})
    assert _model(tmp_path / "c", {"config.json": arch}).default_task() == "text-generation"
    with pytest.raises(UnsupportedTask, match="names no task"):
        _model(tmp_path / "d", {"config.json": "{}"}).default_task()
    with pytest.raises(UnsupportedTask, match="fill-mask model, which hfa cannot run"):
        _model(tmp_path / "e", {"x": "1"}, {"pipeline_tag": "fill-mask"}).default_task()
    assert normalize_task("Sentiment-Analysis") == "text-classification"
    with pytest.raises(UnsupportedTask):
        normalize_task("fill-mask")


def test_from_cache_is_offline_and_follows_the_lock(tmp_path: Path) -> None:
    from hfa.lock import lockfile

    cache = tmp_path / "cache"
    old = write_repo(cache, "org/m", {"config.json": "{}", "a.txt": "1", "b.txt": "2"})
    new = write_repo(cache, "org/m", {"config.json": "{}", "a.txt": "3"}, parent=old)
    assert from_cache(cache, RepoRef.parse("org/m")).commit == new
    assert from_cache(cache, RepoRef.parse(f"org/m@{old}")).commit == old
    from hfa.resolve.selection import SelectOptions

    entry = lockfile.LockedRepo(
        "org/m", "model", "main", old, SelectOptions(), (lockfile.LockedFile("a.txt", 1, "git-sha1", "0" * 40),)
    )
    lock = lockfile.Lock(repos=(entry,))
    locked = from_cache(cache, RepoRef.parse("org/m"), lock)
    assert locked.commit == old and sorted(locked.files) == ["a.txt"]
    with pytest.raises(CheckFailed, match="not in the cache"):
        from_cache(cache, RepoRef.parse("org/other"))
    with pytest.raises(UsageError):
        from_cache(cache, RepoRef.parse("datasets/org/m"))


def test_client_view_is_what_inference_client_returns() -> None:
    labels = [{"label": "POSITIVE", "score": 0.9}]
    assert client_view("text-classification", [labels]) == labels
    assert client_view("summarization", [{"summary_text": "s"}]) == {"summary_text": "s"}
    assert client_view("text-generation", [{"generated_text": "g"}]) == "g"
    assert client_view("feature-extraction", [0.1, 0.2]) == [0.1, 0.2]


# -- the real all-MiniLM-L6-v2 -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_runner(minilm_cache: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from hfa.infer.local import make_runner

    cache, _folder = minilm_cache
    runner = make_runner(Settings.resolve(cache_dir=cache), RepoRef.parse(MINILM_ID))
    yield runner
    runner.close()


@pytest.mark.slow
def test_minilm_embeddings_local_equal_sentence_transformers_and_are_sane(minilm_runner, minilm_cache) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    _cache, folder = minilm_cache
    one = minilm_runner.run("embeddings", SENTENCES[0], {})
    assert isinstance(one, list) and len(one) == 384 and all(isinstance(x, float) for x in one)
    batch = minilm_runner.run("feature-extraction", SENTENCES, {})
    assert [len(v) for v in batch] == [384, 384, 384]
    direct = SentenceTransformer(str(folder), device="cpu").encode(SENTENCES)
    for got, want in zip(batch, direct.tolist(), strict=True):
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-5
    assert max(abs(a - b) for a, b in zip(one, batch[0], strict=True)) < 1e-5
    similar, unrelated = _cos(batch[0], batch[1]), _cos(batch[0], batch[2])
    assert similar > 0.5 > unrelated + 0.3
    assert minilm_runner.route.startswith(f"local:{MINILM_ID}@")


@pytest.mark.slow
def test_hfa_infer_embeddings_local_cli(minilm_runner, minilm_cache) -> None:  # type: ignore[no-untyped-def]
    cache, _folder = minilm_cache
    result = hfa(
        "infer", "embeddings", "--model", MINILM_ID, "--input", SENTENCES[0], "--local",
        "--cache-dir", str(cache), "--json", "--no-cache",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    want = minilm_runner.run("feature-extraction", SENTENCES[0], {})
    assert max(abs(a - b) for a, b in zip(doc["result"], want, strict=True)) < 1e-5
    selftest = hfa("infer", "embeddings", "--model", MINILM_ID, "--local", "--selftest", "--cache-dir", str(cache))
    assert selftest.exit_code == 0, selftest.stderr
    assert "dimension 384" in selftest.stdout + selftest.stderr


# -- tiny models of real architectures, every task ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_runner(tiny_cache):  # type: ignore[no-untyped-def]
    from hfa.infer.local import make_runner

    cache, _commits = tiny_cache
    runners: dict[str, object] = {}

    def get(repo: str, **kwargs: object):  # type: ignore[no-untyped-def]
        key = f"{repo}{sorted(kwargs.items())}"
        if key not in runners:
            runners[key] = make_runner(Settings.resolve(cache_dir=cache), RepoRef.parse(repo), **kwargs)  # type: ignore[arg-type]
        return runners[key]

    yield get
    for runner in runners.values():
        runner.close()  # type: ignore[attr-defined]


def _labels(result: object, names: set[str]) -> None:
    assert isinstance(result, list) and result
    assert {item["label"] for item in result} <= names  # type: ignore[index]
    scores = [item["score"] for item in result]  # type: ignore[index]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_local_tasks_answer_in_inference_client_shapes(tiny_runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tiny_models import tiny_png

    labels = tiny_runner("tiny/bert-sentiment").run("sentiment-analysis", "I love this movie", {})
    _labels(labels, {"POSITIVE", "NEGATIVE"})
    assert len(labels) == 2 and abs(sum(x["score"] for x in labels) - 1) < 1e-5
    assert len(tiny_runner("tiny/bert-sentiment").run("text-classification", "bad", {"top_k": 1})) == 1

    zs = tiny_runner("tiny/bert-nli").run(
        "zero-shot-classification", "the market fell", {"candidate_labels": ["finance", "sports", "cooking"]}
    )
    _labels(zs, {"finance", "sports", "cooking"})
    assert len(zs) == 3 and abs(sum(x["score"] for x in zs) - 1) < 1e-5

    context = "hfa manages hugging face hub assets like packages."
    answer = tiny_runner("tiny/bert-qa").run("question-answering", {"question": "what?", "context": context}, {})
    assert set(answer) == {"answer", "score", "start", "end"}
    assert context[answer["start"] : answer["end"]] == answer["answer"] and 0 <= answer["score"] <= 1
    two = tiny_runner("tiny/bert-qa").run("question-answering", {"question": "what?", "context": context}, {"top_k": 2})
    assert isinstance(two, list) and len(two) == 2

    vec = tiny_runner("tiny/bert-embed").run("feature-extraction", "hello world", {"normalize": True})
    assert len(vec) == 16 and abs(sum(x * x for x in vec) - 1) < 1e-4
    assert len(tiny_runner("tiny/bert-embed").run("feature-extraction", ["a", "b"], {})) == 2

    text = tiny_runner("tiny/gpt2").run("text-generation", "Once upon a time", {"max_new_tokens": 4})
    assert isinstance(text, str) and text.startswith("Once upon a time")
    new = tiny_runner("tiny/gpt2").run("text-generation", "Hi", {"max_new_tokens": 3, "return_full_text": False})
    assert isinstance(new, str) and not new.startswith("Hi")

    summary = tiny_runner("tiny/t5-summarize").run(
        "summarization", "the movie was very good", {"generate_parameters": {"max_new_tokens": 4}}
    )
    assert set(summary) == {"summary_text"} and isinstance(summary["summary_text"], str)
    translated = tiny_runner("tiny/t5-translate").run("translation", "hello", {"src_lang": "en", "tgt_lang": "de"})
    assert set(translated) == {"translation_text"}

    image = tmp_path / "red.png"
    image.write_bytes(tiny_png())
    _labels(tiny_runner("tiny/vit").run("image-classification", str(image), {}), {"cat", "dog", "bird"})


def test_local_bad_inputs_are_usage_errors(tiny_runner) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="candidate_labels"):
        tiny_runner("tiny/bert-nli").run("zero-shot-classification", "x", {})
    with pytest.raises(UsageError, match="inputs must be"):
        tiny_runner("tiny/bert-sentiment").run("text-classification", 42, {})
    with pytest.raises(UsageError, match="top_k"):
        tiny_runner("tiny/bert-sentiment").run("text-classification", "x", {"top_k": "many"})
    with pytest.raises(UsageError, match="cannot read the image"):
        tiny_runner("tiny/vit").run_wire("image-classification", b"not an image", {})


def test_local_text_to_image(tiny_runner, tiny_cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("diffusers")
    import io

    from PIL import Image

    params = {"num_inference_steps": 2, "guidance_scale": 5.0, "width": 32, "height": 64, "seed": 1}
    png = tiny_runner("tiny/diffusion").run("text-to-image", "a red square", params)
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (32, 64)
    assert tiny_runner("tiny/diffusion").run("text-to-image", "a red square", params) == png
    other = tiny_runner("tiny/diffusion").run("text-to-image", "a red square", {**params, "scheduler": "DDPMScheduler"})
    assert other != png and other.startswith(b"\x89PNG")
    with pytest.raises(UsageError, match="multiple of"):
        tiny_runner("tiny/diffusion").run("text-to-image", "a red square", {"height": 31})

    cache, _commits = tiny_cache
    out = tmp_path / "out.png"
    result = hfa(
        "infer", "text-to-image", "--model", "tiny/diffusion", "--input", "a red square", "--local",
        "--parameters", json.dumps(params), "--output", str(out), "--cache-dir", str(cache), "--no-cache",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == png


def test_text_to_image_without_diffusers_is_a_clear_error(tiny_cache, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from hfa.infer.local import make_runner

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a))
    runner = make_runner(Settings.resolve(cache_dir=tiny_cache[0]), RepoRef.parse("tiny/diffusion"))
    with pytest.raises(UnsupportedTask, match="diffusers"):
        runner.run("text-to-image", "a red square", {})


def test_local_policy_pickle_and_remote_code(tiny_runner) -> None:  # type: ignore[no-untyped-def]
    from tiny_models import PICKLE_REPO, REMOTE_CODE_REPO

    with pytest.raises(ModelRefused, match="only as pickle"):
        tiny_runner(PICKLE_REPO).run("text-classification", "hi", {})
    _labels(tiny_runner(PICKLE_REPO, allow_pickle=True).run("text-classification", "hi", {}), {"POSITIVE", "NEGATIVE"})
    with pytest.raises(ModelRefused, match="runs code from its repository"):
        tiny_runner(REMOTE_CODE_REPO).run("text-classification", "hi", {})
    # Trusted, the repository's code really runs (here it raises, proving it was imported), and the
    # error says it came from the repository's code.
    with pytest.raises(
        CheckFailed, match=r"repository code of .* \(modeling_evil.py\): RuntimeError: repository code ran"
    ):
        tiny_runner(REMOTE_CODE_REPO, trust_remote_code=True).run("text-classification", "hi", {})


def test_hfa_infer_local_reports_repository_code_errors_and_the_right_flag(tiny_cache) -> None:  # type: ignore[no-untyped-def]
    from tiny_models import REMOTE_CODE_REPO

    base = ["infer", "text-classification", "--model", REMOTE_CODE_REPO, "--local", "-i", "x"]
    base += ["--cache-dir", str(tiny_cache[0]), "--no-cache"]
    refused = hfa(*base)
    assert refused.exit_code == 1, refused.stderr
    assert "add --trust-remote-code to this `hfa infer --local` command" in refused.stderr
    assert f"--trust-remote-code {REMOTE_CODE_REPO}" not in refused.stderr  # that is hfa serve's syntax
    trusted = hfa(*base, "--trust-remote-code")
    assert trusted.exit_code == 1, trusted.stderr  # not 70, "a bug in hfa"
    assert "repository code of tiny/bert-remote-code@" in trusted.stderr
    assert "modeling_evil.py): RuntimeError: repository code ran" in trusted.stderr
    assert "bug in hfa" not in trusted.stderr and "not in hfa" in trusted.stderr


def test_text_to_image_pipelines_come_from_diffusers_only() -> None:
    diffusers = pytest.importorskip("diffusers")
    from hfa.infer.engines.image import pipeline_class

    sd = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}
    assert pipeline_class(diffusers, sd, "org/m", trusted=False) is diffusers.StableDiffusionPipeline
    safety = {**sd, "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]}
    assert pipeline_class(diffusers, safety, "org/m", trusted=False) is diffusers.StableDiffusionPipeline
    foreign = {**sd, "vae": ["os", "system"]}
    with pytest.raises(ModelRefused, match="vae from os") as err:
        pipeline_class(diffusers, foreign, "org/m", trusted=False)
    assert err.value.code == "RemoteCodeRefused"
    assert pipeline_class(diffusers, foreign, "org/m", trusted=True) is diffusers.DiffusionPipeline
    with pytest.raises(UnsupportedTask, match="NoSuchPipeline"):
        pipeline_class(diffusers, {"_class_name": "NoSuchPipeline"}, "org/m", trusted=False)
    with pytest.raises(UnsupportedTask, match="os"):  # a name diffusers has, but not a pipeline
        pipeline_class(diffusers, {"_class_name": "os"}, "org/m", trusted=False)
