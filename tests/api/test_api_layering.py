"""causalspec.api sits at the top of the layering, and `import causalspec` stays cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "causalspec"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_nothing_below_the_api_imports_it():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "api" or rel == Path("__init__.py"):
            continue
        assert not [m for m in _imports(path) if m == "causalspec.api" or m.startswith("causalspec.api.")], rel


def test_api_modules_are_not_typing_debt():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    debt = [m for o in config["tool"]["mypy"].get("overrides", []) for m in o["module"]]
    assert not [m for m in debt if m.startswith("causalspec.api") or m == "causalspec"]


def test_no_module_is_exempt_from_strict_optional():
    # the typing-debt list was emptied (syntax/* and cli/* fixed last): a module put back under
    # strict_optional = false would also hide its `T | None` from every strict module importing it
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["strict_optional"] is True
    assert [m for o in mypy.get("overrides", []) if o.get("strict_optional") is False for m in o["module"]] == []
    # the bodies of unannotated functions are checked too, everywhere
    assert mypy["check_untyped_defs"] is True
    assert [m for o in mypy.get("overrides", []) if o.get("check_untyped_defs") is False for m in o["module"]] == []


def test_import_causalspec_loads_neither_torch_nor_the_api():
    code = ("import sys, causalspec; print('torch' in sys.modules, 'causalspec.api' in sys.modules, "
            "callable(causalspec.load), 'causalspec.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout.split()
    assert out == ["False", "False", "True", "True"]
