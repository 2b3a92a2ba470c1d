"""The measured one stream (HFA_RANGED_TARGET reached by the first connection: every range left asked for in
one request) against hostile servers, flaky networks and odd settings: the pull ends, never publishes a wrong
blob, and a rerun fetches only what is missing."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import corrupt_blobs, hfa
from hostile_ranges import HostileFront, send

from hfa.errors import ExitCode
from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo

BIG = "weights.safetensors"
SIZE = 20_000
CONTENT = random.Random(11).randbytes(SIZE)


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[HubServer]:
    root = tmp_path / "served"
    write_repo(root, "org/big", {BIG: CONTENT}, lfs={BIG: True})
    with HubServer(ServerConfig(cache_dir=root)) as srv:
        yield srv


def _pull(url: str, cache: Path, *args: str, **env: str):
    base = {
        "HFA_RANGED_THRESHOLD": "1",
        "HFA_RANGE_SIZE": "1000",
        "HFA_MAX_CONNECTIONS": "4",
        "HFA_MAX_RETRIES": "2",
        "HFA_RANGED_TARGET": "1",  # the first connection always reaches it: one stream
    }
    return hfa("pull", "org/big", "--endpoint", url, "--cache-dir", str(cache), "--json", *args, env={**base, **env})


def _ok(result, cache: Path) -> dict:
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (Path(doc["snapshot"]) / BIG).read_bytes() == CONTENT
    assert corrupt_blobs(cache) == []
    return doc


def _headers(h, first: int, last: int, **extra: str) -> dict[str, str]:
    return {
        "Content-Range": f"bytes {first}-{last}/{SIZE}",
        "Content-Length": str(last + 1 - first),
        "Accept-Ranges": "bytes",
        "ETag": h.etag,
        **extra,
    }


def test_a_server_that_cuts_every_answer_after_a_fixed_count_still_delivers(origin, tmp_path: Path) -> None:
    """Each answer breaks off after 400 bytes (less than a quarter of the one stream's long request, more than a
    quarter of a range): progress every try, as it is over ranges, so the pull completes."""

    def answer(h, first, last, data):
        end = min(last + 1, first + 400)
        send(h, 206, _headers(h, first, last), data[first:end], close=True)

    with HostileFront(origin.url, answer) as front:
        result = _pull(front.url, tmp_path / "c")
    doc = _ok(result, tmp_path / "c")
    assert doc["files"][0]["connections"] == 1
