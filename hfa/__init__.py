"""hfa: manage Hugging Face Hub assets the way uv manages packages.

The library's entry points are the workflow modules and the layer packages (docs/architecture.md):
``hfa.pull``, ``hfa.pin``, ``hfa.info``, ``hfa.verify``, ``hfa.bundle`` and ``hfa.cache``,
``hfa.hub``, ``hfa.resolve``, ``hfa.lock``, ``hfa.store``, ``hfa.scan``, ``hfa.server``,
``hfa.infer``. Importing ``hfa`` itself loads none of them (``hfa --version`` stays fast).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
