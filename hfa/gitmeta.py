"""What a git clone's metadata says, read without running git: the commit HEAD names and its branch,
the blob id the index holds for each file, and the ``origin`` remote. Every read is bounded, opens no link, and stays inside ``.git``.

Only a ``.git`` folder is read; a ``.git`` file (a worktree or submodule pointing elsewhere) and a
linked ``.git`` count as no metadata. HEAD is ``ref: refs/heads/<branch>`` (read from the loose ref,
else from ``packed-refs``) or a detached 40-hex commit.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from hfa.cache.layout import open_regular

__all__ = ["GitHead", "read_head", "read_index", "read_origin_url", "read_small"]

MAX_SMALL = 4096  # HEAD, a loose ref
MAX_PACKED = 16 * 1024 * 1024  # packed-refs
MAX_CONFIG = 1024 * 1024
_COMMIT = re.compile(r"[0-9a-f]{40}\Z")
_REF = re.compile(r"refs/[A-Za-z0-9._\-/]{1,255}\Z")


@dataclass(frozen=True)
class GitHead:
    commit: str
    branch: str | None  # "main" for refs/heads/main; None when detached (or another kind of ref)


def _git_dir(root: Path) -> Path | None:
    git = root / ".git"
    try:
        st = os.lstat(git)
    except OSError:
        return None
    return git if stat.S_ISDIR(st.st_mode) else None


def _open_regular(path: Path, limit: int) -> int | None:
    """A descriptor of ``path`` when it is a regular file (not a link) of at most ``limit`` bytes, else None
    (:func:`hfa.cache.layout.open_regular`: a ``.git/HEAD`` that is a folder or a FIFO is no metadata)."""
    try:
        fd, st = open_regular(path)
    except OSError:
        return None
    if st.st_size > limit:
        os.close(fd)
        return None
    return fd


def read_small(path: Path, limit: int) -> str | None:
    """At most ``limit`` bytes of a regular file, not through a link; None otherwise."""
    fd = _open_regular(path, limit)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as fp:
        try:
            return fp.read(limit).decode("utf-8")
        except UnicodeDecodeError:
            return None


def _ref_commit(git: Path, ref: str) -> str | None:
    if not _REF.fullmatch(ref) or any(part in ("", ".", "..") for part in ref.split("/")):
        return None
    parts = ref.split("/")
    # every folder on the way a real folder inside .git: no link may lead out
    folder = git
    for part in parts[:-1]:
        folder = folder / part
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                folder = Path()
                break
        except OSError:
            folder = Path()
            break
    if folder != Path():
        text = read_small(folder / parts[-1], MAX_SMALL)
        if text is not None and _COMMIT.fullmatch(text.strip()):
            return text.strip()
    packed = read_small(git / "packed-refs", MAX_PACKED)
    for line in (packed or "").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == ref and _COMMIT.fullmatch(fields[0]):
            return fields[0]
    return None


def read_head(root: Path) -> GitHead | None:
    """The commit ``root/.git``'s HEAD names, and its branch; None when there is no readable git metadata."""
    git = _git_dir(root)
    if git is None:
        return None
    head = read_small(git / "HEAD", MAX_SMALL)
    if head is None:
        return None
    head = head.strip()
    if _COMMIT.fullmatch(head):
        return GitHead(head, None)
    if not head.startswith("ref: "):
        return None
    ref = head[5:].strip()
    commit = _ref_commit(git, ref)
    if commit is None:
        return None
    return GitHead(commit, ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None)


def read_origin_url(root: Path) -> str | None:
    """The ``url`` of ``[remote "origin"]`` in ``root/.git/config``, or None."""
    import configparser

    git = _git_dir(root)
    text = read_small(git / "config", MAX_CONFIG) if git is not None else None
    if text is None:
        return None
    config = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        config.read_string(text)
        return config.get('remote "origin"', "url")
    except configparser.Error:
        return None


MAX_INDEX = 256 * 1024 * 1024
_MODE_FILE = (0o100644, 0o100755)


def read_index(root: Path) -> dict[str, str] | None:
    """Path -> blob id (git sha1) of every regular file ``root/.git/index`` stages (versions 2, 3, 4).

    None when there is no readable index or it is not one this reader knows; submodules, links
    and entries in a merge conflict (stage > 0) are left out.
    """
    git = _git_dir(root)
    if git is None:
        return None
    fd = _open_regular(git / "index", MAX_INDEX)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as fp:
        data = fp.read(MAX_INDEX)
    import struct

    try:
        return _parse_index(data)
    except (ValueError, IndexError, UnicodeDecodeError, struct.error):  # a damaged index: no metadata
        return None


def _parse_index(data: bytes) -> dict[str, str] | None:
    import struct

    if len(data) < 12 or data[:4] != b"DIRC":
        return None
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3, 4):
        return None
    out: dict[str, str] = {}
    pos = 12
    previous = b""
    for _ in range(count):
        start = pos
        if pos + 62 > len(data):
            raise ValueError("truncated index")
        mode = struct.unpack(">I", data[pos + 24 : pos + 28])[0]
        sha = data[pos + 40 : pos + 60].hex()
        flags = struct.unpack(">H", data[pos + 60 : pos + 62])[0]
        pos += 62
        if flags & 0x4000:  # extended flags (version 3+)
            pos += 2
        if version == 4:  # the path: drop N bytes of the previous one, then a NUL-terminated suffix
            strip, pos = _varint(data, pos)
            end = data.index(b"\0", pos)
            name = previous[: len(previous) - strip] + data[pos:end]
            pos = end + 1
        else:
            end = data.index(b"\0", pos)
            name = data[pos:end]
            pos = start + ((end - start) // 8 + 1) * 8  # NUL-padded to a multiple of 8
        previous = name
        if (flags >> 12) & 3 == 0 and mode in _MODE_FILE:
            out[name.decode("utf-8")] = sha
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """git's offset encoding (varint.c): 7 bits a byte, each continuation adding one."""
    byte = data[pos]
    value = byte & 0x7F
    pos += 1
    while byte & 0x80:
        byte = data[pos]
        value = ((value + 1) << 7) | (byte & 0x7F)
        pos += 1
    return value, pos
