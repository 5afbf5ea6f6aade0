"""The house reads in one direction: no import cycle among Quanta's modules, nor among its packages.

The import graph is built with ``ast`` over ``federation/``: every ``import`` and ``from ... import``,
at module level or inside a function (a lazy import is still a dependency; it only moves the cost), is
an edge to the module it names (``from .pkg import mod`` names ``pkg.mod``). Packages are the first
level under ``federation`` (``federation.onboarding``, ``federation.cli``; a top-level module such as
``federation.platform`` is its own package).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "federation"

# Package-level edges allowed to close a cycle, and why. Keep this list short; each entry is a debt.
ALLOWED_PACKAGE_EDGES = {
    # rewrite.functions is a leaf (the tables of DuckDB functions, no Quanta import) that governance's
    # loader reads to check policy expressions; it belongs to neither package's logic.
    ("federation.governance.loader", "federation.rewrite.functions"),
}


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
                module = ".".join(x for x in (base, node.module) if x)
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            for t in targets:
                while t and t not in mods:  # import a.b.c of a module a.b: an edge to a.b
                    t = t.rpartition(".")[0]
                if t.startswith("federation") and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "federation.onboarding.common" in graph["federation.onboarding.pipeline"]  # from .common import
    assert "federation.onboarding.marts" in graph["federation.onboarding.control"]  # inside a function
    assert "federation.platform" in graph["federation.cli.query"] or \
        "federation.connection" in graph["federation.cli.query"]


def test_no_import_cycle_among_modules():
    assert cycles(import_graph()) == []


def test_no_import_cycle_among_packages():
    graph: dict[str, set[str]] = {}
    for source, targets in import_graph().items():
        for target in targets:
            if package(source) != package(target) and (source, target) not in ALLOWED_PACKAGE_EDGES:
                graph.setdefault(package(source), set()).add(package(target))
    assert cycles(graph) == []


def test_a_cycle_is_found():
    """The check itself: a planted cycle is reported."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
