"""hfa.infer.session as a library: the cache-key policy, one request, a batch, output files (no server).

Offline settings give the session an offline runner: results come from the result cache only, and
a miss is an OfflineError, so every test here runs without a network or a model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hfa.config import Settings
from hfa.errors import LocalError, OfflineError, UsageError
from hfa.infer.session import Session, safe_name, write_atomic
from hfa.infer.tasks import get_task, make_inputs

COMMIT = "c0ffee" + "0" * 34
SPEC = get_task("text-classification")
ANSWER = [[{"label": "POSITIVE", "score": 0.9}, {"label": "NEGATIVE", "score": 0.1}]]


def _settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "hub", endpoint="http://127.0.0.1:9", offline=True)


def _session(tmp_path: Path, model: str = f"org/m@{COMMIT}", **options: object) -> Session:
    return Session(_settings(tmp_path), SPEC, model, **options)  # type: ignore[arg-type]


def _remember(session: Session, text: str, result: object) -> None:
    """Put ``result`` in the result cache as the answer to ``text``."""
    assert session.cached.cache is not None
    key = session.cached.key(SPEC.name, make_inputs(SPEC, text), {})
    session.cached.cache.put(key, result, {})


# -- the cache-key policy ----------------------------------------------------------------------------
def test_a_pinned_commit_keys_the_cache(tmp_path: Path) -> None:
    session = _session(tmp_path)
    assert session.commit == COMMIT and session.cached.cache is not None
    assert session.cache_note == f"cache key uses org/m at {COMMIT} (pinned)"


def test_a_branch_with_an_unknown_commit_is_never_cached(tmp_path: Path) -> None:
    session = _session(tmp_path, "org/m@main")
    assert session.cached.cache is None and session.commit == "main"
    assert session.cache_note == "result cache off: the commit of org/m@main is unknown (pin one with @<commit>)"


def test_a_branch_the_cache_knows_is_keyed_by_its_commit(tmp_path: Path) -> None:
    refs = tmp_path / "hub" / "models--org--m" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(COMMIT)
    session = _session(tmp_path, "org/m")
    assert session.commit == COMMIT and session.cached.cache is not None
    assert session.cache_note == f"cache key uses org/m at {COMMIT} (cache)"


def test_no_cache_is_asked_for(tmp_path: Path) -> None:
    assert _session(tmp_path, use_cache=False).cached.cache is None


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("datasets/org/d", {}, "is a dataset; inference runs models"),
        ("org/m", {"timeout": 0.0}, "--timeout must be positive"),
    ],
)
def test_bad_sessions_are_usage_errors(tmp_path: Path, model: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _session(tmp_path, model, **options)


# -- one request -------------------------------------------------------------------------------------
def test_an_answer_from_the_cache_is_saved_as_json(tmp_path: Path) -> None:
    session = _session(tmp_path)
    _remember(session, "hello", ANSWER)
    result, cached = session.answer("hello", None, {}, None, None)
    assert (result, cached) == (ANSWER, True)
    out = tmp_path / "out" / "result.json"
    assert session.save(result, out) is None  # nothing to show instead: the result is shown
    assert json.loads(out.read_text(encoding="utf-8")) == ANSWER
    assert os.listdir(out.parent) == ["result.json"]
    doc = session.describe(result, cached)
    assert doc == {
        "task": "text-classification",
        "model": f"org/m@{COMMIT}",
        "commit": COMMIT,
        "route": session.runner.route,
        "cached": True,
        "result": ANSWER,
    }


def test_an_input_file_is_read_as_text(tmp_path: Path) -> None:
    session = _session(tmp_path)
    _remember(session, "from a file", ANSWER)
    (tmp_path / "in.txt").write_text("from a file\n", encoding="utf-8")
    assert session.answer(None, tmp_path / "in.txt", {}, None, None) == (ANSWER, True)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(LocalError, match="Cannot read --input-file"):
        session.answer(None, tmp_path / "bad.txt", {}, None, None)


def test_a_miss_offline_is_an_offline_error(tmp_path: Path) -> None:
    with pytest.raises(OfflineError):
        _session(tmp_path).answer("never asked", None, {}, None, None)


def test_an_image_task_needs_an_output_file(tmp_path: Path) -> None:
    session = Session(_settings(tmp_path), get_task("text-to-image"), f"org/m@{COMMIT}")
    with pytest.raises(UsageError, match="writes an image"):
        session.answer("a cat", None, {}, None, None)


# -- batches -----------------------------------------------------------------------------------------
def test_a_batch_answers_in_order_and_failures_are_lines(tmp_path: Path) -> None:
    session = _session(tmp_path)
    _remember(session, "one", ANSWER)
    _remember(session, "three", [[{"label": "NEGATIVE", "score": 1.0}]])
    source = tmp_path / "batch.jsonl"
    requests = [{"id": i, "inputs": text} for i, text in enumerate(["one", "two", "three"])]
    source.write_text("\n".join(json.dumps(r) for r in requests) + "\n\n", encoding="utf-8")
    lines, total = session.open_batch(str(source), 2, None)
    assert total == 3
    done: list[bool] = []
    out = list(session.run_batch(lines, {}, None, 2, None, done.append))
    assert [line["id"] for line in out] == [0, 1, 2]
    assert out[0]["result"] == ANSWER and "error" not in out[0]
    assert "error" in out[1] and "result" not in out[1]
    assert out[2]["result"] == [[{"label": "NEGATIVE", "score": 1.0}]]
    assert sorted(done) == [False, True, True]


@pytest.mark.parametrize(
    ("concurrency", "output", "message"),
    [
        (0, None, "--concurrency must be at least 1"),
        (1, "out", "--output with --jsonl is only for text-to-image"),
    ],
)
def test_bad_batch_options(tmp_path: Path, concurrency: int, output: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _session(tmp_path).open_batch("-", concurrency, tmp_path / output if output else None)


def test_an_unreadable_batch_file_is_a_local_error(tmp_path: Path) -> None:
    with pytest.raises(LocalError, match="Cannot read --jsonl"):
        _session(tmp_path).open_batch(str(tmp_path / "missing.jsonl"), 1, None)


# -- output files ------------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.png"]


@given(st.text(max_size=300))
def test_batch_ids_make_safe_file_names(ident: str) -> None:
    name = safe_name(ident)
    assert 0 < len(name) <= 100 and "/" not in name and "\\" not in name
    assert not name.startswith(".") and name not in ("..", ".")
