"""The house rules of the code layout (docs/layout.md): no module in rag/, api/ or bench/ over 400 lines,
and no import circles between them. Every import counts, the ones inside functions too (a circle that
only closes at call time is still a circle); imports under ``if TYPE_CHECKING:`` do not run and do not count.

    python tests/test_layout.py        # the same checks as a script: long modules and circles, if any
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rag", "api", "bench")
MAX_LINES = 400


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted names a module imports (absolute), wherever the import statement is; literal
    ``__import__("x")`` and ``importlib.import_module("x")`` calls count as imports of ``x``."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.extend(f"{prefix}.{a.name}" for a in node.names)
            names.append(prefix)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "__import__") or (
                    isinstance(f, ast.Attribute) and f.attr == "import_module"):
                names.append(node.args[0].value)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph(files: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Edges module -> module it imports, both in the packages. ``from pkg import name`` points at
    ``pkg.name`` when that is a module, and at ``pkg`` (its ``__init__`` runs first)."""
    files = module_files() if files is None else files
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges = set()
        for name in _imported_names(tree, mod, path.name == "__init__.py"):
            while name and name not in files:  # `from pkg import function`: the package's module
                name = name.rpartition(".")[0]
            if name and name != mod:
                edges.add(name)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def long_modules(files: dict[str, Path] | None = None) -> dict[str, int]:
    files = module_files() if files is None else files
    lengths = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in files.items()}
    return {m: n for m, n in lengths.items() if n > MAX_LINES}


def test_no_module_is_over_400_lines():
    assert long_modules() == {}


def test_there_are_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_checks_see_a_circle_and_a_long_module(tmp_path):
    """The checker itself: a circle closed by an import inside a function is found, one under
    TYPE_CHECKING is not, and a 401-line module is reported."""
    pkg = tmp_path / "bench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from bench.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from bench import a\n    return a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.d import x\n")
    (pkg / "d.py").write_text("import bench.c\n" + "x = 1\n" * 400)
    files = {m: p for m, p in module_files(tmp_path).items()}
    assert cycles(import_graph(files)) == [["bench.a", "bench.b"]]
    assert long_modules(files) == {"bench.d": 401}


if __name__ == "__main__":
    found = cycles(import_graph())
    for comp in found:
        print("import circle:", " <-> ".join(comp))
    for mod, n in sorted(long_modules().items()):
        print(f"over {MAX_LINES} lines: {mod} ({n})")
    raise SystemExit(1 if found or long_modules() else 0)
