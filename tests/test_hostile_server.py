"""A hostile or broken server (issue 12): every answer it can send ends in a clear error, in bounded time.

Each test starts a small scripted HTTP server on 127.0.0.1 that misbehaves in one way (an
endless or dripping body, JSON nested too deep, a malformed redirect, a listing of the wrong
shape) and checks that hfa stops soon, with a documented exit code and a message naming
what was wrong, and never with an internal error (exit 70).
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import hfa
from hypothesis import given
from hypothesis import strategies as st

from hfa.errors import ExitCode

COMMIT = "c" * 40
DATA = b"0123456789abcdefghijklmnopqrstuvwxyz"  # the one file of the scripted repo, a.bin
BLOB = hashlib.sha1(b"blob %d\0" % len(DATA) + DATA).hexdigest()

Route = Callable[[BaseHTTPRequestHandler], None]


def info_doc(**overrides: object) -> bytes:
    doc = {"id": "org/model", "sha": COMMIT, "siblings": [{"rfilename": "a.bin", "size": len(DATA), "blobId": BLOB}]}
    doc.update(overrides)
    return json.dumps(doc).encode()


@contextmanager
def hostile(routes: dict[str, Route]) -> Iterator[tuple[str, list[str]]]:
    """A server answering each GET by the first route whose prefix matches its path; yields (url, paths seen)."""
    seen: list[str] = []

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.path)
            for prefix, route in routes.items():
                if self.path.startswith(prefix):
                    try:
                        route(self)
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True
                    return
            answer(404, b'{"error": "no such route"}')(self)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return route


def raw(data: bytes, *, then_hold: float = 0.0, drip: float = 0.0, step: int = 1, head: bytes = b"") -> Route:
    """Send ``head`` then ``data`` as is (status line and headers included), ``data`` ``step`` bytes per
    ``drip`` s, then hold the line."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        h.wfile.write(head)
        h.wfile.flush()
        for i in range(0, len(data), step if drip else len(data) or 1):
            h.wfile.write(data[i : i + (step if drip else len(data))])
            h.wfile.flush()
            if drip:
                time.sleep(drip)
        time.sleep(then_hold)

    return route


def file_route(body: bytes = DATA, extra_length: int = 0, hold: float = 0.0) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("X-Repo-Commit", COMMIT)
        h.send_header("Content-Length", str(len(body) + extra_length))
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()
        time.sleep(hold)  # a server that keeps the connection open without the bytes it announced

    return route


def run(cmd: str, url: str, tmp_path: Path, *args: str, **env: str):
    """``hfa <cmd> org/model`` against ``url``; returns (result, seconds)."""
    started = time.monotonic()
    result = hfa(cmd, "org/model", "--endpoint", url, "--cache-dir", str(tmp_path / "cache"), *args, env=env)
    return result, time.monotonic() - started


INFO = "/api/models/org/model"
FILE = f"/org/model/resolve/{COMMIT}/a.bin"


# -- 1. sizes ----------------------------------------------------------------------------------------


def test_an_endless_api_body_stops_at_the_size_limit_with_a_network_error(tmp_path: Path) -> None:
    """Was: `hfa info` read the whole body; uncapped it grew to 21 GB (here the server stops at 80 MB)."""

    def endless(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
        chunk = b'{"a": "' + b"x" * (1 << 20)
        for _ in range(80):
            h.wfile.write(chunk)

    with hostile({INFO: endless}) as (url, _):
        result, took = run("info", url, tmp_path)
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "larger than 64 MiB" in result.stderr and "'org/model'" in result.stderr
    assert took < 20


def test_an_announced_huge_api_body_is_refused_before_reading_it(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n{"
    with hostile({INFO: raw(head, then_hold=10)}) as (url, _):
        result, took = run("info", url, tmp_path)
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "larger than 64 MiB" in result.stderr
    assert took < 5


# -- 2. depth ----------------------------------------------------------------------------------------


def test_a_repo_info_nested_200000_deep_exits_1_naming_the_depth(tmp_path: Path) -> None:
    with hostile({INFO: answer(200, b"[" * 200_000 + b"]" * 200_000)}) as (url, _):
        result, _ = run("info", url, tmp_path)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "nested 200000 levels deep (more than 100)" in result.stderr and "'org/model'" in result.stderr


def test_an_error_body_nested_deep_still_reads_as_the_status(tmp_path: Path) -> None:
    with hostile({INFO: answer(404, b"[" * 60_000, {"X-Error-Code": "RepoNotFound"})}) as (url, _):
        result, _ = run("info", url, tmp_path)
    assert result.exit_code == ExitCode.NOT_FOUND, result.stderr


def test_a_bundle_manifest_nested_100000_deep_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "deep.tar"
    manifest = b"[" * 100_000 + b"]" * 100_000
    with tarfile.open(bundle, "w") as tar:
        member = tarfile.TarInfo("hfa-bundle/manifest.json")
        member.size = len(manifest)
        tar.addfile(member, io.BytesIO(manifest))
    result = hfa("import", str(bundle), "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert result.stderr.startswith("Error: Bundle refused:"), result.stderr


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n\u00e9'),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\ab'), inner, max_size=4),
    max_leaves=40,
)


def _nesting(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_nesting(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_nesting(v) for v in value.values()), default=0)
    return 0


@given(_JSON, st.booleans(), st.sampled_from(["utf-8", "utf-16", "str"]))
def test_jsonsafe_measures_depth_exactly_and_parses_what_json_parses(value: object, ascii: bool, enc: str) -> None:
    from hfa import jsonsafe

    text = json.dumps(value, ensure_ascii=ascii)
    assert jsonsafe.depth(text.encode()) == _nesting(value)
    data: str | bytes = text if enc == "str" else text.encode(enc)
    assert jsonsafe.loads(data) == json.loads(data)
    if _nesting(value) > 1:
        with pytest.raises(jsonsafe.JsonTooDeep):
            jsonsafe.loads(data, max_depth=_nesting(value) - 1)


@given(st.binary(max_size=200))
def test_jsonsafe_raises_only_value_errors(data: bytes) -> None:
    from hfa import jsonsafe

    with suppress(ValueError):
        jsonsafe.loads(b"[" * 150 + data)


# -- 3. deadlines ------------------------------------------------------------------------------------


def test_an_api_body_dripping_a_byte_at_a_time_ends_at_the_deadline(tmp_path: Path) -> None:
    """Was: an API that drips one byte every 10 s was still running after 590 s."""
    body = info_doc()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    with hostile({INFO: raw(body, head=head, drip=0.2, step=4)}) as (url, _):
        result, took = run("info", url, tmp_path, HFA_API_DEADLINE="1")
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "did not arrive within 1 s" in result.stderr and "HFA_API_DEADLINE" in result.stderr
    assert took < 4


def test_api_headers_dripping_end_at_the_deadline_too(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with hostile({INFO: raw(head, drip=0.1)}) as (url, _):
        result, took = run("info", url, tmp_path, HFA_API_DEADLINE="1")
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert took < 4


def test_a_file_dripping_slower_than_the_minimum_speed_is_cut_off(tmp_path: Path) -> None:
    """Was: a file dripping one byte per 20 s was still downloading at 150 s."""
    head = b"HTTP/1.1 200 OK\r\nX-Repo-Commit: %s\r\nContent-Length: %d\r\n\r\n" % (COMMIT.encode(), len(DATA))
    with hostile({INFO: answer(200, info_doc()), FILE: raw(DATA, head=head, drip=0.25)}) as (url, _):
        result, took = run("pull", url, tmp_path, HFA_MIN_SPEED="100", HFA_MIN_SPEED_TIME="1", HFA_MAX_RETRIES="0")
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "a.bin" in result.stderr and "slower than 100 bytes/s" in result.stderr
    assert took < 5
    assert not list((tmp_path / "cache").glob("*/blobs/" + BLOB))  # nothing unverified published


def test_a_slow_but_steady_download_is_not_cut_off(tmp_path: Path) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Repo-Commit: %s\r\nContent-Length: %d\r\n\r\n" % (COMMIT.encode(), len(DATA))
    with hostile({INFO: answer(200, info_doc()), FILE: raw(DATA, head=head, drip=0.05, step=2)}) as (url, _):
        result, _ = run("pull", url, tmp_path, HFA_MIN_SPEED="10", HFA_MIN_SPEED_TIME="1", HFA_MAX_RETRIES="0")
    assert result.exit_code == 0, result.stderr


def test_a_too_long_content_length_on_an_open_connection_fails_at_once(tmp_path: Path) -> None:
    """Was: the right body with a Content-Length 17 bytes too long stalled 4 x 60 s waiting for them."""
    routes = {INFO: answer(200, info_doc()), FILE: file_route(extra_length=17, hold=10)}
    with hostile(routes) as (url, seen):
        result, took = run("pull", url, tmp_path, HF_HUB_DOWNLOAD_TIMEOUT="3", HFA_MAX_RETRIES="1")
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert f"announced {len(DATA) + 17} bytes, the listing says {len(DATA)}" in result.stderr
    assert took < 3
    assert seen.count(FILE) == 2


def test_a_short_api_body_is_retried_at_once(tmp_path: Path) -> None:
    """The server closes before Content-Length bytes: a network fault, retried, not "invalid JSON"."""
    body = info_doc()
    cut = raw(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:20])
    calls: list[int] = []

    def first_cut_then_whole(h: BaseHTTPRequestHandler) -> None:
        calls.append(1)
        (cut if len(calls) == 1 else answer(200, body))(h)

    with hostile({INFO: first_cut_then_whole, FILE: file_route()}) as (url, _):
        result, took = run("pull", url, tmp_path, HFA_MAX_RETRIES="1")
    assert result.exit_code == 0, result.stderr
    assert len(calls) == 2 and took < 5


def test_a_short_file_body_resumes_at_once(tmp_path: Path) -> None:
    calls: list[str] = []

    def cut_then_rest(h: BaseHTTPRequestHandler) -> None:
        calls.append(h.headers.get("Range") or "")
        if len(calls) == 1:
            raw(
                b"HTTP/1.1 200 OK\r\nX-Repo-Commit: %s\r\nContent-Length: %d\r\n\r\n" % (COMMIT.encode(), len(DATA))
                + DATA[:10]
            )(h)
        else:
            h.send_response(206)
            h.send_header("X-Repo-Commit", COMMIT)
            h.send_header("Content-Range", f"bytes 10-{len(DATA) - 1}/{len(DATA)}")
            h.send_header("Content-Length", str(len(DATA) - 10))
            h.end_headers()
            h.wfile.write(DATA[10:])

    with hostile({INFO: answer(200, info_doc()), FILE: cut_then_rest}) as (url, _):
        result, took = run("pull", url, tmp_path, "--json", HFA_MAX_RETRIES="1")
    assert result.exit_code == 0, result.stderr
    assert calls == ["", "bytes=10-"] and took < 5


@pytest.mark.parametrize("var", ["HFA_API_DEADLINE", "HFA_MIN_SPEED_TIME", "HFA_MIN_SPEED"])
@pytest.mark.parametrize("value", ["soon", "-5", "0.5"])
def test_a_bad_bound_variable_is_a_usage_error(tmp_path: Path, var: str, value: str) -> None:
    result = hfa(
        "pull", "org/model", "--endpoint", "http://127.0.0.1:9", "--cache-dir", str(tmp_path), env={var: value}
    )
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert var in result.stderr


# -- 4. malformed URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["http://[::1/x", "http://127.0.0.1:99999/x", "http://h:port/x", "ftp://h/x"])
def test_a_malformed_redirect_is_a_network_error(tmp_path: Path, location: str) -> None:
    with hostile({INFO: answer(302, b"", {"Location": location})}) as (url, _):
        result, _ = run("info", url, tmp_path)
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "malformed URL in a redirect" in result.stderr


def test_a_malformed_redirect_of_a_download_is_a_network_error(tmp_path: Path) -> None:
    with hostile({INFO: answer(200, info_doc()), FILE: answer(302, b"", {"Location": "http://[::1/x"})}) as (url, _):
        result, _ = run("pull", url, tmp_path, HFA_MAX_RETRIES="0")
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "malformed URL" in result.stderr


def test_a_redirect_with_spaces_and_utf8_is_followed_encoded(tmp_path: Path) -> None:
    target = "/api/models/org/mod él?blobs=true".encode().decode("latin-1")
    routes = {"/api/models/org/mod%20%C3%A9l": answer(200, info_doc()), INFO: answer(302, b"", {"Location": target})}
    with hostile(routes) as (url, seen):
        result, _ = run("info", url, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert seen[1].startswith("/api/models/org/mod%20%C3%A9l")


def test_a_malformed_next_page_link_is_a_network_error() -> None:
    from test_hub import hub

    page = answer(200, b'[{"id": "a/b"}]', {"Link": '<http://[::1/next>; rel="next"'})
    with hostile({"/api/models": page}) as (url, _):
        h, _ = hub(url)
        from hfa.errors import NetworkError

        with pytest.raises(NetworkError, match="malformed URL in a next-page link"):
            h.search_models(limit=5)


def test_endless_empty_pages_end_the_listing() -> None:
    from test_hub import hub

    with hostile({"/api/models": answer(200, b"[]", {"Link": '</api/models?p=2>; rel="next"'})}) as (url, seen):
        h, _ = hub(url)
        assert h.search_models(limit=5) == []
    assert len(seen) == 1


# -- 5. shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (info_doc(siblings={"a.bin": {"size": 1}}), "'siblings' is not a list"),
        (info_doc(siblings=None), "'siblings' is not a list"),
        (info_doc(siblings=["a.bin"]), "'siblings[0]' is not an object"),
        (info_doc(siblings=[{"rfilename": 7, "size": 1, "blobId": BLOB}]), "'siblings[0].rfilename' is not a string"),
        (info_doc(siblings=[{"rfilename": "a", "size": 1, "blobId": BLOB, "lfs": []}]), "'siblings[0].lfs' is not"),
        (info_doc(cardData=["x"]), "'cardData' is not dict"),
        (info_doc(gated=3), "'gated' is not bool or str"),
        (info_doc(private="yes"), "'private' is not bool"),
    ],
    ids=["siblings-object", "siblings-null", "sibling-string", "rfilename-int", "lfs-list", "card", "gated", "private"],
)
def test_a_repo_info_of_the_wrong_shape_is_a_clear_error(tmp_path: Path, doc: bytes, field: str) -> None:
    """Was: `"siblings": {…}` read as an empty repo, exit 0."""
    with hostile({INFO: answer(200, doc)}) as (url, seen):
        result, _ = run("pull", url, tmp_path)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert field in result.stderr and "'org/model'" in result.stderr
    assert not [p for p in seen if "/resolve/" in p]


# -- 6. paths that cannot coexist --------------------------------------------------------------------


def test_a_file_and_a_folder_of_one_name_are_refused_naming_both(tmp_path: Path) -> None:
    """Was: exit 6 naming a temp file, after downloading."""
    sib = [
        {"rfilename": "x.json", "size": len(DATA), "blobId": BLOB},
        {"rfilename": "x.json/y.json", "size": len(DATA), "blobId": BLOB},
    ]
    with hostile({INFO: answer(200, info_doc(siblings=sib)), "/org/model/resolve/": file_route()}) as (url, seen):
        result, _ = run("pull", url, tmp_path)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "'x.json' and 'x.json/y.json'" in result.stderr
    assert not [p for p in seen if "/resolve/" in p]  # refused before anything is downloaded


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["a", "b/c"], None),
        (["a/b/c", "a/b"], ("a/b", "a/b/c")),
        (["a", "a/b/c"], ("a", "a/b/c")),
        (["ab", "a/b", "a.b/c"], None),
    ],
)
def test_path_conflict(paths: list[str], expected: tuple[str, str] | None) -> None:
    from hfa.hub.client import path_conflict

    assert path_conflict(paths) == expected


# -- what still holds --------------------------------------------------------------------------------


def test_the_speed_rule_never_fires_on_a_fast_pull(server, tmp_path: Path) -> None:
    result = hfa(
        "pull", "org/model", "--endpoint", server.url, "--cache-dir", str(tmp_path / "c"),
        env={"HFA_MIN_SPEED": "1000", "HFA_MIN_SPEED_TIME": "1"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_a_server_that_says_nothing_at_all_ends_at_the_api_deadline(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # accepts connections (the kernel does), never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result, took = run("info", url, tmp_path, HFA_API_DEADLINE="1", HFA_MAX_RETRIES="3")
    finally:
        listener.close()
    assert result.exit_code == ExitCode.NETWORK, result.stderr
    assert "did not arrive within 1 s" in result.stderr
    assert took < 4


def test_a_shard_index_nested_deep_is_a_clear_error(tmp_path: Path) -> None:
    """A repository's own JSON is parsed with the same bound: a deep index is "not valid JSON", not exit 70."""
    index = b'{"weight_map": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    blob = hashlib.sha1(b"blob %d\0" % len(index) + index).hexdigest()
    sib = [
        {"rfilename": "model.safetensors.index.json", "size": len(index), "blobId": blob},
        {"rfilename": "model-00001-of-00001.safetensors", "size": len(DATA), "blobId": BLOB},
    ]
    routes = {INFO: answer(200, info_doc(siblings=sib)), "/org/model/resolve/": file_route(index)}
    with hostile(routes) as (url, _):
        result, _ = run("pull", url, tmp_path)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "'model.safetensors.index.json' is not valid JSON (JSON nested 50001 levels deep" in result.stderr
