"""What every hfa command pays before and after its work stays small (issue 18): the console
script freezes the collector's objects when the command is done, so the interpreter's last
collection skips them; a ``NO_PROXY`` alone (no proxy named) does not import urllib.request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfa.hub import transport

RUN = """
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write("@@ frozen %d\\n" % gc.get_freeze_count()))
sys.argv = ["hfa", *sys.argv[1:]]
from hfa.cli.entry import main
main()
"""


@pytest.mark.parametrize("argv", [["--version"], ["scan", "{file}", "-q"], ["scan", "{file}", "--nope"]])
def test_the_console_script_freezes_the_collector_when_done(argv: list[str], tmp_path: Path) -> None:
    file = tmp_path / "config.json"
    file.write_text("{}")
    args = [a.format(file=file) for a in argv]
    proc = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, timeout=120)
    frozen = int(proc.stderr.rsplit("@@ frozen ", 1)[1].split()[0])
    assert frozen > 1000, proc.stderr  # every object the command's imports made
    assert proc.returncode == (2 if "--nope" in argv else 0)  # its exit code untouched, errors too


PROXY = """
import sys
from hfa.hub import transport
print(transport.proxy_for("http", "127.0.0.1"), "urllib.request" in sys.modules)
"""


def _proxy_run(env: dict[str, str]) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.run([sys.executable, "-c", PROXY], capture_output=True, text=True, env={**base, **env})
    return proc.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="elsewhere proxies live in the system settings")
def test_no_proxy_alone_names_no_proxy_and_imports_nothing() -> None:
    assert _proxy_run({"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1"}) == ["None", "False"]
    assert _proxy_run({}) == ["None", "False"]
    assert _proxy_run({"HTTP_PROXY": "http://proxy.invalid:3128"}) == ["http://proxy.invalid:3128", "True"]
    assert _proxy_run({"HTTP_PROXY": "http://proxy.invalid:3128", "NO_PROXY": "127.0.0.1"}) == ["None", "True"]


def test_proxy_names() -> None:
    assert transport._names_a_proxy("https_proxy") and transport._names_a_proxy("ALL_PROXY")
    assert not transport._names_a_proxy("NO_PROXY") and not transport._names_a_proxy("no_proxy")
    assert not transport._names_a_proxy("PROXY")
