"""What ``hfa push --to`` and ``hfa pull --from`` share: the bucket from its URL, AWS secrets kept out of output."""

import os
from typing import Any

AWS_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def protect_aws(out: Any) -> None:
    """No AWS credential from the environment ever reaches stdout or stderr, whatever a message holds."""
    for name in AWS_SECRETS:
        out.add_secret(os.environ.get(name) or None)


def open_bucket(url: str, workers: int) -> Any:
    """The :class:`~hfa.store.s3.S3Store` of ``s3://BUCKET/PREFIX`` (boto3 is imported on first request)."""
    from hfa.store.s3 import S3Store, parse_s3_url

    return S3Store(parse_s3_url(url), workers=workers)
