"""The import contract, checked on every run: dependencies point one way.

``make check`` runs import-linter on the layers in ``pyproject.toml``. This test adds what a
layers contract cannot say, over the same graph (grimp, import-linter's own; imports inside
functions count, as a hidden import is still a dependency):

- no two areas of ``app`` reach each other through any chain of imports;
- no two modules import each other, directly or through others;
- no module under ``app/<area>/`` uses the service locator the areas left behind.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "workers", "chain", "webhooks")
# Infrastructure and composition modules: not business areas.
NOT_AREAS = frozenset({
    "app.main", "app.deps", "app.runtime", "app.cli", "app.operator", "app.settings",
    "app.errors", "app.ids", "app.jobs", "app.crypto", "app.recursion", "app.background",
    "app.redis_clients",
})


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES)


def _area(module: str) -> str:
    if module == "app.settings":
        return "app.config"  # the settings object and the package that checks and shows it
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "app" and len(parts) > 1 else parts[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_no_two_areas_reach_each_other(graph: grimp.ImportGraph) -> None:
    # given every import between modules of different areas
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if _area(module) != _area(imported):
                edges[_area(module)].add(_area(imported))

    # then the areas form a DAG
    assert _cycles(edges) == []


def test_no_two_modules_import_each_other(graph: grimp.ImportGraph) -> None:
    edges = {module: set(graph.find_modules_directly_imported_by(module))
             for module in graph.modules}

    assert _cycles(edges) == []


def test_no_area_reaches_the_runtime_object() -> None:
    # given every module of every business area under app/
    offenders = []
    for path in sorted((ROOT / "app").glob("*/**/*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if _area(module) in NOT_AREAS:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Name) and node.id == "runtime_of") or (
                isinstance(node, ast.ImportFrom) and node.module == "app.runtime")
            if named:
                offenders.append(f"{module}:{node.lineno}")

    # then none imports the runtime object or calls runtime_of: handlers receive what they use
    assert offenders == []
