"""What a writer of the bucket can put there, against `hfa pull --from` and `hfa serve --store`: damaged
manifests and refs are clear errors (never exit 70 or a 500), and one damaged repo does not hide the others."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import hfa

from hfa.server import HubServer, ServerConfig
from tests.s3.test_push_pull import _push, _seed

COMMIT = "c" * 40


def _put_repo(client, bucket: str, name: str, manifest: object) -> None:  # type: ignore[no-untyped-def]
    base = f"fleet/repos/models/org/{name}"
    client.put_object(Bucket=bucket, Key=f"{base}/refs/main", Body=COMMIT.encode())
    client.put_object(Bucket=bucket, Key=f"{base}/card.json", Body=b"{}")
    client.put_object(Bucket=bucket, Key=f"{base}/commits/{COMMIT}.json", Body=json.dumps(manifest).encode())


@pytest.mark.parametrize("path", [5, ["x"], None, {"a": 1}])
def test_a_manifest_path_that_is_not_a_string_is_refused(weed, bucket: str, tmp_path: Path, path: object) -> None:  # type: ignore[no-untyped-def]
    _put_repo(
        weed.client(), bucket, "evil", {"commit": COMMIT, "files": [{"path": path, "size": 1, "blob_id": "a" * 40}]}
    )
    result = hfa("pull", "org/evil", "--all", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(tmp_path / "n"))
    assert result.exit_code == 1, result.stderr
    assert "internal error" not in result.stderr and "not a string" in result.stderr


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_damaged_manifest_gets_a_clear_502_and_search_still_lists_the_rest(  # type: ignore[no-untyped-def]
    server, weed, bucket: str, tmp_path: Path
) -> None:
    assert _push(_seed(server, tmp_path), bucket, "org/model").exit_code == 0
    _put_repo(weed.client(), bucket, "evil", {"commit": COMMIT, "files": [{"path": 5, "size": 1, "blob_id": "a" * 40}]})
    with HubServer(ServerConfig(cache_dir=tmp_path / "none", store=f"s3://{bucket}/fleet")) as srv:
        status, body = _get(f"{srv.url}/api/models/org/evil")
        assert status == 502 and "manifest" in body and "hfa push --to" in body, body
        status, body = _get(f"{srv.url}/api/models?search=o")
        assert status == 200, body
        assert [doc["id"] for doc in json.loads(body)] == ["org/model"]


def test_a_repo_missing_from_the_bucket_is_named_plainly(bucket: str, tmp_path: Path) -> None:
    result = hfa("pull", "org/none", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 3, result.stderr
    assert f"'org/none' (revision 'main') is not in s3://{bucket}/fleet/" in result.stderr
    assert "Revision 'push it first" not in result.stderr
    pinned = hfa("pull", f"org/none@{COMMIT}", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(tmp_path / "c"))
    assert pinned.exit_code == 3 and f"commit {COMMIT[:12]} of" in pinned.stderr, pinned.stderr


def test_a_missing_bucket_is_named_as_such_by_pull_from(bucket: str, tmp_path: Path) -> None:
    result = hfa("pull", "org/model", "--from", f"s3://{bucket}-absent/fleet", "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 3, result.stderr
    assert "does not exist" in result.stderr and f"{bucket}-absent" in result.stderr


def test_a_lease_expires_by_the_stores_clock_whatever_it_holds(weed, bucket: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A lease left by a crashed replica (or written by anyone) is taken over once not rewritten for
    LEASE_STALE seconds: its content (a time in the future, or none) cannot make it last for ever."""
    import time

    from hfa.server import mirror_bucket
    from hfa.server.bucket import BucketStore

    monkeypatch.setattr(mirror_bucket, "LEASE_STALE", 1.0)
    target = mirror_bucket.BucketTarget(BucketStore(f"s3://{bucket}/fleet"), tmp_path / "staging")
    keys = [f"fleet/leases/{i}" for i in range(5)]
    for key, content in zip(keys, [b"inf", b"nan", b"1e308", b"", b"\xff garbage"], strict=True):
        weed.client().put_object(Bucket=bucket, Key=key, Body=content)
    assert not any(target._stale(key) for key in keys)  # just written: held
    time.sleep(2.2)
    assert all(target._stale(key) for key in keys)
    assert not target._stale("fleet/leases/absent")


def test_a_fresh_lease_is_held_whatever_time_it_names(weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A replica whose clock is behind (its lease names an old time) still holds a lease it just wrote."""
    from hfa.server import mirror_bucket
    from hfa.server.bucket import BucketStore

    target = mirror_bucket.BucketTarget(BucketStore(f"s3://{bucket}/fleet"), tmp_path / "staging")
    weed.client().put_object(Bucket=bucket, Key="fleet/leases/y", Body=b"0")
    assert not target._stale("fleet/leases/y")


@pytest.mark.parametrize("revision", ["a/./b", "main/", "x.lock"])
def test_pull_from_refuses_a_revision_git_refuses(bucket: str, tmp_path: Path, revision: str) -> None:
    result = hfa("pull", f"org/model@{revision}", "--from", f"s3://{bucket}/fleet", "--cache-dir", str(tmp_path))
    assert result.exit_code == 2, result.stderr
    assert "Invalid ref name" in result.stderr


def test_a_read_only_identity_is_told_it_may_not_write(tmp_path: Path) -> None:
    """A push with credentials that may read but not write: the error says so, not 'set credentials'."""
    import boto3
    from botocore.stub import Stubber

    from hfa.errors import AccessDenied
    from hfa.store.s3 import S3Store, parse_s3_url

    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        endpoint_url="http://127.0.0.1:9",
    )
    store = S3Store(parse_s3_url("s3://my-bucket/p"), client=client)
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    with Stubber(client) as stub:
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
        for call in (
            lambda: store.put_bytes("p/refs/main", b"c" * 40, if_absent=False),
            lambda: store.put_blob("a" * 64, blob, sha256_hex="a" * 64),
        ):
            with pytest.raises(AccessDenied) as caught:
                call()
            assert "may read it but not write" in caught.value.message and "s3:PutObject" in str(caught.value.hint)


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"AWS_ENDPOINT_URL": "ftp://user:pw-never-printed@x"}, "was not a valid URI"),
        ({"AWS_ENDPOINT_URL": "not a url"}, "Invalid endpoint"),
        ({"AWS_ENDPOINT_URL": "http://user:pw-never-printed@[::1"}, "Invalid IPv6 URL"),
        ({"AWS_PROFILE": "no-such-profile"}, "no-such-profile"),
    ],
)
def test_an_unusable_aws_configuration_is_a_usage_error_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], said: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for args in (
        ("pull", "org/model", "--from", "s3://my-bucket/p", "--cache-dir", str(tmp_path / "c")),
        ("serve", "--store", "s3://my-bucket/p", "--port", "0"),
    ):
        result = hfa(*args)
        assert result.exit_code == 2, result.stderr
        assert said in result.stderr and "AWS_ENDPOINT_URL" in result.stderr
        assert "pw-never-printed" not in result.stdout + result.stderr


class _Parts:
    """A minimal S3 client for resumable_upload: one unfinished upload of the key, which refuses SHA-256 parts
    (begun by another tool without a checksum, as AWS answers: InvalidRequest, checksum type mismatch)."""

    def __init__(self, algorithm: str | None) -> None:
        self.algorithm = algorithm
        self.created: list[str] = []
        self.completed: list[str] = []

    def list_multipart_uploads(self, **kw):  # type: ignore[no-untyped-def]
        upload = {"Key": kw["Prefix"], "UploadId": "theirs", "Initiated": "2026-01-01"}
        if self.algorithm:
            upload["ChecksumAlgorithm"] = self.algorithm
        return {"Uploads": [upload]}

    def get_paginator(self, name: str):  # type: ignore[no-untyped-def]
        class Pages:
            def paginate(self, **kw):  # type: ignore[no-untyped-def]
                return [{"Parts": []}]

        return Pages()

    def create_multipart_upload(self, **kw):  # type: ignore[no-untyped-def]
        self.created.append(kw["ChecksumAlgorithm"])
        return {"UploadId": "mine"}

    def upload_part(self, **kw):  # type: ignore[no-untyped-def]
        from botocore.exceptions import ClientError

        if kw["UploadId"] == "theirs":
            error = {"Code": "InvalidRequest", "Message": "Checksum Type mismatch occurred"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "UploadPart")
        return {"ETag": '"e"'}

    def complete_multipart_upload(self, **kw):  # type: ignore[no-untyped-def]
        self.completed.append(kw["UploadId"])

    def abort_multipart_upload(self, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("hfa never aborts another pusher's upload")


@pytest.mark.parametrize("algorithm", ["CRC32", None])
def test_an_unfinished_upload_begun_without_sha256_does_not_block_the_push(
    tmp_path: Path, algorithm: str | None
) -> None:
    from hfa.store.s3multipart import resumable_upload

    source = tmp_path / "blob"
    source.write_bytes(b"x" * 3000)
    client = _Parts(algorithm)
    wrote, sent = resumable_upload(client, "b", "p/blobs/k", source, 3000, 1024)
    assert wrote and sent == 3000
    assert client.created == ["SHA256"] and client.completed == ["mine"]


def test_a_small_file_the_manifest_calls_huge_is_not_read_into_memory(weed, bucket: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """read_small (indexes, READMEs) is bounded from the bucket as from the Hub: a manifest that lists an
    index of 5 GB is refused before a byte of it is read."""
    from hfa.errors import CheckFailed
    from hfa.resolve.files import RemoteFile, Resolved
    from hfa.resolve.refs import RepoRef
    from hfa.store.s3 import S3Store, parse_s3_url
    from hfa.store.s3source import S3Source

    weed.client().put_object(Bucket=bucket, Key="fleet/blobs/" + "a" * 40, Body=b"{}")
    source = S3Source(S3Store(parse_s3_url(f"s3://{bucket}/fleet")), tmp_path)
    f = RemoteFile("model.safetensors.index.json", 5 << 30, "a" * 40, None)
    ref = RepoRef("org/m")
    resolved = Resolved(ref=ref, commit=COMMIT, files={f.path: f})
    with pytest.raises(CheckFailed, match="larger than"):
        source.read_small(ref, resolved, f)
