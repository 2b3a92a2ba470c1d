"""`hfa serve` driven by the official huggingface_hub 2.4 client over real HTTP on 127.0.0.1.

Every expectation is computed from the generated world (its bytes, its commits), never
from what the server itself says, so a server that lies fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import httpx2
import pytest
from conftest import OTHER_TOKEN, TOKEN, World
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from hfa.cache.hashing import git_sha1, lfs_pointer
from hfa.server import HubServer
from hfa.testing import model_card, write_repo

LFS_FILES = {"model.safetensors", "big.bin"}
REPO_DIR = "models--org--model"


def api(server: HubServer, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=server.url, token=token)


def v1(world: World) -> str:
    return world.commits["org/model@v1"]


def v2(world: World) -> str:
    return world.commits["org/model@v2"]


def pr_commit(world: World) -> str:
    """The commit refs/pr/1 names, read from the served cache itself."""
    return (world.cache_dir / REPO_DIR / "refs" / "refs" / "pr" / "1").read_text().strip()


def files_v2(world: World) -> dict[str, bytes]:
    return world.contents["org/model@v2"]


def expected_blob_id(path: str, data: bytes) -> str:
    if path in LFS_FILES:
        return git_sha1(lfs_pointer(hashlib.sha256(data).hexdigest(), len(data)))
    return git_sha1(data)


def expected_tree(files: dict[str, bytes], prefix: str = "", recursive: bool = True) -> set[tuple[str, str]]:
    """(kind, path) of every entry a tree listing under ``prefix`` must contain."""
    base = prefix + "/" if prefix else ""
    out: set[tuple[str, str]] = set()
    for path in files:
        if not path.startswith(base):
            continue
        parts = path[len(base) :].split("/")
        for depth in range(1, len(parts)):
            out.add(("dir", base + "/".join(parts[:depth])))
            if not recursive:
                break
        if recursive or len(parts) == 1:
            out.add(("file", path))
    return out


def kinds(entries: list[RepoFile | RepoFolder]) -> list[tuple[str, str]]:
    return [("file" if isinstance(e, RepoFile) else "dir", e.path) for e in entries]


def download(server: HubServer, tmp_path: Path, repo_id: str, filename: str, **kw: object) -> Path:
    kw.setdefault("token", False)
    return Path(hf_hub_download(repo_id, filename, endpoint=server.url, cache_dir=tmp_path / "c", **kw))  # type: ignore[arg-type]


# =============================================================================================
# model_info / dataset_info
# =============================================================================================


@pytest.mark.parametrize("revision", [None, "main", "refs/heads/main", "v1.0", "v1-commit", "refs/pr/1"])
def test_model_info_at_revisions(server: HubServer, world: World, revision: str | None) -> None:
    expected = {
        None: v2(world),
        "main": v2(world),
        "refs/heads/main": v2(world),
        "v1.0": v1(world),
        "v1-commit": v1(world),
        "refs/pr/1": pr_commit(world),
    }[revision]
    rev = v1(world) if revision == "v1-commit" else revision
    info = api(server).model_info("org/model", revision=rev)
    assert info.id == "org/model"
    assert info.sha == expected
    names = {s.rfilename for s in info.siblings or []}
    if revision == "refs/pr/1":
        assert names == set(files_v2(world)) | {"extra.txt"}
    else:
        assert names == set(world.contents["org/model@v1" if expected == v1(world) else "org/model@v2"])


def test_model_info_files_metadata(server: HubServer, world: World) -> None:
    info = api(server).model_info("org/model", files_metadata=True)
    files = files_v2(world)
    by_name = {s.rfilename: s for s in info.siblings or []}
    assert set(by_name) == set(files)
    for path, data in files.items():
        sib = by_name[path]
        assert sib.size == len(data), path
        assert sib.blob_id == expected_blob_id(path, data), path
        if path in LFS_FILES:
            assert sib.lfs is not None, path
            assert sib.lfs.sha256 == hashlib.sha256(data).hexdigest()
            assert sib.lfs.size == len(data)
            assert sib.lfs.pointer_size == len(lfs_pointer(sib.lfs.sha256, len(data)))
        else:
            assert sib.lfs is None, path
    # Without files_metadata the siblings carry names only.
    plain = api(server).model_info("org/model")
    assert all(s.size is None and s.lfs is None for s in plain.siblings or [])


def test_model_info_card_data_and_tags(server: HubServer, world: World) -> None:
    info = api(server).model_info("org/model")
    assert info.card_data is not None
    assert info.card_data.license == "mit"
    assert info.card_data["pipeline_tag"] == "text-classification"
    assert info.card_data["library_name"] == "transformers"
    assert info.card_data["base_model"] == "org/base"
    assert info.pipeline_tag == "text-classification"
    assert info.library_name == "transformers"
    assert {"license:mit", "transformers", "test", "base_model:org/base"} <= set(info.tags or [])
    assert info.private is False and info.gated is False and info.disabled is False
    assert info.likes == 2
    assert isinstance(info.last_modified, datetime) and isinstance(info.created_at, datetime)
    assert info.created_at <= info.last_modified


def test_model_info_at_tag_reads_that_commits_card(server: HubServer, world: World) -> None:
    # Same README in both commits, so the card is identical; the sha is what differs.
    old = api(server).model_info("org/model", revision="v1.0", files_metadata=True)
    cfg = next(s for s in old.siblings or [] if s.rfilename == "config.json")
    assert cfg.blob_id == git_sha1(world.contents["org/model@v1"]["config.json"])
    assert old.card_data is not None and old.card_data.license == "mit"


def test_dataset_info(server: HubServer, world: World) -> None:
    info = api(server).dataset_info("org/data", files_metadata=True)
    assert info.id == "org/data"
    assert info.sha == world.commits["datasets/org/data"]
    assert {s.rfilename for s in info.siblings or []} == {"README.md", "data/train.csv"}
    csv = next(s for s in info.siblings or [] if s.rfilename == "data/train.csv")
    assert csv.size == len(b"a,b\n1,2\n") and csv.blob_id == git_sha1(b"a,b\n1,2\n")
    assert info.card_data is not None and info.card_data.license == "cc-by-4.0"
    assert "license:cc-by-4.0" in (info.tags or [])
    # A dataset is not a model, and the other way round.
    with pytest.raises(RepositoryNotFoundError):
        api(server).model_info("org/data")
    with pytest.raises(RepositoryNotFoundError):
        api(server).dataset_info("org/model")


def test_model_info_repo_without_namespace(server: HubServer, world: World) -> None:
    info = api(server).model_info("gpt-tiny")
    assert info.id == "gpt-tiny"
    assert info.sha == world.commits["noname"]
    assert info.author is None
    assert [s.rfilename for s in info.siblings or []] == ["config.json"]
    assert api(server).model_info("gpt-tiny", revision="main").sha == world.commits["noname"]
    assert [e.path for e in api(server).list_repo_tree("gpt-tiny")] == ["config.json"]


def test_repo_info_and_repo_exists(server: HubServer) -> None:
    assert api(server).repo_exists("org/model")
    assert api(server).repo_exists("org/data", repo_type="dataset")
    assert not api(server).repo_exists("org/nothing")
    assert not api(server).repo_exists("org/private")
    assert api(server, TOKEN).repo_exists("org/private")
    assert api(server).file_exists("org/model", "sub/dir/notes.txt")
    assert not api(server).file_exists("org/model", "sub/dir/nope.txt")
    assert api(server).revision_exists("org/model", "v1.0")
    assert not api(server).revision_exists("org/model", "v9")


def test_card_data_that_is_not_plain_json(fresh_server: HubServer, fresh_world: World) -> None:
    """YAML gives dates, bytes and alias cycles; model_info must still answer (with JSON)."""
    readme = (
        "---\nlicense: mit\nreleased: 2024-01-02\nblob: !!binary aGVsbG8=\n"
        "when:\n  2024-03-04: launch\nloop: &x [*x]\n---\n# Card\n"
    )
    write_repo(fresh_world.cache_dir, "org/dated", {"README.md": readme, "config.json": b"{}"})
    info = HfApi(endpoint=fresh_server.url, token=False).model_info("org/dated")
    assert info.card_data is not None
    assert info.card_data.license == "mit"
    assert "2024-01-02" in str(info.card_data["released"])
    assert "license:mit" in (info.tags or [])
    deep = "---\nlicense: mit\nx: " + "[" * 3000 + "\n---\n"
    write_repo(fresh_world.cache_dir, "org/deep", {"README.md": deep})
    assert HfApi(endpoint=fresh_server.url, token=False).model_info("org/deep").id == "org/deep"


# =============================================================================================
# list_models / list_datasets
# =============================================================================================

PUBLIC_MODELS = {"gpt-tiny", "org/gated", "org/model", "org/stub", "other/thing"}


def test_list_models_pages_through_everything_exactly_once(server: HubServer) -> None:
    ids = [m.id for m in api(server).list_models()]
    assert len(ids) == len(set(ids))
    assert set(ids) == PUBLIC_MODELS
    with_token = [m.id for m in api(server, TOKEN).list_models()]
    assert sorted(with_token) == sorted(PUBLIC_MODELS | {"org/private"})
    other = [m.id for m in api(server, OTHER_TOKEN).list_models()]
    assert set(other) == PUBLIC_MODELS


def test_search_link_paging_raw(server: HubServer) -> None:
    """page_size=2: every page holds at most 2 results and a Link to the next."""
    url: str | None = f"{server.url}/api/models"
    seen: list[str] = []
    pages = 0
    with httpx2.Client() as client:
        while url:
            r = client.get(url)
            assert r.status_code == 200
            page = r.json()
            assert 1 <= len(page) <= 2
            seen += [m["id"] for m in page]
            url = r.links.get("next", {}).get("url")
            pages += 1
            assert pages < 10
    assert pages == 3
    assert sorted(seen) == sorted(PUBLIC_MODELS)
    # limit is honoured by the server itself, across pages.
    r = httpx2.get(f"{server.url}/api/models", params={"limit": 3, "sort": "likes"})
    first = r.json()
    nxt = httpx2.get(r.links["next"]["url"])
    assert [m["id"] for m in first + nxt.json()] == ["gpt-tiny", "org/model", "other/thing"]
    assert "next" not in nxt.links


def test_list_models_search_author_filter_pipeline(server: HubServer) -> None:
    a = api(server)
    assert {m.id for m in a.list_models(search="model")} == {"org/model"}
    assert {m.id for m in a.list_models(search="TINY")} == {"gpt-tiny"}
    assert {m.id for m in a.list_models(search="zzz-nothing")} == set()
    assert {m.id for m in a.list_models(author="org")} == {"org/gated", "org/model", "org/stub"}
    assert {m.id for m in api(server, TOKEN).list_models(author="org")} == {
        "org/gated",
        "org/model",
        "org/stub",
        "org/private",
    }
    assert {m.id for m in a.list_models(filter="transformers")} == {"org/model"}
    assert {m.id for m in a.list_models(filter="gguf")} == {"other/thing"}
    assert {m.id for m in a.list_models(filter=["license:mit", "test"])} == {"org/model"}
    assert {m.id for m in a.list_models(filter=["license:mit", "gguf"])} == set()
    assert {m.id for m in a.list_models(pipeline_tag="text-generation")} == {"other/thing"}
    assert {m.id for m in a.list_models(pipeline_tag="text-classification", author="org")} == {"org/model"}
    assert {m.id for m in a.list_models(gated=True)} == {"org/gated"}


def test_list_models_card_data_full_and_expand(server: HubServer, world: World) -> None:
    a = api(server)
    (with_card,) = a.list_models(search="org/model", cardData=True)
    assert with_card.card_data is not None and with_card.card_data.license == "mit"
    (full,) = a.list_models(search="tiny", full=True)
    assert [s.rfilename for s in full.siblings or []] == ["config.json"]
    likes = {m.id: (m.likes, m.sha, m.downloads) for m in a.list_models(expand=["likes"])}
    assert likes["gpt-tiny"] == (50, None, None)  # only what was asked for
    info = a.model_info("org/model", expand=["likes", "sha"])
    assert (info.likes, info.sha, info.siblings, info.card_data) == (2, v2(world), None, None)


def test_list_models_sort_and_limit(server: HubServer) -> None:
    a = api(server)
    by_downloads = list(a.list_models(sort="downloads"))
    assert {m.id for m in by_downloads} == PUBLIC_MODELS
    counts = [m.downloads for m in by_downloads]
    assert counts == sorted(counts, reverse=True)  # type: ignore[type-var]
    assert by_downloads[0].id == "other/thing"  # 500 downloads in the sidecar
    by_likes = [m.id for m in a.list_models(sort="likes")]
    assert by_likes[:3] == ["gpt-tiny", "org/model", "other/thing"]  # 50, 2, 1
    assert [m.id for m in a.list_models(sort="likes", limit=1)] == ["gpt-tiny"]
    assert len(list(a.list_models(limit=3))) == 3
    for key in ("last_modified", "created_at"):
        listed = list(a.list_models(sort=key))
        assert {m.id for m in listed} == PUBLIC_MODELS
        stamps = [getattr(m, key) for m in listed]
        assert all(isinstance(s, datetime) for s in stamps)
        assert stamps == sorted(stamps, reverse=True)


def test_list_models_sort_by_dates(fresh_server: HubServer, fresh_world: World) -> None:
    base = datetime(2020, 1, 1, tzinfo=timezone.utc)
    cache = fresh_world.cache_dir
    # "dates/old" was created first but changed last; "dates/new" was created last.
    c1 = write_repo(cache, "dates/old", {"a.txt": b"1"}, date=base)
    write_repo(cache, "dates/mid", {"a.txt": b"2"}, date=base + timedelta(days=10))
    write_repo(cache, "dates/new", {"a.txt": b"3"}, date=base + timedelta(days=20))
    write_repo(cache, "dates/old", {"a.txt": b"4"}, date=base + timedelta(days=30), parent=c1)
    a = HfApi(endpoint=fresh_server.url, token=False)
    assert [m.id for m in a.list_models(author="dates", sort="last_modified")] == [
        "dates/old",
        "dates/new",
        "dates/mid",
    ]
    assert [m.id for m in a.list_models(author="dates", sort="created_at")] == ["dates/new", "dates/mid", "dates/old"]
    old = a.model_info("dates/old")
    assert old.created_at == base and old.last_modified == base + timedelta(days=30)


def test_list_datasets(server: HubServer, world: World) -> None:
    listed = list(api(server).list_datasets())
    assert [d.id for d in listed] == ["org/data"]
    assert listed[0].sha in (None, world.commits["datasets/org/data"])
    assert [d.id for d in api(server).list_datasets(search="nothing")] == []
    assert [d.id for d in api(server).list_datasets(author="org")] == ["org/data"]


# =============================================================================================
# list_repo_tree / get_paths_info / list_repo_refs
# =============================================================================================


@pytest.mark.parametrize(
    ("path", "recursive"),
    [("", True), ("", False), ("sub", False), ("sub", True), ("sub/dir", False)],
)
def test_list_repo_tree(server: HubServer, world: World, path: str, recursive: bool) -> None:
    entries = list(api(server).list_repo_tree("org/model", path_in_repo=path or None, recursive=recursive))
    got = kinds(entries)
    assert len(got) == len(set(got))  # paging gave every entry once
    assert set(got) == expected_tree(files_v2(world), path, recursive)
    files = files_v2(world)
    for e in entries:
        if isinstance(e, RepoFile):
            assert e.size == len(files[e.path])
            assert e.blob_id == expected_blob_id(e.path, files[e.path])
            if e.path in LFS_FILES:
                assert e.lfs is not None and e.lfs.sha256 == hashlib.sha256(files[e.path]).hexdigest()
            else:
                assert e.lfs is None
        else:
            assert e.tree_id


def test_list_repo_tree_at_tag_and_folder_oids(server: HubServer, world: World) -> None:
    old = {e.path: e for e in api(server).list_repo_tree("org/model", revision="v1.0", recursive=True)}
    assert isinstance(old["config.json"], RepoFile)
    assert old["config.json"].blob_id == git_sha1(world.contents["org/model@v1"]["config.json"])
    pr = {e.path for e in api(server).list_repo_tree("org/model", revision="refs/pr/1")}
    assert "extra.txt" in pr


def test_folder_oids_follow_content(server: HubServer, fresh_server: HubServer, fresh_world: World) -> None:
    """Like git tree ids: a folder's oid depends on what is under it, not on where it sits."""
    a = api(server)
    main = {e.path: e.tree_id for e in a.list_repo_tree("org/model", recursive=True) if isinstance(e, RepoFolder)}
    assert main["sub"] != main["sub/dir"]
    old = {
        e.path: e.tree_id
        for e in a.list_repo_tree("org/model", revision="v1.0", recursive=True)
        if isinstance(e, RepoFolder)
    }
    assert old == main  # nothing under sub/ changed between v1.0 and main
    (info,) = a.get_paths_info("org/model", ["sub"])
    assert isinstance(info, RepoFolder) and info.tree_id == main["sub"]

    c1 = write_repo(fresh_world.cache_dir, "org/folders", {"a/x.txt": b"1", "b/x.txt": b"1"})
    write_repo(fresh_world.cache_dir, "org/folders", {"a/x.txt": b"1", "b/x.txt": b"2"}, parent=c1)
    f = HfApi(endpoint=fresh_server.url, token=False)
    before = {e.path: e.tree_id for e in f.list_repo_tree("org/folders", revision=c1)}
    after = {e.path: e.tree_id for e in f.list_repo_tree("org/folders")}
    assert before["a"] == before["b"] == after["a"]  # same content, same oid
    assert after["b"] != before["b"]  # b/x.txt changed


def test_list_repo_tree_pages_raw(server: HubServer, world: World) -> None:
    url: str | None = f"{server.url}/api/models/org/model/tree/main?recursive=true"
    seen: list[str] = []
    while url:
        r = httpx2.get(url)
        assert r.status_code == 200
        assert len(r.json()) <= 3
        seen += [e["path"] for e in r.json()]
        url = r.links.get("next", {}).get("url")
    assert sorted(seen) == sorted(p for _, p in expected_tree(files_v2(world)))


def test_list_repo_tree_expand(server: HubServer, world: World) -> None:
    entries = list(api(server).list_repo_tree("org/model", recursive=True, expand=True))
    assert len(entries) == len(expected_tree(files_v2(world)))
    history = {v1(world), v2(world)}
    for e in entries:
        assert e.last_commit is not None, e.path
        assert e.last_commit.oid in history
        assert isinstance(e.last_commit.date, datetime)
    cfg = next(e for e in entries if e.path == "config.json")
    assert cfg.last_commit is not None and cfg.last_commit.oid == v2(world)  # config.json changed in v2
    assert cfg.last_commit.title == "second"


def test_list_repo_tree_unknown_path(server: HubServer, world: World) -> None:
    with pytest.raises(RemoteEntryNotFoundError) as info:
        list(api(server).list_repo_tree("org/model", path_in_repo="no/such/dir"))
    assert isinstance(info.value, EntryNotFoundError)
    assert info.value.response.status_code == 404
    with pytest.raises(RevisionNotFoundError):
        list(api(server).list_repo_tree("org/model", revision="no-branch"))
    with pytest.raises(RepositoryNotFoundError):
        list(api(server).list_repo_tree("org/missing"))


def test_get_paths_info(server: HubServer, world: World) -> None:
    files = files_v2(world)
    got = api(server).get_paths_info(
        "org/model", ["config.json", "sub", "nope.txt", "sub/dir/notes.txt", "big.bin", "sub/nope"]
    )
    by_path = {e.path: e for e in got}
    assert set(by_path) == {"config.json", "sub", "sub/dir/notes.txt", "big.bin"}
    assert isinstance(by_path["sub"], RepoFolder)
    cfg = by_path["config.json"]
    assert isinstance(cfg, RepoFile) and cfg.size == len(files["config.json"])
    assert cfg.blob_id == git_sha1(files["config.json"]) and cfg.lfs is None
    big = by_path["big.bin"]
    assert isinstance(big, RepoFile) and big.lfs is not None
    assert big.lfs.sha256 == hashlib.sha256(files["big.bin"]).hexdigest()
    old = api(server).get_paths_info("org/model", ["config.json"], revision="v1.0", expand=True)
    assert len(old) == 1 and isinstance(old[0], RepoFile)
    assert old[0].blob_id == git_sha1(world.contents["org/model@v1"]["config.json"])
    assert old[0].last_commit is not None and old[0].last_commit.oid == v1(world)
    assert api(server).get_paths_info("org/model", ["nothing", "at/all"]) == []
    ds = api(server).get_paths_info("org/data", ["data/train.csv", "data"], repo_type="dataset")
    assert {e.path for e in ds} == {"data/train.csv", "data"}


def test_list_repo_refs(server: HubServer, world: World) -> None:
    refs = api(server).list_repo_refs("org/model")
    assert {(b.name, b.ref, b.target_commit) for b in refs.branches} == {("main", "refs/heads/main", v2(world))}
    assert {(t.name, t.ref, t.target_commit) for t in refs.tags} == {("v1.0", "refs/tags/v1.0", v1(world))}
    assert not refs.pull_requests
    with_prs = api(server).list_repo_refs("org/model", include_pull_requests=True)
    assert [(p.ref, p.target_commit) for p in with_prs.pull_requests or []] == [("refs/pr/1", pr_commit(world))]
    ds = api(server).list_repo_refs("org/data", repo_type="dataset")
    assert [b.target_commit for b in ds.branches] == [world.commits["datasets/org/data"]]
    with pytest.raises(RepositoryNotFoundError):
        api(server).list_repo_refs("org/private")
    assert api(server, TOKEN).list_repo_refs("org/private").branches[0].target_commit == world.commits["org/private"]


# =============================================================================================
# hf_hub_download / snapshot_download
# =============================================================================================


@pytest.mark.parametrize("path", ["config.json", "model.safetensors", "big.bin", "README.md"])
def test_hf_hub_download_bytes_and_blob_names(server: HubServer, world: World, tmp_path: Path, path: str) -> None:
    data = files_v2(world)[path]
    local = download(server, tmp_path, "org/model", path)
    assert local.read_bytes() == data
    assert local.parent == tmp_path / "c" / REPO_DIR / "snapshots" / v2(world)
    blob = Path(os.path.realpath(local))
    assert blob.parent == (tmp_path / "c" / REPO_DIR / "blobs").resolve()
    expected = hashlib.sha256(data).hexdigest() if path in LFS_FILES else git_sha1(data)
    assert blob.name == expected
    assert (tmp_path / "c" / REPO_DIR / "refs" / "main").read_text() == v2(world)


@pytest.mark.parametrize("revision", ["v1.0", "v1-commit"])
def test_hf_hub_download_at_tag_and_commit(server: HubServer, world: World, tmp_path: Path, revision: str) -> None:
    rev = v1(world) if revision == "v1-commit" else revision
    local = download(server, tmp_path, "org/model", "config.json", revision=rev)
    assert local.read_bytes() == world.contents["org/model@v1"]["config.json"]
    assert local.parent.name == v1(world)
    if revision == "v1.0":
        assert (tmp_path / "c" / REPO_DIR / "refs" / "v1.0").read_text() == v1(world)


def test_hf_hub_download_pr_ref_subfolder_dataset(server: HubServer, world: World, tmp_path: Path) -> None:
    assert download(server, tmp_path, "org/model", "extra.txt", revision="refs/pr/1").read_bytes() == b"pr\n"
    nested = download(server, tmp_path, "org/model", "notes.txt", subfolder="sub/dir")
    assert nested.read_bytes() == b"nested file\n"
    assert nested == tmp_path / "c" / REPO_DIR / "snapshots" / v2(world) / "sub" / "dir" / "notes.txt"
    csv = download(server, tmp_path, "org/data", "data/train.csv", repo_type="dataset")
    assert csv.read_bytes() == b"a,b\n1,2\n"
    assert "datasets--org--data" in csv.parts
    assert download(server, tmp_path, "gpt-tiny", "config.json").read_bytes() == b"{}"


def test_hf_hub_download_unicode_and_odd_names(fresh_server: HubServer, fresh_world: World, tmp_path: Path) -> None:
    files = {"モデル/説明.txt": "こんにちは".encode(), "a b+c%20.txt": b"odd", "#hash?.txt": b"q", "ü.json": b"{}"}
    write_repo(fresh_world.cache_dir, "uni/names", files)
    for path, data in files.items():
        local = download(fresh_server, tmp_path, "uni/names", path)
        assert local.read_bytes() == data, path
    with pytest.raises(RemoteEntryNotFoundError):
        download(fresh_server, tmp_path, "uni/names", "モデル/ない.txt")
    a = HfApi(endpoint=fresh_server.url, token=False)
    assert [e.path for e in a.list_repo_tree("uni/names", path_in_repo="モデル")] == ["モデル/説明.txt"]
    assert {e.path for e in a.get_paths_info("uni/names", list(files))} == set(files)


def test_hf_hub_download_ignores_a_stale_incomplete_file(server: HubServer, world: World, tmp_path: Path) -> None:
    """huggingface_hub 2.4 writes to ``<etag>.<random>.incomplete`` and never resumes ``<etag>.incomplete``."""
    data = files_v2(world)["big.bin"]
    etag = hashlib.sha256(data).hexdigest()
    blobs = tmp_path / "c" / REPO_DIR / "blobs"
    blobs.mkdir(parents=True)
    stale = blobs / f"{etag}.incomplete"
    stale.write_bytes(data[: len(data) // 2])
    local = download(server, tmp_path, "org/model", "big.bin")
    assert local.read_bytes() == data
    assert Path(os.path.realpath(local)).name == etag
    assert stale.read_bytes() == data[: len(data) // 2]  # left as it was


def test_client_http_get_resumes_with_range(server: HubServer, world: World, tmp_path: Path) -> None:
    """The client's own resume routine (``http_get(resume_size=N)``) against the server's Range support."""
    from huggingface_hub.file_download import http_get

    data = files_v2(world)["big.bin"]
    half = len(data) // 2
    part = tmp_path / "part"
    part.write_bytes(data[:half])
    with part.open("ab") as fp:
        http_get(f"{server.url}/org/model/resolve/main/big.bin", fp, resume_size=half, expected_size=len(data))
    assert part.read_bytes() == data


class CuttingProxy:
    """A TCP proxy that drops the first GET of ``needle`` after ``cut`` response bytes."""

    def __init__(self, upstream: tuple[str, int], needle: bytes, cut: int) -> None:
        self.upstream, self.needle, self.cut = upstream, needle, cut
        self.requests: list[bytes] = []
        self.cuts = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, down: socket.socket) -> None:
        up = socket.create_connection(self.upstream)
        budget: int | None = None
        try:
            while True:
                ready, _, _ = select.select([down, up], [], [], 10)
                if not ready:
                    return
                if down in ready:
                    data = down.recv(65536)
                    if not data:
                        return
                    self.requests.append(data)
                    head = data.split(b"\r\n\r\n", 1)[0].lower()
                    if head.startswith(b"get ") and self.needle in head and b"range:" not in head and not self.cuts:
                        budget = self.cut
                    up.sendall(data)
                if up in ready:
                    data = up.recv(65536)
                    if not data:
                        return
                    if budget is not None:
                        data = data[:budget]
                        budget -= len(data)
                        down.sendall(data)
                        if budget <= 0:
                            self.cuts += 1
                            down.shutdown(socket.SHUT_RDWR)
                            return
                    else:
                        down.sendall(data)
        finally:
            up.close()
            down.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.mark.parametrize("chunk", [64 * 1024, None])
def test_interrupted_download_resumes_with_range(
    server: HubServer, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int | None
) -> None:
    """Cut the body mid-way: the client retries with ``Range: bytes=N-`` and ends with the right bytes.

    huggingface_hub reads the body in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces and only counts what
    it has written, so a cut inside the first 10 MiB restarts from zero without a Range. Smaller
    chunks make the client resume as it would on a large file.
    """
    from huggingface_hub import constants

    if chunk:
        monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", chunk)
    data = files_v2(world)["big.bin"]
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    proxy = CuttingProxy((host, int(port)), b"/big.bin", cut=1024 * 1024)
    try:
        local = Path(hf_hub_download("org/model", "big.bin", endpoint=proxy.url, cache_dir=tmp_path / "c", token=False))
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert local.read_bytes() == data
    gets = [r for r in proxy.requests if r.startswith(b"GET ")]
    ranges = [r for r in gets if b"\r\nrange: bytes=" in r.lower()]
    # One cut, one retry; under CPU load one more retry was seen once (the retry's connection
    # closed before an answer: noted for issue 14's engine work), never a wrong byte.
    assert 2 <= len(gets) <= 3
    if chunk is None:
        assert ranges == []  # a restart from byte 0
        return
    assert 1 <= len(ranges) <= len(gets) - 1
    offset = int(ranges[0].lower().split(b"range: bytes=")[1].split(b"-")[0])
    assert 0 < offset <= 1024 * 1024 and offset % chunk == 0


def test_range_requests_raw(server: HubServer, world: World) -> None:
    data = files_v2(world)["big.bin"]
    size = len(data)
    url = f"{server.url}/org/model/resolve/main/big.bin"
    with httpx2.Client() as client:
        r = client.get(url, headers={"Range": "bytes=1000-"})
        assert r.status_code == 206
        assert r.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
        assert r.content == data[1000:]
        assert int(r.headers["Content-Length"]) == size - 1000
        r = client.get(url, headers={"Range": "bytes=10-19"})
        assert (r.status_code, r.headers["Content-Range"], r.content) == (206, f"bytes 10-19/{size}", data[10:20])
        r = client.get(url, headers={"Range": "bytes=-100"})
        assert r.status_code == 206
        assert r.headers["Content-Range"] == f"bytes {size - 100}-{size - 1}/{size}"
        assert r.content == data[-100:]
        r = client.get(url, headers={"Range": f"bytes={size - 1}-{size + 50}"})
        assert (r.status_code, r.content) == (206, data[-1:])
        for bad in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0", "bytes=9-3"):
            r = client.get(url, headers={"Range": bad})
            assert r.status_code == 416, bad
            assert r.headers["Content-Range"] == f"bytes */{size}"
            assert "error" in r.json()
        # Ranges we do not serve are ignored, as RFC 9110 says: the whole file comes back.
        for ignored in ("items=0-10", "bytes=0-1,5-6"):
            r = client.get(url, headers={"Range": ignored})
            assert (r.status_code, len(r.content)) == (200, size), ignored
        r = client.get(url, headers={"Range": "bytes=0-"})
        assert r.status_code in (200, 206) and r.content == data


def test_empty_file_and_range(fresh_server: HubServer, fresh_world: World, tmp_path: Path) -> None:
    write_repo(fresh_world.cache_dir, "org/empty", {"empty.txt": b"", "__init__.py": b""})
    assert download(fresh_server, tmp_path, "org/empty", "empty.txt").read_bytes() == b""
    url = f"{fresh_server.url}/org/empty/resolve/main/empty.txt"
    for rng in (None, "bytes=0-", "bytes=-1", "bytes=0-0"):
        r = httpx2.get(url, headers={"Range": rng} if rng else {})
        assert r.status_code == 200, rng
        assert r.content == b"" and r.headers["Content-Length"] == "0"
        assert "Content-Range" not in r.headers


def test_snapshot_download_allow_patterns(server: HubServer, world: World, tmp_path: Path) -> None:
    folder = Path(
        snapshot_download(
            "org/model", allow_patterns=["*.json"], endpoint=server.url, cache_dir=tmp_path / "c", token=False
        )
    )
    assert folder.name == v2(world)
    got = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert got == ["config.json"]
    assert (folder / "config.json").read_bytes() == files_v2(world)["config.json"]
    assert not list((tmp_path / "c" / REPO_DIR / "blobs").glob("*.incomplete"))


def test_snapshot_download_everything_at_tag(server: HubServer, world: World, tmp_path: Path) -> None:
    folder = Path(
        snapshot_download("org/model", revision="v1.0", endpoint=server.url, cache_dir=tmp_path / "c", token=False)
    )
    files = world.contents["org/model@v1"]
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == files
    # And at a 40-hex commit, which skips the info call.
    again = snapshot_download(
        "org/model", revision=v1(world), endpoint=server.url, cache_dir=tmp_path / "d", token=False
    )
    assert Path(again).name == v1(world)


def test_snapshot_download_dataset(server: HubServer, world: World, tmp_path: Path) -> None:
    folder = Path(
        snapshot_download("org/data", repo_type="dataset", endpoint=server.url, cache_dir=tmp_path / "c", token=False)
    )
    assert (folder / "data" / "train.csv").read_bytes() == b"a,b\n1,2\n"


# =============================================================================================
# HEAD /{repo}/resolve/...
# =============================================================================================


def test_head_regular_file(server: HubServer, world: World) -> None:
    data = files_v2(world)["config.json"]
    r = httpx2.head(f"{server.url}/org/model/resolve/main/config.json", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["X-Repo-Commit"] == v2(world)
    assert r.headers["ETag"] == f'"{git_sha1(data)}"'
    assert "X-Linked-Etag" not in r.headers and "X-Linked-Size" not in r.headers
    assert "X-Xet-Hash" not in r.headers
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.content == b""


def test_head_lfs_file(server: HubServer, world: World) -> None:
    data = files_v2(world)["model.safetensors"]
    r = httpx2.head(f"{server.url}/org/model/resolve/v1.0/model.safetensors")
    assert r.status_code == 200
    assert r.headers["X-Repo-Commit"] == v1(world)
    assert r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert r.headers["X-Linked-Size"] == str(len(data))
    assert r.headers["ETag"].startswith('"') and r.headers["ETag"].endswith('"')
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.content == b""


def test_head_matches_client_metadata(server: HubServer, world: World) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    data = files_v2(world)["big.bin"]
    meta = get_hf_file_metadata(hf_hub_url("org/model", "big.bin", endpoint=server.url), token=False)
    assert meta.commit_hash == v2(world)
    assert meta.etag == hashlib.sha256(data).hexdigest()
    assert meta.size == len(data)
    assert meta.xet_file_data is None
    ds = get_hf_file_metadata(
        hf_hub_url("org/data", "data/train.csv", repo_type="dataset", endpoint=server.url), token=False
    )
    assert ds.etag == git_sha1(b"a,b\n1,2\n")
    assert ds.commit_hash == world.commits["datasets/org/data"]


def test_head_keeps_the_connection_usable(server: HubServer, world: World) -> None:
    """No body after a HEAD: the next response on the same keep-alive connection parses."""
    with httpx2.Client() as client:
        for _ in range(3):
            assert client.head(f"{server.url}/org/model/resolve/main/big.bin").status_code == 200
            assert client.head(f"{server.url}/org/model/resolve/main/nope").status_code == 404
            assert client.head(f"{server.url}/api/models/org/model").status_code == 200
            r = client.get(f"{server.url}/org/model/resolve/main/config.json")
            assert r.content == files_v2(world)["config.json"]


# =============================================================================================
# Errors
# =============================================================================================


def test_missing_repo(server: HubServer, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError) as info:
        api(server).model_info("org/does-not-exist")
    assert not isinstance(info.value, GatedRepoError)
    with pytest.raises(RepositoryNotFoundError):
        download(server, tmp_path, "org/does-not-exist", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        download(server, tmp_path, "nothing-here", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        api(server).dataset_info("org/does-not-exist")


def test_missing_revision(server: HubServer, tmp_path: Path) -> None:
    with pytest.raises(RevisionNotFoundError):
        api(server).model_info("org/model", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        download(server, tmp_path, "org/model", "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        download(server, tmp_path, "org/model", "config.json", revision="0" * 40)


def test_missing_file_carries_commit_and_is_cached(server: HubServer, world: World, tmp_path: Path) -> None:
    with pytest.raises(RemoteEntryNotFoundError) as info:
        download(server, tmp_path, "org/model", "nope.json")
    assert info.value.response.headers["X-Repo-Commit"] == v2(world)
    # The client records the miss under .no_exist/<commit>/ thanks to X-Repo-Commit.
    assert (tmp_path / "c" / REPO_DIR / ".no_exist" / v2(world) / "nope.json").exists()
    with pytest.raises(RemoteEntryNotFoundError):
        download(server, tmp_path, "org/model", "extra.txt")  # exists only on refs/pr/1
    with pytest.raises(RemoteEntryNotFoundError):
        download(server, tmp_path, "org/model", "sub")  # a folder is not a file


def test_gated_repo(server: HubServer, world: World, tmp_path: Path) -> None:
    info = api(server).model_info("org/gated")
    assert info.gated == "manual"
    assert info.sha == world.commits["org/gated"]
    assert "org/gated" in {m.id for m in api(server).list_models()}
    with pytest.raises(GatedRepoError) as no_token:
        download(server, tmp_path, "org/gated", "model.safetensors")
    assert no_token.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as wrong_token:
        download(server, tmp_path, "org/gated", "model.safetensors", token=OTHER_TOKEN)
    assert wrong_token.value.response.status_code == 403
    ok = download(server, tmp_path, "org/gated", "model.safetensors", token=TOKEN)
    assert hashlib.sha256(ok.read_bytes()).hexdigest() == Path(os.path.realpath(ok)).name


def test_private_repo(server: HubServer, world: World, tmp_path: Path) -> None:
    for token in (False, OTHER_TOKEN, "hf_not_a_known_token"):
        with pytest.raises(RepositoryNotFoundError) as info:
            api(server, token).model_info("org/private")
        assert not isinstance(info.value, GatedRepoError)
        with pytest.raises(RepositoryNotFoundError):
            download(server, tmp_path, "org/private", "config.json", token=token)
        with pytest.raises(RepositoryNotFoundError):
            list(api(server, token).list_repo_tree("org/private"))
    info = api(server, TOKEN).model_info("org/private")
    assert info.private is True and info.sha == world.commits["org/private"]
    assert download(server, tmp_path, "org/private", "config.json", token=TOKEN).read_bytes() == b'{"secret": true}'


def test_error_bodies_and_headers_raw(server: HubServer) -> None:
    cases = [
        ("/api/models/org/missing", "RepoNotFound", 401),
        ("/api/models/org/model/revision/nope", "RevisionNotFound", 404),
        ("/org/model/resolve/main/nope.txt", "EntryNotFound", 404),
        ("/org/gated/resolve/main/model.safetensors", "GatedRepo", 401),
        ("/api/models/org/private", "RepoNotFound", 401),
    ]
    with httpx2.Client() as client:
        for path, code, status in cases:
            r = client.get(server.url + path)
            assert (r.status_code, r.headers.get("X-Error-Code")) == (status, code), path
            assert isinstance(r.json()["error"], str) and r.json()["error"]
            h = client.head(server.url + path)
            assert (h.status_code, h.headers.get("X-Error-Code")) == (status, code), path
            assert h.content == b""
        r = client.get(server.url + "/api/models/org/private", headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")
        r = client.get(server.url + "/api/models", params={"sort": "bogus"})
        assert r.status_code == 400 and "error" in r.json()


def test_whoami(server: HubServer) -> None:
    assert api(server, TOKEN).whoami()["name"] == "reader"
    with pytest.raises(HfHubHTTPError) as info:
        api(server, "hf_wrong").whoami()
    assert info.value.response.status_code == 401


# =============================================================================================
# The `hf` CLI, and many clients at once
# =============================================================================================


def test_hf_download_cli(server: HubServer, world: World, tmp_path: Path) -> None:
    hf = Path(sys.executable).with_name("hf")
    env = {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "NO_COLOR": "1",
    }
    env.pop("HF_TOKEN", None)
    proc = subprocess.run(
        [str(hf), "download", "org/model", "config.json", "sub/dir/notes.txt", "--revision", "v1.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    snap = tmp_path / "hub" / REPO_DIR / "snapshots" / v1(world)
    assert (snap / "config.json").read_bytes() == world.contents["org/model@v1"]["config.json"]
    assert (snap / "sub" / "dir" / "notes.txt").read_bytes() == b"nested file\n"
    assert not (snap / "big.bin").exists()
    proc = subprocess.run(
        [str(hf), "download", "org/private", "config.json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert not (tmp_path / "hub" / "models--org--private" / "snapshots").exists()


def test_many_concurrent_downloads(server: HubServer, world: World, tmp_path: Path) -> None:
    data = files_v2(world)["big.bin"]

    def one(i: int) -> bytes:
        path = hf_hub_download("org/model", "big.bin", endpoint=server.url, cache_dir=tmp_path / f"c{i}", token=False)
        return Path(path).read_bytes()

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    assert all(r == data for r in results)


def test_many_concurrent_clients_one_cache(server: HubServer, world: World, tmp_path: Path) -> None:
    files = files_v2(world)

    def one(path: str) -> bytes:
        return Path(
            hf_hub_download("org/model", path, endpoint=server.url, cache_dir=tmp_path / "shared", token=False)
        ).read_bytes()

    work = [p for p in files for _ in range(4)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, work))
    assert results == [files[p] for p in work]


def test_many_concurrent_api_calls(server: HubServer, world: World) -> None:
    def one(i: int) -> object:
        a = api(server, TOKEN if i % 2 else False)
        kind = i % 4
        if kind == 0:
            return a.model_info("org/model").sha
        if kind == 1:
            return len(list(a.list_repo_tree("org/model", recursive=True)))
        if kind == 2:
            return len(list(a.list_models()))
        return httpx2.get(f"{server.url}/org/model/resolve/main/config.json").content

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(64)))
    n_tree = len(expected_tree(files_v2(world)))
    for i, r in enumerate(results):
        kind = i % 4
        expected: object = [v2(world), n_tree, len(PUBLIC_MODELS) + (i % 2), files_v2(world)["config.json"]][kind]
        assert r == expected, i


def test_download_counter_and_served_card(fresh_server: HubServer, fresh_world: World, tmp_path: Path) -> None:
    a = HfApi(endpoint=fresh_server.url, token=False)
    before = a.model_info("other/thing").downloads
    hf_hub_download("other/thing", "x.gguf", endpoint=fresh_server.url, cache_dir=tmp_path / "c", token=False)
    assert a.model_info("other/thing").downloads == (before or 0) + 1
    # A card changed in the cache is served changed.
    write_repo(fresh_world.cache_dir, "org/card", {"README.md": model_card(license="mit")})
    assert a.model_info("org/card").card_data.license == "mit"  # type: ignore[union-attr]
    write_repo(fresh_world.cache_dir, "org/card", {"README.md": model_card(license="apache-2.0")})
    assert a.model_info("org/card").card_data.license == "apache-2.0"  # type: ignore[union-attr]


def test_path_with_percent_encoded_names_in_urls(server: HubServer, world: World) -> None:
    """The client quotes the revision with no safe characters; paths keep their slashes."""
    rev = quote("refs/pr/1", safe="")
    r = httpx2.get(f"{server.url}/api/models/org/model/revision/{rev}")
    assert r.status_code == 200 and r.json()["sha"] == pr_commit(world)
    r = httpx2.get(f"{server.url}/org/model/resolve/{rev}/extra.txt")
    assert (r.status_code, r.content) == (200, b"pr\n")
    r = httpx2.get(f"{server.url}/api/models/org/model/tree/main/{quote('sub/dir', safe='')}")
    assert [e["path"] for e in r.json()] == ["sub/dir/notes.txt"]
    assert json.loads(httpx2.get(f"{server.url}/api/models/org/model/refs").content)["branches"][0]["name"] == "main"
