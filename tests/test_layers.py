"""The one-way import rule of docs/architecture.md, checked on the source with `ast` (nothing is imported).

Every import counts: module level, inside functions and under `if TYPE_CHECKING:`. A module may import only
from its own layer or lower ones; `models` and `metrics` share a layer but neither imports the other; and no
chain of imports between modules may come back to where it started.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "gantrain"

# low -> high; the key is the first name under gantrain (a subpackage or a top-level module)
LAYERS: dict[str, int] = {
    "": 0, "errors": 0,  # "" is gantrain/__init__.py (the version)
    "io": 1, "rng": 1, "runtime": 1, "config": 1,
    "runs": 2,
    "nets": 3, "losses": 3, "data": 3, "inversion": 3,
    "text": 4,
    "models": 5, "metrics": 5,
    "trainer": 6,
    "cli": 7, "__main__": 7,
}
SIBLINGS = {frozenset({"models", "metrics"})}

def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The gantrain modules an import statement names (a `from pkg import sub` names the submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "gantrain"]
    base = node.module or ""
    if node.level:
        anchor = importer.split(".")
        if MODULES[importer].name != "__init__.py":
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    if base.split(".")[0] != "gantrain":
        return []
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
    return subs or [base]


@functools.cache
def imports() -> tuple[tuple[str, int, str], ...]:
    """(importing module, line, imported module) for every import of a gantrain module, at any depth."""
    found: list[tuple[str, int, str]] = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found += [(name, node.lineno, target) for target in resolve(name, node)]
    return tuple(found)


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(SRC.parent)}:{line}"


def test_every_module_has_a_layer() -> None:
    unknown = sorted({component(m) for m in MODULES} - set(LAYERS))
    assert not unknown, f"add these to LAYERS in tests/test_layers.py and docs/architecture.md: {unknown}"


def test_imports_only_go_down() -> None:
    bad = []
    for importer, line, target in imports():
        src, dst = component(importer), component(target)
        upward = LAYERS[dst] > LAYERS[src]
        sideways = frozenset({src, dst}) in SIBLINGS
        if not (upward or sideways):
            continue
        why = "a sibling layer" if sideways else f"a higher layer ({dst}: {LAYERS[dst]} > {src}: {LAYERS[src]})"
        bad.append(f"{where(importer, line)}: {importer} imports {target}, {why}")
    assert not bad, "imports against the layer rule (docs/architecture.md):\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for importer, line, target in imports():
        if target in MODULES and target != importer:
            graph[importer].setdefault(target, line)
    cycles, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state[nxt] == 1:
                loop = path[path.index(nxt):] + [nxt]
                arrows = " -> ".join(f"{a} ({where(a, graph[a][b])})" for a, b in zip(loop, loop[1:]))
                cycles.append(f"{arrows} -> {nxt}")
            elif state[nxt] == 0:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in graph:
        if state[module] == 0:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
