"""JSON from outside (a server's answer, a bundle manifest, a repository's file) parsed with a depth bound.

The standard library's parser recurses once per nested array or object: a document nested
100,000 deep ends in ``RecursionError``, which no caller expects. :func:`loads` measures the
nesting first, at C speed (:func:`depth`), and refuses a document deeper than ``max_depth``
with :class:`JsonTooDeep`. Its errors are ``ValueError``
(:class:`json.JSONDecodeError` for a bad document, ``UnicodeDecodeError`` for bad bytes), so
callers that catch those keep working. Sizes are the reader's to bound, before the bytes
get here.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 100  # Hub answers nest about 10 deep (cardData's model-index); Python's parser fails near 1,000

# What nesting depends on: brackets, and the quotes that hide brackets inside strings.
_DELETE = bytes(b for b in range(256) if b not in b'[]{}"')
_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: an opener +1, a closer -1
_STRING = re.compile(rb'"[^"]*"')


class JsonTooDeep(json.JSONDecodeError):
    """A document nested deeper than the bound: refused before it is parsed."""

    def __init__(self, depth: int, limit: int) -> None:
        ValueError.__init__(self, f"JSON nested {depth} levels deep (more than {limit})")
        self.msg = str(self)
        self.doc = ""
        self.pos = self.lineno = self.colno = 0
        self.depth = depth
        self.limit = limit

    def __reduce__(self) -> Any:  # pragma: no cover - pickled only across processes
        return (JsonTooDeep, (self.depth, self.limit))


def depth(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text (UTF-8) nest; brackets inside strings do not count.

    Every step runs at C speed (about 60 ms for a 40 MB listing, a fifth of parsing it):

    1. escapes go: ``\\\\`` pairs first, then ``\\"`` (``replace`` pairs backslashes from the left,
       as JSON does), so every quote left opens or closes a string;
    2. all but brackets and quotes go (``translate``), then every ``""`` (a string without
       brackets, or two strings meeting): removing two adjacent quotes keeps every other
       bracket inside or outside a string as it was;
    3. the few strings left (those holding brackets) go by a regular expression;
    4. the brackets become +1/-1 and ``accumulate`` gives the running depth.
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    reduced = data.translate(None, _DELETE).replace(b'""', b"")
    if b'"' in reduced:
        reduced = _STRING.sub(b"", reduced).replace(b'"', b"")  # a quote left over: not JSON anyway
    if not reduced:
        return 0
    from array import array
    from itertools import accumulate

    return max(0, max(accumulate(array("b", reduced.translate(_SIGNS)))))


def loads(data: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` for untrusted text: refuses nesting deeper than ``max_depth`` (:class:`JsonTooDeep`).

    Other keyword arguments (``object_pairs_hook``, ...) go to ``json.loads``.
    """
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    else:
        raw = bytes(data)
        encoding = json.detect_encoding(raw)
        if encoding != "utf-8":  # UTF-16/32 as json.loads reads them: measured as UTF-8
            data = raw.decode(encoding)
            raw = data.encode("utf-8", "surrogatepass")
    if raw.count(b"[") + raw.count(b"{") > max_depth and (found := depth(raw)) > max_depth:
        raise JsonTooDeep(found, max_depth)
    try:
        return json.loads(data, **kwargs)
    except RecursionError:  # pragma: no cover - the depth bound keeps the parser far from the stack's end
        raise JsonTooDeep(max_depth + 1, max_depth) from None
