"""`hfa serve` never serves anything from outside its cache and never changes it.

Requests go out through http.client / raw sockets so the path reaches the server exactly
as written (no client-side normalisation of "..", "%2e%2e", "%2F" or backslashes).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import TOKEN, World, build_world
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError

from hfa.server import HubServer, ServerConfig
from hfa.server.auth import load_policy

REPO_DIR = "models--org--model"


@dataclass
class Leaky:
    world: World
    server: HubServer
    marker: bytes
    secret: Path
    host: str
    port: int


def _raw(
    leaky: Leaky | HubServer, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    if isinstance(leaky, Leaky):
        host, port = leaky.host, leaky.port
    else:
        host, port = _addr(leaky)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()


def _addr(server: HubServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def leaky(fresh_world: World, fresh_server: HubServer) -> Iterator[Leaky]:
    """A cache with links that lead out of it, and a secret file right next to it."""
    marker = b"TOP-SECRET-" + secrets.token_hex(8).encode()
    root = fresh_world.cache_dir.parent
    secret = root / "secret.txt"
    secret.write_bytes(marker + b"\n")
    (root / "outside").mkdir()
    (root / "outside" / "inner.txt").write_bytes(marker)
    snap = fresh_world.cache_dir / REPO_DIR / "snapshots" / fresh_world.commits["org/model@v2"]
    os.symlink(os.path.relpath(secret, snap), snap / "leak.txt")
    os.symlink(secret, snap / "abs-leak.txt")
    os.symlink(os.path.relpath(secret, snap / "sub"), snap / "sub" / "escape.json")
    os.symlink(root / "outside", snap / "linked-dir")
    # A blob-looking link: snapshot -> blobs/<sha256> -> the secret.
    fake = "ab" * 32
    blobs = fresh_world.cache_dir / REPO_DIR / "blobs"
    os.symlink(secret, blobs / fake)
    os.symlink(os.path.relpath(blobs / fake, snap), snap / "weights.safetensors")
    # A README that leads out: its front matter must not be served either.
    (root / "evil-readme.md").write_bytes(b"---\nlicense: " + marker + b"\n---\n")
    gated_snap = fresh_world.cache_dir / "models--org--gated" / "snapshots" / fresh_world.commits["org/gated"]
    (gated_snap / "README.md").unlink()
    os.symlink(root / "evil-readme.md", gated_snap / "README.md")
    # A whole repo folder that is a link to a directory outside the cache.
    outside_repo = root / "outside-repo"
    commit = "c" * 40
    (outside_repo / "snapshots" / commit).mkdir(parents=True)
    (outside_repo / "snapshots" / commit / "secret.txt").write_bytes(marker)
    (outside_repo / "refs").mkdir()
    (outside_repo / "refs" / "main").write_text(commit)
    os.symlink(outside_repo, fresh_world.cache_dir / "models--evil--repo")
    # A ref that is a link to the secret.
    os.symlink(secret, fresh_world.cache_dir / REPO_DIR / "refs" / "evil")
    host, port = _addr(fresh_server)
    yield Leaky(fresh_world, fresh_server, marker, secret, host, port)


LEAK_NAMES = {"leak.txt", "abs-leak.txt", "sub/escape.json", "linked-dir/inner.txt", "weights.safetensors"}


def test_links_out_of_the_cache_are_not_listed(leaky: Leaky) -> None:
    api = HfApi(endpoint=leaky.server.url, token=TOKEN)
    info = api.model_info("org/model", files_metadata=True)
    names = {s.rfilename for s in info.siblings or []}
    assert names == set(leaky.world.contents["org/model@v2"])
    assert not names & LEAK_NAMES
    tree = {e.path for e in api.list_repo_tree("org/model", recursive=True)}
    assert not tree & (LEAK_NAMES | {"linked-dir"})
    assert "config.json" in tree
    assert api.get_paths_info("org/model", [*sorted(LEAK_NAMES), "linked-dir"]) == []
    with pytest.raises(RemoteEntryNotFoundError):
        list(api.list_repo_tree("org/model", path_in_repo="linked-dir"))
    # The README that leads out is as good as missing.
    gated = api.model_info("org/gated")
    assert "README.md" not in {s.rfilename for s in gated.siblings or []}
    assert leaky.marker.decode() not in repr(gated.card_data) + repr(gated.tags)
    # The linked repo folder does not exist as far as the Hub API goes.
    assert "evil/repo" not in {m.id for m in api.list_models()}
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("evil/repo")
    refs = api.list_repo_refs("org/model")
    assert "evil" not in {b.name for b in refs.branches}


@pytest.mark.parametrize("name", sorted(LEAK_NAMES))
def test_links_out_of_the_cache_are_not_downloadable(leaky: Leaky, tmp_path: Path, name: str) -> None:
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/model", name, endpoint=leaky.server.url, cache_dir=tmp_path / "c", token=TOKEN)
    status, headers, body = _raw(leaky, "GET", f"/org/model/resolve/main/{quote(name)}")
    assert status == 404
    assert leaky.marker not in body
    assert all(leaky.marker.decode() not in v for _, v in headers)


def test_linked_repo_folder_is_not_served(leaky: Leaky, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("evil/repo", "secret.txt", endpoint=leaky.server.url, cache_dir=tmp_path / "c", token=TOKEN)
    status, _, body = _raw(leaky, "GET", "/evil/repo/resolve/main/secret.txt")
    assert status in (401, 404) and leaky.marker not in body


def _traversal_paths(secret: Path) -> list[str]:
    up = "../../../.."  # snapshots/<commit>/ -> the directory holding the cache
    enc = quote(up + "/secret.txt", safe="")
    dot = "%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt"
    absolute = str(secret)
    return [
        f"/org/model/resolve/main/{up}/secret.txt",
        f"/org/model/resolve/main/{dot}",
        f"/org/model/resolve/main/{dot.upper()}",
        f"/org/model/resolve/main/{enc}",
        "/org/model/resolve/main/..%5C..%5C..%5C..%5Csecret.txt",
        "/org/model/resolve/main/..\\..\\..\\..\\secret.txt",
        f"/org/model/resolve/main/{absolute}",
        f"/org/model/resolve/main/{quote(absolute, safe='')}",
        f"/org/model/resolve/main//{absolute}",
        "/org/model/resolve/main/%252e%252e/%252e%252e/%252e%252e/%252e%252e/secret.txt",
        "/org/model/resolve/main/sub/../../../../../secret.txt",
        "/org/model/resolve/main/config.json%00/../../../../../secret.txt",
        "/org/model/resolve/main/.%2e/.%2e/.%2e/.%2e/secret.txt",
        # revisions
        f"/org/model/resolve/{quote('../../../../', safe='')}/secret.txt",
        "/org/model/resolve/..%2F..%2Fsnapshots/secret.txt",
        "/org/model/resolve/%2e%2e/secret.txt",
        f"/org/model/resolve/{quote(absolute, safe='')}/x",
        "/org/model/resolve/..%5C..%5C..%5C/secret.txt",
        "/org/model/resolve/refs%2F..%2F..%2F..%2F..%2Fsecret.txt/x",
        # repo ids
        "/../../secret.txt/resolve/main/x",
        "/%2e%2e/%2e%2e/resolve/main/secret.txt",
        f"/{quote('../../../', safe='')}/resolve/main/secret.txt",
        "/org%2F..%2F..%2F..%2F/resolve/main/secret.txt",
        "/org/..%5C..%5C/resolve/main/secret.txt",
        f"/{quote(absolute, safe='')}/resolve/main/x",
        "/evil/repo/resolve/main/secret.txt",
        "/models--evil--repo/resolve/main/secret.txt",
        "/datasets/..%2F..%2F/resolve/main/secret.txt",
        f"/datasets/org/data/resolve/main/{enc}",
        # API routes
        f"/api/models/org/model/tree/main/{enc}",
        f"/api/models/org/model/tree/main/{quote('linked-dir', safe='')}",
        "/api/models/org/model/tree/main/..%2F..%2F..%2F..%2F",
        f"/api/models/org/model/tree/{quote('../../../..', safe='')}",
        f"/api/models/org/model/revision/{quote('../../refs/main', safe='')}",
        f"/api/models/{quote('../../..', safe='')}",
        f"/api/models/{quote(absolute, safe='')}",
        "/api/models/evil/repo",
        "/api/models/org/model/tree/main/linked-dir",
        f"http://127.0.0.1/org/model/resolve/main/{enc}",
    ]


def test_traversal_never_reaches_outside(leaky: Leaky) -> None:
    for path in _traversal_paths(leaky.secret):
        for method in ("GET", "HEAD"):
            status, headers, body = _raw(leaky, method, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert status in (400, 401, 403, 404), (method, path, status)
            assert leaky.marker not in body, path
            assert all(leaky.marker.decode() not in v for _, v in headers), path
    # paths-info with hostile paths in the form body
    form = "&".join(f"paths={quote(p, safe='')}" for p in ["../../../../secret.txt", str(leaky.secret), "linked-dir"])
    status, _, body = _raw(
        leaky,
        "POST",
        "/api/models/org/model/paths-info/main",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=form.encode(),
    )
    assert (status, body) == (200, b"[]")


def test_encoded_separators_inside_the_repo_still_work(leaky: Leaky) -> None:
    """The client may quote "/" in file paths; that must keep working (and only inside the repo)."""
    status, _, body = _raw(leaky, "GET", "/org/model/resolve/main/sub%2Fdir%2Fnotes.txt")
    assert (status, body) == (200, b"nested file\n")
    status, _, body = _raw(leaky, "GET", "/org%2Fmodel/resolve/main/config.json")
    assert status == 200 and body == leaky.world.contents["org/model@v2"]["config.json"]


def test_nul_and_backslash_are_refused(server: HubServer) -> None:
    for path in ("/org/model/resolve/main/config.json%00", "/org/model/resolve/main/sub%5Cdir%5Cnotes.txt"):
        status, _, body = _raw(server, "GET", path)
        assert status in (400, 404), path
        assert b"nested file" not in body


# =============================================================================================
# Read-only
# =============================================================================================


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, HubServer]]:
    """A world of its own for tests that try to change it (one server for the module: fast)."""
    world = build_world(tmp_path_factory.mktemp("scratch"))
    with HubServer(ServerConfig(cache_dir=world.cache_dir, auth=load_policy(world.auth_file))) as srv:
        yield world, srv


def _cache_state(cache: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(cache):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(cache))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
@pytest.mark.parametrize(
    "path",
    [
        "/org/model/resolve/main/config.json",
        "/org/model/resolve/main/new.txt",
        "/api/models/org/model",
        "/api/models/org/model/refs",
        "/api/models",
        "/api/repos/create",
        "/api/models/org/model/commit/main",
        "/api/models/org/model/preupload/main",
    ],
)
def test_write_methods_are_refused(scratch: tuple[World, HubServer], method: str, path: str) -> None:
    world, server = scratch
    before = _cache_state(world.cache_dir)
    status, _, body = _raw(server, method, path, headers={"Authorization": f"Bearer {TOKEN}"}, body=b'{"content": "x"}')
    assert status in (400, 401, 403, 404, 405, 501), (method, path, status)
    assert _cache_state(world.cache_dir) == before
    if status != 501:
        assert b'"error"' in body


def test_client_upload_is_refused(scratch: tuple[World, HubServer]) -> None:
    world, server = scratch
    before = _cache_state(world.cache_dir)
    api = HfApi(endpoint=server.url, token=TOKEN)
    attempts = [
        lambda: api.upload_file(path_or_fileobj=b"data", path_in_repo="new.txt", repo_id="org/model"),
        lambda: api.delete_file("config.json", repo_id="org/model"),
        lambda: api.create_repo("org/new-repo"),
        lambda: api.create_branch("org/model", branch="evil"),
    ]
    for attempt in attempts:
        with pytest.raises(HfHubHTTPError) as info:
            attempt()
        assert info.value.response.status_code in (400, 401, 403, 404, 405)
    assert _cache_state(world.cache_dir) == before


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/org/model/resolve/main/config.json"),
        ("POST", "/org/model/resolve/main/config.json"),
        ("GET", "/api/models/org/model"),
        ("DELETE", "/api/models/org/model"),
        ("POST", "/api/models"),
    ],
)
def test_unread_request_bodies_are_not_parsed_as_requests(server: HubServer, method: str, path: str) -> None:
    """A body the server does not read must not become the next request (request smuggling)."""
    smuggled = b"GET /org/private/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n\r\n"
    host, port = _addr(server)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
            + smuggled
            + f"GET /api/models/org/model/refs HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        raw = _read_all(sock)
    assert b'{"secret": true}' not in raw  # the private file, fetched without a token
    assert raw.count(b"HTTP/1.1 ") in (1, 2)  # the first request, and maybe the refs one; never 3


def test_chunked_body_to_paths_info_does_not_desync(server: HubServer) -> None:
    host, port = _addr(server)
    smuggled = b"GET /org/private/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n\r\n"
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/models/org/model/paths-info/main HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk
        )
        raw = _read_all(sock)
    assert b'{"secret": true}' not in raw
    assert raw.count(b"HTTP/1.1 ") == 1


def test_bad_content_length_on_paths_info(server: HubServer) -> None:
    host, port = _addr(server)
    for value in ("-5", "abc", "1e3"):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(
                b"POST /api/models/org/model/paths-info/main HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: " + value.encode() + b"\r\n\r\npaths=config.json"
            )
            start = time.monotonic()
            raw = _read_all(sock)
        assert time.monotonic() - start < 4, value  # answered, not waiting for a body forever
        assert raw.startswith(b"HTTP/1.1 400") or raw.startswith(b"HTTP/1.0 400"), (value, raw[:80])


# =============================================================================================
# Headers built from request input
# =============================================================================================


def _header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]


@pytest.mark.parametrize(
    "path",
    [
        "/org/model/resolve/main/x%0d%0aSet-Cookie:%20pwned=1",
        "/org/model/resolve/x%0d%0aSet-Cookie:%20pwned=1/config.json",
        "/api/models/org/model/revision/x%0d%0aSet-Cookie:%20pwned=1",
        "/api/models/org/model/tree/main/x%0aSet-Cookie:%20pwned=1",
        "/org/model/resolve/main/%E2%9C%93-missing.txt",
        "/org/model/resolve/%E2%9C%93/config.json",
    ],
)
def test_no_header_injection_from_the_url(server: HubServer, path: str) -> None:
    for method in ("GET", "HEAD"):
        status, headers, _ = _raw(server, method, path)
        assert status == 404, (method, path)
        names = {k.lower() for k, _ in headers}
        assert "set-cookie" not in names
        for _, value in headers:
            assert "\r" not in value and "\n" not in value


def test_no_header_folding_from_the_host_header(server: HubServer) -> None:
    host, port = _addr(server)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET /api/models HTTP/1.1\r\nHost: evil\r\n x\r\nConnection: close\r\n\r\n")
        raw = _read_all(sock)
    assert raw.startswith(b"HTTP/1.1 200")
    for line in _header_lines(raw):
        assert line and line[:1] not in (b" ", b"\t"), line
        assert b"\n" not in line and b"\r" not in line


# =============================================================================================
# Availability
# =============================================================================================


def test_idle_connections_do_not_block_others(server: HubServer, tmp_path: Path) -> None:
    host, port = _addr(server)
    idle = []
    try:
        for _ in range(20):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"GET /org/model/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\n")  # never finished
            idle.append(s)
        start = time.monotonic()
        path = hf_hub_download("org/model", "config.json", endpoint=server.url, cache_dir=tmp_path / "c", token=False)
        assert Path(path).exists()
        assert time.monotonic() - start < 5
    finally:
        for s in idle:
            s.close()


def test_garbage_requests_get_answers_not_crashes(server: HubServer) -> None:
    host, port = _addr(server)
    for payload in (
        b"\x00\x01\x02\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
        b"GET /api/models?limit=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /api/models?cursor=-5&limit=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(payload)
            raw = _read_all(sock)
        assert raw, payload[:30]  # an answer (HTTP/0.9-style, body only, for a line without a version)
        first = raw.split(b"\r\n", 1)[0]
        assert b" 500 " not in first and b"Internal" not in raw, payload[:30]
        if b"HTTP/1.1\r\n" in payload:
            assert first.startswith(b"HTTP/1") and first.split()[1] in (b"200", b"400", b"414", b"431", b"501"), first
    # and the server is still fine
    status, _, _ = _raw(server, "GET", "/api/models/org/model")
    assert status == 200


def test_absolute_form_request_targets_are_served_as_their_path(leaky: Leaky) -> None:
    """What a forwarding proxy may send on (RFC 9112 3.2.2); traversal in that form is refused above."""
    status, _, body = _raw(leaky, "GET", "http://any.host:1/org/model/resolve/main/config.json")
    assert status == 200 and body == leaky.world.contents["org/model@v2"]["config.json"]
    status, _, _ = _raw(leaky, "GET", "https://any.host/api/models/org/model")
    assert status == 200


# -- issue 12: bounded connections (hfa.server.conns) ------------------------------------------------


def _stall(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` clients that connect and send half a request head, then nothing."""
    out = []
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET /org/model/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n")
        out.append(s)
    return out


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_stalled_clients_are_closed_and_do_not_lock_others_out(world: World, tmp_path: Path) -> None:
    """100 stalled clients against a 50-connection cap: a real download completes; the stalled are closed."""
    config = ServerConfig(cache_dir=world.cache_dir, timeout=2.0, max_connections=50)
    with HubServer(config) as srv:
        host, port = _addr(srv)
        stalled = _stall(host, port, 100)
        try:
            start = time.monotonic()
            path = hf_hub_download("org/model", "config.json", endpoint=srv.url, cache_dir=tmp_path / "c", token=False)
            assert Path(path).read_bytes() == world.contents["org/model@v2"]["config.json"]
            assert time.monotonic() - start < 5
            assert srv.connections <= 50
            deadline = time.monotonic() + 6
            for s in stalled:  # each is closed by the server within its 2 s head timeout (plus slack)
                assert _closed_by_server(s, max(0.1, deadline - time.monotonic())), "a stalled client stayed open"
        finally:
            for s in stalled:
                s.close()
        deadline = time.monotonic() + 5
        while srv.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.connections == 0


def test_a_trickled_head_is_cut_at_the_deadline(world: World) -> None:
    """One byte every 0.2 s never completes a head: the deadline covers the whole head, not each read."""
    with HubServer(ServerConfig(cache_dir=world.cache_dir, timeout=1.0)) as srv:
        host, port = _addr(srv)
        with socket.create_connection((host, port), timeout=5) as s:
            start = time.monotonic()
            closed = False
            try:
                for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                    s.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.monotonic() - start > 4:
                        break
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            assert closed or _closed_by_server(s, 0.5)
            assert time.monotonic() - start < 3.5


def test_idle_keep_alive_connections_are_closed(world: World) -> None:
    with HubServer(ServerConfig(cache_dir=world.cache_dir, timeout=1.0)) as srv:
        host, port = _addr(srv)
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/api/models/org/model")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Connection") != "close"
        resp.read()
        start = time.monotonic()
        assert conn.sock is not None and _closed_by_server(conn.sock, 4)
        assert 0.5 < time.monotonic() - start < 3
        conn.close()


def test_a_client_that_stops_reading_is_dropped_and_busy_slots_answer_503(tmp_path: Path) -> None:
    """Every slot busy with a stalled download: a newcomer gets a quick 503, and the slot frees after the timeout."""
    from hfa.testing import write_repo

    cache = tmp_path / "cache"
    write_repo(cache, "org/big", {"big.bin": os.urandom(32 * 1024 * 1024)})
    with HubServer(ServerConfig(cache_dir=cache, timeout=1.0, max_connections=1)) as srv:
        host, port = _addr(srv)
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect((host, port))
        try:
            reader.sendall(b"GET /org/big/resolve/main/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            reader.recv(1024)  # the response has started; now never read again
            time.sleep(0.3)
            status, headers, _ = _raw(srv, "GET", "/api/models/org/big")
            assert status == 503 and ("Retry-After", "1") in headers
            deadline = time.monotonic() + 5
            while srv.connections and time.monotonic() < deadline:
                time.sleep(0.05)
            assert srv.connections == 0, "the stalled download still holds its slot"
            status, _, _ = _raw(srv, "GET", "/api/models/org/big")
            assert status == 200
        finally:
            reader.close()


def test_under_a_small_fd_limit_300_idle_clients_do_not_lock_others_out(world: World, tmp_path: Path) -> None:
    """The red-team case: `hfa serve` with 256 file descriptors, 300 idle connections, a client still served."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    argv = [sys.executable, "-m", "hfa", "serve", "--cache-dir", str(world.cache_dir), "--port", "0", "-q"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=limit)
    stalled: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        host, port = url.removeprefix("http://").rsplit(":", 1)
        for _ in range(300):
            with contextlib.suppress(OSError):  # an evicted one may be reset under us; that is the point
                stalled += _stall(host, int(port), 1)
        start = time.monotonic()
        path = hf_hub_download("org/model", "config.json", endpoint=url, cache_dir=tmp_path / "c", token=False)
        assert Path(path).read_bytes() == world.contents["org/model@v2"]["config.json"]
        assert time.monotonic() - start < 10
        assert proc.poll() is None
    finally:
        for s in stalled:
            s.close()
        proc.terminate()
        proc.wait(timeout=10)


# -- issue 12: a repo serves only its own blobs ------------------------------------------------------


def test_a_public_repo_link_to_a_private_blob_is_not_served(
    fresh_world: World, fresh_server: HubServer, tmp_path: Path
) -> None:
    cache = fresh_world.cache_dir
    private_blob = next((cache / "models--org--private" / "blobs").iterdir())
    snap = cache / REPO_DIR / "snapshots" / fresh_world.commits["org/model@v2"]
    os.symlink(os.path.relpath(private_blob, snap), snap / "stolen.json")
    secret = private_blob.read_bytes()
    # the private repo itself answers 401 without a token
    status, _, _ = _raw(fresh_server, "GET", "/org/private/resolve/main/config.json")
    assert status == 401
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/model", "stolen.json", endpoint=fresh_server.url, cache_dir=tmp_path / "c", token=False)
    status, _, body = _raw(fresh_server, "GET", "/org/model/resolve/main/stolen.json")
    assert status == 404 and secret not in body
    api = HfApi(endpoint=fresh_server.url, token=False)
    assert "stolen.json" not in {s.rfilename for s in api.model_info("org/model").siblings or []}
    # a linked blobs folder cannot widen what the repo owns either
    other = cache / "models--other--thing"
    blobs = other / "blobs"
    os.rename(blobs, other / "real-blobs")
    os.symlink(cache / "models--org--private" / "blobs", blobs)
    for f in (other / "snapshots").rglob("*"):
        if f.is_symlink():
            f.unlink()
            os.symlink(os.path.relpath(blobs / private_blob.name, f.parent), f)
    status, _, body = _raw(fresh_server, "GET", "/other/thing/resolve/main/x.gguf")
    assert status == 404 and secret not in body


@pytest.mark.parametrize("kind", ["link-outside", "link-to-other-repo", "fifo"])
def test_repo_metadata_is_read_only_from_its_own_regular_file(
    fresh_world: World, fresh_server: HubServer, tmp_path: Path, kind: str
) -> None:
    cache = fresh_world.cache_dir
    meta = cache / REPO_DIR / ".hfa.json"
    meta.unlink(missing_ok=True)
    planted = tmp_path / "planted.json"
    planted.write_text(json_doc := '{"likes": 4242, "tags": ["PLANTED-MARKER"]}')
    if kind == "link-outside":
        os.symlink(planted, meta)
    elif kind == "link-to-other-repo":
        (cache / "models--other--thing" / ".hfa.json").write_text(json_doc)
        os.symlink(cache / "models--other--thing" / ".hfa.json", meta)
    else:
        os.mkfifo(meta)
    start = time.monotonic()
    info = HfApi(endpoint=fresh_server.url, token=False).model_info("org/model")
    assert time.monotonic() - start < 5  # a FIFO must not hang the request
    assert info.likes != 4242 and "PLANTED-MARKER" not in (info.tags or [])


def test_snapshot_file_in_repo_rule(tmp_path: Path) -> None:
    """What the server serves is the cache walker's rule (hfa.cache.walk): its own blobs, or plain copies."""
    from hfa.cache import RepoDir, snapshot_file

    def snapshot_file_in_repo(real_cache: str, folder: str, commit: str, rel: str) -> str | None:
        repo_type, repo_id = "model", folder.split("--", 1)[1].replace("--", "/")
        entry = snapshot_file(RepoDir(Path(real_cache), repo_type, repo_id), commit, rel)
        return str(entry.real) if entry is not None and entry.real is not None else None

    root = tmp_path / "cache"
    repo = root / "models--a--b"
    (repo / "blobs").mkdir(parents=True)
    snap = repo / "snapshots" / ("1" * 40)
    (snap / "sub").mkdir(parents=True)
    (repo / "blobs" / ("a" * 64)).write_bytes(b"x")
    (root / "models--c--d" / "blobs").mkdir(parents=True)
    (root / "models--c--d" / "blobs" / ("b" * 64)).write_bytes(b"y")
    (tmp_path / "outside").write_bytes(b"z")
    os.symlink("../../../blobs/" + "a" * 64, snap / "sub" / "ok.bin")
    os.symlink("../../../models--c--d/blobs/" + "b" * 64, snap / "other-repo.bin")
    os.symlink(tmp_path / "outside", snap / "outside.bin")
    os.symlink("../../blobs", snap / "blobs-dir")
    (snap / "copied.txt").write_bytes(b"copy")
    real = os.path.realpath(root)
    assert snapshot_file_in_repo(real, "models--a--b", "1" * 40, "sub/ok.bin") == os.path.join(
        real, "models--a--b", "blobs", "a" * 64
    )
    assert snapshot_file_in_repo(real, "models--a--b", "1" * 40, "copied.txt") == str(snap / "copied.txt").replace(
        str(root), real
    )
    for rel in ("other-repo.bin", "outside.bin", "blobs-dir", "missing.bin", "sub"):
        assert snapshot_file_in_repo(real, "models--a--b", "1" * 40, rel) is None, rel
