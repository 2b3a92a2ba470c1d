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
SEVENZIP = b"7z\xbc\xaf\x27\x1c"
HEAD = 512  # enough for a tar header

# Names a loader unpickles. A file so named whose content the scanner cannot read is a finding.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pck", ".bin", ".pt", ".pth", ".ckpt", ".joblib", ".dill", ".npy", ".npz")
# Suffixes loaders strip before they unpickle (joblib's, pandas' compression="infer").
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".lzma", ".lz4", ".zst", ".zstd", ".z", ".zip", ".tar", ".tgz")
# Compressed streams the scanner opens that hold one stream, scanned under the file's own name.
STREAM_SUFFIXES = (".gz", ".bz2", ".xz", ".lzma", ".lz4", ".zst", ".zstd")
# Formats that are not pickles and that no pickle loader reads: recognised, so a ".bin" of one
# is not "unparseable" (llama.cpp's GGUF and the GGML files before it; safetensors).
KNOWN_DATA = ("gguf", "ggml", "safetensors")
# Containers and compressed streams the scanner does not open, by their magic bytes (at an
# offset, for a few): each one is a finding (archive.unsupported-container), never a pass.
UNSUPPORTED_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"Rar!\x1a\x07\x00", "RAR"),
    (0, b"Rar!\x1a\x07\x01\x00", "RAR 5"),
    (0, b"MSCF\x00\x00\x00\x00", "Microsoft Cabinet"),
    (0, b"!<arch>\n", "ar (a .deb)"),
    (0, b"\xed\xab\xee\xdb", "RPM"),
    (0, b"070701", "cpio"),
    (0, b"070702", "cpio"),
    (0, b"070707", "cpio"),
    (0, b"xar!", "xar"),
    (0, b"LZIP", "lzip"),
    (0, b"\x89LZO\x00\r\n\x1a\n", "lzop"),
    (0, b"\xff\x06\x00\x00sNaPpY", "Snappy framed"),
    (0, b"\x02\x21\x4c\x18", "legacy lz4"),
    (0, b"MSWIM\x00\x00\x00", "Windows Imaging (WIM)"),
    (0, b"hsqs", "SquashFS"),
    (0, b"sqsh", "SquashFS"),
    (0, b"PK\x07\x08", "split zip"),
    (0, b"PK00", "split zip"),
    (2, b"-lh", "LHA"),
    (7, b"**ACE**", "ACE"),
    (20, b"\xdc\xa7\xc4\xfd", "zoo"),
)
# Names of containers the scanner does not open (and of a 7z, in case its content is not one).
UNSUPPORTED_SUFFIXES = (
    ".7z", ".rar", ".cab", ".ar", ".deb", ".rpm", ".cpio", ".xar", ".lz", ".lzo", ".sz", ".br", ".wim",
    ".squashfs", ".sqsh", ".lzh", ".lha", ".ace", ".zoo", ".arj", ".iso", ".dmg", ".zpaq",
)  # fmt: skip


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


def unsupported_name(name: str) -> str | None:
    """The archive kind that ``name`` (a file or member path) says, if the scanner does not open it.

    Compressed-stream suffixes are looked through: a stream is scanned under its file's name, so what
    ``x.rar.gz`` decompresses to is named ``.rar`` as much as ``x.rar`` is.
    """
    base = name.rsplit("/", 1)[-1]
    while base.lower().endswith(STREAM_SUFFIXES) and base.count(".") > 1:
        base = base.rsplit(".", 1)[0]
    if base.endswith(".Z") and len(base) > 2:  # compress(1); lower-case .z is joblib's zlib
        return "Z"
    low = base.lower()
    head, dot, tail = low.rpartition(".")
    if dot and len(tail) == 3 and tail.isdigit() and head.endswith((".7z", ".zip", ".rar")):
        return tail  # x.7z.001, a split archive volume: the rest is in other files
    for suffix in UNSUPPORTED_SUFFIXES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return suffix[1:]
    return None


def unsafe_name(name: str) -> bool:
    """Whether an archive member's name leads outside the folder it is extracted to."""
    if ".." not in name and name[:1] not in ("/", "\\") and name[1:2] != ":":
        return False  # the common case in three comparisons
    path = name.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":" and path[0].isalpha()):
        return True
    return ".." in path.split("/")


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
    if head[:6] == SEVENZIP:
        return "7z"
    if unsupported(head) is not None:
        return "unsupported"
    if head[:2] == b"ZF" and head[2:4] == b"0x":
        return "zfile"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    if head[:4] == b"GGUF" or head[:4] in (b"lmgg", b"fmgg", b"tjgg"):
        return "gguf" if head[:4] == b"GGUF" else "ggml"
    if len(head) >= 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 1 << 30:
        return "safetensors"
    return None


_AT_ZERO = tuple((magic, label) for at, magic, label in UNSUPPORTED_MAGIC if at == 0)
_AT_OFFSET = tuple(entry for entry in UNSUPPORTED_MAGIC if entry[0] != 0)
_FIRST = frozenset(magic[0] for magic, _ in _AT_ZERO) | {0x1F}
_STARTS = tuple(magic for magic, _ in _AT_ZERO)


def unsupported(head: bytes) -> str | None:
    """The name of the container or compressed stream ``head`` starts, if the scanner does not open it."""
    if head[:1] and head[0] in _FIRST:  # one set lookup for the common case (a pickle, text, tensor data)
        if head.startswith(_STARTS):
            return next(label for magic, label in _AT_ZERO if head.startswith(magic))
        if head[:2] == b"\x1f\x9d" and len(head) > 2 and 9 <= head[2] & 0x1F <= 16 and not head[2] & 0x60:
            return "compress (.Z)"
    for at, magic, label in _AT_OFFSET:
        if head[at : at + 1] == magic[:1] and head[at : at + len(magic)] == magic and (at != 2 or head[6:7] == b"-"):
            return label
    return None
