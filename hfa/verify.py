"""``hfa verify``: prove a cache, a repo in it, a lock's files or a plain folder sound, offline.

* every blob's content hashes to its name (sha256 or git-sha1), hashed on all cores, each
  byte read once;
* every snapshot entry passes the cache's containment rule (:mod:`hfa.cache.walk`): a link to a
  blob of its own repo, or a plain copy; links out of the cache, dangling links, links elsewhere
  and folder links are reported;
* every locked file is present with the locked hash; missing and extra files reported;
* ``.incomplete`` leftovers, dangling refs and stale locks reported;
* the content scan (pickle, archives, LFS stubs, safetensors, remote code) over the files.

Verifying a cache or a lock starts hashing as soon as it knows the blobs: what only the checks and
the scan need (the scanner, and through it the pickle and archive readers) is imported by the
functions that run while the blobs hash, not by this module.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfa.cache.hashing import COMMIT_RE, SHA1_RE, SHA256_RE
from hfa.cache.layout import RepoDir, iter_repos
from hfa.cache.walk import BLOB, DANGLING, ESCAPES, FOLDER_LINK, NOT_A_BLOB, SnapshotFile, snapshot_file, walk_snapshot
from hfa.resolve.refs import RepoRef
from hfa.scan.model import Finding, ScanPolicy, Severity

if TYPE_CHECKING:  # a lock is read by the caller; verifying a cache never imports the lock module
    from hfa.lock.lockfile import Lock
    from hfa.scan.scanner import Target

CHUNK = 4 << 20
STALE_LOCK_AGE = 3600.0


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    blobs: int = 0
    bytes_hashed: int = 0
    files: int = 0
    repos: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    # what --fix needs: (repo_type, repo_id, commit, path) of files to fetch again
    to_refetch: list[tuple[str, str, str, str]] = field(default_factory=list)
    stubs: list[tuple[Path, str, str, int]] = field(default_factory=list)  # (file, repo path, oid, size)

    def to_json(self) -> dict[str, Any]:
        from hfa.scan.report import counts

        return {
            "repos": self.repos,
            "blobs_hashed": self.blobs,
            "bytes_hashed": self.bytes_hashed,
            "files_scanned": self.files,
            "counts": counts(self.findings),
            "findings": [f.to_json() for f in self.findings],
            "elapsed_seconds": round(self.elapsed, 3),
        }


def hash_blob(path: Path) -> tuple[str, int]:
    """The blob's hash in the algorithm its name says (64 hex: sha256, 40 hex: git-sha1), and its size."""
    size = path.stat().st_size
    h = hashlib.sha256() if len(path.name) == 64 else hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb", buffering=0) as fp:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := fp.readinto(buf):
            h.update(view[:n])
    return h.hexdigest(), size


def _hash_all(
    blobs: list[Path], workers: int, meanwhile: Callable[[], None] | None = None
) -> dict[Path, tuple[str, int] | None]:
    """Each blob's (hash, size), None where it cannot be read; ``meanwhile()`` runs on this thread as they hash."""

    def one(p: Path) -> tuple[Path, tuple[str, int] | None]:
        try:
            return p, hash_blob(p)
        except OSError:
            return p, None

    # hashlib releases the GIL on large updates: threads use every core. Largest first.
    ordered = sorted(blobs, key=lambda p: -_size(p))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(one, ordered)  # every blob submitted now
        if meanwhile is not None:
            try:
                meanwhile()  # checks and the content scan: off the critical path of the hashing
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # no waiting for blobs not yet started
                raise
        return dict(results)


class _ScanMeanwhile:
    """``scan_targets(targets, ...)`` run while the blobs hash (:func:`_hash_all`); its report kept for later."""

    def __init__(self, targets: list[Target], policy: ScanPolicy, workers: int, enabled: bool) -> None:
        self.args = (targets, policy, workers)
        self.enabled = enabled
        self.report: Any = None

    def __call__(self) -> None:
        if self.enabled:
            from hfa.scan.scanner import scan_targets

            targets, policy, workers = self.args
            self.report = scan_targets(targets, policy, workers=workers)

    def add_to(self, report: VerifyReport) -> None:
        """Its findings after the hash findings, as when the scan ran after the hashing."""
        if self.report is not None:
            report.files = self.report.files
            report.findings += self.report.findings


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def looks_like_path(text: str) -> bool:
    """A verify target meant as a path (``/x``, ``./x``, ``~/x``, ``a/b/c``), not a repo id."""
    if text.startswith(("/", "./", "../", "~")) or text in (".", ".."):
        return True
    from hfa.errors import UsageError

    try:
        RepoRef.parse(text)
    except UsageError:
        return True
    return False


def verify_cache(
    cache_dir: Path,
    refs: list[RepoRef] | None,
    policy: ScanPolicy,
    *,
    scan: bool = True,
    workers: int | None = None,
) -> VerifyReport:
    started = time.monotonic()
    if not cache_dir.is_dir():
        from hfa.errors import UsageError

        raise UsageError(f"No cache at {cache_dir}: the folder does not exist", "check --cache-dir / HF_HUB_CACHE")
    workers = workers or max(1, os.cpu_count() or 1)
    report = VerifyReport()
    repos: list[tuple[RepoDir, RepoRef | None]] = []
    if refs:
        for ref in refs:
            repo = RepoDir(cache_dir, ref.repo_type, ref.repo_id)
            if not repo.snapshots.is_dir():
                from hfa.errors import CheckFailed

                raise CheckFailed(f"'{ref.display}' is not in the cache {cache_dir}", f"run `hfa pull {ref.display}`")
            repos.append((repo, ref))
    else:
        repos = [(r, None) for r in iter_repos(cache_dir)]
    targets: list[Target] = []
    blobs: list[Path] = []
    blob_owner: dict[Path, RepoDir] = {}
    users: dict[str, list[tuple[RepoDir, str, str]]] = {}  # blob real path -> (repo, commit, path)
    plan: list[tuple[RepoDir, list[str], list[Finding]]] = []
    for repo, wanted in repos:
        report.repos.append(repo.label)
        commits = repo.list_commits()
        if wanted is not None and wanted.revision is not None:
            commit = wanted.revision if wanted.pinned else repo.read_ref(wanted.revision)
            commits = [commit] if commit and commit in commits else []
            if not commits:
                from hfa.errors import CheckFailed

                raise CheckFailed(
                    f"'{wanted.display}' is not in the cache {cache_dir}", f"run `hfa pull {wanted.display}`"
                )
        plan.append((repo, commits, _check_blobs_dir(repo, blobs, blob_owner)))
    scanning = _ScanMeanwhile(targets, policy, workers, scan)

    def meanwhile() -> None:
        """What does not need the hashes, on this thread while the blobs hash: the checks, then the scan."""
        for repo, commits, findings in plan:
            findings += _check_refs(repo)
            findings += _check_locks(cache_dir, repo)
            for commit in commits:
                findings += _check_snapshot(repo, commit, targets, users, report)
        scanning()

    hashed = _hash_all(blobs, workers, meanwhile)
    for _, _, findings in plan:  # in the order they were found: by repo, then blobs, refs, locks, snapshots
        report.findings += findings
    for blob, result in sorted(hashed.items()):
        repo = blob_owner[blob]
        if result is None:
            report.findings.append(Finding(Severity.HIGH, "file.unreadable", "blob cannot be read", str(blob)))
            continue
        digest, size = result
        report.blobs += 1
        report.bytes_hashed += size
        if digest != blob.name:
            names = [f"{r.label}@{c[:12]}/{p}" for r, c, p in users.get(str(blob), [])]
            report.findings.append(
                Finding(
                    Severity.CRITICAL,
                    "hash.mismatch",
                    f"content hashes to {digest[:12]}…, not to its name: corrupt or tampered"
                    + (f" (used as {', '.join(names[:3])})" if names else ""),
                    f"{repo.label}/blobs/{blob.name}",
                    {"expected": blob.name, "actual": digest, "used_as": names},
                )
            )
            for r, c, p in users.get(str(blob), []):
                report.to_refetch.append((r.repo_type, r.repo_id, c, p))
    scanning.add_to(report)
    report.findings.sort(key=lambda f: (-f.severity, f.path, f.code))
    report.elapsed = time.monotonic() - started
    return report


def _check_blobs_dir(repo: RepoDir, blobs: list[Path], owner: dict[Path, RepoDir]) -> list[Finding]:
    findings: list[Finding] = []
    if repo.blobs.is_symlink():  # its blobs count for nothing (hfa.cache.walk); never read through it
        where = os.path.realpath(repo.blobs)
        message = f"blobs/ is a link to {where}: its blobs are not verified, and hfa does not read or write through it"
        return [Finding(Severity.HIGH, "cache.linked-blobs", message, f"{repo.label}/blobs")]
    if not repo.blobs.is_dir():
        return findings
    for entry in sorted(repo.blobs.iterdir()):
        name = entry.name
        if name.endswith(".incomplete"):
            findings.append(
                Finding(
                    Severity.LOW,
                    "cache.incomplete",
                    "partial download left behind (a pull resumes it)",
                    f"{repo.label}/blobs/{name}",
                    {"bytes": _size(entry)},
                )
            )
        elif (SHA256_RE.fullmatch(name) or SHA1_RE.fullmatch(name)) and entry.is_file() and not entry.is_symlink():
            blobs.append(entry)
            owner[entry] = repo
        elif SHA256_RE.fullmatch(name) and entry.is_symlink():
            pass  # huggingface_hub's shared Xet store links blobs; the snapshot check covers them
        else:
            findings.append(
                Finding(Severity.LOW, "cache.bad-blob-name", "unexpected file in blobs/", f"{repo.label}/blobs/{name}")
            )
    return findings


def _check_refs(repo: RepoDir) -> list[Finding]:
    commits = set(repo.list_commits())
    findings = []
    for name, value in sorted(repo.list_refs().items()):
        if not COMMIT_RE.fullmatch(value) or value not in commits:
            findings.append(
                Finding(
                    Severity.LOW,
                    "cache.dangling-ref",
                    f"ref '{name}' names {value[:40]!r}, which has no snapshot",
                    f"{repo.label}/refs/{name}",
                )
            )
    return findings


def _check_locks(cache_dir: Path, repo: RepoDir) -> list[Finding]:
    from hfa.cache.layout import repo_folder_name

    folder = cache_dir / ".locks" / repo_folder_name(repo.repo_id, repo.repo_type)
    findings: list[Finding] = []
    if not folder.is_dir():
        return findings
    now = time.time()
    for lock in sorted(folder.glob("*.lock")):
        try:
            age = now - lock.stat().st_mtime
        except OSError:
            continue
        if age < STALE_LOCK_AGE:
            continue
        from filelock import FileLock, Timeout  # only for an old lock file (~10 ms of imports)

        try:
            with FileLock(str(lock), timeout=0):
                pass
        except Timeout:
            continue  # held by a running process: not stale
        findings.append(
            Finding(
                Severity.INFO,
                "cache.stale-lock",
                f"lock file unused for {age / 3600:.0f} h (safe to delete)",
                f".locks/{folder.name}/{lock.name}",
            )
        )
    return findings


def _check_snapshot(
    repo: RepoDir,
    commit: str,
    targets: list[Target],
    users: dict[str, list[tuple[RepoDir, str, str]]],
    report: VerifyReport,
) -> list[Finding]:
    from hfa.scan.scanner import Target

    findings: list[Finding] = []
    label = f"{repo.label}@{commit[:12]}"
    for entry in walk_snapshot(repo, commit):
        display = f"{label}/{entry.rel}" if entry.rel else label
        if entry.real is not None:  # a blob of this repo, or a plain copy
            if entry.kind == BLOB:
                users.setdefault(str(entry.real), []).append((repo, commit, entry.rel))
            targets.append(Target(entry.real, display))
            continue
        finding = _snapshot_problem(entry, display)
        findings.append(finding)
        if entry.kind in (DANGLING, NOT_A_BLOB) and entry.rel:  # --fix fetches it again and links it anew
            report.to_refetch.append((repo.repo_type, repo.repo_id, commit, entry.rel))
    return findings


def _snapshot_problem(entry: SnapshotFile, display: str) -> Finding:
    """What is wrong with a snapshot entry the containment rule does not count."""
    what = "folder link" if entry.folder else "link"
    if entry.kind == ESCAPES:
        return Finding(
            Severity.CRITICAL, "cache.link-escapes", f"{what} leads out of the cache to {entry.resolved}", display
        )
    if entry.kind == DANGLING:
        return Finding(
            Severity.HIGH, "cache.broken-link", "link to a blob that does not exist", display, {"target": entry.link}
        )
    if entry.kind == FOLDER_LINK:
        return Finding(
            Severity.LOW,
            "cache.folder-link",
            f"folder link to {entry.resolved} is not followed: its files are not served, scanned or verified",
            display,
        )
    if not entry.is_link:
        return Finding(Severity.HIGH, "cache.not-a-blob", "neither a regular file nor a link to a blob", display)
    return Finding(
        Severity.HIGH,
        "cache.not-a-blob",
        f"link leads to {entry.resolved}, which is not a blob of this repo: it is not served, scanned or verified",
        display,
        {"target": entry.link},
    )


def verify_lock(
    cache_dir: Path, lock: Lock, policy: ScanPolicy, *, scan: bool = True, workers: int | None = None
) -> VerifyReport:
    """Every locked file present in its snapshot with the locked hash; extra snapshot files reported."""
    from hfa.scan.scanner import Target

    started = time.monotonic()
    workers = workers or max(1, os.cpu_count() or 1)
    report = VerifyReport()
    targets: list[Target] = []
    to_hash: dict[Path, list[tuple[str, str, str, str, str]]] = {}
    for entry in lock.repos:
        repo = RepoDir(cache_dir, entry.repo_type, entry.repo_id)
        label = f"{repo.label}@{entry.commit[:12]}"
        report.repos.append(f"{repo.label}@{entry.revision}")
        snap = repo.snapshot(entry.commit)
        if not snap.is_dir():
            report.findings.append(
                Finding(Severity.HIGH, "lock.missing-repo", f"locked commit {entry.commit} is not in the cache", label)
            )
            report.to_refetch += [(entry.repo_type, entry.repo_id, entry.commit, f.path) for f in entry.files]
            continue
        locked = {f.path: f for f in entry.files}
        for f in entry.files:
            found = snapshot_file(repo, entry.commit, f.path)
            real = found.real if found is not None else None
            if real is None:  # absent, or not a blob of this repo nor a plain copy
                report.findings.append(
                    Finding(
                        Severity.HIGH,
                        "lock.missing-file",
                        "locked file is missing from the cache",
                        f"{label}/{f.path}",
                        {"hash": f.hash},
                    )
                )
                report.to_refetch.append((entry.repo_type, entry.repo_id, entry.commit, f.path))
                continue
            to_hash.setdefault(real, []).append((label, f.path, f.algo, f.digest, entry.repo_id))
            targets.append(Target(real, f"{label}/{f.path}"))
        present = {e.rel for e in walk_snapshot(repo, entry.commit) if e.kind == BLOB}
        for extra in sorted(present - set(locked)):
            report.findings.append(
                Finding(Severity.LOW, "lock.extra-file", "in the snapshot but not in the lock", f"{label}/{extra}")
            )
    scanning = _ScanMeanwhile(targets, policy, workers, scan)
    hashed = _hash_all(list(to_hash), workers, scanning)
    entries_by_key = {(e.repo_id, e.commit[:12]): e for e in lock.repos}
    for real, result in hashed.items():
        for label, path, algo, digest, repo_id in to_hash[real]:
            if result is None:
                report.findings.append(Finding(Severity.HIGH, "file.unreadable", "cannot be read", f"{label}/{path}"))
                continue
            report.blobs += 1
            report.bytes_hashed += result[1]
            actual = _content_hash(real, algo, result)
            if actual != digest:
                report.findings.append(
                    Finding(
                        Severity.CRITICAL,
                        "hash.mismatch",
                        f"content does not match the locked {algo} {digest[:12]}…",
                        f"{label}/{path}",
                        {"expected": digest, "actual": actual},
                    )
                )
                owner = entries_by_key.get((repo_id, label.rsplit("@", 1)[1]))
                if owner is not None:
                    report.to_refetch.append((owner.repo_type, owner.repo_id, owner.commit, path))
    scanning.add_to(report)
    report.findings.sort(key=lambda f: (-f.severity, f.path, f.code))
    report.elapsed = time.monotonic() - started
    return report


def _content_hash(real: Path, algo: str, hashed: tuple[str, int]) -> str:
    """The file's hash in ``algo``; reuses the blob hash when the blob's name says it is that algorithm."""
    if (algo == "sha256" and len(real.name) == 64) or (algo == "git-sha1" and len(real.name) == 40):
        return hashed[0]
    size = hashed[1]
    h = hashlib.sha256() if algo == "sha256" else hashlib.sha1(b"blob %d\0" % size)
    with real.open("rb") as fp:
        while chunk := fp.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_folder(root: Path, policy: ScanPolicy, *, workers: int | None = None) -> VerifyReport:
    """A plain folder (a git clone, a local_dir download): the content scan, LFS stubs included."""
    from hfa.scan.scanner import Target, iter_folder, scan_targets

    started = time.monotonic()
    report = VerifyReport(repos=[str(root)])
    if root.is_file():
        targets: Iterable[Target] = [Target(root, str(root))]
    else:
        targets = list(iter_folder(root))
    scanned = scan_targets(targets, policy, workers=workers)
    report.files = scanned.files
    report.findings = scanned.findings
    for f in report.findings:
        if f.code == "lfs.pointer-stub":
            rel = f.path[len(str(root)) :].lstrip("/") if root.is_dir() else root.name
            report.stubs.append((root / rel if root.is_dir() else root, rel, f.detail["oid"], f.detail["size"]))
    report.elapsed = time.monotonic() - started
    return report
