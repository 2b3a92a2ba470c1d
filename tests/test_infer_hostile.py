"""The orchestrator against hostile providers, hostile hfa.toml and hostile state files, on loopback.

A provider may redirect in a loop or to another host, answer 10 GB, a gzip bomb or a body that never
ends, or ask to be left alone for 10^12 seconds; hfa.toml may hold 10,000 providers or a token variable
holding a line break; the state store may be another user's. Each case ends in a clear error or a
fallback within the deadline: never exit 70, never a token in any output.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import hfa

from hfa.infer.limits import ASKED_MAX, StateStore

ANSWER = [[{"label": "POSITIVE", "score": 0.75}]]
COMMIT = "1" * 40
TOKEN = "hf_hostile_secret_0123456789"
ROOT = Path(__file__).resolve().parents[1]


class Hostile:
    """A provider answering every POST as ``mode`` says; ``auth`` records the Authorization it got."""

    def __init__(self, mode: str, other: str = "") -> None:
        self.mode = mode
        self.other = other
        self.auth: list[str | None] = []
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hostile.auth.append(self.headers.get("Authorization"))
                with contextlib.suppress(OSError):  # the client stopped reading: as it should
                    hostile.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        mode = self.mode

        def send(status: int, body: bytes, headers: dict[str, str]) -> None:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(body)

        if mode == "ok":
            data = json.dumps(ANSWER).encode()
            send(200, data, {"Content-Length": str(len(data))})
        elif mode in ("redirect", "redirect-loop"):
            target = (self.other if mode == "redirect" else "") + h.path
            send(307, b"", {"Location": target, "Content-Length": "0"})
        elif mode == "huge":  # says 10 GB, and keeps sending for at most 10 s
            send(200, b"", {"Content-Length": str(10 * 1024**3)})
            _stream(h, b" " * 65536, 10.0)
        elif mode == "huge-chunked":
            send(200, b"", {"Transfer-Encoding": "chunked"})
            chunk = b" " * 65536
            _stream(h, b"%x\r\n%s\r\n" % (len(chunk), chunk), 10.0)
        elif mode == "gzip-bomb":
            data = gzip.compress(b" " * (8 * 1024 * 1024))
            send(200, data, {"Content-Encoding": "gzip", "Content-Length": str(len(data))})
        elif mode == "endless":  # a byte every 0.2 s, for at most 15 s
            send(200, b"", {"Transfer-Encoding": "chunked"})
            _stream(h, b"1\r\n \r\n", 15.0, pause=0.2)
        elif mode.startswith("retry-after:"):
            data = b'{"error": "slow down"}'
            send(429, data, {"Retry-After": mode.split(":", 1)[1], "Content-Length": str(len(data))})
        elif mode.startswith("headers:"):  # a 429 with these headers (name=value|name=value)
            data = b'{"error": "slow down"}'
            pairs = dict(p.split("=", 1) for p in mode.split(":", 1)[1].split("|"))
            send(429, data, {**pairs, "Content-Length": str(len(data))})
        elif mode == "500":
            data = b'{"error": "internal"}'
            send(500, data, {"Content-Length": str(len(data))})
        else:
            raise AssertionError(mode)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _stream(h: BaseHTTPRequestHandler, data: bytes, seconds: float, pause: float = 0.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        h.wfile.write(data)
        h.wfile.flush()
        if pause:
            time.sleep(pause)


@pytest.fixture
def servers() -> Iterator[list[Hostile]]:
    made: list[Hostile] = []
    yield made
    for server in made:
        server.close()


def serve(servers: list[Hostile], mode: str, other: str = "") -> Hostile:
    server = Hostile(mode, other)
    servers.append(server)
    return server


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing is resolved: the model is pinned
    monkeypatch.setenv("HFA_MAX_RETRIES", "2")
    return tmp_path


def providers(*tables: tuple[str, str, str]) -> None:
    text = "".join(
        f'[[infer.providers]]\nname = "{name}"\nkind = "endpoint"\nurl = "{url}"\npriority = {10 - i}\n{extra}\n\n'
        for i, (name, url, extra) in enumerate(tables)
    )
    Path("hfa.toml").write_text(text, encoding="utf-8")


def infer(*args: str) -> tuple[int, dict[str, Any], str]:
    result = hfa("infer", "text-classification", "-m", f"org/cls@{COMMIT}", "-i", "x", "--no-cache", "--json", *args)
    doc = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, doc, result.stderr


# -- redirects ---------------------------------------------------------------------------------------
def test_a_redirect_loop_falls_over_instead_of_an_internal_error(here: Path, servers: list[Hostile]) -> None:
    loop, good = serve(servers, "redirect-loop"), serve(servers, "ok")
    providers(("loop", loop.url, ""), ("good", good.url, ""))
    code, doc, stderr = infer()
    assert code == 0, stderr
    assert doc["provider"] == "good" and "redirected too many times" in doc["fallbacks"][0]["error"]
    shutil.rmtree(StateStore().root)  # forget the cooldown: the loop is asked again
    providers(("loop", loop.url, ""))
    code, doc, stderr = infer()
    assert code == 5 and doc["error"]["code"] != "internal" and "redirected too many times" in stderr


def test_a_token_never_follows_a_redirect_to_another_origin(
    here: Path, servers: list[Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    other = serve(servers, "ok")
    first = serve(servers, "redirect", other.url)
    monkeypatch.setenv("A_TOKEN", TOKEN)
    providers(("a", first.url, 'token_env = "A_TOKEN"'))
    code, _doc, stderr = infer()
    assert code == 0, stderr
    assert first.auth == [f"Bearer {TOKEN}"] and other.auth == [None]


# -- answers that never end --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["huge", "huge-chunked", "gzip-bomb"])
def test_an_answer_too_large_is_refused_and_falls_over(
    here: Path, servers: list[Hostile], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setattr("hfa.infer.bounded.MAX_ANSWER_BYTES", 1024 * 1024)
    big, good = serve(servers, mode), serve(servers, "ok")
    providers(("big", big.url, ""), ("good", good.url, ""))
    started = time.monotonic()
    code, doc, stderr = infer("--timeout", "30")
    assert code == 0, stderr
    assert doc["provider"] == "good" and "more than 1 MiB" in doc["fallbacks"][0]["error"]
    assert time.monotonic() - started < 8


def test_an_endless_answer_stops_at_the_deadline(here: Path, servers: list[Hostile]) -> None:
    endless = serve(servers, "endless")
    providers(("endless", endless.url, ""))
    started = time.monotonic()
    code, _doc, stderr = infer("--timeout", "2")
    assert code == 5, stderr
    assert "within the 2 s deadline (the answer was still arriving)" in stderr
    assert time.monotonic() - started < 6


def test_the_deadline_is_shared_the_providers_after_it_are_not_tried_nor_cooled(
    here: Path, servers: list[Hostile]
) -> None:
    slow = serve(servers, "endless")
    later = [serve(servers, "ok") for _ in range(3)]
    providers(("slow", slow.url, ""), *((f"p{i}", s.url, "") for i, s in enumerate(later)))
    code, _doc, stderr = infer("--timeout", "2")
    assert code == 5
    assert all(not s.auth for s in later)
    assert "'p2': not tried: the 2 s deadline passed" in stderr
    assert sorted(StateStore().cooldowns()) == ["slow"]


# -- what a provider asks for ------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1000000000000", "1e400", "Sat, 01 Jan 3000 00:00:00 GMT"])
def test_a_retry_after_from_far_away_holds_a_provider_at_most_a_day(
    here: Path, servers: list[Hostile], value: str
) -> None:
    far, good = serve(servers, f"retry-after:{value}"), serve(servers, "ok")
    providers(("far", far.url, ""), ("good", good.url, ""))
    code, _doc, stderr = infer("--timeout", "5")
    assert code == 0, stderr
    until = StateStore().cooldowns()["far"].until
    assert until <= time.time() + ASKED_MAX + 1
    usage = hfa("infer", "usage")
    assert usage.exit_code == 0, usage.stderr
    assert "cooling down until" in usage.stdout


@pytest.mark.parametrize(
    "headers",
    [
        "RateLimit-Remaining=nan|RateLimit-Reset=nan",
        "RateLimit-Remaining=0|RateLimit-Reset=1e400",
        "RateLimit=remaining=0, reset=inf",
        "RateLimit=garbage,,==;;|Retry-After=nan",
        "X-RateLimit-Remaining=-1|X-RateLimit-Reset=99999999999999999999|Retry-After=inf",
    ],
)
def test_garbage_ratelimit_headers_leave_a_readable_state(here: Path, servers: list[Hostile], headers: str) -> None:
    odd, good = serve(servers, f"headers:{headers}"), serve(servers, "ok")
    providers(("odd", odd.url, ""), ("good", good.url, ""))
    code, doc, stderr = infer("--timeout", "3")
    assert code == 0 and doc["provider"] == "good", stderr
    text = StateStore().cooldown_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert StateStore().cooldowns()["odd"].until <= time.time() + ASKED_MAX + 1


def test_a_state_file_from_far_away_is_read_safely(here: Path) -> None:
    store = StateStore()
    store.root.mkdir(parents=True)
    store.cooldown_path.write_text(
        '{"providers": {"a": {"until": 1e308, "reason": "x", "failures": 1},'
        ' "b": {"until": NaN, "reason": "y", "failures": 1}}}'
    )
    providers(("a", "http://127.0.0.1:9", ""), ("b", "http://127.0.0.1:9", ""))
    usage = hfa("infer", "usage", "--json")
    assert usage.exit_code == 0, usage.stderr
    rows = {row["name"]: row for row in json.loads(usage.stdout)["providers"]}
    assert rows["a"]["cooldown"]["until"] <= time.time() + 2 * 86400 and rows["b"]["cooldown"] is None


# -- hostile hfa.toml --------------------------------------------------------------------------------
def test_a_token_variable_holding_a_line_break_is_refused_never_printed(
    here: Path, servers: list[Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = serve(servers, "ok"), serve(servers, "ok")
    monkeypatch.setenv("A_TOKEN", f"{TOKEN}\nX-Injected: yes")
    providers(("a", a.url, 'token_env = "A_TOKEN"'))
    code, doc, stderr = infer()
    assert code == 2, stderr
    assert "$A_TOKEN holds spaces, line breaks" in stderr and TOKEN not in stderr + json.dumps(doc)
    assert a.auth == []
    providers(("a", a.url, 'token_env = "A_TOKEN"'), ("b", b.url, ""))
    code, doc, stderr = infer("-v")
    assert code == 0 and doc["provider"] == "b", stderr
    state = StateStore()
    kept = state.cooldown_path.read_text() if state.cooldown_path.exists() else ""
    assert TOKEN not in stderr + json.dumps(doc) + kept


def test_ten_thousand_providers_are_refused_at_once(here: Path) -> None:
    Path("hfa.toml").write_text(
        "".join(f'[[infer.providers]]\nname = "p{i}"\nkind = "hf-inference"\n' for i in range(10_000))
    )
    started = time.monotonic()
    code, doc, stderr = infer()
    assert code == 2 and "lists 10000 [[infer.providers]]; at most 64" in stderr
    assert doc["error"]["code"] != "internal" and time.monotonic() - started < 10


# -- the state store ---------------------------------------------------------------------------------
def test_a_store_that_may_not_be_written_degrades_with_a_warning(
    here: Path, servers: list[Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    bad, good = serve(servers, "500"), serve(servers, "ok")
    providers(("bad", bad.url, 'rate = "100/minute"'), ("good", good.url, ""))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    def readonly(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr("hfa.cache.layout.atomic_write_text", refuse)
    monkeypatch.setattr("pyrate_limiter.SQLiteBucket.init_from_file", readonly)
    code, doc, stderr = infer("--timeout", "20")
    assert code == 0, stderr
    assert doc["provider"] == "good" and "may not be written" in stderr and "HFA_INFER_STATE" in stderr
    assert stderr.count("may not be written") == 2  # the limits and the cooldowns, once each


def _nobody_python() -> list[str] | None:
    python = shutil.which("python3", path="/usr/bin")
    if os.geteuid() != 0 or shutil.which("setpriv") is None or python is None:
        return None
    version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    if version.stdout.strip() != str(sys.version_info[:2]):
        return None
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python]


def test_another_users_store_degrades_for_a_real_second_user(here: Path, servers: list[Hostile]) -> None:
    command = _nobody_python()
    if command is None:
        pytest.skip("needs root, setpriv and a system python of this version")
    bad, good = serve(servers, "500"), serve(servers, "ok")
    providers(("bad", bad.url, 'rate = "100/minute"'), ("good", good.url, ""))
    store = StateStore()
    store.cool("someone", "made by the first user")  # the folder and its files are root's, 0755/0644
    site = next(p for p in sys.path if p.endswith("site-packages"))
    for folder in (here, *here.parents):
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o005)  # the second user may read the project, not write
    env = {
        "PYTHONPATH": f"{ROOT}:{site}",
        "HF_HOME": os.environ["HF_HOME"],
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HOME": str(here),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HFA_MAX_RETRIES": "1",
        "PATH": os.environ["PATH"],
    }
    argv = ["-m", "hfa", "infer", "text-classification", "-m", f"org/cls@{COMMIT}", "-i", "x", "--no-cache"]
    for path in (store.root, *store.root.parents):
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o005)
    run = subprocess.run([*command, *argv], cwd=here, env=env, capture_output=True, text=True, timeout=120)
    assert "No module named" not in run.stderr, f"the second user cannot import hfa's dependencies: {run.stderr}"
    assert run.returncode == 0, run.stderr
    assert "may not be written" in run.stderr and "POSITIVE" in run.stdout


def test_two_processes_racing_on_cooldowns_lose_no_failure(here: Path) -> None:
    code = "from hfa.infer.limits import StateStore\ns = StateStore()\nfor _ in range(15):\n    s.cool('racer', 'r')\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert StateStore().cooldowns()["racer"].failures == 30


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http:///models"])
def test_a_url_that_does_not_parse_is_a_usage_error(here: Path, url: str) -> None:
    providers(("a", url, ""))
    code, _doc, stderr = infer()
    assert code == 2 and "needs a `url` (http or https)" in stderr, stderr
    Path("hfa.toml").unlink()
    result = hfa("infer", "text-classification", "-i", "x", "--endpoint-url", url.replace("//", "//u:pw1234@"))
    assert result.exit_code == 2 and "Invalid --endpoint-url" in result.stderr, result.stderr
    assert "pw1234" not in result.stderr


def test_an_endpoint_urls_password_is_never_printed_nor_cached(here: Path, servers: list[Hostile]) -> None:
    good = serve(servers, "ok")
    url = good.url.replace("//", "//user:hunter2secret@")
    for model in ([], ["-m", f"org/cls@{COMMIT}"]):
        result = hfa("infer", "text-classification", *model, "-i", "x", "--json", "--endpoint-url", url)
        assert result.exit_code == 0, result.stderr
        assert "hunter2secret" not in result.stdout + result.stderr
        assert json.loads(result.stdout)["route"].startswith("http://127.0.0.1:")
    written = [p for p in Path(os.environ["HF_HOME"]).rglob("*.json") if "hunter2secret" in p.read_text()]
    assert written == []


def test_links_in_the_state_store_are_never_followed(
    here: Path, servers: list[Hostile], tmp_path_factory: pytest.TempPathFactory
) -> None:
    victim = tmp_path_factory.mktemp("victim") / "precious"
    victim.write_text("precious")
    bad, good = serve(servers, "500"), serve(servers, "ok")
    store = StateStore()
    store.root.mkdir(parents=True)
    (store.root / "cooldowns.json.lock").symlink_to(victim)
    providers(("bad", bad.url, ""), ("good", good.url, ""))
    code, doc, stderr = infer("--timeout", "20")
    assert code == 0 and doc["provider"] == "good", stderr  # the cooldown is kept for this run only
    assert "cooldowns.json may not be written" in stderr
    store.db_path.symlink_to(victim)
    providers(("good", good.url, 'rate = "5/minute"'))
    code, doc, stderr = infer()
    assert code == 6 and "is a symbolic link; hfa does not follow it" in stderr
    assert victim.read_text() == "precious"
