"""Text from outside reaches the terminal harmless: no URL password, no control sequence, no exit 70.

Found by attacking hfa as a hostile endpoint and a careless user would: an endpoint that is not
a URL crashed (exit 70), a refused endpoint was echoed with its password, and a server's error
message could retitle or clear the terminal (raw ESC / BEL bytes on stderr).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hfa.cli.app import app
from hfa.errors import ExitCode, public_url
from hfa.output import printable

SECRET = "S3cretPW"


def hfa(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "endpoint",
    [
        f"http://u:{SECRET}@[::1",  # not parseable: was an internal error (exit 70)
        "http://[::1",
        f"ftp://u:{SECRET}@127.0.0.1:1",  # refused scheme: was echoed whole
        f"u:{SECRET}@host",  # no scheme at all
        f"gopher://u:{SECRET}@host",
        f"http://u:{SECRET}@host?x=1",  # query refused
        "http://h:99999",  # port out of range: was a network error (exit 5)
        "http://h:abc",
        "http://u:p@",
    ],
)
@pytest.mark.parametrize("json_mode", [False, True])
def test_a_bad_endpoint_is_a_usage_error_that_never_shows_its_password(endpoint: str, json_mode: bool) -> None:
    args = ["info", "org/model", "--endpoint", endpoint] + (["--json"] if json_mode else [])
    result = hfa(*args)
    assert result.exit_code == ExitCode.USAGE, result.output  # type: ignore[attr-defined]
    assert "Invalid endpoint" in result.stderr  # type: ignore[attr-defined]
    assert SECRET not in result.stderr and SECRET not in result.stdout  # type: ignore[attr-defined]
    if json_mode:
        doc = json.loads(result.stdout)  # type: ignore[attr-defined]
        assert doc["error"]["exit_code"] == ExitCode.USAGE


def test_the_endpoint_variable_is_checked_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"ftp://u:{SECRET}@127.0.0.1:1")
    result = hfa("info", "org/model")
    assert result.exit_code == ExitCode.USAGE
    assert SECRET not in result.stderr  # type: ignore[attr-defined]


@given(
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=8),
    password=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$&'()*+,;=", min_size=6, max_size=16),
    scheme=st.sampled_from(["http://", "https://", "ftp://", "", "git+ssh://"]),
    host=st.sampled_from(["host", "127.0.0.1:8080", "[::1]", "[::1", "h:99999", ""]),
    tail=st.sampled_from(["", "/", "/org/name@rev", "?q=1", "/x#frag"]),
)
def test_public_url_never_keeps_a_password(user: str, password: str, scheme: str, host: str, tail: str) -> None:
    assert password not in public_url(f"{scheme}{user}:{password}@{host}{tail}")


def test_public_url_keeps_an_at_sign_that_is_not_userinfo() -> None:
    assert public_url("http://host/org/name@rev") == "http://host/org/name@rev"
    assert public_url("hf.co/org/name@v1") == "hf.co/org/name@v1"
    assert public_url("http://h/a?x=@y") == "http://h/a?x=@y"


@given(st.text())
def test_printable_leaves_no_control_character(text: str) -> None:
    import unicodedata

    shown = printable(text)
    bidi = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
    assert all(c in "\n\t" or (unicodedata.category(c) != "Cc" and c not in bidi) for c in shown), shown
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\t" not in printable(text, keep="") and "\n" not in printable(text, keep="")


def test_printable_leaves_ordinary_text_alone() -> None:
    assert printable("naïve 日本 text\twith tab\nand line") == "naïve 日本 text\twith tab\nand line"


@contextmanager
def hostile_endpoint(message: str) -> Iterator[str]:
    """An endpoint whose every answer is a 500 carrying ``message`` (as the Hub's error body and header)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_message_cannot_drive_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    with hostile_endpoint("\x1b]0;PWNED\x07\x1b[2Jhello\u202eevil") as url:
        result = hfa("info", "org/model", "--endpoint", url)
    assert result.exit_code == ExitCode.NETWORK, result.output  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "hello" in stderr
    assert "\x1b" not in stderr and "\x07" not in stderr and "\u202e" not in stderr
    assert "\\x1b]0;PWNED\\x07" in stderr  # shown, harmless


def test_a_lock_id_with_control_characters_is_refused_and_shown_escaped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lock = tmp_path / "hfa.lock"
    lock.write_text(
        'version = 1\n\n[[repo]]\nid = "acme/x\\u001b[2J"\ntype = "model"\nrevision = "main"\n'
        f'commit = "{"a" * 40}"\nfiles = []\n'
    )
    result = hfa("verify", "--lock", str(lock))
    assert result.exit_code == ExitCode.USAGE, result.output  # type: ignore[attr-defined]
    assert "\x1b" not in result.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["main", "v1.0", "refs/pr/1", "refs/convert/parquet", "release-2_x"])
def test_ref_names_git_accepts_are_accepted(name: str) -> None:
    from hfa.cache import check_ref_name

    assert check_ref_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "@", "a..b", "main.lock", ".hidden", "x/.y", "main/", "v1.", "a b", "a@{b", "a//b", "x\x1b"]
)
def test_ref_names_git_refuses_are_refused(name: str) -> None:
    from hfa.cache import check_ref_name
    from hfa.errors import UsageError

    with pytest.raises(UsageError):
        check_ref_name(name)
