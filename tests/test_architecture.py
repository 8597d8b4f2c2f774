"""The layering of `causalspec` is a contract (docs/architecture.md), checked over the import graph.

The graph is read from the source with `ast` — module-level imports and imports inside
functions alike, relative imports resolved — so it sees what Python would import without
running anything. Three rules:

* **layers**: a module imports only its own package, packages of lower layers, and the
  shared base modules. Packages that share a layer (run / score / interop; testing /
  pytest_plugin) are independent of each other.
* **no cycles** between modules (imports under `if TYPE_CHECKING:` do not run, so they are
  left out of this rule, but not out of the layer rule).
* **no function-local import of a causalspec module** unless `LOCAL_IMPORTS` lists it with its
  reason. The one reason accepted is a lazy heavy import (the target pulls torch, sympy, lark
  or rich, which a light entry point — `causalspec --help`, `parse`, every pytest session
  through the plugin — must not pay for). A local import that only dodges a cycle is not on
  the list: it would be a cycle the layers forbid. Local imports of third-party modules are
  free (the lazy-import work for CLI latency relies on them).

Each finding names the offending import as `file:line  from X import Y`.
"""

from __future__ import annotations

import ast
import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "causalspec"

# Lowest first. Each layer is a set of top-level names under causalspec/ (a package or a module).
BASE = {"", "errors", "codes", "diagnostics", "remote_hosts", "files"}
LAYERS: list[set[str]] = [
    BASE,
    {"syntax"},
    {"semantics"},
    {"compile"},
    {"run", "score", "interop"},
    {"claims"},
    {"report"},
    {"cli"},
    {"testing", "pytest_plugin", "__main__", "api"},  # __main__: `python -m causalspec`; api: the Python API
]

# Function-local imports of causalspec modules that stay local: (importer, imported) -> why.
# Every reason is "lazy heavy import"; the heavy library is named.
LOCAL_IMPORTS: dict[tuple[str, str], str] = {
    # `causalspec.load` / `loads` (api.spec) analyse a spec without torch: running one loads it
    ("causalspec.api.spec", "causalspec.claims.runner"): "lazy: torch",
    ("causalspec.api.spec", "causalspec.claims.locate"): "lazy: torch",
    ("causalspec.api.spec", "causalspec.compile.plan"): "lazy: torch (through the plan's samplers)",
    ("causalspec.api.spec", "causalspec.cli.options"): "lazy: torch (through claims.runner)",
    ("causalspec.api.networks", "causalspec.run.loading"): "lazy: torch, transformers",
    # loading a network registers the attention-only architecture with transformers
    ("causalspec.run.loading", "causalspec.run.attn_only"): "lazy: torch, transformers",
    ("causalspec.api.progress", "causalspec.report.terminal"): "lazy: rich",
    ("causalspec.api.results", "causalspec.report.json_report"): "lazy: torch (through the result types it renders)",
    # `import causalspec.cli` (the plugin reads cli.options in every pytest session) must not
    # load the command table and every command module with it
    ("causalspec.cli", "causalspec.cli.app"): "lazy: the command table and its modules",
    # `causalspec --help` / `--version` stay fast: analysis pulls lark and sympy
    ("causalspec.cli.base", "causalspec.semantics.analyse"): "lazy: lark, sympy",
    # commands and the plugin reach torch only when they run a check
    ("causalspec.cli.check", "causalspec.claims.runner"): "lazy: torch",
    ("causalspec.cli.circuit", "causalspec.claims.runner"): "lazy: torch",
    ("causalspec.cli.circuit", "causalspec.claims.circuit"): "lazy: torch",
    ("causalspec.cli.locate", "causalspec.claims.runner"): "lazy: torch",
    ("causalspec.cli.locate", "causalspec.claims.locate"): "lazy: torch",
    ("causalspec.cli.locate", "causalspec.claims.common"): "lazy: torch",
    ("causalspec.cli.locate", "causalspec.report.heatmap"): "lazy: torch, matplotlib",
    ("causalspec.cli.options", "causalspec.claims.runner"): "lazy: torch",
    ("causalspec.cli.options", "causalspec.run.devices"): "lazy: sympy (through semantics.ir)",
    # cli.circuit / cli.locate import run.loading at the top; it must not pull sympy into `causalspec parse`
    ("causalspec.run.loading", "causalspec.run.devices"): "lazy: sympy (through semantics.ir)",
    ("causalspec.pytest_plugin", "causalspec.claims.runner"): "lazy: torch (the plugin loads in every pytest session)",
    ("causalspec.pytest_plugin", "causalspec.semantics.analyse"): "lazy: lark, sympy (every pytest session)",
    ("causalspec.pytest_plugin", "causalspec.report.terminal"): "lazy: rich (every pytest session)",
    # a report without a locate sweep or stress section never loads torch / rich for it
    ("causalspec.report.html", "causalspec.claims.locate"): "lazy: torch",
    ("causalspec.report.html", "causalspec.report.heatmap"): "lazy: torch, matplotlib",
    ("causalspec.report.html", "causalspec.report.stress_view"): "lazy: rich",
    ("causalspec.report.html", "causalspec.report.terminal"): "lazy: rich",
    ("causalspec.report.junit", "causalspec.report.terminal"): "lazy: rich",
    ("causalspec.report.junit", "causalspec.report.circuit_report"): "lazy: rich",
}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (the submodule when `from pkg import submodule`)
    path: str  # file, relative to the folder holding the package
    line: int
    text: str  # `from X import Y` / `import X`
    local: bool  # inside a function
    type_checking: bool  # under `if TYPE_CHECKING:`

    def __str__(self) -> str:
        return f"{self.path}:{self.line}  {self.text}"


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> file for every module of the package under `package_dir`."""
    top = package_dir.name
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (top, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, local: bool, guarded: bool):
    """(import node, inside a function, under TYPE_CHECKING) for every import below `node`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, local, guarded
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, True, guarded)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), local, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), local, guarded)
        else:
            yield from _walk(child, local, guarded)


@functools.cache
def _imports_of(source: str) -> tuple:
    """The import nodes of a module's source (cached: the planted copies share all files but one)."""
    return tuple(_walk(ast.parse(source), False, False))


def import_graph(package_dir: Path) -> list[Import]:
    """Every import of a module of the package by a module of the package."""
    modules = module_names(package_dir)
    top = package_dir.name
    found = []
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        rel = str(path.relative_to(package_dir.parent))
        for node, local, guarded in _imports_of(path.read_text(encoding="utf-8")):
            if isinstance(node, ast.Import):
                targets = [(alias.name, f"import {alias.name}") for alias in node.names]
            else:
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                spelled = "." * node.level + (node.module or "")
                targets = []
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append((sub if sub in modules else source, f"from {spelled} import {alias.name}"))
            for target, text in targets:
                if target == top or target.startswith(top + "."):
                    while target not in modules and "." in target:  # `import causalspec.x.y` of a name
                        target = target.rsplit(".", 1)[0]
                    found.append(Import(name, target, rel, node.lineno, text, local, guarded))
    return found


def room(module: str) -> str:
    """The top-level name under causalspec/ a module belongs to ('' for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    r = room(module)
    for i, layer in enumerate(LAYERS):
        if r in layer:
            return i
    raise AssertionError(f"{module}: its room {r!r} is in no layer of LAYERS (tests/test_architecture.py)")


def layer_violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        a, b = room(imp.importer), room(imp.imported)
        if a == b:
            continue
        if imp.importer == "causalspec" and imp.type_checking:
            # the package root is the public face: it re-exports the API lazily (`import_module`
            # in `__getattr__`, so `import causalspec` loads nothing heavy) and names it for type
            # checkers only
            continue
        la, lb = layer_of(imp.importer), layer_of(imp.imported)
        if lb > la:
            out.append(f"{imp}: {a or 'causalspec'} (layer {la}) may not import {b} (layer {lb})")
        elif lb == la and a not in BASE:
            out.append(f"{imp}: {a} and {b} share a layer and stay independent")
    return out


def cycle_violations(imports: list[Import]) -> list[str]:
    graph = nx.DiGraph()
    for imp in imports:
        if not imp.type_checking and imp.importer != imp.imported:
            graph.add_edge(imp.importer, imp.imported, imp=imp)
    out = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            sub = graph.subgraph(component)
            edges = "; ".join(str(sub.edges[e]["imp"]) for e in sorted(sub.edges))
            out.append(f"import cycle between {', '.join(sorted(component))}: {edges}")
    return out


def local_import_violations(imports: list[Import], allowed: dict[tuple[str, str], str]) -> list[str]:
    return [f"{imp}: a function-local import of a causalspec module; import it at the top of the module "
            f"(or, for a lazy heavy import, list it with its reason in LOCAL_IMPORTS)"
            for imp in imports if imp.local and (imp.importer, imp.imported) not in allowed]


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return import_graph(PACKAGE_DIR)


def test_every_room_has_a_layer(graph):
    for name in module_names(PACKAGE_DIR):
        layer_of(name)


def test_lower_layers_never_import_higher_ones(graph):
    assert layer_violations(graph) == []


def test_no_import_cycles(graph):
    assert cycle_violations(graph) == []


def test_function_local_imports_are_only_the_listed_lazy_ones(graph):
    assert local_import_violations(graph, LOCAL_IMPORTS) == []
    used = {(imp.importer, imp.imported) for imp in graph if imp.local}
    assert sorted(set(LOCAL_IMPORTS) - used) == []  # an entry nobody needs any more goes


def test_the_graph_sees_relative_local_and_type_checking_imports(graph):
    by = {(i.importer, i.imported): i for i in graph}
    # `from causalspec.diagnostics import Diagnostic` under TYPE_CHECKING in errors.py
    assert by[("causalspec.errors", "causalspec.diagnostics")].type_checking
    # a local one from the allowlist
    assert by[("causalspec.cli.check", "causalspec.claims.runner")].local
    # `from causalspec.claims import runner as checking` names the submodule
    assert "from causalspec.claims import runner" == by[("causalspec.cli.check", "causalspec.claims.runner")].text


def _planted_copy(tmp_path: Path, module: str, line: str) -> Path:
    copy = tmp_path / "causalspec"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "_grammar"))
    target = copy.joinpath(*module.split(".")[1:]).with_suffix(".py")
    target.write_text(target.read_text(encoding="utf-8") + line, encoding="utf-8")
    return copy


def test_a_planted_back_import_is_caught_and_named(tmp_path):
    copy = _planted_copy(tmp_path, "causalspec.run.engine", "\nfrom causalspec.cli.app import main\n")
    imports = import_graph(copy)
    line = len((copy / "run" / "engine.py").read_text().splitlines())
    found = layer_violations(imports)
    assert found == [f"causalspec/run/engine.py:{line}  from causalspec.cli.app import main: "
                     f"run (layer 4) may not import cli (layer 7)"]


def test_a_planted_relative_back_import_inside_a_function_is_caught(tmp_path):
    copy = _planted_copy(tmp_path, "causalspec.semantics.sites",
                         "\n\ndef _planted():\n    from ..run import engine\n    return engine\n")
    imports = import_graph(copy)
    line = len((copy / "semantics" / "sites.py").read_text().splitlines()) - 1
    assert f"causalspec/semantics/sites.py:{line}  from ..run import engine: semantics (layer 2) may not import " \
           f"run (layer 4)" in layer_violations(imports)
    assert any(v.startswith(f"causalspec/semantics/sites.py:{line}  from ..run import engine: a function-local")
               for v in local_import_violations(imports, LOCAL_IMPORTS))


def test_a_planted_cycle_and_a_sibling_import_are_caught(tmp_path):
    # score.stats <- score.iia today; make stats import iia back: a cycle inside one layer
    copy = _planted_copy(tmp_path, "causalspec.score.stats", "\nfrom causalspec.score import iia\n")
    found = cycle_violations(import_graph(copy))
    assert len(found) == 1 and found[0].startswith("import cycle between causalspec.score.iia, ")
    assert "causalspec.score.stats: " in found[0]
    assert "causalspec/score/stats.py:" in found[0] and "from causalspec.score import iia" in found[0]
    copy = _planted_copy(tmp_path / "b", "causalspec.score.stats", "\nimport causalspec.run.sites\n")
    assert [v for v in layer_violations(import_graph(copy)) if "share a layer" in v] == [
        f"causalspec/score/stats.py:{len((copy / 'score' / 'stats.py').read_text().splitlines())}  "
        f"import causalspec.run.sites: score and run share a layer and stay independent"]


def test_synthetic_imports():
    imp = Import("causalspec.syntax.parser", "causalspec.report.terminal", "causalspec/syntax/parser.py", 7,
                 "from causalspec.report.terminal import check_text", False, False)
    assert layer_violations([imp]) == ["causalspec/syntax/parser.py:7  from causalspec.report.terminal import "
                                       "check_text: syntax (layer 1) may not import report (layer 6)"]
    # the base modules may import each other (errors <- diagnostics); cycles are still caught
    a = Import("causalspec.errors", "causalspec.diagnostics", "causalspec/errors.py", 3, "import x", False, False)
    b = Import("causalspec.diagnostics", "causalspec.errors", "causalspec/diagnostics.py", 4, "import y", False, False)
    assert layer_violations([a, b]) == []
    assert len(cycle_violations([a, b])) == 1
    assert cycle_violations([a, Import(*[*vars(b).values()][:-1], True)]) == []  # TYPE_CHECKING: no cycle


# ───────────────────────── tests use the public names ─────────────────────────

def private_uses(path: Path, modules: dict[str, Path], root: Path = ROOT) -> list[str]:
    """`from causalspec.x import _y`, and `m._y` where `m` names a causalspec module, in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "causalspec":
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(root)}:{node.lineno}  from {node.module} import {alias.name}")
                elif f"{node.module}.{alias.name}" in modules:
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            aliases.update(a.asname for a in node.names if a.asname and a.name in modules)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{path.relative_to(root)}:{node.lineno}  {node.value.id}.{node.attr}")
    return sorted(found, key=lambda hit: int(hit.split(":")[1].split()[0]))


def test_tests_and_benchmarks_use_no_private_names_of_causalspec():
    modules = module_names(PACKAGE_DIR)
    files = [f for folder in ("tests", "benchmarks", "examples") for f in sorted((ROOT / folder).rglob("*.py"))]
    assert [hit for f in files for hit in private_uses(f, modules)] == []


def test_a_private_import_in_a_test_is_found(tmp_path):
    planted = tmp_path / "test_planted.py"
    planted.write_text("from causalspec.run.families import _base_prefix\nfrom causalspec.run import engine\n"
                       "engine._hidden()\nimport causalspec.run.sites as s\ns._x\n", encoding="utf-8")
    assert private_uses(planted, module_names(PACKAGE_DIR), root=tmp_path) == [
        "test_planted.py:1  from causalspec.run.families import _base_prefix",
        "test_planted.py:3  engine._hidden", "test_planted.py:5  s._x"]
