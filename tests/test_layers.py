"""The package's import graph is layered and acyclic.

Every ``import`` of a gradkern module -- at the top of a file or inside a
function (a lazy import is still a dependency) -- must go to the same layer
or a lower one, and no set of modules may import each other in a cycle.
Walked with ``ast``, so it needs nothing but the source.
"""
import ast
import os

import gradkern

ROOT = os.path.dirname(gradkern.__file__)

#: lowest first; a module may import its own layer and the ones before it.
#: The compilation machinery sits below the math, the math below the public
#: functions, the tools above those (numba-stats' order).
LAYERS = [
    {"errors", "progress"},
    {"_numba"},  # intrinsics, the kernel cache, threads, vector math
    {"stream"},  # the counter-based random numbers (sweep inputs, RReLU slopes)
    {"chain"},  # the chain rule's kernels and backends: no activation by name
    {"activations"},  # the registry and the math
    {"api", "jit"},  # gradkern.chain_grad; the scalar math for users' compiled code
    {"sweeps", "__init__"},
    {"reference", "verify", "ptx", "bench", "experiments", "plots", "mean_field"},
    {"cli", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules():
    """{dotted module name: path} for every .py file of the package."""
    out = {}
    for dirpath, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _imports(mod, path, modules):
    """The gradkern modules that ``mod`` imports, anywhere in its body."""
    package = mod if path.endswith("__init__.py") else mod.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from pkg import sub``: sub may be a module
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]  # gradkern.chain.cpu.get_kernel -> module
            if name and name != mod and name.startswith("gradkern"):
                found.add(name)
    return found


def _layer(mod):
    parts = mod.split(".")
    return RANK[parts[1] if len(parts) > 1 else "__init__"]


def _graph():
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_every_module_has_a_layer():
    missing = sorted(m for m in _graph() if (m.split(".") + ["__init__"])[1] not in RANK)
    assert not missing, f"modules in no layer (add them to LAYERS): {missing}"


def test_no_upward_imports():
    upward = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
              for a, targets in sorted(_graph().items()) for b in sorted(targets)
              if _layer(b) > _layer(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a cycle
    # through them: a submodule never needs its package's namespace
    edges = {a: {b for b in bs if not a.startswith(b + ".")} for a, bs in graph.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_walk_sees_lazy_and_relative_imports():
    """The checks above are only as good as this walk."""
    graph = _graph()
    assert "gradkern.chain.core" in graph["gradkern.chain.cpu"]  # from .core import ...
    assert "gradkern._numba.threads" in graph["gradkern.chain.cpu"]  # from .._numba import threads
    assert "gradkern.sweeps.dask" in graph["gradkern.sweeps.run"]  # inside sweep()
