"""Every command's `--help` as a reader sees it at 80 columns: paragraphs wrap as one text (typer's
rich help keeps a paragraph's own line breaks, so a docstring wrapped at 100 columns printed ragged),
and a bracketed name such as `[infer.tasks]` is printed, not taken for rich markup and dropped."""

from __future__ import annotations

import re

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from hfa.cli.app import app


def _commands() -> list[tuple[list[str], object]]:
    found: list[tuple[list[str], object]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        elif path:
            found.append((path, cmd))

    walk(get_command(app), [])
    return found


COMMANDS = _commands()
MARKUP_LIKE = re.compile(r"\[[a-z][\w.]*\]")  # what rich would read as a style tag


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_paragraphs_are_single_lines(path: list[str], cmd: object) -> None:
    ragged = [p for p in (getattr(cmd, "help", None) or "").split("\n\n") if "\n" in p.strip()]
    assert ragged == [], f"hfa {' '.join(path)}: a paragraph keeps its line breaks: {ragged[0][:120]!r}"


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_bracketed_names_survive_rich_markup(path: list[str], cmd: object) -> None:
    texts = [getattr(cmd, "help", None) or ""] + [getattr(p, "help", None) or "" for p in getattr(cmd, "params", [])]
    raw = " ".join(texts).replace("\\[", "[")
    wanted = set(MARKUP_LIKE.findall(raw))
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    missing = [w for w in sorted(wanted) if w not in shown]
    assert missing == [], f"hfa {' '.join(path)} --help lost {missing}"
