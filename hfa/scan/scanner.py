"""Scan targets: files, folders, a huggingface_hub cache, or a repo in it. Content is sniffed, never trusted by name.

Each distinct blob is scanned once, then reported under every name it has (a cache blob
linked from several snapshots). Nothing scanned is ever imported, unpickled or executed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hfa.scan.lfs import MAX_POINTER, check_pointer
from hfa.scan.model import Finding, ScanPolicy, Severity
from hfa.scan.safetensors import check_safetensors, looks_like_safetensors

HEAD = 4096


@dataclass(frozen=True)
class Target:
    """One file to scan: where its bytes are, and the name to report it under."""

    real: Path
    display: str


@dataclass
class ScanReport:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    policy_notes: list[str] = field(default_factory=list)

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def at_or_above(self, level: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= level]


def scan_file(real: Path, display: str, policy: ScanPolicy) -> list[Finding]:
    """Every check that applies to one file's content."""
    findings: list[Finding] = []
    name = display.rsplit("/", 1)[-1].rsplit("!", 1)[-1]
    try:
        size = real.stat().st_size
        with real.open("rb") as fp:
            head = fp.read(HEAD)
            if size <= MAX_POINTER:
                stub = check_pointer(head, display)
                if stub:
                    return stub
            if looks_like_safetensors(head):
                findings += check_safetensors(fp, display, size)
            else:
                from hfa.scan.archive import scan_serialized

                fp.seek(0)
                result = scan_serialized(fp, display, policy, size=size)
                if result is not None:
                    findings += result
                elif name.endswith(".safetensors"):
                    findings += check_safetensors(fp, display, size)
    except OSError as exc:
        return [Finding(Severity.HIGH, "file.unreadable", f"cannot be read: {exc.strerror}", display)]
    if name.endswith(".py"):
        findings.append(
            Finding(Severity.MEDIUM, "remote-code.python", "Python code: loading it needs trust_remote_code", display)
        )
    elif name == "config.json" and size < 4 * 1024 * 1024:
        findings += _auto_map(real, display)
    return findings


def _auto_map(real: Path, display: str) -> list[Finding]:
    import json

    try:
        doc = json.loads(real.read_bytes())
    except (OSError, ValueError):
        return []
    auto_map = doc.get("auto_map") if isinstance(doc, dict) else None
    if not auto_map:
        return []
    return [
        Finding(
            Severity.MEDIUM,
            "remote-code.auto-map",
            "config.json maps classes to repository code (auto_map): loading needs trust_remote_code",
            display,
            {"auto_map": auto_map if isinstance(auto_map, dict) else str(auto_map)},
        )
    ]


def scan_targets(targets: Iterable[Target], policy: ScanPolicy, workers: int | None = None) -> ScanReport:
    """Scan each distinct file once (in parallel), report findings under every display name."""
    by_real: dict[str, list[str]] = {}
    for t in targets:
        by_real.setdefault(os.path.realpath(t.real), []).append(t.display)
    report = ScanReport(files=sum(len(v) for v in by_real.values()))
    workers = workers or min(8, (os.cpu_count() or 2))

    def one(item: tuple[str, list[str]]) -> list[Finding]:
        real, names = item
        found = scan_file(Path(real), names[0], policy)
        out = list(found)
        for other in names[1:]:
            out += [Finding(f.severity, f.code, f.message, other + f.path[len(names[0]) :], f.detail) for f in found]
        return out

    items = sorted(by_real.items())
    if len(items) == 1:  # one file (`hfa scan model.pt`): no pool to start
        report.findings += one(items[0])
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for found in pool.map(one, items):
                report.findings += found
    report.findings.sort(key=lambda f: (-f.severity, f.path, f.code))
    return report


# -- what to scan -----------------------------------------------------------------------------------


def iter_folder(root: Path, display_root: str | None = None) -> Iterator[Target]:
    """Every regular file under ``root``; links are followed only when they stay inside ``root``."""
    root_real = os.path.realpath(root)
    base = display_root if display_root is not None else str(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not Path(dirpath, d).is_symlink())
        for name in sorted(filenames):
            full = Path(dirpath, name)
            real = os.path.realpath(full)
            if not (real == root_real or real.startswith(root_real + os.sep)) or not os.path.isfile(real):
                continue
            rel = full.relative_to(root).as_posix()
            yield Target(Path(real), f"{base.rstrip('/')}/{rel}" if base else rel)


def is_hf_cache(path: Path) -> bool:
    from hfa.cache.layout import iter_repos

    return path.is_dir() and bool(iter_repos(path)) and not (path / "snapshots").is_dir()


def iter_cache(cache_dir: Path) -> Iterator[Target]:
    """Every snapshot file of every repo in a huggingface_hub cache, following links into blobs/."""
    from hfa.cache.layout import iter_repos

    for repo in iter_repos(cache_dir):
        yield from iter_repo(cache_dir, repo.repo_type, repo.repo_id)


def iter_repo(cache_dir: Path, repo_type: str, repo_id: str, commit: str | None = None) -> Iterator[Target]:
    """Every blob a snapshot of the repo links to (one commit, or all), under its snapshot name.

    What counts is :func:`hfa.cache.walk.walk_snapshot`'s rule: links to this repo's own blobs.
    """
    from hfa.cache.layout import RepoDir
    from hfa.cache.walk import BLOB, walk_snapshot

    repo = RepoDir(cache_dir, repo_type, repo_id)
    commits = [commit] if commit else repo.list_commits()
    for c in commits:
        for entry in walk_snapshot(repo, c):
            if entry.kind == BLOB and entry.real is not None:
                yield Target(entry.real, f"{repo.label}@{c[:12]}/{entry.rel}")
