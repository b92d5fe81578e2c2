"""The core's import graph: layered (each layer imports only from layers below it) and free of cycles, counting
function-level imports too. Read from the source with ``ast``, so nothing is imported (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import fmcore

ROOT = Path(fmcore.__file__).parent

#: top to bottom; a module may import from its own layer and the layers after it
LAYERS = ("cli", "api", "run", "recipe", "plugins", "core")
#: the conformance kits sit beside run: they use the math and the plugin machinery only
TESTING_MAY_USE = {"testing", "plugins", "core"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str] | None = None) -> set[str]:
    """Every fmcore module ``path`` imports (module level or inside functions): ``from a import b`` counts as
    importing ``a.b`` when that is a module (``modules``), else ``a``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("fmcore")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fmcore") and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if modules is None or sub in modules else node.module)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in imports(p, set(files)) if m in files and m != name} for name, p in files.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fmcore"


def test_layers_import_only_downwards():
    bad = []
    for module, targets in graph().items():
        here = layer(module)
        for target in targets:
            there = layer(target)
            if here == "testing":
                ok = there in TESTING_MAY_USE
            elif here in LAYERS:
                ok = there in LAYERS and LAYERS.index(there) >= LAYERS.index(here)
            else:  # fmcore/__init__.py and __main__.py: the package's front door may import anything
                ok = True
            if not ok:
                bad.append(f"{module} ({here}) imports {target} ({there})")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    g = {m: {t for t in ts if layer(t) != "fmcore"} for m, ts in graph().items() if layer(m) != "fmcore"}
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
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
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_function_level_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from fmcore.run.training import train\n")
    assert "fmcore.run.training.train" in imports(source)
