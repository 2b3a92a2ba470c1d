"""What every hfa command promises at the command line, whatever the command does.

Positional arguments stay arguments on every supported Python; help reads like a CLI's
(no type labels on flags, usage lines in capitals); a closed stdout ends quietly; options
put before the command name get a hint; and ``--json`` holds on failure too: one JSON
document on stdout for every exit code.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from hfa.cli.app import app

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env=env)


def click_command(*path: str) -> Any:
    cmd: Any = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


# -- 1. optional positional arguments (Python 3.10 turned them into options) ---------------------

OPTIONAL_POSITIONALS = [
    ("pull", "repo"),
    ("pin", "repos"),
    ("search", "query"),
    ("scan", "targets"),
    ("verify", "target"),
    ("export", "repos"),
]


@pytest.mark.parametrize(("command", "name"), OPTIONAL_POSITIONALS)
def test_optional_positionals_are_arguments(command: str, name: str) -> None:
    params = {p.name: p for p in click_command(command).params}
    assert params[name].param_type_name == "argument"
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert f"--{name} " not in result.stdout
    assert f"--{name}\n" not in result.stdout


@pytest.mark.parametrize("command", ["pull", "search", "verify"])
def test_a_positional_is_accepted(command: str, tmp_path: Any) -> None:
    # Offline, nothing is reached: what matters is that parsing takes the positional.
    target = str(tmp_path) if command == "verify" else "org/model"
    result = invoke(command, target, "--offline", "--cache-dir", str(tmp_path / "c"))
    assert "unexpected extra argument" not in result.stderr
    assert result.exit_code != 2, result.stderr


def test_each_command_is_its_module_function_as_written() -> None:
    """What typer mounts is the function a reader sees: no wrapper, no rewritten signature."""
    import importlib

    from hfa.cli.app import COMMANDS, Group

    for name, (module_name, target) in COMMANDS.items():
        module = importlib.import_module(f"hfa.cli.{module_name}")
        subs = target.commands.items() if isinstance(target, Group) else [(None, target)]
        for sub, function in subs:
            fn = getattr(module, function)
            cmd = click_command(name, *([sub] if sub else []))
            assert getattr(cmd.callback, "__wrapped__", cmd.callback) is fn, (name, sub)  # typer's own wrapper
            assert not hasattr(fn, "__wrapped__") and "__signature__" not in vars(fn), (name, sub)
            written = list(inspect.signature(fn).parameters)
            assert [p.name for p in cmd.params if p.name != "help"] == written, (name, sub)


# -- 5. help reads like a CLI's -------------------------------------------------------------------


def help_text(*path: str) -> str:
    result = invoke(*path, "--help", env={"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.stdout


def every_command() -> list[tuple[str, ...]]:
    root = click_command()
    paths: list[tuple[str, ...]] = []
    for name, cmd in root.commands.items():
        subs = getattr(cmd, "commands", None)
        paths += [(name,), *((name, sub) for sub in subs)] if subs else [(name,)]  # a group's own help too
    return paths


@pytest.mark.parametrize("path", [(), *every_command()], ids=lambda p: " ".join(p) or "hfa")
def test_help_shows_flags_bare_and_arguments_in_capitals(path: tuple[str, ...]) -> None:
    text = help_text(*path)
    assert "<bool>" not in text
    assert "<list[" not in text  # a repeatable option or an argument of many shows its items' type: <str>
    for line in text.splitlines():
        if "--quiet" in line or "--verbose" in line:
            assert "<int>" not in line  # counting flags
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "[repo" not in usage and "[query]" not in usage
    if path:
        assert "[default: 0]" not in text


def test_quiet_and_verbose_say_they_repeat() -> None:
    lines = help_text("pull").splitlines()
    for flag in ("--quiet", "--verbose"):
        line = next(line for line in lines if flag in line)
        assert "repeatable" in line


@pytest.mark.parametrize(
    ("path", "usage"),
    [
        (("pull",), "hfa pull [OPTIONS] [REPO]"),
        (("pin",), "hfa pin [OPTIONS] [REPOS]..."),
        (("info",), "hfa info [OPTIONS] REPO"),
        (("import",), "hfa import [OPTIONS] FILE.tar"),
        (("cache", "rm"), "hfa cache rm [OPTIONS] TARGETS..."),
    ],
)
def test_usage_lines(path: tuple[str, ...], usage: str) -> None:
    assert usage in help_text(*path)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_answers_both_spellings(flag: str) -> None:
    from hfa import __version__

    result = invoke(flag)
    assert result.exit_code == 0
    assert result.stdout == f"hfa {__version__}\n"


def test_version_through_main_takes_the_short_path(tmp_path: Any) -> None:
    import subprocess
    import sys

    from hfa import __version__

    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "hfa", "-V"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == f"hfa {__version__}\n"
    assert "hfa.cli.search" not in done.stderr  # no command module mounted


# -- 4. common options before the command name ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["--endpoint", "http://127.0.0.1:9", "search", "bert"], "hfa search bert --endpoint http://127.0.0.1:9"),
        (["--offline", "pull", "org/model"], "hfa pull org/model --offline"),
        (["-q", "info", "org/m"], "hfa info org/m -q"),
        (["--cache-dir=/tmp/c", "verify"], "hfa verify --cache-dir=/tmp/c"),
        (["--json"], "hfa COMMAND --json"),
    ],
)
def test_common_option_before_the_command_gets_a_hint(args: list[str], suggestion: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    stderr = " ".join(result.stderr.replace("│", " ").split())  # unwrapped from typer's box
    assert f"No such option: {args[0].partition('=')[0]} — options go after the command name" in stderr
    assert f"`{suggestion}`" in stderr


def test_the_hint_never_shows_a_token() -> None:
    secret = "hf_hint_secret_0123456789"
    for args in (["--token", secret, "search", "x"], [f"--token={secret}", "search", "x", "--json"]):
        result = invoke(*args)
        assert result.exit_code == 2
        assert secret not in result.stdout + result.stderr
        assert "--token ***" in result.stdout + result.stderr or "--token=***" in result.stdout + result.stderr


def test_common_option_names_match_the_options() -> None:
    from hfa.cli.options import COMMON_FLAGS, COMMON_VALUE_OPTIONS

    cmd = click_command("search")
    common = [p for p in cmd.params if p.rich_help_panel == "Common options"]
    value = {o for p in common if not (p.is_flag or p.count) for o in p.opts}
    flags = {o for p in common if p.is_flag or p.count for o in p.opts}
    assert value == set(COMMON_VALUE_OPTIONS)
    assert flags == set(COMMON_FLAGS)


# -- 3. a closed stdout ends quietly --------------------------------------------------------------


def run_into_closed_pipe(*args: str) -> Any:
    """Run hfa with a stdout whose reader is already gone (`hfa … | head -0`), deterministically."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "hfa", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_closed_stdout_ends_quietly(server: Any, tmp_path: Any, extra: list[str]) -> None:
    done = run_into_closed_pipe("info", "org/model", "--endpoint", server.url, "--cache-dir", str(tmp_path), *extra)
    assert done.returncode == 141, done.stderr  # as coreutils killed by SIGPIPE; never 5 "Could not reach"
    assert done.stderr == ""


def test_help_into_a_closed_pipe_ends_quietly() -> None:
    done = run_into_closed_pipe("pull", "--help")
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


def test_a_broken_pipe_that_is_not_stdout_stays_a_network_error() -> None:
    import io

    from hfa.cli.options import run_guarded
    from hfa.output import Output

    out = Output(stdout=io.StringIO(), stderr=io.StringIO())

    def body() -> None:
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a socket the server closed mid-request

    with pytest.raises(typer.Exit) as exit_:
        run_guarded(out, body)
    assert exit_.value.exit_code == 5
    assert "Could not reach the endpoint" in out.stderr.getvalue()  # type: ignore[attr-defined]


def test_output_turns_a_closed_stdout_into_output_closed() -> None:
    from hfa.output import Output, OutputClosed

    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

        def isatty(self) -> bool:
            return False

    for call in (
        lambda out: out.line("x"),
        lambda out: out.table(["a"], [["1"]]),
        lambda out: out.emit_json({"a": 1}),
    ):
        with pytest.raises(OutputClosed):
            call(Output(stdout=Closed()))  # type: ignore[arg-type]


# -- 6. --json holds on failure: one document on stdout, for every exit code --------------------


def json_failure(result: Any, code: int, name: str) -> dict[str, Any]:
    import json

    assert result.exit_code == code, result.stderr
    doc = json.loads(result.stdout)  # exactly one document
    error = doc["error"]
    assert error["code"] == name and error["exit_code"] == code
    assert error["message"] and isinstance(error["details"], dict)
    assert error["message"] in result.stderr.replace("\n", " ") or error["message"][:30] in result.stderr
    return error


def test_json_check_failed_offline_pull_lists_missing_files(server: Any, tmp_path: Any) -> None:
    cache = str(tmp_path / "c")
    assert invoke("pull", "org/model", "--config-only", "--endpoint", server.url, "--cache-dir", cache).exit_code == 0
    result = invoke("pull", "org/model", "--offline", "--cache-dir", cache, "--json")
    error = json_failure(result, 1, "check_failed")
    assert sorted(error["details"]["missing"]) == ["model.safetensors", "sub/dir/notes.txt"]
    assert error["details"]["repo"] == "org/model" and len(error["details"]["commit"]) == 40
    assert "hfa pull org/model" in error["hint"]


@pytest.mark.parametrize(
    "args",
    [
        ["search", "--limit", "many", "--json"],  # click: bad value
        ["search", "--no-such-flag", "--json"],  # click: unknown option
        ["cache", "rm", "--json"],  # click: missing argument
        ["serach", "bert", "--json"],  # click: no such command
        ["search", "--endpoint", "ftp://example", "--json"],  # hfa's UsageError
        ["--json", "search"],  # a common option before the command
    ],
)
def test_json_usage_errors(args: list[str]) -> None:
    error = json_failure(invoke(*args), 2, "usage")
    assert error["hint"]


def test_json_usage_error_after_double_dash_is_not_json() -> None:
    result = invoke("search", "a", "b", "--", "--json")
    assert result.exit_code == 2 and result.stdout == ""


def test_json_not_found(server: Any, tmp_path: Any) -> None:
    result = invoke("info", "org/nope", "--endpoint", server.url, "--cache-dir", str(tmp_path), "--json")
    error = json_failure(result, 3, "not_found")
    assert error["details"] == {"repo_id": "org/nope", "repo_type": "model"}


def test_json_access_denied(server: Any, tmp_path: Any) -> None:
    result = invoke("pull", "org/gated", "--endpoint", server.url, "--cache-dir", str(tmp_path), "--json")
    error = json_failure(result, 4, "access_denied")
    assert error["details"]["repo_id"] == "org/gated"


def test_json_network() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = invoke("search", "--endpoint", f"http://127.0.0.1:{port}", "--json")
    error = json_failure(result, 5, "network")
    assert "--endpoint" in error["hint"]


def test_json_local(server: Any, tmp_path: Any) -> None:
    cache = tmp_path / "cache"
    (cache / "models--org--model").mkdir(parents=True)
    (cache / "models--org--model" / "blobs").write_text("a file where the blobs folder belongs")
    result = invoke("pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache), "--json")
    json_failure(result, 6, "local")


@pytest.mark.parametrize(
    ("raised", "code", "name"), [(RuntimeError("boom"), 70, "internal"), (KeyboardInterrupt(), 130, "interrupted")]
)
def test_json_internal_and_interrupted(
    monkeypatch: pytest.MonkeyPatch, raised: BaseException, code: int, name: str
) -> None:
    from hfa.config import Settings

    def resolve(*args: Any, **kwargs: Any) -> None:
        raise raised

    monkeypatch.setattr(Settings, "resolve", resolve)
    error = json_failure(invoke("search", "x", "--json"), code, name)
    if code == 70:
        assert "HFA_DEBUG=1" in error["hint"] and "boom" in error["message"]


def test_json_failure_after_the_result_adds_no_second_document(tmp_path: Any) -> None:
    import json

    (tmp_path / "bad.pkl").write_bytes(b"cos\nsystem\n(S'echo'\ntR.")  # never loaded: scanned
    result = invoke("scan", str(tmp_path), "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["failed"] is True and "error" not in doc


def test_json_failure_never_shows_the_token() -> None:
    secret = "hf_json_secret_0123456789"
    result = invoke("search", "--endpoint", f"http://user:{secret}@127.0.0.1:9", "--token", secret, "--json")
    assert secret not in result.stdout + result.stderr


def test_every_exit_code_is_in_the_json_contract_docs() -> None:
    from pathlib import Path

    from hfa.errors import EXIT_CODES

    text = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    assert '{"error": {"code":' in text
    for doc in EXIT_CODES:
        assert f"| {doc.code.value} | `{doc.code.name.lower()}` |" in text


@pytest.mark.parametrize(
    ("path", "shown"),
    [(("pull",), "REPO[@REVISION][:QUANT]"), (("scan",), "REPO[@REV] in the"), (("export",), "REPO[@REV] to export")],
)
def test_bracketed_syntax_survives_the_help_markup(path: tuple[str, ...], shown: str) -> None:
    """rich markup reads ``[@REV]`` as a tag and drops it: help escapes it, so users see the syntax."""
    assert shown in " ".join(help_text(*path).split())
