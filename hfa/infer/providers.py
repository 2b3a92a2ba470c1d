"""``[[infer.providers]]``: where requests may go, in order, with their limits (docs/infer.md).

Each table names one provider::

    [[infer.providers]]
    name = "mirror"            # the key of its limits and cooldowns in the shared state store
    kind = "endpoint"          # endpoint (with url) | hf-inference | provider (with provider) | local
    url = "http://mirror:8080"
    priority = 10              # higher is tried first; equal priorities keep the file's order
    enabled = true
    token_env = "MIRROR_TOKEN" # the variable holding its token; sent only to this provider's origin
    tasks = ["text-classification"]   # optional: only these tasks (aliases allowed)
    models = ["org/model"]            # optional: only these models
    rate = ["100/hour", "5/second"]   # optional: a string or a list
    chars_per_month = 30000           # optional: input characters per 30 days

This module only reads and checks the tables; :mod:`hfa.infer.orchestrator` runs them and
:mod:`hfa.infer.limits` keeps their limits and cooldowns.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hfa.errors import UsageError

__all__ = ["KINDS", "PERIODS", "ProviderSpec", "RateSpec", "parse_providers", "parse_rate"]

KINDS = ("endpoint", "hf-inference", "provider", "local")
MAX_PROVIDERS = 64  # tables in one hfa.toml: each is tried in turn within one deadline
PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MONTH = 30 * 86400  # chars_per_month counts over a sliding 30 days
_KEYS = {
    "name",
    "kind",
    "url",
    "provider",
    "priority",
    "enabled",
    "token_env",
    "tasks",
    "models",
    "rate",
    "chars_per_month",
}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RATE_RE = re.compile(r"\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*")
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class RateSpec:
    limit: int
    period: str  # second, minute, hour, day (or "month" for chars)

    @property
    def seconds(self) -> int:
        return MONTH if self.period == "month" else PERIODS[self.period]

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}"


def parse_rate(text: Any, where: str = "rate") -> RateSpec:
    """``"100/hour"`` as a RateSpec (/second, /minute, /hour, /day); UsageError otherwise."""
    match = _RATE_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) < 1:
        raise UsageError(
            f"{where}: {text!r} is not a rate", 'write e.g. rate = "100/hour" (/second, /minute, /hour, /day)'
        )
    return RateSpec(int(match.group(1)), match.group(2))


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    kind: str
    url: str | None = None
    provider: str | None = None  # kind "provider": huggingface_hub's provider name (together, fal-ai, …)
    priority: int = 0
    enabled: bool = True
    token_env: str | None = None
    tasks: tuple[str, ...] | None = None  # canonical task names
    models: tuple[str, ...] | None = None  # repo ids
    rates: tuple[RateSpec, ...] = ()
    chars_per_month: int | None = None

    def serves(self, task: str, repo_id: str | None) -> str | None:
        """None if this provider may take the request, else why not (for ``-v``)."""
        if not self.enabled:
            return "disabled"
        if self.tasks is not None and task not in self.tasks:
            return f"does not serve {task}"
        if self.models is not None and repo_id not in self.models:
            return f"does not serve {repo_id or 'this model'}"
        return None

    def token(self) -> str | None:
        """The token from ``token_env`` (None when unset or empty); UsageError, never echoing it, when it
        holds what no HTTP header can carry (a line break, a space, a control character)."""
        if not self.token_env:
            return None
        value = os.environ.get(self.token_env, "").strip()
        if value and (not value.isascii() or not value.isprintable() or any(c.isspace() for c in value)):
            raise UsageError(
                f"provider '{self.name}': ${self.token_env} holds spaces, line breaks or other characters no token has",
                f"set {self.token_env} to the token alone",
            )
        return value or None

    def describe(self) -> dict[str, Any]:
        """Public facts for ``hfa infer usage`` (never the token, only the variable's name)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "url": self.url,
            "provider": self.provider,
            "priority": self.priority,
            "enabled": self.enabled,
            "token_env": self.token_env,
            "rate": [str(r) for r in self.rates],
            "chars_per_month": self.chars_per_month,
        }


def parse_providers(infer_table: dict[str, Any], origin: str = "hfa.toml") -> list[ProviderSpec]:
    """``[[infer.providers]]`` checked, in the order they are tried (priority, then file order)."""
    raw = infer_table.get("providers", [])
    if not isinstance(raw, list):
        raise UsageError(f"infer.providers in {origin} must be an array of tables", "write [[infer.providers]] tables")
    if len(raw) > MAX_PROVIDERS:
        raise UsageError(
            f"{origin} lists {len(raw)} [[infer.providers]]; at most {MAX_PROVIDERS} are allowed",
            "keep the providers you use (each is tried in turn within one --timeout)",
        )
    specs: list[ProviderSpec] = []
    for i, table in enumerate(raw):
        spec = _provider(table, f"[[infer.providers]] #{i + 1} in {origin}")
        if any(s.name == spec.name for s in specs):
            raise UsageError(f"two providers in {origin} are named '{spec.name}'", "give each a unique name")
        specs.append(spec)
    order = sorted(range(len(specs)), key=lambda i: (-specs[i].priority, i))
    return [specs[i] for i in order]


def _provider(table: Any, where: str) -> ProviderSpec:
    from hfa.infer.defaults import canonical_task

    if not isinstance(table, dict):
        raise UsageError(f"{where} is not a table", "write [[infer.providers]] followed by key = value lines")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UsageError(f"{where}: `name` must be letters, digits, '.', '_' or '-'", 'write name = "mirror"')
    where = f"provider '{name}' ({where.split(' in ', 1)[1]})"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}", f"known keys: {', '.join(sorted(_KEYS))}")
    kind = table.get("kind")
    if kind not in KINDS:
        raise UsageError(f"{where}: `kind` must be one of {', '.join(KINDS)}, not {kind!r}", 'write kind = "endpoint"')
    url = table.get("url")
    if kind == "endpoint":
        parts = _http_url(url)
        if parts is None:
            raise UsageError(f"{where}: kind endpoint needs a `url` (http or https)", 'write url = "http://host:8080"')
        if parts.username or parts.password:
            raise UsageError(
                f"{where}: `url` must not hold a password", "put the token in the variable token_env names"
            )
    elif url is not None:
        raise UsageError(f"{where}: `url` is only for kind endpoint", 'drop it, or write kind = "endpoint"')
    provider = table.get("provider")
    if kind == "provider":
        if not isinstance(provider, str) or not provider:
            raise UsageError(
                f"{where}: kind provider needs `provider`", 'write provider = "together" (huggingface_hub\'s name)'
            )
    elif provider is not None:
        raise UsageError(f"{where}: `provider` is only for kind provider", "drop it")
    priority = table.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise UsageError(f"{where}: `priority` must be a whole number", "write priority = 10 (higher is tried first)")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise UsageError(f"{where}: `enabled` must be true or false", "write enabled = false")
    token_env = table.get("token_env")
    if token_env is not None and (not isinstance(token_env, str) or not _ENV_RE.fullmatch(token_env)):
        raise UsageError(
            f"{where}: `token_env` must name an environment variable",
            'write token_env = "MIRROR_TOKEN" (not the token)',
        )
    tasks = _strings(table, "tasks", where)
    models = _strings(table, "models", where)
    rates_raw = table.get("rate", [])
    rates_raw = [rates_raw] if isinstance(rates_raw, str) else rates_raw
    if not isinstance(rates_raw, list):
        raise UsageError(f"{where}: `rate` must be a string or a list of them", 'write rate = ["100/hour", "5/second"]')
    rates = tuple(sorted((parse_rate(r, f"{where} rate") for r in rates_raw), key=lambda r: r.seconds))
    if rates:
        from pyrate_limiter import Rate, validate_rate_list

        if len({r.seconds for r in rates}) != len(rates) or not validate_rate_list(
            [Rate(r.limit, r.seconds * 1000) for r in rates]
        ):
            raise UsageError(
                f"{where}: the rates {', '.join(map(str, rates))} do not fit together",
                "give each period once, a longer period a larger limit that is not looser per second",
            )
    chars = table.get("chars_per_month")
    if chars is not None and (not isinstance(chars, int) or isinstance(chars, bool) or chars < 1):
        raise UsageError(f"{where}: `chars_per_month` must be a positive whole number", "write chars_per_month = 30000")
    return ProviderSpec(
        name=name,
        kind=kind,
        url=url.rstrip("/") if isinstance(url, str) else None,
        provider=provider,
        priority=priority,
        enabled=enabled,
        token_env=token_env,
        tasks=tuple(canonical_task(t) for t in tasks) if tasks is not None else None,
        models=tuple(models) if models is not None else None,
        rates=rates,
        chars_per_month=chars,
    )


def _http_url(url: Any) -> Any:
    """``url`` split, if it is an http(s) URL with a host and a valid port; else None."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:  # "http://[::1" (an unclosed IPv6 address), "http://h:99999"
        return None
    return parts if parts.scheme in ("http", "https") and parts.hostname else None


def _strings(table: dict[str, Any], key: str, where: str) -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: `{key}` must be a list of strings", f'write {key} = ["…"]')
    return list(value)
