"""Start-up shortcuts of the CLI stay exact: plain option values coerced without pydantic give what
typer's own coercion gives, ``main`` mounts only the invoked command's module, and the commands
that run on every CI job (`hfa pull`, from a lock) import nothing heavy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from helpers import hfa
from typer.main import get_command

from hfa.cli import app as app_module
from hfa.cli.typer_seam import FastCommand, FastGroup, PlainCoercion
from hfa.server import HubServer

HEAVY = ("pydantic", "huggingface_hub", "httpx2", "yaml", "tomlkit", "filelock")


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((prefix + name, cmd))
        if hasattr(cmd, "commands"):
            out += _commands(cmd, f"{prefix}{name} ")
    return out


def test_command_table_mounts_each_command_alone() -> None:
    for name in app_module.COMMANDS:
        assert set(get_command(app_module.build((name,))).commands) == {name}
    assert set(get_command(app_module.app).commands) == set(app_module.COMMANDS)


def test_command_annotations_are_evaluated_once_at_import() -> None:
    """String annotations would be evaluated by typer twice per command on every start (hfa.cli.app)."""
    import importlib
    import inspect

    for name, (module_name, target) in app_module.COMMANDS.items():
        module = importlib.import_module(f"hfa.cli.{module_name}")
        functions = target.commands.values() if isinstance(target, app_module.Group) else [target]
        for function in functions:
            params = inspect.signature(getattr(module, function)).parameters.values()
            assert not any(isinstance(p.annotation, str) for p in params), (name, function)


def test_every_command_uses_the_fast_classes() -> None:
    root = get_command(app_module.app)
    assert isinstance(root, FastGroup)
    for name, cmd in _commands(root):
        if not hasattr(cmd, "commands"):
            assert isinstance(cmd, FastCommand), name


def _samples(annotation: Any, tmp: Path) -> list[Any]:
    file, folder, missing = tmp / "file.txt", tmp / "folder", tmp / "missing"
    paths = [str(file), str(folder), str(missing), "", "-", file, folder, missing, "rel/x", 3]
    ints = ["0", "1", "16", "64", "65", "65535", "65536", "007", "-1", "+5", " 5", "1_0", "1.0", "abc", ""]
    ints += ["9" * 18, "9" * 25, 0, 3, 70, -2, 2.5, True]
    floats = ["1.5", "0", "0.25", "007.5", "1e3", "nan", "inf", "-1", "abc", "", 2.0, 2, True]
    strs = ["x", "", " a ", "é", "--x", b"bytes", 5]
    plain: dict[Any, list[Any]] = {str: strs, int: ints, float: floats, Path: paths, bool: ["1", "true", "no", 2]}
    if annotation in plain:
        return [None, *plain[annotation]]
    item = annotation.__args__[0]
    values = plain[item]
    return [None, (), [], tuple(values[:3]), list(values[:2]), (values[0],), "single"]


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any, Any, Any]:
    try:
        value = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return ("error", type(exc), message, None)
    items = [type(v) for v in value] if isinstance(value, (list, tuple)) else None
    return ("ok", type(value), items, repr(value))


def test_plain_coercion_equals_typers_for_every_parameter(tmp_path: Path) -> None:
    """Fails when typer changes the internals FastCommand relies on, or what its coercion returns."""
    from typer._coercion import build_runtime_param  # the private API hfa.cli.typer_seam falls back to

    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    root = get_command(app_module.app)
    checked = 0
    for name, cmd in [("", root), *_commands(root)]:
        ctx = typer.Context(cmd, info_name=name or "hfa")
        for param in cmd.get_params(ctx):
            # typer builds its coercer lazily into this attribute; FastCommand fills it first.
            assert param._runtime_param is None or isinstance(param._runtime_param, PlainCoercion)
            desc = param.type_descriptor
            for value in [param.default, *_samples(desc.annotation, tmp_path)]:
                ours = _outcome(PlainCoercion(), value, param, ctx)
                theirs = _outcome(build_runtime_param(desc), value, param, ctx)
                assert ours == theirs, (name, param.name, value)
                checked += 1
    assert checked > 1000


def test_typer_still_reads_the_filled_coercer() -> None:
    root = get_command(app_module.app)
    pull = root.commands["pull"]
    ctx = typer.Context(pull, info_name="pull")
    pull.parse_args(ctx, ["org/model", "--workers", "3", "--offline"])
    params = {p.name: p for p in pull.get_params(ctx)}
    assert isinstance(params["workers"]._runtime_param, PlainCoercion)
    assert params["workers"].get_runtime_param() is params["workers"]._runtime_param
    assert ctx.params["workers"] == 3 and ctx.params["repo"] == "org/model"


def _imports(argv: list[str], cwd: Path, heavy: tuple[str, ...] = HEAVY) -> tuple[int, list[str]]:
    """Run ``hfa argv`` in a fresh interpreter; return its exit code and which of ``heavy`` it imported."""
    code = (
        "import sys\n"
        "from hfa.cli.app import main\n"
        f"sys.argv = ['hfa', *{argv!r}]\n"
        "try:\n    main()\n    rc = 0\n"
        "except SystemExit as e:\n    rc = e.code or 0\n"
        f"print(rc, ','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    ).stdout
    rc, _, heavy = out.strip().splitlines()[-1].partition(" ")
    return int(rc), [m for m in heavy.split(",") if m]


def test_pull_from_a_cached_lock_imports_nothing_heavy(server: HubServer, tmp_path: Path) -> None:
    lock, cache = tmp_path / "hfa.lock", tmp_path / "cache"
    assert hfa("pin", "org/model", "--endpoint", server.url, "--lock", lock).exit_code == 0
    assert hfa("pull", "--lock", lock, "--endpoint", server.url, "--cache-dir", cache).exit_code == 0
    rc, heavy = _imports(["pull", "--lock", str(lock), "--endpoint", server.url, "--cache-dir", str(cache)], tmp_path)
    assert (rc, heavy) == (0, [])


@pytest.mark.parametrize("argv", [["pull", "org/model", "--offline"], ["--version"], ["pin", "--help"]])
def test_no_command_imports_pydantic_for_plain_options(argv: list[str], tmp_path: Path) -> None:
    rc, heavy = _imports(argv, tmp_path)
    assert "pydantic" not in heavy, (argv, rc)


def test_warm_pull_loads_no_scanner(server: HubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert hfa("pull", "org/model", "--endpoint", server.url, "--cache-dir", cache).exit_code == 0
    unneeded = ("pydantic", "hfa.scan.scanner", "hfa.lock.lockfile")  # (huggingface_hub imports filelock itself)
    rc, heavy = _imports(["pull", "org/model", "--endpoint", server.url, "--cache-dir", str(cache)], tmp_path, unneeded)
    assert (rc, heavy) == (0, [])


def test_plain_infer_loads_no_orchestrator_state(tmp_path: Path) -> None:
    """Without hfa.toml, `hfa infer` neither imports the limits store nor pyrate-limiter nor SQLite."""
    state = ("pyrate_limiter", "sqlite3", "hfa.infer.limits", "hfa.infer.orchestrator")
    argv = ["infer", "text-classification", "-m", "org/x@" + "0" * 40, "-i", "hi", "--offline"]
    rc, loaded = _imports(argv, tmp_path, state)
    assert rc == 5 and loaded == []  # offline, nothing cached: exit 5, having loaded none of them


LOADED_BY = """
import sys, threading
by = {}
sys.addaudithook(lambda ev, args: ev == "import" and by.setdefault(args[0], threading.current_thread().name))
from hfa.cli.app import main
sys.argv = ['hfa', *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
first = lambda m: next((t for k, t in by.items() if k == m or k.startswith(m + ".")), None)
print({m: first(m) for m in ("filelock", "hfa.scan.pickles")})  # (import_module raises no audit event)
"""


def test_a_cold_pull_loads_the_download_modules_while_the_listing_is_awaited(
    fresh_server: HubServer, tmp_path: Path
) -> None:
    """Not on the first worker (every worker would wait for the import); a warm pull loads none of it."""
    cache = tmp_path / "cache"
    argv = ["pull", "org/model", "--endpoint", fresh_server.url, "--cache-dir", str(cache), "-q"]

    def loaded_by() -> str:
        proc = subprocess.run([sys.executable, "-c", LOADED_BY, *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().splitlines()[-1]

    # (the filelock package, not one of its modules: their names differ between filelock versions)
    assert loaded_by() == "{'filelock': 'hfa-load-ahead', 'hfa.scan.pickles': 'hfa-load-ahead'}"
    assert loaded_by() == "{'filelock': None, 'hfa.scan.pickles': None}"  # warm: no thread, no scanner
