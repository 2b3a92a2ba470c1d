"""`hfa offline status|env|run`: readiness per locked repo, the offline environment quoted for each
shell, and running a job with it (and with no network at all where Linux allows it)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import hfa

from hfa.errors import ExitCode
from hfa.lock import lockfile
from hfa.offline import NoNetworkUnavailable, no_network_prefix, offline_env, render_env
from hfa.server import HubServer


@pytest.fixture
def pulled(server: HubServer, tmp_path: Path) -> tuple[Path, Path]:
    """(lock, cache) with org/model and datasets/org/data pinned and pulled."""
    lock, cache = tmp_path / "hfa.lock", tmp_path / "cache"
    assert hfa("pin", "org/model", "datasets/org/data", "--endpoint", server.url, "--lock", str(lock)).exit_code == 0
    assert hfa("pull", "--endpoint", server.url, "--lock", str(lock), "--cache-dir", str(cache)).exit_code == 0
    return lock, cache


def status(lock: Path, cache: Path, *extra: str):  # type: ignore[no-untyped-def]
    return hfa("offline", "status", "--lock", str(lock), "--cache-dir", str(cache), *extra)


def test_status_ready(pulled: tuple[Path, Path]) -> None:
    lock, cache = pulled
    result = status(lock, cache, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ready"] is True
    assert {(r["id"], r["type"], r["state"]) for r in doc["repos"]} == {
        ("org/model", "model", "ready"),
        ("org/data", "dataset", "ready"),
    }
    human = status(lock, cache)
    assert human.exit_code == 0 and "org/model" in human.stdout and "ready" in human.stdout
    assert "Ready: 2 repo(s)" in human.stderr


def test_status_missing_and_corrupt(pulled: tuple[Path, Path]) -> None:
    lock, cache = pulled
    entry = lockfile.read(lock).get("org/model")
    assert entry is not None
    snap = cache / "models--org--model" / "snapshots" / entry.commit
    (snap / "config.json").unlink()
    blob = Path(os.path.realpath(snap / "model.safetensors"))
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x01")  # same size, wrong content
    result = status(lock, cache, "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    doc = json.loads(result.stdout)
    model = next(r for r in doc["repos"] if r["id"] == "org/model")
    assert model["state"] == "missing"
    assert model["missing"] == ["config.json"] and model["corrupt"] == ["model.safetensors"]
    data = next(r for r in doc["repos"] if r["id"] == "org/data")
    assert data["state"] == "ready"
    human = status(lock, cache)
    assert human.exit_code == 1 and "not ready" in human.stderr and "hfa pull --lock" in human.stderr


def test_not_ready_hints_name_the_cache_given_and_work_when_pasted(server: HubServer, tmp_path: Path) -> None:
    # The hints said `hfa pull --lock L` without --cache-dir: pasted, they filled the default cache,
    # and the status stayed "missing"
    import shlex

    lock, cache = tmp_path / "hfa.lock", tmp_path / "elsewhere"
    assert hfa("pin", "org/model", "--endpoint", server.url, "--lock", str(lock)).exit_code == 0
    result = status(lock, cache)
    assert result.exit_code == ExitCode.CHECK_FAILED
    hint = result.stderr.split("run `", 1)[1].split("`", 1)[0]
    assert hint == f"hfa pull --lock {lock} --cache-dir {cache}"
    ran = hfa("offline", "run", "--lock", str(lock), "--cache-dir", str(cache), "--", "true")
    assert f"`hfa pull --lock {lock} --cache-dir {cache}`" in ran.stderr
    assert f"`hfa offline status --lock {lock} --cache-dir {cache}`" in ran.stderr
    assert hfa(*shlex.split(hint)[1:], "--endpoint", server.url).exit_code == 0
    assert status(lock, cache).exit_code == 0


def test_status_whole_repo_missing(server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    assert hfa("pin", "org/model", "--endpoint", server.url, "--lock", str(lock)).exit_code == 0
    result = status(lock, tmp_path / "empty", "--json")
    assert result.exit_code == 1
    (repo,) = json.loads(result.stdout)["repos"]
    assert repo["state"] == "missing" and "config.json" in repo["missing"]


def test_status_without_a_lock(tmp_path: Path) -> None:
    result = status(tmp_path / "nope.lock", tmp_path / "c")
    assert result.exit_code == ExitCode.USAGE and "No lock file" in result.stderr


# -- env -------------------------------------------------------------------------------------------

WEIRD = 'my cache/it\'s "here" $HOME `x` \\ ‘q’'


def test_env_evaluates_in_bash(tmp_path: Path) -> None:
    cache = tmp_path / WEIRD
    result = hfa("offline", "env", "--cache-dir", str(cache))
    assert result.exit_code == 0, result.stderr
    script = result.stdout + 'printf "%s\\0" "$HF_HUB_CACHE" "$HF_HUB_OFFLINE" "$TRANSFORMERS_OFFLINE"'
    script += ' "$HF_DATASETS_OFFLINE" "$HF_HUB_DISABLE_TELEMETRY"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={"PATH": os.environ["PATH"]})
    values = out.stdout.decode().split("\0")[:-1]
    assert values == [str(cache), "1", "1", "1", "1"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_env_evaluates_in_other_shells(shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    cache = tmp_path / WEIRD
    text = render_env(offline_env(cache), shell)
    script = text + ("printf '%s' $HF_HUB_CACHE" if shell == "fish" else 'printf "%s" "$HF_HUB_CACHE"')
    out = subprocess.run([shell, "-c", script], capture_output=True, check=True)
    assert out.stdout.decode() == str(cache)


def test_env_quoting_per_shell() -> None:
    env = {"HF_HUB_CACHE": "/a b/it's"}
    assert render_env(env, "bash") == "export HF_HUB_CACHE='/a b/it'\"'\"'s'\n"
    assert render_env(env, "zsh") == render_env(env, "bash")
    assert render_env(env, "fish") == "set -gx HF_HUB_CACHE '/a b/it\\'s'\n"
    assert render_env({"X": "a\\b'c\u2019"}, "fish") == "set -gx X 'a\\\\b\\'c\u2019'\n"
    assert render_env({"X": "it's \u2018q\u2019 $x"}, "powershell") == "$env:X = 'it''s \u2018\u2018q\u2019\u2019 $x'\n"


def test_env_names_and_json(tmp_path: Path) -> None:
    result = hfa("offline", "env", "--cache-dir", str(tmp_path / "c"), "--json")
    doc = json.loads(result.stdout)
    assert doc["env"]["HF_HUB_CACHE"] == str(tmp_path / "c")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        assert doc["env"][name] == "1"
    ps = hfa("offline", "env", "--cache-dir", str(tmp_path / "c"), "--shell", "powershell")
    assert ps.exit_code == 0 and "$env:HF_HUB_OFFLINE = '1'" in ps.stdout
    bad = hfa("offline", "env", "--shell", "tcsh")
    assert bad.exit_code == ExitCode.USAGE and "bash, zsh, fish, powershell" in bad.stderr


def test_env_relative_cache_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    doc = json.loads(hfa("offline", "env", "--cache-dir", "rel", "--json").stdout)
    assert doc["env"]["HF_HUB_CACHE"] == str(tmp_path / "rel")


# -- run -------------------------------------------------------------------------------------------

PROBE = (
    "import os, sys, json; json.dump({k: os.environ.get(k) for k in"
    " ('HF_HUB_OFFLINE', 'HF_HUB_CACHE', 'TRANSFORMERS_OFFLINE')}, open(sys.argv[1], 'w')); sys.exit(int(sys.argv[2]))"
)


def test_run_passes_env_and_exit_code(pulled: tuple[Path, Path], tmp_path: Path) -> None:
    lock, cache = pulled
    out = tmp_path / "env.json"
    args = ["offline", "run", "--lock", str(lock), "--cache-dir", str(cache), "--", sys.executable, "-c", PROBE]
    result = hfa(*args, str(out), "7")
    assert result.exit_code == 7, result.stderr
    assert json.loads(out.read_text()) == {
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "TRANSFORMERS_OFFLINE": "1",
    }
    assert hfa(*args, str(out), "0").exit_code == 0


def test_run_loads_with_huggingface_hub_offline(pulled: tuple[Path, Path], tmp_path: Path) -> None:
    lock, cache = pulled
    out = tmp_path / "path.txt"
    code = (
        "import sys; from huggingface_hub import snapshot_download;"
        " open(sys.argv[1], 'w').write(snapshot_download('org/model'))"
    )
    env = {"HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens: only the cache can answer
    args = ["offline", "run", "--lock", str(lock), "--cache-dir", str(cache), "--", sys.executable, "-c", code]
    result = hfa(*args, str(out), env=env)
    assert result.exit_code == 0, result.stderr
    assert Path(out.read_text(), "config.json").is_file()


def test_run_takes_the_command_without_dashes_and_leaves_its_options_to_it(
    pulled: tuple[Path, Path], tmp_path: Path
) -> None:
    # `hfa offline run python -c CODE` was "No such option: -c" (exit 2): options after the command's
    # first word are the command's, as `uv run` and `env` take them, even ones hfa has itself.
    lock, cache = pulled
    out = tmp_path / "argv.json"
    code = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    args = ["offline", "run", "--lock", str(lock), "--cache-dir", str(cache), sys.executable, "-c", code]
    result = hfa(*args, str(out), "--lock", "x", "-q", "--", "y")
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text()) == ["--lock", "x", "-q", "--", "y"]


def test_run_refuses_when_not_ready(pulled: tuple[Path, Path], tmp_path: Path) -> None:
    lock, cache = pulled
    entry = lockfile.read(lock).get("org/model")
    assert entry is not None
    (cache / "models--org--model" / "snapshots" / entry.commit / "config.json").unlink()
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w')"
    result = hfa("offline", "run", "--lock", str(lock), "--cache-dir", str(cache), "--", sys.executable, "-c", code)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "not run" in result.stderr and "org/model@main (missing)" in result.stderr
    assert not marker.exists()


def test_run_usage_errors(pulled: tuple[Path, Path]) -> None:
    lock, cache = pulled
    none = hfa("offline", "run", "--lock", str(lock), "--cache-dir", str(cache))
    assert none.exit_code == ExitCode.USAGE and "hfa offline run python train.py" in none.stderr
    missing = hfa("offline", "run", "--lock", str(lock), "--cache-dir", str(cache), "--", "no-such-command-hfa")
    assert missing.exit_code == ExitCode.USAGE and "Command not found: no-such-command-hfa" in missing.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_run_passes_sigterm_to_the_command(pulled: tuple[Path, Path], tmp_path: Path) -> None:
    # A CI runner cancelling a job sends SIGTERM to hfa: it ended hfa alone and left the command
    # running, orphaned. Now the command gets it, and hfa exits as the command did (128+15).
    import os
    import signal
    import subprocess
    import time

    lock, cache = pulled
    pid_file, done = tmp_path / "pid", tmp_path / "done"
    code = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[2], 'w').write('term'), sys.exit(3)))\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "time.sleep(30)\n"
    )
    args = ["offline", "run", "--lock", str(lock), "--cache-dir", str(cache), "--", sys.executable, "-c", code]
    proc = subprocess.Popen([sys.executable, "-m", "hfa", *args, str(pid_file), str(done)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, "the command did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 3  # the command's own exit code: it handled SIGTERM
        assert done.read_text() == "term"
        child = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pid_file.exists() and pid_file.read_text():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _namespaces_work() -> bool:
    try:
        no_network_prefix()
    except NoNetworkUnavailable:
        return False
    return True


class _Listener:
    """A TCP server on loopback that accepts and closes: reachable unless the network is gone."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        self.sock.close()


CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5).close()\n"
    "except OSError as exc:\n"
    "    print(exc, file=sys.stderr); sys.exit(3)\n"
)


def test_run_no_network_blocks_a_loopback_connect(pulled: tuple[Path, Path]) -> None:
    # Linux lets an unprivileged process (and root) make user+network namespaces here; where it does
    # not, this fails rather than skips (the tests with no unshare on PATH cover the refusal)
    assert _namespaces_work(), "user+network namespaces are not available on this machine"
    lock, cache = pulled
    listener = _Listener()
    try:
        base = ["offline", "run", "--lock", str(lock), "--cache-dir", str(cache)]
        with_net = hfa(*base, "--", sys.executable, "-c", CONNECT, str(listener.port))
        assert with_net.exit_code == 0, with_net.stderr  # the server is reachable normally
        without = hfa(*base, "--no-network", "--", sys.executable, "-c", CONNECT, str(listener.port))
        assert without.exit_code == 3, without.stderr  # the job's connect failed
    finally:
        listener.close()


def test_run_no_network_unavailable_never_runs(
    pulled: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock, cache = pulled
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # no unshare
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w')"
    args = ["offline", "run", "--no-network", "--lock", str(lock), "--cache-dir", str(cache)]
    result = hfa(*args, "--", sys.executable, "-c", code)
    assert result.exit_code == ExitCode.LOCAL
    assert "--no-network needs `unshare`" in result.stderr
    assert not marker.exists()


def test_no_network_refused_when_namespaces_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "unshare"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    with pytest.raises(NoNetworkUnavailable, match="Operation not permitted"):
        no_network_prefix()
