"""``hfa serve --upstream``: clients of a big blob the mirror is fetching are streamed its bytes as they
arrive, one upstream download however many ask, and never the whole of bytes that fail verification."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, hf_hub_url

from hfa.server import HubServer, ServerConfig
from hfa.server.faults import Fault, FaultPlan
from hfa.testing import make_safetensors, write_repo

BIG = "weights.safetensors"
RATE = 4 << 20  # bytes per second the upstream sends the big file: its fetch takes about 3 s


@pytest.fixture
def big_upstream(tmp_path: Path) -> Iterator[tuple[HubServer, dict[str, bytes]]]:
    files = {
        BIG: make_safetensors({"w": ("F32", [3 << 20])}, seed=7),  # 12 MiB: over the mirror's STREAM_MIN
        "config.json": b'{"model_type": "bert"}',
    }
    write_repo(tmp_path / "up", "org/big", files)
    plan = FaultPlan([Fault("throttle", path=BIG, times=-1, rate=RATE)])
    with HubServer(ServerConfig(cache_dir=tmp_path / "up", faults=plan)) as srv:
        yield srv, files


def head_status(url: str) -> int:
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.errors import HfHubHTTPError

    try:
        get_hf_file_metadata(url, token=False)
    except HfHubHTTPError as exc:
        return int(exc.response.status_code)
    return 200


def gets(srv: HubServer, name: str) -> int:
    return sum(1 for m, p in srv.requests if m == "GET" and "/resolve/" in p and p.endswith("/" + name))


def mirror_blobs(cache: Path) -> list[str]:
    folder = cache / "models--org--big" / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_twenty_clients_streamed_while_fetched_once(
    big_upstream: tuple[HubServer, dict[str, bytes]], tmp_path: Path
) -> None:
    upstream, files = big_upstream
    sha = hashlib.sha256(files[BIG]).hexdigest()
    config = ServerConfig(cache_dir=tmp_path / "mirror", upstream=upstream.url, threads=32)
    with HubServer(config) as mirror:
        url = hf_hub_url("org/big", BIG, endpoint=mirror.url)

        def client(i: int) -> bytes:
            path = hf_hub_download("org/big", BIG, endpoint=mirror.url, cache_dir=tmp_path / f"c{i}", token=False)
            return Path(path).read_bytes()

        started = time.monotonic()
        with ThreadPoolExecutor(21) as pool:
            futures = [pool.submit(client, i) for i in range(20)]
            with urllib.request.urlopen(url, timeout=30) as answer:  # a plain client, watched closely
                first = answer.read(1 << 20)
                still_fetching = mirror.hub.mirror.running(sha) is not None
                rest = answer.read()
            results = [f.result(timeout=60) for f in futures]
        assert still_fetching  # its first MiB came while the mirror was still fetching the file
        assert first + rest == files[BIG]
        assert all(r == files[BIG] for r in results)
        assert gets(upstream, BIG) == 1  # one upstream download for 21 clients
        assert mirror_blobs(tmp_path / "mirror") == [sha]
        assert time.monotonic() - started < 60


def test_streamed_bytes_that_fail_verification_are_cut(
    big_upstream: tuple[HubServer, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    upstream, files = big_upstream
    assert upstream.config.faults is not None
    upstream.config.faults.faults[:] = [Fault("corrupt", path=BIG, times=-1, rate=RATE)]  # same size, one byte off
    size = len(files[BIG])
    with HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=upstream.url, threads=16)) as mirror:
        url = hf_hub_url("org/big", BIG, endpoint=mirror.url)
        got = b""
        with ThreadPoolExecutor(1) as pool:
            official = pool.submit(
                hf_hub_download, "org/big", BIG, endpoint=mirror.url, cache_dir=tmp_path / "c", token=False
            )
            with urllib.request.urlopen(url, timeout=30) as answer:
                assert answer.headers["Content-Length"] == str(size)
                try:
                    while chunk := answer.read(1 << 20):
                        got += chunk
                except http.client.IncompleteRead as exc:
                    got += exc.partial
            assert 0 < len(got) < size  # streamed while it came, then cut: never the whole of wrong bytes
            with pytest.raises(Exception):  # noqa: B017 - the official client fails too (cut, then a 502)
                official.result(timeout=60)
        assert head_status(url) == 502  # the refusal is remembered
        assert mirror_blobs(tmp_path / "mirror") == []  # nothing cached, not even a partial file
        client_blobs = tmp_path / "c" / "models--org--big" / "blobs"
        assert not client_blobs.exists() or all(p.name.endswith(".incomplete") for p in client_blobs.iterdir())
        assert gets(upstream, BIG) == 1  # the refusal is remembered: the client's retry fetched nothing


def test_a_big_file_fetched_as_ranges_streams_only_written_bytes(
    big_upstream: tuple[HubServer, dict[str, bytes]], tmp_path: Path
) -> None:
    """The mirror fetches a big miss as parallel ranges into a partial sized to the whole file: clients are
    streamed its written prefix as it grows, never the holes (zeros) between ranges still coming."""
    from dataclasses import replace

    from hfa.hub.source import HubSource

    upstream, files = big_upstream
    with HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=upstream.url, threads=16)) as mirror:
        m = mirror.hub.mirror
        m.settings = replace(m.settings, ranged_threshold=1 << 20, range_size=1 << 20, max_connections=4)
        m.source = HubSource(m.settings)
        url = hf_hub_url("org/big", BIG, endpoint=mirror.url)
        with urllib.request.urlopen(url, timeout=30) as answer:
            got = answer.read()
        assert got == files[BIG]
    ranged = [p for m_, p in upstream.requests if m_ == "GET" and p.endswith(BIG)]
    assert len(ranged) > 1  # it was fetched as ranges
    spans: dict[str, list[float]] = {}  # a connection is open at least from its first request to its last
    for when, peer in upstream.config.faults.started:
        spans.setdefault(peer, [when, when])[1] = when
    edges = sorted([(a, 0) for a, _ in spans.values()] + [(b, 1) for _, b in spans.values()])
    assert max(itertools.accumulate(1 if kind == 0 else -1 for _, kind in edges)) <= 4  # the bound held


def test_the_mirror_bounds_upstream_connections_across_all_its_fetches(tmp_path: Path) -> None:
    """Two big misses fetched at once share the mirror's one bound (HFA_MAX_CONNECTIONS), instead of
    each fetch opening its own 16."""
    from dataclasses import replace

    from hfa.hub.source import HubSource

    files = {
        name: make_safetensors({"w": ("F32", [1 << 20])}, seed=i)
        for i, name in enumerate(("a.safetensors", "b.safetensors"))
    }
    write_repo(tmp_path / "up", "org/big", files)
    plan = FaultPlan([Fault("throttle", path="*.safetensors", times=-1, rate=2 << 20)])
    with (
        HubServer(ServerConfig(cache_dir=tmp_path / "up", faults=plan)) as upstream,
        HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=upstream.url, threads=16)) as mirror,
    ):
        m = mirror.hub.mirror
        m.settings = replace(m.settings, ranged_threshold=1 << 20, range_size=1 << 18, max_connections=3)
        m.source = HubSource(m.settings)

        def get(name: str) -> bytes:
            with urllib.request.urlopen(hf_hub_url("org/big", name, endpoint=mirror.url), timeout=60) as answer:
                return answer.read()

        with ThreadPoolExecutor(2) as pool:
            got = dict(zip(files, pool.map(get, files), strict=True))
        assert got == files
        spans: dict[str, list[float]] = {}
        for when, peer in upstream.config.faults.started:
            spans.setdefault(peer, [when, when])[1] = when
    ranged = [p for m_, p in upstream.requests if m_ == "GET" and p.endswith(".safetensors")]
    assert len(ranged) > 4  # both were fetched as ranges
    edges = sorted([(a, 0) for a, _ in spans.values()] + [(b, 1) for _, b in spans.values()])
    assert max(itertools.accumulate(1 if kind == 0 else -1 for _, kind in edges)) <= 3  # one bound for both


def test_a_big_miss_fetched_as_one_measured_stream_streams_its_prefix(
    big_upstream: tuple[HubServer, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mirror's first range reaches HFA_RANGED_TARGET: the rest comes in one request filling many ranges,
    and clients are streamed the prefix as it grows (the hashing thread follows it across the ranges). The
    ranged settings come from the server's environment, as hfa pull's do (the mirror ignored them)."""
    for name, value in (("HFA_RANGED_THRESHOLD", 1 << 20), ("HFA_RANGE_SIZE", 1 << 20), ("HFA_RANGED_TARGET", 1)):
        monkeypatch.setenv(name, str(value))
    upstream, files = big_upstream
    sha = hashlib.sha256(files[BIG]).hexdigest()
    with HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=upstream.url, threads=16)) as mirror:
        m = mirror.hub.mirror
        url = hf_hub_url("org/big", BIG, endpoint=mirror.url)
        with ThreadPoolExecutor(3) as pool:
            others = [pool.submit(lambda: urllib.request.urlopen(url, timeout=30).read()) for _ in range(3)]
            with urllib.request.urlopen(url, timeout=30) as answer:
                first = answer.read(3 << 20)  # past the first range: from the one long request
                still_fetching = m.running(sha) is not None
                rest = answer.read()
            results = [f.result(timeout=30) for f in others]
    assert still_fetching
    assert first + rest == files[BIG]
    assert all(r == files[BIG] for r in results)
    assert gets(upstream, BIG) == 2  # the timed first range, then the rest in one request
    assert mirror_blobs(tmp_path / "mirror") == [sha]


def test_a_corrupt_byte_in_one_measured_stream_is_never_cached_nor_streamed_whole(
    big_upstream: tuple[HubServer, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One stream fills the big miss; a byte of its long request is off: the client streaming the prefix is cut
    before the end, the mirror caches nothing and answers 502 after."""
    for name, value in (("HFA_RANGED_THRESHOLD", 1 << 20), ("HFA_RANGE_SIZE", 1 << 20), ("HFA_RANGED_TARGET", 1)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    upstream, files = big_upstream
    assert upstream.config.faults is not None
    # the first answer (the timed range) is right; the second, the long one, has its first byte flipped
    upstream.config.faults.faults[:] = [
        Fault("throttle", path=BIG, times=1, rate=RATE),
        Fault("corrupt", path=BIG, times=-1, rate=RATE),
    ]
    size = len(files[BIG])
    with HubServer(ServerConfig(cache_dir=tmp_path / "mirror", upstream=upstream.url, threads=16)) as mirror:
        url = hf_hub_url("org/big", BIG, endpoint=mirror.url)
        got = b""
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.headers["Content-Length"] == str(size)
            try:
                while chunk := answer.read(1 << 20):
                    got += chunk
            except http.client.IncompleteRead as exc:
                got += exc.partial
        assert len(got) < size
        assert got[: 1 << 20] == files[BIG][: 1 << 20]  # the timed range, right
        assert head_status(url) == 502
        assert mirror_blobs(tmp_path / "mirror") == []
    assert gets(upstream, BIG) == 2  # the timed range, the long request: no more (MAX_RETRIES 0)
