"""``hfa serve --infer``: the Inference API routes, checked end to end with huggingface_hub's own InferenceClient.

Routing, errors, loading (503 with estimated_time), the LRU and the policy use a scripted loader
and need no torch; every task's shapes run on tiny real-architecture models (tests/tiny_models.py)
and on the real all-MiniLM-L6-v2, and skip without the optional extra.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from helpers import hfa

from hfa.demo import MINILM_ID
from hfa.infer.pool import PoolConfig
from hfa.server import HubServer, ServerConfig
from hfa.testing import make_safetensors, model_card, write_repo

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market crashed today."]
WAIT = {"X-Wait-For-Model": "true"}


def _client(url: str, repo: str, wait: bool = True):  # type: ignore[no-untyped-def]
    from huggingface_hub import InferenceClient

    return InferenceClient(model=f"{url}/models/{repo}", headers=WAIT if wait else None)


# -- a scripted loader: routes, errors, loading and the pool without torch ----------------------------
class FakeEngine:
    kind = "fake"

    def __init__(self, model: Any, task: str) -> None:
        self.model, self.task, self.closed = model, task, False

    def run(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        if inputs == "boom":
            raise RuntimeError("the forward pass failed")
        if self.task == "feature-extraction":
            return [0.5, 0.25] if isinstance(inputs, str) else [[0.5, 0.25] for _ in inputs]
        if self.task == "image-classification":
            return [{"label": f"{len(inputs)} bytes", "score": 1.0}]
        return [[{"label": "POSITIVE", "score": 0.75}, {"label": "NEGATIVE", "score": 0.25}]]

    def close(self) -> None:
        self.closed = True


class FakeLoader:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.engines: list[FakeEngine] = []
        self.fail: set[str] = set()

    def __call__(self, model: Any, task: str, *, allow_pickle: bool, trust_remote_code: bool) -> FakeEngine:
        self.calls.append((model.repo_id, task))
        if model.repo_id in self.fail:
            raise OSError("weights are corrupt")
        engine = FakeEngine(model, task)
        self.engines.append(engine)
        return engine


def _fake_world(cache: Path) -> None:
    weights = make_safetensors({"w": ("F32", [4])})
    for repo, tag in (
        ("org/cls", "text-classification"),
        ("org/emb", "feature-extraction"),
        ("org/img", "image-classification"),
    ):
        write_repo(cache, repo, {"README.md": model_card(pipeline_tag=tag), "model.safetensors": weights})
    write_repo(cache, "org/notag", {"config.json": "{}", "model.safetensors": weights})
    write_repo(
        cache,
        "org/pickled",
        {"README.md": model_card(pipeline_tag="text-classification"), "pytorch_model.bin": b"\x80\x02}q\x00."},
    )
    write_repo(
        cache, "org/broken", {"README.md": model_card(pipeline_tag="text-classification"), "model.safetensors": weights}
    )
    write_repo(
        cache,
        "org/private",
        {"README.md": model_card(pipeline_tag="text-classification"), "model.safetensors": weights},
    )


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[tuple[HubServer, FakeLoader]]:
    from hfa.server.auth import load_policy

    _fake_world(tmp_path / "served")
    auth = tmp_path / "auth.toml"
    auth.write_text('[repos]\n"org/private" = "private"\n')
    loader = FakeLoader()
    loader.fail.add("org/broken")
    config = PoolConfig(max_models=2, loader=loader)
    with HubServer(ServerConfig(cache_dir=tmp_path / "served", auth=load_policy(auth), infer=config)) as srv:
        yield srv, loader


def test_routes_answer_for_served_models_with_the_cards_task(fake_server) -> None:  # type: ignore[no-untyped-def]
    srv, loader = fake_server
    for prefix in ("", "/hf-inference"):
        r = httpx.post(f"{srv.url}{prefix}/models/org/cls", json={"inputs": "hi"}, headers=WAIT)
        assert r.status_code == 200, r.text
        assert r.json()[0][0] == {"label": "POSITIVE", "score": 0.75}
    r = httpx.post(
        f"{srv.url}/models/org/emb/pipeline/feature-extraction",
        json={"inputs": ["a", "b"], "normalize": True},
        headers=WAIT,
    )
    assert r.json() == [[0.5, 0.25], [0.5, 0.25]]
    # Embeddings from any encoder: the feature-extraction route also runs a classifier's encoder.
    assert httpx.post(f"{srv.url}/models/org/cls/pipeline/embeddings", json={"inputs": "x"}, headers=WAIT).json() == [
        0.5,
        0.25,
    ]
    r = httpx.post(f"{srv.url}/models/org/img", content=b"\x89PNG....", headers={**WAIT, "Content-Type": "image/png"})
    assert r.json() == [{"label": "8 bytes", "score": 1.0}]
    r = httpx.post(f"{srv.url}/models/org/img", json={"inputs": "iVBORw==", "parameters": {"top_k": 1}}, headers=WAIT)
    assert r.json() == [{"label": "4 bytes", "score": 1.0}]
    assert loader.calls.count(("org/cls", "text-classification")) == 1  # loaded once, then kept
    # The Hub routes are still there.
    assert httpx.get(f"{srv.url}/api/models/org/cls").json()["pipeline_tag"] == "text-classification"


def test_info_and_health(fake_server) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import InferenceClient

    srv, _loader = fake_server
    client = InferenceClient(model=f"{srv.url}/models/org/cls", provider="hf-inference")
    info = client.get_endpoint_info()
    assert info["model_id"] == "org/cls" and info["model_pipeline_tag"] == "text-classification"
    assert len(info["model_sha"]) == 40 and info["state"] == "not loaded"
    assert client.health_check() is True
    httpx.post(f"{srv.url}/models/org/cls", json={"inputs": "hi"}, headers=WAIT)
    assert client.get_endpoint_info()["state"] == "ready"
    assert httpx.get(f"{srv.url}/hf-inference/models/org/cls/health").json()["state"] == "ready"
    assert httpx.get(f"{srv.url}/models/org/pickled/health").status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "needle"),
    [
        ("POST", "/models/org/nope", {"json": {"inputs": "x"}}, 404, "does not exist"),
        ("POST", "/models/org/private", {"json": {"inputs": "x"}}, 404, "does not exist"),
        (
            "POST",
            "/models/org/cls/pipeline/summarization",
            {"json": {"inputs": "x"}},
            400,
            "does not run summarization",
        ),
        ("POST", "/models/org/cls/pipeline/fill-mask", {"json": {"inputs": "x"}}, 400, "Unsupported task"),
        ("POST", "/models/org/notag", {"json": {"inputs": "x"}}, 400, "names no task"),
        (
            "POST",
            "/models/org/cls",
            {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ("POST", "/models/org/cls", {"json": {"text": "x"}}, 400, '"inputs"'),
        ("POST", "/models/org/cls", {"json": {"inputs": "x", "parameters": [1]}}, 400, "parameters"),
        ("POST", "/models/org/cls", {"json": {"inputs": "x", "stream": True}}, 400, "Streaming"),
        ("POST", "/models/org/img", {"json": {"inputs": "%%%"}}, 400, "base64"),
        ("POST", "/models/org/pickled", {"json": {"inputs": "x"}}, 403, "only as pickle"),
        ("POST", "/models/org/cls", {"json": {"inputs": "boom"}, "headers": WAIT}, 500, "forward pass failed"),
        ("POST", "/models/org/broken", {"json": {"inputs": "x"}, "headers": WAIT}, 500, "weights are corrupt"),
    ],
)
def test_errors_are_json_with_the_right_status(fake_server, method, path, kwargs, status, needle) -> None:  # type: ignore[no-untyped-def]
    srv, _loader = fake_server
    r = httpx.request(method, srv.url + path, **kwargs)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    assert r.headers["content-type"].startswith("application/json")


def test_a_failed_load_is_reported_once_then_retried(fake_server) -> None:  # type: ignore[no-untyped-def]
    srv, loader = fake_server
    assert httpx.post(f"{srv.url}/models/org/broken", json={"inputs": "x"}, headers=WAIT).status_code == 500
    loader.fail.clear()
    assert httpx.post(f"{srv.url}/models/org/broken", json={"inputs": "x"}, headers=WAIT).status_code == 200
    assert loader.calls.count(("org/broken", "text-classification")) == 2


def test_least_recently_used_models_are_unloaded(fake_server) -> None:  # type: ignore[no-untyped-def]
    srv, loader = fake_server
    pool = srv.hub.infer.pool
    for repo in ("org/cls", "org/emb", "org/cls", "org/img"):
        assert httpx.post(f"{srv.url}/models/{repo}", json={"inputs": "x"} if repo != "org/img" else None,
                          content=b"img" if repo == "org/img" else None, headers=WAIT).status_code == 200  # fmt: skip
    assert sorted(k[0] for k in pool.loaded()) == ["org/cls", "org/img"]
    emb = next(e for e in loader.engines if e.model.repo_id == "org/emb")
    deadline = time.monotonic() + 10  # the loading thread closes what it evicted after the answer went out
    while not emb.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emb.closed


def test_loading_answers_503_with_estimated_time_and_hfa_client_waits(tmp_path: Path) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    from hfa.infer.client import InferenceAPI

    _fake_world(tmp_path / "served")
    config = PoolConfig(loader=FakeLoader(), load_delay=1.5, hold=0.3)
    with HubServer(ServerConfig(cache_dir=tmp_path / "served", infer=config)) as srv:
        started = time.monotonic()
        r = httpx.post(f"{srv.url}/models/org/cls", json={"inputs": "x"}, headers={"X-Wait-For-Model": "false"})
        assert r.status_code == 503 and time.monotonic() - started < 0.3  # asked not to wait: at once
        body = r.json()
        assert body["error"] == "Model org/cls is currently loading" and body["estimated_time"] >= 1.0
        # The official client does not wait itself: the server holds it up to its bound, then answers 503.
        started = time.monotonic()
        with pytest.raises(HfHubHTTPError) as err:
            _client(srv.url, "org/cls", wait=False).text_classification("x")
        assert time.monotonic() - started >= 0.25
        assert err.value.response.status_code == 503 and "estimated_time" in err.value.response.json()
        # hfa's client waits about estimated_time, then gets the answer (another model, loading afresh).
        waits: list[str] = []
        srv.reset_requests()
        api = InferenceAPI(f"{srv.url}/models/org/emb", on_wait=waits.append, timeout=30)
        started = time.monotonic()
        assert api.run("feature-extraction", "x", {}) == [0.5, 0.25]
        assert time.monotonic() - started >= 1.0
        assert len(waits) >= 1 and "loading" in waits[0]
        posts = [p for m, p in srv.requests if m == "POST"]
        assert len(posts) >= 2 and set(posts) == {"/models/org/emb/pipeline/feature-extraction"}
        assert srv.hub.infer.pool.loads == 2


def test_the_official_client_gets_its_first_answer_while_the_model_loads(tmp_path: Path) -> None:
    _fake_world(tmp_path / "served")
    config = PoolConfig(loader=FakeLoader(), load_delay=0.8)  # the default hold (60 s) covers the load
    with HubServer(ServerConfig(cache_dir=tmp_path / "served", infer=config)) as srv:
        started = time.monotonic()
        labels = _client(srv.url, "org/cls", wait=False).text_classification("x")
        assert labels[0].label == "POSITIVE" and time.monotonic() - started >= 0.7
        assert srv.requests == [("POST", "/models/org/cls")]  # one request: held, not 503 then retried


def test_infer_models_and_lock_restrict_what_runs(tmp_path: Path) -> None:
    _fake_world(tmp_path / "served")
    config = PoolConfig(loader=FakeLoader(), models=frozenset({"org/emb"}))
    with HubServer(ServerConfig(cache_dir=tmp_path / "served", infer=config)) as srv:
        r = httpx.post(f"{srv.url}/models/org/cls", json={"inputs": "x"}, headers=WAIT)
        assert r.status_code == 404 and "not served for inference" in r.json()["error"]
        assert httpx.post(f"{srv.url}/models/org/emb", json={"inputs": "x"}, headers=WAIT).status_code == 200
        assert httpx.get(f"{srv.url}/api/models/org/cls").status_code == 200  # its files are still served


def test_without_infer_the_routes_do_not_exist(server) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{server.url}/models/org/model", json={"inputs": "x"})
    assert r.status_code == 404


def test_serve_flags_need_infer(world) -> None:  # type: ignore[no-untyped-def]
    result = hfa("serve", "--cache-dir", str(world.cache_dir), "--port", "0", "--allow-pickle")
    assert result.exit_code == 2 and "only apply with --infer" in result.stderr
    result = hfa("serve", "--cache-dir", str(world.cache_dir), "--infer", "--trust-remote-code", "org/m@v1")
    assert result.exit_code == 2 and "drop the @revision" in result.stderr


# -- tiny real-architecture models: every task through the official client and hfa infer -------------
@pytest.fixture(scope="module")
def tiny_server(tiny_cache) -> Iterator[HubServer]:  # type: ignore[no-untyped-def]
    from tiny_models import REMOTE_CODE_REPO

    cache, _commits = tiny_cache
    config = PoolConfig(max_models=16, trust_remote_code=frozenset({REMOTE_CODE_REPO}))
    with HubServer(ServerConfig(cache_dir=cache, infer=config)) as srv:
        yield srv


def _ranked(items: Any, names: set[str]) -> None:
    assert isinstance(items, list) and items
    assert {i.label for i in items} <= names
    scores = [i.score for i in items]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_every_task_through_the_official_client(tiny_server) -> None:  # type: ignore[no-untyped-def]
    from tiny_models import tiny_png

    url = tiny_server.url
    labels = _client(url, "tiny/bert-sentiment").text_classification("I love this movie")
    _ranked(labels, {"POSITIVE", "NEGATIVE"})
    assert len(labels) == 2
    assert len(_client(url, "tiny/bert-sentiment").text_classification("good", top_k=1)) == 1
    raw = httpx.post(f"{url}/models/tiny/bert-sentiment", json={"inputs": "good"}).json()
    assert isinstance(raw, list) and isinstance(raw[0], list) and set(raw[0][0]) == {"label", "score"}

    zs = _client(url, "tiny/bert-nli").zero_shot_classification(
        "the market fell", candidate_labels=["finance", "sports"]
    )
    _ranked(zs, {"finance", "sports"})
    multi = _client(url, "tiny/bert-nli").zero_shot_classification("x", candidate_labels=["a", "b"], multi_label=True)
    assert len(multi) == 2

    qa = _client(url, "tiny/bert-qa").question_answering(
        question="what does hfa manage?", context="hfa manages hub assets."
    )
    assert isinstance(qa.answer, str) and 0 <= qa.start <= qa.end and 0 <= qa.score <= 1
    assert "hfa manages hub assets."[qa.start : qa.end] == qa.answer

    summary = _client(url, "tiny/t5-summarize").summarization(
        "the movie was very good", generate_parameters={"max_new_tokens": 4}
    )
    assert isinstance(summary.summary_text, str)
    translated = _client(url, "tiny/t5-translate").translation(
        "hello how are you", src_lang="English", tgt_lang="German"
    )
    assert isinstance(translated.translation_text, str)

    generated = _client(url, "tiny/gpt2").text_generation("Once upon a time", max_new_tokens=4)
    assert isinstance(generated, str) and generated.startswith("Once upon a time")
    # TGI-only parameters: the server names them the way InferenceClient recognises, and it retries without.
    with pytest.warns(UserWarning, match="not served via TGI"):
        generated = _client(url, "tiny/gpt2").text_generation("Hi", max_new_tokens=2, watermark=True)
    assert isinstance(generated, str)

    _ranked(_client(url, "tiny/vit").image_classification(tiny_png()), {"cat", "dog", "bird"})
    assert len(_client(url, "tiny/vit").image_classification(tiny_png(), top_k=1)) == 1

    vec = _client(url, "tiny/bert-embed").feature_extraction("hello world")
    assert vec.shape == (16,)
    assert _client(url, "tiny/bert-embed").feature_extraction(["hello", "world"]).shape == (2, 16)


@pytest.mark.parametrize(
    "task",
    [
        ("text-classification", "tiny/bert-sentiment"),
        ("zero-shot-classification", "tiny/bert-nli"),
        ("question-answering", "tiny/bert-qa"),
        ("summarization", "tiny/t5-summarize"),
        ("translation", "tiny/t5-translate"),
        ("text-generation", "tiny/gpt2"),
        ("image-classification", "tiny/vit"),
        ("feature-extraction", "tiny/bert-embed"),
    ],
    ids=lambda t: t[0],
)
def test_every_task_through_hfa_infer_selftest(tiny_server, task) -> None:  # type: ignore[no-untyped-def]
    name, repo = task
    result = hfa("infer", name, "--model", repo, "--endpoint-url", tiny_server.url, "--selftest", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["task"] == name


def test_text_to_image_through_the_official_client_and_hfa_infer(tiny_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("diffusers")
    url = tiny_server.url
    params = {"num_inference_steps": 2, "guidance_scale": 5.0, "width": 64, "height": 32, "seed": 7}
    image = _client(url, "tiny/diffusion").text_to_image("a red square", **params)  # a PIL image
    assert image.size == (64, 32) and image.mode == "RGB"
    default = _client(url, "tiny/diffusion").text_to_image("a red square", num_inference_steps=2)
    assert default.size == (32, 32)  # the tiny UNet's sample_size times the VAE's scale
    raw = httpx.post(
        f"{url}/models/tiny/diffusion", json={"inputs": "a red square", "parameters": params}, headers=WAIT
    )
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert raw.content.startswith(b"\x89PNG\r\n\x1a\n")
    again = httpx.post(f"{url}/models/tiny/diffusion", json={"inputs": "a red square", "parameters": params})
    assert again.content == raw.content  # the seed makes it reproducible
    for bad, needle in (
        ({"width": 33}, "multiple of"),
        ({"steps": 2}, "does not take steps"),
        ({"scheduler": "X"}, ""),
    ):
        r = httpx.post(f"{url}/models/tiny/diffusion", json={"inputs": "x", "parameters": bad})
        assert r.status_code == 400 and needle in r.json()["error"]

    out = tmp_path / "square.png"
    result = hfa(
        "infer", "text-to-image", "--model", "tiny/diffusion", "--endpoint-url", url, "--input", "a red square",
        "--parameters", json.dumps(params), "--output", str(out), "--no-cache",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == raw.content
    result = hfa("infer", "text-to-image", "--model", "tiny/diffusion", "--endpoint-url", url, "--selftest", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True


def test_policy_refusals_over_http(tiny_server, tiny_cache) -> None:  # type: ignore[no-untyped-def]
    from tiny_models import PICKLE_REPO, REMOTE_CODE_REPO

    r = httpx.post(f"{tiny_server.url}/models/{PICKLE_REPO}", json={"inputs": "x"}, headers=WAIT)
    assert r.status_code == 403 and r.headers["X-Error-Code"] == "PickleRefused"
    assert "--allow-pickle" in r.json()["error"]
    result = hfa("infer", "text-classification", "--model", PICKLE_REPO, "--endpoint-url", tiny_server.url, "-i", "x")
    assert result.exit_code != 0 and "only as pickle" in result.stderr
    # --trust-remote-code names this repo on tiny_server: its code runs (and raises, proving it).
    r = httpx.post(f"{tiny_server.url}/models/{REMOTE_CODE_REPO}", json={"inputs": "x"}, headers=WAIT)
    assert r.status_code == 500 and "repository code ran" in r.json()["error"]
    assert "The repository code of tiny/bert-remote-code@" in r.json()["error"]
    cache, _commits = tiny_cache
    with HubServer(ServerConfig(cache_dir=cache, infer=PoolConfig(allow_pickle=True))) as srv:
        r = httpx.post(f"{srv.url}/models/{REMOTE_CODE_REPO}", json={"inputs": "x"}, headers=WAIT)
        assert r.status_code == 403 and r.headers["X-Error-Code"] == "RemoteCodeRefused"
        r = httpx.post(f"{srv.url}/models/{PICKLE_REPO}", json={"inputs": "x"}, headers=WAIT)
        assert r.status_code == 200 and {x["label"] for x in r.json()[0]} == {"POSITIVE", "NEGATIVE"}


def test_concurrent_embedding_requests_are_batched_and_correct(tiny_server) -> None:  # type: ignore[no-untyped-def]
    url = tiny_server.url
    texts = [f"hello world {i}" for i in range(24)]
    single = {
        t: httpx.post(f"{url}/models/tiny/bert-embed", json={"inputs": t}, headers=WAIT).json() for t in texts[:3]
    }
    results: dict[str, Any] = {}

    def ask(text: str) -> None:
        results[text] = httpx.post(f"{url}/models/tiny/bert-embed", json={"inputs": text}, timeout=30).json()

    threads = [threading.Thread(target=ask, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(results[t]) == 16 for t in texts)
    for text, want in single.items():
        assert max(abs(a - b) for a, b in zip(results[text], want, strict=True)) < 1e-5


# -- the real all-MiniLM-L6-v2: the same embeddings every way ------------------------------------------
@pytest.mark.slow
def test_minilm_embeddings_are_equal_every_way(minilm_cache) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    st = pytest.importorskip("sentence_transformers")
    from hfa.config import Settings
    from hfa.infer.local import make_runner
    from hfa.resolve.refs import RepoRef

    cache, folder = minilm_cache
    direct = st.SentenceTransformer(str(folder), device="cpu").encode(SENTENCES).tolist()
    local = make_runner(Settings.resolve(cache_dir=cache), RepoRef.parse(MINILM_ID))
    try:
        from_local = local.run("feature-extraction", SENTENCES, {})
    finally:
        local.close()
    with HubServer(ServerConfig(cache_dir=cache, infer=PoolConfig())) as srv:
        official = _client(srv.url, MINILM_ID).feature_extraction(SENTENCES).tolist()
        # sentence-similarity, the card's own task, through the official client, at the same URL
        similarity = _client(srv.url, MINILM_ID).sentence_similarity(SENTENCES[0], SENTENCES[1:])
        one = _client(srv.url, MINILM_ID).feature_extraction(SENTENCES[0]).tolist()
        result = hfa("infer", "embeddings", "--model", MINILM_ID, "--input", SENTENCES[0],
                     "--endpoint-url", srv.url, "--json", "--no-cache")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        via_hfa = json.loads(result.stdout)["result"]
    for got in (from_local, official):
        for a, b in zip(got, direct, strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5
    for got in (one, via_hfa):
        assert max(abs(x - y) for x, y in zip(got, direct[0], strict=True)) < 1e-5

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))  # normalised by the model's Normalize module

    assert cos(official[0], official[1]) > 0.5 > cos(official[0], official[2]) + 0.3
    for got, pair in zip(similarity, (official[1], official[2]), strict=True):
        assert abs(got - cos(official[0], pair)) < 1e-5


@pytest.mark.slow
def test_hfa_serve_infer_subprocess(tiny_cache) -> None:  # type: ignore[no-untyped-def]
    cache, _commits = tiny_cache
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(cache), "--port", "0", "--infer",
         "--infer-models", "tiny/bert-sentiment", "--infer-max-models", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")
        r = httpx.post(f"{url}/models/tiny/bert-sentiment", json={"inputs": "good"}, headers=WAIT, timeout=120)
        assert r.status_code == 200 and len(r.json()[0]) == 2
        assert httpx.post(f"{url}/models/tiny/gpt2", json={"inputs": "x"}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_a_server_without_the_extra_answers_501(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hfa.infer.engines", None)  # as if torch were not installed
    _fake_world(tmp_path / "served")
    with HubServer(ServerConfig(cache_dir=tmp_path / "served", infer=PoolConfig())) as srv:
        r = httpx.post(f"{srv.url}/models/org/cls", json={"inputs": "x"}, headers=WAIT)
        assert r.status_code == 501 and "pip install 'hfa[infer]'" in r.json()["error"]


def test_without_the_extra_the_first_request_is_501_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # find_spec reports it missing, and importing it fails
    _fake_world(tmp_path / "served")
    with HubServer(ServerConfig(cache_dir=tmp_path / "served", infer=PoolConfig(hold=0.0))) as srv:
        r = httpx.post(f"{srv.url}/models/org/cls", json={"inputs": "x"})
        assert r.status_code == 501, r.text  # not 503 "loading" first
        assert "missing torch" in r.json()["error"] and "pip install 'hfa[infer]'" in r.json()["error"]
        assert srv.hub.infer.pool.loads == 0


def test_pool_waiters_get_the_load_error_and_the_next_request_loads_afresh(tmp_path: Path) -> None:
    from hfa.infer.modelfiles import ModelFiles
    from hfa.infer.pool import Loading, ModelPool

    loader = FakeLoader()
    loader.fail.add("org/x")
    pool = ModelPool(PoolConfig(loader=loader, load_delay=0.3))
    model = ModelFiles("org/x", "a" * 40, {})
    with pytest.raises(Loading) as loading:
        pool.engine(model, "text-classification")
    assert 1.0 <= loading.value.estimated_time <= 2.0
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            pool.engine(model, "text-classification", wait=10)
        except BaseException as exc:
            errors.append(exc)

    waiters = [threading.Thread(target=wait) for _ in range(3)]
    for t in waiters:
        t.start()
    for t in waiters:
        t.join(timeout=10)
    assert [type(e) for e in errors] == [OSError] * 3
    loader.fail.clear()
    assert pool.engine(model, "text-classification", wait=10).task == "text-classification"
    assert pool.loads == 2 and pool.status(model, "text-classification")["state"] == "ready"
    pool.close()
    assert loader.engines[0].closed


# -- the forms of InferenceClient that reach this server ---------------------------------------------
def test_the_documented_client_forms_work_and_post_root_is_never_a_200(fake_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("numpy")  # the official client's embedding calls need it (the infer extra brings it)
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    srv, _loader = fake_server
    for client in (
        InferenceClient(model=f"{srv.url}/models/org/cls", headers=WAIT),
        InferenceClient(base_url=f"{srv.url}/models/org/cls", headers=WAIT),  # base_url is model's alias
        InferenceClient(model=f"{srv.url}/hf-inference/models/org/cls", headers=WAIT),
    ):
        assert client.text_classification("x")[0].label == "POSITIVE"
    # base_url=URL alone posts to "/": this server runs several models, so it cannot tell which.
    with pytest.raises(HfHubHTTPError) as err:
        InferenceClient(base_url=srv.url, headers=WAIT).text_classification("x")
    assert err.value.response.status_code == 404
    assert f'InferenceClient(model="{srv.url}/models/ORG/NAME")' in err.value.response.json()["error"]
    assert httpx.get(srv.url).status_code == 200  # the banner, for GET only
    # A server that runs one model answers it at "/", so base_url=URL works there.
    _fake_world(tmp_path / "one")
    config = PoolConfig(loader=FakeLoader(), models=frozenset({"org/emb"}))
    with HubServer(ServerConfig(cache_dir=tmp_path / "one", infer=config)) as one:
        vector = InferenceClient(base_url=one.url, headers=WAIT).feature_extraction("x")
        assert vector.tolist() == [0.5, 0.25]


def test_serve_help_advertises_the_forms_that_work() -> None:
    result = hfa("serve", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert 'InferenceClient(model=f"{URL}/models/{repo}")' in text
    assert "`base_url=URL` alone works only when one model is served" in text


def test_post_root_without_infer_is_a_404(server) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(server.url + "/", json={"inputs": "x"})
    assert r.status_code == 404 and "--infer" in r.headers["X-Error-Message"]
    assert httpx.get(server.url + "/").status_code == 200


# -- Hub routes beside inference: list_repo_commits, unknown routes ----------------------------------
def test_list_repo_commits_answers_from_the_cache(server, world) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi(endpoint=server.url, token=False)
    (head,) = api.list_repo_commits("org/model")
    assert head.commit_id == world.commits["org/model@v2"] and head.title == "second"
    assert head.created_at.year == 2026 and head.authors == [] and head.message == ""
    (tagged,) = api.list_repo_commits("org/model", revision="v1.0", formatted=True)
    assert tagged.commit_id == world.commits["org/model@v1"] and tagged.formatted_title == "first"
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_commits("org/model", revision="nope")
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_commits("org/private")  # private: looks missing without a token
    r = httpx.get(f"{server.url}/api/models/org/model/no-such-action/main")
    assert r.status_code == 404 and "no-such-action" in r.headers["X-Error-Message"]


# -- several models loading at once (transformers' from_pretrained is not thread-safe) ---------------
def test_cold_loading_several_models_at_once_then_each_answers(tiny_cache) -> None:  # type: ignore[no-untyped-def]
    cache, _commits = tiny_cache
    asks = {
        "tiny/t5-summarize": {
            "inputs": "the movie was very good",
            "parameters": {"generate_parameters": {"max_new_tokens": 3}},
        },
        "tiny/t5-translate": {"inputs": "hello how are you"},
        "tiny/bert-sentiment": {"inputs": "good"},
        "tiny/gpt2": {"inputs": "hi", "parameters": {"max_new_tokens": 2}},
        "tiny/bert-qa": {"inputs": {"question": "what", "context": "hfa manages hub assets"}},
    }
    with HubServer(ServerConfig(cache_dir=cache, infer=PoolConfig(max_models=8))) as srv:
        answers: dict[str, Any] = {}

        def ask(repo: str) -> None:
            answers[repo] = httpx.post(f"{srv.url}/models/{repo}", json=asks[repo], headers=WAIT, timeout=120)

        threads = [threading.Thread(target=ask, args=(repo,)) for repo in asks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=150)
        assert {repo: r.status_code for repo, r in answers.items()} == dict.fromkeys(asks, 200), {
            repo: r.text[:200] for repo, r in answers.items()
        }
        for repo, body in asks.items():  # and they keep answering
            assert httpx.post(f"{srv.url}/models/{repo}", json=body, timeout=60).status_code == 200
        assert srv.hub.infer.pool.loads == len(asks)


def test_a_model_left_with_meta_tensors_is_a_failed_load(tiny_cache, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import torch

    from hfa.infer import engines
    from hfa.infer.modelfiles import ModelFailed, from_cache
    from hfa.resolve.refs import RepoRef

    real_load = engines.TextClassification.load

    def half_load(self, loader):  # type: ignore[no-untyped-def]
        real_load(self, loader)
        self.net.classifier.weight = torch.nn.Parameter(torch.empty(2, 16, device="meta"))  # as a racing load leaves it

    monkeypatch.setattr(engines.TextClassification, "load", half_load)
    model = from_cache(tiny_cache[0], RepoRef.parse("tiny/bert-sentiment"))
    with pytest.raises(ModelFailed, match=r"1 tensor\(s\) without data \(net.classifier.weight\)"):
        engines.load_engine(model, "text-classification")


# -- sentence-similarity (MiniLM's own card task) ----------------------------------------------------
def test_sentence_similarity_through_the_official_client(tiny_server) -> None:  # type: ignore[no-untyped-def]
    client = _client(tiny_server.url, "tiny/bert-embed")
    scores = client.sentence_similarity("hello world", ["hello world", "the stock market fell"])
    assert len(scores) == 2 and abs(scores[0] - 1.0) < 1e-5 and -1.0 <= scores[1] < scores[0]
    a, b = client.feature_extraction(["hello world", "the stock market fell"], normalize=True).tolist()
    assert abs(scores[1] - sum(x * y for x, y in zip(a, b, strict=True))) < 1e-5
    r = httpx.post(f"{tiny_server.url}/models/tiny/bert-embed", json={"inputs": {"source_sentence": "x"}})
    assert r.status_code == 400 and "source_sentence" in r.json()["error"]
