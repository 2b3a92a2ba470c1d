"""hfa.bundle as a library: plan_export, export, import_bundle and lock_from_cache, no network."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from hfa.bundle import (
    BundleRefused,
    blobs_of,
    bundle_lock_text,
    export,
    import_bundle,
    lock_from_cache,
    plan_export,
)
from hfa.cache.layout import RepoDir
from hfa.errors import CheckFailed, UsageError
from hfa.lock import lockfile
from hfa.lock.lockfile import Lock
from hfa.resolve.refs import RepoRef

from .builders import DATA_FILES, MODEL_FILES, Built, blob_name, git_sha1, locked_repo

ALL_BLOBS = len(MODEL_FILES) + len(DATA_FILES)


@pytest.fixture
def bundle(built: Built, tmp_path: Path) -> Path:
    out = tmp_path / "out" / "models.tar"
    export(built.cache, built.lock(), out)
    return out


def cache_files(cache: Path) -> list[str]:
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file() or p.is_symlink())


def rewrite(src: Path, dest: Path, change) -> None:
    """Copy a tar, passing each (TarInfo, bytes) through ``change``; None drops the member."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin.getmembers():
            fp = tin.extractfile(member)
            data = fp.read() if fp else b""
            out = change(member, data)
            if out is not None:
                member, data = out
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))


# -- export ----------------------------------------------------------------------------------------


def test_plan_export_lists_each_blob_once_with_a_cached_source(built: Built) -> None:
    plan = plan_export(built.cache, built.lock())
    assert plan.missing == []
    expected = {blob_name(p, d) for p, d in MODEL_FILES.items()} | {blob_name(p, d) for p, d in DATA_FILES.items()}
    assert [b.name for b in plan.blobs] == sorted(expected)
    assert plan.total_bytes == sum(map(len, MODEL_FILES.values())) + sum(map(len, DATA_FILES.values()))
    assert set(plan.sources) == expected and all(p.is_file() for p in plan.sources.values())
    assert plan.to_json()["blobs"] == ALL_BLOBS


def test_plan_export_names_what_is_missing_and_refuses_an_empty_lock(built: Built) -> None:
    built.blob("config.json").unlink()
    assert plan_export(built.cache, built.lock()).missing == ["org/model@main/config.json"]
    with pytest.raises(UsageError) as exc:
        plan_export(built.cache, Lock())
    assert exc.value.message == "Nothing to export"


def test_export_writes_a_tar_with_the_manifest_first(built: Built, bundle: Path) -> None:
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(names[0]).read())  # type: ignore[union-attr]
        blobs = {n.rsplit("/", 1)[1]: tar.extractfile(n).read() for n in names[1:]}  # type: ignore[union-attr]
    assert names[0] == "hfa-bundle/manifest.json"
    assert all(n.startswith("hfa-bundle/blobs/") for n in names[1:]) and len(names) == 1 + ALL_BLOBS
    assert manifest["format"] == "hfa-bundle" and manifest["version"] == 1
    assert lockfile.loads(manifest["lock"]) == built.lock().normalized()
    assert {b["name"]: b["size"] for b in manifest["blobs"]} == {n: len(d) for n, d in blobs.items()}
    assert blobs[git_sha1(MODEL_FILES["config.json"])] == MODEL_FILES["config.json"]
    assert [p.name for p in bundle.parent.iterdir()] == ["models.tar"]  # no partial left behind


def test_export_refuses_missing_or_corrupt_blobs_and_writes_nothing(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "x" / "b.tar"
    blob = built.blob("model.safetensors")
    blob.write_bytes(b"\0" * blob.stat().st_size)
    with pytest.raises(CheckFailed) as exc:
        export(built.cache, built.lock(), out)
    assert "corrupt" in exc.value.message
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    blob.unlink()
    with pytest.raises(CheckFailed) as exc:
        export(built.cache, built.lock(), out)
    assert "1 file(s) are not in the cache" in exc.value.message and "model.safetensors" in exc.value.message


def test_export_reports_bytes(built: Built, tmp_path: Path) -> None:
    seen: list[int] = []
    plan = export(built.cache, built.lock(), tmp_path / "b.tar", on_bytes=seen.append)
    assert sum(seen) == plan.total_bytes


# -- import ----------------------------------------------------------------------------------------


def test_import_rebuilds_snapshots_and_refs(built: Built, bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "airgapped"
    result = import_bundle(cache, bundle)
    assert result.repos == ["datasets--org--data", "models--org--model"]
    assert (result.imported, result.present, result.links) == (ALL_BLOBS, 0, ALL_BLOBS)
    assert result.bytes_imported == plan_export(built.cache, built.lock()).total_bytes
    model = RepoDir(cache, "model", "org/model")
    assert model.read_ref("main") == built.model_commit
    for path, data in MODEL_FILES.items():
        assert (model.snapshot(built.model_commit) / path).read_bytes() == data
    assert (RepoDir(cache, "dataset", "org/data").snapshot(built.data_commit) / "train.csv").read_bytes() == (
        DATA_FILES["train.csv"]
    )
    assert not (cache / ".hfa-import").exists()


def test_second_import_is_a_no_op(bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "airgapped"
    import_bundle(cache, bundle)
    before = cache_files(cache)
    again = import_bundle(cache, bundle)
    assert (again.imported, again.present, again.links, again.bytes_imported) == (0, ALL_BLOBS, 0, 0)
    assert cache_files(cache) == before


def test_import_after_a_deleted_link_restores_only_that_link(built: Built, bundle: Path, tmp_path: Path) -> None:
    cache = tmp_path / "airgapped"
    import_bundle(cache, bundle)
    (RepoDir(cache, "model", "org/model").snapshot(built.model_commit) / "sub" / "notes.txt").unlink()
    again = import_bundle(cache, bundle)
    assert (again.imported, again.links) == (0, 1)


def test_a_tampered_blob_is_refused_and_nothing_is_published(built: Built, bundle: Path, tmp_path: Path) -> None:
    target = built.blob("config.json").name

    def flip(member: tarfile.TarInfo, data: bytes):
        if member.name.endswith(target):
            data = bytes([data[0] ^ 1]) + data[1:]
        return member, data

    bad = tmp_path / "bad.tar"
    rewrite(bundle, bad, flip)
    cache = tmp_path / "airgapped"
    with pytest.raises(BundleRefused) as exc:
        import_bundle(cache, bad)
    assert target in exc.value.message and exc.value.hint and "nothing was imported" in exc.value.hint
    assert not list(cache.glob("*/blobs/*")) and not list(cache.glob("*/snapshots/*"))
    assert not (cache / ".hfa-import").exists()


def test_a_bundle_missing_a_blob_is_refused(built: Built, bundle: Path, tmp_path: Path) -> None:
    target = built.blob("model.safetensors").name
    short = tmp_path / "short.tar"
    rewrite(bundle, short, lambda m, d: None if m.name.endswith(target) else (m, d))
    with pytest.raises(BundleRefused):
        import_bundle(tmp_path / "airgapped", short)
    assert not list((tmp_path / "airgapped").glob("*/snapshots/*"))


def test_truncated_and_foreign_files_are_refused(bundle: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    not_tar = tmp_path / "notes.tar"
    not_tar.write_bytes(b"just text\n" * 100)
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    for path in (truncated, not_tar, other):
        with pytest.raises(BundleRefused):
            import_bundle(tmp_path / "airgapped", path)
    assert not list((tmp_path / "airgapped").glob("*/blobs/*"))


def test_import_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        import_bundle(tmp_path / "c", tmp_path / "nothing.tar")
    assert "No bundle at" in exc.value.message


def test_bundle_lock_text_is_the_exported_lock(built: Built, bundle: Path) -> None:
    assert bundle_lock_text(bundle) == lockfile.dumps(built.lock())


# -- locks from the cache, blob lists --------------------------------------------------------------


def test_lock_from_cache_locks_what_the_snapshot_holds(built: Built) -> None:
    lock = lock_from_cache(built.cache, [RepoRef("org/model"), RepoRef("org/data", "dataset")])
    assert lock.normalized() == built.lock().normalized()
    (built.model_snapshot / "config.json").unlink()
    tagged = lock_from_cache(built.cache, [RepoRef("org/model", revision="v1")]).get("org/model")
    assert tagged is not None and tagged.revision == "v1" and tagged.commit == built.model_commit
    assert "config.json" not in {f.path for f in tagged.files}


def test_lock_from_cache_refuses_what_is_not_cached(built: Built) -> None:
    with pytest.raises(CheckFailed) as exc:
        lock_from_cache(built.cache, [RepoRef("org/absent")])
    assert "is not in the cache" in exc.value.message


def test_blobs_of_dedupes_across_repos_and_refuses_two_sizes(built: Built) -> None:
    twin = locked_repo("org/twin", "f" * 40, {"config.json": MODEL_FILES["config.json"]})
    lock = built.lock().upsert(twin)
    assert len(blobs_of(lock)) == ALL_BLOBS
    odd = replace(twin, files=(replace(twin.files[0], size=twin.files[0].size + 1),))
    with pytest.raises(UsageError):
        blobs_of(built.lock().upsert(odd))
