"""``hfa serve --upstream``: a verified pull-through mirror, with ``hfa serve`` (and a faulty one) upstream."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import TOKEN, World
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hfa.server import HubServer, ServerConfig
from hfa.server.faults import Fault, FaultPlan


@pytest.fixture
def upstream(fresh_world: World) -> Iterator[HubServer]:
    with HubServer(ServerConfig(cache_dir=fresh_world.cache_dir, faults=FaultPlan())) as srv:
        yield srv


def mirror_of(upstream: HubServer, cache: Path, **kw: object) -> HubServer:
    return HubServer(ServerConfig(cache_dir=cache, upstream=upstream.url, **kw))  # type: ignore[arg-type]


def file_gets(srv: HubServer, name: str) -> int:
    return sum(1 for m, p in srv.requests if m == "GET" and "/resolve/" in p and p.endswith("/" + name))


def blobs(cache: Path) -> list[str]:
    folder = cache / "models--org--model" / "blobs"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".incomplete")) if folder.is_dir() else []


def head_status(mirror: HubServer, name: str, repo: str = "org/model") -> int:
    """The status the official client's HEAD (no retry) gets for ``name``: 200, or the error's."""
    try:
        get_hf_file_metadata(hf_hub_url(repo, name, endpoint=mirror.url), token=False)
    except HfHubHTTPError as exc:
        return int(exc.response.status_code)
    return 200


def download(mirror: HubServer, tmp: Path, name: str, **kw: object) -> Path:
    return Path(hf_hub_download("org/model", name, endpoint=mirror.url, cache_dir=tmp, token=False, **kw))  # type: ignore[arg-type]


def test_twenty_clients_one_upstream_fetch(upstream: HubServer, fresh_world: World, tmp_path: Path) -> None:
    want = fresh_world.contents["org/model@v2"]
    with mirror_of(upstream, tmp_path / "mirror", threads=24) as mirror:
        start = time.monotonic()
        names = ["big.bin", "config.json", "model.safetensors"]

        def client(i: int) -> None:
            for name in names:
                assert download(mirror, tmp_path / f"c{i}", name).read_bytes() == want[name]

        with ThreadPoolExecutor(20) as pool:
            list(pool.map(client, range(20)))
        assert time.monotonic() - start < 60
        for name in names:
            assert file_gets(upstream, name) == 1, name
        # the branch answer is kept for --ttl: one resolve of main upstream
        assert sum(1 for _, p in upstream.requests if p == "/api/models/org/model/revision/main") == 1


def test_tampered_upstream_refused_nothing_cached(
    upstream: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    assert upstream.config.faults is not None
    upstream.config.faults.faults.append(Fault("corrupt", path="big.bin", times=-1))
    with mirror_of(upstream, tmp_path / "mirror") as mirror:
        assert head_status(mirror, "big.bin") == 502  # hf_hub_download raises (after its retries)
        assert head_status(mirror, "big.bin") == 502  # a retry is answered from memory: no second fetch
        assert file_gets(upstream, "big.bin") == 1
        assert blobs(tmp_path / "mirror") == []
        assert not (tmp_path / "c" / "models--org--model" / "blobs").exists() or not list(
            (tmp_path / "c" / "models--org--model" / "blobs").iterdir()
        )


def test_upstream_dies_mid_stream_then_completes(
    upstream: HubServer, fresh_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    plan = upstream.config.faults
    assert plan is not None
    plan.faults.append(Fault("drop", path="big.bin", times=-1, after_bytes=100_000))
    with mirror_of(upstream, tmp_path / "mirror") as mirror:
        assert head_status(mirror, "big.bin") == 503  # the client retries, then falls back to its own cache
        assert blobs(tmp_path / "mirror") == []  # no partial blob published
        plan.faults.clear()  # the upstream is healthy again
        path = download(mirror, tmp_path / "c", "big.bin")
        assert path.read_bytes() == fresh_world.contents["org/model@v2"]["big.bin"]
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        assert blobs(tmp_path / "mirror") == [sha]


def test_upstream_down_cached_still_served(upstream: HubServer, fresh_world: World, tmp_path: Path) -> None:
    want = fresh_world.contents["org/model@v2"]
    mirror = mirror_of(upstream, tmp_path / "mirror", ttl=0.0).start()
    try:
        download(mirror, tmp_path / "warm", "config.json")
        upstream.stop()
        start = time.monotonic()
        assert download(mirror, tmp_path / "c1", "config.json").read_bytes() == want["config.json"]  # by branch
        commit = fresh_world.commits["org/model@v2"]
        assert download(mirror, tmp_path / "c2", "config.json", revision=commit).read_bytes() == want["config.json"]
        assert head_status(mirror, "model.safetensors") == 503  # not cached: not a misleading "not found"
        assert time.monotonic() - start < 30
    finally:
        mirror.stop()


def test_upstream_errors_are_hub_errors(upstream: HubServer, tmp_path: Path) -> None:
    with mirror_of(upstream, tmp_path / "mirror") as mirror:
        with pytest.raises(EntryNotFoundError):
            download(mirror, tmp_path / "c", "nope.txt")
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("org/absent", "x", endpoint=mirror.url, cache_dir=tmp_path / "c", token=False)


def test_unsafe_pickle_refused(fresh_world: World, tmp_path: Path) -> None:
    import pickle

    from hfa.testing import write_repo

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (eval, ("1",))

    write_repo(fresh_world.cache_dir, "org/evil", {"model.bin": pickle.dumps(Boom())})
    with HubServer(ServerConfig(cache_dir=fresh_world.cache_dir)) as up:
        with mirror_of(up, tmp_path / "mirror") as mirror:
            assert head_status(mirror, "model.bin", "org/evil") == 403  # not retried by the client
            with pytest.raises(LocalEntryNotFoundError):
                hf_hub_download("org/evil", "model.bin", endpoint=mirror.url, cache_dir=tmp_path / "c", token=False)
            assert not list((tmp_path / "mirror").glob("models--org--evil/blobs/*"))
        with mirror_of(up, tmp_path / "m2", allow_unsafe=True) as mirror:
            hf_hub_download("org/evil", "model.bin", endpoint=mirror.url, cache_dir=tmp_path / "c2", token=False)


def test_mirror_token_used_client_token_never_forwarded(fresh_world: World, tmp_path: Path) -> None:
    from hfa.server.auth import load_policy

    config = ServerConfig(cache_dir=fresh_world.cache_dir, auth=load_policy(fresh_world.auth_file))
    with HubServer(config) as up:
        # no mirror token: the client's is not sent upstream
        with mirror_of(up, tmp_path / "m1") as mirror, pytest.raises(RepositoryNotFoundError):
            hf_hub_download("org/private", "config.json", endpoint=mirror.url, cache_dir=tmp_path / "c", token=TOKEN)
        with mirror_of(up, tmp_path / "m2", upstream_token=TOKEN) as mirror:
            path = hf_hub_download(
                "org/private", "config.json", endpoint=mirror.url, cache_dir=tmp_path / "c", token=False
            )
            assert Path(path).read_bytes() == b'{"secret": true}'


def test_lock_limits_pull_through(upstream: HubServer, fresh_world: World, tmp_path: Path) -> None:
    from hfa.server.store import LockScope

    v1 = fresh_world.commits["org/model@v1"]
    entry = type("E", (), {})()  # what LockScope.from_lock reads of a lock
    entry.repo_type, entry.repo_id, entry.commit, entry.revision = "model", "org/model", v1, "v1.0"
    entry.files = [type("F", (), {"path": "config.json"})()]
    lock = type("L", (), {"repos": [entry]})()
    assert LockScope.from_lock(lock).commits
    with mirror_of(upstream, tmp_path / "mirror", lock=lock) as mirror:
        got = download(mirror, tmp_path / "c", "config.json", revision="v1.0")
        assert got.read_bytes() == fresh_world.contents["org/model@v1"]["config.json"]
        for name, rev in (("model.safetensors", "v1.0"), ("config.json", "main")):
            with pytest.raises((RevisionNotFoundError, EntryNotFoundError)):
                download(mirror, tmp_path / "c", name, revision=rev)
    assert file_gets(upstream, "model.safetensors") == 0
    assert sum(1 for _, p in upstream.requests if "/revision/main" in p) == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--upstream", "ftp://hub.example"], "Invalid endpoint"),
        (
            ["--upstream", "http://127.0.0.1:9", "--upstream-token-file", "absent.txt"],
            "Cannot read --upstream-token-file",
        ),
        (["--upstream-token-file", "tok.txt"], "--upstream-token-file needs --upstream"),
        (["--upstream", "http://127.0.0.1:9", "--upstream-token-file", "empty.txt"], "holds no usable token"),
        (["--upstream", "http://127.0.0.1:9", "--upstream-token-file", "/dev/zero"], "--upstream-token-file"),
    ],
)
def test_cli_upstream_bad_input(args: list[str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hfa.cli.app import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tok.txt").write_text("hf_secret_x\n")
    (tmp_path / "empty.txt").write_text("\n")
    result = CliRunner().invoke(app, ["serve", "--port", "0", "--cache-dir", str(tmp_path / "m"), *args])
    assert result.exit_code == 2, result.output
    assert said in result.stderr
    assert "hf_secret_x" not in result.output


def test_wsgi_factory_reads_upstream_from_env(tmp_path: Path) -> None:
    from hfa.server.wsgi import config_from_env

    (tmp_path / "tok").write_text("hf_mirror_token\n")
    env = {
        "HFA_SERVE_CACHE": str(tmp_path),
        "HFA_SERVE_UPSTREAM": "http://127.0.0.1:9/",
        "HFA_SERVE_UPSTREAM_TOKEN_FILE": str(tmp_path / "tok"),
    }
    config = config_from_env(env)
    assert (config.upstream, config.upstream_token) == ("http://127.0.0.1:9", "hf_mirror_token")
    assert "hf_mirror_token" not in repr(config)


def tree_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_snapshot_download_through_fresh_mirror_then_offline(
    upstream: HubServer, fresh_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API routes pull through: a fresh mirror lists the whole repo; with the upstream gone, the
    answers it recorded (ref, the commit's file list) and the files it fetched are still served."""
    from huggingface_hub import snapshot_download

    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    want = fresh_world.contents["org/model@v2"]
    commit = fresh_world.commits["org/model@v2"]
    mirror = mirror_of(upstream, tmp_path / "mirror", ttl=0.0).start()
    try:
        got = Path(snapshot_download("org/model", endpoint=mirror.url, cache_dir=tmp_path / "c1", token=False))
        assert got.name == commit
        assert tree_of(got) == want  # every file, byte for byte (the mirror verified each by its hash)
        for name in want:
            assert file_gets(upstream, name) == 1
        upstream.stop()
        again = Path(snapshot_download("org/model", endpoint=mirror.url, cache_dir=tmp_path / "c2", token=False))
        assert tree_of(again) == want
        pinned = snapshot_download(
            "org/model", revision=commit, endpoint=mirror.url, cache_dir=tmp_path / "c3", token=False
        )
        assert tree_of(Path(pinned)) == want
    finally:
        mirror.stop()


def test_api_routes_pull_through_and_errors(upstream: HubServer, fresh_world: World, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    v1 = fresh_world.commits["org/model@v1"]
    with mirror_of(upstream, tmp_path / "mirror") as mirror:
        api = HfApi(endpoint=mirror.url, token=False)
        info = api.model_info("org/model", revision="v1.0", files_metadata=True)
        assert info.sha == v1
        assert sorted(s.rfilename for s in info.siblings or []) == sorted(fresh_world.contents["org/model@v1"])
        files = sorted(api.list_repo_files("org/model"))
        assert files == sorted(fresh_world.contents["org/model@v2"])
        [entry] = api.get_paths_info("org/model", ["big.bin"], revision=v1)
        assert entry.size == len(fresh_world.contents["org/model@v1"]["big.bin"])
        assert blobs(tmp_path / "mirror") == []  # answers only: no file was fetched
        with pytest.raises(RepositoryNotFoundError):
            api.model_info("org/absent")
        with pytest.raises(RevisionNotFoundError):
            api.model_info("org/model", revision="no-such-branch")
        # a commit's answer is kept for good: asked upstream once
        api.model_info("org/model", revision=v1)
        api.list_repo_files("org/model", revision=v1)
    assert sum(1 for _, p in upstream.requests if p == f"/api/models/org/model/revision/{v1}") <= 1


def test_lock_limits_api_pull_through(upstream: HubServer, fresh_world: World, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    v1 = fresh_world.commits["org/model@v1"]
    entry = type("E", (), {})()
    entry.repo_type, entry.repo_id, entry.commit, entry.revision = "model", "org/model", v1, "v1.0"
    entry.files = [type("F", (), {"path": "config.json"})()]
    lock = type("L", (), {"repos": [entry]})()
    with mirror_of(upstream, tmp_path / "mirror", lock=lock) as mirror:
        api = HfApi(endpoint=mirror.url, token=False)
        assert api.list_repo_files("org/model", revision="v1.0") == ["config.json"]
        with pytest.raises((RevisionNotFoundError, RepositoryNotFoundError)):
            api.model_info("org/model", revision="main")
    assert sum(1 for _, p in upstream.requests if "/revision/main" in p) == 0
