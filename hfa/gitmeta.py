"""What a git clone's metadata says, read without running git: the commit HEAD names and its branch,
and the ``origin`` remote. Every read is bounded, opens no link, and stays inside ``.git``.

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

__all__ = ["GitHead", "read_head", "read_origin_url", "read_small"]

MAX_SMALL = 4096  # HEAD, a loose ref
MAX_PACKED = 16 * 1024 * 1024  # packed-refs
MAX_CONFIG = 1024 * 1024
_COMMIT = re.compile(r"[0-9a-f]{40}\Z")
_REF = re.compile(r"refs/[A-Za-z0-9._\-/]{1,255}\Z")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


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


def read_small(path: Path, limit: int) -> str | None:
    """At most ``limit`` bytes of a regular file, not through a link; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fp:
        st = os.fstat(fp.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
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
