"""Reports of findings: grouped human text, JSON, and SARIF 2.1.0 for code-scanning dashboards."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hfa.scan.model import Finding, Severity

RULES: dict[str, str] = {
    "pickle.dangerous-global": "A pickle imports a global that can run code, touch files, the network or processes",
    "pickle.unknown-global": "A pickle imports a global outside the allowlist: it cannot be proven safe",
    "pickle.malformed": "A pickle that cannot be parsed to the end: it cannot be proven safe",
    "pickle.unknown-extension": "A pickle uses an extension code with no known global",
    "pickle.indirect-call": "A pickle calls something that is not an imported global: it cannot be proven safe",
    "pickle.global-mutation": "A pickle mutates an imported global (BUILD/SETITEM/APPEND on it)",
    "pickle.trailing-data": "Bytes after the last pickle that do not start another one",
    "archive.too-large": "An archive member that decompresses beyond the limit (a decompression bomb?)",
    "archive.suspicious-flags": "A zip member with encrypted or patched flag bits",
    "archive.polyglot": "A zip archive hidden after a pickle",
    "archive.unexpected-data": "Legacy torch data that does not match the storages it declares",
    "archive.malformed": "An archive that cannot be read through its central directory: it cannot be proven safe",
    "archive.name-mismatch": "A zip member's local header names a different file than the central directory",
    "archive.unsupported": "An archive member with an unsupported compression: it cannot be proven safe",
    "archive.too-deep": "Archives nested too deeply to scan",
    "lfs.pointer-stub": "A Git-LFS pointer file stands where content should be",
    "safetensors.invalid": "A safetensors file whose header or layout is invalid",
    "remote-code.python": "Python code that a loader runs with trust_remote_code",
    "remote-code.auto-map": "config.json maps model classes to repository code",
    "hash.mismatch": "A file's content does not match its content hash",
    "cache.broken-link": "A snapshot entry points at a blob that does not exist",
    "cache.link-escapes": "A snapshot entry points outside the cache",
    "cache.bad-blob-name": "A file in blobs/ whose name is not a content hash",
    "cache.incomplete": "A partial download left in blobs/",
    "cache.dangling-ref": "A ref names a commit with no snapshot",
    "cache.stale-lock": "A lock file no process holds",
    "lock.missing-file": "A file the lock names is not in the cache",
    "lock.extra-file": "A snapshot holds a file the lock does not name",
    "lock.missing-repo": "A repo the lock names is not in the cache",
    "file.unreadable": "A file that cannot be read",
    "policy.allowlist-extended": "The pickle allowlist was extended by a configuration file",
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


def sarif(findings: Sequence[Finding], version: str, base: Path | None = None) -> dict[str, Any]:
    used = sorted({f.code for f in findings})
    rules = [
        {
            "id": code,
            "name": code.replace(".", "-"),
            "shortDescription": {"text": RULES.get(code, code)},
        }
        for code in used
    ]
    index = {code: i for i, code in enumerate(used)}
    results = []
    for f in findings:
        uri = f.path.split("!", 1)[0]
        results.append(
            {
                "ruleId": f.code,
                "ruleIndex": index[f.code],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.message} ({f.path})"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
                "properties": {"severity": f.severity.label, **({"detail": f.detail} if f.detail else {})},
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "hfa",
                        "version": version,
                        "rules": rules,
                    }
                },
                "results": results,
                **({"originalUriBaseIds": {"SRCROOT": {"uri": base.as_uri() + "/"}}} if base else {}),
            }
        ],
    }


def write_sarif(path: Path, findings: Sequence[Finding], version: str) -> None:
    from hfa.cache import atomic_write_text

    atomic_write_text(path, json.dumps(sarif(findings, version), indent=2) + "\n")
