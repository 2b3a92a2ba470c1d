"""The one output object: terminals get rich output and progress; pipes and --json get neither."""

from __future__ import annotations

import io
import json

import pytest

from hfa.output import Output


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal() -> None:
    assert Output(stderr=io.StringIO()).progress().__enter__() is None
    assert Output(stderr=Tty(), json_mode=True).progress().__enter__() is None
    assert Output(stderr=Tty(), quiet=1).progress().__enter__() is None
    err = Tty()
    with Output(stderr=err, stdout=io.StringIO()).progress(transient=False) as bar:
        task = bar.add_task("files 1/2", total=2_000_000)
        bar.update(task, advance=1_000_000)
    text = err.getvalue()
    assert "files 1/2" in text and "1.0/2.0 MB" in text


def test_table_plain_when_piped_and_rich_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = io.StringIO()
    Output(stdout=piped).table(["a", "b"], [["1", "x"]])
    assert piped.getvalue() == "a\tb\n1\tx\n"
    tty = Tty()
    monkeypatch.setenv("NO_COLOR", "1")
    Output(stdout=tty).table(["a", "b"], [["1", "x"]])
    assert "┃" in tty.getvalue() or "│" in tty.getvalue()
    assert "\x1b[" not in tty.getvalue()  # NO_COLOR honoured


def test_json_mode_writes_one_document_and_nothing_else() -> None:
    out = io.StringIO()
    o = Output(stdout=out, json_mode=True)
    o.line("ignored")
    o.table(["a"], [["1"]])
    o.emit_json({"k": 1})
    assert json.loads(out.getvalue()) == {"k": 1}
    with pytest.raises(RuntimeError):
        o.emit_json({"again": True})


def test_secrets_are_redacted_everywhere() -> None:
    out, err = io.StringIO(), io.StringIO()
    o = Output(stdout=out, stderr=err)
    o.add_secret("hf_abcdef123456")
    o.line("token hf_abcdef123456")
    o.error("bad hf_abcdef123456")
    o.table(["t"], [["hf_abcdef123456"]])
    assert "hf_abcdef123456" not in out.getvalue() + err.getvalue()
    assert "***" in out.getvalue() and "***" in err.getvalue()


def test_quiet_and_verbose_levels() -> None:
    err = io.StringIO()
    Output(stderr=err, quiet=1).info("hidden")
    Output(stderr=err, quiet=1).warn("shown")
    Output(stderr=err, quiet=2).warn("hidden too")
    Output(stderr=err).debug("hidden debug")
    Output(stderr=err, verbose=1).debug("shown debug")
    assert err.getvalue() == "Warning: shown\ndebug: shown debug\n"


def test_human_size_in_decimal_units() -> None:
    from hfa.output import human_size

    assert [human_size(n) for n in (0, 999, 1000, 1_500_000, 10**15)] == [
        "0 B",
        "999 B",
        "1.0 KB",
        "1.5 MB",
        "1000.0 TB",
    ]
