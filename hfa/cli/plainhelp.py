"""``hfa --help`` without typer or rich: the bytes typer's rich help writes, from the same table.

Why: importing typer and the rich help machinery (typer.rich_utils pulls rich.markdown,
markdown_it, rich.traceback and pygments) is most of ``hfa --help``'s time; the text itself
is a dozen lines. The console script (hfa.cli.entry) asks :func:`root_help` first; it answers
only where typer's rich help would write plain text (stdout not a terminal, no variable forcing
colour, a UTF-8 stream) and every line can be laid out exactly as rich lays it out; None
otherwise, and the full CLI prints the help. Everything printed comes from hfa.cli.commands,
the table the typer app is built from (the summaries, the app's help, --version's help).

The layout mirrors typer 0.29's ``rich_format_help`` as rich renders it: the usage line and
the app's help padded by one column, then two rounded panels whose tables give the first
columns their natural widths and the last one the rest, text wrapped as rich wraps it (a word
with its trailing space; a word that does not fit starts a line). What rich would fold or
cut with an ellipsis (a word wider than its column), markup beyond an escaped ``\\[``, emoji
codes, wide or combining characters, and a usage line click would wrap make this decline.
tests/test_plainhelp.py compares it with typer's output at every width from 20 to 240.
"""

from __future__ import annotations

import os
import re
import sys

from hfa.cli.commands import APP_HELP, SUMMARIES, VERSION_HELP, listed

HELP_HELP = "Show this message and exit."  # click's text for -h/--help
# typer's texts for the completion options it adds (hfa.cli.app builds the app with add_completion)
INSTALL_COMPLETION_HELP = "Install completion for the current shell."
SHOW_COMPLETION_HELP = "Show completion for the current shell, to copy it or customize the installation."
USAGE_ARGS = "[OPTIONS] COMMAND [ARGS]..."  # what the root group's usage pieces make
# Variables that make typer/rich write escape codes, or set the width another way.
STYLED_ENV = ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TERMINAL_WIDTH", "JUPYTER_COLUMNS")
_EMOJI = re.compile(r":\S*:")
_WORD = re.compile(r"\s*\S+\s*")


class Decline(Exception):
    """This text cannot be laid out exactly as rich would: let typer print the help."""


def _plain(markup: str) -> str:
    """``markup`` as rich's Text.from_markup shows it, for the subset hfa's help uses."""
    if "\x1b" in markup or "\t" in markup or "\n" in markup or _EMOJI.search(markup):
        raise Decline
    text = markup.replace("\\[", "[")
    if text.count("[") != markup.count("\\[") or "\\" in text:
        raise Decline  # a tag, or a backslash rich might treat otherwise
    for ch in text:
        o = ord(ch)
        if not (0x20 <= o < 0x7F or 0xA0 <= o < 0x300 or 0x2010 <= o <= 0x2027):
            raise Decline  # a character rich may measure as wide, or zero-width
    return text


def _wrap(text: str, width: int) -> list[str]:
    """rich's word wrap of ``text`` at ``width`` (rich.\\_wrap.divide_line), lines right-stripped."""
    lines: list[str] = []
    line = ""
    for match in _WORD.finditer(text):
        word = match.group(0)
        if len(word.rstrip()) > width:
            raise Decline  # rich would fold or truncate it
        if len(line) + len(word.rstrip()) <= width:
            line += word
        else:  # line is not empty: the word alone fits
            lines.append(line.rstrip())
            line = word
    lines.append(line.rstrip())
    return lines


def _panel(title: str, rows: list[tuple[str, str]], lead: int, width: int) -> list[str]:
    """A rounded panel of ``width`` whose table shows ``lead`` columns of fixed text, then wrapped help."""
    inner = width - 4  # borders and the panel's padding
    help_width = inner - lead
    if help_width < 20:  # rich shrinks the first columns of a narrow table instead (measured: 13-18 differ)
        raise Decline
    out = ["╭─" + f" {title} ".ljust(width - 4, "─") + "─╮"]
    for head, help_text in rows:
        for i, line in enumerate(_wrap(_plain(help_text), help_width)):
            out.append("│ " + ((head if i == 0 else "").ljust(lead) + line).ljust(inner) + " │")
    out.append("╰" + "─" * (width - 2) + "╯")
    return out


def render(prog: str, width: int) -> str:
    """The root help of ``prog`` at ``width`` columns, as typer prints it without a terminal."""
    usage = f"Usage: {prog} {USAGE_ARGS}"
    if len(usage) > 50 or width < 20:
        raise Decline  # click would wrap the usage line
    blank = " " * width
    lines = [blank]
    lines += [f" {line}".ljust(width) for line in _wrap(usage, width - 2)]
    lines += [blank]
    lines += [f" {line}".ljust(width) for line in _wrap(_plain(APP_HELP), width - 2)]
    lines += [blank]
    # Options: long names, short names, (secondary long, secondary short, type: empty), help.
    options = [
        ("--version", "-V", VERSION_HELP),
        ("--install-completion", "", INSTALL_COMPLETION_HELP),
        ("--show-completion", "", SHOW_COMPLETION_HELP),
        ("--help", "-h", HELP_HELP),
    ]
    long_w = max(len(o[0]) for o in options)
    short_w = max(len(o[1]) for o in options)
    # Each column but the first is padded one space each side: long, short, three empty, help.
    rows = [(f"{long.ljust(long_w)}  {short.ljust(short_w)} {' ' * 6} ", text) for long, short, text in options]
    lines += _panel("Options", rows, long_w + short_w + 10, width)
    names = listed()
    name_w = max(len(n) for n in names)
    lines += _panel("Commands", [(n.ljust(name_w) + "  ", SUMMARIES[n]) for n in names], name_w + 2, width)
    return "\n".join(lines) + "\n\n"  # click echoes the empty string rich_format_help returns


def console_width() -> int | None:
    """The width rich's Console would take here, or None when it would write escape codes."""
    env = os.environ
    if any(name in env for name in STYLED_ENV) or env.get("TTY_COMPATIBLE") == "1":
        return None
    try:
        if sys.stdout.isatty():
            return None
        encoding = (sys.stdout.encoding or "").lower()
    except (AttributeError, ValueError):
        return None
    if not encoding.startswith("utf"):
        return None  # rich would draw ASCII boxes
    columns = env.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns)
    width = None
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    return width or 80


def program_name() -> str:
    """click's name for the running program (``hfa``, or ``python -m hfa``)."""
    main = sys.modules.get("__main__")
    package = getattr(main, "__package__", None)
    path = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if package in (None, ""):
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    module = package if name == "__main__" else f"{package}.{name}"
    return f"python -m {module.lstrip('.')}"


def root_help() -> str | None:
    """``hfa --help`` as typer would print it here, or None where only typer can say."""
    width = console_width()
    if width is None:
        return None
    try:
        return render(program_name(), width)
    except Decline:
        return None


def print_root_help() -> bool:
    """Print ``hfa --help`` if :func:`root_help` can say it exactly; False: it cannot, nothing written.

    stdout closed by its reader (``hfa --help | head -1``) ends the process as the typer path does.
    """
    text = root_help()
    if text is None:
        return False
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        from hfa.errors import ExitCode
        from hfa.output import silence

        silence(sys.stdout)
        sys.exit(int(ExitCode.STDOUT_CLOSED))
    return True
