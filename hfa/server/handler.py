"""One request to ``hfa serve``, as the WSGI app (hfa.server.wsgi) hands it over: routing, ``--auth``,
and the answer it builds.

It routes the URL to the Hub API answers (hfa.server.api), the Inference API (hfa.server.infer_routes),
its jobs (hfa.server.job_routes) or a file download, and answers errors as huggingface_hub reads them.
Every route but the jobs' is read-only (jobs write only under the server's jobs folder); every
name that arrives in a URL is looked up in what the store lists, never joined onto a path, so nothing
outside the cache can be reached. ``repo_or_error`` is the one gate of ``--auth``: every route goes
through it. Connections, timeouts and the request head are the engine's (waitress) business.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from hfa import __version__
from hfa.server import api, downloads
from hfa.server.wire import HOST_RE, HttpError, header_safe, valid_repo_id

if TYPE_CHECKING:
    from hfa.server.auth import TokenRule
    from hfa.server.store import FileEntry, Repo, Snapshot
    from hfa.server.wsgi import HubApp

log = logging.getLogger("hfa.serve")

ACTIONS = {"revision", "tree", "paths-info", "refs", "commits", "resolve", "treesize"}
PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space"}
SERVER = f"hfa-serve/{__version__}"


class Headers:
    """The request headers of a WSGI environ, looked up case-insensitively (``get`` as a dict's)."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ

    def get(self, name: str, default: Any = None) -> Any:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = self._environ.get(key)
        return default if value is None or value == "" else value


class Request:
    """A request and the answer built for it: ``status``, ``out_headers``, ``body`` (bytes or an iterable)."""

    def __init__(self, environ: dict[str, Any], server: HubApp) -> None:
        self.environ = environ
        self.server = server
        self.command = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = raw_target(environ)
        self.headers = Headers(environ)
        self.status = 500
        self.out_headers: list[tuple[str, str]] = []
        self.body: Iterable[bytes] = [b""]

    def dispatch(self) -> None:
        """Answer the request: its route, or the error it raised."""
        head = self.command == "HEAD"
        self.server.record(self.command, self.path.partition("?")[0])
        try:
            if self.command in ("GET", "HEAD", "POST"):
                self.route(head)
            elif self.command in ("PUT", "DELETE", "PATCH"):
                raise HttpError(405, "This server is read-only")
            else:
                raise HttpError(501, f"Unsupported method ({self.command[:20]})")
        except HttpError as err:
            self.send_error(err, head)
        except Exception:  # pragma: no cover - a bug; answer 500 rather than drop the socket
            log.exception("internal error on %s", self.path.split("?")[0])
            self.send_error(HttpError(500, "Internal server error"), head)

    def send_error(self, err: HttpError, head: bool) -> None:
        """Answer ``err`` as the Hub does: JSON ``error``, ``X-Error-Code``, ``X-Error-Message``."""
        headers = [("X-Error-Code", err.code)] if err.code else []
        headers.append(("X-Error-Message", header_safe(err.message)))
        headers += list(err.headers.items())
        self.respond(
            err.status, headers, json.dumps({"error": err.message}).encode(), "application/json; charset=utf-8"
        )

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes, content_type: str) -> None:
        """Answer ``status`` with ``body`` (a HEAD gets the headers and Content-Length only)."""
        self.status = status
        self.out_headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
        self.body = [b""] if self.command == "HEAD" else [body]

    # -- what the routes (hfa.server.api, hfa.server.infer_routes) use --------------
    def send_json(self, doc: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        """Answer 200 with ``doc`` as JSON (a HEAD: the headers only)."""
        self.respond(200, list((headers or {}).items()), json.dumps(doc).encode(), "application/json; charset=utf-8")

    def token(self) -> str | None:
        """The bearer token of the request, if any."""
        value = self.headers.get("Authorization", "")
        if value.lower().startswith("bearer "):
            return value[7:].strip() or None
        return None

    def query(self) -> dict[str, list[str]]:
        """The query string, parsed (blank values kept)."""
        return parse_qs(self.path.partition("?")[2], keep_blank_values=True)

    def base_url(self) -> str:
        """``http://host:port`` as the client addressed this server."""
        host = self.headers.get("Host") or ""
        if not HOST_RE.fullmatch(host):  # absent, or not a plain host[:port] (it goes into headers)
            addr, port = self.environ.get("SERVER_NAME", "localhost"), self.environ.get("SERVER_PORT", "80")
            host = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
        return f"http://{host}"

    def read_body(self, length: int) -> bytes:
        """Read ``length`` bytes of request body (the engine has buffered it, within its bounds)."""
        data: bytes = self.environ["wsgi.input"].read(length) if length else b""
        return data

    def mark_body_read(self) -> None:
        """The request body has been read (the engine reads any rest itself before the next request)."""

    def repo_or_error(self, repo_type: str, repo_id: str, *, files: bool = False) -> tuple[Repo, TokenRule | None]:
        """The repo, if this request may see it (``files``: and read its files); HttpError as the Hub answers."""
        store = self.server.store
        policy = self.server.config.auth
        token = self.token()
        rule = policy.who(token)
        repo = store.repo(repo_type, repo_id) if valid_repo_id(repo_id) else None
        label = {"model": "Repository", "dataset": "Dataset", "space": "Space"}[repo_type]
        not_found = HttpError(
            401 if token is None else 404,
            f"{label} Not Found for url: {self.base_url()}{self.path.split('?')[0]}. Please make sure you"
            " specified the correct `repo_id` and `repo_type`. If you are trying to access a private or gated"
            " repo, make sure you are authenticated.",
            "RepoNotFound",
        )
        if repo is None:
            raise not_found
        if policy.is_private(repo_type, repo_id) and not policy.may_read(rule, repo_type, repo_id):
            raise not_found
        if files and policy.gated(repo_type, repo_id) and not policy.may_read(rule, repo_type, repo_id):
            raise HttpError(
                401 if token is None else 403,
                f"Access to model {repo_id} is restricted. You must have access to it and be authenticated"
                " to access it. Please log in.",
                "GatedRepo",
            )
        return repo, rule

    def snapshot_or_error(
        self, repo_type: str, repo_id: str, revision: str | None, *, files: bool = False
    ) -> tuple[Repo, Snapshot]:
        """The repo and its snapshot at ``revision`` (None: the default branch), as :meth:`repo_or_error` and
        :meth:`commit_or_error` answer them; with ``--upstream``, after the mirror recorded the upstream's
        answer (hfa.server.mirror). When the store has no answer, the mirror's reason (upstream down) wins."""
        fallback = self._mirror_ensure(repo_type, repo_id, revision)
        try:
            repo, _ = self.repo_or_error(repo_type, repo_id, files=files)
            return repo, self.commit_or_error(repo, revision)
        except HttpError:
            if fallback is not None:
                raise fallback from None
            raise

    def _may_mirror(self, repo_type: str, repo_id: str) -> bool:
        """With ``--upstream``: this request may have the mirror ask upstream for the repo (never on behalf
        of a client that may not read a private or gated repo)."""
        if self.server.mirror is None or not valid_repo_id(repo_id):
            return False
        policy = self.server.config.auth
        restricted = policy.is_private(repo_type, repo_id) or policy.gated(repo_type, repo_id)
        return not restricted or policy.may_read(policy.who(self.token()), repo_type, repo_id)

    def _mirror_ensure(self, repo_type: str, repo_id: str, revision: str | None) -> HttpError | None:
        if not self._may_mirror(repo_type, repo_id):
            return None
        result: HttpError | None = self.server.mirror.ensure(repo_type, repo_id, revision)
        return result

    def commit_or_error(self, repo: Repo, revision: str | None) -> Snapshot:
        """The snapshot of ``revision`` (None: the default branch); HttpError 404 RevisionNotFound."""
        store = self.server.store
        commit = store.default_commit(repo) if revision is None else store.resolve(repo, revision)
        snap = store.snapshot(repo, commit) if commit else None
        if snap is None:
            raise HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return snap

    # -- routing -----------------------------------------------------------------
    def route(self, head: bool) -> None:
        """Answer the request's route; HttpError for what cannot be answered."""
        raw_path = self.path.partition("?")[0]
        if "\\" in unquote(raw_path) or "\0" in unquote(raw_path):
            raise HttpError(400, "Invalid path")
        segs = raw_path.strip("/").split("/") if raw_path.strip("/") else []
        if not segs:
            if self.command in ("GET", "HEAD"):
                self.send_json({"hfa": __version__, "message": "hfa serve: a read-only Hub mirror"}, head=head)
            elif self.server.infer is not None:
                from hfa.server.infer_routes import handle_root

                handle_root(self)  # InferenceClient(base_url=URL) posts here
            else:
                raise HttpError(404, f"Not found: {self.command} / (inference needs hfa serve --infer)")
            return
        if segs[:3] == ["api", "hfa", "jobs"]:
            from hfa.server import job_routes

            job_routes.handle(self, segs)
            return
        if segs[0] == "api" and len(segs) >= 2 and segs[1] in PLURALS:
            repo_type = PLURALS[segs[1]]
            rest = segs[2:]
            if not rest:
                if self.command not in ("GET", "HEAD"):
                    raise HttpError(405, "Method not allowed")
                api.search(self, repo_type, head)
                return
            repo, action, args = self._split_repo(repo_type, rest)
            api.answer(self, repo_type, repo, action, args, head)
            return
        if self.server.infer is not None and segs[0] in ("models", "hf-inference"):
            from hfa.server.infer_routes import handle

            if handle(self, segs, head):
                return
        if segs == ["api", "tasks"] and self.command in ("GET", "HEAD"):
            api.tasks(self, head)
            return
        if segs[0] == "api" and len(segs) >= 2 and segs[1] == "whoami-v2":
            api.whoami(self, head)
            return
        # File routes: /{repo}/resolve/..., /datasets/{repo}/resolve/..., /spaces/{repo}/resolve/...
        repo_type = "model"
        rest = segs
        if segs[0] in ("datasets", "spaces"):
            repo_type = PLURALS[segs[0]]
            rest = segs[1:]
        repo, action, args = self._split_repo(repo_type, rest)
        if action == "resolve" and self.command in ("GET", "HEAD") and args:
            self._resolve(repo_type, repo, args, head)
            return
        raise HttpError(404, "Not found")

    def _split_repo(self, repo_type: str, rest: list[str]) -> tuple[str, str | None, list[str]]:
        """Split ``org/name/action/...`` or ``name/action/...``: the store knows which repos exist."""
        parts = [unquote(p) for p in rest[:2]]
        if len(rest) >= 2 and self.server.store.exists(repo_type, f"{parts[0]}/{parts[1]}"):
            n = 2
        elif self.server.store.exists(repo_type, parts[0]):
            n = 1
        elif len(rest) >= 2 and rest[1] not in ACTIONS:
            n = 2
        else:
            n = 1
        repo_id = "/".join(parts[:n])
        action = rest[n] if len(rest) > n else None
        return repo_id, action, rest[n + 1 :]

    # -- files -----------------------------------------------------------------------
    def _resolve(self, repo_type: str, repo_id: str, args: list[str], head: bool) -> None:
        path = unquote("/".join(args[1:]))
        fallback = self._mirror_fill(repo_type, repo_id, unquote(args[0]), path)
        try:
            repo, _ = self.repo_or_error(repo_type, repo_id, files=True)
            snap = self.commit_or_error(repo, unquote(args[0]))
            entry = snap.files.get(path)
            if entry is None:
                raise downloads.not_found(path, snap)
            if fallback is not None and not self.server.mirror.target.available(entry):
                raise fallback  # listed, not fetched, and the upstream cannot be reached
        except HttpError:
            if fallback is not None:  # the mirror could not reach its upstream: say so, not "not found"
                raise fallback from None
            raise
        self.send_file(repo, snap, entry, path, head)

    def _mirror_fill(self, repo_type: str, repo_id: str, revision: str, path: str) -> HttpError | None:
        """With ``--upstream``: hand a file the cache may lack to the mirror (hfa.server.mirror), if this
        request may read the repo. Returns the error to answer when the cache cannot serve it after all."""
        if not path or not self._may_mirror(repo_type, repo_id):
            return None
        result: HttpError | None = self.server.mirror.fill(repo_type, repo_id, revision, path)
        return result

    def send_file(self, repo: Repo, snap: Snapshot, entry: FileEntry, path: str, head: bool) -> None:
        """Answer with the file ``entry`` (at ``path`` in ``snap``), or the part of it ``Range`` asks for;
        or a redirect to where the store keeps it (``hfa serve --store ... --redirect``)."""
        store = self.server.store
        self.environ["hfa.file"] = path  # what a test-only middleware (hfa.server.faults) keys on
        location = store.blob_url(entry, path)
        if location is not None:
            self.status, self.body = 302, [b""]
            self.out_headers = downloads.redirect_headers(snap, entry, location)
            store.count_download(repo)  # the client fetches from the store: this answer is the download
            return
        start, end, status = downloads.byte_range(self.headers.get("Range"), entry.size)
        length = max(0, end - start + 1)
        body = store.open_file(self.environ, entry, path, snap, start, 0 if head else length)
        self.status = status
        self.out_headers = downloads.file_headers(snap, entry, path, start, end, status)
        self.body = body
        if not head and length and start == 0:
            store.count_download(repo)


def raw_target(environ: dict[str, Any]) -> str:
    """The request target as it came on the wire (path and query), still percent-encoded: the routes
    split it on ``/`` before decoding, so a revision sent as ``refs%2Fpr%2F1`` stays one segment."""
    target = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if not target:  # a WSGI server that keeps only the decoded path: encode it again
        from urllib.parse import quote

        path = environ.get("SCRIPT_NAME", "") + (environ.get("PATH_INFO", "") or "/")
        target = quote(path.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
    if target.startswith(("http://", "https://")):  # absolute-form: servers must accept it (RFC 9112 3.2.2)
        rest = target.split("://", 1)[1]
        target = "/" + rest.partition("/")[2] if "/" in rest else "/"
    return str(target)
