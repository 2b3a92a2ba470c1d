"""Bounded answers: an inference answer is read only up to a size and a deadline.

``InferenceClient`` reads a whole answer into memory with no bound, and httpx applies its timeout
to each read, so a server could send 10 GB, or trickle bytes forever. While an
:class:`~hfa.infer.client.InferenceAPI` request runs (:func:`bounded`), a response hook on
huggingface_hub's session (and only then: other users of the session are untouched) refuses a
declared length over :data:`MAX_ANSWER_BYTES`, decodes gzip/deflate itself within that bound (a
small compressed body cannot expand past it), refuses other encodings (hfa asks for only these
two), and stops when the request's deadline passes. Imported when a request is made.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx2

__all__ = ["MAX_ANSWER_BYTES", "AnswerTooLarge", "AnswerTooSlow", "bounded"]

MAX_ANSWER_BYTES = 64 * 1024 * 1024  # the largest answer hfa reads, decoded (an image, token-level embeddings)
_BOUNDS: ContextVar[tuple[int, float] | None] = ContextVar("hfa_infer_bounds", default=None)


class AnswerTooLarge(Exception):
    """The answer passed :data:`MAX_ANSWER_BYTES` (raised while it is read; InferenceAPI classifies it)."""


class AnswerTooSlow(Exception):
    """The answer was still arriving when the request's deadline passed."""


class _BoundedBody(httpx2.SyncByteStream):
    """A response's byte stream that stops past a size (after decoding gzip/deflate itself) or a deadline."""

    def __init__(self, inner: Any, limit: int, deadline: float, encoding: str) -> None:
        self.inner = inner
        self.limit = limit
        self.deadline = deadline
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
        self.decoder = zlib.decompressobj(wbits) if wbits is not None else None

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self.inner:
            if time.monotonic() > self.deadline:
                raise AnswerTooSlow()
            if self.decoder is not None:
                try:
                    chunk = self.decoder.decompress(chunk, self.limit + 1 - seen)
                except zlib.error as exc:
                    raise ValueError(f"the answer is not valid compressed data ({exc})") from None
                if self.decoder.unconsumed_tail:
                    raise AnswerTooLarge()
            seen += len(chunk)
            if seen > self.limit:
                raise AnswerTooLarge()
            yield chunk

    def close(self) -> None:
        self.inner.close()


def _bound_response(response: Any) -> None:
    """The session's response hook (see the module's docstring); does nothing outside :func:`bounded`."""
    bounds = _BOUNDS.get()
    if bounds is None:
        return
    limit, deadline = bounds
    if time.monotonic() > deadline:
        raise AnswerTooSlow()
    try:
        declared = int(response.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        if declared > limit:
            raise AnswerTooLarge()
    elif encoding in ("gzip", "deflate"):
        del response.headers["Content-Encoding"]  # decoded by _BoundedBody, within the bound, not by httpx
    else:
        raise ValueError(f"the answer is compressed with {encoding!r}, which hfa did not ask for")
    response.stream = _BoundedBody(response.stream, limit, deadline, encoding)


@contextmanager
def bounded(seconds: float, limit: int | None = None) -> Iterator[None]:
    """Within this block, answers through huggingface_hub's session are bounded to ``limit`` bytes
    (default :data:`MAX_ANSWER_BYTES`) and must have arrived ``seconds`` from now."""
    limit = MAX_ANSWER_BYTES if limit is None else limit
    from huggingface_hub import get_session

    session = get_session()
    hooks = session.event_hooks
    if _bound_response not in hooks["response"]:
        session.event_hooks = {**hooks, "response": [*hooks["response"], _bound_response]}
    token = _BOUNDS.set((limit, time.monotonic() + seconds))
    try:
        yield
    finally:
        _BOUNDS.reset(token)
