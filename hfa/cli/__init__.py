"""The command-line layer: thin commands that parse, call the core, and hand results to Output.

* :mod:`hfa.cli.entry`   the ``hfa`` console script (:func:`main`): ``hfa --help``, ``hfa scan``,
  ``hfa pull`` and ``hfa verify`` with plain arguments without typer, everything else through the app;
* :mod:`hfa.cli.commands` the table of commands and their summaries, free of typer;
* :mod:`hfa.cli.plainhelp` ``hfa --help`` as typer's rich help writes it, without typer or rich;
* :mod:`hfa.cli.app`     the typer app: mounts each command's function from one table, lazily;
* :mod:`hfa.cli.options` the common options (``Annotated`` aliases), :class:`~hfa.cli.options.Ctx`,
  and the one error mapping (``guarded``), whose typer-free home is :mod:`hfa.cli.context`;
* :mod:`hfa.cli.typer_seam` the one place that touches typer's internals (start-up, help, usage errors);
* one module per command group (search, info, pin, pull, scan, bundle, serve, cache, infer), each
  command a module-level function; :mod:`hfa.cli.selection` the selection options of info/pin/pull
  (their values and checks in :mod:`hfa.cli.selecting`); :mod:`hfa.cli.scanning`,
  :mod:`hfa.cli.pulling` and :mod:`hfa.cli.verifying` the bodies of ``hfa scan``, ``hfa pull`` and
  ``hfa verify``, free of typer.
"""

from hfa.cli.entry import main

__all__ = ["main"]
