"""hfa.store.s3 against a real SeaweedFS, without the CLI: multipart put-if-absent, checksums, URLs, lazy boto3."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hfa.store.s3 as s3mod
from hfa.errors import CheckFailed, UsageError
from hfa.store.s3 import S3Store, parse_s3_url


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://my-bucket").url == "s3://my-bucket/"
    assert parse_s3_url("s3://my-bucket//a/b/").prefix == "a/b/"
    for bad in ("https://b/x", "s3://B/x", "s3://ab", "s3://bucket/a/../b", "bucket/x"):
        with pytest.raises(UsageError):
            parse_s3_url(bad)


@given(st.text(max_size=80))
def test_parse_s3_url_never_crashes(text: str) -> None:
    try:
        loc = parse_s3_url(text)
    except UsageError:
        return
    assert loc.prefix == "" or (loc.prefix.endswith("/") and ".." not in loc.prefix.split("/"))


def test_big_blob_goes_up_in_parts_once(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 5 << 20)
    data = os.urandom(11 << 20)
    src = tmp_path / "big"
    src.write_bytes(data)
    etag = hashlib.sha256(data).hexdigest()
    store = S3Store(parse_s3_url(f"s3://{bucket}/p"))
    seen: list[int] = []
    assert store.put_blob(etag, src, sha256_hex=etag, on_bytes=seen.append) is True
    assert sum(seen) == len(data)
    assert store.blob_size(etag) == len(data)
    # completed put-if-absent: a racing (or repeated) pusher does not replace it
    assert store.put_blob(etag, src, sha256_hex=etag) is False
    body = store.open_blob(etag)
    assert hashlib.sha256(body.read()).hexdigest() == etag


def test_store_refuses_bytes_that_do_not_match_their_checksum(bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "small"
    src.write_bytes(b"not what the name says")
    wrong = hashlib.sha256(b"something else").hexdigest()
    store = S3Store(parse_s3_url(f"s3://{bucket}/p"))
    with pytest.raises(CheckFailed, match="checksum does not match"):
        store.put_blob(wrong, src, sha256_hex=wrong)
    assert store.blob_size(wrong) is None


def test_put_if_absent_keeps_the_first_writer(bucket: str, tmp_path: Path) -> None:
    store = S3Store(parse_s3_url(f"s3://{bucket}/p"))
    assert store.put_bytes(store.key("x"), b"first", if_absent=True) is True
    assert store.put_bytes(store.key("x"), b"second", if_absent=True) is False
    assert store.get_bytes(store.key("x"), limit=100) == b"first"
    with pytest.raises(CheckFailed, match="over 3 bytes"):
        store.get_bytes(store.key("x"), limit=3)


def test_push_and_pull_commands_do_not_import_boto3() -> None:
    code = "import sys, hfa.cli.push, hfa.cli.pull, hfa.push; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class Interrupted(Exception):
    pass


def test_interrupted_multipart_upload_resumes(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 40 MiB blob in 5 MiB parts, cut after 3 of 8 parts went up: the next push sends only the rest, and
    the object it completes hashes right."""
    import hfa.store.s3multipart as mp

    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(mp, "CONCURRENCY", 1)  # parts in order: the cut falls at a known place
    data = os.urandom(40 << 20)
    src = tmp_path / "big"
    src.write_bytes(data)
    etag = hashlib.sha256(data).hexdigest()
    first = S3Store(parse_s3_url(f"s3://{bucket}/p"))
    sent: list[int] = []

    def cut_after_three(n: int) -> None:
        sent.append(n)
        if len(sent) == 3:
            raise Interrupted

    with pytest.raises(Exception):  # noqa: B017 - the push is cut (as by a kill or a lost network)
        first.put_blob(etag, src, sha256_hex=etag, on_bytes=cut_after_three)
    assert 15 << 20 <= sum(sent) <= 20 << 20  # the parts under way when it was cut finish; no new one starts
    assert first.blob_size(etag) is None  # nothing visible under the blob's key
    again = S3Store(parse_s3_url(f"s3://{bucket}/p"))
    assert again.put_blob(etag, src, sha256_hex=etag) is True
    assert again.bytes_sent == (40 << 20) - sum(sent)  # the parts the store kept were not sent again
    body = again.open_blob(etag)
    assert hashlib.sha256(body.read()).hexdigest() == etag
    uploads = again.client.list_multipart_uploads(Bucket=bucket, Prefix=again.blob_key(etag)).get("Uploads", [])
    assert uploads == []  # completed: nothing left to resume or clean


def test_resumed_part_that_changed_is_sent_again(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hfa.store.s3multipart as mp

    monkeypatch.setattr(s3mod, "MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(mp, "CONCURRENCY", 1)
    other = os.urandom(12 << 20)
    data = other[: 5 << 20] + os.urandom(7 << 20)  # same first part, another second part
    (tmp_path / "a").write_bytes(other)
    (tmp_path / "b").write_bytes(data)
    etag = hashlib.sha256(data).hexdigest()
    store = S3Store(parse_s3_url(f"s3://{bucket}/p"))
    calls: list[int] = []

    def cut_after_two(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise Interrupted

    with pytest.raises(Exception):  # noqa: B017 - an upload under this key of other bytes, cut short
        store.put_blob(etag, tmp_path / "a", sha256_hex=etag, on_bytes=cut_after_two)
    again = S3Store(parse_s3_url(f"s3://{bucket}/p"))
    assert again.put_blob(etag, tmp_path / "b", sha256_hex=etag) is True
    assert again.bytes_sent == 7 << 20  # part 1 kept (same bytes), part 2 sent again (other bytes)
    assert hashlib.sha256(again.open_blob(etag).read()).hexdigest() == etag
