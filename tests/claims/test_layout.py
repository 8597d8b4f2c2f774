"""The shape of `causalspec.claims` (issue 12): one module per claim kind, no import cycle
among them, no claim module reaching into another's private names, no function-local import
that only dodges a cycle, and no module longer than about 600 lines.

Read from the source with `ast`, so a violation names the file, the line and the import."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import causalspec.claims

CLAIMS = Path(causalspec.claims.__file__).parent
PACKAGE = "causalspec.claims"
MAX_LINES = 600


def _modules() -> dict[str, ast.Module]:
    return {f"{PACKAGE}.{p.stem}": ast.parse(p.read_text(), str(p)) for p in sorted(CLAIMS.glob("*.py"))
            if p.stem != "__init__"}


def _imports(tree: ast.Module):
    """(line, imported module, names, at module level) for every `from causalspec… import`."""
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("causalspec"):
            yield node.lineno, node.module, [a.name for a in node.names], id(node) in top
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("causalspec"):
                    yield node.lineno, a.name, [], id(node) in top


def test_every_claim_kind_has_its_module():
    assert {"runner", "common", "alignment", "circuit", "locate", "stress"} <= {m.rsplit(".", 1)[1]
                                                                             for m in _modules()}


def test_the_claim_modules_import_each_other_without_a_cycle():
    graph = nx.DiGraph()
    for name, tree in _modules().items():
        graph.add_node(name)
        for _, module, _, _ in _imports(tree):
            if module.startswith(PACKAGE + "."):
                graph.add_edge(name, module)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles among claim modules: {cycles}"


def test_no_claim_module_imports_another_ones_private_names():
    bad = [f"{name}:{line} imports {n} from {module}"
           for name, tree in _modules().items() for line, module, names, _ in _imports(tree)
           for n in names if module.startswith(PACKAGE) and module != name and n.startswith("_")]
    assert not bad, bad


def test_causalspec_is_imported_at_module_level_in_claims():
    # a function-local `from causalspec… import` was there to dodge a cycle; none is left
    local = [f"{name}:{line} imports {module} inside a function"
             for name, tree in _modules().items() for line, module, _, top in _imports(tree) if not top]
    assert not local, local


def test_no_claim_module_is_longer_than_about_600_lines():
    long = {p.name: n for p in CLAIMS.glob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
