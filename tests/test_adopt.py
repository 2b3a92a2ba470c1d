"""`hfa import DIR --repo org/name`: adopting a plain folder or a git clone into the cache, then
verify, serve, pin --offline and huggingface_hub's local_files_only treat it like anything pulled."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import World
from helpers import corrupt_blobs, hfa
from hypothesis import given, settings
from hypothesis import strategies as st

from hfa.adopt import GitAttributes, content_commit, is_lfs_file
from hfa.cache.hashing import git_sha1
from hfa.errors import ExitCode
from hfa.gitmeta import read_head
from hfa.lock import lockfile
from hfa.server import HubServer, ServerConfig
from hfa.testing import lfs_pointer_stub, make_safetensors

WEIGHTS = make_safetensors({"w": ("F32", [8, 8])}, seed=3)
CONFIG = b'{"model_type": "bert", "hidden_size": 8}\n'


def make_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_bytes(CONFIG)
    (root / "model.safetensors").write_bytes(WEIGHTS)
    (root / "sub" / "notes.txt").write_bytes(b"notes\n")
    return root


def adopt(folder: Path, cache: Path, *extra: str):  # type: ignore[no-untyped-def]
    return hfa("import", str(folder), "--repo", "org/adopted", "--cache-dir", str(cache), "--json", *extra)


def blobs_of(cache: Path, commit: str, folder: str = "models--org--adopted") -> dict[str, str]:
    snap = cache / folder / "snapshots" / commit
    return {
        p.relative_to(snap).as_posix(): os.path.basename(os.path.realpath(p)) for p in snap.rglob("*") if p.is_file()
    }


def test_plain_folder(tmp_path: Path) -> None:
    folder, cache = make_folder(tmp_path / "model"), tmp_path / "cache"
    result = adopt(folder, cache)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["revision"] == "main" and doc["commit_source"] == "content"
    assert doc["files"] == 3 and doc["lfs_files"] == 1 and doc["blobs_written"] == 3
    commit = doc["commit"]
    assert (cache / "models--org--adopted" / "refs" / "main").read_text() == commit
    assert blobs_of(cache, commit) == {
        "config.json": git_sha1(CONFIG),
        "model.safetensors": hashlib.sha256(WEIGHTS).hexdigest(),
        "sub/notes.txt": git_sha1(b"notes\n"),
    }
    for link in (cache / "models--org--adopted" / "snapshots" / commit).rglob("*"):
        assert not link.is_symlink() or not os.path.isabs(os.readlink(link))
    assert corrupt_blobs(cache) == []
    # the same content elsewhere gives the same commit; a second import writes nothing
    other = make_folder(tmp_path / "copy")
    again = json.loads(adopt(other, cache).stdout)
    assert again["commit"] == commit and again["blobs_written"] == 0
    # any change gives another commit
    (other / "sub" / "notes.txt").write_bytes(b"changed\n")
    changed = json.loads(adopt(other, cache, "--revision", "edited").stdout)
    assert changed["commit"] != commit and changed["revision"] == "edited"


def test_content_commit_is_documented_formula() -> None:
    from hfa.resolve.files import RemoteFile

    files = [RemoteFile("b.txt", 2, "1" * 40), RemoteFile("a.bin", 5, "2" * 40, "3" * 64)]
    expected = hashlib.sha1(
        b"hfa-import-v1\n" + f"sha256:{'3' * 64} 5 a.bin\n".encode() + f"git-sha1:{'1' * 40} 2 b.txt\n".encode()
    ).hexdigest()
    assert content_commit(files) == expected


def test_verify_pin_status_and_local_files_only(tmp_path: Path) -> None:
    folder, cache, lock = make_folder(tmp_path / "model"), tmp_path / "cache", tmp_path / "hfa.lock"
    commit = json.loads(adopt(folder, cache).stdout)["commit"]
    verified = hfa("verify", "org/adopted", "--cache-dir", str(cache))
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    pinned = hfa("pin", "org/adopted", "--offline", "--lock", str(lock), "--cache-dir", str(cache))
    assert pinned.exit_code == 0, pinned.stderr
    entry = lockfile.read(lock).get("org/adopted")
    assert entry is not None and entry.commit == commit and entry.revision == "main" and len(entry.files) == 3
    assert hfa("verify", "--lock", str(lock), "--cache-dir", str(cache)).exit_code == 0
    assert hfa("offline", "status", "--lock", str(lock), "--cache-dir", str(cache)).exit_code == 0

    from huggingface_hub import snapshot_download

    path = Path(snapshot_download("org/adopted", cache_dir=str(cache), local_files_only=True))
    assert path.name == commit
    assert (path / "model.safetensors").read_bytes() == WEIGHTS and (path / "sub" / "notes.txt").is_file()


def test_served_and_pulled_like_any_repo(tmp_path: Path) -> None:
    folder, cache = make_folder(tmp_path / "model"), tmp_path / "cache"
    commit = json.loads(adopt(folder, cache).stdout)["commit"]
    other = tmp_path / "other-cache"
    with HubServer(ServerConfig(cache_dir=cache)) as srv:
        from huggingface_hub import HfApi, hf_hub_download

        info = HfApi(endpoint=srv.url).model_info("org/adopted", files_metadata=True)
        assert info.sha == commit
        lfs = {s.rfilename: s.lfs for s in info.siblings or []}
        assert lfs["model.safetensors"] is not None and lfs["config.json"] is None
        got = hf_hub_download("org/adopted", "model.safetensors", cache_dir=str(other), endpoint=srv.url)
        assert Path(got).read_bytes() == WEIGHTS
        pulled = hfa("pull", "org/adopted", "--endpoint", srv.url, "--cache-dir", str(tmp_path / "pulled"))
        assert pulled.exit_code == 0, pulled.stderr
    assert corrupt_blobs(tmp_path / "pulled") == []


# -- git clones ----------------------------------------------------------------------------------


def fake_git(folder: Path, head: str, refs: dict[str, str] | None = None, packed: str | None = None) -> None:
    git = folder / ".git"
    git.mkdir()
    (git / "HEAD").write_text(head)
    (git / "config").write_text('[remote "origin"]\n\turl = https://huggingface.co/org/adopted\n')
    (git / "objects").mkdir()
    (git / "objects" / "blob").write_bytes(b"not a file of the repo")
    for name, value in (refs or {}).items():
        (git / name).parent.mkdir(parents=True, exist_ok=True)
        (git / name).write_text(value + "\n")
    if packed is not None:
        (git / "packed-refs").write_text(packed)


COMMIT = "a" * 40


def test_clone_commit_from_loose_ref(tmp_path: Path) -> None:
    folder, cache = make_folder(tmp_path / "clone"), tmp_path / "cache"
    fake_git(folder, "ref: refs/heads/main\n", {"refs/heads/main": COMMIT})
    doc = json.loads(adopt(folder, cache).stdout)
    assert (doc["commit"], doc["revision"], doc["commit_source"]) == (COMMIT, "main", "git")
    assert ".git/objects/blob" not in blobs_of(cache, COMMIT) and len(blobs_of(cache, COMMIT)) == 3


def test_clone_commit_from_packed_refs_and_detached(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "clone")
    fake_git(folder, "ref: refs/heads/dev\n", packed=f"# pack-refs with: peeled\n{'b' * 40} refs/heads/dev\n")
    head = read_head(folder)
    assert head is not None and (head.commit, head.branch) == ("b" * 40, "dev")
    shutil.rmtree(folder / ".git")
    fake_git(folder, "c" * 40 + "\n")
    head = read_head(folder)
    assert head is not None and (head.commit, head.branch) == ("c" * 40, None)
    doc = json.loads(adopt(folder, tmp_path / "cache").stdout)
    assert doc["commit"] == "c" * 40 and doc["revision"] == "c" * 40  # detached: no ref written
    assert not (tmp_path / "cache" / "models--org--adopted" / "refs").exists()


@pytest.mark.parametrize("head", ["ref: ../../../../etc/passwd\n", "ref: refs/../../x\n", "garbage\n", "x" * 10_000])
def test_hostile_head_is_no_metadata(tmp_path: Path, head: str) -> None:
    folder = make_folder(tmp_path / "clone")
    fake_git(folder, head)
    assert read_head(folder) is None


def test_linked_ref_is_not_followed(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "clone")
    outside = tmp_path / "outside"
    outside.write_text(COMMIT)
    fake_git(folder, "ref: refs/heads/main\n")
    (folder / ".git" / "refs" / "heads").mkdir(parents=True)
    (folder / ".git" / "refs" / "heads" / "main").symlink_to(outside)
    assert read_head(folder) is None


def test_real_git_clone(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "clone")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"], ["pack-refs", "--all"]):
        subprocess.run(["git", *args], cwd=folder, check=True, env=env, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True).stdout.strip()
    doc = json.loads(adopt(folder, tmp_path / "cache").stdout)
    assert (doc["commit"], doc["revision"]) == (commit, "main")
    # git's own blob ids are the cache's names for the files that are not LFS files
    listed = subprocess.run(["git", "ls-tree", "-r", "HEAD"], cwd=folder, capture_output=True, text=True).stdout
    git_ids = {line.split("\t")[1]: line.split()[2] for line in listed.splitlines()}
    names = blobs_of(tmp_path / "cache", commit)
    assert names["config.json"] == git_ids["config.json"] and names["sub/notes.txt"] == git_ids["sub/notes.txt"]


def git(folder: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", *args], cwd=folder, check=True, env=env, capture_output=True, text=True).stdout


def git_clone_like(folder: Path) -> str:
    """A repo as a git-lfs clone leaves it: git holds the pointer of w.custom, the folder its content."""
    make_folder(folder)
    content = b"weights as text, LFS only because git-lfs stored them\n"
    (folder / "w.custom").write_bytes(lfs_pointer_stub(content))
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "x")
    (folder / "w.custom").write_bytes(content)  # what `git lfs pull` puts in the working tree
    return git(folder, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_git_index_decides_lfs_exactly(tmp_path: Path, version: str) -> None:
    folder = tmp_path / "clone"
    commit = git_clone_like(folder)
    git(folder, "update-index", "--index-version", version)
    doc = json.loads(adopt(folder, tmp_path / "cache").stdout)
    assert doc["commit"] == commit
    names = blobs_of(tmp_path / "cache", commit)
    content = (folder / "w.custom").read_bytes()
    assert names["w.custom"] == hashlib.sha256(content).hexdigest()  # by the index, not by name or size
    assert names["model.safetensors"] == git_sha1(WEIGHTS)  # git holds it whole: a plain git blob


@pytest.mark.parametrize("change", ["changed", "untracked", "deleted"])
def test_a_clone_that_is_not_its_commit_is_refused(tmp_path: Path, change: str) -> None:
    folder, cache = tmp_path / "clone", tmp_path / "cache"
    git_clone_like(folder)
    if change == "changed":
        (folder / "config.json").write_bytes(b"{}")
    elif change == "untracked":
        (folder / "new.txt").write_bytes(b"new")
    else:
        (folder / "sub" / "notes.txt").unlink()
    result = adopt(folder, cache)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stdout
    assert "is not the commit its .git names" in result.stderr and change in result.stderr
    assert "git status" in result.stderr
    assert not (cache / "models--org--adopted" / "snapshots").exists()
    assert not any((cache / "models--org--adopted" / "blobs").iterdir())  # staged copies removed


# -- which files are LFS files --------------------------------------------------------------------


def test_lfs_rule() -> None:
    none = GitAttributes(None)
    assert is_lfs_file("m.safetensors", 10, b"x", none) and not is_lfs_file("config.json", 10, b"{}", none)
    assert is_lfs_file("big.txt", 10 * 1024 * 1024, b"x", none)
    assert is_lfs_file("blob.dat", 10, b"a\0b", none)  # binary: the Hub refuses it outside LFS
    attrs = GitAttributes("# comment\n*.custom filter=lfs diff=lfs merge=lfs -text\nkeep/*.bin -filter\n")
    assert is_lfs_file("w.custom", 10, b"text", attrs) and is_lfs_file("d/w.custom", 10, b"text", attrs)
    assert not is_lfs_file("w.safetensors", 10, b"text", attrs)  # .gitattributes present: its rules, not defaults
    assert not is_lfs_file("keep/x.bin", 10, b"text", attrs)
    deep = GitAttributes("**/weights/* filter=lfs\n")
    assert is_lfs_file("a/b/weights/x", 10, b"t", deep) and not is_lfs_file("a/x", 10, b"t", deep)


def test_gitattributes_in_the_folder_decides(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    (folder / ".gitattributes").write_text("*.custom filter=lfs diff=lfs merge=lfs -text\n")
    (folder / "w.custom").write_bytes(b"plain text weights\n")
    doc = json.loads(adopt(folder, tmp_path / "cache").stdout)
    names = blobs_of(tmp_path / "cache", doc["commit"])
    assert names["w.custom"] == hashlib.sha256(b"plain text weights\n").hexdigest()
    assert names["model.safetensors"] == hashlib.sha256(WEIGHTS).hexdigest()  # binary: LFS all the same


# -- refusals ---------------------------------------------------------------------------------------


def test_lfs_stub_refused_then_fixed(server: HubServer, world: World, tmp_path: Path) -> None:
    folder, cache = tmp_path / "clone", tmp_path / "cache"
    folder.mkdir()
    files = world.contents["org/model@v2"]
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(lfs_pointer_stub(data) if path == "model.safetensors" else data)
    fake_git(folder, "ref: refs/heads/main\n", {"refs/heads/main": world.commits["org/model@v2"]})
    args = ["import", str(folder), "--repo", "org/model", "--cache-dir", str(cache)]
    refused = hfa(*args)
    assert refused.exit_code == ExitCode.CHECK_FAILED
    assert "Git-LFS pointer stubs" in refused.stderr and "model.safetensors" in refused.stderr
    assert "--fix" in refused.stderr
    assert not (cache / "models--org--model" / "snapshots").exists()
    offline = hfa(*args, "--fix", "--offline")
    assert offline.exit_code == ExitCode.NETWORK
    fixed = hfa(*args, "--fix", "--endpoint", server.url, "--json")
    assert fixed.exit_code == 0, fixed.stderr
    doc = json.loads(fixed.stdout)
    assert doc["stubs_fetched"] == 1 and doc["commit"] == world.commits["org/model@v2"]
    snap = cache / "models--org--model" / "snapshots" / doc["commit"]
    assert (snap / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert (folder / "model.safetensors").read_bytes() == lfs_pointer_stub(files["model.safetensors"])  # untouched
    assert corrupt_blobs(cache) == []
    # the blob names are the ones the Hub (here: hfa serve) gives for that commit
    assert (
        hfa("pin", "org/model@" + doc["commit"], "--endpoint", server.url, "--lock", str(tmp_path / "l")).exit_code == 0
    )
    assert hfa("verify", "--lock", str(tmp_path / "l"), "--cache-dir", str(cache)).exit_code == 0


def test_links_out_of_the_folder_refused(tmp_path: Path) -> None:
    folder, cache = make_folder(tmp_path / "model"), tmp_path / "cache"
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (folder / "leak.txt").symlink_to(secret)
    (folder / "dir-link").symlink_to(folder / "sub")
    result = adopt(folder, cache)
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "leak.txt: a link out of the folder" in result.stderr and "dir-link: a link to a folder" in result.stderr
    assert not cache.exists() or not any(cache.rglob("*secret*"))
    assert not (cache / "models--org--adopted").exists()


def test_link_inside_the_folder_takes_its_content(tmp_path: Path) -> None:
    folder, cache = make_folder(tmp_path / "model"), tmp_path / "cache"
    (folder / "alias.json").symlink_to("config.json")
    doc = json.loads(adopt(folder, cache).stdout)
    assert blobs_of(cache, doc["commit"])["alias.json"] == git_sha1(CONFIG)


def test_hf_local_dir_metadata_is_skipped(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    (folder / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "download" / "config.json.metadata").write_text("x")
    doc = json.loads(adopt(folder, tmp_path / "cache").stdout)
    assert doc["files"] == 3


def test_same_commit_other_content_refused(tmp_path: Path) -> None:
    folder, cache = make_folder(tmp_path / "clone"), tmp_path / "cache"
    fake_git(folder, "ref: refs/heads/main\n", {"refs/heads/main": COMMIT})
    assert adopt(folder, cache).exit_code == 0
    (folder / "config.json").write_bytes(b'{"edited": true}\n')
    result = adopt(folder, cache)
    assert result.exit_code == ExitCode.CHECK_FAILED and "other content for config.json" in result.stderr
    assert blobs_of(cache, COMMIT)["config.json"] == git_sha1(CONFIG)  # the snapshot is unchanged


def test_usage_errors(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    no_repo = hfa("import", str(folder), "--cache-dir", str(tmp_path / "c"))
    assert no_repo.exit_code == ExitCode.USAGE and "--repo org/name" in no_repo.stderr
    bad_rev = hfa("import", str(folder), "--repo", "org/x", "--revision", "a..b", "--cache-dir", str(tmp_path / "c"))
    assert bad_rev.exit_code == ExitCode.USAGE
    missing = hfa("import", str(tmp_path / "nope"), "--repo", "org/x", "--cache-dir", str(tmp_path / "c"))
    assert missing.exit_code == ExitCode.USAGE and "No folder" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = hfa("import", str(empty), "--repo", "org/x", "--cache-dir", str(tmp_path / "c"))
    assert nothing.exit_code == ExitCode.USAGE and "no files" in nothing.stderr
    dataset = hfa("import", str(folder), "--repo", "datasets/org/d", "--cache-dir", str(tmp_path / "c"), "--json")
    assert dataset.exit_code == 0 and json.loads(dataset.stdout)["type"] == "dataset"
    assert (tmp_path / "c" / "datasets--org--d" / "refs" / "main").is_file()


def test_exported_and_imported_as_a_bundle(tmp_path: Path) -> None:
    folder, cache = make_folder(tmp_path / "model"), tmp_path / "cache"
    commit = json.loads(adopt(folder, cache).stdout)["commit"]
    bundle, lock = tmp_path / "x.tar", tmp_path / "w.lock"
    assert hfa("export", "org/adopted", "--cache-dir", str(cache), "-o", str(bundle)).exit_code == 0
    other = tmp_path / "isolated"
    assert hfa("import", str(bundle), "--cache-dir", str(other), "--write-lock", str(lock)).exit_code == 0
    entry = lockfile.read(lock).get("org/adopted")
    assert entry is not None and entry.commit == commit
    assert hfa("offline", "status", "--lock", str(lock), "--cache-dir", str(other)).exit_code == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([2, 3, 4]), st.integers(0, 2**32 - 1))
def test_damaged_git_index_is_no_metadata_never_an_error(body: bytes, version: int, count: int) -> None:
    import tempfile

    from hfa.gitmeta import read_index

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / ".git").mkdir()
        (Path(d) / ".git" / "index").write_bytes(b"DIRC" + version.to_bytes(4, "big") + count.to_bytes(4, "big") + body)
        found = read_index(Path(d))
        assert found is None or isinstance(found, dict)


def test_index_through_a_link_or_too_big_is_not_read(tmp_path: Path) -> None:
    from hfa.gitmeta import read_index

    (tmp_path / ".git").mkdir()
    real = tmp_path / "real-index"
    real.write_bytes(b"DIRC\0\0\0\x02\0\0\0\0")
    (tmp_path / ".git" / "index").symlink_to(real)
    assert read_index(tmp_path) is None


@pytest.mark.parametrize("which", ["HEAD", "index", "packed-refs", "config"])
def test_git_metadata_file_that_is_a_folder_is_no_metadata(tmp_path: Path, which: str) -> None:
    # A folder where git keeps a file opened fine and then failed in os.fdopen (IsADirectoryError):
    # exit 6, "check that path in the cache dir"
    from hfa.gitmeta import read_index, read_origin_url

    folder = make_folder(tmp_path / "clone")
    fake_git(folder, "ref: refs/heads/main\n", packed=f"{COMMIT} refs/heads/main\n")
    target = folder / ".git" / which
    target.unlink(missing_ok=True)
    target.mkdir()
    assert read_index(folder) is None and (which != "config" or read_origin_url(folder) is None)
    if which == "HEAD":
        assert read_head(folder) is None
    result = adopt(folder, tmp_path / "cache")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["commit_source"] == ("content" if which in ("HEAD", "packed-refs") else "git")
