"""Reports of findings: grouped human text, JSON, and SARIF 2.1.0 for code-scanning dashboards.

SARIF is written the way GitHub code scanning rates it: every ``artifactLocation.uri`` is
relative to a ``uriBaseId`` and never absolute; every result has ``region.startLine`` and
``partialFingerprints``; every rule has ``help``, ``properties.tags`` with ``security`` and a
``security-severity`` (so alerts show as Critical / High / Medium / Low). Where a finding
points is decided by a :class:`Locator`: a file on disk relative to the git checkout
(``%SRCROOT%``), a file of the Hugging Face cache by its logical name (``REPO@COMMIT/PATH``
under ``HF_CACHE``, never the cache path), and a lock verification at the lock file's line
of the entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from hfa.scan.model import Finding, Severity

RULES: dict[str, str] = {
    "pickle.dangerous-global": "A pickle imports a global that can run code, touch files, the network or processes",
    "pickle.unknown-global": "A pickle imports a global outside the allowlist: it cannot be proven safe",
    "pickle.malformed": "A pickle that cannot be parsed to the end: it cannot be proven safe",
    "pickle.unknown-extension": "A pickle uses an extension code with no known global",
    "pickle.indirect-call": "A pickle calls something that is not an imported global: it cannot be proven safe",
    "pickle.hidden-call": "A pickle makes the unpickler call something no REDUCE shows (an object's __setstate__,"
    " extend, append or add set by its state): it cannot be proven safe",
    "pickle.global-mutation": "A pickle mutates an imported global (BUILD/SETITEM/APPEND on it)",
    "pickle.frame-overrun": "A pickle opcode runs past the end of its FRAME: readers disagree on what it executes",
    "pickle.frame-mismatch": "A pickle FRAME that disagrees with the stream (a frame inside a frame, STOP before its end)",
    "pickle.computed-import": "A pickle's STACK_GLOBAL imports a name computed at load time: any global can be reached",
    "pickle.expansion": "A pickle that builds a huge shared structure from few bytes (a billion-laughs bomb)",
    "pickle.trailing-data": "Bytes after the last pickle that do not start another one",
    "archive.too-large": "An archive member that decompresses beyond the limit (a decompression bomb?)",
    "pickle.unparseable": "Content named or placed as a pickle that is no format the scanner reads: it cannot be"
    " proven safe",
    "archive.suspicious-flags": "A zip member flagged as patched data",
    "archive.encrypted": "An encrypted archive member: it cannot be scanned (nor loaded without its password)",
    "archive.unsupported-container": "A container or compressed stream the scanner does not open (RAR, cab, ar,"
    " cpio, ...): it cannot be proven safe",
    "archive.unscannable": "An archive whose decoder is not installed (lz4, zstandard, py7zr): it cannot be proven"
    " safe",
    "archive.unsafe-name": "An archive member named outside the archive's folder (../ or an absolute path)",
    "archive.link-member": "A link member that a loader extracting the archive would follow",
    "archive.polyglot": "A zip archive hidden after a pickle",
    "archive.unexpected-data": "Legacy torch data that does not match the storages it declares",
    "archive.malformed": "An archive that cannot be read through its central directory: it cannot be proven safe",
    "archive.name-mismatch": "A zip member's local header names a different file than the central directory",
    "archive.unsupported": "An archive member with an unsupported compression: it cannot be proven safe",
    "archive.too-deep": "Archives nested too deeply to scan",
    "scan.too-costly": "A file that costs more work to judge than the scan's budget allows (a bomb?)",
    "lfs.pointer-stub": "A Git-LFS pointer file stands where content should be",
    "safetensors.invalid": "A safetensors file whose header or layout is invalid",
    "remote-code.python": "Python code that a loader runs with trust_remote_code",
    "remote-code.auto-map": "config.json maps model classes to repository code",
    "hash.mismatch": "A file's content does not match its content hash",
    "cache.broken-link": "A snapshot entry points at a blob that does not exist",
    "cache.link-escapes": "A snapshot entry points outside the cache",
    "cache.folder-link": "A folder link inside the cache (not followed)",
    "cache.linked-blobs": "A repo's blobs/ folder is a link",
    "cache.not-a-blob": "A snapshot entry that is neither a blob of its repo nor a plain copy",
    "cache.bad-blob-name": "A file in blobs/ whose name is not a content hash",
    "cache.incomplete": "A partial download left in blobs/",
    "cache.dangling-ref": "A ref names a commit with no snapshot",
    "cache.stale-lock": "A lock file no process holds",
    "lock.missing-file": "A file the lock names is not in the cache",
    "lock.extra-file": "A snapshot holds a file the lock does not name",
    "lock.missing-repo": "A repo the lock names is not in the cache",
    "file.unreadable": "A file that cannot be read",
    "policy.allowlist-extended": "The pickle allowlist was extended by a configuration file",
    "policy.license": "A locked repo's licence breaks the [policy] of hfa.toml",
    "policy.pickle": "A locked repo holds pickle files the [policy] of hfa.toml refuses",
    "policy.remote-code": "A locked repo needs remote code, which the [policy] of hfa.toml refuses",
    "policy.gated": "A locked repo is gated, which the [policy] of hfa.toml refuses",
    "policy.max-size": "A locked repo is larger than the [policy] of hfa.toml allows",
    "policy.sources": "A locked repo comes from an org or author the [policy] of hfa.toml does not list",
    "policy.exception": "A policy violation that an exception in hfa.toml allows, with its reason",
}

_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    out = {s.label: 0 for s in sorted(Severity, reverse=True)}
    for f in findings:
        out[f.severity.label] += 1
    return out


def human_lines(findings: Sequence[Finding]) -> list[str]:
    """Findings grouped by severity, worst first."""
    lines: list[str] = []
    for level in sorted(Severity, reverse=True):
        group = [f for f in findings if f.severity == level]
        if not group:
            continue
        lines.append(f"{level.label.upper()} ({len(group)})")
        for f in group:
            lines.append(f"  {f.path}: {f.message} [{f.code}]")
    return lines


# security-severity as GitHub reads it: >= 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low.
# INFO findings (a stale lock file, an allowlist extension) carry none: they show as notes.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
}
_HELP = {
    "pickle": "Do not load this file: unpickling it can run code. Prefer a safetensors copy of the weights;"
    " if you trust a global it imports, name it in an allowlist file (hfa scan --allowlist FILE).",
    "archive": "The archive cannot be proven safe: do not load it; get a safetensors copy or the file again"
    " from a source you trust.",
    "lfs": "The file is a Git-LFS pointer, not its content: run `git lfs pull`, or `hfa verify FOLDER --fix`.",
    "safetensors": "The file is damaged: fetch it again with `hfa verify --fix`.",
    "remote-code": "Loading this model runs the repository's code (trust_remote_code): review that code and"
    " pin the reviewed commit in hfa.lock.",
    "policy": "Review the allowlist file: the scan trusts every global it names.",
}
_HELP_POLICY = (
    "Replace the repo (or pin another revision), or add an exception with a written reason to hfa.toml:"
    ' [[policy.exceptions]] repo = "org/name", allow = ["<rule>"], reason = "..." (docs/policy.md).'
)
_HELP_INTEGRITY = "Repair the cache with `hfa verify --fix` (re-fetches missing or corrupt files), or pull again."

SRCROOT = "%SRCROOT%"  # the git checkout (GitHub code scanning's, and CodeQL's, name for it)
HF_CACHE = "HF_CACHE"  # the Hugging Face cache: logical names REPO@COMMIT/PATH, not paths on disk
FS_ROOT = "FS_ROOT"  # a file outside the checkout, by its path from the file system's root
_BASES = {
    HF_CACHE: {"description": {"text": "The Hugging Face cache: REPO@COMMIT/PATH, or a repo folder's entry"}},
    FS_ROOT: {"uri": "file:///", "description": {"text": "A file outside the checkout"}},
}


class Location(NamedTuple):
    """Where a SARIF result points: ``uri`` relative to ``base`` (a uriBaseId), and a 1-based line."""

    uri: str
    base: str = SRCROOT
    line: int = 1


def checkout_root(start: Path | None = None) -> Path:
    """The git checkout holding ``start`` (default: the working directory), else ``start`` itself."""
    here = Path(os.path.abspath(start if start is not None else Path.cwd()))
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


class Locator:
    """Decides the :class:`Location` of each finding (see the module's docstring).

    ``logical(path)`` says which finding paths name cache entries rather than files on disk
    (absolute ones under ``cache_dir`` are made relative to it); :meth:`with_lock` points the
    entries of a lock at the lock file's lines.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        logical: Callable[[str], bool] = lambda path: False,
        cache_dir: Path | None = None,
    ) -> None:
        self.root = checkout_root() if root is None else Path(os.path.abspath(root))
        self.logical = logical
        self.cache_dir = cache_dir
        self._lock: Location | None = None
        self._lock_entries: dict[str, tuple[str, str]] = {}
        self._lock_lines: dict[tuple[str, str, str], int] = {}

    def with_lock(self, path: Path, text: str, entries: Sequence[tuple[str, str, str]]) -> Locator:
        """Point findings on the lock's entries (``(repo_type, repo_id, commit)``) at ``path``'s lines."""
        from hfa.lock.lockfile import line_numbers

        self._lock = self.on_disk(str(path))
        self._lock_lines = line_numbers(text)
        for repo_type, repo_id, commit in entries:
            label = repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"
            self._lock_entries[f"{label}@{commit[:12]}"] = (repo_type, repo_id)
        return self

    def __call__(self, finding: Finding) -> Location:
        name = finding.path.split("!", 1)[0]
        if self._lock is not None and "@" in name:
            label, _, path = _split_label(name)
            entry = self._lock_entries.get(label)
            if entry is not None:
                line = self._lock_lines.get((*entry, path)) or self._lock_lines.get((*entry, ""), 1)
                return Location(self._lock.uri, self._lock.base, line)
        if self.logical(name):
            if self.cache_dir is not None and os.path.isabs(name):
                rel = _relative(name, self.cache_dir)
                if rel is not None:
                    return Location(rel, HF_CACHE)
            if not os.path.isabs(name):
                return Location(_clean(name), HF_CACHE)
        return self.on_disk(name)

    def on_disk(self, name: str) -> Location:
        """A file on disk: relative to the checkout when inside it, else from the file system's root."""
        real_root = Path(os.path.realpath(self.root))
        for path, root in ((os.path.abspath(name), self.root), (os.path.realpath(name), real_root)):
            rel = _relative(path, root)
            if rel is not None:
                return Location(rel)
        return Location(Path(os.path.abspath(name)).as_posix().lstrip("/"), FS_ROOT)


def _split_label(name: str) -> tuple[str, str, str]:
    """``org/model@0123456789ab/dir/file`` -> (``org/model@0123456789ab``, ``/``, ``dir/file``)."""
    before, _, after = name.partition("@")
    commit, slash, rest = after.partition("/")
    return f"{before}@{commit}", slash, rest


def _relative(path: str, root: Path) -> str | None:
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def _clean(name: str) -> str:
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _uri(path: str) -> str:
    from urllib.parse import quote

    # A relative reference: reserved characters escaped, and so is ':' (it would read as a scheme).
    return quote(path, safe="/@!$&'()*+,;=-._~")


def _fingerprint(f: Finding) -> str:
    import hashlib  # SARIF only: loading OpenSSL costs `hfa scan FILE` ~5 ms of its start

    key = json.dumps([f.code, f.path, f.detail], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _help(code: str, family: str) -> str:
    if family == "policy" and code != "policy.allowlist-extended":  # hfa.toml's [policy] (hfa.policy)
        return _HELP_POLICY
    return _HELP.get(family, _HELP_INTEGRITY)


def _rule(code: str, worst: Severity) -> dict[str, Any]:
    family = code.split(".", 1)[0]
    text = RULES.get(code, code)
    properties: dict[str, Any] = {"tags": ["security", family]}
    if worst in _SECURITY_SEVERITY:
        properties["security-severity"] = _SECURITY_SEVERITY[worst]
    return {
        "id": code,
        "name": code.replace(".", "-"),
        "shortDescription": {"text": text},
        "fullDescription": {"text": text},
        "help": {"text": _help(code, family)},
        "defaultConfiguration": {"level": _SARIF_LEVEL[worst]},
        "properties": properties,
    }


def sarif(
    findings: Sequence[Finding],
    version: str,
    locate: Callable[[Finding], Location] | None = None,
    *,
    category: str = "hfa",
) -> dict[str, Any]:
    """A SARIF 2.1.0 log of ``findings``; ``locate`` says where each points (default: files on disk)."""
    locate = locate or Locator()
    worst: dict[str, Severity] = {}
    for f in findings:
        worst[f.code] = max(worst.get(f.code, f.severity), f.severity)
    used = sorted(worst)
    index = {code: i for i, code in enumerate(used)}
    results = []
    bases: set[str] = set()
    for f in findings:
        where = locate(f)
        bases.add(where.base)
        results.append(
            {
                "ruleId": f.code,
                "ruleIndex": index[f.code],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.message} ({f.path})"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(where.uri), "uriBaseId": where.base},
                            "region": {"startLine": max(1, where.line)},
                        }
                    }
                ],
                "partialFingerprints": {"hfaFinding/v1": _fingerprint(f)},
                "properties": {"severity": f.severity.label, **({"detail": f.detail} if f.detail else {})},
            }
        )
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "hfa",
                "version": version,
                "rules": [_rule(code, worst[code]) for code in used],
            }
        },
        "automationDetails": {"id": f"{category}/"},
        "results": results,
    }
    described = {base: _BASES[base] for base in sorted(bases) if base in _BASES}
    if described:
        run["originalUriBaseIds"] = described
    return {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}


def write_sarif(
    path: Path,
    findings: Sequence[Finding],
    version: str,
    locate: Callable[[Finding], Location] | None = None,
    *,
    category: str = "hfa",
) -> None:
    from hfa.cache.layout import atomic_write_text

    atomic_write_text(path, json.dumps(sarif(findings, version, locate, category=category), indent=2) + "\n")
