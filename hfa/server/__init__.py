"""``hfa serve``: a read-only, Hub-compatible HTTP server over a huggingface_hub cache."""

from hfa.server.http import HubServer, ServerConfig

__all__ = ["HubServer", "ServerConfig"]
