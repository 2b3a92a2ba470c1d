"""hfa.cache.walk: the one snapshot walker and its containment rule, against hostile trees.

A snapshot file counts only if it resolves to a regular file directly in this repo's own blobs/
(named like a hash) or is a plain copy with no link on its way; everything else is yielded with
what is wrong with it, and nothing behind a linked folder is ever entered.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import hfa

from hfa.cache import (
    BLOB,
    COPY,
    DANGLING,
    ESCAPES,
    FOLDER_LINK,
    NOT_A_BLOB,
    CacheWriter,
    RepoDir,
    snapshot_file,
    walk_snapshot,
)
from hfa.errors import ExitCode, LocalError
from hfa.server import HubServer

COMMIT = "1" * 40
SHA256 = "a" * 64
SHA1 = "b" * 40
OTHER = "c" * 64


@dataclass
class Tree:
    root: Path  # the tmp dir: cache/ and outside/ are in it
    cache: Path
    repo: RepoDir
    other: RepoDir
    outside: Path

    @property
    def snap(self) -> Path:
        return self.repo.snapshot(COMMIT)

    def link(self, rel: str, target: str | Path) -> None:
        path = self.snap.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)

    def kinds(self, repo: RepoDir | None = None, commit: str = COMMIT) -> dict[str, str]:
        return {e.rel: e.kind for e in walk_snapshot(repo or self.repo, commit)}


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    cache = tmp_path / "cache"
    repo = RepoDir(cache, "model", "org/a")
    other = RepoDir(cache, "model", "org/b")
    for r in (repo, other):
        r.blobs.mkdir(parents=True)
        r.snapshot(COMMIT).mkdir(parents=True)
        r.refs.mkdir()
        (r.refs / "main").write_text(COMMIT)
    (repo.blobs / SHA256).write_bytes(b"weights")
    (repo.blobs / SHA1).write_bytes(b"config")
    (repo.blobs / "notes.txt").write_bytes(b"not a hash name")
    (other.blobs / OTHER).write_bytes(b"another repo's blob")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (outside / SHA256).write_bytes(b"named like a blob")
    t = Tree(tmp_path, cache, repo, other, outside)
    t.link("model.safetensors", f"../../blobs/{SHA256}")
    t.link("sub/config.json", f"../../../blobs/{SHA1}")
    (t.snap / "copied.txt").write_bytes(b"a plain copy")
    return t


def test_blobs_and_copies_count_with_their_resolved_file(tree: Tree) -> None:
    entries = list(walk_snapshot(tree.repo, COMMIT))
    assert [e.rel for e in entries] == ["copied.txt", "model.safetensors", "sub/config.json"]
    by = {e.rel: e for e in entries}
    real_blobs = Path(os.path.realpath(tree.repo.blobs))
    assert by["model.safetensors"].kind == BLOB and by["model.safetensors"].real == real_blobs / SHA256
    assert by["sub/config.json"].kind == BLOB and by["sub/config.json"].real == real_blobs / SHA1
    assert by["sub/config.json"].link == f"../../../blobs/{SHA1}" and by["sub/config.json"].is_link
    assert by["copied.txt"].kind == COPY and by["copied.txt"].real == Path(os.path.realpath(tree.snap / "copied.txt"))
    assert all(e.counts for e in entries)


def test_links_out_of_the_cache_escape(tree: Tree) -> None:
    tree.link("abs.bin", tree.outside / "secret")
    tree.link("rel.bin", "../../../../outside/secret")
    tree.link("hashname.bin", tree.outside / SHA256)  # named like a blob, but not in blobs/
    tree.link("gone.bin", tree.outside / "missing")  # dangling, and out of the cache: escapes first
    tree.link("dir", tree.outside)
    tree.link("root", "/")
    kinds = tree.kinds()
    for rel in ("abs.bin", "rel.bin", "hashname.bin", "gone.bin", "dir", "root"):
        assert kinds[rel] == ESCAPES, rel
    by = {e.rel: e for e in walk_snapshot(tree.repo, COMMIT)}
    assert by["dir"].folder and not by["abs.bin"].folder
    assert by["abs.bin"].resolved == os.path.realpath(tree.outside / "secret") and by["abs.bin"].real is None
    assert "dir/secret" not in kinds  # a linked folder is never entered


def test_links_inside_the_cache_that_are_not_this_repos_blobs(tree: Tree) -> None:
    tree.link("other-repo.bin", f"../../../models--org--b/blobs/{OTHER}")
    tree.link("not-hash.txt", "../../blobs/notes.txt")
    tree.link("ref.txt", "../../refs/main")
    tree.link("to-copy.txt", "copied.txt")  # a link to a copy: not a blob
    tree.link("blobs-dir", "../../blobs")
    tree.link("other-snap", f"../../../models--org--b/snapshots/{COMMIT}")
    kinds = tree.kinds()
    assert kinds["other-repo.bin"] == NOT_A_BLOB
    assert kinds["not-hash.txt"] == NOT_A_BLOB
    assert kinds["ref.txt"] == NOT_A_BLOB
    assert kinds["to-copy.txt"] == NOT_A_BLOB
    assert kinds["blobs-dir"] == FOLDER_LINK and kinds["other-snap"] == FOLDER_LINK
    assert not any(rel.startswith(("blobs-dir/", "other-snap/")) for rel in kinds)


def test_a_chain_of_links_that_ends_in_a_blob_counts(tree: Tree) -> None:
    tree.link("alias.bin", "model.safetensors")
    by = {e.rel: e for e in walk_snapshot(tree.repo, COMMIT)}
    assert by["alias.bin"].kind == BLOB and by["alias.bin"].real == by["model.safetensors"].real


def test_dangling_links_and_loops(tree: Tree) -> None:
    tree.link("missing.bin", f"../../blobs/{'f' * 64}")
    tree.link("loop-a", "loop-b")
    tree.link("loop-b", "loop-a")
    tree.link("self", "self")
    kinds = tree.kinds()
    assert kinds["missing.bin"] == DANGLING
    assert kinds["loop-a"] == kinds["loop-b"] == kinds["self"] == DANGLING


def test_fifos_are_never_blobs_and_never_opened(tree: Tree) -> None:
    fifo_blob = "d" * 64
    os.mkfifo(tree.repo.blobs / fifo_blob)
    tree.link("fifo.bin", f"../../blobs/{fifo_blob}")
    os.mkfifo(tree.snap / "plain-fifo")
    start = time.monotonic()
    kinds = tree.kinds()
    assert time.monotonic() - start < 5
    assert kinds["fifo.bin"] == NOT_A_BLOB and kinds["plain-fifo"] == NOT_A_BLOB


def test_a_linked_blobs_folder_counts_for_nothing(tree: Tree) -> None:
    # Out of the cache: the blob resolves outside.
    moved = tree.outside / "blobs"
    os.rename(tree.repo.blobs, moved)
    os.symlink(moved, tree.repo.blobs)
    assert tree.kinds() == {"copied.txt": COPY, "model.safetensors": ESCAPES, "sub/config.json": ESCAPES}
    # Inside the cache, but not the folder named blobs/: not this repo's blobs.
    os.unlink(tree.repo.blobs)
    os.rename(moved, tree.repo.path / "blobs-a")
    os.symlink("blobs-a", tree.repo.blobs)  # models--org--a/blobs -> models--org--a/blobs-a
    kinds = tree.kinds()
    assert kinds["model.safetensors"] == NOT_A_BLOB == kinds["sub/config.json"]
    # Another repo's blobs folder.
    os.unlink(tree.repo.blobs)
    os.symlink("../models--org--b/blobs", tree.repo.blobs)
    tree.link("theirs.bin", f"../../blobs/{OTHER}")
    assert tree.kinds()["theirs.bin"] == NOT_A_BLOB


def test_a_snapshot_reached_through_a_link_yields_only_itself(tree: Tree) -> None:
    # The snapshot folder itself a link inside the cache.
    second = "2" * 40
    os.symlink(COMMIT, tree.repo.snapshots / second)
    [entry] = list(walk_snapshot(tree.repo, second))
    assert (entry.rel, entry.kind, entry.folder, entry.real) == ("", FOLDER_LINK, True, None)
    # The whole repo folder a link out of the cache.
    outside_repo = tree.outside / "models--evil--repo"
    (outside_repo / "blobs").mkdir(parents=True)
    (outside_repo / "snapshots" / COMMIT).mkdir(parents=True)
    (outside_repo / "blobs" / SHA256).write_bytes(b"evil")
    os.symlink(f"../../blobs/{SHA256}", outside_repo / "snapshots" / COMMIT / "model.safetensors")
    os.symlink(outside_repo, tree.cache / "models--evil--repo")
    [entry] = list(walk_snapshot(RepoDir(tree.cache, "model", "evil/repo"), COMMIT))
    assert (entry.rel, entry.kind) == ("", ESCAPES)
    # A linked snapshots/ folder.
    os.rename(tree.other.snapshots, tree.outside / "snapshots")
    os.symlink(tree.outside / "snapshots", tree.other.snapshots)
    assert tree.kinds(tree.other) == {"": ESCAPES}


def test_a_cache_reached_through_a_link_works(tree: Tree) -> None:
    alias = tree.root / "alias"
    os.symlink(tree.cache, alias)
    assert tree.kinds(RepoDir(alias, "model", "org/a")) == tree.kinds()
    assert all(e.counts for e in walk_snapshot(RepoDir(alias, "model", "org/a"), COMMIT))


def test_missing_snapshots_and_odd_commits_yield_nothing(tree: Tree) -> None:
    assert tree.kinds(commit="9" * 40) == {}
    assert tree.kinds(RepoDir(tree.cache, "model", "org/absent")) == {}
    for commit in ("", ".", "..", "../x", f"{COMMIT}/sub"):
        assert tree.kinds(commit=commit) == {}, commit


def test_unreadable_folders_are_reported_and_skipped(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    real_scandir = os.scandir
    sub = str(tree.snap / "sub")

    def scandir(path: object) -> object:
        if str(path) == sub:
            raise PermissionError(13, "Permission denied", sub)
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    heard: list[tuple[Path, OSError]] = []
    kinds = {e.rel: e.kind for e in walk_snapshot(tree.repo, COMMIT, on_error=lambda p, e: heard.append((p, e)))}
    assert kinds == {"copied.txt": COPY, "model.safetensors": BLOB}
    assert [(str(p), type(e)) for p, e in heard] == [(sub, PermissionError)]


def test_one_entry_is_judged_as_the_walker_judges_it(tree: Tree) -> None:
    tree.link("abs.bin", tree.outside / "secret")
    tree.link("other-repo.bin", f"../../../models--org--b/blobs/{OTHER}")
    tree.link("missing.bin", f"../../blobs/{'f' * 64}")
    tree.link("dir", tree.outside)
    tree.link("inner", "sub")
    walked = {e.rel: e for e in walk_snapshot(tree.repo, COMMIT)}
    for rel, entry in walked.items():
        assert snapshot_file(tree.repo, COMMIT, rel) == entry, rel
    # What the walker never yields: behind a linked folder, a real folder, absent, not a relative path.
    for rel in ("dir/secret", "inner/config.json", "sub", "absent.bin", "../x", "/etc/passwd", "sub//x", ""):
        assert snapshot_file(tree.repo, COMMIT, rel) is None, rel


def test_whatever_counts_stays_in_its_repo(tree: Tree) -> None:
    """Across every hostile entry at once: a counted file is this repo's blob or a copy in this snapshot."""
    tree.link("abs.bin", tree.outside / "secret")
    tree.link("other-repo.bin", f"../../../models--org--b/blobs/{OTHER}")
    tree.link("dir", tree.outside)
    tree.link("blobs-dir", "../../blobs")
    tree.link("loop", "loop")
    os.mkfifo(tree.snap / "fifo")
    blobs = os.path.realpath(tree.repo.blobs)
    snap = os.path.realpath(tree.snap)
    for entry in walk_snapshot(tree.repo, COMMIT):
        if entry.counts:
            assert entry.real is not None
            assert os.path.dirname(entry.real) == blobs or str(entry.real).startswith(snap + os.sep), entry
        else:
            assert entry.real is None


# -- the writer refuses what the walker would not count ------------------------------------------------
@pytest.mark.parametrize("which", ["repo", "blobs"])
def test_the_writer_refuses_a_linked_repo_or_blobs_folder(tree: Tree, which: str) -> None:
    writer = CacheWriter(tree.cache, "model", "org/a")
    folder = tree.repo.path if which == "repo" else tree.repo.blobs
    moved = tree.outside / "moved"
    os.rename(folder, moved)
    os.symlink(moved, folder)
    before = sorted(p.relative_to(tree.root) for p in tree.root.rglob("*"))
    for call in (lambda: writer.blob_path(SHA256), lambda: writer.partial_path(SHA256)):
        with pytest.raises(LocalError) as exc:
            call()
        assert str(folder) in exc.value.message and exc.value.exit_code == ExitCode.LOCAL
        assert "mv " in (exc.value.hint or "")
    with pytest.raises(LocalError):
        writer.has_blob(SHA256, 7)
    with pytest.raises(LocalError):
        writer.link("3" * 40, "x.bin", SHA256)
    assert sorted(p.relative_to(tree.root) for p in tree.root.rglob("*")) == before  # nothing written anywhere


def test_the_writer_refuses_linked_snapshot_and_refs_folders(tree: Tree) -> None:
    writer = CacheWriter(tree.cache, "model", "org/a")
    os.rename(tree.repo.refs, tree.outside / "refs")
    os.symlink(tree.outside / "refs", tree.repo.refs)
    with pytest.raises(LocalError):
        writer.write_ref("v1", COMMIT)
    assert not (tree.outside / "refs" / "v1").exists()
    os.rename(tree.repo.snapshots, tree.outside / "snapshots")
    os.symlink(tree.outside / "snapshots", tree.repo.snapshots)
    with pytest.raises(LocalError):
        writer.link("3" * 40, "x.bin", SHA256)
    with pytest.raises(LocalError):
        writer.linked_ok(COMMIT, "model.safetensors", SHA256, 7)
    assert not (tree.outside / "snapshots" / ("3" * 40)).exists()


def test_the_writer_works_in_a_plain_cache(tree: Tree) -> None:
    writer = CacheWriter(tree.cache, "model", "org/a")
    assert writer.has_blob(SHA256, 7)
    writer.link("3" * 40, "x.bin", SHA256)
    writer.write_ref("v1", "3" * 40)
    assert {e.rel: e.kind for e in walk_snapshot(tree.repo, "3" * 40)} == {"x.bin": BLOB}


@pytest.mark.parametrize("which", ["blobs", "snapshots"])
def test_pull_refuses_a_linked_folder_in_the_cache(tmp_path: Path, server: HubServer, which: str) -> None:
    """Cold or warm, `hfa pull` never writes through (nor trusts) a linked folder of the repo: exit 6, the path named."""
    cache = tmp_path / "cache"
    first = hfa("pull", "org/model", "--config-only", "--endpoint", server.url, "--cache-dir", str(cache))
    assert first.exit_code == 0, first.stderr
    folder = cache / "models--org--model" / which
    moved = tmp_path / "outside" / which
    moved.parent.mkdir()
    os.rename(folder, moved)
    os.symlink(moved, folder)
    before = sorted(str(p.relative_to(moved)) for p in moved.rglob("*"))
    for extra in (("--config-only",), ()):  # warm (all cached), then with the weights to fetch
        result = hfa("pull", "org/model", *extra, "--endpoint", server.url, "--cache-dir", str(cache))
        assert result.exit_code == ExitCode.LOCAL, result.output
        assert str(folder) in result.stderr and "mv " in result.stderr
    assert sorted(str(p.relative_to(moved)) for p in moved.rglob("*")) == before


# -- the package's public surface ----------------------------------------------------------------------
def test_the_package_offers_every_public_name_and_loads_modules_only_when_used() -> None:
    import subprocess
    import sys

    import hfa.cache

    assert len(set(hfa.cache.__all__)) == len(hfa.cache.__all__)
    for name in hfa.cache.__all__:
        assert getattr(hfa.cache, name) is not None, name
    with pytest.raises(AttributeError):
        hfa.cache.nothing_like_this  # noqa: B018
    code = "import sys, hfa.cache.layout; print(sorted(m for m in sys.modules if m.startswith('hfa.cache')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "['hfa.cache', 'hfa.cache.layout']"
