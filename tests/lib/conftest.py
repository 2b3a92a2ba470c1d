"""Fixtures for the library tests: Settings built in the test, against the session's `hfa serve`.

The fixtures of tests/conftest.py (``server``, ``world``, ``isolated_home``) apply here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hfa.config import Settings
from hfa.pull import pull
from hfa.resolve.refs import RepoRef
from hfa.resolve.selection import SelectOptions
from hfa.server import HubServer

MODEL = RepoRef("org/model")
FOLDER = "models--org--model"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def online(server: HubServer, cache: Path) -> Settings:
    """Settings for the session server and a fresh cache, as `hfa pull --endpoint URL --cache-dir DIR` makes them."""
    return Settings.resolve(cache_dir=cache, endpoint=server.url)


@pytest.fixture
def offline(cache: Path) -> Settings:
    """Offline settings for the same cache, with an endpoint nothing listens on."""
    return Settings.resolve(cache_dir=cache, endpoint="http://127.0.0.1:9", offline=True)


@pytest.fixture
def pulled(online: Settings) -> Path:
    """The cache with org/model (main, default selection) pulled into it."""
    pull(online, MODEL, SelectOptions())
    return online.cache_dir


@pytest.fixture
def built(tmp_path: Path):
    """A cache made with write_repo (no server): see builders.Built."""
    from .builders import build_cache

    return build_cache(tmp_path / "built")
