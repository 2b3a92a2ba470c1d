"""``hfa.lock``: the lock model, its deterministic TOML form, strict reading and diffs.

Callers use the module (``from hfa.lock import lockfile``; ``lockfile.read(path)``), whose
public names are listed here.
"""

from hfa.lock import lockfile

__all__ = ["lockfile"]
