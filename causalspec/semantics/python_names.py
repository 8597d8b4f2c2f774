"""The names a hook file defines, read without running it: a misspelt hook or builder function
(`model.py:encdoe`) is a located spec error with a did-you-mean at analysis, not a check error
found after the network loaded.

Why `ast` and not an import: analysis never runs user code (a hook file's top level may load
weights or start a GPU). What a file binds at its top level — `def`, `class`, assignments,
imports, also inside top-level `if`/`try`/`with`/`for` blocks — is read from its syntax tree.
When that cannot be known statically (a syntax error, `from x import *`, a module
`__getattr__`, `globals()`, `exec`, `setattr`), the answer is None and the loader, which
imports the file, reports a missing function at check time instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

# what makes a module's names unknowable without running it
DYNAMIC = ("globals(", "exec(", "setattr(", "vars(", "__getattr__", "__dict__", "sys.modules")


def top_level_names(path: Path) -> set[str] | None:
    """The names `path` binds at its top level, or None when they cannot be known statically."""
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    if any(marker in text for marker in DYNAMIC):
        return None
    names: set[str] = set()
    if not _collect(tree.body, names):
        return None
    return names | _declared_global(tree)


def _declared_global(tree: ast.Module) -> set[str]:
    """The names a `global` statement anywhere in the file declares.

    Why: a function or class body that says `global encode` and then defines or assigns `encode`
    binds a module name when it runs (`def _setup(): global encode; def encode(x): ...`, then
    `_setup()` at the top level). Reading only the top level would call such a hook file's
    valid function missing — a spec error on a working setup. Whether the binding runs is not
    knowable without running the file, so a declared name counts as bound and the loader,
    which imports the file, has the last word."""
    return {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}


def _collect(body: list[ast.stmt], names: set[str]) -> bool:
    """Add what the statements bind; False when that cannot be known (a star import, `match`)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue  # what a function or class body binds is not the module's
        if isinstance(node, ast.Match):
            return False  # capture patterns bind names: rare at top level, not read
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return False
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_bound(target))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            names.update(_bound(node.target))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    names.update(_bound(item.optional_vars))
        for sub in ast.walk(node):  # `(f := make())` anywhere in a top-level statement
            if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                names.add(sub.target.id)
        blocks = [getattr(node, f, None) for f in ("body", "orelse", "finalbody")]
        blocks += [h.body for h in getattr(node, "handlers", None) or [] if isinstance(h, ast.ExceptHandler)]
        for handler in getattr(node, "handlers", None) or []:
            if isinstance(handler, ast.ExceptHandler) and handler.name:
                names.add(handler.name)
        for block in blocks:
            if isinstance(block, list) and not _collect(block, names):
                return False
    return True


def _bound(target: ast.expr) -> set[str]:
    """The plain names an assignment target binds (`a`, `a, b`, `[a, *b]`; not `x.a` or `x[0]`)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_bound(e) for e in target.elts)) if target.elts else set()
    if isinstance(target, ast.Starred):
        return _bound(target.value)
    return set()
