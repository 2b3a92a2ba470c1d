"""Plain ``http://`` endpoints: a client without CA certificates, the same requests, redirects through the verifying one."""

from __future__ import annotations

import huggingface_hub.utils
from huggingface_hub.utils import _http as hf_http
from test_hub import Script, hub, scripted

BODY = b'[{"id": "a/b"}]'


def test_http_endpoint_never_creates_the_verifying_client() -> None:
    script = Script([(200, {}, BODY)])
    with scripted(script) as url:
        h, _ = hub(url, token="hf_secret_token_123")
        h.headers_for(url)  # huggingface_hub loads its agent registry once per process, maybe with its client
        huggingface_hub.utils.close_session()
        assert [m.id for m in h.search_models()] == ["a/b"]
        with h.stream(url + "/x") as response:
            assert response.read() == b"[]"
    assert hf_http._GLOBAL_CLIENT is None
    assert h.requests_made == 2
    for _path, headers in script.seen:
        assert headers["authorization"] == "Bearer hf_secret_token_123"
        assert headers["user-agent"].startswith("hfa/")
        assert headers.get("X-Amzn-Trace-Id") or headers.get("x-amzn-trace-id")  # huggingface_hub's request hook


def test_redirected_http_request_is_followed_by_the_verifying_client() -> None:
    script = Script(
        [(302, {"Location": "{self}/api/elsewhere"}, b""), (302, {"Location": "/moved"}, b""), (200, {}, BODY)]
    )
    with scripted(script) as url:
        h, _ = hub(url)
        assert [m.id for m in h.search_models()] == ["a/b"]
    # the plain client stops at the first redirect; the request goes again through huggingface_hub's client
    assert [p.split("?")[0] for p, _ in script.seen] == ["/api/models", "/api/models", "/moved"]
    assert h.requests_made == 2


def test_streamed_redirect_hops_stay_by_hand() -> None:
    script = Script([(302, {"Location": "/b"}, b""), (200, {}, b"payload")])
    with scripted(script) as url:
        h, _ = hub(url)
        with h.stream(url + "/a") as response:
            assert response.read() == b"payload"
    assert [p for p, _ in script.seen] == ["/a", "/b"]
