"""The one error tree of hfa and the one table that maps it to exit codes.

Core modules raise subclasses of :class:`HfaError`; only the CLI layer turns them
into ``Error: <what> — <how to fix>`` on stderr (and, with ``--json``, the document of
:func:`error_document` on stdout) and an exit code. Exit codes are stable and documented
in docs/cli.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


def public_url(url: str) -> str:
    """``url`` without its ``user:password@`` part: the only form of a URL hfa puts in a message.

    Works on anything that looks like a URL, with or without a scheme, parseable or not
    (``u:pw@host``, ``ftp://u:pw@[::1``): what is refused as a URL is still printed.
    """
    import re

    return re.sub(r"^(\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/@?#]*@", r"\1", url)


def command_text(*words: str) -> str:
    """A command line to paste into a hint: each word quoted for a POSIX shell where it needs it."""
    import shlex

    return " ".join(shlex.quote(w) for w in words)


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # a check failed: hash mismatch, stale lock, unsafe file, missing files
    USAGE = 2  # bad command line or bad input file
    NOT_FOUND = 3  # repository, revision or file does not exist (or is private)
    ACCESS_DENIED = 4  # gated repository, missing or refused token
    NETWORK = 5  # the endpoint could not be reached or kept failing
    LOCAL = 6  # the local cache or file system refused (permissions, disk, corrupt layout)
    PENDING = 7  # a job is not finished: `hfa jobs wait --timeout` passed, or its results were asked too early
    INTERNAL = 70  # a bug in hfa
    INTERRUPTED = 130  # Ctrl-C
    STDOUT_CLOSED = 141  # stdout was closed early (`| head`): stop quietly, as coreutils do (128 + SIGPIPE)


class HfaError(Exception):
    """Root of every error hfa raises on purpose.

    ``message`` says what went wrong, ``hint`` how to fix it. ``exit_code`` comes
    from the class and is what the CLI exits with. ``details`` is what a program may
    want besides the message (JSON-ready values, e.g. the list of missing files); it goes
    into the ``--json`` error document.
    """

    exit_code: ExitCode = ExitCode.CHECK_FAILED

    def __init__(self, message: str, hint: str | None = None, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message

    def to_json(self) -> dict[str, Any]:
        return error_document(self.exit_code, self.message, self.hint, self.details)


class CheckFailed(HfaError):
    exit_code = ExitCode.CHECK_FAILED


class UsageError(HfaError):
    exit_code = ExitCode.USAGE


class NotFound(HfaError):
    exit_code = ExitCode.NOT_FOUND


class RepoNotFound(NotFound):
    """Not there, or private to this token: the Hub does not say which. ``token_sent`` (None:
    unknown) picks the hint: with a token, the next step is that token's access, not a token."""

    def __init__(self, repo_id: str, repo_type: str = "model", token_sent: bool | None = None) -> None:
        hint = (
            "check the spelling; if it is private, check that the token given (--token / HF_TOKEN) may read it"
            if token_sent
            else "check the spelling; if it is private, pass a token with --token or HF_TOKEN"
        )
        super().__init__(
            f"{repo_type.capitalize()} '{repo_id}' not found",
            hint,
            details={"repo_id": repo_id, "repo_type": repo_type},
        )
        self.repo_id = repo_id
        self.repo_type = repo_type


class RevisionNotFound(NotFound):
    def __init__(self, repo_id: str, revision: str, *, message: str | None = None, hint: str | None = None) -> None:
        super().__init__(
            message or f"Revision '{revision}' not found in '{repo_id}'",
            hint or "use a branch, a tag or a full 40-character commit that exists (see `hfa info`)",
            details={"repo_id": repo_id, "revision": revision},
        )
        self.repo_id = repo_id
        self.revision = revision


class EntryNotFound(NotFound):
    def __init__(self, repo_id: str, path: str, revision: str | None = None) -> None:
        at = f" at '{revision}'" if revision else ""
        super().__init__(
            f"File '{path}' not found in '{repo_id}'{at}",
            "check the path with `hfa info`",
            details={"repo_id": repo_id, "path": path, "revision": revision},
        )
        self.repo_id = repo_id
        self.path = path


class AccessDenied(HfaError):
    exit_code = ExitCode.ACCESS_DENIED


class GatedRepo(AccessDenied):
    """A gated repo: ``token_sent`` tells "no token" (None: unknown) from "this token was refused"."""

    def __init__(self, repo_id: str, url: str | None = None, token_sent: bool | None = None) -> None:
        where = f" at {public_url(url)}" if url else ""
        if token_sent is False:
            message = f"'{repo_id}' is gated: reading it needs a token, and none was given"
            hint = f"accept the terms{where}, then pass your token with --token or HF_TOKEN"
        elif token_sent:
            message = f"'{repo_id}' is gated and the token given was refused"
            hint = f"check that --token / HF_TOKEN is the right token, and that its account accepted the terms{where}"
        else:
            message = f"'{repo_id}' is gated and this token may not read it"
            hint = f"accept the terms{where} and pass a token with --token or HF_TOKEN"
        super().__init__(message, hint, details={"repo_id": repo_id})
        self.repo_id = repo_id
        self.token_sent = token_sent


class LockMismatch(CheckFailed):
    """The server's hash of a locked file is not the lock's: the lock is wrong, or upstream rewrote history."""

    def __init__(self, repo: str, path: str, locked: str, served: str) -> None:
        super().__init__(
            f"The lock and the server disagree about '{path}' of '{repo}': the lock says {locked},"
            f" the server {served}; '{path}' was not written (files verified before it stay in the cache)",
            "compare the lock with upstream: `hfa pin --check`",
        )
        self.repo = repo
        self.path = path
        self.locked = locked
        self.served = served


class NetworkError(HfaError):
    exit_code = ExitCode.NETWORK


class OfflineError(NetworkError):
    """A network request was needed while offline mode is on."""


class LocalError(HfaError):
    exit_code = ExitCode.LOCAL


class Pending(HfaError):
    """A job is not finished (``hfa jobs wait`` timed out; results asked of a running job)."""

    exit_code = ExitCode.PENDING


@dataclass(frozen=True)
class ExitCodeDoc:
    code: ExitCode
    meaning: str


# The table docs/cli.md is generated from (tests check they agree).
EXIT_CODES: tuple[ExitCodeDoc, ...] = (
    ExitCodeDoc(ExitCode.OK, "success"),
    ExitCodeDoc(ExitCode.CHECK_FAILED, "a check failed: hash mismatch, stale lock, unsafe or missing file"),
    ExitCodeDoc(ExitCode.USAGE, "usage error: unknown option, bad argument, malformed input file"),
    ExitCodeDoc(ExitCode.NOT_FOUND, "repository, revision or file not found (private repos look missing)"),
    ExitCodeDoc(ExitCode.ACCESS_DENIED, "gated repository, or the token was refused"),
    ExitCodeDoc(ExitCode.NETWORK, "the endpoint could not be reached, kept failing, or offline mode forbids it"),
    ExitCodeDoc(ExitCode.LOCAL, "the local cache or file system refused (permissions, disk full, bad layout)"),
    ExitCodeDoc(
        ExitCode.PENDING,
        "a job is not finished yet: `hfa jobs wait --timeout` ran out, or `hfa jobs results` was asked too early",
    ),
    ExitCodeDoc(ExitCode.INTERNAL, "internal error: a bug in hfa (rerun with HFA_DEBUG=1 and report the traceback)"),
    ExitCodeDoc(ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
    ExitCodeDoc(
        ExitCode.STDOUT_CLOSED,
        "stdout was closed before hfa was done (e.g. by `head`): hfa stops quietly, as coreutils do",
    ),
)


def error_document(
    code: ExitCode, message: str, hint: str | None = None, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What ``--json`` prints on stdout for a failure: ``{"error": {code, exit_code, message, hint, details}}``.

    ``code`` is the exit code's name in lower case (``not_found``), stable like the number.
    """
    return {
        "error": {
            "code": code.name.lower(),
            "exit_code": int(code),
            "message": message,
            "hint": hint,
            "details": dict(details or {}),
        }
    }


def from_exception(exc: BaseException) -> HfaError | None:
    """Translate a huggingface_hub, network (see :mod:`hfa.hub.classify`) or OS exception into an HfaError, or None.

    This is the one place where foreign exceptions are given a meaning.
    """
    if isinstance(exc, HfaError):
        return exc
    # Imported lazily: huggingface_hub is heavy and this runs only on failure.
    try:
        from huggingface_hub import errors as hf_errors
    except ImportError:  # pragma: no cover
        hf_errors = None  # type: ignore[assignment]
    if hf_errors is not None:
        repo_id = getattr(exc, "repo_id", None) or "?"
        if isinstance(exc, hf_errors.GatedRepoError):
            return GatedRepo(repo_id)
        if isinstance(exc, hf_errors.RepositoryNotFoundError):
            return RepoNotFound(repo_id, getattr(exc, "repo_type", None) or "model")
        if isinstance(exc, hf_errors.RevisionNotFoundError):
            return RevisionNotFound(repo_id, getattr(exc, "revision", None) or "?")
        if isinstance(exc, hf_errors.RemoteEntryNotFoundError):
            return EntryNotFound(repo_id, getattr(exc, "filename", None) or "?")
        if isinstance(exc, hf_errors.OfflineModeIsEnabled):
            return OfflineError("Offline mode is on and this needs the network", "drop --offline / HF_HUB_OFFLINE=1")
        if isinstance(exc, hf_errors.BadRequestError):
            return UsageError(f"The endpoint refused the request: {_first_line(exc)}", "check the arguments")
        if isinstance(exc, hf_errors.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            if status in (401, 403):
                return AccessDenied(f"The endpoint refused access (HTTP {status})", "check --token / HF_TOKEN")
            return NetworkError(
                f"The endpoint answered HTTP {status}: {_first_line(exc)}",
                "retry later, or check --endpoint / HF_ENDPOINT",
            )
    from hfa.hub.classify import network_failure  # the one classifier of network failures

    network = network_failure(exc)
    if network is not None:
        return NetworkError(*network)
    if isinstance(exc, PermissionError):
        if exc.filename is None:
            return LocalError(f"Permission denied: {exc}", "check the permissions of the cache dir (--cache-dir)")
        return LocalError(
            f"Permission denied: {exc.filename}", "check that you may read and write that path and its folder"
        )
    if isinstance(exc, OSError) and exc.errno == 28:
        return LocalError("No space left on device", "free some space or point --cache-dir elsewhere")
    if isinstance(exc, OSError) and exc.filename is not None:
        return LocalError(
            f"{exc.strerror or type(exc).__name__}: {exc.filename}",
            "check that path in the cache dir (--cache-dir / HF_HUB_CACHE): it is not what hfa expects",
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
