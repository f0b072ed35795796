"""The code's shape, checked: no import cycle, and no long module without a reason.

An import cycle makes the order of imports matter and hides which layer depends on
which; a long module usually holds two jobs.  Both crept in before (the web API and
its articles module imported each other; the CLI and the composition root passed
1,000 lines), so they are checked here rather than left to review.  An import inside
a function counts (deferring it hides a cycle, it doesn't remove it); one under
``if TYPE_CHECKING:`` doesn't (it never runs).
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("publisher", "subscribers")
MAX_LINES = 400
# A module may pass MAX_LINES when its docstring says why, in a sentence with this phrase.
REASON = "long because"


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, name: str, is_package: bool, modules: Collection[str]) -> set[str]:
    """Modules ``name`` imports, at the top or inside a function (a deferred import
    that only hides a cycle is still a cycle), but not under ``if TYPE_CHECKING:``.

    ``from package import module`` imports the module, not the package's own code:
    every module of a package runs its ``__init__`` first whichever way it is named
    (``import package.module`` too), so that is no edge, or a package that gathers
    its modules (the CLI's root group) would be a cycle with each of them.  A name
    that is not a module (``from package import function``) is an edge to the package.
    """
    imported: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                imported.add(submodule if submodule in modules else module)
        pending.extend(ast.iter_child_nodes(node))
    return imported


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = _imports(tree, name, path.name == "__init__.py", modules)
        graph[name] = {target for target in imports if target in modules and target != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", sorted(_modules()))
def test_a_long_module_says_why(name: str) -> None:
    path = _modules()[name]
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n")
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert REASON in " ".join(docstring.split()), (
        f"{path.relative_to(REPO)} has {lines} lines (over {MAX_LINES}): split it by job, "
        f"or say in its docstring why it is {REASON} …"
    )


def test_a_module_named_from_its_package_is_an_edge_to_the_module_alone() -> None:
    tree = ast.parse("from pkg import mod, helper\nfrom . import sibling\n")
    modules = {"pkg", "pkg.mod", "pkg.sub", "pkg.sub.sibling", "pkg.sub.here"}
    assert _imports(tree, "pkg.sub.here", False, modules) == {"pkg.mod", "pkg", "pkg.sub.sibling"}
