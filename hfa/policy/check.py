"""Judge repos against a :class:`~hfa.policy.rules.Policy`: a list of :class:`Violation`, each naming
the rule and the value, and the exception (with its reason) that clears it, if any.

``strict`` (``hfa policy check``, ``hfa verify --lock``) treats a fact that is not known as a
violation (fail closed) and scans cached pickles for ``pickle = "scan"``; not strict (``hfa pin``
and ``hfa pull`` before fetching) refuses only what is known to break a rule: a pull scans what
it fetches anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfa.errors import CheckFailed
from hfa.lock.lockfile import LockedRepo, TaskDefault
from hfa.policy.facts import RepoFacts, entry_facts, task_facts
from hfa.policy.rules import Policy, PolicyException

__all__ = ["PolicyViolation", "Violation", "check_entries", "enforce", "evaluate", "findings"]

_UNKNOWN_HINT = "not recorded in the lock (written by an older hfa): record it with `{fix}`"


def _upgrade_command(facts: RepoFacts) -> str:
    from hfa.errors import command_text

    if facts.task:
        return command_text("hfa", "pin", "--upgrade", "--task", facts.task)
    return command_text("hfa", "pin", "--upgrade", facts.label)


@dataclass(frozen=True)
class Violation:
    """``repo`` breaks ``rule`` with ``value``; ``exception`` set when an exception allows it."""

    rule: str
    repo: str  # as commands name it: org/name, datasets/org/name
    commit: str
    value: str
    message: str
    path: str = ""  # the file it is about (a pickle), else ""
    exception: PolicyException | None = None
    task: str = ""  # the task whose default (``[[task]]``) this is about, else "" (a ``[[repo]]``)

    @property
    def cleared(self) -> bool:
        return self.exception is not None

    @property
    def where(self) -> str:
        """``repo@commit12[/path]``: how findings on a lock entry are named (and located, in SARIF)."""
        return f"{self.repo}@{self.commit[:12]}" + (f"/{self.path}" if self.path else "")

    @property
    def subject(self) -> str:
        """What breaks the rule: ``org/name``, or ``task default TASK (org/name)``."""
        return f"task default {self.task} ({self.repo})" if self.task else self.repo

    def text(self) -> str:
        return f"{self.subject}: {self.message}" + (
            f" (allowed by exception: {self.exception.reason})" if self.exception else ""
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "rule": self.rule,
            "repo": self.repo,
            "commit": self.commit,
            "value": self.value,
            "message": self.message,
        }
        if self.path:
            doc["path"] = self.path
        if self.task:
            doc["task"] = self.task
        if self.exception is not None:
            doc["exception"] = {"reason": self.exception.reason}
        return doc


class PolicyViolation(CheckFailed):
    """What would be pinned or pulled breaks the policy (exit 1)."""


def evaluate(
    policy: Policy, facts: RepoFacts, *, strict: bool = False, cache_dir: Path | None = None
) -> list[Violation]:
    """Every rule ``facts`` breaks (cleared ones included, with their exception)."""
    found: list[tuple[str, str, str, str]] = []  # rule, value, message, path

    def unknown(rule: str, what: str) -> None:
        if strict:
            found.append((rule, "unknown", f"{what} is {_UNKNOWN_HINT.format(fix=_upgrade_command(facts))}", ""))

    licenses = facts.licenses
    if policy.license_allow is not None or policy.license_deny:
        if licenses is None:
            unknown("license", "its licence")
        else:
            for lic in licenses:
                if lic in policy.license_deny:
                    found.append(("license", lic, f"licence '{lic}' is denied by {policy.key('licenses.deny')}", ""))
                elif policy.license_allow is not None and lic not in policy.license_allow:
                    found.append(("license", lic, f"licence '{lic}' is not in {policy.key('licenses.allow')}", ""))
            if not licenses and policy.license_allow is not None:
                found.append(
                    ("license", "none", f"its card names no licence ({policy.key('licenses.allow')} is set)", "")
                )
    if policy.pickle != "allow" and facts.pickle_files is None:
        unknown("pickle", "whether the files it loads are pickles")
    elif policy.pickle == "deny":
        for path in facts.pickles:
            found.append(("pickle", path, f"'{path}' is a pickle file and {policy.key('pickle')} is \"deny\"", path))
    elif policy.pickle == "scan" and strict:
        found += _scan_pickles(policy, facts, cache_dir)
    if policy.remote_code == "deny":
        if facts.remote_code:
            found.append(
                (
                    "remote_code",
                    "true",
                    f'loading it runs the repo\'s code and {policy.key("remote_code")} is "deny"',
                    "",
                )
            )
        elif facts.remote_code is None:
            unknown("remote_code", "whether it needs remote code")
    if policy.gated == "deny":
        if facts.gated:
            found.append(("gated", "true", f'it is gated and {policy.key("gated")} is "deny"', ""))
        elif facts.gated is None:
            unknown("gated", "whether it is gated")
    if policy.max_size is not None and facts.size is None:
        unknown("max_size", "the size of its files")
    elif policy.max_size is not None and facts.size is not None and facts.size > policy.max_size:
        from hfa.output import human_size

        found.append(
            (
                "max_size",
                str(facts.size),
                f"its files total {human_size(facts.size)}, over {policy.key('max_size')} ({human_size(policy.max_size)})",
                "",
            )
        )
    if policy.sources is not None and facts.author not in policy.sources:
        found.append(("sources", facts.author, f"its author '{facts.author}' is not in {policy.key('sources')}", ""))
    return [
        Violation(
            rule,
            facts.label,
            facts.commit,
            value,
            message,
            path,
            policy.excepted(facts.repo_id, facts.repo_type, rule),
            facts.task,
        )
        for rule, value, message, path in found
    ]


def _scan_pickles(policy: Policy, facts: RepoFacts, cache_dir: Path | None) -> list[tuple[str, str, str, str]]:
    """``pickle = "scan"``: each pickle must be in the cache and scan without a high or critical finding."""
    if not facts.pickles:
        return []
    from hfa.cache.layout import CacheWriter
    from hfa.scan.model import ScanPolicy, Severity
    from hfa.scan.scanner import scan_file

    out: list[tuple[str, str, str, str]] = []
    key = policy.key("pickle")
    writer = CacheWriter(cache_dir, facts.repo_type, facts.repo_id) if cache_dir is not None else None
    for f in facts.pickle_files or ():
        path = f.path
        if writer is None or not writer.has_blob(f.etag, f.size):
            out.append(
                (
                    "pickle",
                    path,
                    f"'{path}' is not in the cache, so it cannot be scanned ({key} is \"scan\"): run `hfa pull` first",
                    path,
                )
            )
            continue
        bad = [f for f in scan_file(writer.blob_path(f.etag), path, ScanPolicy()) if f.severity >= Severity.HIGH]
        if bad:
            out.append(
                (
                    "pickle",
                    path,
                    f"'{path}' does not scan clean ({key} is \"scan\"): {bad[0].message} [{bad[0].code}]",
                    path,
                )
            )
    return out


def check_entries(
    policy: Policy,
    entries: Sequence[LockedRepo],
    *,
    cache_dir: Path | None = None,
    strict: bool = False,
    tasks: Sequence[TaskDefault] = (),
) -> list[Violation]:
    """Every violation of ``entries`` (lock entries, dependencies included), in lock order, then of the
    task defaults ``tasks`` (``[[task]]``, judged on the facts recorded when they were pinned)."""
    out: list[Violation] = []
    for entry in entries:
        out += evaluate(policy, entry_facts(entry, cache_dir), strict=strict, cache_dir=cache_dir)
    for default in tasks:
        out += evaluate(policy, task_facts(default), strict=strict, cache_dir=cache_dir)
    return out


def enforce(
    policy: Policy,
    entries: Sequence[LockedRepo],
    *,
    doing: str,
    cache_dir: Path | None = None,
    tasks: Sequence[TaskDefault] = (),
) -> list[Violation]:
    """Raise :class:`PolicyViolation` naming every uncleared violation of ``entries`` (and of the task
    defaults ``tasks``); return the cleared ones.

    ``doing`` ends the message: what was not done ("hfa.lock left unchanged", "nothing was fetched").
    """
    if not policy.declared:
        return []
    found = check_entries(policy, entries, cache_dir=cache_dir, tasks=tasks)
    failing = [v for v in found if not v.cleared]
    if failing:
        # A dependency is named with who requires it (and why): the user asked for that one, not this.
        requirers = {_label(e.repo_id, e.repo_type): e.required_by for e in entries}

        def text(v: Violation) -> str:
            by = () if v.task else requirers.get(v.repo, ())
            return v.text() + (f" (required by {', '.join(f'{r.display}: {r.reason}' for r in by)})" if by else "")

        shown = "; ".join(text(v) for v in failing[:5]) + (f"; and {len(failing) - 5} more" if len(failing) > 5 else "")
        first = failing[0]
        by_first = () if first.task else requirers.get(first.repo, ())
        no_deps = f"; or `hfa pin {by_first[0].display} --no-deps`" if by_first else ""
        violations = []
        for v in failing:
            doc = v.to_json()
            if requirers.get(v.repo) and not v.task:
                doc["required_by"] = [r.to_json() for r in requirers[v.repo]]
            violations.append(doc)
        raise PolicyViolation(
            f"Policy of {policy.origin} refuses it: {shown} ({doing})",
            (
                f"choose another model for {first.task} (`hfa pin --task {first.task} org/model`)"
                if first.task
                else "choose another repo or revision"
            )
            + ", or add an exception with a reason to the policy:"
            f' [[{policy.prefix}.exceptions]] repo = "{first.repo}", allow = ["{first.rule}"], reason = "…"'
            f" (docs/policy.md){no_deps}",
            details={"violations": violations},
        )
    return [v for v in found if v.cleared]


def _label(repo_id: str, repo_type: str) -> str:
    """As :attr:`RepoFacts.label` names a repo: ``org/name``, ``datasets/org/name``."""
    return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"


def findings(violations: Iterable[Violation]) -> list[Any]:
    """Violations as scan findings (high; cleared ones as info, ``policy.exception``) for reports and SARIF."""
    from hfa.scan.model import Finding, Severity

    out = []
    for v in violations:
        detail: dict[str, Any] = {"rule": v.rule, "value": v.value}
        said = f"task default {v.task}: {v.message}" if v.task else v.message
        if v.task:
            detail["task"] = v.task
        if v.exception is not None:
            detail["reason"] = v.exception.reason
            message = f"{said}; allowed by exception: {v.exception.reason}"
            out.append(Finding(Severity.INFO, "policy.exception", message, v.where, detail))
        else:
            out.append(Finding(Severity.HIGH, f"policy.{v.rule.replace('_', '-')}", said, v.where, detail))
    return out
