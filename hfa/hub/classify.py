"""The one classifier of foreign failures: what is worth another try, and what a network failure means.

Used by the request loop (:mod:`hfa.hub.requests`), the downloader (:mod:`hfa.hub.download`)
and :func:`hfa.errors.from_exception` (the CLI's mapping), so the three never drift apart.
Classes are matched with ``isinstance`` against the modules that raise them (``ssl``,
``http.client``, ``socket``, ``httpx2``), never by name; a module that was never imported
raised nothing, so it is looked up in ``sys.modules`` and never imported here.

A leaf: it imports no hfa module (``hfa.errors`` builds its errors from what this returns).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["NET_ERRNOS", "error_reason", "first_line", "is_transient", "network_failure", "unreachable"]

NET_ERRNOS = frozenset({100, 101, 103, 104, 110, 111, 112, 113})  # ENETDOWN … EHOSTUNREACH (Linux)

_CHECK_ENDPOINT = "check --endpoint / HF_ENDPOINT and your network, or use --offline"


def _loaded(name: str) -> Any:
    return sys.modules.get(name)


def _is(exc: BaseException, module: str, *names: str) -> bool:
    mod = _loaded(module)
    return mod is not None and isinstance(exc, tuple(getattr(mod, n) for n in names if hasattr(mod, n)))


def _tls_refused(exc: BaseException) -> bool:
    """A certificate the client refused: retrying never helps."""
    return _is(exc, "ssl", "SSLCertVerificationError", "CertificateError")


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the connection failed, broke off or timed out.

    Not a refused TLS certificate, not a malformed URL, and never a local file error (a full
    disk is reported as such, not retried as a network fault).
    """
    if _tls_refused(exc) or _is(exc, "http.client", "InvalidURL"):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)) or _is(exc, "http.client", "HTTPException"):
        return True
    if _is(exc, "socket", "gaierror"):
        return True
    ssl = _loaded("ssl")
    if ssl is not None and (type(exc) is ssl.SSLError or isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError))):
        return True
    return isinstance(exc, OSError) and exc.errno in NET_ERRNOS and not exc.filename


def network_failure(exc: BaseException) -> tuple[str, str] | None:
    """(message, hint) of a :class:`~hfa.errors.NetworkError` for a foreign network failure, or None.

    TLS failures name the certificate fix; an answer ``http.client`` could not read names the
    endpoint; a connection that failed or timed out (also one of huggingface_hub's ``httpx2``)
    names the network.
    """
    name, first = type(exc).__name__, first_line(exc)
    if _is(exc, "ssl", "SSLError", "CertificateError"):
        return (
            f"TLS with the endpoint failed ({name}: {first})",
            "check the endpoint's certificate; for a private CA set SSL_CERT_FILE or SSL_CERT_DIR",
        )
    if _is(exc, "http.client", "HTTPException"):
        return (
            f"The endpoint's answer could not be read ({name}: {first})",
            "check --endpoint / HF_ENDPOINT, then retry",
        )
    if isinstance(exc, (ConnectionError, TimeoutError)) or _is(
        exc, "httpx2", "NetworkError", "TimeoutException", "RemoteProtocolError"
    ):
        return f"Could not reach the endpoint ({name}: {first})", _CHECK_ENDPOINT
    return None


def unreachable(exc: BaseException) -> tuple[str, str]:
    """(message, hint) for any failure to talk to the endpoint: :func:`network_failure`, else a plain one."""
    return network_failure(exc) or (
        f"Could not reach the endpoint ({type(exc).__name__}: {error_reason(exc)})",
        _CHECK_ENDPOINT,
    )


def first_line(exc: BaseException) -> str:
    """The first line of ``str(exc)``, else the exception's class name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def error_reason(exc: BaseException) -> str:
    """The first line of what ``exc`` says (its ``reason`` when it has one)."""
    text = str(getattr(exc, "reason", None) or exc).strip()
    return text.splitlines()[0] if text else "no detail"
