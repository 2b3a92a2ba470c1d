"""`hfa infer` against a scripted fake Inference API: request shapes, parsing, retries, batch, cache, tokens."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import hfa, runner

from hfa.cli.app import app
from hfa.config import Settings
from hfa.errors import ExitCode, GatedRepo, NetworkError, NotFound, UsageError
from hfa.hub.requests import RetryPolicy
from hfa.infer import cache as infer_cache
from hfa.infer import client as infer_client
from hfa.infer.cache import CachedRunner, ResultCache, cache_stats, clear_cache
from hfa.infer.client import InferenceAPI, model_url, token_for
from hfa.infer.tasks import get_task, selftest, tiny_png

COMMIT = "c0ffee" + "0" * 34
TOKEN = "hf_infer_test_token_123456"


# -- the fake server -------------------------------------------------------------------------------
@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeInference:
    """Answers as the Inference API does; the model's name picks the task (``t/text-classification``).

    ``script`` holds faults applied to the next POSTs, in order: ("status", code, headers, body),
    ("drop",), ("slow", seconds). Inputs starting with ``delay=S;`` are answered after S seconds;
    inputs containing ``FAIL`` get a 422.
    """

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: deque[tuple[Any, ...]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    bad_scores: bool = False

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]


def _answer(task: str, payload: Any, raw: bytes, server: FakeInference) -> tuple[int, str, bytes]:
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    params = (payload.get("parameters") or {}) if isinstance(payload, dict) else {}

    def js(doc: Any) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(doc).encode()

    score = 1.5 if server.bad_scores else 0.9
    if task == "text-generation":
        return js([{"generated_text": f"{inputs} and then"}])
    if task == "text-classification":
        return js([[{"label": "POSITIVE", "score": score}, {"label": "NEGATIVE", "score": 0.1}]])
    if task == "summarization":
        return js([{"summary_text": "short"}])
    if task == "translation":
        return js([{"translation_text": f"[{params.get('tgt_lang', 'fr')}] bonjour"}])
    if task == "question-answering":
        context = inputs["context"]
        start = context.index("packages")
        return js({"answer": "packages", "score": 0.75, "start": start, "end": start + 8})
    if task == "zero-shot-classification":
        labels = params["candidate_labels"]
        return js([{"label": label, "score": 1 / len(labels)} for label in labels])
    if task == "text-to-image":
        return 200, "image/png", tiny_png(4, 4)
    if task == "image-classification":
        assert raw.startswith(b"\x89PNG"), raw[:8]
        return js([{"label": "cat", "score": 0.7}, {"label": "dog", "score": 0.3}])
    if task == "feature-extraction":

        def vec(text: str) -> list[float]:
            return [round(((hash(text) >> i) % 100) / 100, 2) for i in range(8)]

        return js([vec(t) for t in inputs] if isinstance(inputs, list) else vec(inputs))
    raise AssertionError(task)


def make_handler(server: FakeInference) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _record(self, body: bytes) -> None:
            with server.lock:
                server.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))

        def do_GET(self) -> None:
            self._record(b"")
            if self.path.startswith("/api/models/t/"):
                doc = {"id": "t/x", "sha": COMMIT, "siblings": []}
                return self._send(200, "application/json", json.dumps(doc).encode())
            self._send(404, "application/json", b'{"error": "no such route"}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._record(body)
            with server.lock:
                step = server.script.popleft() if server.script else None
            if step is not None:
                if step[0] == "drop":
                    self.close_connection = True
                    return
                if step[0] == "slow":
                    time.sleep(step[1])
                elif step[0] == "status":
                    _, code, headers, doc = step
                    return self._send(code, "application/json", json.dumps(doc).encode(), headers)
            path = self.path.split("?")[0]
            parts = path.strip("/").split("/")
            if parts[0] == "hf-inference":
                parts = parts[1:]
            if parts[:1] != ["models"] or len(parts) < 3:
                return self._send(404, "application/json", b'{"error": "not found"}')
            name = parts[2]
            if name == "gated":
                return self._send(
                    403,
                    "application/json",
                    b'{"error": "Access to model t/gated is restricted"}',
                    {"X-Error-Code": "GatedRepo"},
                )
            if name == "missing":
                return self._send(404, "application/json", b'{"error": "Model t/missing does not exist"}')
            if name == "wrongtask":
                return self._send(400, "application/json", b'{"error": "this model is a text-generation model"}')
            is_json = (self.headers.get("Content-Type") or "").startswith("application/json")
            payload = json.loads(body) if is_json else None
            inputs = payload.get("inputs") if isinstance(payload, dict) else None
            if isinstance(inputs, str) and inputs.startswith("delay="):
                time.sleep(float(inputs[6:].split(";")[0]))
            if isinstance(inputs, str) and "FAIL" in inputs:
                return self._send(422, "application/json", b'{"error": "Input validation error: FAIL"}')
            status, ctype, out = _answer(name, payload, body, server)
            self._send(status, ctype, out)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the deadline test) breaks the pipe: expected


@pytest.fixture
def make_server() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start() -> FakeInference:
        fake = FakeInference()
        httpd = _QuietServer(("127.0.0.1", 0), make_handler(fake))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(httpd)
        fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        return fake

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def fake(make_server: Any) -> FakeInference:
    return make_server()


class FakeClock(infer_client.Clock):
    """Sleeps return at once; time jumps ahead instead."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake_clock = FakeClock()
    monkeypatch.setattr(infer_client, "CLOCK", fake_clock)
    return fake_clock


def api(fake: FakeInference, task: str, *, retries: int = 3, timeout: float = 30.0, **kw: Any) -> InferenceAPI:
    return InferenceAPI(
        f"{fake.url}/models/t/{task}", model=f"t/{task}", retry=RetryPolicy(retries=retries), timeout=timeout, **kw
    )


def infer(fake: FakeInference, task: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return hfa("infer", task, "--model", f"t/{get_task(task).name}", "--endpoint", fake.url, *args, env=env)


# -- every task: request shape and response parsing ------------------------------------------------
CASES: list[tuple[str, Any, dict[str, Any], str, Any]] = [
    # task, inputs, parameters, expected path suffix, expected result
    ("text-generation", "Hi", {"max_new_tokens": 5}, "", "Hi and then"),
    (
        "text-classification",
        "great",
        {},
        "",
        [{"label": "POSITIVE", "score": 0.9}, {"label": "NEGATIVE", "score": 0.1}],
    ),
    ("summarization", "long text", {}, "", {"summary_text": "short"}),
    ("translation", "hello", {"src_lang": "en", "tgt_lang": "de"}, "", {"translation_text": "[de] bonjour"}),
    (
        "question-answering",
        {"question": "What?", "context": "hfa manages packages."},
        {},
        "",
        {"answer": "packages", "score": 0.75, "start": 12, "end": 20},
    ),
    (
        "zero-shot-classification",
        "stocks fell",
        {"candidate_labels": ["finance", "sports"]},
        "",
        [{"label": "finance", "score": 0.5}, {"label": "sports", "score": 0.5}],
    ),
    ("feature-extraction", "hello", {}, "/pipeline/feature-extraction", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_task_request_shape_and_parsing(fake: FakeInference, case: tuple[str, Any, dict[str, Any], str, Any]) -> None:
    task, inputs, params, suffix, expected = case
    result = api(fake, task).run(task, inputs, params)
    (post,) = fake.posts()
    assert post.path == f"/models/t/{task}{suffix}"
    assert post.headers["content-type"] == "application/json"
    body = post.json()
    assert body["inputs"] == inputs
    if task == "feature-extraction":
        assert "parameters" not in body  # the client puts feature-extraction parameters at the root
        assert isinstance(result, list) and len(result) == 8 and all(isinstance(v, float) for v in result)
        return
    if task == "zero-shot-classification":
        assert body["parameters"] == {**params, "multi_label": False}  # the client always sends multi_label
    else:
        assert body["parameters"] == params
    assert result == expected


def test_image_classification_sends_raw_bytes(fake: FakeInference, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(tiny_png())
    result = api(fake, "image-classification").run("image-classification", str(image), {})
    (post,) = fake.posts()
    assert post.body == tiny_png() and post.headers["content-type"] == "image/png"
    assert result == [{"label": "cat", "score": 0.7}, {"label": "dog", "score": 0.3}]


def test_text_to_image_returns_raw_bytes_without_pillow(fake: FakeInference) -> None:
    result = api(fake, "text-to-image").run("text-to-image", "a cat", {"seed": 1})
    (post,) = fake.posts()
    assert post.json() == {"inputs": "a cat", "parameters": {"seed": 1}}
    assert post.headers["accept"] == "image/png"
    assert result == tiny_png(4, 4)


def test_embeddings_batch_of_strings(fake: FakeInference) -> None:
    result = api(fake, "feature-extraction").run("feature-extraction", ["a", "b"], {"normalize": True})
    assert fake.posts()[0].json() == {"inputs": ["a", "b"], "normalize": True}
    assert len(result) == 2 and all(len(row) == 8 for row in result)


def test_a_moved_private_request_path_falls_back_to_the_public_method(
    fake: FakeInference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hfa's one private use of huggingface_hub: should a release move it, the public method answers."""
    pytest.importorskip("numpy")  # the public feature_extraction decodes with numpy
    import huggingface_hub.inference._providers as providers

    from hfa.infer.client import _private_request_path

    assert _private_request_path(object()) is None  # a client without _inner_post
    monkeypatch.delattr(providers, "get_provider_helper")  # the helper moved away
    result = api(fake, "feature-extraction").run("feature-extraction", ["a", "b"], {"normalize": True})
    assert fake.posts()[0].json()["inputs"] == ["a", "b"]
    assert len(result) == 2 and all(len(row) == 8 for row in result)
    assert isinstance(result[0][0], float)  # plain JSON data, not numpy


def test_unknown_parameter_is_a_usage_error_before_any_request(fake: FakeInference) -> None:
    with pytest.raises(UsageError, match="top_p"):
        api(fake, "text-classification").run("text-classification", "x", {"top_p": 0.5})
    assert fake.posts() == []


@pytest.mark.parametrize(
    ("task", "args", "expected"),
    [
        ("sentiment-analysis", ["--input", "great"], ["POSITIVE  0.9000", "NEGATIVE  0.1000"]),
        ("text-generation", ["--input", "Hi", "--max-new-tokens", "3"], ["Hi and then"]),
        ("summarization", ["--input", "long", "--max-new-tokens", "3"], ["short"]),
        ("translation", ["--input", "hello", "--src-lang", "en", "--tgt-lang", "de"], ["[de] bonjour"]),
        (
            "question-answering",
            ["--input", "What?", "--context", "it manages packages"],
            ["packages  (score 0.7500, characters 11-19)"],
        ),
        ("zero-shot-classification", ["--input", "x", "--labels", "a,b"], ["a  0.5000", "b  0.5000"]),
        ("embeddings", ["--input", "hello"], ["embedding: dimension 8"]),
    ],
)
def test_cli_single_request_readable(fake: FakeInference, task: str, args: list[str], expected: list[str]) -> None:
    result = infer(fake, task, *args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[: len(expected)] == expected
    post = fake.posts()[0]
    assert post.path.startswith(f"/hf-inference/models/t/{get_task(task).name}")
    if task == "summarization":
        assert post.json()["parameters"] == {"generate_parameters": {"max_new_tokens": 3}}


def test_cli_json_and_text_to_image_output(fake: FakeInference, tmp_path: Path) -> None:
    result = infer(fake, "text-classification", "--input", "great", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["task"] == "text-classification" and doc["commit"] == COMMIT and doc["cached"] is False
    assert doc["result"][0] == {"label": "POSITIVE", "score": 0.9}
    assert doc["route"] == f"{fake.url}/hf-inference/models/t/text-classification"

    out = tmp_path / "img" / "cat.png"
    result = infer(fake, "text-to-image", "--input", "a cat", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == tiny_png(4, 4)
    assert f"wrote image to {out}" in result.stdout
    assert infer(fake, "text-to-image", "--input", "a cat").exit_code == ExitCode.USAGE


def test_cli_image_input_file(fake: FakeInference, tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(tiny_png())
    result = infer(fake, "image-classification", "--input-file", str(image))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "cat  0.7000"


# -- retries, waits, deadline ----------------------------------------------------------------------
def test_429_honours_retry_after(fake: FakeInference, clock: FakeClock) -> None:
    fake.script.append(("status", 429, {"Retry-After": "7"}, {"error": "Rate limit reached"}))
    waits: list[str] = []
    result = api(fake, "summarization", on_wait=waits.append).run("summarization", "x", {})
    assert result == {"summary_text": "short"}
    assert clock.sleeps == [7.0] and len(fake.posts()) == 2
    assert "HTTP 429" in waits[0]


def test_503_loading_waits_estimated_time_without_using_retries(fake: FakeInference, clock: FakeClock) -> None:
    loading = ("status", 503, {}, {"error": "Model t/summarization is currently loading", "estimated_time": 12.5})
    fake.script.extend([loading, loading])
    result = api(fake, "summarization", retries=0).run("summarization", "x", {})
    assert result == {"summary_text": "short"}
    assert clock.sleeps == [12.5, 12.5]


def test_503_loading_wait_is_bounded(fake: FakeInference, clock: FakeClock) -> None:
    fake.script.append(("status", 503, {}, {"error": "loading", "estimated_time": 5000}))
    api(fake, "summarization", timeout=600).run("summarization", "x", {})
    assert clock.sleeps == [60.0]


def test_500s_then_success_backs_off_with_jitter(fake: FakeInference, clock: FakeClock) -> None:
    fake.script.extend([("status", 500, {}, {"error": "boom"}), ("status", 502, {}, {"error": "bad gateway"})])
    assert api(fake, "summarization").run("summarization", "x", {}) == {"summary_text": "short"}
    assert len(clock.sleeps) == 2 and len(fake.posts()) == 3
    assert 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0  # base 0.5, doubling, 50-100 %


def test_5xx_forever_gives_up_after_the_retries(fake: FakeInference, clock: FakeClock) -> None:
    fake.script.extend([("status", 500, {}, {"error": "boom"})] * 5)
    with pytest.raises(NetworkError, match=r"kept failing: HTTP 500: boom \(after 3 tries\)"):
        api(fake, "summarization", retries=2).run("summarization", "x", {})
    assert len(fake.posts()) == 3


def test_dropped_connection_is_retried(fake: FakeInference, clock: FakeClock) -> None:
    fake.script.append(("drop",))
    assert api(fake, "summarization").run("summarization", "x", {}) == {"summary_text": "short"}
    assert len(fake.posts()) == 2 and len(clock.sleeps) == 1


def test_slow_server_past_the_deadline_is_a_clean_network_error(fake: FakeInference) -> None:
    fake.script.append(("slow", 3.0))
    started = time.monotonic()
    result = infer(fake, "summarization", "--input", "x", "--timeout", "0.5")
    assert time.monotonic() - started < 2.5
    assert result.exit_code == ExitCode.NETWORK
    assert "within the 0.5 s deadline" in result.stderr and "Traceback" not in result.stderr


def test_a_wait_past_the_deadline_fails_at_once(fake: FakeInference, clock: FakeClock) -> None:
    fake.script.append(("status", 429, {"Retry-After": "50"}, {"error": "slow down"}))
    with pytest.raises(NetworkError, match="deadline"):
        api(fake, "summarization", timeout=10).run("summarization", "x", {})
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("model", "error", "code", "text"),
    [
        ("gated", GatedRepo, ExitCode.ACCESS_DENIED, "is gated"),
        ("missing", NotFound, ExitCode.NOT_FOUND, "not found"),
        ("wrongtask", UsageError, ExitCode.USAGE, "cannot run text-classification"),
    ],
)
def test_final_errors(fake: FakeInference, model: str, error: type, code: int, text: str) -> None:
    endpoint = InferenceAPI(f"{fake.url}/models/t/{model}", model=f"t/{model}", retry=RetryPolicy(retries=3))
    with pytest.raises(error, match=text):
        endpoint.run("text-classification", "x", {})
    assert len(fake.posts()) == 1  # never retried
    result = hfa("infer", "text-classification", "-m", f"t/{model}", "--endpoint", fake.url, "--input", "x")
    assert result.exit_code == code, result.stderr
    assert text in result.stderr


def test_cli_retries_through_env(fake: FakeInference, clock: FakeClock) -> None:
    fake.script.extend([("status", 503, {}, {"error": "overloaded"})] * 2)
    result = infer(fake, "summarization", "--input", "x", env={"HFA_MAX_RETRIES": "3"})
    assert result.exit_code == 0, result.stderr
    assert "HTTP 503: overloaded; retrying in" in result.stderr


# -- batch -----------------------------------------------------------------------------------------
def _batch_lines() -> list[str]:
    lines = []
    for i in range(12):
        delay = [0.2, 0.0, 0.1, 0.05][i % 4]
        text = f"delay={delay};FAIL" if i in (3, 8) else f"delay={delay};item {i}"
        lines.append(json.dumps({"id": f"r{i}", "inputs": text}))
    lines.insert(5, "")  # blank: skipped, still counted
    lines.insert(6, "{not json")
    lines.append(json.dumps({"inputs": "no id"}))
    return lines


def test_batch_keeps_order_and_reports_each_failure(fake: FakeInference, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(_batch_lines()) + "\n")
    result = infer(fake, "summarization", "--jsonl", str(path), "--concurrency", "4", "--no-cache")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in out] == [f"r{i}" for i in range(5)] + [7] + [f"r{i}" for i in range(5, 12)] + [15]
    errors = {line["id"]: line["error"] for line in out if "error" in line}
    assert set(errors) == {"r3", "r8", 7}
    assert "line 7 is not JSON" in errors[7] and "Input validation error: FAIL" in errors["r3"]
    assert all(line["result"] == {"summary_text": "short"} for line in out if "error" not in line)
    assert "3 of 14 request(s) failed" in result.stderr
    assert len(fake.posts()) == 13  # every good line and the two failing ones; the malformed one never


def test_batch_runs_concurrently(fake: FakeInference, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"inputs": f"delay=0.3;{i}"}) + "\n" for i in range(8)))
    started = time.monotonic()
    result = infer(fake, "summarization", "--jsonl", str(path), "--concurrency", "4")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 1.8  # 8 x 0.3 s in 2 waves, not 2.4 s in a row
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == list(range(1, 9))


def test_batch_from_stdin_with_line_parameters(fake: FakeInference) -> None:
    stdin = "\n".join(
        [json.dumps({"id": "a", "inputs": "x", "parameters": {"candidate_labels": ["p", "q", "r"]}}), '"bare string"']
    )
    result = runner.invoke(
        app,
        [
            "infer",
            "zero-shot-classification",
            "-m",
            "t/zero-shot-classification",
            "--endpoint",
            fake.url,
            "--labels",
            "u,v",
            "--jsonl",
            "-",
        ],
        input=stdin,
    )
    assert result.exit_code == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert [x["label"] for x in first["result"]] == ["p", "q", "r"]
    assert second["id"] == 2 and [x["label"] for x in second["result"]] == ["u", "v"]


def test_batch_text_to_image_writes_one_file_per_line(fake: FakeInference, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "cat/1", "inputs": "a cat"}\n')
    result = infer(fake, "text-to-image", "--jsonl", str(path), "--output", str(tmp_path / "imgs"))
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["result"]["file"].endswith("cat_1.png")
    assert Path(line["result"]["file"]).read_bytes() == tiny_png(4, 4)


# -- cache -----------------------------------------------------------------------------------------
def test_cache_hit_makes_no_request_and_no_cache_bypasses(fake: FakeInference, isolated_home: Path) -> None:
    args = ("--input", "great", "--json")
    first = infer(fake, "text-classification", *args)
    assert first.exit_code == 0 and json.loads(first.stdout)["cached"] is False
    assert len(fake.posts()) == 1
    second = infer(fake, "text-classification", *args)
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["cached"] is True
    assert json.loads(second.stdout)["result"] == json.loads(first.stdout)["result"]
    assert len(fake.posts()) == 1  # answered from the cache
    third = infer(fake, "text-classification", *args, "--no-cache")
    assert json.loads(third.stdout)["cached"] is False and len(fake.posts()) == 2
    # other parameters, another key
    infer(fake, "text-classification", *args, "--parameters", '{"top_k": 1}')
    assert len(fake.posts()) == 3
    stats = cache_stats()
    assert stats.root == isolated_home / "hfa" / "infer-cache" and stats.entries == 2 and stats.bytes > 0


def test_pinned_commit_cache_hit_makes_zero_requests(fake: FakeInference) -> None:
    args = ("infer", "summarization", "-m", f"t/summarization@{COMMIT}", "--endpoint", fake.url, "--input", "x")
    assert hfa(*args).exit_code == 0
    count = len(fake.seen)
    assert hfa(*args).exit_code == 0
    assert len(fake.seen) == count  # not even a commit resolution


def test_cache_key_follows_the_resolved_commit(fake: FakeInference) -> None:
    assert infer(fake, "summarization", "--input", "x").exit_code == 0
    # the same commit named explicitly is the same request
    result = hfa("infer", "summarization", "-m", f"t/summarization@{COMMIT}", "--endpoint", fake.url, "--input", "x")
    assert result.exit_code == 0 and len(fake.posts()) == 1
    result = hfa("infer", "summarization", "-m", "t/summarization@" + "1" * 40, "--endpoint", fake.url, "-i", "x")
    assert result.exit_code == 0 and len(fake.posts()) == 2


def test_results_are_not_cached_when_the_commit_is_unknown(fake: FakeInference) -> None:
    # u/… is unknown to the fake Hub, so "main" cannot be resolved: a branch name is no cache key
    args = ("infer", "text-classification", "-m", "u/text-classification", "--endpoint", fake.url, "-i", "x", "-v")
    first = hfa(*args)
    assert first.exit_code == 0, first.stderr
    assert "result cache off: the commit of u/text-classification is unknown" in first.stderr
    assert hfa(*args).exit_code == 0
    assert len(fake.posts()) == 2  # asked twice: nothing was cached under "main"
    assert cache_stats().entries == 0


def test_offline_answers_from_the_cache_only(fake: FakeInference) -> None:
    args = ("infer", "summarization", "-m", f"t/summarization@{COMMIT}", "--endpoint", fake.url)
    assert hfa(*args, "--input", "x").exit_code == 0
    count = len(fake.seen)
    assert hfa(*args, "--input", "x", "--offline").exit_code == 0
    miss = hfa(*args, "--input", "y", "--offline")
    assert miss.exit_code == ExitCode.NETWORK and "not in the inference cache" in miss.stderr
    assert len(fake.seen) == count


def test_cache_api_stats_and_clear(tmp_path: Path, fake: FakeInference) -> None:
    root = tmp_path / "c"
    cached = CachedRunner(api(fake, "text-to-image"), ResultCache(root), model="t/x", commit=COMMIT)
    image, hit = cached.run_with_info("text-to-image", "a", {})
    again, hit2 = cached.run_with_info("text-to-image", "a", {})
    assert (hit, hit2) == (False, True) and again == image and isinstance(again, bytes)
    stats = cache_stats(root)
    assert stats.entries == 1 and stats.to_json()["path"] == str(root)
    assert not list(root.rglob("*.tmp"))
    assert clear_cache(root, dry_run=True).entries == 1 and cache_stats(root).entries == 1
    assert clear_cache(root).entries == 1 and cache_stats(root).entries == 0
    assert clear_cache(tmp_path / "never").entries == 0


def test_cache_root_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFA_INFER_CACHE", str(tmp_path / "elsewhere"))
    assert infer_cache.default_cache_root() == tmp_path / "elsewhere"


def test_image_inputs_are_keyed_by_content(tmp_path: Path, fake: FakeInference) -> None:
    cached = CachedRunner(api(fake, "image-classification"), ResultCache(tmp_path / "c"), model="m", commit=None)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(tiny_png())
    b.write_bytes(tiny_png())
    assert cached.key("image-classification", str(a), {}) == cached.key("image-classification", str(b), {})
    b.write_bytes(tiny_png(2, 2))
    assert cached.key("image-classification", str(a), {}) != cached.key("image-classification", str(b), {})


# -- tokens and routes -----------------------------------------------------------------------------
def test_token_goes_only_to_the_endpoint_origin(make_server: Any) -> None:
    hub, other = make_server(), make_server()
    env = {"HF_TOKEN": TOKEN}
    assert infer(hub, "summarization", "--input", "x", env=env).exit_code == 0
    assert {s.headers.get("authorization") for s in hub.seen} == {f"Bearer {TOKEN}"}
    result = infer(hub, "summarization", "--input", "y", "--endpoint-url", other.url, env=env)
    assert result.exit_code == 0, result.stderr
    (post,) = other.posts()
    assert post.path == "/models/t/summarization"
    assert "authorization" not in post.headers  # not even HF_TOKEN, which the official client would send
    assert TOKEN not in result.stdout + result.stderr


def test_model_url_rules() -> None:
    hub = Settings.resolve(endpoint="https://huggingface.co", token=TOKEN)
    mirror = Settings.resolve(endpoint="http://10.0.0.2:8080", token=TOKEN)
    from hfa.resolve.refs import RepoRef

    ref = RepoRef.parse("org/m@v1")
    assert model_url(hub, ref) == ("https://router.huggingface.co/hf-inference/models/org/m", True)
    assert model_url(mirror, ref) == ("http://10.0.0.2:8080/hf-inference/models/org/m", True)
    assert model_url(mirror, ref, "http://h:1/") == ("http://h:1/models/org/m", True)
    assert model_url(mirror, ref, "http://h:1/models/x/y") == ("http://h:1/models/x/y", True)
    assert model_url(mirror, ref, "http://h:1/models/x/y/pipeline/feature-extraction")[1] is False
    assert model_url(mirror, None, "https://abc.endpoints.huggingface.cloud") == (
        "https://abc.endpoints.huggingface.cloud",
        False,
    )
    with pytest.raises(UsageError):
        model_url(mirror, ref, "ftp://x")
    assert token_for("https://router.huggingface.co/hf-inference/models/org/m", hub) == TOKEN
    assert token_for("https://abc.endpoints.huggingface.cloud", hub) == TOKEN
    assert token_for("https://evil.example/models/org/m", hub) is None
    assert token_for("http://10.0.0.2:8080/hf-inference/models/org/m", mirror) == TOKEN
    assert token_for("http://10.0.0.2:8081/models/org/m", mirror) is None
    assert token_for("https://router.huggingface.co/x", mirror) is None


def test_dedicated_endpoint_without_model(fake: FakeInference) -> None:
    result = hfa("infer", "summarization", "--endpoint-url", f"{fake.url}/models/t/summarization", "-i", "x", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["commit"] is None


# -- selftest, --local, usage ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "task",
    [
        "text-generation",
        "sentiment-analysis",
        "summarization",
        "translation",
        "question-answering",
        "zero-shot-classification",
        "text-to-image",
        "image-classification",
        "embeddings",
    ],
)
def test_selftest_every_task(fake: FakeInference, task: str) -> None:
    result = infer(fake, task, "--selftest")
    assert result.exit_code == 0, result.stderr
    assert "selftest passed" in result.stderr


def test_selftest_catches_a_bad_result(fake: FakeInference) -> None:
    fake.bad_scores = True
    result = infer(fake, "text-classification", "--selftest", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "selftest of text-classification failed: score of 'POSITIVE' is not a number in [0, 1]" in result.stderr
    report = selftest(api(fake, "feature-extraction"), get_task("embeddings"))
    assert report.ok and report.summary == "dimension 8"


def test_local_needs_the_extra(fake: FakeInference, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hfa.infer.local", None)  # as if the extra were not installed
    result = infer(fake, "embeddings", "--input", "x", "--local")
    assert result.exit_code == ExitCode.USAGE
    assert "needs the optional extra: pip install 'hfa[infer]'" in result.stderr
    assert fake.posts() == []


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["summarization", "--input", "x", "--labels", "a"], "--labels does not apply to summarization"),
        (["summarization"], "Give exactly one of --input"),
        (["summarization", "--input", "x", "--selftest"], "got --input, --selftest"),
        (["nonsense", "--input", "x"], "Unknown task 'nonsense'"),
        (["summarization", "--input", "x", "--parameters", "[1]"], "must be a JSON object"),
        (["summarization", "--input", "x", "--parameters", '{"top_k": 1}'], "takes: clean_up_tokenization_spaces"),
        (["translation", "--input", "x", "--src-lang", "en"], "needs both --src-lang and --tgt-lang"),
        (["zero-shot-classification", "--input", "x"], "needs candidate labels"),
        (["question-answering", "--input", "x"], "needs a context"),
        (["image-classification", "--input", "nope.png"], "not found"),
    ],
)
def test_usage_errors(fake: FakeInference, args: list[str], text: str) -> None:
    task = args[0] if args[0] != "nonsense" else "summarization"
    result = hfa("infer", args[0], "-m", f"t/{task}", "--endpoint", fake.url, *args[1:])
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert text in result.stderr
    assert fake.posts() == []


class _StandInLocal:
    """What ``hfa.infer.local`` will provide: ``make_runner(settings, ref) -> Runner``."""

    calls: ClassVar[list[tuple[str, Any]]] = []

    class Runner:
        route = "local:test"

        def run(self, task: str, inputs: Any, parameters: dict[str, Any]) -> Any:
            _StandInLocal.calls.append((task, inputs))
            return [0.25, 0.5, 0.75]

    @staticmethod
    def make_runner(settings: Settings, ref: Any) -> Any:
        return _StandInLocal.Runner()


def test_local_runner_seam(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "hfa.infer.local", _StandInLocal)
    _StandInLocal.calls.clear()
    # the commit for the cache key comes from the local cache's ref, without asking the Hub
    refs = isolated_home / "hub" / "models--org--m" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(COMMIT)
    args = ("infer", "embeddings", "-m", "org/m", "--local", "--endpoint", "http://127.0.0.1:1")
    assert hfa(*args, "--selftest").exit_code == 0
    first = hfa(*args, "-i", "x", "--json")
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["route"] == "local:test" and doc["commit"] == COMMIT and doc["result"] == [0.25, 0.5, 0.75]
    second = hfa(*args, "-i", "x", "--json")
    assert json.loads(second.stdout)["cached"] is True
    assert _StandInLocal.calls == [("feature-extraction", "hfa proves this model works."), ("feature-extraction", "x")]


@pytest.mark.parametrize(
    ("status", "code", "exit_code", "text"),
    [
        (403, "PickleRefused", ExitCode.CHECK_FAILED, "refused to run"),
        (403, "RemoteCodeRefused", ExitCode.CHECK_FAILED, "--trust-remote-code"),
        (501, "", ExitCode.USAGE, "cannot run models"),
    ],
)
def test_server_policy_refusals_are_named(
    fake: FakeInference, status: int, code: str, exit_code: int, text: str
) -> None:
    headers = {"X-Error-Code": code} if code else {}
    fake.script.append(("status", status, headers, {"error": "refused by policy"}))
    result = infer(fake, "embeddings", "--input", "x", "--no-cache", env={"HFA_MAX_RETRIES": "0"})
    assert result.exit_code == exit_code, result.stderr
    assert text in result.stderr and "pass a token" not in result.stderr


def test_local_only_options_need_local(fake: FakeInference) -> None:
    result = infer(fake, "embeddings", "--input", "x", "--allow-pickle")
    assert result.exit_code == ExitCode.USAGE and "apply to --local" in result.stderr
