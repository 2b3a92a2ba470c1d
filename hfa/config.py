"""Settings from options and the environment (the same variables huggingface_hub reads).

Nothing here imports huggingface_hub: resolving settings must stay cheap so that
``hfa --help`` starts fast.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hfa.errors import LocalError, UsageError
from hfa.errors import public_url as public_url  # lives with the messages it guards (errors is the bottom layer)

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
    """``value`` as an endpoint base URL, or a usage error that never shows its ``user:password@``."""
    value = value.strip().rstrip("/")
    shown = public_url(value)
    fix = "give a URL such as https://huggingface.co or http://127.0.0.1:8080"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError as exc:
        raise UsageError(f"Invalid endpoint '{shown}': {exc}", fix) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"Invalid endpoint '{shown}'", fix)
    if parts.query or parts.fragment:
        raise UsageError(f"Invalid endpoint '{shown}': no query or fragment allowed", "give the base URL only")
    return value


def url_credentials(url: str) -> str | None:
    """The ``user:password@`` part of ``url``, or None: what output must never show (see Output.add_secret)."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    return netloc.rpartition("@")[0] + "@" if "@" in netloc else None


# Size limits for the files a user names (docs/security.md, "Threats"): far above any real
# one, far below what would exhaust memory.
LOCK_FILE_LIMIT = 64 * 1024 * 1024
CONFIG_FILE_LIMIT = 1024 * 1024
TOKEN_FILE_LIMIT = 64 * 1024


class TomlError(ValueError):
    """Text that is not valid TOML: tomllib's message (it names the position) and, when tomllib
    gives one, the ``lineno``."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


def toml_loads(text: str) -> dict[str, Any]:
    """Parse a TOML document: the standard library's tomllib (tomli before Python 3.11), the one
    place hfa picks it. Imported on first use (it costs ~10 ms of start-up); raises :class:`TomlError`
    (a ValueError), or RecursionError on absurdly deep nesting."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        lineno = getattr(exc, "lineno", None)
        if lineno is None:  # tomllib names the line only in its message before Python 3.14
            import re

            found = re.search(r"at line (\d+)", str(exc))
            lineno = int(found.group(1)) if found else None
        raise TomlError(str(exc), lineno) from None


def read_small_file(path: Path, limit: int, what: str, option: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; anything else is a clear error.

    Refuses devices, FIFOs and folders (``/dev/zero`` would never end) without blocking on
    them, and files over ``limit``. ``what`` names the file in the message ("lock file");
    ``option`` is the flag that points at it. A missing file raises FileNotFoundError for the
    caller to answer in its own words.
    """
    where = f" (check {option})" if option else ""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise UsageError(f"The {what} {path} is a folder, not a file", f"give the path of a file{where}") from None
    except PermissionError:
        raise LocalError(
            f"Permission denied reading the {what} {path}", f"check that you may read {path}{where}"
        ) from None
    except OSError as exc:
        raise LocalError(f"Cannot read the {what} {path}: {exc.strerror}", f"check the path{where}") from None
    # Judge the descriptor before wrapping it: Python's file object refuses a folder itself
    # (IsADirectoryError, which no caller expects), and the descriptor must not leak.
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"The {what} {path} is a folder, not a file", f"give the path of a file{where}")
        raise UsageError(f"The {what} {path} is not a regular file", f"give the path of a file{where}")
    with os.fdopen(fd, "rb") as fp:
        if st.st_size > limit:
            raise UsageError(
                f"The {what} {path} is larger than {limit // 1024} KiB ({st.st_size} bytes)",
                f"a {what} is never this large: check the path{where}",
            )
        try:
            data = fp.read(limit + 1)
        except OSError as exc:
            raise LocalError(f"Cannot read the {what} {path}: {exc.strerror}", f"check the path{where}") from None
    if len(data) > limit:  # it grew while we read it
        raise UsageError(f"The {what} {path} is larger than {limit // 1024} KiB", f"check the path{where}")
    return data


def default_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def _token_from_store() -> str | None:
    """HF_TOKEN, else the file huggingface_hub's `hf auth login` writes."""
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env and env.strip():
        return env.strip()
    path = os.environ.get("HF_TOKEN_PATH") or str(hf_home() / "token")
    try:
        raw = read_small_file(Path(os.path.expanduser(path)), TOKEN_FILE_LIMIT, "token file", "HF_TOKEN_PATH")
    except FileNotFoundError:
        return None
    except LocalError:  # unreadable: as huggingface_hub does, go on without a token
        return None
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(
            f"The token file {path} is not UTF-8 text", "log in again with `hf auth login`, or set HF_TOKEN"
        ) from None
    return text or None


DEFAULT_API_TIMEOUT = 30.0  # seconds: a listing, a search page (HF_HUB_ETAG_TIMEOUT overrides)
DEFAULT_DOWNLOAD_TIMEOUT = 60.0  # seconds without a byte during a download (HF_HUB_DOWNLOAD_TIMEOUT)
DEFAULT_API_DEADLINE = 60.0  # seconds a listing or search answer may take in all (HFA_API_DEADLINE)
DEFAULT_MIN_SPEED = 1024  # bytes/s a download must keep up ... (HFA_MIN_SPEED; 0: no such rule)
DEFAULT_MIN_SPEED_TIME = 30.0  # ... over every this many seconds (HFA_MIN_SPEED_TIME)
DEFAULT_MAX_CONNECTIONS = 16  # connections to one host a pull opens at once (HFA_MAX_CONNECTIONS, --connections)
MOST_CONNECTIONS = 256  # ... at most: a thread and a socket each
DEFAULT_RANGED_THRESHOLD = 32 << 20  # files this big are fetched as parallel ranges (HFA_RANGED_THRESHOLD)
DEFAULT_RANGE_SIZE = 16 << 20  # ... of this many bytes each (HFA_RANGE_SIZE)
# ... over as many connections as it takes, at the first one's measured rate, to reach this many bytes/s together
# (HFA_RANGED_TARGET; 0: every connection at once). About what one core hashes (sha256 ~1.9 GB/s) and a fast disk
# writes (~0.75 GB/s here): a link where one connection reaches it gains nothing from more but their CPU.
DEFAULT_RANGED_TARGET = 1_000_000_000


MOST_SECONDS = 10**9  # ~31 years: a socket's timeout and a wait take at most ~9.2e9 s (more: OverflowError)
MOST_COUNT = 10**18  # bytes, bytes/s: beyond any file or link, and still a float's exact whole number


def _whole(raw: str, most: int) -> int | None:
    """``raw`` as a whole number from 0 to ``most``, or None (a sign, a decimal point, a non-ASCII digit, too
    many digits: never handed to int(), which refuses more than 4300 digits with a ValueError)."""
    if not raw.isascii() or not raw.isdigit() or len(raw.lstrip("0")) > len(str(most)):
        return None
    value = int(raw)
    return value if value <= most else None


def env_seconds(name: str, default: float) -> float:
    """Whole seconds from 1 to :data:`MOST_SECONDS` from the environment, else ``default``; refuses anything else.

    Whole numbers only: huggingface_hub reads the same variables with ``int()`` when it is imported.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = _whole(raw, MOST_SECONDS)
    if value is None or value < 1:
        raise UsageError(
            f"{name} must be a whole number of seconds from 1 to {MOST_SECONDS}, not '{raw[:40]}'",
            f"set {name}=60, or unset it",
        )
    return float(value)


def env_count(name: str, default: int) -> int:
    """A whole number from 0 to :data:`MOST_COUNT` from the environment, else ``default``; refuses anything else."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = _whole(raw, MOST_COUNT)
    if value is None:
        raise UsageError(
            f"{name} must be a whole number from 0 to {MOST_COUNT}, not '{raw[:40]}'",
            f"set {name}={default}, or unset it",
        )
    return value


def env_positive(name: str, default: int, most: int | None = None) -> int:
    """A whole number above 0 (and at most ``most``) from the environment, else ``default``; refuses anything else."""
    value = env_count(name, default)
    if most is not None and not 1 <= value <= most:
        raise UsageError(
            f"{name} must be a whole number from 1 to {most}, not '{value}'", f"set {name}={default}, or unset it"
        )
    if value == 0:
        raise UsageError(f"{name} must be a whole number above 0, not '0'", f"set {name}={default}, or unset it")
    return value


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
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    ranged_threshold: int = DEFAULT_RANGED_THRESHOLD
    range_size: int = DEFAULT_RANGE_SIZE
    ranged_target: int = DEFAULT_RANGED_TARGET

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
            **env_bounds(),
        )


def env_bounds() -> dict[str, Any]:
    """The :class:`Settings` every client of a Hub reads from the environment, checked: its timeouts, speed
    rules and connections. One list for ``hfa`` and for ``hfa serve --upstream`` (whose endpoint, token and
    cache are its own): a mirror that built its own copy once missed the ranged-download variables."""
    return {
        # huggingface_hub's names: its metadata requests (HEAD) and its downloads.
        "api_timeout": env_seconds("HF_HUB_ETAG_TIMEOUT", DEFAULT_API_TIMEOUT),
        "download_timeout": env_seconds("HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT),
        # hfa's own bounds on a whole answer (docs/pull.md, docs/security.md "Limits")
        "api_deadline": env_seconds("HFA_API_DEADLINE", DEFAULT_API_DEADLINE),
        "min_speed": env_count("HFA_MIN_SPEED", DEFAULT_MIN_SPEED),
        "min_speed_time": env_seconds("HFA_MIN_SPEED_TIME", DEFAULT_MIN_SPEED_TIME),
        # parallel ranged downloads of big files (docs/pull.md "Big files")
        "max_connections": env_positive("HFA_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, MOST_CONNECTIONS),
        "ranged_threshold": env_count("HFA_RANGED_THRESHOLD", DEFAULT_RANGED_THRESHOLD),
        "range_size": env_positive("HFA_RANGE_SIZE", DEFAULT_RANGE_SIZE),
        "ranged_target": env_count("HFA_RANGED_TARGET", DEFAULT_RANGED_TARGET),
    }


def read_token_file(path: Path, option: str) -> str:
    """The token in ``path`` (its first line, stripped), read as a bounded regular file; a usage error
    naming ``option`` if it cannot be read or holds no usable token. Never prints the token."""
    fix = f"write the token alone into {path} (chmod 600)"
    try:
        raw = read_small_file(path, TOKEN_FILE_LIMIT, "token file", option)
    except OSError as exc:
        raise UsageError(f"Cannot read {option} {path}: {exc.strerror or exc}", fix) from None
    lines = raw.decode("utf-8", "replace").strip().splitlines()
    token = lines[0].strip() if lines else ""
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise UsageError(f"{option} {path} holds no usable token", fix)
    return token
