"""What ``hfa serve`` reads from requests and writes into answers, as pure functions: the HTTP
error it raises, header and host checks, ``Range`` parsing, query flags and cursors, and the
small JSON documents (file entries, folder ids, tags) the Hub API returns.
"""

from __future__ import annotations

import re
from typing import Any

from hfa.server.store import FileEntry, Repo, Snapshot, tree_oid


class HttpError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


HOST_RE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_UNSAFE_IN_HEADER = re.compile(r"[^\x20-\x7e]")


def header_safe(text: str) -> str:
    """Printable ASCII only: no CR/LF header injection, nothing latin-1 cannot encode."""
    return _UNSAFE_IN_HEADER.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def truthy(value: str) -> bool:
    """A flag in a query or a header: 1, true, yes or on (any case)."""
    return value.strip().lower() in ("1", "true", "yes", "on")


def cursor(query: dict[str, list[str]]) -> int:
    try:
        return max(0, int(query.get("cursor", ["0"])[-1]))
    except ValueError:
        raise HttpError(400, "Invalid cursor") from None


def valid_repo_id(repo_id: str) -> bool:
    from hfa.cache.layout import REPO_ID_RE

    return bool(REPO_ID_RE.match(repo_id)) and ".." not in repo_id and "--" not in repo_id


def dirs_of(files: dict[str, FileEntry]) -> set[str]:
    dirs: set[str] = set()
    for path in files:
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    return dirs


def folder_oid(files: dict[str, FileEntry], folder: str) -> str:
    """Stands for a git tree id: changes with the names and contents below ``folder``, not with its place."""
    base = folder + "/"
    return tree_oid([f"{p[len(base) :]} {e.blob_id}" for p, e in files.items() if p.startswith(base)])


def file_doc(entry: FileEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": entry.path}
    if entry.lfs_sha256:
        doc["lfs"] = {"oid": entry.lfs_sha256, "size": entry.size, "pointerSize": entry.pointer_size}
    return doc


def sibling(entry: FileEntry, blobs: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"rfilename": entry.path}
    if blobs:
        doc["size"] = entry.size
        doc["blobId"] = entry.blob_id
        if entry.lfs_sha256:
            doc["lfs"] = {
                "sha256": entry.lfs_sha256,
                "size": entry.size,
                "pointerSize": entry.pointer_size,
            }
    return doc


def tree_entries(snap: Snapshot, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    files = snap.files
    base = prefix + "/" if prefix else ""
    if prefix and prefix not in dirs_of(files) and prefix not in files:
        raise HttpError(404, f"Entry not found: {prefix}", "EntryNotFound", {"X-Repo-Commit": snap.commit})
    if prefix in files:
        return [file_doc(files[prefix])]
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted(files):
        if not path.startswith(base):
            continue
        rel = path[len(base) :]
        parts = rel.split("/")
        # directories on the way
        for depth in range(1, len(parts)):
            if not recursive and depth > 1:
                break
            d = base + "/".join(parts[:depth])
            if d not in entries:
                entries[d] = {"type": "directory", "oid": folder_oid(files, d), "size": 0, "path": d}
        if recursive or len(parts) == 1:
            entries[path] = file_doc(files[path])
    return [entries[k] for k in sorted(entries)]


_RANGE_RE = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", re.ASCII | re.IGNORECASE)


def _range_number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < 25 else 1 << 80  # past any file size, and past int()'s digit limit


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range -> inclusive (start, end); None when unsatisfiable or malformed."""
    m = _RANGE_RE.fullmatch(header)
    if m is None or size <= 0:
        return None
    first, last = m.groups()
    if not first:
        if not last or _range_number(last) == 0:
            return None
        return max(0, size - _range_number(last)), size - 1
    start = _range_number(first)
    end = _range_number(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def card_tags(repo: Repo, card: dict[str, Any]) -> list[str]:
    tags: list[str] = []

    def add(value: Any, prefix: str = "") -> None:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, (str, int, float)) and str(v):
                t = f"{prefix}{v}"
                if t not in tags:
                    tags.append(t)

    if repo.repo_type == "dataset":  # the Hub tags a dataset's card fields with their key
        add(card.get("task_categories"), "task_categories:")
        add(card.get("tags"))
        add(card.get("language"), "language:")
    else:
        add(card.get("library_name"))
        add(card.get("pipeline_tag"))
        add(card.get("tags"))
        add(card.get("language"))
    add(card.get("datasets"), "dataset:")
    add(card.get("base_model"), "base_model:")
    add(card.get("license"), "license:")
    return tags


def created_at(repo: Repo, snap: Snapshot) -> str:
    commits = repo.meta.get("commits") or {}
    dates = [str(c.get("date")) for c in commits.values() if isinstance(c, dict) and c.get("date")]
    return min(dates) if dates else snap.date
