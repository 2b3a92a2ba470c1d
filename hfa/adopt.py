"""``hfa import DIR --repo org/name``: adopt a plain model folder or a git clone of a Hub repo into the
cache, so verify, serve, push, pull --offline and huggingface_hub's ``local_files_only`` treat it like
anything pulled (docs/offline.md, "Adopting a folder").

* **Files.** Every regular file under DIR, ``.git`` (at any depth) and ``.cache/huggingface`` (what
  ``hf download --local-dir`` leaves) skipped. A link counts only when it resolves to a regular file
  inside DIR (its content is taken); a link out of DIR, to a folder, or to nothing, and any special
  file, is refused, and nothing is written.
* **Hashes, as the Hub names blobs.** A file is an LFS file (blob named by its sha256) when DIR's
  ``.gitattributes`` gives it ``filter=lfs``, or when the Hub would refuse it outside LFS (10 MiB or
  more, or binary: a NUL byte in its first 8000 bytes); without a ``.gitattributes``, the Hub's
  default patterns decide (``*.safetensors``, ``*.bin``, ... see :data:`hfa.cache.hashing.LFS_PATTERNS`).
  Every other file is a git blob (named by its git sha1). A git clone's ``.git/index``, when
  readable, decides instead, exactly (its entry is the content's git sha1, or its LFS pointer's),
  and a file it does not account for (changed, untracked, deleted) is refused.
* **Git-LFS pointer stubs** (a clone made without git-lfs) are refused (exit 1); with ``fetch_stubs`` given
  (``--fix``) their content is fetched from the endpoint and verified against the pointer's sha256.
* **The commit.** A git clone's HEAD (``.git/HEAD``, its loose ref or ``packed-refs``; read without
  running git, bounded, see :mod:`hfa.gitmeta`), under its branch name; a plain folder gets a commit
  id derived from its content (:func:`content_commit`), under ``main``. ``--revision`` names the
  ref instead; a 40-hex ``--revision`` is taken as the commit itself, and no ref is written.

Files are copied while hashed into new files inside ``blobs/``, and published by rename only once
every file is copied and checked (a refusal leaves no blob behind); the snapshot links, hfa's
record of the commit's file list and the ref come after every blob is in.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.cache.hashing import COMMIT_RE, LFS_HEAD, LFS_SIZE, git_sha1, is_lfs_path, lfs_pointer
from hfa.cache.layout import NotRegular, check_ref_name, check_relpath, new_file, open_regular, validate_repo_id
from hfa.errors import CheckFailed, UsageError
from hfa.resolve.files import RemoteFile
from hfa.store import LocalStore

__all__ = [
    "AdoptResult",
    "GitAttributes",
    "Stub",
    "adopt",
    "content_commit",
    "is_lfs_file",
    "scan_folder",
    "stub_fetcher",
]

MAX_FILES = 200_000
MAX_GITATTRIBUTES = 1024 * 1024
HEAD_BYTES = LFS_HEAD
CHUNK = 4 << 20
CONTENT_COMMIT_HEADER = b"hfa-import-v1\n"


@dataclass(frozen=True)
class Stub:
    """A Git-LFS pointer where content should be."""

    path: str
    oid: str
    size: int


@dataclass
class AdoptResult:
    repo_id: str
    repo_type: str
    revision: str
    commit: str
    source: str  # "git": HEAD of a clone; "content": derived from the files; "revision": --revision was a commit
    files: list[RemoteFile] = field(default_factory=list)
    blobs_written: int = 0
    bytes_written: int = 0
    stubs_fetched: int = 0

    @property
    def display(self) -> str:
        from hfa.resolve.refs import RepoRef

        return RepoRef(self.repo_id, self.repo_type, self.revision).display

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.repo_id,
            "type": self.repo_type,
            "revision": self.revision,
            "commit": self.commit,
            "commit_source": self.source,
            "files": len(self.files),
            "lfs_files": sum(f.is_lfs for f in self.files),
            "bytes": sum(f.size for f in self.files),
            "blobs_written": self.blobs_written,
            "bytes_written": self.bytes_written,
            "stubs_fetched": self.stubs_fetched,
        }


# -- the folder ----------------------------------------------------------------------------------


def _skipped(rel: str, name: str) -> bool:
    return name == ".git" or rel == ".cache/huggingface"


def scan_folder(root: Path) -> dict[str, Path]:
    """Repo path -> the regular file holding its content, for every file DIR adopts; refuses what breaks the rules."""
    try:
        st = os.stat(root)
    except OSError:
        raise UsageError(f"No folder at {root}", "give the folder to adopt") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{root} is not a folder", "give the model folder itself (a bundle is a .tar file)")
    real_root = os.path.realpath(root)  # DIR itself may be a link; nothing inside it may lead out
    root = Path(real_root)
    found: dict[str, Path] = {}
    problems: list[str] = []
    folders: list[tuple[Path, str]] = [(root, "")]
    while folders:
        folder, prefix = folders.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            if _skipped(rel, entry.name):
                continue
            try:
                check_relpath(rel)
            except UsageError:
                problems.append(f"{rel!r}: not a name a repo can hold")
                continue
            est = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(est.st_mode):
                folders.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(est.st_mode):
                found[rel] = Path(entry.path)
            elif stat.S_ISLNK(est.st_mode):
                problem = _link_problem(Path(entry.path), real_root)
                if problem:
                    problems.append(f"{rel}: {problem}")
                else:
                    found[rel] = Path(os.path.realpath(entry.path))
            else:
                problems.append(f"{rel}: not a regular file (a FIFO, socket or device)")
            if len(found) > MAX_FILES:
                raise UsageError(f"{root} holds more than {MAX_FILES} files", "adopt the model folder itself")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CheckFailed(
            f"Cannot adopt {root}: {shown}; nothing was imported",
            "replace each link by the file it stands for (or remove it), then import again",
            details={"problems": problems},
        )
    if not found:
        raise UsageError(f"{root} holds no files to adopt", "give the model folder itself")
    return found


def _link_problem(link: Path, real_root: str) -> str | None:
    real = os.path.realpath(link)
    if not real.startswith(real_root + os.sep):
        return f"a link out of the folder (to {real})"
    if any(part == ".git" for part in Path(os.path.relpath(real, real_root)).parts):
        return "a link into .git"
    try:
        st = os.stat(real)
    except OSError:
        return "a link to nothing"
    if stat.S_ISDIR(st.st_mode):
        return "a link to a folder (not followed)"
    if not stat.S_ISREG(st.st_mode):
        return "a link to something that is not a regular file"
    return None


# -- which files are LFS files ------------------------------------------------------------------


class GitAttributes:
    """The ``filter=lfs`` rules of a ``.gitattributes`` (last matching line wins, as in git)."""

    def __init__(self, text: str | None) -> None:
        self.present = text is not None
        self.rules: list[tuple[str, bool | None]] = []
        for line in (text or "").splitlines():
            words = line.strip().split()
            if not words or words[0].startswith("#"):
                continue
            value: bool | None = None
            for attr in words[1:]:
                if attr.startswith("filter="):
                    value = attr == "filter=lfs"
                elif attr in ("-filter", "!filter"):
                    value = False
            if value is not None or any(a.startswith(("filter", "-filter", "!filter")) for a in words[1:]):
                self.rules.append((words[0], value))

    def lfs(self, path: str) -> bool | None:
        """True: ``filter=lfs``; False: another filter or unset; None: no line speaks of it."""
        result: bool | None = None
        for pattern, value in self.rules:
            if _attr_match(pattern, path):
                result = value if value is not None else False
        return result


def _attr_match(pattern: str, path: str) -> bool:
    pattern = pattern.removeprefix("/") if "/" in pattern.rstrip("/") else pattern
    if pattern.startswith("**/"):
        rest = pattern[3:]
        return _attr_match(rest, path.rsplit("/", 1)[-1]) or any(
            fnmatch.fnmatchcase("/".join(path.split("/")[i:]), rest) for i in range(path.count("/") + 1)
        )
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return fnmatch.fnmatchcase(path, pattern)


def is_lfs_file(path: str, size: int, head: bytes, attributes: GitAttributes) -> bool:
    """Whether the Hub stores this file in LFS (so its blob is named by sha256); see the module's rule."""
    said = attributes.lfs(path)
    if said:
        return True
    if size >= LFS_SIZE or b"\0" in head[:HEAD_BYTES]:
        return True
    if said is False or attributes.present:
        return False
    return is_lfs_path(path, size, head)


def _read_gitattributes(root: Path) -> GitAttributes:
    from hfa.gitmeta import read_small

    return GitAttributes(read_small(root / ".gitattributes", MAX_GITATTRIBUTES))


# -- the commit -----------------------------------------------------------------------------------


def content_commit(files: list[RemoteFile]) -> str:
    """The commit id of a plain folder: sha1 over ``hfa-import-v1\\n`` then, per file sorted by path,
    ``<algo>:<hash> <size> <path>\\n`` (algo ``sha256`` for LFS files, ``git-sha1`` otherwise).

    The same files give the same id, wherever they are and whatever the repo is called.
    """
    h = hashlib.sha1(CONTENT_COMMIT_HEADER)
    for f in sorted(files, key=lambda f: f.path):
        algo, digest = ("sha256", f.lfs_sha256) if f.lfs_sha256 else ("git-sha1", f.blob_id)
        h.update(f"{algo}:{digest} {f.size} {f.path}\n".encode())
    return h.hexdigest()


# -- adopting -------------------------------------------------------------------------------------

FetchStubs = Callable[[LocalStore, list[Stub], str | None, str], None]


def adopt(
    cache_dir: Path,
    root: Path,
    repo_id: str,
    repo_type: str = "model",
    revision: str | None = None,
    *,
    fetch_stubs: FetchStubs | None = None,
) -> AdoptResult:
    """Adopt ``root`` into ``cache_dir`` as ``repo_id``; see the module for the rules."""
    from hfa.gitmeta import read_head, read_index

    validate_repo_id(repo_id)
    if revision is not None and not COMMIT_RE.fullmatch(revision):
        check_ref_name(revision)
    sources = scan_folder(root)
    attributes = _read_gitattributes(root)
    head = read_head(root)
    index = read_index(root) if head is not None else None
    store = LocalStore(cache_dir, repo_type, repo_id)
    store.check_folders(store.repo.path, store.repo.blobs, store.repo.snapshots, store.repo.refs)
    result = AdoptResult(repo_id, repo_type, "", "", "")
    staged: list[_Staged] = []
    try:
        stubs, problems = _stage_all(store, sources, attributes, index, staged)
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise CheckFailed(
                f"{root} is not the commit its .git names ({head.commit[:12] if head else '?'}): {shown};"
                " nothing was imported",
                "commit or stash the changes (git status), or remove the files that are not in the commit",
                details={"problems": problems},
            )
        if stubs and fetch_stubs is None:
            shown = ", ".join(s.path for s in stubs[:5]) + (f" and {len(stubs) - 5} more" if len(stubs) > 5 else "")
            raise CheckFailed(
                f"{len(stubs)} file(s) of {root} are Git-LFS pointer stubs, not content: {shown}; nothing was imported",
                "run `git lfs pull` in the folder, or import again with --fix to fetch them (needs the network)",
                details={"stubs": [s.path for s in stubs]},
            )
        for item in staged:
            _publish(store, item, result)
    finally:
        for item in staged:
            with contextlib.suppress(OSError):
                item.tmp.unlink()
    files = {item.file.path: item.file for item in staged}
    if stubs:
        assert fetch_stubs is not None
        fetch_stubs(store, stubs, head.commit if head else None, revision or (head.branch if head else None) or "main")
        for stub in stubs:
            files[stub.path] = RemoteFile(stub.path, stub.size, git_sha1(lfs_pointer(stub.oid, stub.size)), stub.oid)
        result.stubs_fetched = len(stubs)
    if revision is not None and COMMIT_RE.fullmatch(revision):
        commit, name, source_kind = revision, revision, "revision"
    elif head is not None:
        commit, name, source_kind = head.commit, revision or head.branch or head.commit, "git"
    else:
        commit, name, source_kind = content_commit(list(files.values())), revision or "main", "content"
    _check_existing(store, commit, files)
    for f in files.values():
        store.link(commit, f.path, f.etag)
    store.write_tree_record(commit, [f.to_json() for f in files.values()])
    if name != commit:
        store.write_ref(name, commit)
    result.revision, result.commit, result.source = name, commit, source_kind
    result.files = sorted(files.values(), key=lambda f: f.path)
    return result


@dataclass
class _Staged:
    file: RemoteFile
    tmp: Path  # a copy inside blobs/, published under the file's etag once everything checked out


def _stage_all(
    store: LocalStore,
    sources: dict[str, Path],
    attributes: GitAttributes,
    index: dict[str, str] | None,
    staged: list[_Staged],
) -> tuple[list[Stub], list[str]]:
    """Copy every file into ``blobs/`` (hashed on the way); the stubs found, and the differences from
    the git index (when there is one: a file that is not what the commit holds)."""
    from hfa.scan.lfs import MAX_POINTER, parse_pointer

    stubs: list[Stub] = []
    problems: list[str] = []
    for rel, source in sorted(sources.items()):
        with _open_regular(source, rel) as fp:
            size = os.fstat(fp.fileno()).st_size
            head_bytes = fp.read(HEAD_BYTES)
            if size <= MAX_POINTER:
                pointer = parse_pointer(head_bytes)
                if pointer is not None:
                    stubs.append(Stub(rel, pointer.oid, pointer.size))
                    continue
            fp.seek(0)
            lfs = is_lfs_file(rel, size, head_bytes, attributes)
            item, blob_id, sha256 = _copy(store, fp, rel, size, lfs, both=index is not None)
            staged.append(item)
        if index is not None:
            known = index.get(rel)
            if known == blob_id:
                item.file = RemoteFile(rel, size, blob_id)  # git holds it as is: never an LFS file
            elif known == git_sha1(lfs_pointer(sha256, size)):
                item.file = RemoteFile(rel, size, known, sha256)  # git holds its pointer: an LFS file
            else:
                problems.append(f"{rel}: {'not in the commit (untracked)' if known is None else 'changed'}")
    if index is not None:
        present = set(sources)
        problems += [
            f"{rel}: deleted" for rel in sorted(set(index) - present) if not _skipped(rel, rel.rsplit("/")[-1])
        ]
    return stubs, problems


def _copy(store: LocalStore, fp: Any, rel: str, size: int, lfs: bool, *, both: bool) -> tuple[_Staged, str, str]:
    """Copy one file into a new file inside ``blobs/`` while hashing it; (staged, git blob id, sha256).

    Only the hash the file is named by is computed, unless ``both``.
    """
    blobs = store.repo.blobs
    blobs.mkdir(parents=True, exist_ok=True)
    sha1 = hashlib.sha1(b"blob %d\0" % size) if both or not lfs else None
    sha256 = hashlib.sha256() if both or lfs else None
    fd, tmp = new_file(blobs, ".import-", ".tmp")
    copied = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := fp.read(CHUNK):
                if sha1 is not None:
                    sha1.update(chunk)
                if sha256 is not None:
                    sha256.update(chunk)
                out.write(chunk)
                copied += len(chunk)
                if copied > size:
                    break
            out.flush()
            os.fsync(out.fileno())
        if copied != size:
            raise CheckFailed(f"{rel} changed while it was read", "import again once nothing writes to the folder")
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    blob_id = sha1.hexdigest() if sha1 is not None else ""
    digest = sha256.hexdigest() if sha256 is not None else ""
    lfs_file = RemoteFile(rel, size, git_sha1(lfs_pointer(digest, size)), digest) if lfs else None
    return _Staged(lfs_file or RemoteFile(rel, size, blob_id), tmp), blob_id, digest


@contextlib.contextmanager
def _open_regular(path: Path, rel: str) -> Any:
    try:
        fd, _ = open_regular(path)
    except NotRegular:
        raise CheckFailed(f"{rel} is not a regular file", "replace it by the file it stands for") from None
    except OSError as exc:
        raise CheckFailed(f"Cannot read {rel}: {exc.strerror}", "check the file's permissions") from None
    with os.fdopen(fd, "rb") as fp:
        yield fp


def _publish(store: LocalStore, item: _Staged, result: AdoptResult) -> None:
    """Move a staged copy to ``blobs/<etag>``; a blob already there (same name, same size) is kept."""
    etag, size = item.file.etag, item.file.size
    with store.lock(etag):
        if store.has(etag, size):
            item.tmp.unlink()
            return
        store.publish(etag, item.tmp)
    result.blobs_written += 1
    result.bytes_written += size


def _check_existing(store: LocalStore, commit: str, files: dict[str, RemoteFile]) -> None:
    """Refuse to change a snapshot the cache already holds: same commit, other content for a path."""
    from hfa.cache.walk import snapshot_file

    record = {str(d.get("path")): d for d in store.read_tree_record(commit) or [] if isinstance(d, dict)}
    differ: list[str] = []
    for f in files.values():
        known = record.get(f.path)
        if known is not None and (known.get("lfs_sha256") or known.get("blob_id")) != f.etag:
            differ.append(f.path)
            continue
        found = snapshot_file(store.repo, commit, f.path)
        if found is not None and (found.real is None or found.real.name != f.etag):
            differ.append(f.path)
    if differ:
        raise CheckFailed(
            f"The cache already holds commit {commit} of '{store.repo.label}' with other content for"
            f" {', '.join(sorted(differ)[:5])}; nothing was linked",
            "the folder was changed since that commit: commit the change in git (a new commit), or import it"
            " as another revision (--revision)",
            details={"paths": sorted(differ)},
        )


def stub_fetcher(settings: Any, ref: Any) -> FetchStubs:
    """``--fix``: fetch each stub's content from the endpoint into the repo's blobs, verified against its sha256.

    The file is asked for at the clone's commit when there is one, else at the revision's commit
    on the endpoint; the blob is published, never linked into the endpoint's snapshot (the
    adopted snapshot links it).
    """

    def fetch(store: LocalStore, stubs: list[Stub], commit: str | None, revision: str) -> None:
        from hfa.hub.client import OnlineHub
        from hfa.hub.download import Fetcher
        from hfa.resolve.refs import RepoRef

        hub = OnlineHub(settings)
        at = RepoRef(ref.repo_id, ref.repo_type, commit or revision)
        if commit is None:
            commit = hub.resolve(at).commit
        fetcher = Fetcher(hub, _BlobsOnly(store.cache_dir, ref.repo_type, ref.repo_id), at, commit)
        fetcher.fetch_all([RemoteFile(s.path, s.size, git_sha1(lfs_pointer(s.oid, s.size)), s.oid) for s in stubs])

    return fetch


class _BlobsOnly(LocalStore):
    """The repo's blobs, without the endpoint commit's snapshot: adopting links them into its own."""

    def link(self, commit: str, relpath: str, etag: str) -> Path:
        return self.blob_path(etag)

    def linked(self, commit: str, relpath: str, etag: str, size: int) -> bool:
        return False
