"""The project's settings file: ``hfa.toml`` beside the lock, or ``[tool.hfa]`` in ``pyproject.toml``.

One place reads it; each feature takes its own table (``[policy]`` for issue 15's policy,
``[infer]`` for the inference orchestrator of issue 19) and validates it itself. The file is read
bounded (:func:`hfa.config.read_small_file`) and parsed with tomllib; a broken file is a usage error
that names the file and line.

Lookup, from a directory (the lock's, or the working directory):
1. ``DIR/hfa.toml`` when it exists (all of it);
2. else ``DIR/pyproject.toml``'s ``[tool.hfa]`` table when it has one;
3. else no settings (every table empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfa.config import CONFIG_FILE_LIMIT, TomlError, read_small_file, toml_loads
from hfa.errors import UsageError

__all__ = ["PROJECT_FILE", "ProjectConfig", "load_project", "project_for_lock"]

PROJECT_FILE = "hfa.toml"


@dataclass(frozen=True)
class ProjectConfig:
    """The settings found, and where: ``path`` is None when there is no settings file."""

    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: "hfa.toml" or "pyproject.toml [tool.hfa]": how messages name where a value came from
    origin: str = ""

    def table(self, name: str) -> dict[str, Any]:
        """The table ``name`` (``policy``, ``infer``), or {} when absent; a non-table is an error."""
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise UsageError(
                f"[{name}] in {self.origin or PROJECT_FILE} must be a table, not {type(value).__name__}",
                f"write it as [{name}] followed by key = value lines",
            )
        return value


def _parse(path: Path) -> dict[str, Any]:
    text = read_small_file(path, CONFIG_FILE_LIMIT, "settings file").decode("utf-8", errors="replace")
    try:
        return toml_loads(text)
    except TomlError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else str(path)
        raise UsageError(f"{where} is not valid TOML: {exc}", f"fix the TOML syntax in {path}") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to read", f"fix {path}") from None


def load_project(directory: Path | None = None) -> ProjectConfig:
    """The settings of the project in ``directory`` (default: the working directory)."""
    base = Path(directory) if directory is not None else Path.cwd()
    own = base / PROJECT_FILE
    if own.exists():
        return ProjectConfig(own, _parse(own), PROJECT_FILE)
    pyproject = base / "pyproject.toml"
    if pyproject.exists():
        tool = _parse(pyproject).get("tool", {})
        hfa_table = tool.get("hfa") if isinstance(tool, dict) else None
        if isinstance(hfa_table, dict):
            return ProjectConfig(pyproject, hfa_table, "pyproject.toml [tool.hfa]")
    return ProjectConfig()


def project_for_lock(lock_path: Path) -> ProjectConfig:
    """The settings that sit beside ``lock_path`` (``hfa.toml`` in the lock's folder)."""
    return load_project(Path(lock_path).resolve().parent)
