"""Policy: what a project accepts from the Hub (licences, pickles, remote code, gating, size, sources),
judged on lock entries, as cargo-deny judges crates. docs/policy.md is the reference.

* :mod:`hfa.policy.rules`: the ``[policy]`` table of ``hfa.toml`` parsed strictly into a :class:`Policy`;
* :mod:`hfa.policy.facts`: what is known of a repo (recorded in the lock at pin time, or read from the cache);
* :mod:`hfa.policy.check`: facts judged against the policy, as :class:`Violation` s and scan findings.
"""

from hfa.policy.check import PolicyViolation, Violation, check_entries, enforce, evaluate, findings
from hfa.policy.facts import RepoFacts, entry_facts, record_facts
from hfa.policy.rules import RULES, Policy, PolicyException, load_policy, parse_policy, parse_size

__all__ = [
    "RULES",
    "Policy",
    "PolicyException",
    "PolicyViolation",
    "RepoFacts",
    "Violation",
    "check_entries",
    "enforce",
    "entry_facts",
    "evaluate",
    "findings",
    "load_policy",
    "parse_policy",
    "parse_size",
    "record_facts",
]
