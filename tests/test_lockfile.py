"""hfa.lock: deterministic writing, strict reading, round-trips and a golden file."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfa.lock import lockfile
from hfa.lock.diff import diff
from hfa.lock.lockfile import Lock, LockedFile, LockedRepo, LockError, Requirer
from hfa.resolve.selection import SelectOptions

GOLDEN = Path(__file__).parent / "golden"

hexchars = "0123456789abcdef"
sha1 = st.text(hexchars, min_size=40, max_size=40)
sha256 = st.text(hexchars, min_size=64, max_size=64)
segment = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segment, min_size=1, max_size=3).map("/".join)
names = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
repo_ids = st.one_of(names, st.tuples(names, names).map("/".join))


@st.composite
def locked_files(draw: st.DrawFn) -> LockedFile:
    if draw(st.booleans()):
        return LockedFile(draw(paths), draw(st.integers(0, 2**40)), "sha256", draw(sha256))
    return LockedFile(draw(paths), draw(st.integers(0, 2**40)), "git-sha1", draw(sha1))


selections = st.builds(
    SelectOptions,
    frameworks=st.lists(st.sampled_from(["pt", "safetensors", "gguf"]), max_size=2, unique=True).map(tuple),
    quant=st.one_of(st.none(), st.sampled_from(["Q4_K_M", "Q8_0"])),
    include=st.lists(st.sampled_from(["*.json", "sub/*"]), max_size=2, unique=True).map(tuple),
    exclude=st.lists(st.sampled_from(["*.md", "x/*"]), max_size=2, unique=True).map(tuple),
    config_only=st.booleans(),
    trust_remote_code=st.booleans(),
)


reasons = st.text(string.ascii_letters + string.digits + " ._-:()", min_size=1, max_size=40)


@st.composite
def locks(draw: st.DrawFn) -> Lock:
    repos = []
    seen = set()
    for _ in range(draw(st.integers(0, 4))):
        repo_id = draw(repo_ids)
        repo_type = draw(st.sampled_from(["model", "dataset"]))
        if (repo_id, repo_type) in seen:
            continue
        seen.add((repo_id, repo_type))
        files = {f.path: f for f in draw(st.lists(locked_files(), max_size=6))}
        repos.append(
            LockedRepo(
                repo_id,
                repo_type,
                draw(st.sampled_from(["main", "v1.0", "refs/pr/1"])),
                draw(sha1),
                draw(selections),
                tuple(files.values()),
                # required-by names entries drawn before this one: every entry is reached from one
                # pinned by name, as hfa writes them (a lock that says otherwise is refused)
                tuple(
                    Requirer(r.repo_id, r.repo_type, draw(reasons))
                    for r in draw(st.lists(st.sampled_from(repos), max_size=3, unique_by=lambda r: r.key))
                )
                if repos
                else (),
                draw(st.booleans()),
            )
        )
    return Lock(tuple(repos))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(locks())
def test_round_trip_is_lossless_and_byte_stable(lock: Lock) -> None:
    text = lockfile.dumps(lock)
    again = lockfile.loads(text)
    assert again == lock.normalized()
    assert lockfile.dumps(again) == text


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(locks(), st.data())
def test_mutated_locks_never_crash(lock: Lock, data: st.DataObject) -> None:
    text = lockfile.dumps(lock)
    kind = data.draw(st.sampled_from(["truncate", "flip", "delete_line", "insert"]))
    if kind == "truncate":
        text = text[: data.draw(st.integers(0, len(text)))]
    elif kind == "flip" and text:
        i = data.draw(st.integers(0, len(text) - 1))
        text = text[:i] + data.draw(st.characters()) + text[i + 1 :]
    elif kind == "delete_line":
        lines = text.splitlines(keepends=True)
        del lines[data.draw(st.integers(0, len(lines) - 1))]
        text = "".join(lines)
    else:
        i = data.draw(st.integers(0, len(text)))
        text = text[:i] + data.draw(st.text(max_size=20)) + text[i:]
    try:
        result = lockfile.loads(text)
    except LockError as exc:
        assert str(exc).startswith(lockfile.DEFAULT_LOCK)
    else:
        assert isinstance(result, Lock)


def _golden_lock(*, deps: bool = True) -> Lock:
    adapter = LockedRepo(
        "org/adapter",
        "model",
        "main",
        "2" * 40,
        SelectOptions(),
        (
            LockedFile("adapter_config.json", 64, "git-sha1", "d" * 40),
            LockedFile("adapter_model.safetensors", 512, "sha256", "e" * 64),
        ),
    )
    required = (Requirer("org/adapter", "model", "adapter_config.json base_model_name_or_path"),)
    return Lock(
        (
            *((adapter,) if deps else ()),
            LockedRepo(
                "org/model",
                "model",
                "main",
                "9" * 40,
                SelectOptions(frameworks=("safetensors",)),
                (
                    LockedFile("model.safetensors", 1234, "sha256", "a" * 64),
                    LockedFile("config.json", 42, "git-sha1", "b" * 40),
                ),
                required if deps else (),
                not deps,
            ),
            LockedRepo(
                "org/data",
                "dataset",
                "v1.0",
                "1" * 40,
                SelectOptions(),
                (LockedFile("data/train.csv", 7, "git-sha1", "c" * 40),),
            ),
        )
    )


def test_golden_lock_text() -> None:
    assert lockfile.dumps(_golden_lock()) == (GOLDEN / "hfa.lock").read_text(encoding="utf-8")


def test_version_1_lock_still_reads_and_is_rewritten_as_2_only_when_written(tmp_path: Path) -> None:
    v1 = (GOLDEN / "hfa-v1.lock").read_text(encoding="utf-8")
    assert "version = 1" in v1
    lock = lockfile.loads(v1)
    assert lock.version == 1 and lock.repos == _golden_lock(deps=False).normalized().repos
    assert all(r.direct and not r.required_by for r in lock.repos)
    assert lockfile.dumps(lock).replace("version = 2", "version = 1") == v1
    path = tmp_path / "hfa.lock"
    path.write_text(v1)
    assert lockfile.read(path) == lock  # reading never rewrites
    assert path.read_text() == v1
    assert lockfile.write(path, lock) is True
    assert "version = 2" in path.read_text()


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (("required-by = [", "direct = 3\nrequired-by = ["), "`direct` must be true or false"),
        (('{id = "org/adapter", ', '{ident = "org/adapter", '), "required-by #1 must have id, reason"),
        (('{id = "org/adapter", ', '{id = "../x", '), "required-by #1: Invalid repository id"),
        (('reason = "adapter_config.json', 'type = "bucket", reason = "x'), "unknown type 'bucket'"),
        (
            (
                'required-by = [\n    {id = "org/adapter", reason = "adapter_config.json base_model_name_or_path"},\n]',
                "required-by = 3",
            ),
            "`required-by` must be an array",
        ),
        (
            (
                'required-by = [\n    {id = "org/adapter", reason = "adapter_config.json base_model_name_or_path"},\n]',
                "required-by = []\ndirect = false",
            ),
            "nothing requires it",
        ),
    ],
)
def test_bad_dependency_fields_are_refused(mutation: tuple[str, str], message: str) -> None:
    text = lockfile.dumps(_golden_lock())
    assert mutation[0] in text
    with pytest.raises(LockError, match=re.escape(message)):
        lockfile.loads(text.replace(mutation[0], mutation[1], 1))


def test_dependency_fields_are_refused_in_a_version_1_lock() -> None:
    text = lockfile.dumps(_golden_lock()).replace("version = 2", "version = 1")
    with pytest.raises(LockError, match=r"unknown key.*required-by"):
        lockfile.loads(text)


def test_requires_follows_required_by_transitively() -> None:
    lock = _golden_lock()
    adapter = lock.get("org/adapter")
    assert adapter is not None
    assert [r.repo_id for r in lock.requires(adapter)] == ["org/model"]
    model = lock.get("org/model")
    assert model is not None and not model.direct and lock.requires(model) == []


def test_write_is_atomic_and_skips_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "hfa.lock"
    assert lockfile.write(path, _golden_lock()) is True
    mtime = path.stat().st_mtime_ns
    assert lockfile.write(path, _golden_lock()) is False
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == ["hfa.lock"]  # no temporary left behind


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no `version` field"),
        ("version = 3\n", "lock version 3"),
        ('version = 1\n[[task]]\ntask = "x"\n', "unknown top-level key(s): task"),
        ('version = 2\n[[task]]\ntask = "x"\nrepo = "o/m"\n', "(line 2): task default #1 must have exactly"),
        (
            'version = 2\n[[task]]\ntask = "Bad Name"\nrepo = "o/m"\nrevision = "main"\ncommit = "' + "a" * 40 + '"\n',
            "invalid task name",
        ),
        ('version = "1"\n', "`version` must be a number"),
        ('version = 1\n[[repo]]\nid = "org/x"\ntype = "model"\n', "(line 3): repo 'org/x' lacks revision"),
        ("version = 1\nrepo = [\n", "not valid TOML"),
        ("version = 1\nextra = 3\n", "unknown top-level key"),
    ],
)
def test_bad_locks_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(LockError) as info:
        lockfile.loads(text, "hfa.lock")
    assert message in str(info.value)


def test_bad_hash_and_unsafe_path_name_the_line() -> None:
    text = lockfile.dumps(_golden_lock())
    bad = text.replace("sha256:" + "a" * 64, "sha256:xyz")
    with pytest.raises(LockError, match=r"line \d+\).*model.safetensors' hash"):
        lockfile.loads(bad)
    unsafe = text.replace('"data/train.csv"', '"../../etc/passwd"')
    with pytest.raises(LockError, match="unsafe path"):
        lockfile.loads(unsafe)


def test_missing_lock_file(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="hfa pin"):
        lockfile.read(tmp_path / "hfa.lock")
    assert lockfile.read(tmp_path / "hfa.lock", missing_ok=True) == Lock()


def test_diff_reports_added_removed_changed() -> None:
    old = _golden_lock(deps=False).repos[0]
    new = LockedRepo(
        "org/model",
        "model",
        "main",
        "8" * 40,
        old.selection,
        (
            LockedFile("config.json", 43, "git-sha1", "d" * 40),
            LockedFile("tokenizer.json", 5, "git-sha1", "e" * 40),
        ),
    )
    d = diff(old, new)
    assert d.moved and d.added == ["tokenizer.json"] and d.removed == ["model.safetensors"]
    assert [c[0] for c in d.changed] == ["config.json"]
    assert d.lines()[0] == f"org/model@main: {'9' * 12} → {'8' * 12}"


def test_locked_file_to_remote_rebuilds_blob_ids() -> None:
    from hfa.cache.hashing import git_sha1, lfs_pointer

    f = LockedFile("w.safetensors", 10, "sha256", "a" * 64).to_remote()
    assert f.etag == "a" * 64 and f.blob_id == git_sha1(lfs_pointer("a" * 64, 10))


def test_task_defaults_round_trip_at_version_2_and_old_locks_still_read() -> None:
    from hfa.lock.lockfile import TaskDefault

    old = lockfile.loads("version = 1\n", "hfa.lock")
    assert old.tasks == () and "version = 2" in lockfile.dumps(old)  # hfa writes version 2 (docs/lockfile.md)
    lock = old.set_task(TaskDefault("text-classification", "org/sst2", "main", "b" * 40))
    lock = lock.set_task(TaskDefault("feature-extraction", "org/minilm", "v1", "c" * 40))
    text = lockfile.dumps(lock)
    assert "version = 2" in text
    assert text.index('task = "feature-extraction"') < text.index('task = "text-classification"')  # sorted
    again = lockfile.loads(text, "hfa.lock")
    assert again.task("text-classification") == TaskDefault("text-classification", "org/sst2", "main", "b" * 40)
    assert lockfile.dumps(again) == text
    twice = (
        text + '\n[[task]]\ntask = "feature-extraction"\nrepo = "o/x"\nrevision = "main"\ncommit = "' + "d" * 40 + '"\n'
    )
    with pytest.raises(LockError, match="has two defaults"):
        lockfile.loads(twice, "hfa.lock")


def _edited(**required_by: tuple[Requirer, ...]) -> Lock:
    """The golden lock with dependencies, ``required_by`` (and direct = false) set by hand per repo id."""
    from dataclasses import replace

    repos = _golden_lock(deps=True).repos
    return Lock(
        tuple(
            replace(r, required_by=required_by[r.repo_id.replace("org/", "")], direct=False)
            if r.repo_id.replace("org/", "") in required_by
            else r
            for r in repos
        )
    )


@pytest.mark.parametrize(
    ("lock", "says", "repo"),
    [
        # org/model requires itself: `hfa pin --upgrade` / `--remove` dropped it, "nothing requires it"
        (_edited(model=(Requirer("org/model", "model", "x"),)), "`required-by` names the entry itself", "org/model"),
        # a requirer the lock does not hold
        (_edited(model=(Requirer("nobody/here", "model", "x"),)), "names nobody/here, which the lock", "org/model"),
        # org/adapter and org/model require each other, neither pinned by name: --upgrade dropped both
        (
            _edited(model=(Requirer("org/adapter", "model", "x"),), adapter=(Requirer("org/model", "model", "x"),)),
            "nothing pinned by name requires it",
            "org/adapter",
        ),
    ],
)
def test_required_by_that_no_hfa_writes_is_refused(tmp_path: Path, lock: Lock, says: str, repo: str) -> None:
    from helpers import hfa

    from hfa.errors import ExitCode

    text = lockfile.dumps(lock)
    with pytest.raises(LockError, match=re.escape(says)) as err:
        lockfile.loads(text)
    line = lockfile.line_numbers(text)[("model", repo, "")]
    assert f"(line {line}): repo '{repo}'" in err.value.message
    path = tmp_path / "hfa.lock"
    path.write_text(text)
    result = hfa("pin", "--upgrade", "--lock", str(path), "--endpoint", "http://127.0.0.1:9")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert says in result.stderr and "direct = true" in result.stderr and path.read_text() == text
