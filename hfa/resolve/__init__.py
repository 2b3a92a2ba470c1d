"""From what a user names to what a pull fetches.

* :mod:`~hfa.resolve.refs`: ``RepoRef``, what a user names (``org/name@rev``, ``datasets/…``);
* :mod:`~hfa.resolve.files`: ``RemoteFile`` and ``Resolved``, a commit and its file list;
* :mod:`~hfa.resolve.card`: model-card front matter;
* :mod:`~hfa.resolve.kinds`: what a file is from its path (kinds, variants, quantizations);
* :mod:`~hfa.resolve.deps`: which other repositories a repository requires (an adapter's base), and why;
* :mod:`~hfa.resolve.selection`: which files a model needs, and why;
* :mod:`~hfa.resolve.resolver`: a commit and its files from the cache alone;
* :mod:`~hfa.resolve.source`: the ``Source`` a pull reads through (``CacheSource`` here,
  ``HubSource`` in :mod:`hfa.hub.source`).

Importing the package loads none of them: callers import from the module that owns a name.
"""

__all__ = ["card", "deps", "files", "kinds", "refs", "resolver", "selection", "source"]
