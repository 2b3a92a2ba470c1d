"""hfa's network layer: retry policy, Retry-After, token confined to the endpoint's origin."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hfa.config import Settings
from hfa.errors import (
    AccessDenied,
    CheckFailed,
    GatedRepo,
    NetworkError,
    OfflineError,
    RepoNotFound,
    RevisionNotFound,
    UsageError,
)
from hfa.hub.client import OnlineHub
from hfa.hub.requests import RetryPolicy, parse_retry_after
from hfa.resolve.refs import RepoRef


class Script:
    """Answers requests from a list of (status, headers, body); records what came in."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, dict[str, str]]] = []


@contextmanager
def scripted(script: Script) -> Iterator[str]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            script.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            status, headers, body = script.answers.pop(0) if script.answers else (200, {}, b"[]")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v.replace("{self}", f"http://127.0.0.1:{self.server.server_address[1]}"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def hub(url: str, token: str | None = None, retries: int = 3) -> tuple[OnlineHub, list[float]]:
    sleeps: list[float] = []
    settings = Settings(cache_dir=__import__("pathlib").Path("/nonexistent"), endpoint=url, offline=False, token=token)
    return OnlineHub(settings, retry=RetryPolicy(retries=retries), sleep=sleeps.append), sleeps


def test_retries_5xx_then_succeeds() -> None:
    script = Script([(503, {}, b"{}"), (500, {}, b"{}"), (200, {}, b'[{"id": "a/b"}]')])
    with scripted(script) as url:
        h, sleeps = hub(url)
        assert [m.id for m in h.search_models()] == ["a/b"]
    assert len(script.seen) == 3
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_429_honours_retry_after() -> None:
    script = Script([(429, {"Retry-After": "7"}, b"{}"), (200, {}, b"[]")])
    with scripted(script) as url:
        h, sleeps = hub(url)
        assert h.search_models() == []
    assert sleeps == [7.0]


def test_gives_up_after_the_retry_budget() -> None:
    script = Script([(502, {}, b'{"error": "bad gateway"}')] * 3)
    with scripted(script) as url:
        h, sleeps = hub(url, retries=2)
        with pytest.raises(NetworkError, match="HTTP 502"):
            h.search_models()
    assert len(script.seen) == 3 and len(sleeps) == 2


def test_token_goes_only_to_the_endpoint_origin() -> None:
    other = Script([(200, {}, json.dumps([{"id": "x/2"}]).encode())])
    with scripted(other) as other_url:
        first = Script(
            [(200, {"Link": f'<{other_url}/api/models?cursor=1>; rel="next"'}, json.dumps([{"id": "x/1"}]).encode())]
        )
        with scripted(first) as url:
            h, _ = hub(url, token="hf_secret_value_123")
            assert [m.id for m in h.search_models(limit=5)] == ["x/1", "x/2"]
    assert first.seen[0][1].get("authorization") == "Bearer hf_secret_value_123"
    assert "authorization" not in {k.lower() for k in other.seen[0][1]}


def test_offline_refuses_to_build_a_hub() -> None:
    settings = Settings(cache_dir=__import__("pathlib").Path("/x"), endpoint="http://127.0.0.1:1", offline=True)
    with pytest.raises(OfflineError):
        OnlineHub(settings)


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3.0), ("0", 0.0), ("1.5", 1.5), ("", None), (None, None), ("soon", None), ("-4", 0.0)]
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@given(st.integers(min_value=0, max_value=40), st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)))
def test_retry_delay_is_bounded(attempt: int, retry_after: float | None) -> None:
    policy = RetryPolicy()
    delay = policy.delay(attempt, retry_after)
    assert 0 <= delay <= max(policy.max_wait, policy.max_retry_after)


@given(st.text(max_size=40))
def test_parse_retry_after_never_crashes(value: str) -> None:
    result = parse_retry_after(value)
    assert result is None or result >= 0


# -- the light path: resolve() with the standard library only ---------------------------------------

INFO = json.dumps(
    {"id": "a/b", "sha": "c" * 40, "siblings": [{"rfilename": "config.json", "size": 2, "blobId": "d" * 40}]}
).encode()


def _ref() -> RepoRef:
    return RepoRef.parse("a/b")


def test_resolve_retries_then_reads_the_listing() -> None:
    script = Script([(503, {"Retry-After": "2"}, b"{}"), (200, {}, INFO)])
    with scripted(script) as url:
        h, sleeps = hub(url, token="hf_light_token_1234")
        resolved = h.resolve(_ref())
    assert resolved.commit == "c" * 40 and list(resolved.files) == ["config.json"]
    assert sleeps == [2.0] and h.requests_made == 2
    assert script.seen[0][0].startswith("/api/models/a/b?blobs=true")
    assert script.seen[1][1].get("authorization") == "Bearer hf_light_token_1234"


def test_resolve_redirect_to_another_origin_drops_the_token() -> None:
    other = Script([(200, {}, INFO)])
    with scripted(other) as other_url:
        first = Script([(307, {"Location": f"{other_url}/api/models/a/b-renamed?blobs=true"}, b"")])
        with scripted(first) as url:
            h, _ = hub(url, token="hf_light_token_1234")
            assert h.resolve(_ref()).commit == "c" * 40
    assert first.seen[0][1].get("authorization") == "Bearer hf_light_token_1234"
    assert "authorization" not in {k.lower() for k in other.seen[0][1]}


@pytest.mark.parametrize(
    ("status", "headers", "error", "text"),
    [
        (404, {"X-Error-Code": "RepoNotFound"}, RepoNotFound, "'a/b' not found"),
        (401, {}, RepoNotFound, "'a/b' not found"),
        (404, {"X-Error-Code": "RevisionNotFound"}, RevisionNotFound, "Revision 'main' not found"),
        (403, {"X-Error-Code": "GatedRepo"}, GatedRepo, "is gated"),
        (403, {}, AccessDenied, "refused access"),
        (400, {}, UsageError, "refused the request"),
        (500, {}, NetworkError, "HTTP 500"),
    ],
)
def test_resolve_maps_hub_errors(status: int, headers: dict[str, str], error: type, text: str) -> None:
    with scripted(Script([(status, headers, b'{"error": "nope"}')] * 3)) as url:
        h, _ = hub(url, retries=1)
        with pytest.raises(error, match=text):
            h.resolve(_ref())


def test_resolve_rejects_invalid_json_and_dead_endpoints() -> None:
    with scripted(Script([(200, {}, b"<html>")])) as url:
        h, _ = hub(url)
        with pytest.raises(CheckFailed, match="invalid JSON"):
            h.resolve(_ref())
    h, sleeps = hub("http://127.0.0.1:9", retries=2)
    with pytest.raises(NetworkError, match="Could not reach"):
        h.resolve(_ref())
    assert len(sleeps) == 2


def test_warm_pull_imports_no_http_stack(server, tmp_path) -> None:
    import subprocess
    import sys

    cache = tmp_path / "c"
    args = ["pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache), "-q"]
    code = (
        "import sys; from hfa.cli.app import main; sys.argv = ['hfa', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(','.join(m for m in ('httpx2', 'httpcore2', 'huggingface_hub', 'yaml') if m in sys.modules))"
    )
    first = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    cold = set(first.stdout.splitlines()[-1].split(","))
    assert not cold & {"httpx2", "httpcore2"}  # cold too: downloads go through hfa.hub.transport
    warm = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.splitlines()[-1] == ""  # the last line lists heavy modules imported: none


def test_no_request_builds_huggingface_hubs_http_client() -> None:
    import huggingface_hub.utils
    from huggingface_hub.utils import _http as hf_http

    huggingface_hub.utils.close_session()
    script = Script([(200, {}, b'[{"id": "a/b"}]')])
    with scripted(script) as url:
        h, _ = hub(url, token="hf_secret_token_123")
        assert [m.id for m in h.search_models()] == ["a/b"]
        with h.stream(url + "/x") as response:
            assert response.read() == b"[]"
    assert hf_http._GLOBAL_CLIENT is None
    assert h.requests_made == 2
    for _path, headers in script.seen:
        assert headers["authorization"] == "Bearer hf_secret_token_123"
        assert headers["user-agent"].startswith("hfa/")
        assert len(headers["x-amzn-trace-id"]) == 36  # a request id, as huggingface_hub sends


def test_streamed_redirect_hops_are_followed_by_hand() -> None:
    other = Script([(200, {}, b"payload")])
    with scripted(other) as other_url:
        script = Script([(302, {"Location": "/b"}, b""), (302, {"Location": f"{other_url}/cdn"}, b"")])
        with scripted(script) as url:
            h, _ = hub(url, token="hf_secret_token_123")
            with h.stream(url + "/a") as response:
                assert response.read() == b"payload"
    assert [p for p, _ in script.seen] == ["/a", "/b"]
    assert all(headers["authorization"] == "Bearer hf_secret_token_123" for _, headers in script.seen)
    assert [p for p, _ in other.seen] == ["/cdn"] and "authorization" not in other.seen[0][1]


def test_search_rejects_a_list_that_is_no_model_list() -> None:
    with scripted(Script([(200, {}, b'["not a model"]')])) as url:
        h, _ = hub(url)
        with pytest.raises(CheckFailed, match="invalid model list"):
            h.search_models()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('<https://h/api/models?cursor=2>; rel="next"', "https://h/api/models?cursor=2"),
        ('<https://h/p1>; rel="prev", <https://h/p3>; rel="next"', "https://h/p3"),
        ('<https://h/p3>; rel="next last"', "https://h/p3"),
        ("<https://h/p3>; rel=next", "https://h/p3"),
        ('<https://h/p1>; rel="prev"', None),
        ("", None),
        (None, None),
    ],
)
def test_next_link(value: str | None, expected: str | None) -> None:
    from hfa.hub.requests import next_link

    assert next_link(value) == expected


@given(st.text())
def test_next_link_never_crashes(value: str) -> None:
    from hfa.hub.requests import next_link

    result = next_link(value)
    assert result is None or isinstance(result, str)


def test_a_redirect_loop_ends_in_a_network_error_not_in_a_body() -> None:
    with scripted(Script([(302, {"Location": "/loop"}, b"")] * 30)) as url:
        h, _ = hub(url)
        with pytest.raises(NetworkError, match="HTTP 302"), h.stream(url + "/start"):
            pass
        assert h.requests_made == 11  # the first request and ten hops
        with pytest.raises(NetworkError, match="HTTP 302"):
            h.get_json(url + "/api/models/a/b")


@given(
    st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2200, 1, 1)),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
    st.sampled_from(["", ".0", ".123", ".123456"]),
)
def test_hub_timestamps_come_out_in_utc_seconds(when: datetime, offset_minutes: int, fraction: str) -> None:
    from datetime import timedelta, timezone

    from hfa.hub.client import _iso

    zone = timezone(timedelta(minutes=offset_minutes))
    local = when.replace(microsecond=0, tzinfo=zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + (local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])
    assert _iso(text) == local.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _iso(local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z") == local.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_search_reads_odd_fields_as_unknown_not_as_a_crash() -> None:
    item = {
        "id": "a/b",
        "downloads": "many",
        "likes": True,
        "pipeline_tag": 3,
        "lastModified": "yesterday",
        "gated": "auto",
    }
    with scripted(Script([(200, {}, json.dumps([item]).encode())])) as url:
        h, _ = hub(url)
        (m,) = h.search_models()
    assert (m.downloads, m.likes, m.pipeline_tag, m.last_modified, m.gated) == (None, None, None, "yesterday", "auto")


def test_search_summaries_agree_with_the_official_client(server) -> None:
    from huggingface_hub import HfApi

    h, _ = hub(server.url, token=None)
    ours = {m.id: m for m in h.search_models(limit=1000)}
    theirs = {m.id: m for m in HfApi(endpoint=server.url, token=False).list_models(limit=1000)}
    assert ours.keys() == theirs.keys() and ours
    for repo_id, m in theirs.items():
        mine = ours[repo_id]
        last = m.last_modified.strftime("%Y-%m-%dT%H:%M:%SZ") if m.last_modified else None
        expected = (m.pipeline_tag, m.library_name, m.downloads, m.likes, last, bool(m.private), m.gated or False)
        assert (
            mine.pipeline_tag,
            mine.library_name,
            mine.downloads,
            mine.likes,
            mine.last_modified,
            mine.private,
            mine.gated,
        ) == expected
