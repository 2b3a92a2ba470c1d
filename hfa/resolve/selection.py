"""Which files of a repository ``hfa pull`` fetches, and why.

:func:`select` takes the file list of one commit and the user's :class:`SelectOptions`
and returns a :class:`Selection`: one :class:`Decision` per file, each with the reason
it was taken or left. The module is pure and deterministic: no network (sharded-weight
indexes are read through the ``read_index`` callback), no printing, and the same input
always gives the same output.

The rules, in the order they apply:

1. ``--subfolder X`` narrows the repository to ``X/``; everything else is "outside".
2. ``--all`` takes every file; datasets and spaces take every file too.
3. Otherwise, for models: configs, tokenizer files, docs and small files of unknown
   kind are always taken; ``*.py`` only with ``--trust-remote-code``; weights in one
   framework only — safetensors when present, else pickle ("pt"), else GGUF (which
   needs ``--quant``), ONNX, TensorFlow, Flax, OpenVINO — or exactly the ones named
   with ``--framework``. A folder with pickle weights but no safetensors copy keeps its
   pickle weights (diffusers-style repositories). Sharded weights are narrowed to the
   shards their ``*.index.json`` references. Of a file and its variants (diffusers' and
   transformers' ``name.fp16.safetensors``, ``name.fp16-00001-of-00002.safetensors``,
   ``name.safetensors.index.fp16.json``), the plain file is taken, or with ``--variant V``
   the ``V`` copy where there is one (the plain file where there is not), as
   ``from_pretrained(variant=...)`` loads them.
4. ``--include GLOB`` adds files back; ``--exclude GLOB`` removes them and wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from fnmatch import fnmatchcase
from typing import Any

from hfa import jsonsafe
from hfa.cache.layout import check_relpath
from hfa.errors import CheckFailed, UsageError
from hfa.resolve.files import RemoteFile
from hfa.resolve.kinds import (
    DEFAULT_ORDER,
    FRAMEWORK_KIND,
    FRAMEWORKS,
    KIND_FRAMEWORK,
    KINDS,
    SHARD_RE,
    VARIANT_RE,
    WEIGHT_KINDS,
    basename,
    classify,
    folder_of,
    gguf_quants,
    index_kind,
    is_mmproj,
    quant_matches,
    weight_variant,
)

# What callers have always imported from here (the file kinds now live in hfa.resolve.kinds).
__all__ = [
    "FRAMEWORKS",
    "KINDS",
    "REPO_TYPES",
    "SMALL_FILE_LIMIT",
    "WEIGHT_KINDS",
    "Decision",
    "ReadIndex",
    "SelectOptions",
    "Selection",
    "classify",
    "gguf_quants",
    "index_kind",
    "select",
    "weight_variant",
]

SMALL_FILE_LIMIT = 1 << 20
"""Files of unknown kind below this many bytes are always taken (1 MiB)."""

REPO_TYPES = ("model", "dataset", "space")
ReadIndex = Callable[[str], bytes]
"""Returns the bytes of a repository file (an ``*.index.json``) given its path."""


@dataclass(frozen=True)
class SelectOptions:
    """What the user asked ``hfa pull`` for; stored in the lock so a re-pull selects the same."""

    frameworks: tuple[str, ...] = ()  # --framework, repeatable; empty = default rules
    quant: str | None = None  # --quant Q4_K_M
    include: tuple[str, ...] = ()  # --include GLOB (fnmatch on the repo path; also the basename)
    exclude: tuple[str, ...] = ()  # --exclude GLOB
    all: bool = False  # --all
    config_only: bool = False  # --config-only
    subfolder: str | None = None  # --subfolder
    trust_remote_code: bool = False  # --trust-remote-code
    variant: str | None = None  # --variant fp16

    def to_json(self) -> dict[str, Any]:
        """Only the fields that differ from the defaults, tuples as lists."""
        doc: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                doc[f.name] = list(value) if isinstance(value, tuple) else value
        return doc

    def to_args(self) -> list[str]:
        """The command-line options that give these options (for hints that must work when pasted)."""
        args: list[str] = []
        for fw in self.frameworks:
            args += ["--framework", fw]
        if self.quant is not None:
            args += ["--quant", self.quant]
        for glob in self.include:
            args += ["--include", glob]
        for glob in self.exclude:
            args += ["--exclude", glob]
        flags = (
            ("--all", self.all),
            ("--config-only", self.config_only),
            ("--trust-remote-code", self.trust_remote_code),
        )
        args += [flag for flag, on in flags if on]
        if self.subfolder is not None:
            args += ["--subfolder", self.subfolder]
        if self.variant is not None:
            args += ["--variant", self.variant]
        return args

    def for_repo(self, paths: Iterable[str]) -> SelectOptions:
        """These options as they apply to a repo holding ``paths``: ``--quant`` only where there are GGUF files."""
        if self.quant is not None and not any(classify(p) == "gguf" for p in paths):
            return replace(self, quant=None)
        return self

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SelectOptions:
        """The inverse of :meth:`to_json`; refuses unknown keys and wrong types (a bad lock file)."""
        hint = "fix the selection in the lock file, or pin the repo again with `hfa pin REPO [options]`"
        if not isinstance(doc, Mapping):
            raise UsageError(f"Selection options must be a table, not {type(doc).__name__}", hint)
        known = {f.name: f.default for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in doc.items():
            if key not in known:
                raise UsageError(f"Unknown selection option '{key}'", f"known: {', '.join(known)}; or upgrade hfa")
            default = known[key]
            if isinstance(default, tuple):
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise UsageError(f"Selection option '{key}' must be a list of strings, not {value!r}", hint)
                kwargs[key] = tuple(value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise UsageError(f"Selection option '{key}' must be true or false, not {value!r}", hint)
                kwargs[key] = value
            else:
                if value is not None and not isinstance(value, str):
                    raise UsageError(f"Selection option '{key}' must be a string, not {value!r}", hint)
                kwargs[key] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class Decision:
    """Whether one file is pulled, why (for ``hfa pull --dry-run`` and the lock), and its kind."""

    path: str
    selected: bool
    reason: str
    kind: str


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select`: one decision per file of the repository, sorted by path."""

    decisions: tuple[Decision, ...]
    missing: tuple[str, ...] = ()  # shards a read index references that the repository lacks

    @property
    def selected(self) -> list[str]:
        return [d.path for d in self.decisions if d.selected]

    @property
    def skipped(self) -> list[Decision]:
        return [d for d in self.decisions if not d.selected]

    def get(self, path: str) -> Decision | None:
        """The decision about ``path``, or None if it is not in the repository."""
        return next((d for d in self.decisions if d.path == path), None)


def select(
    files: Mapping[str, RemoteFile],
    options: SelectOptions,
    *,
    repo_type: str = "model",
    read_index: ReadIndex | None = None,
    need_quant: bool = True,
) -> Selection:
    """Decide, for every file of one commit, whether ``hfa pull`` fetches it and why.

    ``read_index(path)`` returns the bytes of a sharded-weight index; without it every
    shard is kept. Raises :class:`UsageError` for options that cannot be honoured (an
    unknown framework, GGUF files without ``--quant``, an empty ``--subfolder``) and
    :class:`CheckFailed` for a malformed index. With ``need_quant=False`` (``hfa info``), GGUF
    files in several quantizations and no ``--quant`` are all left out instead of an error.
    """
    requested = _requested_kinds(options.frameworks)
    if repo_type not in REPO_TYPES:
        raise UsageError(f"Unknown repo type '{repo_type}'", "use model, dataset or space")
    for flag, patterns in (("--include", options.include), ("--exclude", options.exclude)):
        if any(not p for p in patterns):
            raise UsageError(f"Empty {flag} pattern", f"give a glob such as {flag} '*.json'")
    if options.quant is not None and not options.quant.strip():
        raise UsageError("Empty --quant", "give a quantization such as --quant Q4_K_M")
    if options.variant is not None and not VARIANT_RE.fullmatch(options.variant):
        raise UsageError(f"Invalid --variant '{options.variant}'", "give a variant name such as --variant fp16")
    paths = sorted(files)
    prefix = _subfolder_prefix(options.subfolder)
    scope = [p for p in paths if p.startswith(prefix)]
    if prefix and not scope:
        top = sorted({p.split("/")[0] for p in paths if "/" in p})
        hint = f"folders in this repository: {', '.join(top)}" if top else "this repository has no folders"
        raise UsageError(f"No files under --subfolder {prefix.rstrip('/')}", hint)

    rules: dict[str, tuple[bool, str]]
    missing: tuple[str, ...] = ()
    if options.all:
        rules = {p: (True, "--all") for p in scope}
    elif repo_type != "model":
        rules = {p: (True, f"{repo_type} file") for p in scope}
    elif options.config_only:
        rules = {p: _config_only_rule(classify(p), options) for p in scope}
    else:
        model = _ModelRules(files, scope, options, requested, prefix, read_index, need_quant)
        rules = {p: model.decide(p) for p in scope}
        missing = model.missing

    decisions = []
    for path in paths:
        kind = classify(path)
        if path not in rules:
            decisions.append(Decision(path, False, f"outside --subfolder {prefix.rstrip('/')}", kind))
            continue
        chosen, reason = rules[path]
        if not chosen and (glob := _first_match(options.include, path, prefix)) is not None:
            chosen, reason = True, f"--include {glob}"
        if (glob := _first_match(options.exclude, path, prefix)) is not None:
            chosen, reason = False, f"--exclude {glob}"
        decisions.append(Decision(path, chosen, reason, kind))
    return Selection(tuple(decisions), missing)


# --- the model rules -------------------------------------------------------------------


class _ModelRules:
    """The default rules for one model repository (within ``--subfolder``), ready to decide each file."""

    def __init__(
        self,
        files: Mapping[str, RemoteFile],
        scope: list[str],
        options: SelectOptions,
        requested: tuple[str, ...],
        prefix: str,
        read_index: ReadIndex | None,
        need_quant: bool = True,
    ) -> None:
        self.need_quant = need_quant
        self.files = files
        self.options = options
        self.prefix = prefix
        self.kinds = {p: classify(p) for p in scope}
        self.where = f"in {prefix}" if prefix else "in this repository"
        present = {k for k in self.kinds.values() if k in WEIGHT_KINDS}
        self._choose_frameworks(requested, present)
        self._choose_variants(scope)
        self._read_indexes(scope, read_index)
        self._choose_gguf(scope)

    # Which weights: self.chosen everywhere, except pickle-only folders when safetensors is the default.
    def _choose_frameworks(self, requested: tuple[str, ...], present: set[str]) -> None:
        quant = self.quant = self.options.quant.strip() if self.options.quant is not None else None
        self.fallback_folders: frozenset[str] = frozenset()
        if requested:
            if not present.intersection(requested):
                names = " / ".join(KIND_FRAMEWORK[k] for k in requested)
                raise UsageError(f"No {names} weights {self.where}", _available_hint(present))
            if quant is not None and "gguf" not in requested:
                raise UsageError("--quant only applies to GGUF weights", "add --framework gguf, or drop --quant")
            self.source, self.chosen = "explicit", frozenset(requested)
            self.flags = " ".join(f"--framework {KIND_FRAMEWORK[k]}" for k in requested)
        elif quant is not None:
            if "gguf" not in present:
                raise UsageError(f"--quant {quant} needs GGUF files, and there are none {self.where}", "drop --quant")
            self.source, self.chosen, self.flags = "quant", frozenset({"gguf"}), f"--quant {quant}"
        else:
            default = next((k for k in DEFAULT_ORDER if k in present), None)
            self.source, self.chosen, self.flags = "default", frozenset({default} if default else ()), ""
            if default == "safetensors":
                by_folder: dict[str, set[str]] = {}
                for path, kind in self.kinds.items():
                    by_folder.setdefault(folder_of(path), set()).add(kind)
                self.fallback_folders = frozenset(
                    f for f, kinds in by_folder.items() if "pickle" in kinds and "safetensors" not in kinds
                )

    def chosen_in(self, folder: str) -> frozenset[str]:
        return frozenset({"pickle"}) if folder in self.fallback_folders else self.chosen

    # Variants: of name.safetensors and name.fp16.safetensors, the plain one (or --variant's).
    def _choose_variants(self, scope: list[str]) -> None:
        self.variant_of: dict[str, tuple[tuple[str, str, str], str | None]] = {}  # path -> (group, variant)
        groups: dict[tuple[str, str, str], set[str | None]] = {}
        for path in scope:
            kind = self.kinds[path]
            if kind == "index":
                kind = index_kind(path) or ""
            if kind not in WEIGHT_KINDS or kind == "gguf":
                continue
            stem, variant = weight_variant(path)
            group = (folder_of(path), kind, stem)
            self.variant_of[path] = (group, variant)
            groups.setdefault(group, set()).add(variant)
        wanted = self.options.variant
        present = {v for variants in groups.values() for v in variants if v is not None}
        if wanted is not None and wanted not in present:
            hint = (
                f"variants {self.where}: {', '.join(sorted(present))}"
                if present
                else f"there are no variants {self.where}"
            )
            raise UsageError(f"No weights have the variant '{wanted}'", hint + "; or drop --variant")
        # group -> the variant taken (None: the plain file); groups without a plain file and
        # without the wanted variant are left alone: every copy is taken, as before variants.
        self.variant_choice: dict[tuple[str, str, str], str | None] = {}
        for group, variants in groups.items():
            if wanted is not None and wanted in variants:
                self.variant_choice[group] = wanted
            elif None in variants and len(variants) > 1:
                self.variant_choice[group] = None

    def _variant_skip(self, path: str) -> str | None:
        """Why ``path`` is skipped as the wrong variant of its file, or None if it is not."""
        entry = self.variant_of.get(path)
        if entry is None or entry[0] not in self.variant_choice:
            return None
        group, variant = entry
        choice = self.variant_choice[group]
        if variant == choice:
            return None
        if choice is None:
            return f"skipped: the {variant} variant (use --variant {variant})"
        if variant is None:
            return f"skipped: replaced by its {choice} variant (--variant {choice})"
        return f"skipped: the {variant} variant, not --variant {choice}"

    # Sharded weights: the shards each chosen index references, and what to say about the rest.
    def _read_indexes(self, scope: list[str], read_index: ReadIndex | None) -> None:
        self.referenced: dict[str, tuple[str, str]] = {}  # shard path -> (index path, kind)
        self.indexed: dict[tuple[str, str], str] = {}  # (folder, kind) -> first index read there
        self.unread: dict[tuple[str, str], str] = {}  # (folder, kind) -> why every shard is kept
        missing: set[str] = set()
        for path in scope:
            kind = index_kind(path) if self.kinds[path] == "index" else None
            folder = folder_of(path)
            if kind is None or kind not in self.chosen_in(folder) or self._variant_skip(path):
                continue
            if read_index is None:
                self.unread.setdefault((folder, kind), "index not read")
                continue
            if _first_match(self.options.exclude, path, self.prefix) is not None:
                self.unread.setdefault((folder, kind), "index excluded")
                continue
            self.indexed.setdefault((folder, kind), path)
            for shard in _parse_index(path, read_index(path)):
                self.referenced.setdefault(shard, (path, kind))
                if shard not in self.files:
                    missing.add(shard)
        self.missing = tuple(sorted(missing))

    # GGUF: one quantization, named by --quant (or --include), never all of them by accident.
    def _choose_gguf(self, scope: list[str]) -> None:
        self.gguf: dict[str, tuple[bool, str]] = {}
        if "gguf" not in self.chosen:
            return
        gguf = [p for p in scope if self.kinds[p] == "gguf"]
        models = [p for p in gguf if not is_mmproj(p)]
        quants = gguf_quants(models)
        quant = self.quant
        if quant is not None:
            matched = [p for p in models if quant_matches(quant, p)]
            if not matched:
                raise UsageError(f"No GGUF file matches --quant {quant}", _quants_hint(quants))
            for p in gguf:
                if p in matched:
                    self.gguf[p] = (True, f"gguf weights (--quant {quant})")
                elif is_mmproj(p):
                    self.gguf[p] = (True, "gguf multimodal projector (used with any quantization)")
                else:
                    self.gguf[p] = (False, f"skipped: not the {quant} quantization")
            return
        if not quants:
            for p in gguf:
                self.gguf[p] = (True, "gguf weights (no quantization in the file names)")
            return
        wanted = [p for p in gguf if _first_match(self.options.exclude, p, self.prefix) is None]
        chosen_by_include = any(_first_match(self.options.include, p, self.prefix) is not None for p in wanted)
        if wanted and not chosen_by_include and self.need_quant:
            suggestion = "Q4_K_M" if "Q4_K_M" in quants else quants[0]
            raise UsageError(
                f"GGUF files come in {len(quants)} quantization{'s' if len(quants) > 1 else ''} here: "
                f"{', '.join(quants)}",
                f"pick one with --quant {suggestion} rather than pulling gigabytes of every quantization",
            )
        for p in gguf:
            self.gguf[p] = (False, "skipped: gguf quantization not chosen (use --quant)")

    def decide(self, path: str) -> tuple[bool, str]:
        kind = self.kinds[path]
        if kind in WEIGHT_KINDS:
            return self._weight(path, kind)
        if kind == "index":
            return self._index(path)
        if kind in ("config", "tokenizer", "docs"):
            return True, kind
        if kind == "code":
            return _code_rule(self.options)
        size = self.files[path].size
        if size < SMALL_FILE_LIMIT:
            return True, "small file of unknown kind"
        return False, "skipped: large file of unknown kind (use --include)"

    def _weight(self, path: str, kind: str) -> tuple[bool, str]:
        folder = folder_of(path)
        ref = self.referenced.get(path)
        if ref is not None and ref[1] == kind:
            return True, f"{kind} shard listed in {basename(ref[0])}"
        chosen = self.chosen_in(folder)
        if kind not in chosen:
            return False, self._not_chosen(kind, chosen)
        if kind == "gguf":
            return self.gguf[path]
        if (why_not := self._variant_skip(path)) is not None:
            return False, why_not
        index = self.indexed.get((folder, kind))
        if index is not None:
            if SHARD_RE.search(basename(path)):
                return False, f"skipped: shard not referenced by {basename(index)}"
            return False, f"skipped: not referenced by {basename(index)} (use --include)"
        why = self.unread.get((folder, kind))
        if why is not None:
            return True, f"{kind} weights ({why}: keeping every shard)"
        if self.source != "default":
            return True, f"{kind} weights ({self.flags})"
        if folder in self.fallback_folders:
            return True, "pickle weights: no safetensors copy in this folder"
        if kind == "safetensors":
            return True, "safetensors weights (preferred)"
        if kind == "pickle":
            return True, f"pickle weights (no safetensors weights {self.where})"
        return True, f"{kind} weights (no safetensors or pickle weights {self.where})"

    def _not_chosen(self, kind: str, chosen: frozenset[str]) -> str:
        framework = KIND_FRAMEWORK.get(kind)
        how = "--include" if framework is None else "--quant" if kind == "gguf" else f"--framework {framework}"
        if self.source != "default":
            return f"skipped: {kind} weights not requested ({self.flags})"
        if not chosen:
            return f"skipped: {kind} weights are not pulled by default (use {how})"
        return f"skipped: {_only(chosen)} weights are preferred (use {how})"

    def _index(self, path: str) -> tuple[bool, str]:
        kind = index_kind(path)
        if kind is None:  # an index of something else: judge it like any file of unknown kind
            if self.files[path].size < SMALL_FILE_LIMIT:
                return True, "small file of unknown kind"
            return False, "skipped: large file of unknown kind (use --include)"
        if kind in self.chosen_in(folder_of(path)):
            if (why_not := self._variant_skip(path)) is not None:
                return False, why_not
            return True, f"index of {kind} weights"
        return False, f"skipped: index of {kind} weights, which are not selected"


def _config_only_rule(kind: str, options: SelectOptions) -> tuple[bool, str]:
    if kind in ("config", "tokenizer", "docs"):
        return True, kind
    if kind == "code":
        return _code_rule(options)
    return False, "skipped: --config-only"


def _code_rule(options: SelectOptions) -> tuple[bool, str]:
    if options.trust_remote_code:
        return True, "remote code (--trust-remote-code)"
    return False, "skipped: remote code (pass --trust-remote-code)"


# --- helpers ---------------------------------------------------------------------------


def _requested_kinds(frameworks: Iterable[str]) -> tuple[str, ...]:
    """``--framework`` values as weight kinds, validated, deduplicated, in the order given."""
    kinds: list[str] = []
    for raw in frameworks:
        name = raw.strip().lower()
        if name not in FRAMEWORK_KIND:
            raise UsageError(f"Unknown framework '{raw}'", f"use one of: {', '.join(FRAMEWORKS)}")
        if FRAMEWORK_KIND[name] not in kinds:
            kinds.append(FRAMEWORK_KIND[name])
    return tuple(kinds)


def _subfolder_prefix(subfolder: str | None) -> str:
    """``"unet"`` / ``"unet/"`` → ``"unet/"``; None → ``""``; refuses paths that escape."""
    if subfolder is None:
        return ""
    cleaned = subfolder.strip().strip("/")
    try:
        check_relpath(cleaned)
    except UsageError:
        raise UsageError(
            f"Invalid --subfolder '{subfolder}'", "give a folder inside the repository, such as unet"
        ) from None
    return cleaned + "/"


def _first_match(patterns: Iterable[str], path: str, prefix: str) -> str | None:
    """The first glob matching the repo path, its basename or (under --subfolder) its relative path.

    A pattern ending in ``/`` names a folder: ``onnx/`` is ``onnx/*``.
    """
    name = basename(path)
    relative = path[len(prefix) :] if prefix and path.startswith(prefix) else path
    for pattern in patterns:
        glob = pattern + "*" if pattern.endswith("/") else pattern
        if fnmatchcase(path, glob) or fnmatchcase(name, glob) or fnmatchcase(relative, glob):
            return pattern
    return None


def _parse_index(path: str, data: bytes) -> list[str]:
    """The repository paths of the shards a ``*.index.json`` references, sorted."""
    hint = "the repository is broken: report it upstream, or --exclude the index to keep every shard"
    try:
        doc = jsonsafe.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckFailed(f"'{path}' is not valid JSON ({exc})", hint) from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict):
        raise CheckFailed(f"'{path}' has no 'weight_map' object", hint)
    folder = folder_of(path)
    shards: set[str] = set()
    for shard in weight_map.values():
        if not isinstance(shard, str):
            raise CheckFailed(f"'{path}' maps a tensor to {shard!r}, not a file name", hint)
        try:
            check_relpath(shard)
        except UsageError:
            raise CheckFailed(f"'{path}' references the unsafe shard path '{shard}'", hint) from None
        shards.add(f"{folder}/{shard}" if folder else shard)
    return sorted(shards)


def _quants_hint(quants: list[str]) -> str:
    if not quants:
        return "the GGUF file names carry no quantization; use --include to pick files"
    return f"available: {', '.join(quants)}"


def _available_hint(present: set[str]) -> str:
    frameworks = sorted(KIND_FRAMEWORK[k] for k in present if k in KIND_FRAMEWORK)
    if not frameworks:
        return "there are no weights of a known framework; drop --framework or use --include"
    return f"available: {', '.join(frameworks)}; pick one with --framework, or drop --framework"


def _only(kinds: frozenset[str]) -> str:
    return " / ".join(sorted(kinds))
