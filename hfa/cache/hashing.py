"""Content hashes as the Hub names them: git blob sha1 for regular files, sha256 for LFS files.

hashlib is imported where a hash is computed: loading OpenSSL costs a few milliseconds that
commands which never hash (a warm pull, a scan) do not pay.
"""

from __future__ import annotations

import re
from typing import BinaryIO

SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")  # \Z, not $: "$" lets a trailing newline pass
SHA1_RE = re.compile(r"[0-9a-f]{40}\Z")
COMMIT_RE = SHA1_RE


def is_blob_name(name: str) -> bool:
    """A name the cache gives a blob: 64 hex digits (sha256, LFS files) or 40 (git sha1)."""
    return bool(SHA256_RE.match(name) or SHA1_RE.match(name))


LFS_SPEC = "https://git-lfs.github.com/spec/v1"
CHUNK = 1 << 20

# The patterns of the Hub's default .gitattributes, and its 10 MB rule: which files the Hub keeps in
# LFS (so their blobs are named by sha256) when nothing else says.
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
    "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "*.tar.*", "*.tar", "*.tflite",
    "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*", "*.gguf", "*.ggml", "*.mp3", "*.wav",
    "*.png", "*.jpg", "*.jpeg", "*.webp",
)  # fmt: skip
LFS_SIZE = 10 * 1024 * 1024
LFS_HEAD = 8000  # bytes of a file's start searched for a NUL (binary: LFS), as git does


def is_lfs_path(path: str, size: int, head: bytes = b"") -> bool:
    """Whether the Hub's defaults keep this file in LFS: a default pattern, 10 MB or more, or binary."""
    import fnmatch

    name = path.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatch(name, pat) for pat in LFS_PATTERNS):
        return True
    return size >= LFS_SIZE or b"\0" in head[:LFS_HEAD]


def git_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (sha1 over ``blob <len>\\0`` + data)."""
    import hashlib

    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def git_sha1_file(fp: BinaryIO, size: int) -> str:
    import hashlib

    h = hashlib.sha1(b"blob %d\0" % size)
    while chunk := fp.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(fp: BinaryIO) -> str:
    import hashlib

    return hashlib.file_digest(fp, "sha256").hexdigest() if hasattr(hashlib, "file_digest") else _sha256_loop(fp)


def _sha256_loop(fp: BinaryIO) -> str:  # Python 3.10
    import hashlib

    h = hashlib.sha256()
    while chunk := fp.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git-LFS pointer file text that stands for a file in git."""
    return f"version {LFS_SPEC}\noid sha256:{sha256}\nsize {size}\n".encode()
