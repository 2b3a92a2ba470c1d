"""The ``hfa`` console script: ``hfa --help`` (:func:`hfa.cli.plainhelp.root_help`) and ``hfa scan``
with plain arguments (:func:`hfa.cli.scanning.scan_plain`) run without the CLI framework;
everything else, and anything those paths decline, is :func:`hfa.cli.app.main`."""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args == ["--help"] or args == ["-h"]:
        from hfa.cli.plainhelp import print_root_help

        if print_root_help():
            sys.exit(0)
    elif args[:1] == ["scan"]:
        from hfa.cli.scanning import scan_plain

        code = scan_plain(args[1:])
        if code is not None:
            sys.exit(code)
    from hfa.cli.app import main as full

    full()
