"""Build repositories into a huggingface_hub-layout cache from ``{path: bytes}``.

Tests, benchmarks and the demo make their worlds with :func:`write_repo`; ``hfa serve``
then serves them like the Hub. Blobs are named as huggingface_hub names them (sha256
for LFS files, git-sha1 otherwise), snapshots are relative symlinks, refs name commits.
Extra facts the cache layout cannot hold (which refs are tags, commit dates, download
counts) go to the optional ``.hfa.json`` sidecar that huggingface_hub ignores.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from hfa.cache.hashing import git_sha1, is_lfs_path, lfs_pointer
from hfa.cache.layout import HFA_META, RepoDir, check_relpath, new_file, validate_repo_id

FileContent = bytes | str | Path


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _store_blob(repo: RepoDir, content: FileContent, lfs: bool | None, path: str) -> tuple[str, int, bool]:
    """Write one blob (idempotent); return (blob name, size, is_lfs)."""
    repo.blobs.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        size = content.stat().st_size
        with content.open("rb") as fp:
            head = fp.read(8000)
        is_lfs = is_lfs_path(path, size, head) if lfs is None else lfs
        h = hashlib.sha256() if is_lfs else hashlib.sha1(b"blob %d\0" % size)
        with content.open("rb") as fp:
            while chunk := fp.read(1 << 20):
                h.update(chunk)
        name = h.hexdigest()
        target = repo.blobs / name
        if not target.exists():
            fd, tmp = new_file(repo.blobs, ".tmp-")
            os.close(fd)
            shutil.copyfile(content, tmp)
            os.replace(tmp, target)
        return name, size, is_lfs
    data = content.encode() if isinstance(content, str) else content
    is_lfs = is_lfs_path(path, len(data), data) if lfs is None else lfs
    name = hashlib.sha256(data).hexdigest() if is_lfs else git_sha1(data)
    target = repo.blobs / name
    if not target.exists():
        fd, tmp = new_file(repo.blobs, ".tmp-")
        with os.fdopen(fd, "wb") as fp:
            fp.write(data)
        os.replace(tmp, target)
    return name, len(data), is_lfs


def read_meta(repo: RepoDir) -> dict:
    try:
        data = json.loads((repo.path / HFA_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_meta(repo: RepoDir, meta: dict) -> None:
    repo.path.mkdir(parents=True, exist_ok=True)
    tmp = repo.path / (HFA_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, repo.path / HFA_META)


def write_repo(
    cache_dir: Path | str,
    repo_id: str,
    files: Mapping[str, FileContent],
    *,
    repo_type: str = "model",
    branch: str | None = "main",
    tags: Iterable[str] = (),
    refs: Iterable[str] = (),
    lfs: Mapping[str, bool] | None = None,
    parent: str | None = None,
    message: str = "commit",
    date: datetime | None = None,
    downloads: int | None = None,
    likes: int | None = None,
) -> str:
    """Write one commit of ``repo_id`` into ``cache_dir`` and return its 40-hex sha.

    ``files`` maps repository paths to content (bytes, text, or a Path to copy).
    ``branch`` (and every name in ``refs``) is pointed at the new commit; names in
    ``tags`` too, recorded as tags in the sidecar. ``lfs`` forces a path to be an
    LFS file (True) or a regular one (False); otherwise the Hub's rules decide.
    """
    validate_repo_id(repo_id)
    repo = RepoDir(Path(cache_dir), repo_type, repo_id)
    entries: list[tuple[str, str, int, bool]] = []
    for path, content in sorted(files.items()):
        check_relpath(path)
        name, size, is_lfs = _store_blob(repo, content, (lfs or {}).get(path), path)
        entries.append((path, name, size, is_lfs))
    date = date or datetime.now(timezone.utc)
    tree = "\n".join(f"{p} {n} {s}" for p, n, s, _ in entries)
    commit = hashlib.sha1(
        f"{repo_type}:{repo_id}\nparent {parent}\ndate {_iso(date)}\n{message}\n{tree}".encode()
    ).hexdigest()
    snap = repo.snapshot(commit)
    for path, name, _size, _ in entries:
        link = snap.joinpath(*path.split("/"))
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(repo.blobs / name, link.parent)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target, link)
    snap.mkdir(parents=True, exist_ok=True)
    tags = list(tags)
    for ref in [*([branch] if branch else []), *refs, *tags]:
        ref_path = repo.refs.joinpath(*ref.split("/"))
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        ref_path.write_text(commit, encoding="utf-8")
    meta = read_meta(repo)
    if tags:
        meta["tags"] = sorted(set(meta.get("tags", [])) | set(tags))
    commits = meta.setdefault("commits", {})
    commits[commit] = {"date": _iso(date), "title": message, "parents": [parent] if parent else []}
    if downloads is not None:
        meta["downloads"] = downloads
    if likes is not None:
        meta["likes"] = likes
    write_meta(repo, meta)
    return commit


def lfs_pointer_stub(content: bytes) -> bytes:
    """The pointer text a `git clone` without git-lfs leaves in place of ``content``."""
    return lfs_pointer(hashlib.sha256(content).hexdigest(), len(content))


_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def make_safetensors(tensors: Mapping[str, tuple[str, list[int]]], *, seed: int = 0) -> bytes:
    """A valid safetensors file with the given ``{name: (dtype, shape)}`` and deterministic bytes."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    chunks: list[bytes] = []
    for name, (dtype, shape) in sorted(tensors.items()):
        n = _DTYPE_SIZES[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        chunks.append(hashlib.shake_256(f"{seed}:{name}".encode()).digest(n) if n else b"")
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + b"".join(chunks)


def model_card(**front_matter: object) -> str:
    """A README.md with YAML front matter."""
    import yaml

    body = yaml.safe_dump(front_matter, sort_keys=False).strip()
    title = front_matter.get("model_name", "Model")
    return f"---\n{body}\n---\n\n# {title}\n\nGenerated by hfa.testing.\n"


# A pickle with no global (a dict of bytes): it scans clean. And one that imports os.system: never load it.
CLEAN_PICKLE = b"\x80\x04\x95\x0f\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01w\x94C\x04\x00\x01\x02\x03\x94s."
DANGEROUS_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03."
POLICY_REPOS = (
    "org/open",
    "org/noncommercial",
    "org/gated",
    "org/pickled",
    "org/evil",
    "org/remote",
    "elsewhere/model",
)


def write_policy_world(cache_dir: Path | str, date: datetime | None = None) -> dict[str, str]:
    """Repos that exercise a ``[policy]`` (docs/policy.md), written into ``cache_dir``; their commits by id.

    ``org/open`` (apache-2.0, safetensors) passes every rule; ``org/noncommercial`` is cc-by-nc-4.0;
    ``org/gated`` (licence ``other``) is gated once the server's auth file says so
    (``"org/gated" = "gated"``); ``org/pickled`` holds only a clean pickle (``pytorch_model.bin``),
    ``org/evil`` one that imports ``os.system``; ``org/remote`` maps its classes to its own code
    (``auto_map`` and ``modeling_x.py``); ``elsewhere/model`` comes from another org.
    """
    date = date or datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    config = json.dumps({"model_type": "bert", "hidden_size": 8}).encode()
    weights = make_safetensors({"w": ("F32", [16, 16])}, seed=7)

    def card(license: str) -> bytes:
        return model_card(license=license, library_name="transformers").encode()

    repos: dict[str, dict[str, FileContent]] = {
        "org/open": {"README.md": card("apache-2.0"), "config.json": config, "model.safetensors": weights},
        "org/noncommercial": {"README.md": card("cc-by-nc-4.0"), "config.json": config, "model.safetensors": weights},
        "org/gated": {"README.md": card("other"), "config.json": config, "model.safetensors": weights},
        "org/pickled": {"README.md": card("mit"), "config.json": config, "pytorch_model.bin": CLEAN_PICKLE},
        "org/evil": {"README.md": card("mit"), "config.json": config, "pytorch_model.bin": DANGEROUS_PICKLE},
        "org/remote": {
            "README.md": card("mit"),
            "config.json": json.dumps({"model_type": "x", "auto_map": {"AutoModel": "modeling_x.XModel"}}).encode(),
            "modeling_x.py": b"class XModel:\n    pass\n",
            "model.safetensors": weights,
        },
        "elsewhere/model": {"README.md": card("mit"), "config.json": config, "model.safetensors": weights},
    }
    return {repo_id: write_repo(cache_dir, repo_id, files, date=date) for repo_id, files in repos.items()}
