"""Jobs on a server: ``hfa infer --submit --endpoint-url URL`` and ``hfa jobs … --endpoint-url URL``
talk to the job routes of another machine's ``hfa serve --infer`` (hfa.server.job_routes, docs/serve.md).

The token goes only to that URL's origin (redirects are not followed); answers are bounded in size
and time; a server's error is a clear hfa error, never an internal one.
"""

from __future__ import annotations

import json
from typing import Any

from hfa.errors import AccessDenied, HfaError, NetworkError, NotFound, Pending, UsageError, public_url
from hfa.infer.jobs import check_job_id

__all__ = ["MAX_ANSWER", "RemoteJobs"]

MAX_ANSWER = 256 * 1024 * 1024


class RemoteJobs:
    """The :class:`hfa.infer.jobrun.JobBackend` of a server: submit, status, results, cancel over HTTP."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        from hfa.config import normalize_endpoint

        self.url = normalize_endpoint(url)
        self.token = token
        self.timeout = timeout

    def submit(self, doc: dict[str, Any]) -> dict[str, Any]:
        answer = self._request("POST", "/api/hfa/jobs", json.dumps(doc).encode("utf-8"))
        return _object(answer, "submit")

    def status(self, job_id: str) -> dict[str, Any]:
        return _object(self._request("GET", f"/api/hfa/jobs/{check_job_id(job_id)}"), "status")

    def results(self, job_id: str) -> list[dict[str, Any]]:
        body = self._request("GET", f"/api/hfa/jobs/{check_job_id(job_id)}/results")
        lines = []
        for raw in body.splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                raise NetworkError(f"{public_url(self.url)} sent a results line that is not JSON", "retry") from None
            if isinstance(line, dict):
                lines.append(line)
        return lines

    def cancel(self, job_id: str) -> dict[str, Any]:
        return _object(self._request("POST", f"/api/hfa/jobs/{check_job_id(job_id)}/cancel", b""), "cancel")

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        import httpx2

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        where = public_url(self.url)
        try:
            with (
                httpx2.Client(timeout=self.timeout, follow_redirects=False, trust_env=True) as client,
                client.stream(method, self.url + path, content=body, headers=headers) as response,
            ):
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER:
                        raise NetworkError(f"{where} sent more than {MAX_ANSWER >> 20} MiB", "check --endpoint-url")
                status = response.status_code
        except HfaError:
            raise
        except Exception as exc:
            from hfa.errors import from_exception

            known = from_exception(exc)
            if known is not None:
                raise known from None
            raise NetworkError(f"Cannot reach {where}: {type(exc).__name__}", "check --endpoint-url") from None
        if status < 300:
            return bytes(data)
        message = _error_message(bytes(data)) or f"HTTP {status}"
        if status == 409:
            raise Pending(message, "wait for it first: hfa jobs wait ID --endpoint-url …")
        if status in (401, 403):
            raise AccessDenied(
                f"{where} refused: {message}", "pass a token that may read the model (--token / HF_TOKEN)"
            )
        if status == 404:
            raise NotFound(f"{where}: {message}", "check the job id, and that the server runs hfa serve --infer")
        if status in (400, 413, 422):
            raise UsageError(f"{where} refused the job: {message}", "fix the request and submit again")
        raise NetworkError(f"{where} answered HTTP {status}: {message}", "retry later")


def _error_message(data: bytes) -> str | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    return str(error)[:500] if error else None


def _object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise NetworkError(
            f"The server's answer to {what} is not a job", "check --endpoint-url: is it hfa serve --infer?"
        )
    check_job_id(doc["id"])
    return doc
