"""`hfa push --to s3://` and `hfa pull --from s3://` against a real SeaweedFS: round trip, idempotence,
tampered objects refused with nothing published, credentials never printed."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import corrupt_blobs, hfa, snapshot_listing

from tests.s3.conftest import ACCESS_KEY, SECRET_KEY

FOLDER = "models--org--model"


def _seed(server, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A cache holding org/model (all files) pulled from the session's hub server."""
    cache = tmp_path / "seed"
    result = hfa("pull", "org/model", "--all", "--endpoint", server.url, "--cache-dir", str(cache))
    assert result.exit_code == 0, result.stderr
    return cache


def _push(cache: Path, bucket: str, *args: str):  # type: ignore[no-untyped-def]
    return hfa("push", *args, "--to", f"s3://{bucket}/fleet", "--cache-dir", str(cache), "--json")


def test_push_then_pull_from_round_trip(server, world, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = _seed(server, tmp_path)
    first = _push(cache, bucket, "org/model")
    assert first.exit_code == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["blobs_uploaded"] == 5 and doc["bytes_uploaded"] > 3_000_000
    assert doc["repos"][0]["manifest"] == "written" and doc["repos"][0]["ref"] == "written"

    again = _push(cache, bucket, "org/model")
    assert again.exit_code == 0, again.stderr
    doc2 = json.loads(again.stdout)
    assert doc2["bytes_uploaded"] == 0 and doc2["blobs_uploaded"] == 0 and doc2["blobs_present"] == 5
    assert doc2["repos"][0]["manifest"] == "present" and doc2["repos"][0]["ref"] == "unchanged"

    target = tmp_path / "gpu-node"
    pulled = hfa(
        "pull",
        "org/model",
        "--all",
        "--from",
        f"s3://{bucket}/fleet",
        "--cache-dir",
        str(target),
        "--json",
        "--endpoint",
        "http://127.0.0.1:9",  # no Hub: a request there would fail
    )
    assert pulled.exit_code == 0, pulled.stderr
    commit = world.commits["org/model@v2"]
    assert json.loads(pulled.stdout)["commit"] == commit
    assert snapshot_listing(target, FOLDER, commit) == snapshot_listing(cache, FOLDER, commit)
    assert (target / FOLDER / "refs" / "main").read_text() == commit
    assert corrupt_blobs(target) == []
    snap = target / FOLDER / "snapshots" / commit
    assert {p: (snap / p).read_bytes() for p in world.contents["org/model@v2"]} == world.contents["org/model@v2"]
    # a warm pull from the bucket fetches nothing
    warm = hfa("pull", "org/model", "--all", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(target), "--json")
    assert warm.exit_code == 0 and json.loads(warm.stdout)["bytes_downloaded"] == 0


def test_dry_run_uploads_nothing(server, weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = _seed(server, tmp_path)
    result = _push(cache, bucket, "org/model", "--dry-run")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["dry_run"] and doc["blobs_uploaded"] == 5 and doc["repos"][0]["manifest"] == "would-write"
    assert weed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_tampered_object_is_refused_and_never_published(server, weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = _seed(server, tmp_path)
    assert _push(cache, bucket, "org/model").exit_code == 0
    blob = next(p for p in (cache / FOLDER / "blobs").iterdir() if len(p.name) == 64 and p.stat().st_size > 1_000_000)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed, written straight into the bucket
    weed.client().put_object(Bucket=bucket, Key=f"fleet/blobs/{blob.name}", Body=bytes(data))

    target = tmp_path / "gpu-node"
    result = hfa("pull", "org/model", "--all", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(target))
    assert result.exit_code == 1, result.stderr
    assert "does not match its sha256" in result.stderr and "big.bin" in result.stderr
    assert not (target / FOLDER / "blobs" / blob.name).exists()
    assert not list((target / FOLDER / "blobs").glob("*.incomplete"))
    assert corrupt_blobs(target) == []


def test_truncated_object_is_refused(server, weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = _seed(server, tmp_path)
    assert _push(cache, bucket, "org/model").exit_code == 0
    blob = next(p for p in (cache / FOLDER / "blobs").iterdir() if p.stat().st_size > 1_000_000)
    weed.client().put_object(Bucket=bucket, Key=f"fleet/blobs/{blob.name}", Body=blob.read_bytes()[:1000])
    target = tmp_path / "gpu-node"
    result = hfa("pull", "org/model", "--all", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(target))
    assert result.exit_code == 1
    assert "does not match" in result.stderr
    assert not (target / FOLDER / "blobs" / blob.name).exists()


def test_credentials_never_in_output(server, bucket: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = _seed(server, tmp_path)
    outputs = []
    for args in (("org/model",), ("org/model", "--dry-run")):
        r = hfa("push", *args, "--to", f"s3://{bucket}/p", "--cache-dir", str(cache), "-v")
        outputs.append(r.stdout + r.stderr)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY + "-wrong")
    bad = hfa("push", "org/model", "--to", f"s3://{bucket}/q", "--cache-dir", str(cache))
    assert bad.exit_code == 4, bad.stderr
    outputs.append(bad.stdout + bad.stderr)
    pulled = hfa("pull", "org/model", "--from", f"s3://{bucket}/p", "--cache-dir", str(tmp_path / "x"), "--json")
    assert pulled.exit_code == 4
    outputs.append(pulled.stdout + pulled.stderr)
    for text in outputs:
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_pull_from_names_what_is_missing(bucket: str, tmp_path: Path) -> None:
    result = hfa("pull", "org/none", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 3, result.stderr
    assert "hfa push --to s3://" in result.stderr


def test_bad_bucket_url_is_a_usage_error(tmp_path: Path) -> None:
    result = hfa("push", "org/model", "--to", "https://bucket/x", "--cache-dir", str(tmp_path))
    assert result.exit_code == 2 and "s3://BUCKET/PREFIX" in result.stderr


def test_seed_from_a_lock_then_gpu_node_pulls_the_lock(server, world, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lock = tmp_path / "hfa.lock"
    seed = tmp_path / "seed"
    pinned = hfa("pin", "org/model@v1.0", "--lock", str(lock), "--endpoint", server.url, "--cache-dir", str(seed))
    assert pinned.exit_code == 0, pinned.stderr
    pulled = hfa("pull", "--lock", str(lock), "--endpoint", server.url, "--cache-dir", str(seed))
    assert pulled.exit_code == 0, pulled.stderr
    pushed = hfa("push", "--lock", str(lock), "--to", f"s3://{bucket}/fleet", "--cache-dir", str(seed), "--json")
    assert pushed.exit_code == 0, pushed.stderr
    assert json.loads(pushed.stdout)["repos"][0]["ref"] == "written"  # refs/v1.0

    node = tmp_path / "node"
    result = hfa("pull", "--lock", str(lock), "--from", f"s3://{bucket}/fleet", "--cache-dir", str(node), "--json")
    assert result.exit_code == 0, result.stderr
    commit = world.commits["org/model@v1"]
    assert snapshot_listing(node, FOLDER, commit) == snapshot_listing(seed, FOLDER, commit)
    assert corrupt_blobs(node) == []


def test_push_of_a_lock_whose_files_are_not_cached_is_refused(server, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lock = tmp_path / "hfa.lock"
    seed = tmp_path / "seed"
    assert (
        hfa("pin", "org/model", "--lock", str(lock), "--endpoint", server.url, "--cache-dir", str(seed)).exit_code == 0
    )
    result = hfa("push", "--lock", str(lock), "--to", f"s3://{bucket}/fleet", "--cache-dir", str(seed))
    assert result.exit_code == 1, result.stderr
    assert "hfa pull --lock" in result.stderr


def test_a_blob_never_pushed_is_named(server, weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = _seed(server, tmp_path)
    assert _push(cache, bucket, "org/model").exit_code == 0
    weed.client().delete_object(Bucket=bucket, Key="fleet/blobs/" + _blob_of(cache, "config.json"))
    target = tmp_path / "node"
    result = hfa("pull", "org/model", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(target))
    assert result.exit_code == 1, result.stderr
    assert "config.json" in result.stderr and f"not in s3://{bucket}/fleet/" in result.stderr
    assert "hfa push --to" in result.stderr


def _blob_of(cache: Path, path: str) -> str:
    snap = next((cache / FOLDER / "snapshots").iterdir())
    return (snap / path).resolve().name


def test_bucket_errors_get_their_exit_codes(weed, bucket: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = f"s3://{bucket}-absent/fleet"
    assert hfa("pull", "org/model", "--from", url, "--cache-dir", str(tmp_path)).exit_code == 3
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    nocreds = hfa("pull", "org/model", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(tmp_path))
    assert nocreds.exit_code == 2 and "AWS_ACCESS_KEY_ID" in nocreds.stderr, nocreds.stderr
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x" * 8)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y" * 8)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    down = hfa("pull", "org/model", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(tmp_path))
    assert down.exit_code == 5 and "AWS_ENDPOINT_URL" in down.stderr, down.stderr


def test_a_dataset_round_trips(server, world, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed = tmp_path / "seed"
    assert hfa("pull", "datasets/org/data", "--all", "--endpoint", server.url, "--cache-dir", str(seed)).exit_code == 0
    assert _push(seed, bucket, "datasets/org/data").exit_code == 0
    node = tmp_path / "node"
    result = hfa("pull", "datasets/org/data", "--all", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(node))
    assert result.exit_code == 0, result.stderr
    commit = world.commits["datasets/org/data"]
    assert (node / "datasets--org--data" / "snapshots" / commit / "data/train.csv").read_bytes() == b"a,b\n1,2\n"


def test_a_hostile_manifest_is_refused(weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = weed.client()
    commit = "c" * 40
    manifest = {"commit": commit, "files": [{"path": "../../escape.txt", "size": 1, "blob_id": "a" * 40}]}
    client.put_object(Bucket=bucket, Key="fleet/repos/models/org/evil/refs/main", Body=commit.encode())
    client.put_object(
        Bucket=bucket, Key=f"fleet/repos/models/org/evil/commits/{commit}.json", Body=json.dumps(manifest)
    )
    target = tmp_path / "node"
    result = hfa("pull", "org/evil", "--all", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(target))
    assert result.exit_code == 1, result.stderr
    assert "unsafe path" in result.stderr
    assert not (tmp_path / "escape.txt").exists() and not list(tmp_path.rglob("escape.txt"))
    client.put_object(Bucket=bucket, Key=f"fleet/repos/models/org/evil/commits/{commit}.json", Body=b"[" * 100_000)
    result = hfa("pull", "org/evil", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(target))
    assert result.exit_code == 1 and "not an hfa manifest" in result.stderr, result.stderr


def test_racing_pushers_both_succeed(server, weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    from hfa.config import Settings
    from hfa.push import push, targets_from_refs
    from hfa.resolve.refs import RepoRef
    from hfa.store.s3 import S3Store, parse_s3_url

    cache = _seed(server, tmp_path)
    settings = Settings.resolve(cache_dir=cache)

    def one(_: int):  # type: ignore[no-untyped-def]
        store = S3Store(parse_s3_url(f"s3://{bucket}/race"))
        return push(settings, store, targets_from_refs(settings, [RepoRef.parse("org/model")]), workers=4)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, range(2)))
    assert sum(r.blobs_uploaded for r in results) + sum(r.blobs_present for r in results) == 10
    node = tmp_path / "node"
    pulled = hfa("pull", "org/model", "--all", "--from", f"s3://{bucket}/race", "--cache-dir", str(node))
    assert pulled.exit_code == 0, pulled.stderr
    assert corrupt_blobs(node) == []
