"""Pure-function and property tests for the pieces ``hfa serve`` is built on.

No server here: ``parse_range`` against an independent reference model, ``parse_card``
and ``load_policy`` on hostile input, ``check_relpath`` against traversal.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hfa.cache.layout import check_relpath
from hfa.errors import UsageError
from hfa.resolve.card import parse_card
from hfa.server.auth import AuthPolicy, load_policy
from hfa.server.wire import parse_range

# --------------------------------------------------------------------------------------------
# parse_range: one "bytes=" range -> inclusive (start, end), None when unsatisfiable/malformed
# --------------------------------------------------------------------------------------------

_HUGE = 1 << 80  # stands for "more digits than any file size"
_OWS = " \t"


def _num(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < 25 else _HUGE


def reference_range(header: str, size: int) -> tuple[int, int] | None:
    """RFC 9110 single byte range, written independently of the server's parser.

    Optional spaces/tabs are tolerated around the tokens; numbers are ASCII digits only.
    """
    h = header.strip(_OWS)
    if h[:5].lower() != "bytes":
        return None
    rest = h[5:].lstrip(_OWS)
    if not rest.startswith("="):
        return None
    spec = rest[1:].strip(_OWS)
    if spec.count("-") != 1:
        return None
    first, last = (part.strip(_OWS) for part in spec.split("-"))
    if any(c not in "0123456789" for c in first + last):
        return None
    if size <= 0 or (not first and not last):
        return None
    if not first:  # suffix range: the last N bytes
        n = _num(last)
        return None if n == 0 else (max(0, size - n), size - 1)
    start = _num(first)
    end = _num(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


_digits = st.one_of(
    st.integers(min_value=0, max_value=2000).map(str),
    st.integers(min_value=0, max_value=10**30).map(str),
    st.text("0123456789", min_size=0, max_size=6),
    st.sampled_from(["", "0", "00", "007", "+5", "-5", "1_0", " 5", "5 ", "\u0665", "\uff15", "1e3", "0x10", "9" * 40]),
)
_unit = st.sampled_from(
    ["bytes", "BYTES", "Bytes", " bytes", "bytes ", "byte", "items", "", "bytes\u017f", "\u017fbytes"]
)
_eq = st.sampled_from(["=", " = ", "", "==", ":", "=\t"])
_dash = st.sampled_from(["-", " - ", "", "--", "\u2013", "-\t"])
_structured = st.builds(
    lambda u, e, a, d, b, tail: f"{u}{e}{a}{d}{b}{tail}",
    _unit,
    _eq,
    _digits,
    _dash,
    _digits,
    st.sampled_from(["", "", "", ",0-1", ", 5-", " ", "\t", "x", "\r\n"]),
)
_headers = st.one_of(_structured, st.text(max_size=30), st.text("bytes=-0123456789, \t", max_size=20))
_sizes = st.one_of(st.integers(min_value=0, max_value=5000), st.sampled_from([0, 1, 2, 3145728, 10**15]))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_headers, size=_sizes)
@example(header="bytes=0-", size=0)
@example(header="bytes=-1", size=0)
@example(header="bytes=-0", size=10)
@example(header="bytes=5-4", size=10)
@example(header="bytes=10-", size=10)
@example(header="bytes=9-", size=10)
@example(header="bytes=-100", size=10)
@example(header="bytes=0-" + "9" * 5000, size=10)
@example(header="bytes=1_0-", size=100)
@example(header="bytes=+5-", size=100)
@example(header="bytes=\uff15-", size=100)
@example(header="bytes=0-1,3-4", size=100)
@example(header="\u017fbytes=0-1", size=100)
def test_parse_range_matches_reference(header: str, size: int) -> None:
    got = parse_range(header, size)
    if got is not None:
        start, end = got
        assert isinstance(start, int) and isinstance(end, int)
        assert 0 <= start <= end < size, (header, size, got)
    assert got == reference_range(header, size), (header, size)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 41, (0, 0)),
        ("bytes=10-", 41, (10, 40)),
        ("bytes=10-1000", 41, (10, 40)),
        ("bytes=-5", 41, (36, 40)),
        ("bytes=-500", 41, (0, 40)),
        ("bytes=41-", 41, None),
        ("bytes=-0", 41, None),
        ("bytes=3-2", 41, None),
        ("bytes=0-", 0, None),
    ],
)
def test_parse_range_known_values(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


# --------------------------------------------------------------------------------------------
# parse_card: never raises, always a dict
# --------------------------------------------------------------------------------------------

_yaml_bits = st.sampled_from(
    [
        "---",
        "---\n",
        "\n---\n",
        "\r\n---\r\n",
        "license: mit\n",
        "tags: [a, b\n",
        "a: &x [*x]\n",
        "- 1\n- 2\n",
        "? [a, b]\n: c\n",
        "!!python/object:os.system\n",
        "a: !!binary aGVsbG8=\n",
        "date: 2024-01-02\n",
        "{",
        "}",
        ":",
        "'",
        '"',
        "\t",
        "\ufeff",
        "\x00",
        "key: value\n",
        "nested:\n  deep: [1, {x: y}]\n",
    ]
)
_card_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_yaml_bits, st.text(max_size=10)), max_size=12).map("".join),
    st.builds(lambda body: f"---\n{body}\n---\n# Title\n", st.text(max_size=120)),
)


@settings(max_examples=600, deadline=None)
@given(text=_card_text)
@example(text="---\n" + "[" * 5000 + "\n---\n")
@example(text="---\n" + "a: " * 3000 + "\n---\n")
@example(text="---\na: &x [*x]\n---\n")
def test_parse_card_never_raises_on_text(text: str) -> None:
    card = parse_card(text)
    assert isinstance(card.data, dict)
    assert all(isinstance(k, str) for k in card.data)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.binary(max_size=200), _card_text.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_parse_card_never_raises_on_bytes(raw: bytes) -> None:
    card = parse_card(raw)
    assert isinstance(card.data, dict)


def test_parse_card_reads_front_matter_like_huggingface_hub() -> None:
    from huggingface_hub.repocard import RepoCard

    text = "---\r\nlicense: mit\r\ntags:\r\n- a\r\n---\r\n# Card\r\n"
    assert parse_card(text).data == {"license": "mit", "tags": ["a"]}
    assert parse_card(text.encode("utf-8-sig")).data == RepoCard(text).data.to_dict()
    assert parse_card("no front matter").data == {}
    assert parse_card("---\n- a list\n---\n").data == {}
    assert parse_card(None).data == {}


def test_parse_card_survives_pathological_yaml() -> None:
    # Deep nesting overflows PyYAML's recursive constructor; an alias cycle builds a loop.
    deep = parse_card("---\nx: " + "[" * 5000 + "\n---\n")
    assert deep.data == {}
    assert deep.warning


# --------------------------------------------------------------------------------------------
# load_policy: malformed files are UsageError, never another exception
# --------------------------------------------------------------------------------------------

_MALFORMED = {
    "not toml": "this is = = not toml",
    "repos not a table": 'repos = "x"',
    "unknown access": '[repos]\n"org/x" = "public"',
    "access is a list": '[repos]\n"org/x" = ["private"]',
    "access is a table": '[repos]\n"org/x" = { kind = "private" }',
    "access is a number": '[repos]\n"org/x" = 1',
    "tokens not an array": 'tokens = "abc"',
    "tokens entry not a table": "tokens = [1, 2]",
    "token without secret": '[[tokens]]\nname = "x"\nread = ["*"]',
    "read not a list": '[[tokens]]\ntoken = "t"\nread = 5',
    "read a table": '[[tokens]]\ntoken = "t"\nread = { a = 1 }',
}


@pytest.mark.parametrize("text", list(_MALFORMED.values()), ids=list(_MALFORMED))
def test_load_policy_rejects_malformed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "auth.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError):
        load_policy(path)


def test_load_policy_rejects_unreadable_and_binary(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_policy(tmp_path / "missing.toml")
    with pytest.raises(UsageError):
        load_policy(tmp_path)  # a directory
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe[repos]\n")
    with pytest.raises(UsageError):
        load_policy(bad)


def test_load_policy_reads_a_valid_file(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "auth.toml"
    digest = hashlib.sha256(b"s3cret").hexdigest().upper()
    path.write_text(
        '[repos]\n"org/p" = "private"\n"datasets/org/d" = "gated"\n"org/a" = "gated:auto"\n'
        f'[[tokens]]\nname = "ci"\ntoken_sha256 = "{digest}"\nread = "org/*"\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.is_private("model", "org/p")
    assert not policy.is_private("dataset", "org/p")
    assert policy.gated("dataset", "org/d") == "manual"
    assert policy.gated("model", "org/a") == "auto"
    rule = policy.who("s3cret")
    assert rule is not None and rule.name == "ci"
    assert policy.who("wrong") is None and policy.who(None) is None
    assert policy.may_read(rule, "model", "org/p")
    assert not policy.may_read(None, "model", "org/p")
    assert not policy.may_read(rule, "dataset", "org/d")  # globs name datasets "datasets/org/d"
    assert policy.may_read(None, "model", "anything/public")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_safe_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters='"\\\x7f'), max_size=12)
_scalar = st.one_of(st.booleans(), st.integers(-5, 5), _safe_text, st.sampled_from(["private", "gated", "gated:auto"]))
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_safe_text, inner, max_size=3)),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    repos=st.one_of(_value, st.dictionaries(_safe_text, _value, max_size=4)),
    tokens=st.one_of(_value, st.lists(st.dictionaries(st.sampled_from(["name", "token", "read"]), _value), max_size=3)),
)
def test_load_policy_on_random_documents(
    tmp_path_factory: pytest.TempPathFactory, repos: object, tokens: object
) -> None:
    path = tmp_path_factory.mktemp("pol") / "auth.toml"
    path.write_text(f"repos = {_toml_value(repos)}\ntokens = {_toml_value(tokens)}\n", encoding="utf-8")
    try:
        policy = load_policy(path)
    except UsageError:
        return
    assert isinstance(policy, AuthPolicy)
    assert set(policy.visibility.values()) <= {"private", "manual", "auto"}


# --------------------------------------------------------------------------------------------
# check_relpath: nothing it accepts can leave the repository
# --------------------------------------------------------------------------------------------

_path_parts = st.one_of(
    st.sampled_from(
        ["..", ".", "", "a", "b.txt", "sub", "C:", "c:\\x", "a\\..", "\x00", " ", "...", "..a", "~", "%2e%2e"]
    ),
    st.text(max_size=6),
)


@settings(max_examples=800, deadline=None)
@given(parts=st.lists(_path_parts, min_size=1, max_size=6), lead=st.sampled_from(["", "/", "//", "./", "../"]))
def test_check_relpath_never_lets_a_path_escape(parts: list[str], lead: str) -> None:
    path = lead + "/".join(parts)
    try:
        rel = check_relpath(path)
    except UsageError:
        return
    root = "/srv/repo"
    joined = posixpath.normpath(posixpath.join(root, path))
    assert joined.startswith(root + "/"), path
    assert not rel.is_absolute()
    assert ".." not in rel.parts and "\\" not in path and "\x00" not in path
    assert str(rel) == path  # nothing was silently normalised away


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "..", ".", "a\\..\\..\\x", "C:/x", "c:x", "a\x00b"],
)
def test_check_relpath_rejects(path: str) -> None:
    with pytest.raises(UsageError):
        check_relpath(path)


@pytest.mark.parametrize("path", ["config.json", "sub/dir/notes.txt", "..a/b", "a..b", ".hidden", "モデル/説明.txt"])
def test_check_relpath_accepts(path: str) -> None:
    assert str(check_relpath(path)) == path


def test_reference_range_is_sane() -> None:
    # The reference model itself, on the RFC 9110 examples.
    assert reference_range("bytes=0-499", 10000) == (0, 499)
    assert reference_range("bytes=500-999", 10000) == (500, 999)
    assert reference_range("bytes=-500", 10000) == (9500, 9999)
    assert reference_range("bytes=9500-", 10000) == (9500, 9999)
    assert reference_range("bytes=0-0,-1", 10000) is None
    assert reference_range("bytes=0-", 1) == (0, 0)
    assert reference_range("bytes=-5", 0) is None


# --------------------------------------------------------------------------------------------
# fault injection is a test seam: the production handler has no fault branches
# --------------------------------------------------------------------------------------------


def test_fault_injection_lives_outside_the_production_handler(tmp_path: Path) -> None:
    import ast
    import inspect

    from hfa.server import HubServer, ServerConfig, api, downloads, handler, http, wsgi
    from hfa.server.faults import FaultMiddleware, FaultPlan

    for module in (handler, api, downloads):
        tree = ast.parse(inspect.getsource(module))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not {name for name in names if name.lower().startswith("fault")}, module.__name__
    plain = http.HubServer(ServerConfig(cache_dir=tmp_path))
    faulty = HubServer(ServerConfig(cache_dir=tmp_path, faults=FaultPlan()))
    try:
        assert isinstance(plain.app, wsgi.HubApp)
        assert isinstance(faulty.app, FaultMiddleware) and faulty.app.app is faulty.hub
    finally:
        plain.close()
        faulty.close()


def test_read_regular_file_refuses_a_folder_and_a_fifo(tmp_path: Path) -> None:
    # a folder where hfa's tree record (or a blob) should be: None, not IsADirectoryError from os.fdopen
    import os

    from hfa.server.store import read_regular_file

    (tmp_path / "meta").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_bytes(b"ok")
    assert read_regular_file(tmp_path / "meta", 100) is None
    assert read_regular_file(tmp_path / "fifo", 100) is None
    assert read_regular_file(tmp_path / "file", 100) == b"ok"
