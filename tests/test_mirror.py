"""``hfa serve --upstream``: a verified pull-through mirror, with ``hfa serve`` (and a faulty one) upstream."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import World
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

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
        with pytest.raises(LocalEntryNotFoundError):  # a 502 on the HEAD: the client has no copy to fall back on
            download(mirror, tmp_path / "c", "big.bin")
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
        with pytest.raises(LocalEntryNotFoundError):  # a 503: the client has no copy to fall back on
            download(mirror, tmp_path / "c", "big.bin")
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
        with pytest.raises(LocalEntryNotFoundError):  # not cached: a 503, not a misleading "not found"
            download(mirror, tmp_path / "c3", "model.safetensors")
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
            with pytest.raises(LocalEntryNotFoundError):
                hf_hub_download("org/evil", "model.bin", endpoint=mirror.url, cache_dir=tmp_path / "c", token=False)
            assert not list((tmp_path / "mirror").glob("models--org--evil/blobs/*"))
        with mirror_of(up, tmp_path / "m2", allow_unsafe=True) as mirror:
            hf_hub_download("org/evil", "model.bin", endpoint=mirror.url, cache_dir=tmp_path / "c2", token=False)
