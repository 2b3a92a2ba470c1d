"""``hfa offline``: is everything a lock names here and sound, the environment that keeps the
Hugging Face libraries off the network, and running a command in it (optionally with no network).

* :func:`readiness` -- per locked repo (dependencies are plain ``[[repo]]`` entries): ready,
  missing files or corrupt files, from :func:`hfa.verify.verify_lock` (every file hashed);
* :func:`offline_env` and :func:`render_env` -- ``HF_HUB_OFFLINE=1``, ``HF_HUB_CACHE=…`` and
  friends, quoted for bash, zsh, fish or PowerShell;
* :func:`no_network_prefix` -- the argv prefix that runs a command in new user and network
  namespaces (``unshare --user --net --map-root-user``), checked to work before anything runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.errors import LocalError, UsageError
from hfa.lock.lockfile import Lock, LockedRepo

__all__ = [
    "CORRUPT",
    "MISSING",
    "OFFLINE_FLAGS",
    "READY",
    "SHELLS",
    "NoNetworkUnavailable",
    "RepoStatus",
    "no_network_prefix",
    "offline_env",
    "readiness",
    "render_env",
    "run_command",
]

READY = "ready"
MISSING = "missing"  # some locked file (or the whole commit) is not in the cache
CORRUPT = "corrupt"  # some locked file is there but does not hash to the locked hash
SHELLS = ("bash", "zsh", "fish", "powershell")

_MISSING_CODES = ("lock.missing-repo", "lock.missing-file")
_CORRUPT_CODES = ("hash.mismatch", "file.unreadable")


@dataclass
class RepoStatus:
    """What the cache holds of one locked repo."""

    entry: LockedRepo
    missing: list[str] = field(default_factory=list)  # repo paths
    corrupt: list[str] = field(default_factory=list)
    bytes_hashed: int = 0

    @property
    def state(self) -> str:
        return MISSING if self.missing else CORRUPT if self.corrupt else READY

    @property
    def ready(self) -> bool:
        return self.state == READY

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.entry.repo_id,
            "type": self.entry.repo_type,
            "revision": self.entry.revision,
            "commit": self.entry.commit,
            "state": self.state,
            "files": len(self.entry.files),
            "missing": self.missing,
            "corrupt": self.corrupt,
        }


def readiness(cache_dir: Path, lock: Lock, *, workers: int | None = None) -> list[RepoStatus]:
    """Every locked repo's state in ``cache_dir``: each locked file present and hashing to the locked hash.

    The hashing is :func:`hfa.verify.verify_lock`'s (no content scan: readiness is about presence
    and integrity); one repo at a time, so each finding belongs to the repo it is about.
    """
    from hfa.scan.model import ScanPolicy
    from hfa.verify import verify_lock

    out: list[RepoStatus] = []
    for entry in lock.repos:
        report = verify_lock(cache_dir, Lock((entry,)), ScanPolicy(), scan=False, workers=workers)
        status = RepoStatus(entry, bytes_hashed=report.bytes_hashed)
        for finding in report.findings:
            if finding.code == "lock.missing-repo":
                status.missing = [f.path for f in entry.files] or ["(the locked commit)"]
            elif finding.code in _MISSING_CODES:
                status.missing.append(_repo_path(finding.path))
            elif finding.code in _CORRUPT_CODES:
                status.corrupt.append(_repo_path(finding.path))
        status.missing = sorted(set(status.missing))
        status.corrupt = sorted(set(status.corrupt))
        out.append(status)
    return out


def _repo_path(display: str) -> str:
    """``org/name@0123456789ab/sub/file`` -> ``sub/file`` (verify's display of a locked file)."""
    _, _, rest = display.partition("@")
    return rest.partition("/")[2] or display


# -- the environment ---------------------------------------------------------------------------

# What keeps huggingface_hub, transformers, datasets, evaluate, diffusers, sentence-transformers
# and friends on the cache and off the network (diffusers and sentence-transformers read HF_HUB_*).
OFFLINE_FLAGS = (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("HF_DATASETS_OFFLINE", "1"),
    ("HF_EVALUATE_OFFLINE", "1"),
    ("HF_HUB_DISABLE_TELEMETRY", "1"),
    ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"),
    ("DO_NOT_TRACK", "1"),
)


def offline_env(cache_dir: Path) -> dict[str, str]:
    """The variables, in a fixed order: the cache (absolute, so it holds from any folder), then the flags."""
    return {"HF_HUB_CACHE": os.path.abspath(os.path.expanduser(str(cache_dir))), **dict(OFFLINE_FLAGS)}


def _posix_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _fish_quote(value: str) -> str:
    # fish single quotes: only \\ and \' are escapes inside them
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# PowerShell takes the typographic single quotes as quotes too: each is doubled like '.
_PS_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")


def _powershell_quote(value: str) -> str:
    for q in _PS_QUOTES:
        value = value.replace(q, q + q)
    return "'" + value + "'"


def render_env(env: dict[str, str], shell: str) -> str:
    """``env`` as lines ``eval`` (or ``Invoke-Expression``, or fish's ``source``) takes in ``shell``."""
    if shell not in SHELLS:
        raise UsageError(f"Unknown shell '{shell}'", f"use one of: {', '.join(SHELLS)}")
    for name, value in env.items():
        if "\0" in value:
            raise UsageError(f"{name} holds a NUL character, which no shell can carry", "use another --cache-dir")
    if shell == "fish":
        lines = [f"set -gx {k} {_fish_quote(v)}" for k, v in env.items()]
    elif shell == "powershell":
        lines = [f"$env:{k} = {_powershell_quote(v)}" for k, v in env.items()]
    else:
        lines = [f"export {k}={_posix_quote(v)}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


# -- no network ----------------------------------------------------------------------------------

NO_NETWORK_HINT = (
    "run without --no-network, or on Linux with util-linux's `unshare` and unprivileged user namespaces"
    " (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)"
)
UNSHARE_ARGS = ("--user", "--net", "--map-root-user")
PROBE_TIMEOUT = 10.0


class NoNetworkUnavailable(LocalError):
    """``--no-network`` was asked for and this machine cannot drop the network (exit 6); nothing ran."""


def no_network_prefix() -> list[str]:
    """``[unshare, --user, --net, --map-root-user, --]``, once a probe has shown it works here.

    Raises :class:`NoNetworkUnavailable` when it cannot (no ``unshare``, not Linux, namespaces
    disabled): the caller must not run the command with the network instead.
    """
    import sys

    if not sys.platform.startswith("linux"):
        raise NoNetworkUnavailable(f"--no-network needs Linux namespaces; this is {sys.platform}", NO_NETWORK_HINT)
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NoNetworkUnavailable("--no-network needs `unshare` (util-linux), which is not on PATH", NO_NETWORK_HINT)
    try:
        probe = subprocess.run(
            [unshare, *UNSHARE_ARGS, "--", "true"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NoNetworkUnavailable(f"--no-network: `unshare` cannot run here ({exc})", NO_NETWORK_HINT) from None
    if probe.returncode != 0:
        why = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = why[-1][:200] if why else f"exit {probe.returncode}"
        raise NoNetworkUnavailable(
            f"--no-network: this machine does not let an unprivileged process make a network namespace ({reason})",
            NO_NETWORK_HINT,
        )
    return [unshare, *UNSHARE_ARGS, "--"]


def run_command(argv: list[str], env: dict[str, str]) -> int:
    """Run ``argv`` with ``env`` added to this process's environment; its exit code (128+N if killed by signal N)."""
    if not argv:
        raise UsageError("No command to run", "put it after `--`, e.g. hfa offline run -- python train.py")
    try:
        child = subprocess.Popen(argv, env={**os.environ, **env})
    except FileNotFoundError:
        raise UsageError(f"Command not found: {argv[0]}", "check the command after `--` and your PATH") from None
    except PermissionError:
        raise UsageError(f"Cannot run {argv[0]}: permission denied", "check that it is executable") from None
    with _forwarding_signals(child):
        code = child.wait()
    return 128 - code if code < 0 else code


# What a supervisor (a CI runner cancelling a job, systemd, kill) sends hfa reaches the command:
# without this, SIGTERM ended hfa alone and left the command running, orphaned. SIGINT is the
# terminal's: it reaches the command (same process group) by itself, so hfa only waits for it.
_FORWARDED = ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


@contextlib.contextmanager
def _forwarding_signals(child: subprocess.Popen[bytes]) -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield
        return

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            child.send_signal(signum)

    saved: dict[int, Any] = {}
    for name in _FORWARDED:
        signum = getattr(signal, name, None)
        if signum is not None:
            saved[signum] = signal.signal(signum, forward)
    saved[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
