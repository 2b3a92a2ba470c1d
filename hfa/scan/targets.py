"""What ``hfa scan`` scans: files, folders, a huggingface_hub cache, or REPO[@REV] in the cache.

:func:`targets` turns the names given on the command line into scan targets; a name that is
none of these is a usage error that says what to give instead.
"""

from __future__ import annotations

from pathlib import Path

from hfa.errors import UsageError
from hfa.scan.scanner import Target, is_hf_cache, iter_cache, iter_folder, iter_repo

__all__ = ["targets"]


def targets(cache_dir: Path, names: list[str]) -> tuple[list[Target], set[str]]:
    """What to scan for ``names``, and the names of those that are cache entries (not files on disk).

    Each name is a file, a folder (a huggingface_hub cache, one repo folder of it, or any folder),
    or else REPO[@REV] of a repo in ``cache_dir``; no names: the whole cache.
    """
    cache = cache_dir
    if not names:
        if not cache.is_dir():
            raise UsageError(f"No cache at {cache}", "pass files or folders to scan, or --cache-dir")
        found = list(iter_cache(cache))
        return found, {t.display for t in found}
    out: list[Target] = []
    in_cache: set[str] = set()
    for name in names:
        path = Path(name)
        if path.is_file():
            out.append(Target(path, name))
        elif path.is_dir():
            from hfa.cache.layout import parse_repo_folder

            parsed = parse_repo_folder(path.resolve().name)
            if (path / "snapshots").is_dir() and parsed:
                entries = list(iter_repo(path.resolve().parent, parsed[0], parsed[1]))
                in_cache.update(t.display for t in entries)
                out += entries
            elif is_hf_cache(path):
                entries = list(iter_cache(path))
                in_cache.update(t.display for t in entries)
                out += entries
            else:
                out += iter_folder(path, name)
        else:
            from hfa.cache.layout import RepoDir
            from hfa.resolve.refs import RepoRef

            try:
                ref = RepoRef.parse(name)
            except UsageError:
                raise UsageError(
                    f"'{name}' is neither a file nor a folder nor a repo id",
                    "check the path, or give REPO[@REV] of a repo in the cache",
                ) from None
            repo = RepoDir(cache, ref.repo_type, ref.repo_id)
            commit = None
            if ref.revision:
                commit = ref.revision if ref.pinned else repo.read_ref(ref.revision)
            if not repo.snapshots.is_dir() or (ref.revision and not commit):
                raise UsageError(
                    f"'{name}' is not a path, and not in the cache {cache}",
                    f"pull it first with `hfa pull {ref.display}`, or check the path",
                )
            entries = list(iter_repo(cache, ref.repo_type, ref.repo_id, commit))
            in_cache.update(t.display for t in entries)
            out += entries
    return out, in_cache
