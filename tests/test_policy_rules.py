"""hfa.policy as a library: the [policy] parser (unit and property tests), sizes, and rules judged on facts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hfa.config import toml_loads
from hfa.errors import UsageError
from hfa.lock.lockfile import LockedFacts, LockedFile, LockedRepo
from hfa.policy import Policy, RepoFacts, check_entries, entry_facts, evaluate, parse_policy, parse_size
from hfa.resolve.selection import SelectOptions

COMMIT = "a" * 40


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (123, 123),
        ("10GB", 10 * 10**9),
        ("500MiB", 500 * 2**20),
        ("1.5 GB", 1_500_000_000),
        ("2kib", 2048),
        ("7", 7),
        ("3 B", 3),
        ("0.1TB", 10**11),
    ],
)
def test_parse_size(text: Any, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", [-1, True, 1.5, "", "GB", "10 parsecs", "1e9", "-3GB", "1.GB", [1], {"a": 1}])
def test_parse_size_refuses(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_defaults_allow_everything() -> None:
    empty = parse_policy({})
    assert empty.declared and empty.pickle == "allow" and empty.license_allow is None and empty.sources is None
    assert Policy().declared is False


def test_full_policy() -> None:
    table = toml_loads(
        """
pickle = "scan"
remote_code = "deny"
gated = "deny"
max_size = "10GB"
sources = ["Org", "google"]
[licenses]
allow = ["Apache-2.0", "mit"]
deny = ["cc-by-nc-4.0"]
[[exceptions]]
repo = "datasets/org/data"
allow = ["license", "max_size"]
reason = "  internal data  "
"""
    )
    p = parse_policy(table)
    assert p.license_allow == ("apache-2.0", "mit") and p.license_deny == ("cc-by-nc-4.0",)
    assert (p.pickle, p.remote_code, p.gated, p.max_size, p.sources) == (
        "scan",
        "deny",
        "deny",
        10**10,
        ("org", "google"),
    )
    (exc,) = p.exceptions
    assert (exc.repo_id, exc.repo_type, exc.allow, exc.reason) == (
        "org/data",
        "dataset",
        ("license", "max_size"),
        "internal data",
    )
    assert p.excepted("org/data", "dataset", "license") is exc
    assert p.excepted("org/data", "model", "license") is None
    assert p.excepted("org/data", "dataset", "pickle") is None


@pytest.mark.parametrize(
    ("table", "key", "fix"),
    [
        ({"pickles": "deny"}, "policy.pickles is not a policy key", "did you mean 'pickle'?"),
        ({"licenses": {"alow": []}}, "policy.licenses.alow is not a policy key", "did you mean 'allow'?"),
        ({"licenses": ["mit"]}, "policy.licenses must be a table", "[policy.licenses]"),
        ({"licenses": {"allow": ["mit"], "deny": ["MIT"]}}, "policy.licenses both allows and denies 'mit'", "one of"),
        ({"licenses": {"deny": ["not a licence"]}}, "policy.licenses.deny holds 'not a licence'", "deny = ["),
        ({"gated": True}, "policy.gated must be one of", 'gated = "deny" or "allow"'),
        ({"remote_code": "scan"}, "policy.remote_code must be one of", "remote_code ="),
        ({"max_size": -5}, "policy.max_size is invalid", "max_size ="),
        ({"sources": "org"}, "policy.sources must be a list", "sources = ["),
        ({"exceptions": {"repo": "x"}}, "policy.exceptions must be an array of tables", "[[policy.exceptions]]"),
        ({"exceptions": [{"allow": ["license"], "reason": "r"}]}, "policy.exceptions[0].repo is missing", "repo ="),
        (
            {"exceptions": [{"repo": "org/x@main", "allow": ["license"], "reason": "r"}]},
            "names a revision",
            'repo = "org/x"',
        ),
        ({"exceptions": [{"repo": "../x", "allow": ["license"], "reason": "r"}]}, "is not a repo id", "repo ="),
        (
            {"exceptions": [{"repo": "org/x", "allow": [], "reason": "r"}]},
            "exceptions[0].allow must be a non-empty",
            "allow =",
        ),
        (
            {"exceptions": [{"repo": "org/x", "allow": ["licence"], "reason": "r"}]},
            "names 'licence', which is not a rule",
            "license",
        ),
        (
            {"exceptions": [{"repo": "org/x", "allow": ["pickle"], "reason": " "}]},
            "exceptions[0].reason must be non-empty",
            "reason =",
        ),
        ({"exceptions": [{"repo": "org/x", "allow": ["pickle"]}]}, "exceptions[0].reason is missing", "reason ="),
        (
            {"exceptions": [{"repo": "org/x", "allow": ["pickle"], "reason": "r", "until": 1}]},
            "until is not a policy key",
            "reason",
        ),
    ],
)
def test_errors_name_the_file_the_key_and_the_fix(table: dict[str, Any], key: str, fix: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_policy(table, "/p/hfa.toml")
    assert err.value.message.startswith("/p/hfa.toml: policy.")
    assert key in err.value.message
    assert err.value.hint is not None and fix in err.value.hint


def test_pyproject_keys_are_named_as_written() -> None:
    with pytest.raises(UsageError) as err:
        parse_policy({"pickle": 1}, "pyproject.toml", "tool.hfa.policy")
    assert "pyproject.toml: tool.hfa.policy.pickle must be one of" in err.value.message


# Anything TOML can hold: the parser answers a Policy or a UsageError, never anything else.
_toml_scalar = st.one_of(st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=12))
_toml_value = st.recursive(
    _toml_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
_keys = st.sampled_from(["licenses", "pickle", "remote_code", "gated", "max_size", "sources", "exceptions", "other"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _toml_value, max_size=5))
def test_parser_never_crashes(table: dict[str, Any]) -> None:
    try:
        result = parse_policy(table)
    except UsageError as exc:
        assert exc.message.startswith("hfa.toml: policy") and exc.hint
    else:
        assert isinstance(result, Policy)


_licence = st.from_regex(r"[a-z0-9][a-z0-9.+-]{0,12}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(
    allow=st.lists(_licence, max_size=3, unique=True),
    deny=st.lists(_licence, max_size=3, unique=True),
    pickle=st.sampled_from(["deny", "scan", "allow"]),
    size=st.integers(0, 2**50),
    unit=st.sampled_from(["", "B", "KB", "MiB", "GB", "TiB"]),
)
def test_valid_tables_parse_to_what_they_say(
    allow: list[str], deny: list[str], pickle: str, size: int, unit: str
) -> None:
    deny = [d for d in deny if d not in allow]
    table = {"licenses": {"allow": allow, "deny": deny}, "pickle": pickle, "max_size": f"{size}{unit}"}
    p = parse_policy(table)
    assert p.license_allow == tuple(allow) and p.license_deny == tuple(deny) and p.pickle == pickle
    assert p.max_size == parse_size(f"{size} {unit}".strip())


def facts(**kw: Any) -> RepoFacts:
    base: dict[str, Any] = {
        "repo_id": "org/x",
        "repo_type": "model",
        "commit": COMMIT,
        "licenses": ("apache-2.0",),
        "gated": False,
        "remote_code": False,
        "size": 100,
        "pickle_files": (),
    }
    return RepoFacts(**{**base, **kw})


def rules(**table: Any) -> Policy:
    return parse_policy(table)


def test_rules_on_facts() -> None:
    assert evaluate(rules(licenses={"allow": ["apache-2.0"]}, max_size=100, sources=["org"]), facts()) == []
    (v,) = evaluate(rules(licenses={"allow": ["mit"]}), facts())
    assert (v.rule, v.value, v.repo, v.cleared) == ("license", "apache-2.0", "org/x", False)
    (v,) = evaluate(rules(licenses={"allow": ["mit"]}), facts(licenses=()))
    assert v.value == "none"  # a card without a licence is not allowed by an allow-list
    assert evaluate(rules(licenses={"deny": ["mit"]}), facts(licenses=())) == []
    both = evaluate(rules(licenses={"deny": ["gpl-3.0"]}), facts(licenses=("mit", "gpl-3.0")))
    assert [v.value for v in both] == ["gpl-3.0"]
    (v,) = evaluate(rules(max_size="99B"), facts())
    assert (v.rule, v.value) == ("max_size", "100")
    (v,) = evaluate(rules(sources=["google"]), facts())
    assert (v.rule, v.value) == ("sources", "org")
    assert evaluate(rules(sources=["ORG"]), facts(repo_id="Org/x")) == []


def test_unknown_facts_fail_only_when_strict() -> None:
    unknown = facts(licenses=None, gated=None, remote_code=None)
    policy = rules(licenses={"deny": ["x"]}, gated="deny", remote_code="deny")
    assert evaluate(policy, unknown) == []
    strict = evaluate(policy, unknown, strict=True)
    assert {(v.rule, v.value) for v in strict} == {
        ("license", "unknown"),
        ("gated", "unknown"),
        ("remote_code", "unknown"),
    }
    assert all("hfa pin --upgrade org/x" in v.message for v in strict)


def test_exceptions_clear_only_their_rules_and_repo() -> None:
    policy = rules(
        pickle="deny",
        gated="deny",
        exceptions=[{"repo": "org/x", "allow": ["pickle"], "reason": "converted offline"}],
    )
    entry = LockedRepo(
        "org/x",
        "model",
        "main",
        COMMIT,
        SelectOptions(),
        (LockedFile("pytorch_model.bin", 5, "sha256", "b" * 64), LockedFile("config.json", 2, "git-sha1", "c" * 40)),
        facts=LockedFacts(("mit",), True, False),
    )
    found = check_entries(policy, [entry])
    assert {(v.rule, v.cleared) for v in found} == {("pickle", True), ("gated", False)}
    pickle = next(v for v in found if v.rule == "pickle")
    assert pickle.path == "pytorch_model.bin" and pickle.where == f"org/x@{COMMIT[:12]}/pytorch_model.bin"
    other = LockedRepo("org/y", "model", "main", COMMIT, SelectOptions(), entry.files, entry.facts)
    assert all(not v.cleared for v in check_entries(policy, [other]))


def test_entry_without_facts_and_without_cache_is_unknown() -> None:
    entry = LockedRepo(
        "org/x", "model", "main", COMMIT, SelectOptions(), (LockedFile("m.py", 1, "git-sha1", "d" * 40),)
    )
    f = entry_facts(entry)
    assert (f.licenses, f.gated, f.remote_code, f.size) == (None, None, True, 1)  # *.py locked: remote code


def test_lock_facts_round_trip_and_old_locks_read() -> None:
    from hfa.lock import lockfile

    files = (LockedFile("config.json", 2, "git-sha1", "c" * 40),)
    entry = LockedRepo(
        "org/x", "model", "main", COMMIT, SelectOptions(), files, facts=LockedFacts(("mit", "apache-2.0"), True, False)
    )
    text = lockfile.dumps(lockfile.Lock((entry,)))
    assert 'facts = {gated = true, license = ["mit", "apache-2.0"], remote_code = false}' in text
    assert lockfile.loads(text).repos[0] == entry
    old = "\n".join(line for line in text.splitlines() if not line.startswith("facts")) + "\n"
    assert lockfile.loads(old).repos[0].facts is None
    assert lockfile.dumps(lockfile.loads(old)) == old  # an old lock is rewritten as it was: no facts invented
    none = text.replace('license = ["mit", "apache-2.0"], ', "")
    assert lockfile.loads(none).repos[0].facts == LockedFacts((), True, False)


@pytest.mark.parametrize(
    "facts_line",
    [
        'facts = "mit"',
        "facts = {gated = 1, remote_code = false}",
        'facts = {gated = false, remote_code = false, licence = "mit"}',
        "facts = {gated = false, license = [1]}",
        'facts = {gated = false, license = ""}',
    ],
)
def test_bad_lock_facts_are_refused_with_the_line(facts_line: str) -> None:
    from hfa.lock import lockfile

    files = (LockedFile("config.json", 2, "git-sha1", "c" * 40),)
    entry = LockedRepo("org/x", "model", "main", COMMIT, SelectOptions(), files, facts=LockedFacts())
    text = lockfile.dumps(lockfile.Lock((entry,)))
    lines = [facts_line if line.startswith("facts = ") else line for line in text.splitlines()]
    with pytest.raises(lockfile.LockError) as err:
        lockfile.loads("\n".join(lines) + "\n", "hfa.lock")
    assert "hfa.lock (line" in err.value.message and "facts" in err.value.message
