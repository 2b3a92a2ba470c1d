"""An S3-compatible bucket as a shared store of repositories: ``s3://BUCKET/PREFIX``.

Layout under the prefix (every key is derived from content or a name; nothing is listed)::

    blobs/<etag>                                  a file's bytes, named by its sha256 (LFS) or git-sha1
    repos/<type>s/<org>/<name>/commits/<commit>.json   the commit's manifest: every file's path,
                                                       size, blob id and sha256 (LFS), card data
    repos/<type>s/<org>/<name>/refs/<revision>    the commit a branch or tag names (text)
    repos/<type>s/<org>/<name>/card.json          card data of the last pushed commit (for search)

Blobs and manifests are immutable and written put-if-absent (``If-None-Match: *``): racing
pushers cannot overwrite each other, and a second push sends nothing. A blob keyed by sha256
is sent with ``ChecksumSHA256`` (multipart: each part's), so the store verifies what it keeps;
a reader still hashes every byte (:mod:`hfa.store.s3source`), because a bucket can be written
by others.

The client is boto3 (``pip install 'hfa[s3]'``), imported on first use: it reads credentials,
region and endpoint from the standard AWS environment and config (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``...). Big blobs go up as multipart uploads that a later
push resumes (:mod:`hfa.store.s3multipart`).
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfa.errors import AccessDenied, CheckFailed, HfaError, LocalError, NetworkError, NotFound, UsageError
from hfa.store.s3multipart import precondition_failed

__all__ = [
    "MANIFEST_LIMIT",
    "MULTIPART_THRESHOLD",
    "SMALL_LIMIT",
    "S3Location",
    "S3Store",
    "parse_s3_url",
    "precondition_failed",
    "s3_error",
]

MULTIPART_THRESHOLD = 64 << 20  # blobs this big go up in parts of this size, resumably (hfa.store.s3multipart)
MANIFEST_LIMIT = 64 << 20  # a manifest (or ref, card) larger than this is refused, not parsed
SMALL_LIMIT = 1 << 20  # refs and cards


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "some/prefix/" (always ends with "/")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """``s3://BUCKET[/PREFIX]`` -> :class:`S3Location`; anything else is a usage error."""
    import re

    if not url.startswith("s3://"):
        raise UsageError(f"'{url}' is not an s3:// URL", "name the bucket as s3://BUCKET/PREFIX")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise UsageError(
            f"'{bucket}' is not a valid bucket name",
            "bucket names are 3-63 lowercase letters, digits, '.' and '-': s3://my-bucket/prefix",
        )
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise UsageError(f"the prefix of '{url}' contains '.' or '..'", "name a plain prefix: s3://BUCKET/models")
    return S3Location(bucket, "".join(p + "/" for p in parts))


def s3_error(exc: BaseException, what: str, *, writing: bool = False) -> HfaError:
    """A boto3/botocore exception as the one HfaError it means (never an internal error).

    ``writing``: the request wrote; a refusal of valid credentials then names the write access missing."""
    import botocore.exceptions as be

    hint_creds = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for this bucket"
    if isinstance(exc, be.NoCredentialsError | be.PartialCredentialsError):
        return UsageError(f"no AWS credentials to reach {what}", hint_creds)
    if isinstance(exc, be.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return NotFound(f"the bucket of {what} does not exist", "create it, or check the s3:// URL")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return NotFound(f"{what} is not in the bucket", "push it first: `hfa push --to s3://BUCKET/PREFIX REPO`")
        if writing and code == "AccessDenied":
            return AccessDenied(
                f"the bucket refused to write {what} ({code}): these credentials may read it but not write",
                "use an identity allowed s3:PutObject (and the multipart calls) under the prefix, e.g. another"
                " AWS_PROFILE",
            )
        if code in ("AccessDenied", "403", "SignatureDoesNotMatch", "InvalidAccessKeyId") or status == 403:
            return AccessDenied(f"the bucket refused access to {what} ({code or status})", hint_creds)
        if code in ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"):
            return CheckFailed(
                f"the bucket refused {what}: its checksum does not match ({code})", "check the cache with `hfa verify`"
            )
        return NetworkError(f"the bucket answered {code or status} for {what}", "retry; check AWS_ENDPOINT_URL")
    if isinstance(exc, be.EndpointConnectionError | be.ConnectionError | be.ReadTimeoutError):
        return NetworkError(f"cannot reach the bucket for {what}", "check AWS_ENDPOINT_URL and the network")
    if isinstance(exc, be.ProfileNotFound | be.EndpointProviderError | be.InvalidRegionError | be.InvalidConfigError):
        return UsageError(
            f"the AWS configuration cannot reach {what}: {_redacted(exc)}",
            "fix AWS_ENDPOINT_URL (http(s)://HOST:PORT), AWS_PROFILE or AWS_REGION",
        )
    if isinstance(exc, be.BotoCoreError):
        return NetworkError(
            f"S3 request for {what} failed: {_redacted(exc)}", "check AWS_ENDPOINT_URL, AWS_REGION and credentials"
        )
    if isinstance(exc, OSError):
        return LocalError(f"cannot read or write a local file for {what}: {exc.strerror or exc}", "check the disk")
    return NetworkError(f"S3 request for {what} failed: {type(exc).__name__}", "retry")


def _redacted(exc: BaseException) -> str:
    """``exc``'s text without the ``user:password@`` of any URL in it (an AWS_ENDPOINT_URL may hold one)."""
    import re

    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s`'\"]*@", r"\1", str(exc))


def _make_client(workers: int) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UsageError("s3:// needs boto3, which is not installed", "pip install 'hfa[s3]'") from None
    config = Config(
        max_pool_connections=max(10, workers * 2),
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation="when_required",  # hfa sends the checksums it means to
        response_checksum_validation="when_required",
        signature_version="s3v4",  # presigned URLs too (boto3 would sign them with SigV2)
    )
    import botocore.exceptions as be

    try:
        return boto3.session.Session().client("s3", config=config)
    except (ValueError, be.BotoCoreError) as exc:  # an AWS_ENDPOINT_URL that is no URL, an unknown AWS_PROFILE
        raise UsageError(
            f"the AWS configuration is not usable: {_redacted(exc)}",
            "fix AWS_ENDPOINT_URL (http(s)://HOST:PORT), AWS_PROFILE or AWS_REGION",
        ) from None


class S3Store:
    """One bucket prefix: blobs, manifests, refs and card data of many repositories.

    Thread-safe (one boto3 client, which is); all methods raise :class:`HfaError`.
    """

    def __init__(self, location: S3Location, *, workers: int = 16, client: Any = None) -> None:
        self.location = location
        self.workers = workers
        self._client = client
        self._making = threading.Lock()
        self.requests_made = 0
        self.bytes_sent = 0  # blob bytes that went over the network (parts kept from an earlier try do not)

    def _sent(self, n: int) -> None:
        with self._making:
            self.bytes_sent += n

    @property
    def client(self) -> Any:
        with self._making:
            if self._client is None:
                self._client = _make_client(self.workers)
                self._client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", _if_none_match)
            return self._client

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        self.requests_made += 1
        try:
            yield
        except HfaError:
            raise
        except Exception as exc:
            raise s3_error(exc, what) from None

    # -- keys ------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        return self.location.prefix + "/".join(parts)

    def blob_key(self, etag: str) -> str:
        return self.key("blobs", etag)

    def repo_key(self, repo_type: str, repo_id: str, *parts: str) -> str:
        return self.key("repos", f"{repo_type}s", repo_id, *parts)

    # -- blobs -----------------------------------------------------------------------------
    def blob_size(self, etag: str) -> int | None:
        """The size of the stored blob, or None if there is none."""
        import botocore.exceptions as be

        self.requests_made += 1
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=self.blob_key(etag))
        except be.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise s3_error(exc, f"blob {etag}") from None
        except Exception as exc:
            raise s3_error(exc, f"blob {etag}") from None
        return int(head["ContentLength"])

    def has(self, etag: str, size: int) -> bool:
        return self.blob_size(etag) == size

    def put_blob(
        self, etag: str, source: Path, *, sha256_hex: str, on_bytes: Callable[[int], None] | None = None
    ) -> bool:
        """Upload ``source`` as blob ``etag`` unless one is there; True if this call wrote it.

        ``sha256_hex`` is the content's sha256: sent as ``ChecksumSHA256`` so the store refuses
        other bytes. Blobs of :data:`MULTIPART_THRESHOLD` and more go up as a multipart upload in parts
        of that size, each with its own SHA-256, completed put-if-absent, and resumed by the next call
        when it was cut short (:mod:`hfa.store.s3multipart`).
        """
        import botocore.exceptions as be

        what = f"blob {etag}"
        key = self.blob_key(etag)
        size = source.stat().st_size
        try:
            if size < MULTIPART_THRESHOLD:
                self.requests_made += 1
                with source.open("rb") as fp:
                    self.client.put_object(
                        Bucket=self.location.bucket,
                        Key=key,
                        Body=fp,
                        ContentLength=size,
                        ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256_hex)).decode(),
                        IfNoneMatch="*",
                    )
                self._sent(size)
                if on_bytes:
                    on_bytes(size)
            else:
                from hfa.store.s3multipart import resumable_upload

                self.requests_made += 3 + size // MULTIPART_THRESHOLD
                wrote, sent = resumable_upload(
                    self.client, self.location.bucket, key, source, size, MULTIPART_THRESHOLD, on_bytes
                )
                self._sent(sent)
                return wrote
        except Exception as exc:
            cause = exc.__context__ if not isinstance(exc, be.ClientError) else exc  # S3UploadFailedError wraps it
            if precondition_failed(exc) or precondition_failed(cause):
                return False  # another pusher wrote it first: same key, same content
            raise s3_error(cause if isinstance(cause, be.ClientError) else exc, what, writing=True) from None
        return True

    def open_blob(self, etag: str) -> Any:
        """A streaming body of blob ``etag`` (``.read(n)``, ``.close()``)."""
        with self._call(f"blob {etag}"):
            return self.client.get_object(Bucket=self.location.bucket, Key=self.blob_key(etag))["Body"]

    # -- small documents -------------------------------------------------------------------
    def put_bytes(self, key: str, body: bytes, *, if_absent: bool, content_type: str = "text/plain") -> bool:
        import hashlib

        import botocore.exceptions as be

        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_absent else {}
        self.requests_made += 1
        try:
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
                **extra,
            )
        except be.ClientError as exc:
            if precondition_failed(exc):
                return False
            raise s3_error(exc, f"s3://{self.location.bucket}/{key}", writing=True) from None
        except Exception as exc:
            raise s3_error(exc, f"s3://{self.location.bucket}/{key}", writing=True) from None
        return True

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` (absent is fine)."""
        with self._call(key):
            self.client.delete_object(Bucket=self.location.bucket, Key=key)

    def age(self, key: str) -> float | None:
        """Seconds since the object at ``key`` was last written, by the store's own clock (its ``Date``
        header against the object's ``LastModified``: no replica's clock is trusted); None if absent."""
        from email.utils import parsedate_to_datetime

        import botocore.exceptions as be

        self.requests_made += 1
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=key)
        except be.ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise s3_error(exc, f"s3://{self.location.bucket}/{key}") from None
        except Exception as exc:
            raise s3_error(exc, f"s3://{self.location.bucket}/{key}") from None
        written = head.get("LastModified")
        if written is None:
            return None
        try:
            now = parsedate_to_datetime(head["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()
        except (KeyError, TypeError, ValueError):
            now = time.time()
        return max(0.0, now - written.timestamp())

    def exists(self, key: str) -> bool:
        return self.get_bytes(key, limit=0, missing_ok=True, head_only=True) is not None

    def get_bytes(self, key: str, *, limit: int, missing_ok: bool = False, head_only: bool = False) -> bytes | None:
        """The object at ``key`` (at most ``limit`` bytes, else refused); None if absent and ``missing_ok``."""
        import botocore.exceptions as be

        self.requests_made += 1
        try:
            if head_only:
                self.client.head_object(Bucket=self.location.bucket, Key=key)
                return b""
            answer = self.client.get_object(Bucket=self.location.bucket, Key=key)
            if int(answer.get("ContentLength", 0)) > limit:
                answer["Body"].close()
                raise CheckFailed(
                    f"{self.location.url}: '{key}' is over {limit} bytes", "the bucket holds something else there"
                )
            data: bytes = answer["Body"].read(limit + 1)
        except be.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if missing_ok and code != "NoSuchBucket" and (status == 404 or code == "NoSuchKey"):
                return None  # the object is absent (a missing bucket is an error of its own)
            raise s3_error(exc, f"s3://{self.location.bucket}/{key}") from None
        except HfaError:
            raise
        except Exception as exc:
            raise s3_error(exc, f"s3://{self.location.bucket}/{key}") from None
        if len(data) > limit:
            raise CheckFailed(
                f"{self.location.url}: '{key}' is over {limit} bytes", "the bucket holds something else there"
            )
        return data


def _if_none_match(params: dict[str, Any], **_: Any) -> None:
    """Complete every multipart upload put-if-absent (boto3's transfer has no option for it)."""
    params.setdefault("IfNoneMatch", "*")
