"""labkit's import graph, drawn from the source with ``ast`` (every ``import`` and ``from ...
import`` of a labkit module, at any depth, function-level ones included), and the layer
order it must keep (issue 35):

    python tools/import_graph.py            # the graph by layer, then circles and breaches

Layers, lowest first; a module may import its own layer or a lower one, never a higher one:

0. ``labkit.infra``: CPU pins, mode and device, settings base, store, runner, data sources;
1. ``labkit.algorithms``: the paper's algorithms;
2. ``labkit.deep``: deep-network tools;
3. ``labkit.distributed``: GFS across processes;
4. ``labkit.experiments``: one subpackage per chapter's experiment;
5. ``labkit.plotting``: the figures;
6. ``labkit`` itself: the flat namespace (``__init__``), ``config`` (the registry of
   experiment names) and ``__main__`` (the command line).

``tests/test_layers.py`` fails on a circle or on an import from a lower layer to a higher one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("labkit.infra", "labkit.algorithms", "labkit.deep", "labkit.distributed",
          "labkit.experiments", "labkit.plotting", "labkit.claims", "labkit")


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for path in sorted((root / "labkit").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the labkit modules it imports (a ``from pkg import name`` counts as an
    import of ``pkg.name`` where that is a module, else of ``pkg``)."""
    mods = modules(root)
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        nodes = list(ast.walk(ast.parse(path.read_text())))
        for node in nodes:
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "labkit"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "labkit":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
        # importlib.import_module("labkit.x") with a constant name
        for node in nodes:
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith("labkit")):
                deps.add(node.args[0].value)
        if name == "labkit":  # the flat namespace's table names its modules as strings
            deps |= {node.value for node in nodes
                     if isinstance(node, ast.Constant) and node.value in mods}
        edges[name] = {d for d in deps if d in mods and d != name}
    return edges


def layer(module: str) -> int:
    """The layer of ``module``: the index of the longest prefix in :data:`LAYERS`."""
    best = None
    for i, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(LAYERS[best]):
                best = i
    if best is None:
        raise ValueError(f"{module}: in no layer of {LAYERS}")
    return best


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports from a lower layer to a higher one."""
    return sorted((a, b) for a, deps in edges.items() for b in deps if layer(b) > layer(a))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each a circle
    of imports; a package's ``__init__`` that imports its own modules is no circle unless
    one of them imports the package back."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
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

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    edges = graph()
    for i, prefix in enumerate(LAYERS):
        print(f"layer {i}: {prefix}")
        for name in sorted(m for m in edges if layer(m) == i):
            print(f"  {name} -> {', '.join(sorted(edges[name])) or '(nothing)'}")
    circles, breaches = cycles(edges), upward(edges)
    print(f"\n{len(edges)} modules, {sum(map(len, edges.values()))} imports; "
          f"{len(circles)} circles; {len(breaches)} imports from a lower layer to a higher one")
    for c in circles:
        print("  circle:", " <-> ".join(c))
    for a, b in breaches:
        print(f"  upward: {a} (layer {layer(a)}) imports {b} (layer {layer(b)})")
    return 1 if circles or breaches else 0


if __name__ == "__main__":
    sys.exit(main())
