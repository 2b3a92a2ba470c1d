"""Content checks that never execute content: pickle opcodes, archives, Git-LFS stubs, safetensors headers.

The public names are below, each loaded from its module on first use: importing ``hfa.scan``
(or any of its modules, such as :mod:`hfa.scan.model`) loads nothing else, so the scanning
engine keeps its small import list (see :mod:`hfa.scan.model`).

* :mod:`~hfa.scan.scanner`: targets (files, folders, a cache) and :func:`scan_targets`, :func:`scan_file`;
* :mod:`~hfa.scan.archive`: :func:`scan_serialized`, the dispatcher over pickles and containers
  (:mod:`~hfa.scan.containers`, :mod:`~hfa.scan.tarscan`, :mod:`~hfa.scan.zipread`,
  :mod:`~hfa.scan.streams`, :mod:`~hfa.scan.legacytorch`), sniffing by content
  (:mod:`~hfa.scan.sniff`), bounded by :mod:`~hfa.scan.limits`;
* :mod:`~hfa.scan.pickles`: the static pickle scanner (reader, machine, events, judge);
* :mod:`~hfa.scan.denylist` and :mod:`~hfa.scan.policy`: what a pickle may import;
* :mod:`~hfa.scan.lfs`, :mod:`~hfa.scan.safetensors`: the other content checks;
* :mod:`~hfa.scan.report`: human, JSON and SARIF output of findings.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see hfa.scan.model)
if TYPE_CHECKING:
    from hfa.scan.archive import scan_serialized
    from hfa.scan.denylist import classify_global
    from hfa.scan.limits import Work
    from hfa.scan.model import DEFAULT_ALLOWLIST, Finding, ScanPolicy, Severity
    from hfa.scan.pickles import PickleReport, looks_like_pickle, probe_pickle, scan_pickle, scan_pickles
    from hfa.scan.policy import load_policy
    from hfa.scan.scanner import ScanReport, Target, iter_cache, iter_folder, iter_repo, scan_file, scan_targets
    from hfa.scan.sniff import says_pickle

# public name -> the module that defines it
_HOME = {
    "DEFAULT_ALLOWLIST": "hfa.scan.model",
    "Finding": "hfa.scan.model",
    "ScanPolicy": "hfa.scan.model",
    "Severity": "hfa.scan.model",
    "Work": "hfa.scan.limits",
    "scan_serialized": "hfa.scan.archive",
    "PickleReport": "hfa.scan.pickles",
    "looks_like_pickle": "hfa.scan.pickles",
    "probe_pickle": "hfa.scan.pickles",
    "scan_pickle": "hfa.scan.pickles",
    "scan_pickles": "hfa.scan.pickles",
    "classify_global": "hfa.scan.denylist",
    "load_policy": "hfa.scan.policy",
    "says_pickle": "hfa.scan.sniff",
    "ScanReport": "hfa.scan.scanner",
    "Target": "hfa.scan.scanner",
    "iter_cache": "hfa.scan.scanner",
    "iter_folder": "hfa.scan.scanner",
    "iter_repo": "hfa.scan.scanner",
    "scan_file": "hfa.scan.scanner",
    "scan_targets": "hfa.scan.scanner",
}

__all__ = [
    "DEFAULT_ALLOWLIST",
    "Finding",
    "PickleReport",
    "ScanPolicy",
    "ScanReport",
    "Severity",
    "Target",
    "Work",
    "classify_global",
    "iter_cache",
    "iter_folder",
    "iter_repo",
    "load_policy",
    "looks_like_pickle",
    "probe_pickle",
    "says_pickle",
    "scan_file",
    "scan_pickle",
    "scan_pickles",
    "scan_serialized",
    "scan_targets",
]


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'hfa.scan' has no attribute {name!r}")
    value = getattr(__import__(home, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
