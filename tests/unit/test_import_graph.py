"""The package's modules import one way: no import cycles in src/, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "hapa_telemetry"


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, level: int, here: str, is_package: bool) -> str:
    if level == 0:
        return module
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its text.

    Every import statement counts: at the top, inside functions (lazy) and under
    ``TYPE_CHECKING``. ``from p import n`` is an edge to ``p.n`` when that is a module,
    else to ``p``. Importing ``p.q`` also runs ``p/__init__``; that implicit step is
    Python's, not the module's choice, and is not an edge.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", node.level, name, is_package)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def test_detector_finds_a_cycle() -> None:
    """The detector itself reports a loop a -> b -> c -> a and nothing for a chain."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_graph_sees_lazy_and_type_checking_imports() -> None:
    """Imports inside functions and under TYPE_CHECKING are edges (they are real loops)."""
    graph = import_graph()
    assert "hapa_telemetry.analysis.run" in graph["hapa_telemetry.cli"]  # a lazy import
    assert "hapa_telemetry.runtime" in graph[PACKAGE]  # under TYPE_CHECKING


def test_src_has_no_import_cycles() -> None:
    """No module of src/ reaches itself again through its imports."""
    assert find_cycles(import_graph()) == []



def facade_loops() -> list[tuple[str, str]]:
    """``(module, package)`` where ``module`` imports ``from package import ...`` (so
    Python runs ``package/__init__`` first) although that ``__init__`` eagerly imports
    ``module``, directly or through other modules: a loop through the facade, which
    the module graph above does not show (it resolves ``from p import sub`` to ``p.sub``).
    """
    modules = _modules()
    graph = import_graph()
    found = []
    for pkg, path in modules.items():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        todo = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
            for node in tree.body if isinstance(node, ast.ImportFrom)
            for base in [_resolve(node.module or "", node.level, pkg, True)]
            for alias in node.names
        ]
        reached: set[str] = set()
        while todo:
            name = todo.pop()
            if name in modules and name != pkg and name not in reached:
                reached.add(name)
                todo.extend(graph[name])
        for name in sorted(reached):
            for node in ast.walk(ast.parse(modules[name].read_text(), str(modules[name]))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == pkg:
                    found.append((name, pkg))
    return found


def test_no_module_loops_through_its_package_facade() -> None:
    """fastapi/__init__ imports middleware, so middleware must not import
    ``from hapa_telemetry.fastapi import ...`` (that runs the half-built facade again)."""
    assert facade_loops() == []
