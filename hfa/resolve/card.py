"""Model-card front matter, parsed exactly as huggingface_hub's repocard does.

A card that is missing, has no front matter or holds malformed YAML gives an empty
dict and a warning, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# huggingface_hub.repocard's own pattern (CRLF and CR accepted), used when that module is
# importable so hfa finds front matter exactly where the Hub's tooling does; a copy otherwise.
_FALLBACK_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")


def _yaml_block() -> re.Pattern[str]:
    try:
        from huggingface_hub.repocard import REGEX_YAML_BLOCK
    except ImportError:  # pragma: no cover
        return _FALLBACK_YAML_BLOCK
    return REGEX_YAML_BLOCK


@dataclass
class CardData:
    data: dict[str, Any] = field(default_factory=dict)
    warning: str | None = None

    def get_list(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value if v is not None]
        return [str(value)]

    def get_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, (dict, list)):
            return None
        return str(value)


def parse_card(raw: bytes | str | None) -> CardData:
    """Front matter of a README as a dict, with a warning instead of an error."""
    if raw is None:
        return CardData(warning="no model card (README.md)")
    import yaml

    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return CardData(warning="README.md is not valid UTF-8")
    else:
        text = raw[1:] if raw.startswith("\ufeff") else raw
    match = _yaml_block().search(text)
    if not match:
        return CardData(warning="README.md has no YAML front matter")
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 2})" if line is not None else ""
        return CardData(warning=f"README.md front matter is malformed YAML{where}")
    except RecursionError:  # PyYAML's constructor recurses once per nesting level
        return CardData(warning="README.md front matter is nested too deeply")
    if data is None:
        return CardData()
    if not isinstance(data, dict):
        return CardData(warning="README.md front matter is not a mapping")
    return CardData(data={str(k): v for k, v in data.items()})
