"""The inference orchestrator end to end on loopback: providers in order with fallback, cooldowns and
limits shared across processes, task defaults pinned in the lock, and what a user sees.

Providers are real servers: ``hfa serve --infer`` (in-process, with a scripted engine so no torch is
needed) and a small misbehaving server (:class:`Stub`) that is down, answers 500, 503 loading forever,
429 with or without ``Retry-After``, a quota message, 400, 401 or 404.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import hfa

from hfa.errors import NetworkError, UsageError
from hfa.infer.limits import StateStore
from hfa.infer.pool import PoolConfig
from hfa.infer.providers import parse_providers, parse_rate
from hfa.server import HubServer, ServerConfig
from hfa.testing import make_safetensors, model_card, write_repo

ANSWER = [{"label": "POSITIVE", "score": 0.75}, {"label": "NEGATIVE", "score": 0.25}]
TOKEN = "hf_orchestrator_secret_0123456789"
ROOT = Path(__file__).resolve().parents[1]


# -- servers ---------------------------------------------------------------------------------------
class Stub:
    """A misbehaving Inference API: ``mode`` says how it answers every POST; ``posts`` counts them."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.posts = 0
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stub.lock:
                    stub.posts += 1
                    stub.auth.append(self.headers.get("Authorization"))
                status, headers, body = stub.answer()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self) -> tuple[int, dict[str, str], Any]:
        mode = self.mode
        if mode == "ok":
            return 200, {}, [ANSWER]
        if mode == "500":
            return 500, {}, {"error": "internal"}
        if mode == "loading-then-ok":
            if self.posts <= 2:
                return 503, {}, {"error": "Model org/cls is currently loading", "estimated_time": 1.0}
            return 200, {}, [ANSWER]
        if mode == "loading":
            return 503, {}, {"error": "Model org/cls is currently loading", "estimated_time": 1000.0}
        if mode == "429-retry-after":
            return 429, {"Retry-After": "3600"}, {"error": "Too many requests"}
        if mode == "429":
            return 429, {}, {"error": "Too many requests"}
        if mode == "429-ratelimit":
            return 429, {"RateLimit-Remaining": "0", "RateLimit-Reset": "120"}, {"error": "slow down"}
        if mode == "quota":
            return 402, {}, {"error": "You have exceeded your monthly included credits for Inference Providers."}
        if mode == "400":
            return 400, {}, {"error": "inputs must be a string"}
        if mode == "401":
            return 401, {}, {"error": "Invalid credentials"}
        if mode == "404":
            return 404, {}, {"error": "Model org/cls does not exist"}
        raise AssertionError(mode)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _down_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there


class FakeEngine:
    def __init__(self, model: Any, task: str) -> None:
        self.task = task

    def run(self, inputs: Any, parameters: dict[str, Any]) -> Any:
        return [ANSWER]

    def close(self) -> None:
        pass


def _loader(model: Any, task: str, *, allow_pickle: bool, trust_remote_code: bool) -> FakeEngine:
    return FakeEngine(model, task)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HubServer, str]]:
    """A real ``hfa serve --infer`` (scripted engine) holding org/cls; and org/cls's commit."""
    weights = make_safetensors({"w": ("F32", [4])})
    card = model_card(pipeline_tag="text-classification")
    commit = write_repo(tmp_path / "served", "org/cls", {"README.md": card, "model.safetensors": weights})
    config = ServerConfig(cache_dir=tmp_path / "served", infer=PoolConfig(loader=_loader))
    with HubServer(config) as srv:
        yield srv, commit


@pytest.fixture
def stubs() -> Iterator[list[Stub]]:
    made: list[Stub] = []
    yield made
    for stub in made:
        stub.close()


def stub(stubs: list[Stub], mode: str) -> Stub:
    s = Stub(mode)
    stubs.append(s)
    return s


def project(tmp_path: Path, *providers: str, tasks: str = "") -> Path:
    text = "".join(f"[[infer.providers]]\n{p.strip()}\n\n" for p in providers)
    if tasks:
        text += f"[infer.tasks]\n{tasks}\n"
    (tmp_path / "hfa.toml").write_text(text, encoding="utf-8")
    return tmp_path


def endpoint(name: str, url: str, priority: int, extra: str = "") -> str:
    return f'name = "{name}"\nkind = "endpoint"\nurl = "{url}"\npriority = {priority}\n{extra}'


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: tuple[HubServer, str]) -> Path:
    """Work in tmp_path (its hfa.toml), with the served hub as the Hub endpoint (commits resolve there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", served[0].url)
    return tmp_path


def infer_json(*args: str) -> tuple[int, dict[str, Any], str]:
    result = hfa("infer", "text-classification", "--json", *args)
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


# -- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "a", "kind": "nope"}, "`kind` must be one of"),
        ({"name": "a", "kind": "endpoint"}, "kind endpoint needs a `url`"),
        ({"name": "a", "kind": "endpoint", "url": "http://u:pw@h"}, "must not hold a password"),
        ({"name": "a", "kind": "hf-inference", "token_env": "hf_abc def"}, "must name an environment variable"),
        ({"name": "a", "kind": "hf-inference", "rate": "often"}, "is not a rate"),
        ({"name": "a", "kind": "hf-inference", "rate": ["100/second", "5/minute"]}, "do not fit together"),
        ({"name": "a", "kind": "hf-inference", "tasks": ["dancing"]}, "dancing"),
        ({"name": "a", "kind": "hf-inference", "colour": "red"}, "unknown key(s) colour"),
        ({"name": "a b", "kind": "hf-inference"}, "`name` must be"),
        ({"name": "a", "kind": "provider"}, "kind provider needs `provider`"),
    ],
)
def test_bad_provider_tables_are_usage_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_providers({"providers": [table]})
    assert message in str(info.value)


def test_providers_are_ordered_by_priority_then_file_order() -> None:
    tables = [
        {"name": "low", "kind": "hf-inference", "priority": 1},
        {"name": "first", "kind": "hf-inference", "priority": 5},
        {"name": "second", "kind": "hf-inference", "priority": 5},
    ]
    assert [p.name for p in parse_providers({"providers": tables})] == ["first", "second", "low"]
    with pytest.raises(UsageError, match="named 'x'"):
        parse_providers({"providers": [{"name": "x", "kind": "local"}, {"name": "x", "kind": "local"}]})


@pytest.mark.parametrize(("text", "limit", "period"), [("100/hour", 100, "hour"), (" 5 / seconds", 5, "second")])
def test_rates_parse(text: str, limit: int, period: str) -> None:
    rate = parse_rate(text)
    assert (rate.limit, rate.period) == (limit, period)


# -- fallback ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "cooled"),
    [
        ("down", True),
        ("500", True),
        ("loading", True),
        ("429-retry-after", True),
        ("429", True),
        ("quota", True),
        ("404", False),
    ],
)
def test_a_failing_provider_falls_over_to_the_next(
    here: Path, served: tuple[HubServer, str], stubs: list[Stub], mode: str, cooled: bool
) -> None:
    srv, commit = served
    first = _down_url() if mode == "down" else stub(stubs, mode).url
    project(here, endpoint("flaky", first, 10), endpoint("mirror", srv.url, 5))
    code, doc, stderr = infer_json("-m", f"org/cls@{commit}", "-i", "I love it", "--timeout", "20", "-v")
    assert code == 0, stderr
    assert doc["result"] == ANSWER and doc["provider"] == "mirror" and doc["cached"] is False
    assert [f["provider"] for f in doc["fallbacks"]] == ["flaky"]
    assert doc["attempts"] >= 2 and doc["latency_ms"] >= 0 and doc["waited_s"] >= 0
    assert "provider 'flaky' failed" in stderr and "provider 'mirror': attempt" in stderr  # -v
    assert ("flaky" in StateStore().cooldowns()) is cooled
    if mode == "quota":
        assert StateStore().cooldowns()["flaky"].until > __import__("time").time() + 3000
    if mode == "429-retry-after":
        assert StateStore().cooldowns()["flaky"].until > __import__("time").time() + 3500  # >= Retry-After


@pytest.mark.parametrize("mode", ["400"])
def test_a_bad_request_never_falls_over(
    here: Path, served: tuple[HubServer, str], stubs: list[Stub], mode: str
) -> None:
    srv, commit = served
    bad = stub(stubs, mode)
    project(here, endpoint("strict", bad.url, 10), endpoint("mirror", srv.url, 5))
    result = hfa("infer", "text-classification", "-m", f"org/cls@{commit}", "-i", "x")
    assert result.exit_code == 2, result.stderr
    assert "inputs must be a string" in result.stderr
    assert bad.posts == 1 and "strict" not in StateStore().cooldowns()


def test_401_skips_the_provider_and_says_so(here: Path, served: tuple[HubServer, str], stubs: list[Stub]) -> None:
    srv, commit = served
    locked = stub(stubs, "401")
    project(here, endpoint("locked", locked.url, 10), endpoint("mirror", srv.url, 5))
    code, doc, stderr = infer_json("-m", f"org/cls@{commit}", "-i", "x")
    assert code == 0 and doc["provider"] == "mirror"
    assert "provider 'locked' refused access" in stderr and "skipped" in stderr
    assert "locked" not in StateStore().cooldowns()


def test_the_token_goes_only_to_its_providers_origin(
    here: Path, served: tuple[HubServer, str], stubs: list[Stub], monkeypatch: pytest.MonkeyPatch
) -> None:
    _srv, commit = served
    own = stub(stubs, "ok")
    other = stub(stubs, "ok")
    monkeypatch.setenv("OWN_TOKEN", TOKEN)
    monkeypatch.setenv("HF_TOKEN", "hf_global_token_should_not_leak_000")
    project(
        here,
        endpoint("own", own.url, 10, 'token_env = "OWN_TOKEN"\nmodels = ["org/other"]'),
        endpoint("other", other.url, 5),
    )
    code, doc, stderr = infer_json("-m", f"org/cls@{commit}", "-i", "x", "--no-cache", "-v")
    assert code == 0 and doc["provider"] == "other" and own.posts == 0  # own serves only org/other
    assert "skipped (does not serve org/cls)" in stderr
    project(here, endpoint("own", own.url, 10, 'token_env = "OWN_TOKEN"'), endpoint("other", other.url, 5))
    code, doc, _ = infer_json("-m", f"org/cls@{commit}", "-i", "y", "--no-cache")
    assert own.auth == [f"Bearer {TOKEN}"] and other.auth == [None]
    assert TOKEN not in json.dumps(doc)


# -- cooldowns ---------------------------------------------------------------------------------------
def _subprocess_infer(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hfa", "infer", "text-classification", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_cooldown_is_remembered_by_the_next_process(
    here: Path, served: tuple[HubServer, str], stubs: list[Stub]
) -> None:
    srv, commit = served
    broken = stub(stubs, "500")
    project(here, endpoint("broken", broken.url, 10), endpoint("mirror", srv.url, 5))
    code, doc, _ = infer_json("-m", f"org/cls@{commit}", "-i", "a", "--no-cache")
    assert code == 0 and doc["provider"] == "mirror"
    asked = broken.posts
    assert asked >= 1
    done = _subprocess_infer(here, "-m", f"org/cls@{commit}", "-i", "b", "--no-cache", "--json", "-v")
    assert done.returncode == 0, done.stderr
    assert broken.posts == asked  # the other process did not ask the cooled-down provider
    assert json.loads(done.stdout)["provider"] == "mirror"
    assert "provider 'broken': cooling down until" in done.stderr


def test_when_every_provider_is_cooling_it_exits_5_naming_each(
    here: Path, served: tuple[HubServer, str], stubs: list[Stub]
) -> None:
    _, commit = served
    a, b = stub(stubs, "500"), stub(stubs, "quota")
    project(here, endpoint("a", a.url, 10), endpoint("b", b.url, 5))
    first = hfa("infer", "text-classification", "-m", f"org/cls@{commit}", "-i", "x", "--timeout", "10")
    assert first.exit_code == 5
    assert "'a': " in first.stderr and "'b': " in first.stderr and "quota" in first.stderr
    again = hfa("infer", "text-classification", "-m", f"org/cls@{commit}", "-i", "x", "--timeout", "2", "--json")
    assert again.exit_code == 5
    error = json.loads(again.stdout)["error"]
    assert "'a': cooling down until" in error["message"] and "'b': cooling down until" in error["message"]
    assert [f["provider"] for f in error["details"]["fallbacks"]] == ["a", "b"]


def test_ratelimit_headers_tighten_the_local_view(here: Path, served: tuple[HubServer, str], stubs: list[Stub]) -> None:
    srv, commit = served
    busy = stub(stubs, "429-ratelimit")
    project(here, endpoint("busy", busy.url, 10), endpoint("mirror", srv.url, 5))
    code, doc, _ = infer_json("-m", f"org/cls@{commit}", "-i", "x", "--timeout", "5")
    assert code == 0 and doc["provider"] == "mirror"
    cool = StateStore().cooldowns()["busy"]
    assert cool.until > __import__("time").time() + 60


# -- limits ----------------------------------------------------------------------------------------------
def test_a_limit_falls_over_then_exits_with_the_time_it_frees(here: Path, served: tuple[HubServer, str]) -> None:
    srv, commit = served
    project(here, endpoint("mirror", srv.url, 5, 'rate = "2/minute"'))
    for text in ("a", "b"):
        code, _doc, stderr = infer_json("-m", f"org/cls@{commit}", "-i", text, "--no-cache")
        assert code == 0, stderr
    result = hfa("infer", "text-classification", "-m", f"org/cls@{commit}", "-i", "c", "--no-cache", "--timeout", "3")
    assert result.exit_code == 5
    assert "Error: provider 'mirror' allows 2 requests per minute; the next is free at " in result.stderr
    usage = json.loads(hfa("infer", "usage", "--json").stdout)
    (row,) = usage["providers"]
    assert row["limits"][0]["used"] == 2 and row["limits"][0]["left"] == 0
    assert usage["store"] == str(StateStore().root)
    human = hfa("infer", "--usage", "text-classification")
    assert "requests: 2 of 2 per minute used, 0 left, next free at" in human.stderr + human.stdout
    # as the README and docs/infer.md write it: no TASK (it used to be "Missing argument 'TASK'", exit 2)
    bare = hfa("infer", "--usage")
    assert bare.exit_code == 0, bare.stderr
    assert "requests: 2 of 2 per minute used, 0 left, next free at" in bare.stderr + bare.stdout


def test_a_limit_falls_over_to_the_next_provider(here: Path, served: tuple[HubServer, str], stubs: list[Stub]) -> None:
    srv, commit = served
    other = stub(stubs, "ok")
    project(here, endpoint("mirror", srv.url, 5, 'rate = "1/hour"'), endpoint("spare", other.url, 1))
    assert infer_json("-m", f"org/cls@{commit}", "-i", "a", "--no-cache")[1]["provider"] == "mirror"
    code, doc, _ = infer_json("-m", f"org/cls@{commit}", "-i", "b", "--no-cache")
    assert code == 0 and doc["provider"] == "spare"
    assert "allows 1 requests per hour" in doc["fallbacks"][0]["error"]


def test_loading_polls_count_against_the_limit(here: Path, served: tuple[HubServer, str], stubs: list[Stub]) -> None:
    _, commit = served
    slow = stub(stubs, "loading-then-ok")
    project(here, endpoint("slow", slow.url, 5, 'rate = "10/minute"'))
    code, doc, stderr = infer_json("-m", f"org/cls@{commit}", "-i", "x", "--timeout", "20")
    assert code == 0, stderr
    assert slow.posts == 3 and doc["attempts"] == 3 and doc["waited_s"] >= 2
    usage = json.loads(hfa("infer", "usage", "--json").stdout)
    assert usage["providers"][0]["limits"][0]["used"] == 3


def test_pin_task_usage_errors(here: Path) -> None:
    two = hfa("pin", "--task", "text-classification", "org/a", "org/b")
    assert two.exit_code == 2 and "--task takes at most one model" in two.stderr
    mixed = hfa("pin", "--task", "text-classification", "--check")
    assert mixed.exit_code == 2 and "--task does not combine with --check" in mixed.stderr
    nothing = hfa("pin", "--upgrade", "--task", "summarization")
    assert nothing.exit_code == 2 and "No lock file at hfa.lock" in nothing.stderr
    unknown = hfa("pin", "--task", "dancing", "org/a")
    assert unknown.exit_code == 2
    none = hfa("pin", "--task", "summarization")  # the served hub has no summarization model
    assert none.exit_code == 3 and "recommends no model for summarization" in none.stderr
    assert not (here / "hfa.lock").exists()


def test_characters_per_month_are_counted(here: Path, served: tuple[HubServer, str]) -> None:
    srv, commit = served
    project(here, endpoint("mirror", srv.url, 5, "chars_per_month = 10"))
    assert infer_json("-m", f"org/cls@{commit}", "-i", "123456", "--no-cache")[0] == 0
    result = hfa(
        "infer", "text-classification", "-m", f"org/cls@{commit}", "-i", "654321", "--no-cache", "--timeout", "2"
    )
    assert result.exit_code == 5 and "allows 10 input characters per month" in result.stderr


def test_two_processes_sharing_5_per_minute_send_5(
    here: Path, served: tuple[HubServer, str], stubs: list[Stub]
) -> None:
    _, commit = served
    counted = stub(stubs, "ok")
    project(here, endpoint("shared", counted.url, 5, 'rate = "5/minute"'))
    for n in (1, 2):
        (here / f"in{n}.jsonl").write_text("".join(json.dumps(f"p{n} line {i}") + "\n" for i in range(5)))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hfa",
                "infer",
                "text-classification",
                "-m",
                f"org/cls@{commit}",
                "--jsonl",
                f"in{n}.jsonl",
                "--no-cache",
                "--timeout",
                "2",
                "--concurrency",
                "2",
            ],
            cwd=here,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    lines = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), err
        lines += [json.loads(line) for line in out.splitlines()]
    assert counted.posts == 5
    answered = [line for line in lines if "result" in line]
    refused = [line for line in lines if "error" in line]
    assert len(answered) == 5 and len(refused) == 5
    assert all(line["provider"] == "shared" for line in answered)
    assert all("allows 5 requests per minute" in line["error"] for line in refused)


# -- what a user sees ----------------------------------------------------------------------------------
def test_a_cached_answer_records_its_provider(here: Path, served: tuple[HubServer, str]) -> None:
    srv, commit = served
    project(here, endpoint("mirror", srv.url, 5))
    first = infer_json("-m", f"org/cls@{commit}", "-i", "same")[1]
    second = infer_json("-m", f"org/cls@{commit}", "-i", "same")[1]
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["provider"] == "mirror" and second["result"] == ANSWER and second["route"] == "providers"


def test_without_providers_the_lines_still_say_how_they_were_answered(
    here: Path, served: tuple[HubServer, str]
) -> None:
    srv, commit = served
    (here / "in.jsonl").write_text('"a"\n"b"\n')
    result = hfa(
        "infer", "text-classification", "-m", f"org/cls@{commit}", "--jsonl", "in.jsonl", "--endpoint-url", srv.url
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["provider"] for line in lines] == ["endpoint", "endpoint"]
    assert all(set(line) >= {"attempts", "fallbacks", "latency_ms", "waited_s", "cached"} for line in lines)


# -- task defaults -----------------------------------------------------------------------------------------
def test_task_defaults_are_pinned_and_used_without_network(here: Path, served: tuple[HubServer, str]) -> None:
    srv, commit = served
    project(here, endpoint("mirror", srv.url, 5))
    missing = hfa("infer", "sentiment-analysis", "-i", "x")
    assert missing.exit_code == 2 and "hfa pin --task text-classification" in missing.stderr
    pinned = hfa("pin", "--task", "sentiment-analysis", "--json")  # the endpoint's recommended model
    assert pinned.exit_code == 0, pinned.stderr
    assert json.loads(pinned.stdout)["tasks"][0]["new_commit"] == commit
    text = (here / "hfa.lock").read_text()
    assert "version = 2" in text and 'task = "text-classification"' in text and f'commit = "{commit}"' in text
    code, doc, stderr = infer_json("-i", "I love it", "-v")
    assert code == 0, stderr
    assert doc["model"] == f"org/cls@{commit}" and doc["commit"] == commit and doc["provider"] == "mirror"


def test_infer_tasks_in_hfa_toml_are_resolved_by_pin_and_moved_by_upgrade(
    here: Path, served: tuple[HubServer, str]
) -> None:
    srv, commit = served
    project(here, endpoint("mirror", srv.url, 5), tasks='sentiment-analysis = "org/cls"')
    assert hfa("pin").exit_code == 0
    assert f'commit = "{commit}"' in (here / "hfa.lock").read_text()
    newer = write_repo(
        here / "served", "org/cls", {"README.md": model_card(pipeline_tag="text-classification"), "x.txt": "2"}
    )
    assert hfa("pin").exit_code == 0 and f'commit = "{commit}"' in (here / "hfa.lock").read_text()  # never silently
    moved = hfa("pin", "--upgrade")
    assert moved.exit_code == 0, moved.stderr
    assert f"~ task text-classification: org/cls@main {commit[:12]} → org/cls@main {newer[:12]}" in moved.stdout
    assert f'commit = "{newer}"' in (here / "hfa.lock").read_text()


def test_the_python_api_runs_one_call(here: Path, served: tuple[HubServer, str], stubs: list[Stub]) -> None:
    from hfa.infer import Orchestrator

    srv, _commit = served
    down = _down_url()
    project(here, endpoint("gone", down, 10), endpoint("mirror", srv.url, 5))
    assert hfa("pin", "--task", "text-classification", "org/cls").exit_code == 0
    orchestrator = Orchestrator.from_config(here / "hfa.toml", timeout=10)
    outcome = orchestrator.run("sentiment-analysis", "I love it")
    assert outcome.result == ANSWER and outcome.provider == "mirror"
    assert outcome.fallbacks[0]["provider"] == "gone"
    with pytest.raises(NetworkError):
        Orchestrator.from_config(here, timeout=1).run("text-classification", "x", model="org/none@" + "0" * 40)


# -- two real `hfa serve --infer` running tiny real models (needs the infer extra) ---------------------------
def test_two_real_servers_one_stopped_the_other_answers(
    tiny_cache: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, commits = tiny_cache
    repo = "tiny/bert-sentiment"
    first = HubServer(ServerConfig(cache_dir=cache, infer=PoolConfig(max_models=2))).__enter__()
    with HubServer(ServerConfig(cache_dir=cache, infer=PoolConfig(max_models=2))) as second:
        project(tmp_path, endpoint("first", first.url, 10), endpoint("second", second.url, 5))
        monkeypatch.chdir(tmp_path)
        ok = infer_json("-m", f"{repo}@{commits[repo]}", "-i", "I love this movie", "--no-cache")
        assert ok[0] == 0 and ok[1]["provider"] == "first", ok[2]
        first.__exit__(None, None, None)
        code, doc, stderr = infer_json("-m", f"{repo}@{commits[repo]}", "-i", "I love this movie", "--no-cache")
        assert code == 0, stderr
        assert doc["provider"] == "second" and doc["fallbacks"][0]["provider"] == "first"
        assert doc["result"] == ok[1]["result"]  # the same model at the same commit: the same answer


def test_hostile_state_files_are_clear_errors_or_ignored(here: Path, served: tuple[HubServer, str]) -> None:
    srv, commit = served
    store = StateStore()
    store.root.mkdir(parents=True)
    store.cooldown_path.write_text('{"providers": {"mirror": {"until": "soon", "reason": 3}}, "x": [')
    project(here, endpoint("mirror", srv.url, 5))
    assert infer_json("-m", f"org/cls@{commit}", "-i", "x", "--no-cache")[0] == 0  # unreadable cooldowns: none
    store.cooldown_path.write_text('{"providers": {"mirror": {"until": "soon", "reason": "r", "failures": "x"}}}')
    store.cool("mirror", "test")  # a bad entry is replaced, not a crash
    assert store.cooldowns()["mirror"].failures == 1
    store.clear("mirror")
    store.db_path.write_bytes(b"this is not a database" * 100)
    project(here, endpoint("mirror", srv.url, 5, 'rate = "5/minute"'))
    result = hfa("infer", "text-classification", "-m", f"org/cls@{commit}", "-i", "y", "--no-cache")
    assert result.exit_code == 6, result.stderr
    assert "limits store" in result.stderr and "delete" in result.stderr


def test_a_named_provider_without_the_task_falls_over(here: Path, served: tuple[HubServer, str]) -> None:
    srv, commit = served
    named = 'name = "together"\nkind = "provider"\nprovider = "together"\npriority = 9\ntoken_env = "TOGETHER_KEY"'
    project(here, named, endpoint("mirror", srv.url, 5))
    code, doc, stderr = infer_json("-m", f"org/cls@{commit}", "-i", "x", "--no-cache")
    assert code == 0, stderr
    assert doc["provider"] == "mirror" and "not supported" in doc["fallbacks"][0]["error"]


def test_infer_without_a_task_is_a_usage_error_naming_it(here: Path) -> None:
    result = hfa("infer", "-i", "hello")
    assert result.exit_code == 2
    assert "Missing argument 'TASK'" in result.stderr and "hfa infer embeddings" in result.stderr
