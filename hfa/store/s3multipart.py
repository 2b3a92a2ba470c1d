"""Resumable multipart uploads of big blobs (:meth:`hfa.store.s3.S3Store.put_blob`).

The S3 API keeps an unfinished multipart upload, and every part it received, until it is completed
or aborted; it lists them (``ListMultipartUploads`` for the key, ``ListParts`` for the upload). So
an upload cut short (a killed push, a lost network) is resumed by the next push of the same blob:
the newest unfinished upload of the key is continued, each of its parts whose size and SHA-256
(``ChecksumSHA256``, or else the part's ETag, its MD5) match the part read from the cache is kept,
and only the others are sent. Each part goes up with its own ``ChecksumSHA256`` (the store verifies
it), and the upload is completed put-if-absent (``If-None-Match: *``): when another pusher completed
the blob first, this upload is aborted and counted as "already there".

Unfinished uploads of other pushers, or older ones of the same key, are left alone: a bucket
lifecycle rule (``AbortIncompleteMultipartUpload``) removes the abandoned ones.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["precondition_failed", "resumable_upload"]

CONCURRENCY = 4  # parts sent at once (each held in memory while it goes)


def _resume_point(client: Any, bucket: str, key: str) -> tuple[str | None, dict[int, dict[str, Any]]]:
    """The newest unfinished upload of ``key`` and the parts it holds, if there is one."""
    import botocore.exceptions as be

    answer = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    mine = [
        u
        for u in answer.get("Uploads", [])
        if u.get("Key") == key and u.get("UploadId") and u.get("ChecksumAlgorithm") in (None, "SHA256")
    ]  # an upload begun with another checksum (or none, where the store says so) refuses SHA-256 parts
    if not mine:
        return None, {}
    newest = max(mine, key=lambda u: str(u.get("Initiated") or ""))
    parts: dict[int, dict[str, Any]] = {}
    try:
        for page in client.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=newest["UploadId"]):
            for part in page.get("Parts", []):
                parts[int(part["PartNumber"])] = part
    except be.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404"):
            return None, {}  # completed or aborted meanwhile
        raise
    return str(newest["UploadId"]), parts


def _kept(listed: dict[str, Any] | None, data: bytes, sha256_b64: str) -> bool:
    """The part the store holds is ``data``: same size, and same SHA-256 (or, not listed, same MD5 ETag)."""
    if listed is None or int(listed.get("Size", -1)) != len(data):
        return False
    if listed.get("ChecksumSHA256"):
        return bool(listed["ChecksumSHA256"] == sha256_b64)
    etag = str(listed.get("ETag", "")).strip('"').lower()
    return etag == hashlib.md5(data, usedforsecurity=False).hexdigest()


def resumable_upload(
    client: Any,
    bucket: str,
    key: str,
    source: Path,
    size: int,
    part_size: int,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[bool, int]:
    """Upload ``source`` (``size`` bytes) to ``key`` in parts of ``part_size``, continuing an unfinished
    upload of the key. Returns (whether this call completed the object, bytes sent). botocore errors
    propagate (the caller maps them); an interrupted call leaves its upload to be resumed."""
    import botocore.exceptions as be

    upload_id, listed = _resume_point(client, bucket, key)
    if upload_id is not None:
        try:
            return _upload(client, bucket, key, source, size, part_size, on_bytes, upload_id, listed)
        except be.ClientError as exc:
            if precondition_failed(exc) or exc.response.get("Error", {}).get("Code") not in _CANNOT_CONTINUE:
                raise
            # an upload this push cannot continue (begun by another tool without a SHA-256, or gone): its own
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
    return _upload(client, bucket, key, source, size, part_size, on_bytes, upload_id, {})


_CANNOT_CONTINUE = ("InvalidRequest", "InvalidPart", "InvalidPartOrder", "NoSuchUpload", "InvalidArgument")


def _upload(
    client: Any,
    bucket: str,
    key: str,
    source: Path,
    size: int,
    part_size: int,
    on_bytes: Callable[[int], None] | None,
    upload_id: str,
    listed: dict[int, dict[str, Any]],
) -> tuple[bool, int]:
    count = max(1, -(-size // part_size))

    def send(number: int) -> tuple[dict[str, Any], int]:
        offset = (number - 1) * part_size
        with source.open("rb") as fp:
            fp.seek(offset)
            data = fp.read(min(part_size, size - offset))
        sha256_b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
        have = listed.get(number)
        if have is not None and _kept(have, data, sha256_b64):
            return {"PartNumber": number, "ETag": have["ETag"], "ChecksumSHA256": sha256_b64}, 0
        answer = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ContentLength=len(data),
            ChecksumSHA256=sha256_b64,
        )
        if on_bytes is not None:
            on_bytes(len(data))
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": sha256_b64}, len(data)

    with ThreadPoolExecutor(min(CONCURRENCY, count), thread_name_prefix="hfa-part") as pool:
        results = list(pool.map(send, range(1, count + 1)))
    sent = sum(n for _, n in results)
    try:
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": [p for p, _ in results]}
        )  # put-if-absent: S3Store registers If-None-Match for every completion
    except Exception as exc:
        if not precondition_failed(exc):
            raise
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        return False, sent
    return True, sent


def precondition_failed(exc: BaseException | None) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "412") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412
