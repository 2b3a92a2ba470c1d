"""File modes: everything hfa creates honours the umask as open() would, and hfa serve says what it cannot read.

A cache seeded by one user (root, a CI job) and served by another (docs/air-gapped.md's
systemd unit runs ``User=hfa``) must be readable by that other user whenever the umask
allows: files 0o666 and folders 0o777, less the umask, as huggingface_hub's own cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import World
from helpers import hfa

from hfa.cache.layout import atomic_write_bytes, atomic_write_text
from hfa.server import HubServer, ServerConfig


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """relative path -> permission bits of every file and folder under ``root`` (links skipped)."""
    out: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            st = full.lstat()
            if not stat.S_ISLNK(st.st_mode):
                out[full.relative_to(root).as_posix()] = stat.S_IMODE(st.st_mode)
    return out


def wrong_modes(root: Path, mask: int) -> dict[str, str]:
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    wrong = {}
    for rel, mode in modes(root).items():
        want = want_dir if (root / rel).is_dir() else want_file
        if mode != want:
            wrong[rel] = f"{mode:o} (want {want:o})"
    return wrong


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077], ids=lambda m: f"umask{m:03o}")
def test_atomic_writes_get_the_mode_open_gives(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        atomic_write_text(tmp_path / "sub" / "a.txt", "text")
        atomic_write_bytes(tmp_path / "b.bin", b"\0")
        with open(tmp_path / "plain", "w") as fp:  # what open() gives, the reference
            fp.write("x")
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666 & ~mask
    assert wrong_modes(tmp_path, mask) == {}
    assert (tmp_path / "sub" / "a.txt").read_text() == "text"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.bin", "plain", "sub"]  # no temporaries left


def _seed(tmp: Path, server: HubServer, mask: int) -> dict[str, Path]:
    """pull, pin, export, import --write-lock, verify --sarif and a test-built repo, all under ``mask``."""
    work, cache, imported = tmp / "work", tmp / "cache", tmp / "imported"
    work.mkdir()
    with umask(mask):
        env = {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(cache)}
        lock = work / "hfa.lock"
        result = hfa("pin", "org/model", "--lock", str(lock), env=env)
        assert result.exit_code == 0, result.stderr
        result = hfa("pull", "--lock", str(lock), env=env)
        assert result.exit_code == 0, result.stderr
        result = hfa("pull", "org/model@v1.0", env=env)
        assert result.exit_code == 0, result.stderr
        bundle = work / "models.tar"
        result = hfa("export", "--lock", str(lock), "-o", str(bundle), env=env)
        assert result.exit_code == 0, result.stderr
        result = hfa("import", str(bundle), "--write-lock", str(work / "imported.lock"), "--cache-dir", str(imported))
        assert result.exit_code == 0, result.stderr
        result = hfa("verify", "--lock", str(lock), "--sarif", str(work / "out.sarif"), env=env)
        assert result.exit_code == 0, result.stderr
        from hfa.testing import write_repo

        write_repo(tmp / "built", "org/built", {"a.txt": b"a", "w.safetensors": b"\0" * 64})
    return {"work": work, "cache": cache, "imported": imported, "built": tmp / "built"}


@pytest.mark.parametrize("mask", [0o022, 0o002], ids=lambda m: f"umask{m:03o}")
def test_everything_hfa_creates_honours_the_umask(tmp_path: Path, server: HubServer, mask: int) -> None:
    made = _seed(tmp_path, server, mask)
    cache = made["cache"]
    # The files the issue names are there (the check below covers them and everything else).
    folder = cache / "models--org--model"
    assert (folder / "refs" / "main").is_file()
    assert list((folder / ".hfa" / "trees").glob("*.json"))
    assert list((folder / "blobs").iterdir())
    assert (made["work"] / "out.sarif").is_file() and (made["work"] / "imported.lock").is_file()
    for name, root in made.items():
        assert wrong_modes(root, mask) == {}, name


def test_a_file_served_but_unreadable_is_logged(tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """For any user: a ref and a blob the server cannot open are logged with the reason, not a silent 404."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("hfa.serve")
    logger.addHandler(handler)
    real_read_text, real_open = Path.read_text, Path.open

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self.parts[-2:] == ("refs", "main") and "models--org--model" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    def path_open(self: Path, *args: object, **kwargs: object) -> object:
        if self.parent.name == "blobs" and "models--gpt-tiny" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(Path, "open", path_open)
    try:
        with HubServer(ServerConfig(cache_dir=world.cache_dir)) as srv:
            kw = {"endpoint": srv.url, "cache_dir": tmp_path / "client"}
            with pytest.raises(RevisionNotFoundError):
                hf_hub_download("org/model", "config.json", **kw)  # type: ignore[arg-type]
            with pytest.raises(EntryNotFoundError):
                hf_hub_download("gpt-tiny", "config.json", **kw)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records]
    ref = world.cache_dir / "models--org--model" / "refs" / "main"
    assert any(f"cannot read {ref} (Permission denied)" in line and "chmod -R a+rX" in line for line in lines), lines
    assert any("models--gpt-tiny/blobs/" in line and "Permission denied" in line for line in lines), lines
    assert sum(str(ref) in line for line in lines) == 1  # once per path, however many requests


# -- the real thing: serve a root-seeded cache as a different user ------------------------------------
_DAC_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _drop_file_capabilities() -> None:  # pragma: no cover - runs in the child before exec
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _stranger_can_run() -> str | None:
    """Why the stranger test cannot run here, or None."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux (to hand the cache to another owner and serve it without root's file rights)"
    probe = subprocess.run(
        [sys.executable, "-c", "open('/proc/self/status').read()"],
        preexec_fn=_drop_file_capabilities,
        capture_output=True,
        check=False,
    )
    return None if probe.returncode == 0 else f"cannot drop capabilities here: {probe.stderr[-200:]!r}"


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


@pytest.mark.slow
def test_root_seeded_cache_served_as_another_user(tmp_path: Path, world: World, server: HubServer) -> None:
    """docs/air-gapped.md's setup: root pulls, pins and imports under umask 022; another user serves the cache.

    The cache is handed to another owner (nobody) and ``hfa serve`` runs as root without the
    capabilities that let root read any file: to the server, exactly another user's cache.
    """
    reason = _stranger_can_run()
    if reason:
        pytest.skip(reason)
    from huggingface_hub import hf_hub_download, snapshot_download

    made = _seed(tmp_path, server, 0o022)
    for name in ("cache", "imported"):
        shutil.copy2(made["work"] / "hfa.lock", made[name] / "hfa.lock")  # nobody's files, not root's
        _chown_tree(made[name], 65534, 65534)
    for name in ("cache", "imported"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(made[name]), "--port", "0", "-v"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_drop_file_capabilities,
        )
        try:
            url = proc.stdout.readline().strip()  # type: ignore[union-attr]
            assert url.startswith("http://127.0.0.1:"), proc.stderr.read()  # type: ignore[union-attr]
            path = hf_hub_download("org/model", "config.json", endpoint=url, cache_dir=tmp_path / f"client-{name}")
            assert Path(path).read_bytes() == world.contents["org/model@v2"]["config.json"]
            snap = Path(snapshot_download("org/model", endpoint=url, cache_dir=tmp_path / f"c2-{name}"))
            got = {p.relative_to(snap).as_posix(): p.read_bytes() for p in snap.rglob("*") if p.is_file()}
            assert "model.safetensors" in got
            assert all(world.contents["org/model@v2"][rel] == data for rel, data in got.items())
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=20)
        assert "cannot read" not in err, err


@pytest.mark.slow
def test_serve_logs_why_another_users_file_is_unreadable(tmp_path: Path, world: World) -> None:
    """A cache an older hfa seeded (refs 0600): the server answers as before, and says why on stderr."""
    reason = _stranger_can_run()
    if reason:
        pytest.skip(reason)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RevisionNotFoundError

    cache = tmp_path / "cache"
    shutil.copytree(world.cache_dir, cache, symlinks=True)
    ref = cache / "models--org--model" / "refs" / "main"
    ref.chmod(0o600)
    _chown_tree(cache, 65534, 65534)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(cache), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_drop_file_capabilities,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        with pytest.raises(RevisionNotFoundError):
            hf_hub_download("org/model", "config.json", endpoint=url, cache_dir=tmp_path / "client")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert f"cannot read {ref} (Permission denied)" in err, err
