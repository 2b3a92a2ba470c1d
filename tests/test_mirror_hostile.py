"""``hfa serve --upstream`` against an upstream that answers slowly or never: the mirror keeps serving what
it holds, and requests for the same revision share one upstream call (and its failure)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo


@pytest.fixture
def silent_upstream() -> Iterator[tuple[str, list[socket.socket]]]:
    """An upstream that accepts connections and never answers (counts them)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    listener.close()


def _status(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0  # the client gave up


def test_a_silent_upstream_does_not_stop_the_mirror_serving_its_cache(  # type: ignore[no-untyped-def]
    silent_upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, accepted = silent_upstream
    monkeypatch.setenv("HFA_API_DEADLINE", "6")  # the mirror gives up on the upstream after 6 s
    monkeypatch.setenv("HFA_MAX_RETRIES", "0")
    cache = tmp_path / "mirror"
    write_repo(cache, "org/cached", {"config.json": "{}"})
    with HubServer(ServerConfig(cache_dir=cache, upstream=url, threads=4)) as mirror:
        # clients that give up after 1 s ask for 12 repos the mirror lacks (3 revisions each of 4 repos)
        asks = [f"{mirror.url}/api/models/org/m{i % 4}" for i in range(12)]
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda u: _status(u, 1), asks))
            # meanwhile what the cache holds is answered at once
            start = time.monotonic()
            assert _status(f"{mirror.url}/api/models?search=cached", 10) == 200
            assert _status(f"{mirror.url}/org/cached/resolve/main/config.json", 10) == 200
            assert time.monotonic() - start < 3
        # one upstream call per repo at a time, never one per waiting request
        assert len(accepted) <= 4
        # the one upstream call is bounded by HFA_API_DEADLINE: its error reaches the client
        start = time.monotonic()
        assert _status(f"{mirror.url}/api/models/org/m0", 30) == 503
        assert time.monotonic() - start < 15
