"""`hfa verify` and `hfa scan` on caches, locks and folders; --fix; SARIF; exit codes."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import pytest
from conftest import World
from helpers import corrupt_blobs, hfa

from hfa.errors import ExitCode
from hfa.server import HubServer
from hfa.testing import lfs_pointer_stub, make_safetensors, write_repo

FOLDER = "models--org--model"


@pytest.fixture
def pulled(server: HubServer, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    assert hfa("pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache)).exit_code == 0
    return cache


def verify(cache: Path, *args: str, url: str = "http://127.0.0.1:9"):
    return hfa("verify", *args, "--cache-dir", str(cache), "--endpoint", url)


def test_clean_cache_verifies(pulled: Path) -> None:
    result = verify(pulled, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["blobs_hashed"] == 4 and doc["failed"] is False
    assert doc["repos"] == ["org/model"]
    human = verify(pulled)
    assert human.exit_code == 0 and "no findings" in human.stderr


def _blob(cache: Path, length: int) -> Path:
    return next(p for p in (cache / FOLDER / "blobs").iterdir() if len(p.name) == length)


def test_corrupt_blob_same_size_is_critical(pulled: Path) -> None:
    blob = _blob(pulled, 64)
    data = bytearray(blob.read_bytes())
    data[-10] ^= 1  # in the tensor data: same size, valid header, wrong hash
    blob.write_bytes(bytes(data))
    result = verify(pulled, "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    doc = json.loads(result.stdout)
    codes = {f["code"]: f for f in doc["findings"]}
    assert codes["hash.mismatch"]["severity"] == "critical"
    assert "model.safetensors" in codes["hash.mismatch"]["message"]
    assert "1 finding(s) at or above 'high'" in result.stderr


def test_broken_and_escaping_links(pulled: Path, world: World, tmp_path: Path) -> None:
    snap = pulled / FOLDER / "snapshots" / world.commits["org/model@v2"]
    _blob(pulled, 40)  # exists
    (snap / "config.json").unlink()
    os.symlink("../../blobs/" + "f" * 40, snap / "config.json")
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    os.symlink(secret, snap / "leak.txt")
    doc = json.loads(verify(pulled, "--json").stdout)
    by_code = {f["code"]: f for f in doc["findings"]}
    assert by_code["cache.broken-link"]["path"].endswith("/config.json")
    assert by_code["cache.link-escapes"]["severity"] == "critical"


def test_leftovers_refs_and_stale_locks(pulled: Path) -> None:
    (pulled / FOLDER / "blobs" / ("a" * 64 + ".incomplete")).write_bytes(b"partial")
    (pulled / FOLDER / "refs" / "gone").write_text("b" * 40)
    lock = pulled / ".locks" / FOLDER / ("c" * 64 + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    old = time.time() - 7200
    os.utime(lock, (old, old))
    result = verify(pulled, "--json")
    assert result.exit_code == 0  # low and info findings do not fail at the default level
    codes = {f["code"]: f["severity"] for f in json.loads(result.stdout)["findings"]}
    assert codes == {"cache.incomplete": "low", "cache.dangling-ref": "low", "cache.stale-lock": "info"}
    assert verify(pulled, "--fail-on", "low").exit_code == ExitCode.CHECK_FAILED


def test_verify_one_repo_and_unknown_repo(pulled: Path) -> None:
    assert verify(pulled, "org/model").exit_code == 0
    missing = verify(pulled, "org/absent")
    assert missing.exit_code == ExitCode.CHECK_FAILED and "hfa pull org/absent" in missing.stderr


def test_verify_lock(server: HubServer, tmp_path: Path) -> None:
    cache, lock = tmp_path / "cache", tmp_path / "hfa.lock"
    hfa("pin", "org/model", "--endpoint", server.url, "--lock", str(lock))
    hfa("pull", "--endpoint", server.url, "--lock", str(lock), "--cache-dir", str(cache))
    assert verify(cache, "--lock", str(lock)).exit_code == 0
    # An extra file (pulled ad hoc) is reported low; a missing locked file high.
    hfa("pull", "org/model", "--all", "--endpoint", server.url, "--cache-dir", str(cache))
    blob = _blob(cache, 40)
    blob.unlink()
    doc = json.loads(verify(cache, "--lock", str(lock), "--json").stdout)
    codes = sorted((f["code"], f["path"].rsplit("/", 1)[-1]) for f in doc["findings"])
    assert ("lock.extra-file", "big.bin") in codes
    assert any(c == "lock.missing-file" for c, _ in codes)


def test_fix_refetches_corrupt_and_missing(server: HubServer, pulled: Path) -> None:
    blob = _blob(pulled, 64)
    blob.write_bytes(b"\0" * blob.stat().st_size)
    result = hfa("verify", "--fix", "--cache-dir", str(pulled), "--endpoint", server.url, "--json")
    assert result.exit_code == 0, result.stderr
    assert "fixed org/model@" in result.stderr
    assert corrupt_blobs(pulled) == []
    assert json.loads(result.stdout)["failed"] is False


def test_fix_replaces_lfs_stubs_in_a_git_clone(server: HubServer, world: World, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    (clone / ".git" / "config").write_text('[remote "origin"]\n\turl = https://huggingface.co/org/model\n')
    (clone / ".git" / "HEAD").write_text(world.commits["org/model@v2"] + "\n")
    content = world.contents["org/model@v2"]["model.safetensors"]
    (clone / "model.safetensors").write_bytes(lfs_pointer_stub(content))
    (clone / "config.json").write_bytes(world.contents["org/model@v2"]["config.json"])
    before = hfa("verify", str(clone), "--json")
    assert before.exit_code == ExitCode.CHECK_FAILED
    assert [f["code"] for f in json.loads(before.stdout)["findings"]] == ["lfs.pointer-stub"]
    fixed = hfa("verify", str(clone), "--fix", "--endpoint", server.url)
    assert fixed.exit_code == 0, fixed.stderr
    assert "replaced LFS stub model.safetensors" in fixed.stderr
    assert (clone / "model.safetensors").read_bytes() == content


def test_fix_of_a_clone_at_a_commit_upstream_lacks_names_that_commit(
    server: HubServer, world: World, tmp_path: Path
) -> None:
    """It said "Revision 'main' not found": the clone's HEAD was asked for, but the message named main."""
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    (clone / ".git" / "config").write_text('[remote "origin"]\n\turl = https://huggingface.co/org/model\n')
    local = "0123456789abcdef0123456789abcdef01234567"  # a local commit, never pushed
    (clone / ".git" / "HEAD").write_text(local + "\n")
    (clone / "model.safetensors").write_bytes(lfs_pointer_stub(world.contents["org/model@v2"]["model.safetensors"]))
    result = hfa("verify", str(clone), "--fix", "--endpoint", server.url)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert local in result.stderr and "'main'" not in result.stderr


def test_scan_folder_cache_and_repo(pulled: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(lfs_pointer_stub(b"abc"))
    (folder / "ok.safetensors").write_bytes(make_safetensors({"a": ("F32", [2])}))
    result = hfa("scan", str(folder), "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    doc = json.loads(result.stdout)
    assert doc["files_scanned"] == 2 and [f["code"] for f in doc["findings"]] == ["lfs.pointer-stub"]
    assert hfa("scan", str(pulled)).exit_code == 0
    assert hfa("scan", "org/model", "--cache-dir", str(pulled)).exit_code == 0
    assert hfa("scan", "--cache-dir", str(pulled)).exit_code == 0
    nothing = hfa("scan", "no/such-thing", "--cache-dir", str(pulled))
    assert nothing.exit_code == ExitCode.USAGE


def test_sarif_output(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "m.bin").write_bytes(lfs_pointer_stub(b"abc"))
    sarif = tmp_path / "out.sarif"
    result = hfa("scan", str(folder), "--sarif", str(sarif), "--fail-on", "critical")
    assert result.exit_code == 0  # high < critical
    doc = json.loads(sarif.read_text())
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "hfa"
    assert run["results"][0]["ruleId"] == "lfs.pointer-stub" and run["results"][0]["level"] == "error"
    assert run["tool"]["driver"]["rules"][0]["id"] == "lfs.pointer-stub"


def test_bad_fail_on_level(tmp_path: Path) -> None:
    result = hfa("scan", str(tmp_path), "--fail-on", "severe")
    assert result.exit_code == ExitCode.USAGE and "Unknown severity" in result.stderr


def test_allowlist_extension_is_reported(tmp_path: Path) -> None:
    allow = tmp_path / "allow.toml"
    allow.write_text('allow = ["mypkg.Safe"]\n')
    folder = tmp_path / "f"
    folder.mkdir()
    result = hfa("scan", str(folder), "--allowlist", str(allow), "--json")
    assert result.exit_code == 0
    findings = json.loads(result.stdout)["findings"]
    assert findings[0]["code"] == "policy.allowlist-extended" and "mypkg.Safe" in findings[0]["message"]
    allow.write_text('allow = ["os system"]\n')
    assert hfa("scan", str(folder), "--allowlist", str(allow)).exit_code == ExitCode.USAGE


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pull_refuses_a_dangerous_pickle(tmp_path: Path) -> None:
    from hfa.server import ServerConfig

    served = tmp_path / "served"
    payload = pickle.dumps(_Evil(), protocol=2)
    write_repo(served, "bad/model", {"config.json": b"{}", "pytorch_model.bin": payload})
    with HubServer(ServerConfig(cache_dir=served)) as srv:
        cache = tmp_path / "cache"
        refused = hfa("pull", "bad/model", "--endpoint", srv.url, "--cache-dir", str(cache))
        assert refused.exit_code == ExitCode.CHECK_FAILED
        assert "pytorch_model.bin' is unsafe" in refused.stderr and "--allow-unsafe" in refused.stderr
        assert not [p for p in (cache / "models--bad--model" / "blobs").iterdir() if len(p.name) == 64]
        allowed = hfa("pull", "bad/model", "--allow-unsafe", "--endpoint", srv.url, "--cache-dir", str(cache))
        assert allowed.exit_code == 0, allowed.stderr
        assert "--allow-unsafe" in allowed.stderr and "critical" in allowed.stderr
