"""crm_sync's modules import downwards only: no import cycle, and no module importing a layer above its own.

The graph is read from the source with ``ast``, so imports inside functions count as much as those at
the top of a file: a function-level import that runs back up a layer is the same tangle, only hidden.
Same-layer imports are allowed (a cycle among them is not). A new module must be placed in ``LAYERS``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "crm_sync"

# Bottom up. A module belongs to the entry with the longest matching dotted prefix.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "paths", "masking", "timezones", "digest", "transport", "records", "console_urls", "provider"),
    ("http", "paging", "warehouse"),
    ("profile", "profile_base", "profile_app", "profile_matching", "profile_webhooks", "profile_agency", "profile_rules",
     "profile_rules_check", "locations",
     "alerts"),
    ("hooks", "webhooks", "review"),
    ("pipeline", "cli"),
    ("web", "dag_factory", "fast_dag", "agency_dag"),
    ("",),  # the package itself (crm_sync/__init__.py)
]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The layer index of a crm_sync module; fails for a module the table does not place."""
    name = module.removeprefix("crm_sync").removeprefix(".")
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, entries in enumerate(LAYERS):
        for entry in entries:
            if name == entry or name.startswith(entry + "."):
                if best is None or len(entry) > best[0]:
                    best = (len(entry), index)
    assert best is not None, f"{module} is in no layer: place it in LAYERS of {Path(__file__).name}"
    return best[1]


def describe(layer: int) -> str:
    return ", ".join(entry or "crm_sync" for entry in LAYERS[layer])


def imports_of(path: Path, modules: set[str], root: Path = PACKAGE) -> list[tuple[str, int]]:
    """The package's modules ``path`` imports anywhere in it (top level, functions, classes), with line numbers."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in modules else base, node.lineno))
    return sorted({(target, line) for target, line in found if target in modules and target != me})


def import_graph(root: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in files}
    return {module_name(path, root): imports_of(path, modules, root) for path in files}


def find_cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Import cycles, each a list of modules whose first is also its last (one per back edge of a DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target, _ in graph[module]:
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target)
        state[module] = 2
        path.pop()

    for module in graph:
        if module not in state:
            visit(module)
    return cycles


def test_the_graph_sees_function_level_relative_and_submodule_imports_and_names_a_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name, source in {
        "__init__.py": "",
        "a.py": "def late():\n    from pkg.sub import b\n",  # b is a submodule, imported in a function
        "sub/__init__.py": "",
        "sub/b.py": "from . import c\n",  # relative
        "sub/c.py": "class C:\n    def m(self):\n        import pkg.a\n",
    }.items():
        (pkg / name).write_text(source)
    graph = import_graph(pkg)
    assert graph["pkg.a"] == [("pkg.sub.b", 2)] and graph["pkg.sub.b"] == [("pkg.sub.c", 1)]
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg.a"]]
    assert len(import_graph()) > 50  # the real package is read


def test_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_import_runs_back_up_a_layer():
    upward = []
    for module, targets in import_graph().items():
        for target, line in targets:
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} (line {line}) imports {target}: layer [{describe(layer_of(target))}] "
                              f"is above [{describe(layer_of(module))}]")
    assert not upward, "imports running back up a layer:\n" + "\n".join(sorted(upward))
