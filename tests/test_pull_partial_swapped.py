"""A single-stream download's partial swapped between two tries (a shared cache's other user).

The first try drops a partial that is a link or a FIFO before it starts; a retry (after the body broke
off) opens the partial again, and must not read or write through whatever is there now: a link to a
file outside the cache is never written through, a FIFO is never waited on.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import build_world
from helpers import corrupt_blobs, hfa

import hfa.hub.requests as requests
from hfa.server import HubServer, ServerConfig
from hfa.server.faults import Fault, FaultPlan

FOLDER = "models--org--model"
BIG = "model.safetensors"


@pytest.mark.timeout(60)  # before the fix, the FIFO was read from forever
@pytest.mark.parametrize("swap", ["link", "fifo"])
def test_a_partial_swapped_during_the_retry_wait_is_never_read_or_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    world = build_world(tmp_path / "served")
    plan = FaultPlan([Fault("drop", path=BIG, after_bytes=1000, times=1)])
    cache = tmp_path / "cache"
    outside = tmp_path / "victim.txt"
    outside.write_bytes(b"V" * 500)
    wait = requests.RetryPolicy.wait
    swapped: list[Path] = []
    etag = hashlib.sha256(world.contents["org/model@v2"][BIG]).hexdigest()  # an LFS file: its sha256

    def swap_then_wait(self: requests.RetryPolicy, attempt: int, retry_after: float | None = None) -> float:
        partial = cache / FOLDER / "blobs" / f"{etag}.incomplete"
        if partial.is_file() and not swapped:
            partial.unlink()
            if swap == "link":
                partial.symlink_to(outside)
            else:
                os.mkfifo(partial)
            swapped.append(partial)
        return wait(self, attempt, retry_after)

    monkeypatch.setattr(requests.RetryPolicy, "wait", swap_then_wait)
    with HubServer(ServerConfig(cache_dir=world.cache_dir, faults=plan)) as srv:
        result = hfa(
            "pull", "org/model", "--endpoint", srv.url, "--cache-dir", str(cache), env={"HFA_MAX_RETRIES": "3"}
        )
    assert plan.hits and swapped
    assert outside.read_bytes() == b"V" * 500  # before: the retry hashed it as the prefix and wrote on past it
    assert result.exit_code == 0, result.stderr
    snap = cache / FOLDER / "snapshots" / world.commits["org/model@v2"]
    assert (snap / BIG).read_bytes() == world.contents["org/model@v2"][BIG]
    assert corrupt_blobs(cache) == []
    assert not list(cache.glob("*/blobs/*.incomplete"))
