"""The ``hfa`` console script: ``hfa --help`` (:func:`hfa.cli.plainhelp.root_help`), ``hfa scan``
(:func:`hfa.cli.scanning.scan_plain`), ``hfa pull`` (:func:`hfa.cli.pulling.pull_plain`) and
``hfa verify`` (:func:`hfa.cli.verifying.verify_plain`) with plain arguments run without the CLI
framework; everything else, and anything those paths decline, is :func:`hfa.cli.app.main`.

When the command is done, the process ends: :func:`main` freezes the garbage collector's objects
first (``gc.freeze``), so the interpreter's last collection at exit does not walk every object
the command's imports made (~10 ms of every run; what a command writes is flushed and closed
by then, nothing of it waits on that collection)."""

from __future__ import annotations

import gc
import sys


def main() -> None:
    try:
        run(sys.argv[1:])
    finally:
        gc.freeze()


def run(args: list[str]) -> None:
    if args == ["--help"] or args == ["-h"]:
        from hfa.cli.plainhelp import print_root_help

        if print_root_help():
            sys.exit(0)
    elif args[:1] == ["scan"]:
        from hfa.cli.scanning import scan_plain

        code = scan_plain(args[1:])
        if code is not None:
            sys.exit(code)
    elif args[:1] == ["pull"]:
        from hfa.cli.pulling import pull_plain

        code = pull_plain(args[1:])
        if code is not None:
            sys.exit(code)
    elif args[:1] == ["verify"]:
        from hfa.cli.verifying import verify_plain

        code = verify_plain(args[1:])
        if code is not None:
            sys.exit(code)
    from hfa.cli.app import main as full

    full()
