"""What a repository needs from other repositories, from its files and its card.

A repository *requires* another when it cannot be loaded without it; that one is part of
its closure, pinned and pulled with it:

* a PEFT adapter's ``adapter_config.json``: ``base_model_name_or_path`` (at ``revision``, when given);
* the card's ``base_model`` when ``base_model_relation`` is ``adapter`` (or, without a relation,
  when the repo holds ``adapter_config.json``);
* a sentence-transformers ``modules.json`` module whose ``path`` is a Hub repo id (``org/name``
  with no file of this repo under it) or whose ``type`` names code in another repo
  (``org/name--module.Class``);
* a Modular Diffusers ``modular_model_index.json`` component whose loading spec names another
  repo (``repo`` or ``pretrained_model_name_or_path``, and its ``revision``).

The card's ``base_model`` with any other relation (``finetune``, ``merge``, ``quantized``) is
*provenance*: shown by ``hfa info``, never fetched. A local path (``./base``, ``/abs``, ``~/x``,
``C:\\x``) is not a repo id: it is ignored, with a note. The files are read bounded
(:data:`MAX_CONFIG_BYTES`); a file that is too big or not valid JSON is a
:class:`DependencyError` naming it (``hfa info`` shows it as a warning).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hfa.errors import CheckFailed, UsageError
from hfa.resolve.files import RemoteFile

MAX_CONFIG_BYTES = 1024 * 1024  # adapter_config.json and its kin are a few kB
MAX_REQUIREMENTS = 64  # per repository: more is not a model's configuration

ADAPTER_CONFIG = "adapter_config.json"
ST_MODULES = "modules.json"
MODULAR_INDEX = "modular_model_index.json"


class DependencyError(CheckFailed):
    """A repository's dependencies cannot be known or resolved (exit 1): unreadable config, cycle, conflict."""


@dataclass(frozen=True)
class Requirement:
    """One repository that another needs (``fetch``) or names as where it came from (provenance)."""

    repo_id: str
    revision: str | None
    reason: str  # where it is named: "adapter_config.json base_model_name_or_path"
    fetch: bool = True
    relation: str | None = None  # the card's base_model_relation (given or inferred)

    @property
    def display(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"repo": self.repo_id, "revision": self.revision, "reason": self.reason}
        if self.relation:
            doc["relation"] = self.relation
        return doc


@dataclass
class Dependencies:
    requires: list[Requirement] = field(default_factory=list)
    provenance: list[Requirement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, req: Requirement) -> None:
        bucket = self.requires if req.fetch else self.provenance
        if any(r.repo_id == req.repo_id for r in bucket):  # named twice: the first (most specific) source wins
            return
        if len(bucket) >= MAX_REQUIREMENTS:
            raise DependencyError(
                f"more than {MAX_REQUIREMENTS} repositories are named as dependencies",
                "take the repo alone with --no-deps (`hfa pin REPO --no-deps`, `hfa pull REPO --no-deps`)",
            )
        bucket.append(req)


def is_local_path(value: str) -> bool:
    """``./base``, ``../x``, ``/abs``, ``~/x``, ``C:\\x``, ``x\\y``: a folder on the machine that wrote the config."""
    return (
        value.startswith((".", "/", "~"))
        or "\\" in value
        or (len(value) > 1 and value[1] == ":")
        or value.count("/") > 1
    )


def _repo_id(value: Any) -> str | None:
    """``value`` as a Hub model repo id, or None."""
    from hfa.cache.layout import validate_repo_id

    if not isinstance(value, str) or not value or is_local_path(value):
        return None
    try:
        return validate_repo_id(value)
    except UsageError:
        return None


MAX_REVISION = 255
_NOT_IN_REF = frozenset(" ~^:?*[\\")  # git check-ref-format refuses these (and controls, "..", "@{")


def _revision(value: Any, where: str, repo_id: str, target: str) -> str | None:
    """The revision a config names beside a repo id (None when it names none).

    One that cannot be a branch, tag or commit (not text, control or bidi characters, ``..``,
    a leading ``/``…) is a :class:`DependencyError`: pinning the default branch instead would
    give the adapter another base than the one it was trained on, and printing it raw would
    let a file write to the terminal.
    """
    if value is None or value == "":
        return None
    if (
        not isinstance(value, str)
        or len(value) > MAX_REVISION
        or not value.isprintable()
        or any(c in _NOT_IN_REF for c in value)
        or value.startswith(("/", "-"))
        or value.endswith(("/", ".", ".lock"))
        or ".." in value
        or "@{" in value
        or "//" in value
    ):
        shown = repr(value)[:80] if isinstance(value, str) else f"a {type(value).__name__}"
        raise DependencyError(
            f"{repo_id}'s {where} names {target} at the revision {shown}, which is not a branch, tag or commit",
            "fix it upstream, or take the repo alone with --no-deps and pin its base yourself",
        )
    return value


def read_json(read: Callable[[str], bytes], f: RemoteFile, repo: str) -> Any:
    """The bounded, depth-limited JSON of ``f``; anything else is a :class:`DependencyError` naming it."""
    from hfa import jsonsafe

    hint = f"fix {f.path} upstream, or take the repo alone with --no-deps"
    if f.size > MAX_CONFIG_BYTES:
        raise DependencyError(f"{f.path} of {repo} is {f.size} bytes, more than {MAX_CONFIG_BYTES}", hint)
    data = read(f.path)
    if len(data) > MAX_CONFIG_BYTES:
        raise DependencyError(f"{f.path} of {repo} is more than {MAX_CONFIG_BYTES} bytes", hint)
    try:
        return jsonsafe.loads(data)
    except ValueError as exc:
        raise DependencyError(f"{f.path} of {repo} is not valid JSON ({type(exc).__name__})", hint) from None


def find(
    repo_id: str,
    files: Mapping[str, RemoteFile],
    card: Mapping[str, Any],
    read: Callable[[str], bytes],
) -> Dependencies:
    """What ``repo_id`` (with these ``files`` and ``card`` front matter) needs and names; ``read`` gives a file's bytes."""
    deps = Dependencies()
    if ADAPTER_CONFIG in files:
        _adapter(deps, repo_id, read_json(read, files[ADAPTER_CONFIG], repo_id))
    _card(deps, repo_id, card, files)
    if ST_MODULES in files:
        _st_modules(deps, repo_id, read_json(read, files[ST_MODULES], repo_id), files)
    if MODULAR_INDEX in files:
        _modular(deps, repo_id, read_json(read, files[MODULAR_INDEX], repo_id))
    return deps


def _named(deps: Dependencies, repo_id: str, value: Any, where: str, revision: Any = None) -> None:
    """A config value that should name a repo: a requirement, a note (local path) or nothing (self, empty)."""
    if not isinstance(value, str) or not value.strip():
        return
    target = _repo_id(value)
    if target is None:
        shown = value if value.isprintable() and len(value) < 200 else repr(value[:200])
        what = "a local path" if is_local_path(value) else "not a Hub repo id"
        deps.notes.append(f"{where} is {what} ({shown}): not fetched")
        return
    if target == repo_id:
        return
    deps.add(Requirement(target, _revision(revision, where, repo_id, target), where))


def _adapter(deps: Dependencies, repo_id: str, doc: Any) -> None:
    if not isinstance(doc, dict):
        raise DependencyError(
            f"{ADAPTER_CONFIG} of {repo_id} is not a JSON object", "take the repo alone with --no-deps"
        )
    _named(deps, repo_id, doc.get("base_model_name_or_path"), f"{ADAPTER_CONFIG} base_model_name_or_path",
           doc.get("revision"))  # fmt: skip


def _card(deps: Dependencies, repo_id: str, card: Mapping[str, Any], files: Mapping[str, RemoteFile]) -> None:
    raw = card.get("base_model")
    bases = [raw] if isinstance(raw, str) else [b for b in raw if isinstance(b, str)] if isinstance(raw, list) else []
    if not bases:
        return
    given = card.get("base_model_relation")
    relation = given.strip().lower() if isinstance(given, str) and given.strip() else None
    if relation is None:  # as the Hub infers it
        if ADAPTER_CONFIG in files:
            relation = "adapter"
        elif any(p.lower().endswith(".gguf") for p in files):
            relation = "quantized"
        else:
            relation = "merge" if len(bases) > 1 else "finetune"
    for base in bases[:MAX_REQUIREMENTS]:
        target = _repo_id(base)
        if target is None or target == repo_id:
            deps.notes.append(f"the card's base_model {base[:200]!r} is not a Hub repo id: ignored")
            continue
        if relation == "adapter":
            deps.add(Requirement(target, None, "card base_model (relation: adapter)", relation="adapter"))
        else:
            deps.add(Requirement(target, None, f"card base_model (relation: {relation})", False, relation))


def _st_modules(deps: Dependencies, repo_id: str, doc: Any, files: Mapping[str, RemoteFile]) -> None:
    if not isinstance(doc, list):
        raise DependencyError(f"{ST_MODULES} of {repo_id} is not a JSON list", "take the repo alone with --no-deps")
    for module in doc[: MAX_REQUIREMENTS * 4]:
        if not isinstance(module, dict):
            continue
        path = module.get("path")
        if isinstance(path, str) and path.count("/") == 1 and not any(p.startswith(path + "/") for p in files):
            _named(deps, repo_id, path, f"{ST_MODULES} module path")
        kind = module.get("type")
        if isinstance(kind, str) and "--" in kind:  # code in another repo: org/name--module.Class
            _named(deps, repo_id, kind.split("--", 1)[0], f"{ST_MODULES} module type")


def _modular(deps: Dependencies, repo_id: str, doc: Any) -> None:
    if not isinstance(doc, dict):
        raise DependencyError(
            f"{MODULAR_INDEX} of {repo_id} is not a JSON object", "take the repo alone with --no-deps"
        )
    for name, spec in sorted(doc.items())[: MAX_REQUIREMENTS * 4]:
        if name.startswith("_") or not isinstance(spec, list) or len(spec) < 3 or not isinstance(spec[2], dict):
            continue
        load = spec[2]
        target = load.get("pretrained_model_name_or_path") or load.get("repo")
        _named(deps, repo_id, target, f"{MODULAR_INDEX} component {name[:100]}", load.get("revision"))
