"""Git-LFS pointer stubs: the small text a `git clone` without git-lfs leaves where content should be."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hfa.scan.model import Finding, Severity

MAX_POINTER = 1024  # real pointers are ~130 bytes; git-lfs refuses to parse anything over 1024
_POINTER_RE = re.compile(
    rb"\Aversion https://(?:git-lfs\.github\.com/spec/v1|hawser\.github\.com/spec/v1)\n"
    rb"(?:[a-z0-9.\-]+ [^\n]*\n)*?"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"(?:[a-z0-9.\-]+ [^\n]*\n)*?"
    rb"size (?P<size>[0-9]{1,20})\n"
    rb"(?:[a-z0-9.\-]+ [^\n]*\n)*\Z"
)


@dataclass(frozen=True)
class LfsPointer:
    oid: str
    size: int


def parse_pointer(data: bytes) -> LfsPointer | None:
    """The pointer's oid and size when ``data`` is a whole Git-LFS pointer file, else None."""
    if len(data) > MAX_POINTER or not data.startswith(b"version "):
        return None
    text = data.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    match = _POINTER_RE.match(text)
    if not match:
        return None
    return LfsPointer(match.group("oid").decode(), int(match.group("size")))


def check_pointer(data: bytes, display: str) -> list[Finding]:
    pointer = parse_pointer(data)
    if pointer is None:
        return []
    return [
        Finding(
            Severity.HIGH,
            "lfs.pointer-stub",
            f"Git-LFS pointer stub instead of content (claims sha256 {pointer.oid[:12]}…, {pointer.size} bytes):"
            " the file was cloned without git-lfs; loading it fails (e.g. safetensors HeaderTooLarge)",
            display,
            {"oid": pointer.oid, "size": pointer.size},
        )
    ]
