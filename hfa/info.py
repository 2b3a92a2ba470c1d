"""``hfa info`` as a library call: a repository's commit, card facts, files with kinds and risk flags,
and what ``hfa pull`` would select, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfa import jsonsafe
from hfa.config import Settings
from hfa.errors import HfaError
from hfa.hub.download import verify_bytes
from hfa.pull import open_source, plan
from hfa.resolve.card import CardData, parse_card
from hfa.resolve.deps import Dependencies, Requirement
from hfa.resolve.files import RemoteFile, Resolved
from hfa.resolve.kinds import classify, gguf_quants
from hfa.resolve.refs import RepoRef
from hfa.resolve.resolver import read_cached
from hfa.resolve.selection import Selection, SelectOptions

CARD_FIELDS = ("license", "pipeline_tag", "library_name", "base_model", "datasets", "language", "tags")


@dataclass
class FileInfo:
    path: str
    size: int
    kind: str
    flags: list[str]
    selected: bool
    reason: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "kind": self.kind,
            "flags": self.flags,
            "selected": self.selected,
            "reason": self.reason,
            "hash": self.hash,
        }


@dataclass
class InfoResult:
    ref: RepoRef
    commit: str
    gated: str | bool
    private: bool
    card: dict[str, Any]
    files: list[FileInfo]
    warnings: list[str] = field(default_factory=list)
    remote_code: bool = False
    quants: list[str] = field(default_factory=list)  # GGUF quantizations, fewest bits first
    requires: list[Requirement] = field(default_factory=list)  # pinned and pulled with it
    provenance: list[Requirement] = field(default_factory=list)  # the card's base_model: shown, never fetched

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.ref.repo_id,
            "repo_type": self.ref.repo_type,
            "revision": self.ref.revision_or_default,
            "commit": self.commit,
            "gated": self.gated,
            "private": self.private,
            "card": self.card,
            "remote_code": self.remote_code,
            "files": [f.to_json() for f in self.files],
            "selected": [f.path for f in self.files if f.selected],
            "quants": self.quants,
            "requires": [r.to_json() for r in self.requires],
            "base_models": [r.to_json() for r in self.provenance],
            "warnings": self.warnings,
        }


def _read(settings: Settings, resolved: Resolved, f: RemoteFile) -> bytes | None:
    data = read_cached(settings.cache_dir, resolved.ref, f)
    if data is not None or settings.offline:
        return data
    from hfa.hub.client import OnlineHub

    try:
        data = OnlineHub(settings).read_small(resolved.ref, resolved.commit, f.path, limit=4 * 1024 * 1024)
        verify_bytes(f, data)
    except HfaError:
        return None
    return data


def card_facts(card: CardData) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for key in CARD_FIELDS:
        value = card.data.get(key)
        if value is not None:
            facts[key] = value
    return facts


def info(settings: Settings, ref: RepoRef, options: SelectOptions) -> InfoResult:
    from hfa.closure import requirements

    source = open_source(settings)
    resolved, selection, warnings, _ = plan(settings, ref, options, need_quant=False, source=source)
    try:
        deps = requirements(source, resolved)
    except HfaError as exc:  # shown, not fatal: `hfa pin` is where it stops
        deps = Dependencies(notes=[f"dependencies unknown: {exc.message}"])
    warnings += deps.notes
    quants = gguf_quants(resolved.files) if options.quant is None else []
    if len(quants) > 1 and not any(p for p in selection.selected if classify(p) == "gguf"):
        warnings.append(
            f"GGUF files come in {len(quants)} quantizations: {', '.join(quants)};"
            f" `hfa pull` needs one, e.g. `hfa pull {ref.display}:{'Q4_K_M' if 'Q4_K_M' in quants else quants[0]}`"
        )
    readme = resolved.files.get("README.md")
    card = parse_card(_read(settings, resolved, readme) if readme else None)
    if card.warning and card.warning.startswith("no model card") and resolved.card_data:
        card = CardData(data=dict(resolved.card_data))
    elif card.warning:
        warnings.append(card.warning)
    auto_map = False
    config = resolved.files.get("config.json")
    if config is not None and config.size < 4 * 1024 * 1024:
        raw = _read(settings, resolved, config)
        try:
            doc = jsonsafe.loads(raw) if raw else {}
        except ValueError:
            doc = {}
            warnings.append("config.json is not valid JSON")
        auto_map = isinstance(doc, dict) and bool(doc.get("auto_map"))
    files = _file_infos(resolved, selection, auto_map)
    return InfoResult(
        ref=ref,
        commit=resolved.commit,
        gated=resolved.gated,
        private=resolved.private,
        card=card_facts(card),
        files=files,
        warnings=warnings,
        remote_code=auto_map or any(f.kind == "code" for f in files),
        quants=gguf_quants(resolved.files),
        requires=deps.requires,
        provenance=deps.provenance,
    )


def _file_infos(resolved: Resolved, selection: Selection, auto_map: bool) -> list[FileInfo]:
    decisions = {d.path: d for d in selection.decisions}
    out: list[FileInfo] = []
    for path in sorted(resolved.files):
        f = resolved.files[path]
        kind = classify(path)
        flags: list[str] = []
        if kind == "pickle":
            flags.append("pickle")
        if f.is_lfs:
            flags.append("lfs")
        if kind == "code" or (auto_map and path == "config.json"):
            flags.append("remote-code")
        if resolved.gated:
            flags.append("gated")
        d = decisions.get(path)
        out.append(
            FileInfo(
                path=path,
                size=f.size,
                kind=kind,
                flags=flags,
                selected=bool(d and d.selected),
                reason=d.reason if d else "",
                hash=f"{f.hash_algo}:{f.lfs_sha256 or f.blob_id}",
            )
        )
    return out
