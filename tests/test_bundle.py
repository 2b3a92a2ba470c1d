"""Air-gapped bundles: export, import with no network, refusals, interruption; `hfa serve --lock`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import World, build_world
from helpers import corrupt_blobs, hfa

from hfa.errors import ExitCode
from hfa.lock import lockfile
from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo


@pytest.fixture
def exported(server: HubServer, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(bundle, lock, online cache) for org/model and datasets/org/data."""
    lock, cache, out = tmp_path / "hfa.lock", tmp_path / "online", tmp_path / "models.tar"
    assert hfa("pin", "org/model", "datasets/org/data", "--endpoint", server.url, "--lock", str(lock)).exit_code == 0
    assert hfa("pull", "--endpoint", server.url, "--lock", str(lock), "--cache-dir", str(cache)).exit_code == 0
    result = hfa("export", "--lock", str(lock), "--cache-dir", str(cache), "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["blobs"] == 6 and doc["output"] == str(out)
    return out, lock, cache


def test_bundle_layout(exported: tuple[Path, Path, Path]) -> None:
    bundle, lock, _ = exported
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("hfa-bundle/manifest.json").read())  # type: ignore[union-attr]
    assert names[0] == "hfa-bundle/manifest.json"
    assert len(names) == 7 and len(set(names)) == 7  # each blob once
    assert manifest["format"] == "hfa-bundle" and manifest["version"] == 1 and manifest["hfa_version"]
    assert lockfile.loads(manifest["lock"]) == lockfile.read(lock)


def test_export_dry_run_and_missing(server: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    hfa("pin", "org/model", "--endpoint", server.url, "--lock", str(lock))
    dry = hfa("export", "--lock", str(lock), "--cache-dir", str(tmp_path / "empty"), "--dry-run", "--json")
    assert dry.exit_code == 0
    doc = json.loads(dry.stdout)
    assert doc["dry_run"] is True and len(doc["missing"]) == 4 and doc["bytes"] > 0
    out = tmp_path / "x.tar"
    real = hfa("export", "--lock", str(lock), "--cache-dir", str(tmp_path / "empty"), "-o", str(out))
    assert real.exit_code == ExitCode.CHECK_FAILED and "not in the cache" in real.stderr and "hfa pull" in real.stderr
    assert not out.exists() and not list(tmp_path.glob(".x.tar*"))


def test_export_repos_from_cache(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    hfa("pull", "org/model", "--config-only", "--endpoint", server.url, "--cache-dir", str(cache))
    out = tmp_path / "b.tar"
    result = hfa("export", "org/model", "--cache-dir", str(cache), "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["blobs"] == 2  # what the cache holds of that revision


def test_offline_side_end_to_end(exported: tuple[Path, Path, Path], world: World, tmp_path: Path) -> None:
    """Fresh HF_HOME, HF_HUB_OFFLINE=1, no server: import, verify, pull offline, load with huggingface_hub."""
    bundle, lock, _ = exported
    home = tmp_path / "airgap-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hfa", *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )

    imported = run("import", str(bundle), "--json", "--write-lock", str(tmp_path / "carried.lock"))
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["blobs_imported"] == 6
    assert lockfile.read(tmp_path / "carried.lock") == lockfile.read(lock)
    assert run("verify", "--lock", str(lock)).returncode == 0
    pulled = run("pull", "--offline", "--lock", str(lock), "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["requests"] == 0
    code = (
        "from huggingface_hub import snapshot_download, hf_hub_download;"
        "p = snapshot_download('org/model', local_files_only=True);"
        "d = hf_hub_download('org/data', 'data/train.csv', repo_type='dataset', local_files_only=True);"
        "print(p); print(open(d).read().strip())"
    )
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines()[0].endswith(world.commits["org/model@v2"])
    assert "a,b" in loaded.stdout
    again = run("import", str(bundle), "--json")
    assert again.returncode == 0
    doc = json.loads(again.stdout)
    assert doc["blobs_imported"] == 0 and doc["blobs_present"] == 6 and doc["links_created"] == 0
    assert corrupt_blobs(home / "hub") == []
    assert not (home / "hub" / ".hfa-import").exists()


# -- refusals ------------------------------------------------------------------------------------


def _members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(bundle) as tar:
        for m in tar.getmembers():
            data = tar.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
            out.append((m, data))
    return out


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info = tarfile.TarInfo(info.name) if isinstance(info, str) else info
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def _mutations(bundle: Path) -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    good = _members(bundle)
    manifest, blobs = good[0], good[1:]
    first_blob_info, first_blob = blobs[0]
    flipped = bytes([first_blob[0] ^ 1]) + first_blob[1:]
    return {
        "traversal": [*good, (_info("hfa-bundle/blobs/../../escape"), b"x")],
        "absolute": [*good, (_info("/tmp/hfa-escape"), b"x")],
        "symlink": [manifest, (_info(first_blob_info.name, tarfile.SYMTYPE, "/etc/passwd"), b""), *blobs[1:]],
        "hardlink": [manifest, (_info(first_blob_info.name, tarfile.LNKTYPE, "/etc/passwd"), b""), *blobs[1:]],
        "device": [manifest, (_info(first_blob_info.name, tarfile.CHRTYPE), b""), *blobs[1:]],
        "not-in-manifest": [*good, (_info("hfa-bundle/blobs/" + "e" * 64), b"surprise")],
        "size-mismatch": [manifest, (_info(first_blob_info.name), first_blob + b"!"), *blobs[1:]],
        "hash-mismatch": [manifest, (_info(first_blob_info.name), flipped), *blobs[1:]],
        "missing-blob": [manifest, *blobs[1:]],
        "no-manifest": list(blobs),
        "manifest-not-first": [*blobs, manifest],
        "duplicate": [*good, blobs[0]],
        "bad-manifest": [(_info("hfa-bundle/manifest.json"), b"{not json"), *blobs],
    }


@pytest.mark.parametrize(
    "kind",
    sorted(_mutations.__code__.co_consts[-1])
    if False
    else [
        "traversal",
        "absolute",
        "symlink",
        "hardlink",
        "device",
        "not-in-manifest",
        "size-mismatch",
        "hash-mismatch",
        "missing-blob",
        "no-manifest",
        "manifest-not-first",
        "duplicate",
        "bad-manifest",
    ],
)
def test_malicious_bundles_are_refused(exported: tuple[Path, Path, Path], tmp_path: Path, kind: str) -> None:
    bundle, _, _ = exported
    evil = _write(tmp_path / f"{kind}.tar", _mutations(bundle)[kind])
    cache = tmp_path / "target"
    result = hfa("import", str(evil), "--cache-dir", str(cache))
    assert result.exit_code == ExitCode.CHECK_FAILED, (kind, result.stderr)
    assert result.stderr.startswith("Error: Bundle refused:"), result.stderr
    assert "nothing was imported" in result.stderr
    published = [p for p in cache.glob("*/blobs/*")] if cache.exists() else []
    assert published == [], f"{kind}: published {published}"
    assert not list(cache.glob("*/snapshots/*/*")) if cache.exists() else True
    assert not Path("/tmp/hfa-escape").exists() and not (tmp_path / "escape").exists()


def test_truncated_and_non_tar_bundles(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle, _, _ = exported
    raw = bundle.read_bytes()
    for name, data in (("cut.tar", raw[: len(raw) // 2]), ("junk.tar", b"not a tar at all" * 100)):
        path = tmp_path / name
        path.write_bytes(data)
        result = hfa("import", str(path), "--cache-dir", str(tmp_path / "c"))
        assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
        assert "Bundle refused" in result.stderr
        assert not list((tmp_path / "c").glob("*/blobs/*"))
    missing = hfa("import", str(tmp_path / "nope.tar"), "--cache-dir", str(tmp_path / "c"))
    assert missing.exit_code == ExitCode.USAGE


def test_kill_during_import_then_rerun(tmp_path: Path) -> None:
    rng = random.Random(3)
    cache = tmp_path / "src"
    files = {f"w{i}.dat": rng.randbytes(8 * 1024 * 1024) for i in range(6)}
    write_repo(cache, "big/model", files)
    bundle = tmp_path / "big.tar"
    assert hfa("export", "big/model", "--cache-dir", str(cache), "-o", str(bundle)).exit_code == 0
    target = tmp_path / "target"
    cmd = [sys.executable, "-m", "hfa", "import", str(bundle), "--cache-dir", str(target)]
    for _ in range(5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert corrupt_blobs(target) == []
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert corrupt_blobs(target) == []
    snap = next((target / "models--big--model" / "snapshots").iterdir())
    for name, data in files.items():
        assert hashlib.sha256((snap / name).read_bytes()).digest() == hashlib.sha256(data).digest()
    assert hfa("verify", "--cache-dir", str(target)).exit_code == 0


# -- serve --lock ----------------------------------------------------------------------------------


def test_serve_only_what_the_lock_names(world: World, server: HubServer, tmp_path: Path) -> None:
    lock_path = tmp_path / "hfa.lock"
    hfa("pin", "org/model", "--config-only", "--endpoint", server.url, "--lock", str(lock_path))
    fresh = build_world(tmp_path / "w")
    config = ServerConfig(cache_dir=fresh.cache_dir, lock=lockfile.read(lock_path))
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    with HubServer(config) as srv:
        api = HfApi(endpoint=srv.url, token=False)
        assert [m.id for m in api.list_models()] == ["org/model"]
        info = api.model_info("org/model", files_metadata=True)
        assert info.sha == world.commits["org/model@v2"]
        assert sorted(s.rfilename for s in info.siblings or []) == ["README.md", "config.json"]
        path = hf_hub_download("org/model", "config.json", endpoint=srv.url, cache_dir=tmp_path / "c", token=False)
        assert Path(path).read_bytes() == world.contents["org/model@v2"]["config.json"]
        with pytest.raises(RemoteEntryNotFoundError):
            hf_hub_download("org/model", "model.safetensors", endpoint=srv.url, cache_dir=tmp_path / "c", token=False)
        with pytest.raises(RevisionNotFoundError):
            api.model_info("org/model", revision=world.commits["org/model@v1"])
        with pytest.raises(RepositoryNotFoundError):
            api.model_info("other/thing")
        refs = api.list_repo_refs("org/model")
        assert [(b.name, b.target_commit) for b in refs.branches] == [("main", world.commits["org/model@v2"])]
        assert refs.tags == []


# -- hand-crafted bundles (issue 12: import) --------------------------------------------------------

COMMIT = "c0" * 20


def _lock_text(files: dict[str, bytes], revision: str = "main", repo_id: str = "evil/model") -> str:
    from hfa.lock.lockfile import Lock, LockedFile, LockedRepo
    from hfa.resolve.selection import SelectOptions

    entries = tuple(sorted(LockedFile(p, len(d), "sha256", hashlib.sha256(d).hexdigest()) for p, d in files.items()))
    return lockfile.dumps(Lock((LockedRepo(repo_id, "model", revision, COMMIT, SelectOptions(), entries),)))


def _manifest(lock_text: str, sizes: dict[str, int]) -> bytes:
    blobs = [{"name": n, "algo": "sha256", "size": s} for n, s in sorted(sizes.items())]
    doc = {"format": "hfa-bundle", "version": 1, "hfa_version": "0", "created": "", "lock": lock_text, "blobs": blobs}
    return json.dumps(doc).encode()


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def _regular(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info.tobuf(tarfile.PAX_FORMAT) + _pad(data)


def _gnu_sparse(name: str, tail: bytes, real_size: int) -> bytes:
    """A GNU sparse member ('S'): ``tail`` stored at the end of a ``real_size``-byte file of holes.

    tarfile reads these but cannot write them, so the header is patched by hand: the sparse map
    (offset 386: one offset/length pair), the real size (offset 483), then the checksum again.
    """
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = len(tail), 0o644, tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    assert len(header) == tarfile.BLOCKSIZE
    header[386:398] = tarfile.itn(real_size - len(tail), 12, tarfile.GNU_FORMAT)
    header[398:410] = tarfile.itn(len(tail), 12, tarfile.GNU_FORMAT)
    header[483:495] = tarfile.itn(real_size, 12, tarfile.GNU_FORMAT)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + _pad(tail)


def _tar(path: Path, *members: bytes) -> Path:
    path.write_bytes(b"".join(members) + b"\0" * (2 * tarfile.BLOCKSIZE))
    return path


def _crafted(path: Path, files: dict[str, bytes], revision: str = "main") -> Path:
    blobs = {hashlib.sha256(d).hexdigest(): d for d in files.values()}
    manifest = _manifest(_lock_text(files, revision), {n: len(d) for n, d in blobs.items()})
    return _tar(
        path,
        _regular("hfa-bundle/manifest.json", manifest),
        *(_regular(f"hfa-bundle/blobs/{n}", d) for n, d in blobs.items()),
    )


def _published(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob("*/*/**/*") if p.is_file() or p.is_symlink()) if cache.exists() else []


@pytest.mark.parametrize("padded", [False, True])
def test_sparse_member_is_refused_before_anything_is_written(tmp_path: Path, padded: bool) -> None:
    """A 26 KB bundle whose GNU-sparse member declares a huge file: refused, not a byte of zeros written.

    Unpadded, the manifest's total alone gives it away; padded (a sparse file on disk as large as
    the total, zeros after the tar's end) the member itself is refused as sparse.
    """
    from hfa import bundle

    real_size = 32 * 1024 * 1024  # the red-team case declared 2 GiB; the bomb works the same at any size
    digest = hashlib.sha256(bytes(real_size)).hexdigest()
    from hfa.lock.lockfile import Lock, LockedFile, LockedRepo
    from hfa.resolve.selection import SelectOptions

    entry = LockedRepo(
        "evil/model", "model", "main", COMMIT, SelectOptions(), (LockedFile("w.bin", real_size, "sha256", digest),)
    )
    lock_text = lockfile.dumps(Lock((entry,)))
    evil = _tar(
        tmp_path / "sparse.tar",
        _regular("hfa-bundle/manifest.json", _manifest(lock_text, {digest: real_size})),
        _gnu_sparse(f"hfa-bundle/blobs/{digest}", bytes(512), real_size),
    )
    assert evil.stat().st_size < 30_000
    if padded:
        with evil.open("r+b") as fp:
            fp.truncate(real_size + 1024 * 1024)
    with tarfile.open(evil) as tar:  # the crafted header is what GNU tar writes: tarfile sees a sparse file
        member = tar.getmembers()[1]
        assert member.issparse() and member.size == real_size
    written: list[int] = []
    cache = tmp_path / "target"
    with pytest.raises(bundle.BundleRefused, match="is a sparse file" if padded else "declares 33554432 bytes"):
        bundle.import_bundle(cache, evil, on_bytes=written.append)
    assert sum(written) == 0
    assert _published(cache) == [] and not (cache / ".hfa-import").exists()


def test_manifest_declaring_more_than_the_tar_holds_is_refused(tmp_path: Path) -> None:
    """Every blob's bytes must be in the tar (sparse members are refused): 1 TiB in 2 KB is a lie."""
    from hfa import bundle

    digest = "ab" * 32
    lock_text = _lock_text({"w.bin": b"x"}).replace("size = 1", f"size = {1 << 40}")
    lock_text = lock_text.replace(hashlib.sha256(b"x").hexdigest(), digest)
    evil = _tar(tmp_path / "big.tar", _regular("hfa-bundle/manifest.json", _manifest(lock_text, {digest: 1 << 40})))
    with pytest.raises(bundle.BundleRefused, match="declares 1099511627776 bytes"):
        bundle.import_bundle(tmp_path / "target", evil)
    assert _published(tmp_path / "target") == []


def test_import_checks_free_space_first(
    exported: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from types import SimpleNamespace

    bundle_path, _, _ = exported
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(total=1 << 30, used=1 << 30, free=4096))
    cache = tmp_path / "target"
    result = hfa("import", str(bundle_path), "--cache-dir", str(cache))
    assert result.exit_code == ExitCode.LOCAL, result.stderr
    assert "Not enough free space" in result.stderr and "--cache-dir" in result.stderr
    assert _published(cache) == []


def _fifteen(extra: dict[str, bytes]) -> dict[str, bytes]:
    return {**{f"w{i:02d}.bin": b"blob %d\n" % i for i in range(13)}, **extra}


@pytest.mark.parametrize(
    ("kind", "files", "revision", "says"),
    [
        (
            "file-and-folder",
            _fifteen({"config.json": b"{}", "config.json/inner": b"x"}),
            "main",
            "both a file and a folder",
        ),
        ("deep-file-and-folder", _fifteen({"a/b": b"1", "a/b/c/d": b"2"}), "main", "both a file and a folder"),
        ("revision-slash", _fifteen({"config.json": b"{}", "x.txt": b"x"}), "main/", "not a valid ref name"),
        ("revision-dot", _fifteen({"config.json": b"{}", "x.txt": b"x"}), "v1/./x", "not a valid ref name"),
        # names git refuses (git check-ref-format): refs are files, never written from such a name
        ("revision-dotdot", _fifteen({"config.json": b"{}", "x.txt": b"x"}), "a..b", "not a valid ref name"),
        ("revision-lock", _fifteen({"config.json": b"{}", "x.txt": b"x"}), "main.lock", "not a valid ref name"),
        ("revision-at", _fifteen({"config.json": b"{}", "x.txt": b"x"}), "@", "not a valid ref name"),
    ],
)
def test_self_contradicting_lock_publishes_nothing(
    tmp_path: Path, kind: str, files: dict[str, bytes], revision: str, says: str
) -> None:
    """The whole manifest is validated before the first blob is published (docs/air-gapped.md)."""
    evil = _crafted(tmp_path / f"{kind}.tar", files, revision)
    cache = tmp_path / "target"
    result = hfa("import", str(evil), "--cache-dir", str(cache))
    assert result.exit_code == ExitCode.CHECK_FAILED, (kind, result.exit_code, result.stderr)
    assert result.stderr.startswith("Error: Bundle refused:") and says in result.stderr, result.stderr
    assert _published(cache) == [], kind


def test_cache_state_that_blocks_publishing_is_found_first(tmp_path: Path) -> None:
    """A folder in the cache where a snapshot link goes: a clear local error, nothing published."""
    bundle_path = _crafted(tmp_path / "ok.tar", _fifteen({"config.json": b"{}"}))
    cache = tmp_path / "target"
    (cache / "models--evil--model" / "snapshots" / COMMIT / "config.json").mkdir(parents=True)
    result = hfa("import", str(bundle_path), "--cache-dir", str(cache))
    assert result.exit_code == ExitCode.LOCAL, result.stderr
    assert "is a folder where a file goes" in result.stderr
    assert not list(cache.glob("*/blobs/*")) and not (cache / "models--evil--model" / "refs").exists()


def test_import_replaces_a_corrupt_cached_copy(exported: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bundle_path, lock, _ = exported
    cache = tmp_path / "target"
    assert hfa("import", str(bundle_path), "--cache-dir", str(cache)).exit_code == 0
    victim = sorted(cache.glob("*/blobs/*"), key=lambda p: p.stat().st_size)[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, different bytes
    victim.write_bytes(bytes(raw))
    assert corrupt_blobs(cache) == [victim]
    result = hfa("import", str(bundle_path), "--cache-dir", str(cache), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["blobs_imported"] == 1 and doc["blobs_repaired"] == 1 and doc["blobs_present"] == 5
    assert corrupt_blobs(cache) == []
    assert hfa("verify", "--lock", str(lock), "--cache-dir", str(cache)).exit_code == 0
    human = hfa("import", str(bundle_path), "--cache-dir", str(cache))
    assert "0 blob(s)" in human.stderr + human.stdout and "replaced" not in human.stderr + human.stdout


@pytest.mark.parametrize("planted", ["dir-link", "file-link", "file"])
def test_planted_staging_is_never_followed(exported: tuple[Path, Path, Path], tmp_path: Path, planted: str) -> None:
    from hfa import bundle

    bundle_path, _, _ = exported
    cache = tmp_path / "target"
    cache.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    staging = cache / ".hfa-import"
    if planted == "dir-link":
        os.symlink(outside, staging)
    elif planted == "file-link":
        os.symlink(victim, staging)
    else:
        staging.write_text("junk")
    seen_outside: list[list[str]] = []
    result = bundle.import_bundle(cache, bundle_path, on_bytes=lambda n: seen_outside.append(os.listdir(outside)))
    assert result.imported == 6
    assert all(entries == [] for entries in seen_outside) and seen_outside
    assert os.listdir(outside) == [] and victim.read_text() == "keep me"
    assert not staging.exists() and not staging.is_symlink()
    assert corrupt_blobs(cache) == []
