"""The CLI frame through typer's CliRunner: exit codes, stdout/stderr separation, --json, secrets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOKEN, World
from typer.testing import CliRunner

from hfa import __version__
from hfa.cli.app import app
from hfa.errors import EXIT_CODES, ExitCode
from hfa.server import HubServer

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"hfa {__version__}"


def test_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("search", "serve"):
        assert name in result.stdout


@pytest.mark.parametrize("command", ["search", "serve"])
def test_every_command_has_help_and_common_options(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    for option in ("--endpoint", "--cache-dir", "--token", "--offline", "--json", "--quiet", "--verbose"):
        assert option in result.stdout, f"{command} lacks {option}"


def test_unknown_option_is_usage_error() -> None:
    result = invoke("search", "--no-such-option")
    assert result.exit_code == 2


def test_search_table_is_plain_when_piped(server: HubServer) -> None:
    result = invoke("search", "--endpoint", server.url, "--sort", "likes", "--limit", "3")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["id", "task", "library", "downloads", "likes", "last modified"]
    ids = [line.split("\t")[0] for line in lines[1:]]
    assert ids == ["gpt-tiny", "org/model", "other/thing"]
    assert "╭" not in result.stdout and "\x1b[" not in result.stdout
    assert result.stderr == ""


def test_search_json_is_one_document_on_stdout(server: HubServer) -> None:
    result = invoke("search", "model", "--endpoint", server.url, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [m["id"] for m in doc["models"]] == ["org/model"]
    model = doc["models"][0]
    assert model["pipeline_tag"] == "text-classification"
    assert model["library_name"] == "transformers"
    # The sidecar says 10; the session server adds the downloads other tests made.
    assert model["downloads"] >= 10 and model["likes"] == 2
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--author", "other"], ["other/thing"]),
        (["--task", "text-generation"], ["other/thing"]),
        (["--library", "gguf"], ["other/thing"]),
        (["--sort", "likes", "--limit", "1"], ["gpt-tiny"]),
    ],
)
def test_search_filters(server: HubServer, args: list[str], expected: list[str]) -> None:
    result = invoke("search", *args, "--endpoint", server.url, "--json")
    assert result.exit_code == 0, result.stderr
    assert [m["id"] for m in json.loads(result.stdout)["models"]] == expected


def test_search_private_repo_needs_token(server: HubServer) -> None:
    anonymous = json.loads(invoke("search", "private", "--endpoint", server.url, "--json").stdout)
    assert anonymous["models"] == []
    result = invoke("search", "private", "--endpoint", server.url, "--json", "--token", TOKEN)
    assert [m["id"] for m in json.loads(result.stdout)["models"]] == ["org/private"]


def test_search_endpoint_from_environment(server: HubServer) -> None:
    result = invoke("search", "gpt", "--json", env={"HF_ENDPOINT": server.url})
    assert result.exit_code == 0, result.stderr
    assert [m["id"] for m in json.loads(result.stdout)["models"]] == ["gpt-tiny"]


def test_no_match_says_so_on_stderr(server: HubServer) -> None:
    result = invoke("search", "zzz-nothing", "--endpoint", server.url)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No models matched" in result.stderr


def test_bad_endpoint_is_usage_error() -> None:
    result = invoke("search", "--endpoint", "ftp://example")
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert result.stderr.startswith("Error: Invalid endpoint")
    assert "—" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_sort_is_usage_error(server: HubServer) -> None:
    result = invoke("search", "--endpoint", server.url, "--sort", "size")
    assert result.exit_code == ExitCode.USAGE
    assert "Unknown sort 'size'" in result.stderr


def test_unreachable_endpoint_is_network_error() -> None:
    result = invoke("search", "--endpoint", f"http://127.0.0.1:{closed_port()}", "--json")
    assert result.exit_code == ExitCode.NETWORK
    assert json.loads(result.stdout)["error"]["code"] == "network"  # --json: the error document
    assert result.stderr.startswith("Error: Could not reach the endpoint")
    assert "Traceback" not in result.stderr


def test_offline_search_searches_the_cache_not_the_endpoint() -> None:
    # offline, `hfa search` answers from the cache and the lock (docs/offline.md), never the endpoint
    for env in ({"HF_HUB_OFFLINE": "1"}, None):
        args = ["search", "--endpoint", "http://127.0.0.1:9"] + ([] if env else ["--offline"])
        result = invoke(*args, env=env)
        assert result.exit_code == ExitCode.OK, result.stderr
        assert "Could not reach" not in result.stderr and "matched" in result.stderr


def test_token_never_printed_even_with_debug() -> None:
    secret = "hf_SuperSecretToken_0123456789"
    url = f"http://127.0.0.1:{closed_port()}"
    for env in (None, {"HFA_DEBUG": "1"}, {"HF_TOKEN": secret, "HFA_DEBUG": "1"}):
        args = ["search", "--endpoint", url, "-v"] + ([] if env and "HF_TOKEN" in env else ["--token", secret])
        result = invoke(*args, env=env)
        assert result.exit_code == ExitCode.NETWORK
        assert secret not in result.stdout and secret not in result.stderr
    debug = invoke("search", "--endpoint", url, "--token", secret, env={"HFA_DEBUG": "1"})
    assert "Traceback" in debug.stderr


@pytest.mark.parametrize("bad", ["hf_abc\nhf_def", "hf_abc def", "hf_abc\x07", "hf_\u00e9t\u00e9"])
@pytest.mark.parametrize("where", ["option", "env", "file"])
def test_a_token_no_header_can_carry_is_refused_without_echoing_it(tmp_path: Path, bad: str, where: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    token_file = tmp_path / "token"
    token_file.write_text(bad + "\n", encoding="utf-8")
    env = {"HF_TOKEN": bad} if where == "env" else {"HF_TOKEN_PATH": str(token_file)} if where == "file" else None
    args = ["search", "--endpoint", url] + (["--token", bad] if where == "option" else [])
    result = invoke(*args, env=env)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "token holds spaces, line breaks" in result.stderr
    assert "hf_abc" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_a_broken_token_file_does_not_stop_commands_that_send_no_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("hf_abc\nhf_def\n", encoding="utf-8")
    result = invoke("cache", "ls", "--cache-dir", str(tmp_path / "cache"), env={"HF_TOKEN_PATH": str(token_file)})
    assert result.exit_code == 0, result.stderr


def test_serve_missing_cache_dir_is_usage_error(tmp_path: Path) -> None:
    result = invoke("serve", "--cache-dir", str(tmp_path / "nope"), "--port", "0")
    assert result.exit_code == ExitCode.USAGE
    assert "does not exist" in result.stderr


def test_serve_bad_auth_file_is_usage_error(tmp_path: Path, world: World) -> None:
    bad = tmp_path / "auth.toml"
    bad.write_text("[repos]\n'x' = 'secret-ish'\n")
    result = invoke("serve", "--cache-dir", str(world.cache_dir), "--port", "0", "--auth", str(bad))
    assert result.exit_code == ExitCode.USAGE
    assert "unknown access" in result.stderr


def test_serve_subprocess_prints_url_first_and_stops_on_sigterm(world: World) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(world.cache_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")
        result = invoke("search", "gpt", "--endpoint", url, "--json")
        assert [m["id"] for m in json.loads(result.stdout)["models"]] == ["gpt-tiny"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from hfa.cli.app import app; "
        "heavy = [m for m in ('huggingface_hub', 'httpx2', 'httpx', 'yaml', 'safetensors') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_every_exit_code_has_a_documented_meaning() -> None:
    """A code added to ExitCode (as 7, pending, was) must reach the table docs/cli.md is generated from."""
    assert sorted(d.code for d in EXIT_CODES) == sorted(ExitCode)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    summary = readme[readme.index("Exit codes are stable") :][:400]
    for code in ExitCode:
        if code not in (ExitCode.INTERNAL, ExitCode.INTERRUPTED):  # the README names the ones a user acts on
            assert f"{code.value} " in summary, f"README's exit-code line lacks {code.value}"


def test_exit_code_table_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    for entry in EXIT_CODES:
        assert f"| {entry.code.value} | `{entry.code.name.lower()}` | {entry.meaning} |" in doc


def test_cli_reference_is_current() -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_cli_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
