"""``hfa.lock``: the lock model, its deterministic TOML form, strict reading and diffs (lockfile)."""
