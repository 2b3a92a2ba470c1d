"""The ``hfa`` console script: ``hfa scan`` with plain arguments runs without the CLI framework
(:func:`hfa.cli.scanning.scan_plain`); everything else, and anything that path declines, is
:func:`hfa.cli.app.main`."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["scan"]:
        from hfa.cli.scanning import scan_plain

        code = scan_plain(sys.argv[2:])
        if code is not None:
            sys.exit(code)
    from hfa.cli.app import main as full

    full()
