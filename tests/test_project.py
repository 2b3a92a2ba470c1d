"""hfa.toml lookup (hfa.project): beside the lock, else pyproject's [tool.hfa], else nothing."""

from pathlib import Path

import pytest

from hfa.errors import UsageError
from hfa.project import load_project, project_for_lock


def test_hfa_toml_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "hfa.toml").write_text('[policy.licenses]\ndeny = ["cc-by-nc-4.0"]\n')
    (tmp_path / "pyproject.toml").write_text('[tool.hfa.policy]\npickle = "allow"\n')
    cfg = load_project(tmp_path)
    assert cfg.path == tmp_path / "hfa.toml"
    assert cfg.table("policy") == {"licenses": {"deny": ["cc-by-nc-4.0"]}}
    assert cfg.table("infer") == {}


def test_pyproject_tool_hfa(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.hfa.policy]\npickle = "deny"\n')
    cfg = project_for_lock(tmp_path / "hfa.lock")
    assert cfg.origin == "pyproject.toml [tool.hfa]"
    assert cfg.table("policy") == {"pickle": "deny"}


def test_no_settings(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    cfg = load_project(tmp_path)
    assert cfg.path is None and cfg.table("policy") == {}


def test_broken_toml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "hfa.toml").write_text("[policy]\npickle = \n")
    with pytest.raises(UsageError) as err:
        load_project(tmp_path)
    assert "hfa.toml:2" in err.value.message


def test_table_must_be_a_table(tmp_path: Path) -> None:
    (tmp_path / "hfa.toml").write_text("policy = 3\n")
    with pytest.raises(UsageError, match=r"\[policy\]"):
        load_project(tmp_path).table("policy")


@pytest.mark.parametrize("name", ["hfa.toml", "pyproject.toml"])
def test_settings_file_that_is_a_folder_is_a_usage_error(tmp_path: Path, name: str) -> None:
    # Python's file object refuses a folder itself (IsADirectoryError): it was exit 6 "check the cache dir"
    from helpers import hfa

    from hfa.errors import ExitCode

    (tmp_path / name).mkdir()
    with pytest.raises(UsageError, match="is a folder, not a file"):
        load_project(tmp_path)
    (tmp_path / "hfa.lock").write_text("version = 2\n")
    result = hfa("policy", "check", "--lock", str(tmp_path / "hfa.lock"))
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert f"{name} is a folder" in result.stderr and "cache dir" not in result.stderr
