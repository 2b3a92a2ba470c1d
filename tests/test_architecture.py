"""The shape of the code: no import cycles, no ``_private`` names across modules, modules under 600 lines.

Read from the source (the AST), not by importing it, so function-level imports count as well.
Each rule runs per package, so a failure names the package that broke it; every package of hfa
is held to every rule.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import hfa

PACKAGE = Path(hfa.__file__).resolve().parent
MAX_LINES = 600


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the hfa module imported from
    name: str | None  # the name taken from it (None: the module itself)
    line: int
    typing_only: bool  # under ``if TYPE_CHECKING:``: never runs


def _module_name(path: Path) -> str:
    parts = ["hfa", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def _absolute(source: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if _is_package(source) else source.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@cache
def _tree(source: str) -> ast.Module:
    return ast.parse(modules()[source].read_text(encoding="utf-8"))


def imports(source: str, tree: ast.Module | None = None) -> list[Import]:
    """Every import of an hfa module in ``source``, at any depth (functions, classes, ``if`` blocks)."""
    tree = tree or _tree(source)
    found: list[Import] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules():
                    found.append(Import(source, alias.name, None, node.lineno, typing_only))
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(source, node)
            if target in modules():
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules():  # ``from hfa.infer import tasks``: the submodule
                        found.append(Import(source, sub, None, node.lineno, typing_only))
                    else:
                        found.append(Import(source, target, alias.name, node.lineno, typing_only))
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(tree, False)
    return found


def _in_scope(name: str, scope: str) -> bool:
    return name == scope or name.startswith(scope + ".")


def _scopes() -> list[str]:
    """Every package of hfa (a package covers its subpackages)."""
    return sorted(name for name in modules() if _is_package(name))


# -- the import graph --------------------------------------------------------------------------------
def import_graph() -> dict[str, set[str]]:
    """module -> the hfa modules it imports when it runs (``TYPE_CHECKING`` imports left out).

    Importing ``a.b.c`` also runs ``a.b/__init__``; that implicit edge is not counted, or every
    package whose ``__init__`` re-exports its modules would be one cycle.
    """
    return {name: {i.target for i in imports(name) if not i.typing_only and i.target != name} for name in modules()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 1000))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("scope", _scopes())
def test_no_import_cycle(scope: str) -> None:
    """No module of ``scope`` is part of an import cycle (through any hfa module, function-level imports too)."""
    bad = [cycle for cycle in cycles(import_graph()) if any(_in_scope(m, scope) for m in cycle)]
    assert bad == [], f"import cycles through {scope}: {bad}"


# -- private names -----------------------------------------------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, tree: ast.Module | None = None) -> list[str]:
    """``_private`` names (and private modules) of other modules that ``source`` uses."""
    tree = tree or _tree(source)
    out = []
    package = source if _is_package(source) else source.rpartition(".")[0]
    for imp in imports(source, tree):
        if imp.target == source:
            continue
        if imp.name is not None and _private(imp.name):
            out.append(f"{source}:{imp.line} imports {imp.target}.{imp.name}")
        private_module = next((p for p in imp.target.split(".") if _private(p)), None)
        if private_module is not None:
            owner = imp.target[: imp.target.index(private_module)].rstrip(".")
            if not _in_scope(source, owner):
                out.append(f"{source}:{imp.line} imports the private module {imp.target} from outside {package}")
    # ``from hfa.infer import engines`` then ``engines._Loader``: an attribute of an imported module
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _absolute(source, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in modules():
                    aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules():
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != source
            and _private(node.attr)
        ):
            out.append(f"{source}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return out


def test_private_use_finder() -> None:
    def uses(text: str) -> list[str]:
        return private_uses("hfa.infer.session", ast.parse(text))

    assert uses("from hfa.infer.engines.base import _x\n") == ["hfa.infer.session:1 imports hfa.infer.engines.base._x"]
    assert uses("def f():\n    from hfa.infer import tasks\n    return tasks._kind\n") == [
        "hfa.infer.session:3 uses hfa.infer.tasks._kind"
    ]
    fake = "hfa.scan._parts"  # hfa has no private module left: pretend there is one
    modules()[fake] = PACKAGE / "scan" / "_parts.py"
    try:
        assert uses(f"import {fake} as p\n") == [
            f"hfa.infer.session:1 imports the private module {fake} from outside hfa.infer"
        ]
    finally:
        del modules()[fake]
    assert uses("from hfa.infer.tasks import Task\nfrom hfa.errors import HfaError\n") == []


@pytest.mark.parametrize("scope", _scopes())
def test_no_private_names_across_modules(scope: str) -> None:
    bad = [line for name in modules() if _in_scope(name, scope) for line in private_uses(name)]
    assert bad == [], "\n".join(bad)


# Private attributes of another library's objects, used knowingly: (module, expression) -> why.
# Private attributes of a dependency's objects that hfa reads, with the reason and the fallback
# (none today: hfa.infer.client reaches huggingface_hub's request path through getattr, with a
# fallback to the public method, tested in tests/test_infer_client.py).
FOREIGN_PRIVATE: dict[tuple[str, str], str] = {}


def private_attributes(source: str, tree: ast.Module | None = None) -> list[str]:
    """``obj._name`` where ``obj`` is not ``self`` or ``cls``: another object's private state."""
    out = []
    for node in ast.walk(tree or _tree(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if (source, ast.unparse(node)) not in FOREIGN_PRIVATE:
                out.append(f"{source}:{node.lineno} uses {ast.unparse(node)}")
    return out


def test_private_attribute_finder() -> None:
    tree = ast.parse("def f(handler):\n    self._ok = handler._body_read\n")
    assert private_attributes("hfa.server.infer_routes", tree) == ["hfa.server.infer_routes:2 uses handler._body_read"]


@pytest.mark.parametrize("scope", _scopes())
def test_no_private_attributes_of_other_objects(scope: str) -> None:
    bad = [line for name in modules() if _in_scope(name, scope) for line in private_attributes(name)]
    assert bad == [], "\n".join(bad)


# -- size --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", _scopes())
def test_modules_stay_readable(scope: str) -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()}
    big = {name: n for name, n in sizes.items() if _in_scope(name, scope) and n > MAX_LINES}
    assert big == {}, f"modules over {MAX_LINES} lines: {big}"


# -- the test-world builder stays out of the product ------------------------------------------------
TESTING_USERS = {"hfa.testing", "hfa.demo"}  # the demo builds its world with it


def test_no_product_module_imports_the_test_world_builder() -> None:
    """hfa.testing builds worlds for tests, benchmarks and the demo; a rule the product needs (which
    files the Hub keeps in LFS) lives in the product (hfa.cache.hashing.is_lfs_path) and testing uses it."""
    users = sorted(
        f"{name}:{i.line}"
        for name in modules()
        if name not in TESTING_USERS
        for i in imports(name)
        if i.target == "hfa.testing" and not i.typing_only
    )
    assert users == [], f"modules importing hfa.testing: {users}"


# -- the public face of hfa.infer --------------------------------------------------------------------
def test_every_package_lists_its_public_names() -> None:
    for name in modules():
        if _is_package(name):
            names = [t.id for node in _tree(name).body if isinstance(node, ast.Assign) for t in node.targets]
            assert "__all__" in names, f"{name} has no __all__"


def test_importing_hfa_infer_imports_no_model_library() -> None:
    code = (
        "import sys, hfa.infer\n"
        "print(','.join(m for m in ('torch', 'transformers', 'diffusers', 'huggingface_hub', 'hfa.infer.engines')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
