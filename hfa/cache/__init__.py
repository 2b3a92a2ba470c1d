"""The huggingface_hub cache on disk, and hfa's one way to read and change it.

* :mod:`~hfa.cache.layout` -- names and paths (``models--org--name/{blobs,snapshots,refs}``),
  atomic writes, and :class:`CacheWriter`, which publishes verified blobs, links and refs;
* :mod:`~hfa.cache.hashing` -- content hashes as the Hub names blobs;
* :mod:`~hfa.cache.walk` -- the one snapshot walker and its containment rule (a snapshot file
  counts only if it resolves to a blob of its own repo, or is a plain copy), used by everything
  that reads a snapshot: resolver, scanner, server, inference, verify and the inventory;
* :mod:`~hfa.cache.inventory` -- reading the whole cache for ``hfa cache ls`` and the plans;
* :mod:`~hfa.cache.plan` / :mod:`~hfa.cache.delete` -- planning removals and carrying them out.

The names below are the package's public surface; import them from here or from the module
that defines them. They load on first use, so importing one module (a warm ``hfa pull`` needs
only ``layout``) does not import the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hfa.cache.delete import (
        BLOB_KINDS,
        IN_USE,
        LOCK_BATCH,
        PHASE,
        Plan,
        Removal,
        Result,
        Skipped,
        UnsafePath,
        apply,
        lock_held,
        preview,
    )
    from hfa.cache.hashing import (
        COMMIT_RE,
        SHA1_RE,
        SHA256_RE,
        git_sha1,
        git_sha1_file,
        is_blob_name,
        is_lfs_path,
        lfs_pointer,
        sha256_file,
    )
    from hfa.cache.inventory import (
        INCOMPLETE,
        BlobFile,
        CacheScan,
        Listing,
        RepoInfo,
        RepoScan,
        RevisionInfo,
        SnapshotDir,
        SnapshotEntry,
        cache_root,
        inode_of,
        linked_blobs,
        list_cache,
        scan_cache,
    )
    from hfa.cache.layout import (
        HFA_DIR,
        HFA_META,
        REPO_ID_RE,
        REPO_TYPES,
        CacheWriter,
        RepoDir,
        atomic_symlink,
        atomic_write_bytes,
        atomic_write_text,
        check_ref_name,
        check_relpath,
        is_inside,
        is_real_dir,
        iter_repos,
        new_file,
        parse_repo_folder,
        repo_folder_name,
        safe_entry,
        safe_join,
        validate_repo_id,
    )
    from hfa.cache.plan import BUSY, plan_gc, plan_prune, plan_rm
    from hfa.cache.walk import (
        BLOB,
        COPY,
        COUNTED,
        DANGLING,
        ESCAPES,
        FOLDER_LINK,
        NOT_A_BLOB,
        SnapshotFile,
        snapshot_file,
        walk_snapshot,
    )

__all__ = [
    "BLOB",
    "BLOB_KINDS",
    "BUSY",
    "COMMIT_RE",
    "COPY",
    "COUNTED",
    "DANGLING",
    "ESCAPES",
    "FOLDER_LINK",
    "HFA_DIR",
    "HFA_META",
    "INCOMPLETE",
    "IN_USE",
    "LOCK_BATCH",
    "NOT_A_BLOB",
    "PHASE",
    "REPO_ID_RE",
    "REPO_TYPES",
    "SHA1_RE",
    "SHA256_RE",
    "BlobFile",
    "CacheScan",
    "CacheWriter",
    "Listing",
    "Plan",
    "Removal",
    "RepoDir",
    "RepoInfo",
    "RepoScan",
    "Result",
    "RevisionInfo",
    "Skipped",
    "SnapshotDir",
    "SnapshotEntry",
    "SnapshotFile",
    "UnsafePath",
    "apply",
    "atomic_symlink",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_root",
    "check_ref_name",
    "check_relpath",
    "git_sha1",
    "git_sha1_file",
    "inode_of",
    "is_blob_name",
    "is_inside",
    "is_lfs_path",
    "is_real_dir",
    "iter_repos",
    "lfs_pointer",
    "linked_blobs",
    "list_cache",
    "lock_held",
    "new_file",
    "parse_repo_folder",
    "plan_gc",
    "plan_prune",
    "plan_rm",
    "preview",
    "repo_folder_name",
    "safe_entry",
    "safe_join",
    "scan_cache",
    "sha256_file",
    "snapshot_file",
    "validate_repo_id",
    "walk_snapshot",
]

# Where each public name lives (the module is imported when the name is first used).
_HOME = {
    "layout": (
        "HFA_DIR",
        "HFA_META",
        "REPO_ID_RE",
        "REPO_TYPES",
        "CacheWriter",
        "RepoDir",
        "atomic_symlink",
        "atomic_write_bytes",
        "atomic_write_text",
        "check_ref_name",
        "check_relpath",
        "is_inside",
        "is_real_dir",
        "iter_repos",
        "new_file",
        "parse_repo_folder",
        "repo_folder_name",
        "safe_entry",
        "safe_join",
        "validate_repo_id",
    ),
    "hashing": (
        "COMMIT_RE",
        "SHA1_RE",
        "SHA256_RE",
        "git_sha1",
        "git_sha1_file",
        "is_blob_name",
        "is_lfs_path",
        "lfs_pointer",
        "sha256_file",
    ),
    "walk": (
        "BLOB",
        "COPY",
        "COUNTED",
        "DANGLING",
        "ESCAPES",
        "FOLDER_LINK",
        "NOT_A_BLOB",
        "SnapshotFile",
        "snapshot_file",
        "walk_snapshot",
    ),
    "inventory": (
        "INCOMPLETE",
        "BlobFile",
        "CacheScan",
        "Listing",
        "RepoInfo",
        "RepoScan",
        "RevisionInfo",
        "SnapshotDir",
        "SnapshotEntry",
        "cache_root",
        "inode_of",
        "linked_blobs",
        "list_cache",
        "scan_cache",
    ),
    "plan": ("BUSY", "plan_gc", "plan_prune", "plan_rm"),
    "delete": (
        "BLOB_KINDS",
        "IN_USE",
        "LOCK_BATCH",
        "PHASE",
        "Plan",
        "Removal",
        "Result",
        "Skipped",
        "UnsafePath",
        "apply",
        "lock_held",
        "preview",
    ),
}
_MODULE_OF = {name: module for module, names in _HOME.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'hfa.cache' has no attribute {name!r}")
    value = getattr(import_module(f"hfa.cache.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
