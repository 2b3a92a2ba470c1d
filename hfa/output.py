"""The one output object: human (rich on a terminal, plain when piped), JSON, or quiet.

Data goes to stdout, logs and progress to stderr, so ``hfa … --json | jq`` always
works. Every string written passes through :meth:`Output.redact`, so a token
handed to hfa never reaches any output. A stdout closed by its reader (``hfa … | head``)
raises :class:`OutputClosed`, which the CLI ends quietly on.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO, Any

# Text from outside (a server's error message, a repo id, a file name) may carry terminal
# control sequences that retitle or clear the user's terminal, or bidi overrides that make a
# name read as another: C0 and C1 controls, DEL and the bidi controls are shown as escapes.
_UNPRINTABLE = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNPRINTABLE}


def printable(text: str, *, keep: str = "\n\t") -> str:
    """``text`` with control characters (but those in ``keep``) written as ``\\xNN`` / ``\\uNNNN``."""
    if text.isprintable():
        return text
    table = _ESCAPES if not keep else {c: e for c, e in _ESCAPES.items() if chr(c) not in keep}
    return text.translate(table)


class OutputClosed(Exception):
    """stdout was closed by its reader: nobody reads what is left, so the command stops quietly."""


def stream_closed(stream: Any) -> bool:
    """True when ``stream`` is a pipe or socket whose reading end is gone (poll reports an error on it)."""
    import select

    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return False
    poller = select.poll()
    poller.register(fd, 0)  # errors and hang-ups are always reported
    try:
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except OSError:  # pragma: no cover
        return False


def silence(stream: Any) -> None:
    """Point ``stream``'s file descriptor at /dev/null, so the interpreter's last flush finds a reader."""
    try:
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError):
        return
    try:
        os.dup2(devnull, fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(devnull)


@contextmanager
def _to_stdout() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError as exc:
        raise OutputClosed() from exc


class Output:
    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: int = 0,
        verbose: int = 0,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self._secrets: set[str] = set()
        self._json_written = False
        self._out_console: Any = None
        self._err_console: Any = None

    # -- secrets -----------------------------------------------------------
    def add_secret(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._secrets.add(value)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def clean(self, text: str, *, keep: str = "\n\t") -> str:
        """``text`` redacted and made safe for a terminal (see :func:`printable`)."""
        return printable(self.redact(text), keep=keep)

    # -- terminals ---------------------------------------------------------
    @staticmethod
    def _isatty(stream: IO[str]) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def stdout_is_terminal(self) -> bool:
        return self._isatty(self.stdout)

    @property
    def stderr_is_terminal(self) -> bool:
        return self._isatty(self.stderr)

    @property
    def color(self) -> bool:
        return "NO_COLOR" not in os.environ

    def _console(self, err: bool) -> Any:
        from rich.console import Console

        attr = "_err_console" if err else "_out_console"
        if getattr(self, attr) is None:
            stream = self.stderr if err else self.stdout
            setattr(
                self,
                attr,
                Console(file=stream, no_color=not self.color, highlight=False, soft_wrap=not self._isatty(stream)),
            )
        return getattr(self, attr)

    # -- stdout: data ------------------------------------------------------
    def emit_json(self, document: Any) -> None:
        """Write the one JSON document of this command to stdout."""
        if self._json_written:
            raise RuntimeError("a command may write only one JSON document")
        self._json_written = True
        with _to_stdout():
            self.stdout.write(self.redact(json.dumps(document, indent=2, sort_keys=False, default=str)) + "\n")
            self.stdout.flush()

    @property
    def json_written(self) -> bool:
        """Whether this command's JSON document is out (a failure after it adds no second one)."""
        return self._json_written

    def result(self, document: Any, human: Callable[[], None]) -> None:
        """Emit a command's result: ``document`` as JSON with --json, else call ``human``."""
        if self.json_mode:
            self.emit_json(document)
        else:
            human()

    def line(self, text: str = "") -> None:
        """A line of human output on stdout (dropped under --json)."""
        if self.json_mode:
            return
        with _to_stdout():
            self.stdout.write(self.clean(text) + "\n")
            self.stdout.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        title: str | None = None,
        justify: dict[str, str] | None = None,
    ) -> None:
        """A rich table on a terminal; tab-separated lines with a header when piped."""
        if self.json_mode:
            return
        # a cell holds no tab or line break of its own: it would split the row when piped
        rows = [["" if cell is None else self.clean(str(cell), keep="") for cell in row] for row in rows]
        if not self.stdout_is_terminal:
            with _to_stdout():
                self.stdout.write("\t".join(columns) + "\n")
                for row in rows:
                    self.stdout.write("\t".join(row) + "\n")
                self.stdout.flush()
            return
        from rich.table import Table

        table = Table(title=title, header_style="bold" if self.color else None)
        for name in columns:
            table.add_column(name, justify=(justify or {}).get(name, "left"), overflow="fold")  # type: ignore[arg-type]
        for row in rows:
            table.add_row(*row)
        with _to_stdout():
            self._console(err=False).print(table)

    # -- stderr: logs --------------------------------------------------------
    def _log(self, prefix: str, message: str, style: str | None = None) -> None:
        text = self.clean(message)
        if self.stderr_is_terminal and self.color and style:
            self._console(err=True).print(f"[{style}]{prefix}[/{style}]{_escape(text)}")
        else:
            self.stderr.write(f"{prefix}{text}\n")
            self.stderr.flush()

    def info(self, message: str) -> None:
        if self.quiet <= 0:
            self._log("", message)

    def success(self, message: str) -> None:
        if self.quiet <= 0:
            self._log("", message, "green")

    def warn(self, message: str) -> None:
        if self.quiet <= 1:
            self._log("Warning: ", message, "yellow")

    def debug(self, message: str) -> None:
        if self.verbose > 0:
            self._log("debug: ", message, "dim")

    def error(self, message: str) -> None:
        self._log("Error: ", message, "bold red")

    def progress(self, *, transient: bool = True) -> AbstractContextManager[Any]:
        """A rich Progress on stderr when it is a terminal and output is not JSON or quiet.

        Columns: what (e.g. ``files 3/50``), a bar, bytes done of total, speed, time left.
        """
        if self.json_mode or self.quiet > 0 or not self.stderr_is_terminal:
            return nullcontext(None)
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console(err=True),
            transient=transient,
        )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def human_size(n: int) -> str:
    """``n`` bytes for people, in decimal units: ``512 B``, ``1.5 MB``."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
