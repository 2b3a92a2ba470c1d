"""Settings from options and the environment (the same variables huggingface_hub reads).

Nothing here imports huggingface_hub: resolving settings must stay cheap so that
``hfa --help`` starts fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hfa.errors import UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on", "y", "t"}


def env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hf_home() -> Path:
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(os.environ.get("HF_HOME", default))))


def default_cache_dir() -> Path:
    """The huggingface_hub cache: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return Path(os.path.expandvars(os.path.expanduser(value)))
    return hf_home() / "hub"


def normalize_endpoint(value: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"Invalid endpoint '{value}'",
            "give a URL such as https://huggingface.co or http://127.0.0.1:8080",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"Invalid endpoint '{value}': no query or fragment allowed", "give the base URL only")
    return value


def default_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def _token_from_store() -> str | None:
    """HF_TOKEN, else the file huggingface_hub's `hf auth login` writes."""
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env and env.strip():
        return env.strip()
    path = os.environ.get("HF_TOKEN_PATH") or str(hf_home() / "token")
    try:
        text = Path(os.path.expanduser(path)).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


DEFAULT_API_TIMEOUT = 30.0  # seconds: a listing, a search page (HF_HUB_ETAG_TIMEOUT overrides)
DEFAULT_DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte during a download (HF_HUB_DOWNLOAD_TIMEOUT)
DEFAULT_API_DEADLINE = 60.0  # seconds a listing or search answer may take in all (HFA_API_DEADLINE)
DEFAULT_MIN_SPEED = 1024  # bytes/s a download must keep up ... (HFA_MIN_SPEED; 0: no such rule)
DEFAULT_MIN_SPEED_TIME = 30.0  # ... over every this many seconds (HFA_MIN_SPEED_TIME)


def env_seconds(name: str, default: float) -> float:
    """Whole seconds above 0 from the environment, else ``default``; refuses anything else.

    Whole numbers only: huggingface_hub reads the same variables with ``int()`` when it is imported.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise UsageError(
            f"{name} must be a whole number of seconds above 0, not '{raw}'", f"set {name}=60, or unset it"
        )
    return float(int(raw))


def env_count(name: str, default: int) -> int:
    """A whole number of 0 or more from the environment, else ``default``; refuses anything else."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise UsageError(
            f"{name} must be a whole number of 0 or more, not '{raw}'", f"set {name}={default}, or unset it"
        )
    return int(raw)


def check_token(token: str | None) -> None:
    """Refuse a token no HTTP header can carry (a line break, a space, a control character), never echoing it.

    Called where a token is about to be sent, so commands that need no network still run with
    a broken token file around.
    """
    if token is not None and (not token.isascii() or not token.isprintable() or any(c.isspace() for c in token)):
        raise UsageError(
            "The token holds spaces, line breaks or other characters no token has",
            "check --token, HF_TOKEN or the token file (`hf auth login` writes it)",
        )


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where things are. Never printed whole."""

    cache_dir: Path
    endpoint: str
    offline: bool
    token: str | None = field(default=None, repr=False)
    api_timeout: float = DEFAULT_API_TIMEOUT
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT
    api_deadline: float = DEFAULT_API_DEADLINE
    min_speed: int = DEFAULT_MIN_SPEED
    min_speed_time: float = DEFAULT_MIN_SPEED_TIME

    @classmethod
    def resolve(
        cls,
        *,
        cache_dir: Path | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        offline: bool = False,
    ) -> Settings:
        token = token.strip() if token else None
        token = token or _token_from_store()
        return cls(
            cache_dir=Path(os.path.expanduser(str(cache_dir))) if cache_dir else default_cache_dir(),
            endpoint=normalize_endpoint(endpoint or default_endpoint()),
            offline=offline or env_true("HF_HUB_OFFLINE") or env_true("TRANSFORMERS_OFFLINE"),
            token=token,
            # huggingface_hub's names: its metadata requests (HEAD) and its downloads.
            api_timeout=env_seconds("HF_HUB_ETAG_TIMEOUT", DEFAULT_API_TIMEOUT),
            download_timeout=env_seconds("HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT),
            # hfa's own bounds on a whole answer (docs/pull.md, docs/security.md "Limits")
            api_deadline=env_seconds("HFA_API_DEADLINE", DEFAULT_API_DEADLINE),
            min_speed=env_count("HFA_MIN_SPEED", DEFAULT_MIN_SPEED),
            min_speed_time=env_seconds("HFA_MIN_SPEED_TIME", DEFAULT_MIN_SPEED_TIME),
        )
