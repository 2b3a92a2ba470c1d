"""Turn "repo at revision" into a commit and its full file list: from the endpoint, or from the cache alone."""

from __future__ import annotations

from pathlib import Path

from hfa.cache.hashing import COMMIT_RE, SHA256_RE, git_sha1, lfs_pointer
from hfa.cache.layout import CacheWriter, RepoDir, check_relpath
from hfa.errors import CheckFailed, UsageError
from hfa.resolve.card import parse_card
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.refs import RepoRef


def resolve_offline(cache_dir: Path, ref: RepoRef) -> tuple[Resolved, bool]:
    """Resolve from ``refs/`` and ``snapshots/`` alone; no network.

    Returns the resolution and whether its file list is complete: hfa records the full
    list of every commit it pulled; a snapshot made by other tools only shows the files
    that were fetched into it.
    """
    repo = RepoDir(Path(cache_dir), ref.repo_type, ref.repo_id)
    if not repo.snapshots.is_dir():
        raise CheckFailed(
            f"'{ref.display}' is not in the cache {cache_dir}",
            f"run `hfa pull {ref.display}` with network first, or import a bundle",
        )
    if ref.pinned:
        commit: str | None = ref.revision
    else:
        commit = repo.read_ref(ref.revision_or_default)
    if not commit or not COMMIT_RE.fullmatch(commit) or not repo.snapshot(commit).is_dir():
        raise CheckFailed(
            f"Revision '{ref.revision_or_default}' of '{ref.repo_id}' is not in the cache {cache_dir}",
            f"run `hfa pull {ref.display}` with network first",
        )
    writer = CacheWriter(Path(cache_dir), ref.repo_type, ref.repo_id)
    record = writer.read_tree_record(commit)
    files: dict[str, RemoteFile] = {}
    complete = record is not None
    if record is not None:
        for doc in record:
            f = RemoteFile.from_json(doc)
            files[f.path] = f
    else:
        files = snapshot_files(repo, commit)
    card = {}
    readme = files.get("README.md")
    if readme is not None and writer.has_blob(readme.etag, readme.size) and readme.size < 4 * 1024 * 1024:
        card = parse_card(writer.blob_path(readme.etag).read_bytes()).data
    return Resolved(ref=ref, commit=commit, files=files, card_data=card, source="cache"), complete


def snapshot_files(repo: RepoDir, commit: str) -> dict[str, RemoteFile]:
    """The files a snapshot folder holds as blobs of its repo, with hashes read from the blob names.

    Only what :func:`hfa.cache.walk.walk_snapshot` finds linked to a blob of this repo: a plain
    copy carries no hash in its name, and anything else breaks the containment rule.
    """
    from hfa.cache.walk import BLOB, walk_snapshot  # offline only: a pull's hot path does without

    files: dict[str, RemoteFile] = {}
    for entry in walk_snapshot(repo, commit):
        if entry.kind != BLOB or entry.real is None:
            continue
        etag = entry.real.name
        try:
            size = entry.real.stat().st_size
        except OSError:
            continue
        if SHA256_RE.fullmatch(etag):
            files[entry.rel] = RemoteFile(entry.rel, size, git_sha1(lfs_pointer(etag, size)), etag)
        else:
            files[entry.rel] = RemoteFile(entry.rel, size, etag)
    return files


def read_cached(cache_dir: Path, ref: RepoRef, f: RemoteFile) -> bytes | None:
    """A cached blob's bytes, or None when it is not in the cache (the blob name is its hash)."""
    writer = CacheWriter(Path(cache_dir), ref.repo_type, ref.repo_id)
    if not writer.has_blob(f.etag, f.size):
        return None
    return writer.blob_path(f.etag).read_bytes()


def check_subfolder(subfolder: str | None) -> str | None:
    if subfolder is None:
        return None
    sub = subfolder.strip("/")
    try:
        check_relpath(sub)
    except UsageError:
        raise UsageError(f"Invalid --subfolder '{subfolder}'", "give a folder inside the repo, such as unet") from None
    return sub
