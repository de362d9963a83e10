"""Imports run one way (CONVENTIONS.md 16): no cycle in nblstm/, and no private name imported across modules.

Read from the AST of every module, imports inside functions included: an import
deferred into a function to dodge a cycle is still an edge of the graph. Private
modules (``_api``, ``_math``, ``cpu._jit``) may be imported; private names
(``_activate_tile``) defined in another module may not.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nblstm"


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}


def _base(module, node):
    """The absolute module an ImportFrom names (``from .x import y`` in nblstm.cpu.z -> nblstm.cpu.x)."""
    if node.level == 0:
        return node.module
    package = module if module in PACKAGES else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(module, source=None):
    """(target module, imported private name or None, in a function) for each nblstm import of ``module``.

    ``source`` is the module's text (read from its file if None).
    """
    tree = ast.parse(MODULES[module].read_text() if source is None else source)
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        nested = id(node) in in_function
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nblstm":
                    yield alias.name, None, nested
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            if base.split(".")[0] != "nblstm":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in MODULES:
                    yield submodule, None, nested
                else:
                    yield base, alias.name if alias.name.startswith("_") else None, nested


def _graph():
    return {m: sorted({t for t, _, _ in _imports(m) if t in MODULES and t != m}) for m in MODULES}


def _cycles(graph):
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_analysis_sees_a_cycle_and_a_private_import():
    """Negative controls: a cycle and a private name across modules are found."""
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    assert _cycles({"a": ["b"], "b": []}) == []
    node = ast.parse("from .forward import _activate_tile").body[0]
    assert _base("nblstm.cpu.slices", node) == "nblstm.cpu.forward"
    assert _base("nblstm.cpu", ast.parse("from .plan import plan").body[0]) == "nblstm.cpu.plan"
    assert _base("nblstm.jit", ast.parse("from .cpu._jit import kernel").body[0]) == "nblstm.cpu._jit"
    found = list(_imports("nblstm.cpu.slices", "from .forward import _activate_tile, forward_layer\n"
                                               "def f():\n    from . import slices\n"))
    assert found == [("nblstm.cpu.forward", "_activate_tile", False), ("nblstm.cpu.forward", None, False),
                     ("nblstm.cpu.slices", None, True)]
    assert list(_imports("nblstm.jit", "from .cpu import _jit\n")) == [("nblstm.cpu._jit", None, False)]


def test_no_import_cycle():
    assert "nblstm.cpu.layers" in _graph()["nblstm.cpu"]
    assert _cycles(_graph()) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_imported_from_another_module(module):
    private = [f"{target}.{name}" for target, name, _ in _imports(module) if name is not None]
    assert private == []


def test_no_import_inside_a_function_in_the_cpu_backend():
    """The CUDA backend and the lazy faces (nblstm, nblstm.cuda, nblstm._api, nblstm._lean) load on first use."""
    nested = {m: [t for t, _, inside in _imports(m) if inside] for m in MODULES if m.startswith("nblstm.cpu")}
    assert {m: t for m, t in nested.items() if t} == {}
