"""Loading a user's allowlist extension: explicit, validated, and always reported."""

from __future__ import annotations

import re
from pathlib import Path

from hfa.errors import UsageError
from hfa.scan.model import Finding, ScanPolicy, Severity

_ENTRY_RE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_*][\w*]*)+\Z")


def load_policy(allowlist: Path | None) -> tuple[ScanPolicy, list[Finding]]:
    """The default policy, extended by ``allowlist`` (TOML: ``allow = ["pkg.Class", "pkg.sub.*"]``).

    Returns the policy and an INFO finding naming the extension, so it is never silent.
    """
    policy = ScanPolicy()
    if allowlist is None:
        return policy, []
    from hfa.config import CONFIG_FILE_LIMIT, TomlError, read_small_file, toml_loads

    try:
        doc = toml_loads(read_small_file(allowlist, CONFIG_FILE_LIMIT, "allowlist", "--allowlist").decode("utf-8"))
    except OSError as exc:
        raise UsageError(f"Cannot read allowlist {allowlist}: {exc.strerror}", "check the --allowlist path") from None
    except (UnicodeDecodeError, TomlError) as exc:
        raise UsageError(f"Allowlist {allowlist} is not valid TOML: {exc}", "see docs/security.md") from None
    entries = doc.get("allow")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise UsageError(f'Allowlist {allowlist} needs `allow = ["module.Name", …]`', "see docs/security.md")
    from hfa.scan.denylist import denied_entry

    for entry in entries:
        if not _ENTRY_RE.fullmatch(entry) or entry.startswith("*"):
            raise UsageError(f"Allowlist {allowlist}: invalid entry '{entry}'", "write module.Name or module.sub.*")
        if "*" not in entry and denied_entry(entry):
            raise UsageError(
                f"Allowlist {allowlist}: '{entry}' is known to run code, touch files, the network or processes;"
                " hfa never allows it",
                f"remove '{entry}' from {allowlist}; a pickle that needs it is unsafe to load (see docs/security.md)",
            )
    policy.extra = tuple(entries)
    policy.extended_from.append(str(allowlist))
    note = Finding(
        Severity.INFO,
        "policy.allowlist-extended",
        f"pickle allowlist extended with {len(entries)} global(s): {', '.join(entries[:10])}",
        str(allowlist),
        {"allow": entries},
    )
    return policy, [note]
