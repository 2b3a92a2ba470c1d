"""File downloads of ``hfa serve`` (``GET|HEAD /{repo}/resolve/{revision}/{path}``): the byte range
asked for, the headers huggingface_hub reads, the blob opened without following links, and the
body handed to the engine as ``wsgi.file_wrapper`` (waitress sends it from the file, no copy through
the app), or as 1 MiB chunks under a WSGI server without one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from hfa.server.store import CacheStore, FileEntry, Snapshot
from hfa.server.wire import HttpError, parse_range


class ServedCache(CacheStore):
    """A cache as the server's store (:class:`~hfa.server.store.ServedStore`): its files sent from their blobs."""

    def blob_url(self, entry: FileEntry, path: str) -> str | None:
        """Never a redirect: the server sends a cache's files itself."""
        return None

    def open_file(
        self, environ: dict[str, Any], entry: FileEntry, path: str, snap: Snapshot, start: int, length: int
    ) -> Iterable[bytes]:
        """``length`` bytes of the file from ``start`` as a WSGI body (0: only check it can be read);
        HttpError 404 before any byte when its blob cannot be opened."""
        fp = open_blob(self, entry, path, snap)
        if length == 0:
            fp.close()
            return [b""]
        return file_body(environ, fp, start, length)


def not_found(path: str, snap: Snapshot) -> HttpError:
    return HttpError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": snap.commit})


def byte_range(header: str | None, size: int) -> tuple[int, int, int]:
    """(start, end inclusive, status) of the bytes to send for ``Range: header`` on a file of ``size``.

    RFC 9110 14.2: a Range in a unit we do not know, or one asking for several ranges (not
    supported here), is ignored and the whole file sent; so is any Range on an empty file.
    HttpError 416 when the range cannot be satisfied.
    """
    start, end, status = 0, size - 1, 200
    unit, _, spec = (header or "").partition("=")
    if header and unit.strip().lower() == "bytes" and "," not in spec and size > 0:
        parsed = parse_range(header, size)
        if parsed is None:
            raise HttpError(416, "Range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
        if parsed != (0, size - 1) or header.strip() != "bytes=0-":
            start, end = parsed
            status = 206
    return start, end, status


def open_blob(store: CacheStore, entry: FileEntry, path: str, snap: Snapshot) -> io.BufferedReader:
    """The blob of ``entry``, opened for reading: a regular file the store vetted; a link swapped in
    since is not followed (404, and the store logs what it could not read)."""
    assert entry.blob_path is not None, "a file of a cache"
    try:
        return os.fdopen(os.open(entry.blob_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb")
    except OSError as exc:
        store.unreadable(entry.blob_path, exc)
        raise not_found(path, snap) from None


def file_headers(
    snap: Snapshot, entry: FileEntry, path: str, start: int, end: int, status: int
) -> list[tuple[str, str]]:
    """The headers of a file answer (``Content-Length`` from ``start``/``end``), as the Hub sends them."""
    headers = [("X-Repo-Commit", snap.commit), ("ETag", f'"{entry.etag}"')]
    if entry.lfs_sha256:
        headers += [("X-Linked-Etag", f'"{entry.lfs_sha256}"'), ("X-Linked-Size", str(entry.size))]
    headers += [
        ("Accept-Ranges", "bytes"),
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(max(0, end - start + 1))),
        ("Content-Disposition", f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}"),
    ]
    if status == 206:
        headers.append(("Content-Range", f"bytes {start}-{end}/{entry.size}"))
    return headers


def redirect_headers(snap: Snapshot, entry: FileEntry, location: str) -> list[tuple[str, str]]:
    """A 302 to where the file's bytes are (another origin): huggingface_hub then reads the file's
    metadata from this answer itself, so it carries the commit, the etag the blob is named by and the size."""
    return [
        ("Location", location),
        ("X-Repo-Commit", snap.commit),
        ("ETag", f'"{entry.blob_id}"'),
        ("X-Linked-Etag", f'"{entry.etag}"'),
        ("X-Linked-Size", str(entry.size)),
        ("Content-Length", "0"),
    ]


CHUNK = 1 << 20


def file_body(environ: dict[str, Any], fp: io.BufferedReader, start: int, length: int) -> Iterable[bytes]:
    """``length`` bytes of ``fp`` from ``start``, as a WSGI body: through the server's ``wsgi.file_wrapper``
    when it has one (it sends up to the Content-Length from the file's position), else in chunks."""
    fp.seek(start)
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(fp, CHUNK)
    return _chunks(fp, length)


def _chunks(fp: io.BufferedReader, length: int) -> Iterator[bytes]:
    with fp:
        left = length
        while left > 0:
            data = fp.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data


def verified_body(
    body: Any, entry: FileEntry, start: int, length: int, failed: Callable[[str, BaseException | None], None]
) -> Iterator[bytes]:
    """Bytes ``start``..``start+length`` of the object ``body`` (``.read(n)``, ``.close()``), every byte of it
    hashed from the first; the last chunk is sent only once the whole object matched ``entry``'s size and
    hash. A mismatch or a read that fails is told to ``failed`` (what was wrong, the exception) and the
    body ends short of its ``Content-Length``: the engine closes the connection and the client's own
    size check fails, so it never holds the bytes as a whole file."""
    import hashlib

    hasher = hashlib.sha256() if entry.lfs_sha256 else hashlib.sha1(b"blob %d\0" % entry.size)
    expected = entry.lfs_sha256 or entry.blob_id
    end = start + length
    pos = 0
    held = b""
    try:
        while pos <= entry.size:
            chunk = body.read(min(CHUNK, entry.size + 1 - pos))
            if not chunk:
                break
            hasher.update(chunk)
            lo, hi = max(start, pos), min(end, pos + len(chunk))
            pos += len(chunk)
            if lo < hi:
                if held:
                    yield held
                held = chunk[lo - (pos - len(chunk)) : hi - (pos - len(chunk))]
    except Exception as exc:  # the source broke off mid-object
        failed("the read failed", exc)
        return
    finally:
        body.close()
    if pos != entry.size or hasher.hexdigest() != expected:
        how = f"{pos} bytes instead of {entry.size}" if pos != entry.size else "another hash"
        failed(f"blob {expected} does not match its {'sha256' if entry.lfs_sha256 else 'git-sha1'} ({how})", None)
        return
    if held:
        yield held
