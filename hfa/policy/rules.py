"""The ``[policy]`` table of ``hfa.toml`` (or ``[tool.hfa.policy]`` of ``pyproject.toml``), read strictly.

What a project accepts from the Hub, as cargo-deny says what a Rust project accepts from
crates.io: licences (``licenses.allow`` / ``licenses.deny``, the Hub's licence ids), pickle
files, remote code, gated repos, a size limit per repo, the orgs/authors repos may come from,
and per-repo exceptions, each with a written reason. docs/policy.md is the reference.

Every problem in the table (an unknown key, a wrong type, an exception without a reason) is a
:class:`~hfa.errors.UsageError` (exit 2) naming the file, the key and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.errors import UsageError

__all__ = [
    "PICKLE_MODES",
    "RULES",
    "Policy",
    "PolicyException",
    "load_policy",
    "parse_policy",
    "parse_size",
]

#: The rules an exception may allow, by the names docs/policy.md uses.
RULES = ("license", "pickle", "remote_code", "gated", "max_size", "sources")
PICKLE_MODES = ("deny", "scan", "allow")
ALLOW_DENY = ("deny", "allow")
_TOP_KEYS = ("licenses", "pickle", "remote_code", "gated", "max_size", "sources", "exceptions")
_LICENSE_KEYS = ("allow", "deny")
_EXCEPTION_KEYS = ("repo", "allow", "reason")
# The Hub's licence ids: lowercase letters, digits, '.', '-', '+' and '_' (apache-2.0, cc-by-nc-4.0, llama3.1).
_LICENSE_RE = re.compile(r"[a-z0-9][a-z0-9._+-]{0,99}")
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


@dataclass(frozen=True)
class PolicyException:
    """``[[policy.exceptions]]``: ``repo`` may break the rules in ``allow``, for ``reason``."""

    repo_id: str
    repo_type: str
    allow: tuple[str, ...]
    reason: str

    @property
    def display(self) -> str:
        return self.repo_id if self.repo_type == "model" else f"{self.repo_type}s/{self.repo_id}"


@dataclass(frozen=True)
class Policy:
    """A parsed policy; the defaults allow everything (no table: no constraint)."""

    license_allow: tuple[str, ...] | None = None  # None: any licence not denied
    license_deny: tuple[str, ...] = ()
    pickle: str = "allow"
    remote_code: str = "allow"
    gated: str = "allow"
    max_size: int | None = None  # bytes, per repo (the files the lock selects)
    sources: tuple[str, ...] | None = None  # allowed orgs/authors, lowercase; None: any
    exceptions: tuple[PolicyException, ...] = ()
    #: where it was read, and the key prefix messages use ("policy" or "tool.hfa.policy")
    origin: str = "hfa.toml"
    prefix: str = "policy"
    declared: bool = field(default=False, compare=False)  # a [policy] table exists

    def key(self, name: str) -> str:
        """``name`` as the file spells it (``policy.licenses.deny``), for messages."""
        return f"{self.prefix}.{name}"

    def excepted(self, repo_id: str, repo_type: str, rule: str) -> PolicyException | None:
        """The exception that lets ``repo`` break ``rule``, if any."""
        for exc in self.exceptions:
            if rule in exc.allow and exc.repo_type == repo_type and exc.repo_id.lower() == repo_id.lower():
                return exc
        return None


def parse_size(value: Any) -> int:
    """Bytes from ``10GB``, ``500MiB``, ``1.5 GB`` (decimal and binary units) or an integer.

    Raises ValueError with the reason when ``value`` is none of these.
    """
    if isinstance(value, bool):
        raise ValueError("true/false is not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    if isinstance(value, float):
        raise ValueError(f"{value} is not a whole number of bytes")
    if not isinstance(value, str):
        raise ValueError(f"{_kind(value)} is not a size")
    match = _SIZE_RE.fullmatch(value)
    if match is None or match.group(2).lower() not in _UNITS or len(value) > 40:
        raise ValueError(f"{value!r} is not a size: use bytes or a number with B, KB, MB, GB, TB, KiB, MiB, GiB, TiB")
    number, unit = match.group(1), match.group(2).lower()
    whole, _, frac = number.partition(".")
    scale = _UNITS[unit]
    # exact arithmetic: "1.5GB" is 1500000000, never a float's neighbour
    return (int(whole) * scale) + (int(frac) * scale // 10 ** len(frac) if frac else 0)


def _kind(value: Any) -> str:
    names = {str: "text", bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


class _Reader:
    """Checks one table, naming ``origin`` and the key in every error."""

    def __init__(self, origin: str, prefix: str) -> None:
        self.origin = origin
        self.prefix = prefix

    def fail(self, key: str, problem: str, fix: str) -> UsageError:
        return UsageError(f"{self.origin}: {self.prefix}.{key} {problem}", fix)

    def keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            import difflib

            key = f"{where}.{unknown[0]}" if where else unknown[0]
            close = difflib.get_close_matches(unknown[0], allowed, n=1)
            fix = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(key, "is not a policy key", f"{fix}the keys here are {', '.join(allowed)} (docs/policy.md)")

    def choice(self, table: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
        value = table.get(key, "allow")
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, str) else _kind(value)
            quoted = [f'"{c}"' for c in choices]
            raise self.fail(
                key, f"must be one of {', '.join(quoted)}, not {shown}", f"write {key} = {' or '.join(quoted)}"
            )
        return value

    def strings(self, value: Any, key: str, pattern: re.Pattern[str], what: str, example: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(
                key, f"must be a list of {what}, not {_kind(value)}", f"write {key.rsplit('.', 1)[-1]} = [{example}]"
            )
        out: list[str] = []
        for item in value:
            if not isinstance(item, str) or not pattern.fullmatch(item.strip().lower()):
                shown = repr(item)[:60] if isinstance(item, str) else _kind(item)
                raise self.fail(
                    key,
                    f"holds {shown}, which is not one of the {what}",
                    f"write {key.rsplit('.', 1)[-1]} = [{example}]",
                )
            out.append(item.strip().lower())
        return tuple(dict.fromkeys(out))


def parse_policy(table: dict[str, Any], origin: str = "hfa.toml", prefix: str = "policy") -> Policy:
    """A :class:`Policy` from the ``[policy]`` table ``table`` read from ``origin``; strict."""
    r = _Reader(origin, prefix)
    if not isinstance(table, dict):
        raise r.fail("", "must be a table", "write [policy] followed by key = value lines")
    r.keys(table, _TOP_KEYS, "")
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    licenses = table.get("licenses", {})
    if not isinstance(licenses, dict):
        raise r.fail(
            "licenses",
            f"must be a table, not {_kind(licenses)}",
            'write [policy.licenses] with deny = ["cc-by-nc-4.0"]',
        )
    r.keys(licenses, _LICENSE_KEYS, "licenses")
    if "allow" in licenses:
        allow = r.strings(licenses["allow"], "licenses.allow", _LICENSE_RE, "Hub licence ids", '"apache-2.0", "mit"')
    if "deny" in licenses:
        deny = r.strings(licenses["deny"], "licenses.deny", _LICENSE_RE, "Hub licence ids", '"cc-by-nc-4.0"')
    both = sorted(set(allow or ()) & set(deny))
    if both:
        raise r.fail("licenses", f"both allows and denies {both[0]!r}", "keep it in one of the two lists")
    max_size = None
    if "max_size" in table:
        try:
            max_size = parse_size(table["max_size"])
        except ValueError as exc:
            raise r.fail("max_size", f"is invalid: {exc}", 'write max_size = "10GB" (or a number of bytes)') from None
    sources = None
    if "sources" in table:
        sources = r.strings(table["sources"], "sources", _NAMESPACE_RE, "orgs", '"my-org", "google"')
    return Policy(
        license_allow=allow,
        license_deny=deny,
        pickle=r.choice(table, "pickle", PICKLE_MODES),
        remote_code=r.choice(table, "remote_code", ALLOW_DENY),
        gated=r.choice(table, "gated", ALLOW_DENY),
        max_size=max_size,
        sources=sources,
        exceptions=_exceptions(r, table.get("exceptions", [])),
        origin=origin,
        prefix=prefix,
        declared=True,
    )


def _exceptions(r: _Reader, raw: Any) -> tuple[PolicyException, ...]:
    example = 'write [[policy.exceptions]] with repo = "org/name", allow = ["license"], reason = "why"'
    if not isinstance(raw, list):
        raise r.fail("exceptions", f"must be an array of tables, not {_kind(raw)}", example)
    out: list[PolicyException] = []
    for i, item in enumerate(raw):
        key = f"exceptions[{i}]"
        if not isinstance(item, dict):
            raise r.fail(key, f"must be a table, not {_kind(item)}", example)
        r.keys(item, _EXCEPTION_KEYS, key)
        repo = item.get("repo")
        if not isinstance(repo, str):
            raise r.fail(f"{key}.repo", "is missing" if repo is None else f"must be text, not {_kind(repo)}", example)
        repo_id, repo_type = _repo(r, f"{key}.repo", repo)
        rules = item.get("allow")
        if not isinstance(rules, list) or not rules or not all(isinstance(x, str) for x in rules):
            raise r.fail(
                f"{key}.allow",
                "must be a non-empty list of rule names",
                f'write allow = ["{RULES[0]}"] (rules: {", ".join(RULES)})',
            )
        bad = [x for x in rules if x not in RULES]
        if bad:
            raise r.fail(
                f"{key}.allow", f"names {bad[0]!r}, which is not a rule", f"use rules among {', '.join(RULES)}"
            )
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            problem = (
                "is missing: every exception needs a written reason" if reason is None else "must be non-empty text"
            )
            raise r.fail(f"{key}.reason", problem, 'add reason = "why this repo may break the rule"')
        out.append(PolicyException(repo_id, repo_type, tuple(dict.fromkeys(rules)), reason.strip()))
    return tuple(out)


def _repo(r: _Reader, key: str, text: str) -> tuple[str, str]:
    from hfa.resolve.refs import RepoRef

    try:
        ref = RepoRef.parse(text)
    except UsageError as exc:
        raise r.fail(
            key, f"is not a repo id: {exc.message}", 'write repo = "org/name" (or "datasets/org/name")'
        ) from None
    if ref.revision is not None:
        raise r.fail(
            key, f"names a revision ({text!r}); exceptions are per repo", f'write repo = "{ref.display.split("@")[0]}"'
        )
    return ref.repo_id, ref.repo_type


def load_policy(lock_path: Path | None = None, directory: Path | None = None) -> Policy:
    """The policy beside ``lock_path`` (or in ``directory``, default the working directory).

    An absent table is the permissive default (``declared`` False).
    """
    from hfa.project import load_project, project_for_lock

    project = project_for_lock(lock_path) if lock_path is not None else load_project(directory)
    if project.path is None:
        return Policy()
    pyproject = project.origin.startswith("pyproject")
    origin = str(project.path)
    prefix = "tool.hfa.policy" if pyproject else "policy"
    if "policy" not in project.data:
        return Policy(origin=origin, prefix=prefix)
    return parse_policy(project.table("policy"), origin, prefix)
