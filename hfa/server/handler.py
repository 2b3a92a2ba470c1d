"""The request handler of ``hfa serve``: one HTTP/1.1 request at a time on a kept-alive connection.

It bounds the request head and body in time (hfa.server.conns), routes the URL to the Hub API
answers (hfa.server.api), the Inference API (hfa.server.infer_routes) or a file download, and
answers errors as huggingface_hub reads them. Every route is read-only; every name that arrives
in a URL is looked up in what the store lists, never joined onto a path, so nothing outside the
cache can be reached. ``repo_or_error`` is the one gate of ``--auth``: every route goes through it.
"""

from __future__ import annotations

import io
import json
import logging
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from hfa import __version__
from hfa.server import api, downloads
from hfa.server.conns import DeadlineReader
from hfa.server.wire import HOST_RE, HttpError, has_body, header_safe, valid_repo_id

if TYPE_CHECKING:
    from hfa.server.auth import TokenRule
    from hfa.server.http import HubHTTPServer
    from hfa.server.store import FileEntry, Repo, Snapshot

log = logging.getLogger("hfa.serve")

ACTIONS = {"revision", "tree", "paths-info", "refs", "commits", "resolve", "treesize"}
PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm holds
    # the body back ~20 ms on a reused connection (measured in bench/bench_pull.py).
    disable_nagle_algorithm = True
    server_version = f"hfa-serve/{__version__}"
    server: HubHTTPServer
    _body_read = False

    # -- plumbing ----------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "")  # unset when the request line itself was malformed
        log.info('%s "%s %s" %s %s', self.client_address[0], self.command, path.split("?")[0], code, size)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain socket file: reads go through a deadline instead
        self._reader = DeadlineReader(self.connection, self.server.config.timeout)  # sets the socket's timeout
        self.rfile = io.BufferedReader(self._reader, 64 * 1024)

    def handle_one_request(self) -> None:
        # The whole request head must arrive within `timeout` of when we start waiting for it.
        self._reader.deadline = time.monotonic() + self._reader.timeout
        self.server.limiter.waiting(self.connection, True)
        super().handle_one_request()

    def parse_request(self) -> bool:
        self._body_read = False
        ok = super().parse_request()  # reads the headers
        self._reader.deadline = None
        self.server.limiter.waiting(self.connection, False)
        return ok

    def end_headers(self) -> None:
        # A request body left unread would be parsed as the next request on this connection
        # (request smuggling): answer, then close instead of keeping the connection alive.
        if not self._body_read and not self.close_connection and has_body(getattr(self, "headers", None)):
            self.send_header("Connection", "close")
        super().end_headers()

    def do_GET(self) -> None:
        self.dispatch(head=False)

    def do_HEAD(self) -> None:
        self.dispatch(head=True)

    def do_POST(self) -> None:
        self.dispatch(head=False)

    def _method_not_allowed(self) -> None:
        self._send_error(HttpError(405, "This server is read-only"), head=False)

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed

    def dispatch(self, head: bool) -> None:
        """Answer the request: its route, or the error it raised."""
        if self.path.startswith(("http://", "https://")):  # absolute-form: servers must accept it (RFC 9112 3.2.2)
            rest = self.path.split("://", 1)[1]
            self.path = "/" + rest.partition("/")[2] if "/" in rest else "/"
        self.server.record(self.command, self.path.partition("?")[0])
        try:
            self.route(head)
        except HttpError as err:
            self._send_error(err, head)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):  # the client stalled or left
            self.close_connection = True
        except Exception:  # pragma: no cover - a bug; answer 500 rather than drop the socket
            log.exception("internal error on %s", self.path.split("?")[0])
            self._send_error(HttpError(500, "Internal server error"), head)

    def _send_error(self, err: HttpError, head: bool) -> None:
        body = json.dumps({"error": err.message}).encode()
        self.send_response(err.status)
        if err.code:
            self.send_header("X-Error-Code", err.code)
        self.send_header("X-Error-Message", header_safe(err.message))
        for k, v in err.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", "0" if head else str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    # -- what the routes (hfa.server.api, hfa.server.infer_routes) use --------------
    def send_json(self, doc: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        """Answer 200 with ``doc`` as JSON (``head``: the headers only)."""
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

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
            addr, port = self.server.server_address[:2]
            addr = str(addr)
            host = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
        return f"http://{host}"

    def read_body(self, length: int) -> bytes:
        """Read ``length`` bytes of request body, within the timeout (per started MiB)."""
        self._reader.deadline = time.monotonic() + self._reader.timeout * (1 + length // (1 << 20))
        try:
            return self.rfile.read(length) if length else b""
        finally:
            self._reader.deadline = None

    def mark_body_read(self) -> None:
        """The request body has been read: the connection may be kept alive."""
        self._body_read = True

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
        repo, _ = self.repo_or_error(repo_type, repo_id, files=True)
        snap = self.commit_or_error(repo, unquote(args[0]))
        path = unquote("/".join(args[1:]))
        entry = snap.files.get(path)
        if entry is None:
            raise downloads.not_found(path, snap)
        self.send_file(repo, snap, entry, path, head)

    def send_file(self, repo: Repo, snap: Snapshot, entry: FileEntry, path: str, head: bool) -> None:
        """Answer with the file ``entry`` (at ``path`` in ``snap``), or the part of it ``Range`` asks for."""
        start, end, status = downloads.byte_range(self.headers.get("Range"), entry.size)
        length = max(0, end - start + 1)
        with downloads.open_blob(self.server.store, entry, path, snap) as fp:
            self.send_response(status)
            for key, value in downloads.file_headers(snap, entry, path, start, end, status):
                self.send_header(key, value)
            self.end_headers()
            if head or length == 0:
                return
            if start == 0:
                self.server.store.count_download(repo)
            self.wfile.flush()
            if self.send_body(fp, start, length) != length:
                self.close_connection = True

    def send_body(self, fp: io.BufferedReader, start: int, length: int) -> int:
        """Send ``length`` bytes of ``fp`` from ``start``; the number sent (fewer: the connection is closed)."""
        return downloads.send_body(self.connection, fp, start, length)
