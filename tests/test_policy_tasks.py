"""Task defaults (``[[task]]``) judged by the ``[policy]`` of hfa.toml, against `hfa serve`: `hfa pin --task`,
`hfa pin` (resolving ``[infer.tasks]``) and `hfa pin --upgrade` refuse a default that breaks it (exit 1, the
lock untouched, naming the task, the rule and the value); `hfa policy check` and `hfa verify --lock` report
them from the facts the lock records; an older lock without those facts still reads and fails closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TOKEN
from helpers import hfa

from hfa.errors import ExitCode
from hfa.lock import lockfile
from hfa.server import HubServer

TASK = "text-classification"


def toml(folder: Path, text: str) -> None:
    (folder / "hfa.toml").write_text(text, encoding="utf-8")


def run(srv: HubServer, folder: Path, *args: str):
    extra = ["--endpoint", srv.url, "--token", TOKEN] if args[0] in ("pin", "pull") else []
    return hfa(*args, *extra, "--lock", str(folder / "hfa.lock"), "--cache-dir", str(folder / "cache"))


@pytest.mark.parametrize(
    ("policy", "repo", "rule", "value", "says"),
    [
        ('[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n', "org/noncommercial", "license", "cc-by-nc-4.0", "denied"),
        ('[policy]\ngated = "deny"\n', "org/gated", "gated", "true", "it is gated"),
        ('[policy]\npickle = "deny"\n', "org/pickled", "pickle", "pytorch_model.bin", "is a pickle file"),
        ('[policy]\nremote_code = "deny"\n', "org/remote", "remote_code", "true", "runs the repo's code"),
        ('[policy]\nmax_size = "1KB"\n', "org/open", "max_size", None, "over policy.max_size"),
        ('[policy]\nsources = ["elsewhere"]\n', "org/open", "sources", "org", "is not in policy.sources"),
    ],
)
def test_pin_task_refuses_a_default_that_breaks_the_policy(
    policy_server: HubServer, project: Path, policy: str, repo: str, rule: str, value: str | None, says: str
) -> None:
    assert run(policy_server, project, "pin", "--task", "summarization", "elsewhere/model").exit_code == 0
    before = (project / "hfa.lock").read_bytes()
    toml(project, policy)
    result = run(policy_server, project, "pin", "--task", TASK, repo, "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    error = json.loads(result.stdout)["error"]
    assert f"task default {TASK} ({repo})" in error["message"] and says in error["message"]
    assert "left unchanged" in error["message"]
    assert f"hfa pin --task {TASK} org/model" in error["hint"]
    (violation,) = error["details"]["violations"]
    assert (violation["task"], violation["repo"], violation["rule"]) == (TASK, repo, rule)
    if value is not None:
        assert violation["value"] == value
    assert (project / "hfa.lock").read_bytes() == before


def test_pin_task_records_the_facts_and_an_exception_clears(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "--task", TASK, "org/pickled").exit_code == 0
    default = lockfile.read(project / "hfa.lock").task(TASK)
    assert default is not None and default.facts is not None
    assert default.facts.facts == lockfile.LockedFacts(("mit",), False, False)
    assert [f.path for f in default.facts.pickles] == ["pytorch_model.bin"]
    assert default.facts.size > 0
    text = (project / "hfa.lock").read_text()
    assert 'pickles = [{path = "pytorch_model.bin"' in text
    again = lockfile.loads(text)
    assert again.task(TASK).facts == default.facts  # type: ignore[union-attr]
    toml(
        project,
        '[policy]\npickle = "deny"\n\n[[policy.exceptions]]\nrepo = "org/pickled"\nallow = ["pickle"]\n'
        'reason = "an old classifier we audited"\n',
    )
    result = run(policy_server, project, "pin", "--task", TASK, "org/pickled")
    assert result.exit_code == 0, result.stderr
    assert "allowed by exception: an old classifier we audited" in result.stderr
    check = run(policy_server, project, "policy", "check")
    assert check.exit_code == 0, check.stderr
    assert "unused" not in check.stderr  # the exception is used by the task default


def test_pin_resolving_infer_tasks_refuses(policy_server: HubServer, project: Path) -> None:
    toml(project, f'[infer.tasks]\n{TASK} = "org/noncommercial"\n\n[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n')
    result = run(policy_server, project, "pin")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert f"task default {TASK} (org/noncommercial)" in result.stderr and "cc-by-nc-4.0" in result.stderr
    assert not (project / "hfa.lock").exists()


def test_pin_upgrade_refuses_a_default_that_now_breaks_it(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "org/open").exit_code == 0
    assert run(policy_server, project, "pin", "--task", TASK, "org/gated").exit_code == 0
    before = (project / "hfa.lock").read_bytes()
    toml(project, '[policy]\ngated = "deny"\n')
    for args in (("pin", "--upgrade"), ("pin", "--upgrade", "--task", TASK)):
        result = run(policy_server, project, *args)
        assert result.exit_code == ExitCode.CHECK_FAILED, (args, result.stderr)
        assert f"task default {TASK} (org/gated)" in result.stderr and "gated" in result.stderr
        assert (project / "hfa.lock").read_bytes() == before


def test_policy_check_and_verify_report_task_defaults(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "org/open").exit_code == 0
    assert run(policy_server, project, "pin", "--task", TASK, "org/remote").exit_code == 0
    assert run(policy_server, project, "pin", "--task", "summarization", "org/noncommercial").exit_code == 0
    toml(project, '[policy]\nremote_code = "deny"\n[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n')
    result = run(policy_server, project, "policy", "check", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    doc = json.loads(result.stdout)
    assert doc["tasks"] == 2
    assert {(v.get("task"), v["repo"], v["rule"], v["value"]) for v in doc["violations"]} == {
        (TASK, "org/remote", "remote_code", "true"),
        ("summarization", "org/noncommercial", "license", "cc-by-nc-4.0"),
    }
    text = run(policy_server, project, "policy", "check")
    assert f"task default {TASK}:" in text.stdout and "2 task default(s)" in text.stdout + text.stderr
    sarif = project / "p.sarif"
    assert run(policy_server, project, "policy", "check", "--sarif", str(sarif)).exit_code == 1
    assert len(json.loads(sarif.read_text())["runs"][0]["results"]) == 2
    assert run(policy_server, project, "pull").exit_code == 0
    verify = run(policy_server, project, "verify", "--json")
    assert verify.exit_code == ExitCode.CHECK_FAILED, verify.stderr
    codes = sorted(f["code"] for f in json.loads(verify.stdout)["findings"])
    assert codes == ["policy.license", "policy.remote-code"]


def test_pull_tasks_refuses_before_fetching(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "--task", TASK, "org/pickled").exit_code == 0
    toml(project, '[policy]\npickle = "deny"\n')
    result = run(policy_server, project, "pull", "--tasks")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert f"task default {TASK} (org/pickled)" in result.stderr and "nothing was fetched" in result.stderr
    assert not any((project / "cache").rglob("pytorch_model.bin"))


def test_an_old_lock_without_task_facts_reads_and_fails_closed(policy_server: HubServer, project: Path) -> None:
    assert run(policy_server, project, "pin", "--task", TASK, "org/open").exit_code == 0
    path = project / "hfa.lock"
    old = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("facts = ")) + "\n"
    path.write_text(old)  # as hfa wrote it before task defaults recorded facts
    assert lockfile.read(path).task(TASK).facts is None  # type: ignore[union-attr]
    toml(project, '[policy]\nmax_size = "10GB"\nsources = ["org"]\n')
    result = run(policy_server, project, "policy", "check", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    violations = json.loads(result.stdout)["violations"]
    assert [(v["rule"], v["value"]) for v in violations] == [("max_size", "unknown")]
    assert f"hfa pin --upgrade --task {TASK}" in violations[0]["message"]
    assert path.read_text() == old  # checking never writes
    # `hfa pin` keeps a default that did not change as it is; `--upgrade --task` records its facts
    assert run(policy_server, project, "pin", "--upgrade", "--task", TASK).exit_code == 0
    assert lockfile.read(path).task(TASK).facts is not None  # type: ignore[union-attr]
    assert run(policy_server, project, "policy", "check").exit_code == 0
