"""Access rules for ``hfa serve --auth FILE``.

The file is TOML::

    # Which repositories are private or gated ("gated" is "manual"; "gated:auto" too).
    [repos]
    "acme/secret-model" = "private"
    "acme/llama-like" = "gated"
    "datasets/acme/private-data" = "private"

    # Who may read them. A token is given in clear (`token`) or as the hex sha256 of
    # the token (`token_sha256`), so the file need not hold secrets. `read` takes repo
    # ids or globs ("acme/*", "*").
    [[tokens]]
    name = "ci"
    token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    read = ["acme/*"]

Without a valid ``Authorization: Bearer`` token a private repo answers ``RepoNotFound``
and a gated one ``GatedRepo``, as the Hub does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from hfa.errors import UsageError


def repo_key(repo_type: str, repo_id: str) -> str:
    """How :attr:`AuthPolicy.visibility` names a repo: ``"model:org/name"``."""
    return f"{repo_type}:{repo_id}"


@dataclass(frozen=True)
class TokenRule:
    name: str
    sha256: str
    read: tuple[str, ...]


@dataclass
class AuthPolicy:
    visibility: dict[str, str] = field(default_factory=dict)  # "model:org/x" -> private|manual|auto
    tokens: list[TokenRule] = field(default_factory=list)

    def is_private(self, repo_type: str, repo_id: str) -> bool:
        return self.visibility.get(repo_key(repo_type, repo_id)) == "private"

    def gated(self, repo_type: str, repo_id: str) -> str | bool:
        value = self.visibility.get(repo_key(repo_type, repo_id))
        return value if value in ("manual", "auto") else False

    def who(self, token: str | None) -> TokenRule | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest()
        for rule in self.tokens:
            if hmac.compare_digest(rule.sha256, digest):
                return rule
        return None

    def may_read(self, rule: TokenRule | None, repo_type: str, repo_id: str) -> bool:
        if self.visibility.get(repo_key(repo_type, repo_id)) is None:
            return True
        if rule is None:
            return False
        name = repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"
        return any(fnmatch.fnmatchcase(name, pat) for pat in rule.read)


def load_policy(path: Path) -> AuthPolicy:
    from hfa.config import CONFIG_FILE_LIMIT, TomlError, read_small_file, toml_loads

    try:
        raw = read_small_file(path, CONFIG_FILE_LIMIT, "auth file", "--auth")
    except OSError as exc:
        raise UsageError(f"Cannot read auth file {path}: {exc.strerror}", "check the --auth path") from None
    try:
        doc = toml_loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, TomlError) as exc:
        raise UsageError(f"Auth file {path} is not valid TOML: {exc}", "see docs/serve.md for the format") from None
    policy = AuthPolicy()
    repos = doc.get("repos", {})
    if not isinstance(repos, dict):
        raise UsageError(f"Auth file {path}: [repos] must be a table", "see docs/serve.md for the format")
    for name, kind in repos.items():
        repo_type, repo_id = "model", name
        for prefix, rtype in (("datasets/", "dataset"), ("spaces/", "space"), ("models/", "model")):
            if name.startswith(prefix):
                repo_type, repo_id = rtype, name[len(prefix) :]
        kinds = {"private": "private", "gated": "manual", "gated:manual": "manual", "gated:auto": "auto"}
        if not isinstance(kind, str) or kind not in kinds:
            raise UsageError(
                f"Auth file {path}: repo '{name}' has unknown access '{kind}'",
                'use "private", "gated" or "gated:auto"',
            )
        policy.visibility[repo_key(repo_type, repo_id)] = kinds[kind]
    tokens = doc.get("tokens", [])
    if not isinstance(tokens, list):
        raise UsageError(f"Auth file {path}: tokens must be an array of tables ([[tokens]])", "see docs/serve.md")
    for i, entry in enumerate(tokens):
        if not isinstance(entry, dict):
            raise UsageError(f"Auth file {path}: tokens[{i}] is not a table", "see docs/serve.md")
        if "token" in entry:
            digest = hashlib.sha256(str(entry["token"]).encode()).hexdigest()
        elif "token_sha256" in entry:
            digest = str(entry["token_sha256"]).lower()
        else:
            raise UsageError(f"Auth file {path}: tokens[{i}] has no token or token_sha256", "add one")
        read = entry.get("read", [])
        if isinstance(read, str):
            read = [read]
        if not isinstance(read, list):
            raise UsageError(f"Auth file {path}: tokens[{i}].read must be a list of repo ids", "see docs/serve.md")
        policy.tokens.append(TokenRule(str(entry.get("name", f"token{i}")), digest, tuple(map(str, read))))
    return policy
