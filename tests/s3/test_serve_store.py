"""`hfa serve --store s3://` against a real SeaweedFS: the official client downloads through it (streamed and
verified, or redirected to presigned URLs), the Hub API answers from the bucket, tampered objects never arrive whole."""

from __future__ import annotations

import hashlib
import logging
import urllib.request
from pathlib import Path

import pytest
from helpers import hfa
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError

from hfa.server import HubServer, ServerConfig
from tests.s3.test_push_pull import FOLDER, _push, _seed

BIG = "big.bin"


@pytest.fixture
def pushed(server, bucket: str, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """org/model (every file) pushed to s3://BUCKET/fleet; the seed cache it came from."""
    cache = _seed(server, tmp_path)
    result = _push(cache, bucket, "org/model")
    assert result.exit_code == 0, result.stderr
    return cache


def _serve(bucket: str, tmp_path: Path, redirect: bool = False) -> HubServer:
    empty = tmp_path / "no-cache"  # the store serves the bucket alone
    return HubServer(ServerConfig(cache_dir=empty, store=f"s3://{bucket}/fleet", redirect=redirect))


def _files(world) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    return dict(world.contents["org/model@v2"])


@pytest.mark.parametrize("redirect", [False, True], ids=["streamed", "redirect"])
def test_official_client_downloads_from_the_bucket(pushed, world, bucket: str, tmp_path: Path, redirect: bool) -> None:  # type: ignore[no-untyped-def]
    files = _files(world)
    commit = world.commits["org/model@v2"]
    with _serve(bucket, tmp_path, redirect) as srv:
        cache = tmp_path / "client"
        for path, data in files.items():
            got = Path(hf_hub_download("org/model", path, endpoint=srv.url, cache_dir=cache))
            assert got.read_bytes() == data
        big_blob = (cache / FOLDER / "snapshots" / commit / BIG).resolve()
        assert big_blob.name == hashlib.sha256(files[BIG]).hexdigest()  # named by its sha256, as from the Hub
        snap = Path(snapshot_download("org/model", endpoint=srv.url, cache_dir=tmp_path / "snap"))
        assert {p: (snap / p).read_bytes() for p in files} == files
        gets = [p for m, p in srv.requests if m == "GET" and "/resolve/" in p]
    if redirect:
        assert gets == []  # the client took every byte from the bucket


def test_redirect_answer_carries_what_the_client_reads(pushed, world, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = _files(world)[BIG]
    with _serve(bucket, tmp_path, redirect=True) as srv:
        request = urllib.request.Request(f"{srv.url}/org/model/resolve/main/{BIG}", method="HEAD")

        class NoFollow(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                return None

        opener = urllib.request.build_opener(NoFollow)
        with pytest.raises(urllib.request.HTTPError) as caught:
            opener.open(request, timeout=10)
    answer = caught.value
    assert answer.code == 302
    assert answer.headers["X-Repo-Commit"] == world.commits["org/model@v2"]
    assert answer.headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert answer.headers["X-Linked-Size"] == str(len(data))
    location = answer.headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in location  # SigV4
    with urllib.request.urlopen(location, timeout=10) as fetched:
        assert fetched.read() == data


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_a_damaged_object_never_reaches_a_client_whole(  # type: ignore[no-untyped-def]
    pushed, world, weed, bucket: str, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = _files(world)[BIG]
    sha = hashlib.sha256(data).hexdigest()
    bad = bytearray(data)
    bad[-10] ^= 0xFF  # same size, one byte changed near the end
    body = bytes(bad) if damage == "tampered" else data[: len(data) // 2]
    weed.client().put_object(Bucket=bucket, Key=f"fleet/blobs/{sha}", Body=body)
    cache = tmp_path / "client"
    with caplog.at_level(logging.ERROR, logger="hfa.serve"), _serve(bucket, tmp_path) as srv:
        with pytest.raises(Exception):  # noqa: B017 - the client's own error for a body cut short
            hf_hub_download("org/model", BIG, endpoint=srv.url, cache_dir=cache)
        # the other files are intact and still served
        assert (
            Path(hf_hub_download("org/model", "config.json", endpoint=srv.url, cache_dir=cache)).read_bytes()
            == (_files(world)["config.json"])
        )
    blobs = cache / FOLDER / "blobs"
    assert not (blobs / sha).exists()
    assert not list(blobs.glob("*.incomplete"))
    assert f"blob {sha}" in caplog.text and "does not match its sha256" in caplog.text


def test_hub_api_answers_from_the_bucket(pushed, world, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    commit = world.commits["org/model@v2"]
    with _serve(bucket, tmp_path) as srv:
        api = HfApi(endpoint=srv.url, token=False)
        info = api.model_info("org/model", files_metadata=True)
        assert info.sha == commit
        assert {s.rfilename for s in info.siblings or []} == set(_files(world))
        big = next(s for s in info.siblings or [] if s.rfilename == BIG)
        assert big.lfs is not None and big.lfs.sha256 == hashlib.sha256(_files(world)[BIG]).hexdigest()
        assert [m.id for m in api.list_models(search="model")] == ["org/model"]
        refs = api.list_repo_refs("org/model")
        assert [(b.name, b.target_commit) for b in refs.branches] == [("main", commit)]
        tree = {e.path for e in api.list_repo_tree("org/model", recursive=True)}
        assert set(_files(world)) <= tree
        assert api.model_info("org/model", revision=commit).sha == commit
        with pytest.raises(RepositoryNotFoundError):
            api.model_info("org/absent")


def test_serve_store_option_errors(tmp_path: Path) -> None:
    alone = hfa("serve", "--redirect", "--port", "0")
    assert alone.exit_code == 2 and "--store" in alone.stderr
    lock = tmp_path / "hfa.lock"
    lock.write_text("")
    clash = hfa("serve", "--store", "s3://my-bucket/p", "--lock", str(lock), "--port", "0")
    assert clash.exit_code == 2 and "--lock cannot be combined with --store" in clash.stderr
    bad = hfa("serve", "--store", "https://bucket/x", "--port", "0")
    assert bad.exit_code == 2 and "s3://BUCKET/PREFIX" in bad.stderr


def test_serve_store_names_a_missing_bucket(weed, bucket: str) -> None:  # type: ignore[no-untyped-def]
    result = hfa("serve", "--store", f"s3://{bucket}-absent/p", "--port", "0")
    assert result.exit_code == 3, result.stderr
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("start,length", [(0, 3000), (0, 1), (5, 10), (1024, 1976), (2999, 1), (1000, 1100)])
def test_verified_body_sends_the_range_only_after_the_whole_object_matched(start: int, length: int) -> None:
    import io

    from hfa.server import downloads
    from hfa.server.store import FileEntry

    data = bytes(range(256)) * 11 + b"x" * 184  # 3000 bytes
    entry = FileEntry("w.bin", len(data), None, "0" * 40, hashlib.sha256(data).hexdigest())
    failures: list[str] = []
    old = downloads.CHUNK
    downloads.CHUNK = 512  # several chunks
    try:

        def body(raw: bytes) -> bytes:
            return b"".join(
                downloads.verified_body(io.BytesIO(raw), entry, start, length, lambda w, e: failures.append(w))
            )

        assert body(data) == data[start : start + length]
        assert not failures
        assert len(body(data[:-1] + b"y")) < length  # short: the client never gets the whole (wrong) range
        assert len(body(data[:2000])) < length
        assert len(failures) == 2 and "does not match its sha256" in failures[0]
    finally:
        downloads.CHUNK = old
