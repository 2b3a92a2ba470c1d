"""`hfa --help` without typer (hfa.cli.plainhelp) writes exactly what typer's rich help writes, from
the same table; wherever it cannot be sure (a terminal, forced colour, text rich would lay out
otherwise) it declines and typer prints the help."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import entry_code, run_child
from typer.main import get_command

from hfa.cli import app as app_module
from hfa.cli import plainhelp
from hfa.cli.commands import COMMANDS, SUMMARIES


def _typers_help(width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        get_command(app_module.app).main(["--help"], prog_name="hfa", standalone_mode=False)
    return buf.getvalue()


def test_plain_help_equals_typers_at_every_width(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in plainhelp.STYLED_ENV:
        monkeypatch.delenv(var, raising=False)
    rendered = 0
    for width in range(20, 241):
        try:
            mine = plainhelp.render("hfa", width)
        except plainhelp.Decline:
            assert width < 60, width  # narrow terminals only: rich shrinks the first columns there
            continue
        assert mine == _typers_help(width, monkeypatch), width
        rendered += 1
    assert rendered > 180


def _run(argv: list[str], env: dict[str, str], module: str = "hfa.cli.entry") -> tuple[int, str, list[str]]:
    rc, out, _, loaded = run_child(module, argv, env, prog="/some/bin/hfa")
    return rc, out, loaded


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*plainhelp.STYLED_ENV, "TTY_COMPATIBLE")}
    return {**env, **extra}


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_console_script_help_skips_typer_and_matches_the_full_cli(flag: str) -> None:
    for width in ("64", "100"):
        rc, fast, loaded = _run([flag], _env(COLUMNS=width))
        assert (rc, loaded) == (0, [])
        rc_full, full, loaded_full = _run([flag], _env(COLUMNS=width), module="hfa.cli.app")
        assert rc_full == 0 and "typer" in loaded_full
        assert fast == full


def test_width_comes_from_columns_else_a_terminal_else_80(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*plainhelp.STYLED_ENV, "TTY_COMPATIBLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    monkeypatch.setenv("COLUMNS", "91")
    assert plainhelp.console_width() == 91
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: (_ for _ in ()).throw(OSError()))
    assert plainhelp.console_width() == 80
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((123, 40)))
    assert plainhelp.console_width() == 123


@pytest.mark.parametrize(
    "env",
    [
        {"FORCE_COLOR": "1"},
        {"FORCE_COLOR": ""},
        {"PY_COLORS": "1"},
        {"GITHUB_ACTIONS": "true"},
        {"TTY_COMPATIBLE": "1"},
    ],
)
def test_declines_where_typer_would_style_the_help(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert plainhelp.root_help() is None


def test_declines_on_a_terminal_and_on_a_stream_that_is_not_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*plainhelp.STYLED_ENV, "TTY_COMPATIBLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(plainhelp, "program_name", lambda: "hfa")  # not `python -m pytest`

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Tty())
    assert plainhelp.root_help() is None
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert plainhelp.root_help() is None
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert plainhelp.root_help() is not None


def test_styled_help_still_comes_from_typer() -> None:
    rc, out, loaded = _run(["--help"], _env(COLUMNS="100", FORCE_COLOR="1"))
    assert rc == 0 and "typer" in loaded and "\x1b[" in out


@pytest.mark.parametrize(
    "text",
    [
        "a [bold]tag[/bold]",
        "an :smile: code",
        "wide 漢字",
        "e\u0301",
        "tab\there",
        "two\nlines",
        "x" * 300,
        "a \\\\[b]",
    ],
)
def test_declines_text_rich_would_lay_out_otherwise(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SUMMARIES, "search", text)
    with pytest.raises(plainhelp.Decline):
        plainhelp.render("hfa", 100)


def test_declines_a_usage_line_click_would_wrap() -> None:
    with pytest.raises(plainhelp.Decline):
        plainhelp.render("python -m some.long.package", 100)


def test_program_name_is_clicks(monkeypatch: pytest.MonkeyPatch) -> None:
    main = type(sys)("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["/usr/bin/hfa", "--help"])
    assert plainhelp.program_name() == "hfa"
    main.__package__ = "hfa"
    monkeypatch.setattr(sys, "argv", ["/src/hfa/__main__.py", "--help"])
    assert plainhelp.program_name() == "python -m hfa"


def test_an_escaped_bracket_is_a_bracket() -> None:
    assert plainhelp._plain("REPO\\[@REV]…") == "REPO[@REV]…"


def test_every_command_has_one_summary_and_its_help_starts_with_it() -> None:
    assert set(SUMMARIES) == set(COMMANDS)
    root = get_command(app_module.app)
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        assert (cmd.help or "").startswith(SUMMARIES[name]), name


def test_a_closed_stdout_ends_quietly_with_141(tmp_path: Path) -> None:
    code = entry_code("hfa.cli.entry", ["--help"], prog="/some/bin/hfa")
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(COLUMNS="100"),
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the help is written
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 or b"@@ 141" in err, err
    assert b"Traceback" not in err and b"Error" not in err
