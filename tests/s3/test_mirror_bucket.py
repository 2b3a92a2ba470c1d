"""``hfa serve --store s3://… --upstream URL`` against SeaweedFS: two mirror processes sharing a bucket fill
it from an upstream ``hfa serve``, each file fetched once across both, and keep serving with the upstream gone."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import World
from huggingface_hub import snapshot_download

from hfa.server import HubServer, ServerConfig
from hfa.server.faults import Fault, FaultPlan


@pytest.fixture
def upstream(fresh_world: World) -> Iterator[HubServer]:
    # big.bin (3 MiB) takes about 1.5 s: both replicas ask for it while it is being fetched
    plan = FaultPlan([Fault("throttle", path="big.bin", times=-1, rate=2 << 20)])
    with HubServer(ServerConfig(cache_dir=fresh_world.cache_dir, faults=plan)) as srv:
        yield srv


def replica(bucket: str, upstream: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    argv = [sys.executable, "-m", "hfa", "serve", "--store", f"s3://{bucket}/fleet", "--upstream", upstream]
    argv += ["--port", "0", "--threads", "16", "--ttl", "0"]
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    assert url.startswith("http://"), log.read_text()
    return proc, url


def tree_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_two_replicas_fill_one_bucket_each_file_fetched_once(
    upstream: HubServer,
    fresh_world: World,
    bucket: str,
    weed,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    want = fresh_world.contents["org/model@v2"]
    procs = [replica(bucket, upstream.url, tmp_path / f"replica{i}.log") for i in range(2)]
    try:
        urls = [url for _, url in procs]

        def client(i: int) -> dict[str, bytes]:
            got = snapshot_download("org/model", endpoint=urls[i % 2], cache_dir=tmp_path / f"c{i}", token=False)
            return tree_of(Path(got))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client, range(8)))
        assert all(r == want for r in results)
        for name in want:  # one upstream download per file, across both replicas
            gets = [p for m, p in upstream.requests if m == "GET" and "/resolve/" in p and p.endswith("/" + name)]
            assert len(gets) == 1, (name, gets)
        s3 = weed.client()
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="fleet/").get("Contents", [])}
        assert f"fleet/blobs/{hashlib.sha256(want['big.bin']).hexdigest()}" in keys  # verified, then written
        commit = fresh_world.commits["org/model@v2"]
        assert f"fleet/repos/models/org/model/commits/{commit}.json" in keys
        assert not [k for k in keys if k.startswith("fleet/leases/")]  # every lease dropped
        upstream.stop()  # offline first: the bucket still serves it all, through either replica
        assert tree_of(Path(snapshot_download("org/model", endpoint=urls[1], cache_dir=tmp_path / "late"))) == want
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(20)
            assert proc.stdout is not None
            proc.stdout.close()


def test_tampered_upstream_never_enters_the_bucket(
    fresh_world: World,
    bucket: str,
    weed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    plan = FaultPlan([Fault("corrupt", path="big.bin", times=-1)])
    with HubServer(ServerConfig(cache_dir=fresh_world.cache_dir, faults=plan)) as up:
        config = ServerConfig(cache_dir=tmp_path / "none", store=f"s3://{bucket}/fleet", upstream=up.url)
        with HubServer(config) as mirror:
            with pytest.raises(HfHubHTTPError) as caught:
                get_hf_file_metadata(hf_hub_url("org/model", "big.bin", endpoint=mirror.url), token=False)
            assert caught.value.response.status_code == 502
            url = hf_hub_url("org/model", "config.json", endpoint=mirror.url)
            assert get_hf_file_metadata(url, token=False).size == len(
                fresh_world.contents["org/model@v2"]["config.json"]
            )
    keys = {o["Key"] for o in weed.client().list_objects_v2(Bucket=bucket, Prefix="fleet/").get("Contents", [])}
    big = hashlib.sha256(fresh_world.contents["org/model@v2"]["big.bin"]).hexdigest()
    assert f"fleet/blobs/{big}" not in keys
    assert not [k for k in keys if k.startswith("fleet/leases/")]
