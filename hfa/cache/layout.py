"""The huggingface_hub cache layout: ``<cache>/models--org--name/{blobs,snapshots,refs}``.

This module knows names and paths; it never touches the network. Every path it
builds from outside input goes through :func:`safe_join`, which refuses to leave
its root.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from hfa.errors import LocalError, NetworkError, UsageError

REPO_TYPES = ("model", "dataset", "space")
_PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
_SINGULAR = {v: k for k, v in _PLURAL.items()}
REPO_ID_RE = re.compile(r"(?:[A-Za-z0-9][\w.\-]{0,95}/)?[A-Za-z0-9][\w.\-]{0,95}\Z", re.ASCII)
HFA_META = ".hfa.json"  # optional per-repo sidecar (tags, counters); ignored by huggingface_hub

OnError = Callable[[Path, OSError], None]  # told of a file that exists but cannot be read


def plural(repo_type: str) -> str:
    return _PLURAL[repo_type]


def singular(plural_name: str) -> str | None:
    return _SINGULAR.get(plural_name)


def validate_repo_id(repo_id: str) -> str:
    if not REPO_ID_RE.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id:
        raise UsageError(
            f"Invalid repository id '{repo_id}'",
            "use 'name' or 'org/name' with letters, digits, '-', '_' and '.'",
        )
    return repo_id


def repo_folder_name(repo_id: str, repo_type: str = "model") -> str:
    """``models--org--name``, exactly as huggingface_hub names it."""
    return "--".join([plural(repo_type), *repo_id.split("/")])


def parse_repo_folder(name: str) -> tuple[str, str] | None:
    """``models--org--name`` -> (``model``, ``org/name``); None for anything else."""
    parts = name.split("--")
    if len(parts) < 2 or singular(parts[0]) is None:
        return None
    repo_type = singular(parts[0])
    repo_id = "/".join(parts[1:])
    if not REPO_ID_RE.fullmatch(repo_id):
        return None
    return repo_type, repo_id  # type: ignore[return-value]


def check_relpath(path: str) -> PurePosixPath:
    """A repository-relative POSIX path that cannot escape: no '..', no absolute, no odd separators."""
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or re.match(r"^[A-Za-z]:", path)
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise UsageError(f"Refusing unsafe path '{path}'", "repository paths must be relative, without '..'")
    return PurePosixPath(path)


_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def check_ref_name(name: str) -> str:
    """``name`` if git would accept it as a ref name (``git check-ref-format --allow-onelevel``).

    Refs become files under ``refs/``: a name git refuses (``a..b``, ``x.lock``, ``.hidden``,
    ``main/``, ``@``) is refused here, before anything is written.
    """
    parts = name.split("/")
    if (
        not name
        or name == "@"
        or name.endswith((".", "/"))
        or _REF_FORBIDDEN.search(name)
        or any(not p or p.startswith(".") or p.endswith(".lock") for p in parts)
    ):
        raise UsageError(f"Invalid ref name {name!r}", "a branch or tag name as git accepts it, e.g. main or v1.0")
    return name


def safe_join(root: Path, relpath: str) -> Path:
    """``root/relpath``, refusing anything that would resolve outside ``root``."""
    rel = check_relpath(relpath)
    candidate = root.joinpath(*rel.parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(candidate)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UsageError(f"Refusing path '{relpath}' that leaves {root}", "remove the link or the '..'")
    return candidate


def safe_entry(root: Path, relpath: str) -> Path:
    """``root/relpath`` for an entry that may itself be a link (a snapshot file): its folder must stay in ``root``."""
    rel = check_relpath(relpath)
    candidate = root.joinpath(*rel.parts)
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(candidate.parent)
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        raise UsageError(f"Refusing path '{relpath}' that leaves {root}", "remove the link or the '..'")
    return candidate


def is_inside(root: str, path: str) -> bool:
    """``path`` lies strictly inside ``root`` (both already resolved, as text)."""
    return path.startswith(root + os.sep)


def is_real_dir(path: Path) -> bool:
    """A folder that is not a link."""
    return path.is_dir() and not path.is_symlink()


@dataclass(frozen=True)
class RepoDir:
    """One repository folder of the cache."""

    cache_dir: Path
    repo_type: str
    repo_id: str

    @functools.cached_property  # asked for on every path of every file of a pull
    def path(self) -> Path:
        return self.cache_dir / repo_folder_name(self.repo_id, self.repo_type)

    @property
    def label(self) -> str:
        """How commands name it: ``org/name`` for a model, ``datasets/org/name`` otherwise."""
        return self.repo_id if self.repo_type == "model" else f"{plural(self.repo_type)}/{self.repo_id}"

    @functools.cached_property
    def blobs(self) -> Path:
        return self.path / "blobs"

    @functools.cached_property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @functools.cached_property
    def refs(self) -> Path:
        return self.path / "refs"

    def snapshot(self, commit: str) -> Path:
        return self.snapshots / commit

    def read_ref(self, name: str, on_error: OnError | None = None) -> str | None:
        """The commit a ref names, or None. ``on_error`` hears of a ref that exists but cannot be read."""
        try:
            ref_path = safe_join(self.refs, name)
        except UsageError:
            return None
        try:
            value = ref_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if on_error is not None:
                on_error(ref_path, exc)
            return None
        except UnicodeDecodeError:
            return None
        return value or None

    def list_refs(self, on_error: OnError | None = None) -> dict[str, str]:
        """Every ref name (``main``, ``v1.0``, ``refs/pr/1``) -> commit.

        ``on_error(path, exc)`` hears of every ref or folder that exists but cannot be read.
        """
        out: dict[str, str] = {}
        if not self.refs.is_dir():
            return out

        def walk_error(exc: OSError) -> None:
            if on_error is not None and not isinstance(exc, FileNotFoundError):
                on_error(Path(exc.filename or self.refs), exc)

        for dirpath, _dirs, files in os.walk(self.refs, onerror=walk_error):
            for name in files:
                if name.startswith("."):  # an atomic write's temporary file, not a ref
                    continue
                full = Path(dirpath) / name
                rel = full.relative_to(self.refs).as_posix()
                value = self.read_ref(rel, on_error)
                if value:
                    out[rel] = value
        return out

    def list_commits(self) -> list[str]:
        if not self.snapshots.is_dir():
            return []
        return sorted(p.name for p in self.snapshots.iterdir() if p.is_dir())


def iter_repos(cache_dir: Path) -> list[RepoDir]:
    """Every repository folder in a cache, sorted by type then id."""
    repos: list[RepoDir] = []
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return repos
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        parsed = parse_repo_folder(entry.name)
        if parsed is None:
            continue
        repos.append(RepoDir(cache_dir, parsed[0], parsed[1]))
    repos.sort(key=lambda r: (r.repo_type, r.repo_id.lower()))
    return repos


class NotRegular(OSError):
    """What :func:`open_regular` found is a folder, a FIFO, a device or a socket, not a file."""


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """A read-only descriptor of ``path`` and its stat, when it is a regular file: never through a
    link (OSError), never waiting on a FIFO, and judged on the descriptor before any file object
    wraps it (Python's refuses a folder with IsADirectoryError). Anything else raises
    :class:`NotRegular`; the caller says it in its own words."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegular(f"{path} is not a regular file")
    return fd, st


# -- writing -------------------------------------------------------------------------
HFA_DIR = ".hfa"  # per-repo folder of hfa's own records (huggingface_hub ignores it)


def new_file(folder: Path, prefix: str, suffix: str = "") -> tuple[int, Path]:
    """Create a new, empty file with a unique name in ``folder``; return (descriptor, path).

    Like :func:`tempfile.mkstemp` (exclusive create, no symlink followed), except for the
    mode: ``0o666`` less the umask, as ``open()`` gives and huggingface_hub's cache has, not
    mkstemp's ``0o600`` (which hides refs, locks and outputs from every other user).
    """
    import secrets

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = folder / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")  # pragma: no cover


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half-written.

    The file gets the mode ``open()`` would give a new file (``0o666`` less the umask).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = new_file(path.parent, f".{path.name}.", ".tmp")
    except OSError as exc:  # name the file asked for, never the hidden temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` as :func:`atomic_write_bytes` does."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_symlink(target: str, link: Path) -> None:
    """Point ``link`` at ``target`` (relative), replacing what was there in one rename; its folder exists."""
    tmp = link.parent / f".{link.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(target, tmp)
    except OSError as exc:  # name the link asked for, never the hidden temporary one
        raise type(exc)(exc.errno, exc.strerror, str(link)) from None
    try:
        os.replace(tmp, link)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, str(link)) from None
        raise


@contextlib.contextmanager
def _unless_cancelled(lock: Any, cancel: threading.Event) -> Iterator[Any]:
    from filelock import Timeout

    while True:
        try:
            lock.acquire(timeout=0.1)
            break
        except Timeout:
            if cancel.is_set():
                raise NetworkError(
                    "Cancelled while waiting for another download of the same file (its lock is held)",
                    "rerun the command",
                ) from None
    try:
        yield lock
    finally:
        lock.release()


def _not_a_folder(folder: Path) -> LocalError:
    import shlex

    quoted = shlex.quote(str(folder))
    return LocalError(
        f"Refusing {folder}: it is a link or a file, not a folder (hfa never reads or writes the cache through a link)",
        f"move it aside (`mv {quoted} {shlex.quote(str(folder) + '.moved')}`), then run this again",
    )


class CacheWriter:
    """Publishes verified blobs, snapshot links and refs for one repository.

    Blobs are named by hash and published by rename only after verification; links
    are relative and replaced atomically; every path is checked to stay in the cache.
    """

    def __init__(self, cache_dir: Path, repo_type: str, repo_id: str) -> None:
        self.repo = RepoDir(Path(cache_dir), repo_type, repo_id)
        self.cache_dir = Path(cache_dir)
        # Folders this writer has made (or found): a pull of many files makes each once, not once per file.
        # What must not be a link is still checked on every use: another user of a shared cache may swap a
        # folder for a link while a long pull runs.
        self._made: set[Path] = set()

    def blob_path(self, etag: str) -> Path:
        """``blobs/<etag>``; refuses a linked (or non-folder) repo folder or ``blobs/`` (:class:`LocalError`)."""
        from hfa.cache.hashing import SHA1_RE, SHA256_RE

        if not (SHA1_RE.fullmatch(etag) or SHA256_RE.fullmatch(etag)):
            raise UsageError(f"Refusing blob name '{etag}'", "blob names are 40 or 64 lowercase hex digits")
        self.check_folders(self.repo.path, self.repo.blobs)
        return self.repo.blobs / etag

    def partial_path(self, etag: str) -> Path:
        self.check_folders(self.repo.path, self.repo.blobs)
        return self.repo.blobs / f"{etag}.incomplete"

    def partial_record_path(self, etag: str) -> Path:
        """hfa's record of which ranges of ``blobs/<etag>.incomplete`` are complete (a ranged download)."""
        folder = self.repo.path / HFA_DIR / "partials"
        self.check_folders(self.repo.path, self.repo.path / HFA_DIR, folder)
        return folder / f"{etag}.json"

    def check_folders(self, *folders: Path) -> None:
        """Each folder is a real folder or absent: never a link (which could lead out of the cache) or a file."""
        for folder in folders:
            try:
                st = os.lstat(folder)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise _not_a_folder(folder)

    def make_folder(self, folder: Path) -> None:
        """``folder`` and its parents, once per writer (its callers have checked what must not be a link)."""
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)

    def lock_path(self, etag: str) -> Path:
        """The lock huggingface_hub takes for the same blob, so hfa and hf never race on it."""
        return self.cache_dir / ".locks" / repo_folder_name(self.repo.repo_id, self.repo.repo_type) / f"{etag}.lock"

    def lock(self, etag: str, timeout: float = -1, *, cancel: threading.Event | None = None) -> Any:
        """The blob's file lock; with ``cancel``, a context manager whose wait for it (another process fetching
        the same blob holds it) ends when ``cancel`` is set (Ctrl-C), with :class:`NetworkError`."""
        from filelock import FileLock

        path = self.lock_path(etag)
        self.make_folder(path.parent)
        lock = FileLock(str(path), timeout=timeout)
        return lock if cancel is None else _unless_cancelled(lock, cancel)

    def has_blob(self, etag: str, size: int) -> bool:
        try:
            st = os.stat(self.blob_path(etag))
        except OSError:
            return False
        return st.st_size == size

    def link(self, commit: str, relpath: str, etag: str) -> Path:
        """``snapshots/<commit>/<relpath>`` -> ``../../blobs/<etag>`` (relative)."""
        self.blob_path(etag)  # checks the name and the folders
        snap = self.repo.snapshot(commit)
        self.check_folders(self.repo.snapshots, snap)
        self.make_folder(snap)
        rel = check_relpath(relpath)
        link = snap.joinpath(*rel.parts)
        folder = snap
        for part in rel.parts[:-1]:  # each folder on the way a real folder (made if missing), never a link
            folder = folder / part
            try:
                mode = os.lstat(folder).st_mode
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder)
                mode = os.lstat(folder).st_mode
            if not stat.S_ISDIR(mode):  # the cache's state, not the path asked for: exit 6, as check_folders
                raise _not_a_folder(folder)
        # snapshots/<commit>/<dirs>/<name> -> ../../<dirs as ..>/blobs/<etag>, as os.path.relpath gives it
        target = "../" * (len(rel.parts) + 1) + f"blobs/{etag}"
        try:
            if os.readlink(link) == target:
                return link
        except OSError:
            pass  # absent, or no link: replaced below
        atomic_symlink(target, link)
        return link

    def linked_ok(self, commit: str, relpath: str, etag: str, size: int) -> bool:
        """True when the snapshot entry exists, points at the right blob, and the blob has the size.

        A linked snapshot folder is refused (:class:`LocalError`), as :meth:`link` refuses it.
        """
        self.check_folders(self.repo.snapshots, self.repo.snapshot(commit))
        try:
            link = safe_entry(self.repo.snapshot(commit), relpath)
        except UsageError:
            return False
        if not link.is_symlink():
            return False
        real = os.path.realpath(link)
        return real == os.path.realpath(self.blob_path(etag)) and self.has_blob(etag, size)

    def write_ref(self, name: str, commit: str) -> None:
        check_ref_name(name)
        self.check_folders(self.repo.path, self.repo.refs)
        if self.repo.read_ref(name) == commit:
            return
        path = safe_join(self.repo.refs, name) if self.repo.refs.exists() else None
        if path is None:
            self.repo.refs.mkdir(parents=True, exist_ok=True)
            path = safe_join(self.repo.refs, name)
        atomic_write_text(path, commit)

    # hfa's record of a commit's full file list, so offline runs can name what is missing.
    def tree_record_path(self, commit: str) -> Path:
        return self.repo.path / HFA_DIR / "trees" / f"{commit}.json"

    def write_tree_record(self, commit: str, files: list[dict[str, Any]]) -> None:
        import json

        path = self.tree_record_path(commit)
        if path.exists():
            return
        doc = {"format": 1, "commit": commit, "files": sorted(files, key=lambda f: f["path"])}
        atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")

    def read_tree_record(self, commit: str) -> list[dict[str, Any]] | None:
        import json

        try:
            doc = json.loads(self.tree_record_path(commit).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("format") != 1 or doc.get("commit") != commit:
            return None
        files = doc.get("files")
        return files if isinstance(files, list) else None
