"""The house's layers: imports only point down, even inside functions, and no module cycle.

Every `import` and `from ... import` statement of every module is read from its syntax tree
(module level, inside functions, under TYPE_CHECKING alike), so a lazy import cannot hide an
upward edge.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> the packages of ours it may import (itself always allowed).
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "ingest": {"core"},
    "expectations": {"core", "ingest"},
    "ml": {"core", "ingest"},
    "api": {"core", "ml"},
    "marketflow": {"core", "ingest", "expectations", "ml", "api"},
    "dags": {"core", "dags"},  # task bodies import the stages below at run time (see DAG_TASKS)
}
# DAG files are wiring: at module level only core; inside tasks any stage (never the app).
DAG_TASKS = {"core", "ingest", "expectations", "ml"}
OURS = set(MAY_IMPORT)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str | None = None) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import statement in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    name = name or _module_name(path)
    package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name
    out: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno, id(node) in top_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out.append((module, node.lineno, id(node) in top_level))
    return out


def _edges() -> list[tuple[str, str, str, int, bool]]:
    """(importer package, imported package, file, line, module level) across our packages."""
    edges = []
    for package in MAY_IMPORT:
        for path in _modules(package):
            for module, line, top in _imports(path):
                target = module.split(".")[0]
                if target in OURS and target != package:
                    rel = str(path.relative_to(ROOT))
                    edges.append((package, target, rel, line, top))
    return edges


def test_every_package_is_known() -> None:
    found = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert found - {"tests", "bench"} == OURS, "a new package needs its place in MAY_IMPORT"


def test_no_package_imports_a_package_above_it() -> None:
    upward = []
    for package, target, path, line, top in _edges():
        allowed = MAY_IMPORT[package]
        if package == "dags" and not top:
            allowed = allowed | DAG_TASKS
        if target not in allowed:
            upward.append(f"{path}:{line} ({package} -> {target})")
    assert upward == [], "upward imports:\n" + "\n".join(upward)


def test_the_layer_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = "def f():\n    from marketflow.cli import main\n    return main\n"
    path = tmp_path / "lazy.py"
    path.write_text(source)
    assert ("marketflow.cli", 2, False) in _imports(path, "ml.lazy")


def _module_graph() -> dict[str, set[str]]:
    names = {_module_name(p) for package in OURS for p in _modules(package)}
    graph: dict[str, set[str]] = defaultdict(set)
    for package in OURS:
        for path in _modules(package):
            me = _module_name(path)
            for module, _, top in _imports(path):
                if not top:
                    continue  # a lazy import runs after both modules have loaded
                # `from a.b import c` may name module a.b.c or attribute c of a.b.
                while module and module not in names:
                    module = module.rpartition(".")[0]
                if module and module != me and not me.startswith(module + "."):
                    graph[me].add(module)
    return graph


def test_no_import_cycle_between_modules() -> None:
    graph = _module_graph()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


ENV_READ = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[[^\]]+\](?!\s*=)")
# Libraries that read the environment themselves (dbt's profile, MLflow's credentials) get it
# through core.settings.environment(), which sets and restores it around a call.
ENV_READERS_ALLOWED = {"core/settings.py"}


@pytest.mark.parametrize("package", sorted(OURS))
def test_only_the_settings_module_reads_the_environment(package: str) -> None:
    """Settings are read once, by core/settings.py; modules take them as arguments."""
    readers = []
    for path in _modules(package):
        rel = str(path.relative_to(ROOT))
        if rel in ENV_READERS_ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ENV_READ.search(line):
                readers.append(f"{rel}:{number}: {line.strip()}")
    assert readers == []
