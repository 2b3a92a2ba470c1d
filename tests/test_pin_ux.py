"""What pin, pull, info, verify and the lock say when something is wrong: every hint works when pasted.

A small hub of its own: a GGUF repo in two quantisations, a plain model, a gated model and a
dataset, served by `hfa serve` on loopback.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import hfa

from hfa.cache.layout import validate_repo_id
from hfa.errors import ExitCode, UsageError
from hfa.lock import lockfile
from hfa.server import HubServer, ServerConfig
from hfa.server.auth import load_policy
from hfa.testing import make_safetensors, write_repo

TOKEN = "hf_ux_reader_token_0123456789"
WRONG = "hf_ux_wrong_token_0123456789"
DEAD = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = tmp_path_factory.mktemp("ux-hub")
    served = root / "served"
    write_repo(
        served,
        "acme/llm-GGUF",
        {"README.md": b"# llm\n", "llm.Q4_K_M.gguf": b"GGUF" + bytes(40), "llm.Q8_0.gguf": b"GGUF" + bytes(80)},
    )
    weights = make_safetensors({"w": ("F32", [4, 4])}, seed=3)
    write_repo(served, "acme/plain", {"config.json": b"{}", "model.safetensors": weights})
    write_repo(served, "acme/gated", {"config.json": b"{}", "model.safetensors": weights})
    write_repo(served, "acme/corpus", {"README.md": b"# data\n", "train.csv": b"a\n1\n"}, repo_type="dataset")
    auth = root / "auth.toml"
    auth.write_text(
        f'[repos]\n"acme/gated" = "gated"\n\n[[tokens]]\nname = "r"\ntoken = "{TOKEN}"\nread = ["acme/*"]\n'
    )
    with HubServer(ServerConfig(cache_dir=served, auth=load_policy(auth))) as srv:
        yield srv


def run(url: str, *args: str, lock: Path | None = None, cache: Path | None = None):
    extra = (["--lock", str(lock)] if lock else []) + (["--cache-dir", str(cache)] if cache else [])
    return hfa(*args, "--endpoint", url, *extra)


def pasted(hint_stderr: str) -> list[str]:
    """The command in backquotes of an error's hint, as argv (without the leading `hfa`)."""
    command = hint_stderr.split("`")[-2]
    words = shlex.split(command)
    assert words[0] == "hfa"
    return words[1:]


# -- 1. multi-repo pin: all or nothing; --quant per repo ------------------------------------------


def test_multi_repo_pin_is_all_or_nothing_and_names_the_repo(hub: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(hub.url, "pin", "acme/plain", "acme/llm-GGUF", lock=lock)
    assert result.exit_code == ExitCode.USAGE
    assert "acme/llm-GGUF" in result.stderr and "quantization" in result.stderr
    assert not lock.exists()  # acme/plain was not written alone
    assert run(hub.url, "pin", "acme/plain", lock=lock).exit_code == 0
    before = lock.read_bytes()
    result = run(hub.url, "pin", "acme/corpus", "acme/llm-GGUF", "--repo-type", "dataset", lock=lock)
    assert result.exit_code != 0
    assert lock.read_bytes() == before


def test_pin_gguf_and_plain_repo_in_one_command(hub: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = run(hub.url, "pin", "acme/llm-GGUF:Q4_K_M", "acme/plain", lock=lock)
    assert result.exit_code == 0, result.stderr
    parsed = lockfile.read(lock)
    gguf, plain = parsed.get("acme/llm-GGUF"), parsed.get("acme/plain")
    assert gguf is not None and plain is not None
    assert gguf.selection.quant == "Q4_K_M" and [f.path for f in gguf.files] == ["README.md", "llm.Q4_K_M.gguf"]
    assert plain.selection.quant is None and "model.safetensors" in [f.path for f in plain.files]
    # A --quant given once applies to the repos with GGUF files only.
    lock2 = tmp_path / "two.lock"
    result = run(hub.url, "pin", "acme/llm-GGUF", "acme/plain", "--quant", "Q8_0", lock=lock2)
    assert result.exit_code == 0, result.stderr
    parsed = lockfile.read(lock2)
    assert parsed.get("acme/llm-GGUF").selection.quant == "Q8_0"  # type: ignore[union-attr]
    assert parsed.get("acme/plain").selection.quant is None  # type: ignore[union-attr]
    # Re-pinning from the lock keeps working (the plain repo did not store a --quant it cannot honour).
    assert run(hub.url, "pin", "--upgrade", lock=lock2).exit_code == 0


def test_pull_and_info_take_repo_colon_quant(hub: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = run(hub.url, "pull", "acme/llm-GGUF:Q8_0", "--json", cache=cache)
    assert result.exit_code == 0, result.stderr
    assert "llm.Q8_0.gguf" in result.stdout and 'llm.Q4_K_M.gguf", "size' not in result.stdout
    clash = run(hub.url, "pull", "acme/llm-GGUF:Q8_0", "--quant", "Q4_K_M", cache=cache)
    assert clash.exit_code == ExitCode.USAGE and "disagree" in clash.stderr


# -- 2. every suggested fix works when pasted ---------------------------------------------------


def test_offline_pull_from_a_lock_suggests_plain_hfa_pull(hub: HubServer, tmp_path: Path) -> None:
    lock, cache = tmp_path / "my.lock", tmp_path / "cache"
    assert run(hub.url, "pin", "acme/llm-GGUF:Q4_K_M", lock=lock).exit_code == 0
    result = run(hub.url, "pull", "--offline", lock=lock, cache=cache)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert f"`hfa pull --lock {lock}`" in result.stderr and "`hfa pull acme/llm-GGUF@main" not in result.stderr
    again = run(hub.url, *pasted(result.stderr), cache=cache)
    assert again.exit_code == 0, again.stderr
    assert (cache / "models--acme--llm-GGUF").is_dir()


def test_offline_pull_suggests_the_same_selection(hub: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = run(hub.url, "pull", "acme/llm-GGUF", "--quant", "Q4_K_M", "--offline", cache=cache)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "`hfa pull acme/llm-GGUF --quant Q4_K_M`" in result.stderr


def test_locked_failure_suggests_a_pin_that_carries_the_selection(hub: HubServer, tmp_path: Path) -> None:
    lock, cache = tmp_path / "x.lock", tmp_path / "cache"
    assert run(hub.url, "pin", "acme/llm-GGUF:Q4_K_M", lock=lock).exit_code == 0
    result = run(hub.url, "pull", "acme/llm-GGUF", "--quant", "Q8_0", "--locked", lock=lock, cache=cache)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert f"`hfa pin acme/llm-GGUF --quant Q8_0 --lock {lock}`" in result.stderr
    assert run(hub.url, *pasted(result.stderr)).exit_code == 0
    entry = lockfile.read(lock).get("acme/llm-GGUF")
    assert entry is not None and entry.selection.quant == "Q8_0"
    ok = run(hub.url, "pull", "acme/llm-GGUF", "--quant", "Q8_0", "--locked", lock=lock, cache=cache)
    assert ok.exit_code == 0, ok.stderr


def test_search_is_not_told_to_go_offline() -> None:
    result = hfa("search", "x", "--endpoint", DEAD)
    assert result.exit_code == ExitCode.NETWORK
    assert "--offline" not in result.stderr


def test_lock_write_failure_names_the_lock_not_a_temp_file(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hfa.cache.layout

    lock = tmp_path / "ro" / "hfa.lock"

    def refuse(folder: Path, prefix: str, suffix: str = "") -> tuple[int, Path]:
        raise PermissionError(13, "Permission denied", str(folder / f"{prefix}abc123{suffix}"))

    monkeypatch.setattr(hfa.cache.layout, "new_file", refuse)
    result = run(hub.url, "pin", "acme/plain", lock=lock)
    assert result.exit_code == ExitCode.LOCAL
    assert f"Cannot write the lock file {lock}" in result.stderr and ".tmp" not in result.stderr
    assert f"check that you may write to {lock.parent}" in result.stderr


def test_bad_selection_in_lock_names_a_real_command(tmp_path: Path) -> None:
    from hfa.resolve.selection import SelectOptions

    with pytest.raises(UsageError) as caught:
        SelectOptions.from_json({"all": "yes"})
    assert "hfa lock" not in str(caught.value) and "hfa pin REPO" in str(caught.value)
    lock = tmp_path / "hfa.lock"
    lock.write_text(
        'version = 1\n\n[[repo]]\nid = "acme/plain"\ntype = "model"\nrevision = "main"\n'
        f'commit = "{"a" * 40}"\nselection = {{all = "yes"}}\nfiles = []\n'
    )
    result = hfa("pin", "--lock", str(lock))
    assert result.exit_code == ExitCode.USAGE
    assert "(line 4)" in result.stderr and "hfa pin REPO" in result.stderr


# -- 3 is in test_pin.py (test_lock_hash_wins_over_the_server) ----------------------------------


def test_lock_with_wrong_sha256_is_a_disagreement_after_one_request(hub: HubServer, tmp_path: Path) -> None:
    lock, cache = tmp_path / "hfa.lock", tmp_path / "cache"
    assert run(hub.url, "pin", "acme/plain", lock=lock).exit_code == 0
    entry = lockfile.read(lock).get("acme/plain")
    assert entry is not None
    weights = next(f for f in entry.files if f.algo == "sha256")
    lock.write_text(lock.read_text().replace(weights.digest, "f" * 64))
    before = len(hub.requests)
    result = run(hub.url, "pull", lock=lock, cache=cache)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "The lock and the server disagree about 'model.safetensors' of 'acme/plain'" in result.stderr
    assert f"sha256:{'f' * 64}" in result.stderr and f"sha256:{weights.digest}" in result.stderr
    assert "hfa pin --check" in result.stderr
    gets = [p for m, p in hub.requests[before:] if m == "GET" and p.endswith("model.safetensors")]
    assert len(gets) == 1


# -- 4. info on a GGUF repo without --quant -------------------------------------------------------


def test_info_on_a_gguf_repo_lists_the_quantisations(hub: HubServer) -> None:
    result = run(hub.url, "info", "acme/llm-GGUF")
    assert result.exit_code == 0, result.stderr
    assert "llm.Q4_K_M.gguf" in result.stdout and "Q4_K_M, Q8_0" in result.stdout
    assert "hfa pull acme/llm-GGUF:Q4_K_M" in result.stderr
    doc = run(hub.url, "info", "acme/llm-GGUF", "--json")
    assert doc.exit_code == 0 and '"quants": [\n    "Q4_K_M",\n    "Q8_0"\n  ]' in doc.stdout


# -- 5. verify ----------------------------------------------------------------------------------------


def test_verify_a_missing_cache_dir_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    result = hfa("verify", "--cache-dir", str(missing))
    assert result.exit_code == ExitCode.USAGE
    assert str(missing) in result.stderr and "Verified" not in result.stdout + result.stderr


def test_verify_a_missing_path_says_so(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    result = hfa("verify", str(tmp_path / "no-such-path"), "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == ExitCode.USAGE
    assert "No such file or folder" in result.stderr and "Invalid repository id" not in result.stderr


# -- 6. a truncated or invalid lock names the line ---------------------------------------------------


def test_truncated_lock_names_a_line(hub: HubServer, tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    assert run(hub.url, "pin", "acme/plain", lock=lock).exit_code == 0
    text = lock.read_text()
    cut = text[: text.index("hash = ") + 12]
    lock.write_text(cut)
    result = hfa("pin", "--lock", str(lock))
    assert result.exit_code == ExitCode.USAGE
    assert f"(line {cut.count(chr(10)) + 1})" in result.stderr and "end of document" not in result.stderr
    assert "hfa pin REPO" in result.stderr


# -- 7. pin without a lock, URLs, datasets, gated repos ----------------------------------------------


def test_pin_without_lock_or_repo_creates_nothing(tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    result = hfa("pin", "--lock", str(lock))
    assert result.exit_code == ExitCode.USAGE
    assert not lock.exists() and "hfa pin REPO" in result.stderr


@pytest.mark.parametrize(
    ("url", "repo"),
    [
        ("https://huggingface.co/org/name", "org/name"),
        ("http://host:8080/org/name/tree/main", "org/name"),
        ("https://huggingface.co/datasets/org/data", "datasets/org/data"),
        ("https://huggingface.co/org/name/blob/v1.0/config.json", "org/name@v1.0"),
        ("hf.co/org/name", "org/name"),  # pasted without its scheme
        ("huggingface.co/datasets/org/data/tree/v2", "datasets/org/data@v2"),
    ],
)
def test_a_url_as_repo_id_gets_the_repo_id_to_use(url: str, repo: str) -> None:
    result = hfa("pin", url, "--endpoint", DEAD, "--lock", "/nonexistent/hfa.lock")
    assert result.exit_code == ExitCode.USAGE
    assert f"use {repo}" in result.stderr


def test_a_dataset_named_as_a_model_gets_a_hint(hub: HubServer, tmp_path: Path) -> None:
    result = run(hub.url, "pull", "acme/corpus", cache=tmp_path / "cache")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "use datasets/acme/corpus" in result.stderr
    plain = run(hub.url, "pull", "acme/nothing-here", cache=tmp_path / "cache")
    assert plain.exit_code == ExitCode.NOT_FOUND and "datasets/" not in plain.stderr


def test_gated_repo_tells_no_token_from_a_wrong_token(hub: HubServer, tmp_path: Path) -> None:
    none = run(hub.url, "pull", "acme/gated", cache=tmp_path / "c1")
    wrong = hfa("pull", "acme/gated", "--endpoint", hub.url, "--token", WRONG, "--cache-dir", str(tmp_path / "c2"))
    assert none.exit_code == wrong.exit_code == ExitCode.ACCESS_DENIED
    assert "none was given" in none.stderr and "refused" not in none.stderr
    assert "the token given was refused" in wrong.stderr and WRONG not in wrong.stderr
    ok = hfa("pull", "acme/gated", "--endpoint", hub.url, "--token", TOKEN, "--cache-dir", str(tmp_path / "c3"))
    assert ok.exit_code == 0, ok.stderr


# -- 8. no URL credentials in any message ---------------------------------------------------------


def test_endpoint_password_is_never_printed(hub: HubServer, tmp_path: Path) -> None:
    endpoint = hub.url.replace("http://", "http://alice:s3cr3t-pw@")
    result = hfa("pull", "acme/gated", "--endpoint", endpoint, "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == ExitCode.ACCESS_DENIED, result.stderr
    assert "accept the terms at http://127.0.0.1" in result.stderr
    assert "s3cr3t-pw" not in result.stderr + result.stdout and "alice" not in result.stderr


def test_public_url_strips_userinfo() -> None:
    from hfa.config import public_url

    assert public_url("https://u:p@host:1/x?y") == "https://host:1/x?y"
    assert public_url("http://host/a") == "http://host/a"
    assert public_url("http://tok@host") == "http://host"


# -- 9. full matches: no trailing newline slips through ----------------------------------------------


def test_repo_id_with_trailing_newline_is_refused() -> None:
    with pytest.raises(UsageError):
        validate_repo_id("acme/sharded\n")


def test_lock_with_newline_in_id_is_refused_with_its_line(tmp_path: Path) -> None:
    lock = tmp_path / "hfa.lock"
    lock.write_text(
        'version = 1\n\n[[repo]]\nid = "acme/sharded\\n"\ntype = "model"\nrevision = "main"\n'
        f'commit = "{"a" * 40}"\nselection = {{}}\nfiles = []\n'
    )
    result = hfa("pull", "--lock", str(lock), "--cache-dir", str(tmp_path / "cache"), "--offline")
    assert result.exit_code == ExitCode.USAGE
    assert "Invalid repository id" in result.stderr and "(line 3)" in result.stderr
    assert not (tmp_path / "cache").exists()


def test_lock_hash_with_trailing_newline_is_refused(tmp_path: Path) -> None:
    text = (
        'version = 1\n\n[[repo]]\nid = "acme/x"\ntype = "model"\nrevision = "main"\n'
        f'commit = "{"a" * 40}"\nselection = {{}}\nfiles = [\n  {{path = "a", size = 1, hash = "git-sha1:{"b" * 40}\\n"}},\n]\n'
    )
    with pytest.raises(lockfile.LockError, match="hash must be"):
        lockfile.loads(text)
    with pytest.raises(lockfile.LockError, match="commit"):
        lockfile.loads(text.replace("a" * 40, "a" * 40 + "\\n"))


# -- 10. only regular files, with a size limit -----------------------------------------------------


@pytest.mark.parametrize("command", [("pin",), ("pull",), ("verify", "--lock")])
def test_lock_pointing_at_dev_zero_is_refused(command: tuple[str, ...], tmp_path: Path) -> None:
    args = [*command, "/dev/zero"] if command[-1] == "--lock" else [*command, "--lock", "/dev/zero"]
    result = hfa(*args, "--cache-dir", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "/dev/zero is not a regular file" in result.stderr


def test_allowlist_fifo_and_huge_lock_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "allow.fifo"
    os.mkfifo(fifo)  # opening it for reading would block forever
    result = hfa("scan", str(tmp_path), "--allowlist", str(fifo))
    assert result.exit_code == ExitCode.USAGE and "not a regular file" in result.stderr
    big = tmp_path / "hfa.lock"
    with big.open("wb") as fp:
        fp.truncate(65 * 1024 * 1024)  # sparse: no disk used
    result = hfa("pin", "--lock", str(big))
    assert result.exit_code == ExitCode.USAGE and "larger than" in result.stderr


def test_token_file_that_is_a_device_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN_PATH", "/dev/zero")
    result = hfa("pull", "acme/x", "--endpoint", DEAD, "--cache-dir", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE and "token file /dev/zero is not a regular file" in result.stderr


def test_cache_write_failures_name_the_real_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hfa.cache.layout import atomic_symlink, atomic_write_text

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    for write, target in (
        (lambda p: atomic_write_text(p, "x"), "refs/main"),
        (lambda p: atomic_symlink("b", p), "s/f"),
    ):
        path = tmp_path / target
        path.parent.mkdir()  # both writers are handed a folder that exists
        with pytest.raises(PermissionError) as caught:
            write(path)
        assert caught.value.filename == str(path)
        assert [p.name for p in path.parent.iterdir()] == []  # no temporary file left behind
