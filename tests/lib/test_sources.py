"""The seams of a pull: the Source it reads through, the BlobStore it writes through, the one request loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfa.config import Settings
from hfa.errors import NetworkError, from_exception
from hfa.hub.classify import is_transient, network_failure
from hfa.hub.requests import RetryPolicy
from hfa.hub.source import HubSource
from hfa.pull import open_source, pull, pull_locked
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions
from hfa.resolve.source import CacheSource, MissingFiles
from hfa.store import BlobStore, LocalStore

MODEL = RepoRef("org/model")


def test_pull_chooses_its_source_once_from_the_settings(online: Settings, offline: Settings) -> None:
    assert isinstance(open_source(online), HubSource) and not open_source(online).offline
    assert isinstance(open_source(offline), CacheSource) and open_source(offline).offline


def test_the_hub_source_makes_no_client_until_a_byte_must_move(online: Settings) -> None:
    source = HubSource(online)
    assert source.requests_made == 0
    resolved, complete = source.resolve(MODEL)
    assert complete and source.requests_made == 1 and len(resolved.commit) == 40


def test_offline_links_a_blob_that_is_in_the_cache_but_not_in_the_snapshot(online: Settings, offline: Settings) -> None:
    first = pull(online, MODEL, SelectOptions())
    link = first.snapshot / "config.json"
    link.unlink()
    again = pull(offline, MODEL, SelectOptions())
    assert again.offline and {f.status for f in again.files} == {"cached"}
    assert link.is_symlink() and link.resolve().parent.name == "blobs"


def test_offline_dry_run_names_what_is_missing(online: Settings, offline: Settings) -> None:
    pull(online, MODEL, SelectOptions(config_only=True))
    with pytest.raises(MissingFiles) as exc:
        pull(offline, MODEL, SelectOptions(), dry_run=True)
    assert "model.safetensors" in exc.value.missing


def test_a_warm_locked_pull_sends_nothing(online: Settings) -> None:
    from hfa.lock.lockfile import LockedFile, LockedRepo

    result = pull(online, MODEL, SelectOptions())
    files = tuple(sorted(LockedFile(f.path, f.size, f.hash_algo, f.hash) for f in result.files))
    entry = LockedRepo("org/model", "model", "main", result.commit, SelectOptions(), files)
    (result.snapshot / "config.json").unlink()  # only a link to redo: still no request
    again = pull_locked(online, [entry])
    assert again.requests == 0 and (result.snapshot / "config.json").is_symlink()


def test_the_local_store_is_a_blob_store_that_publishes_by_rename(tmp_path: Path) -> None:
    store: BlobStore = LocalStore(tmp_path, "model", "org/model")
    etag = "a" * 40
    partial = store.partial(etag)
    partial.write_bytes(b"abc")
    assert not store.has(etag, 3)
    with store.lock(etag):
        assert store.publish(etag, partial) == store.path(etag)
    assert store.has(etag, 3) and not partial.exists()
    other = LocalStore(tmp_path, "model", "org/other")
    other.publish(etag, store.path(etag), keep_source=True)  # a second repo: linked or copied, the source stays
    assert other.has(etag, 3) and store.has(etag, 3)
    store.link("c" * 40, "dir/f.bin", etag)
    assert store.linked("c" * 40, "dir/f.bin", etag, 3) and not store.linked("c" * 40, "dir/f.bin", etag, 4)


def test_one_classifier_for_the_loop_the_downloader_and_the_cli() -> None:
    import ssl

    refused = ssl.SSLCertVerificationError(1, "certificate verify failed")
    assert not is_transient(refused) and is_transient(ConnectionResetError())
    err = from_exception(refused)
    assert isinstance(err, NetworkError) and (err.message, err.hint) == network_failure(refused)
    assert from_exception(ValueError("x")) is None and network_failure(OSError(28, "full", "/c/x")) is None


def test_the_retry_policy_sleeps_through_its_public_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(RetryPolicy, "sleep", lambda self, seconds: slept.append(seconds))
    assert RetryPolicy().wait(0, retry_after=3.0) == 3.0 and slept == [3.0]
    heard: list[float] = []
    assert RetryPolicy(sleeper=heard.append).delay(0, 2.0) == 2.0
    monkeypatch.undo()
    RetryPolicy(sleeper=heard.append).wait(1, 0.25)
    assert heard == [0.25]


def test_importing_the_hub_package_loads_no_http_stack() -> None:
    code = (
        "import sys, hfa.hub, hfa.pull, hfa.store\n"
        "print(','.join(m for m in ('http.client', 'ssl', 'hfa.hub.client', 'hfa.hub.requests') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, env=env)
    assert out.stdout.strip() == ""
