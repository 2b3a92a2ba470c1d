"""What a file is, from its first bytes (never from its name), and whether its name says pickle.

:func:`kind` names the container or format the head starts; :func:`says_pickle` tells whether a
name is one a loader would unpickle (``torch.load`` of a ``.bin``, ``joblib.load``, pandas'
``read_pickle`` with its compression suffixes, ``numpy.load`` with ``allow_pickle``).
"""

from __future__ import annotations

ZIP_LOCAL = b"PK\x03\x04"
ZIP_END = b"PK\x05\x06"
NPY_MAGIC = b"\x93NUMPY"
LZ4_FRAME = b"\x04\x22\x4d\x18"
ZSTD_FRAME = b"\x28\xb5\x2f\xfd"
HEAD = 512  # enough for a tar header

# Names a loader unpickles. A file so named whose content the scanner cannot read is a finding.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pck", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".dill", ".npy", ".npz")
# Suffixes loaders strip before they unpickle (joblib's, pandas' compression="infer").
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".lzma", ".lz4", ".zst", ".zstd", ".z", ".zip", ".tar", ".tgz")
# Formats that are not pickles and that no pickle loader reads: recognised, so a ".bin" of one
# is not "unparseable" (llama.cpp's GGUF and the GGML files before it; safetensors).
KNOWN_DATA = ("gguf", "ggml", "safetensors")


def says_pickle(name: str) -> bool:
    """Whether ``name`` (a file or member path) is one a loader unpickles.

    ``.bin`` is also OpenVINO's and Core ML's raw-weights suffix: those (named as hfa.resolve.selection
    classifies them: under ``openvino/`` or named ``openvino*``, inside a ``.mlpackage``) are not.
    """
    parts = name.lower().split("/")
    low = parts[-1]
    if low.endswith(".bin") and (
        low.startswith("openvino") or "openvino" in parts[:-1] or any(p.endswith(".mlpackage") for p in parts[:-1])
    ):
        return False
    stripped = True
    while stripped:
        stripped = False
        for suffix in COMPRESSION_SUFFIXES:
            if low.endswith(suffix) and len(low) > len(suffix):
                low = low[: -len(suffix)]
                stripped = True
    return low.endswith(PICKLE_SUFFIXES)


def _tar_header(head: bytes) -> bool:
    """A valid tar header block (ustar, GNU, or old v7), judged by its checksum as tarfile does."""
    if len(head) < 512 or head[:1] == b"\x00":
        return False
    field = head[148:156]
    try:
        text = field.rstrip(b"\x00 ").decode("ascii")
        stored = int(text, 8) if text else -1
    except ValueError:
        return False
    unsigned = sum(head[:148]) + 8 * 32 + sum(head[156:512])
    if stored != unsigned:
        return False
    return head[257:262] == b"ustar" or all(c in b"01234567 \x00" for c in head[100:108])


def kind(head: bytes) -> str | None:
    """The container or format ``head`` starts, or None (a pickle, or something else)."""
    if head[:4] in (ZIP_LOCAL, ZIP_END):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if _tar_header(head):  # before the compressions: a member name can start like their magic
        return "tar"
    if head[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:3] == b"]\x00\x00":
        return "lzma"
    if head[:4] == LZ4_FRAME:
        return "lz4"
    if head[:4] == ZSTD_FRAME:
        return "zstd"
    if head[:2] == b"ZF" and head[2:4] == b"0x":
        return "zfile"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    if head[:4] == b"GGUF" or head[:4] in (b"lmgg", b"fmgg", b"tjgg"):
        return "gguf" if head[:4] == b"GGUF" else "ggml"
    if len(head) >= 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 1 << 30:
        return "safetensors"
    return None
