"""lark, imported without importing the optional `regex` package until someone uses it.

Why: `lark.lark` runs `import regex` when it is installed (~6 ms, a fortieth of `causalspec
parse`), only to have it ready for `Lark(..., regex=True)`, an option causalspec never uses:
our grammar's terminals are compiled by the standard `re` module either way. Importing this
module imports lark with `regex` hidden, then hands lark the module back as a stand-in that
imports the real `regex` on first use, so a `Lark(regex=True)` elsewhere in the process
behaves exactly as before (tests/syntax/test_grammar_cache.py checks both).

Import it before anything imports lark (syntax/parser.py and syntax/grammar_cache.py do);
when lark or regex is already imported it changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class LazyRegex(types.ModuleType):
    """Stands for the `regex` module in `lark.lark`; imports it on first attribute access."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("regex"), name)


def import_lark_without_regex() -> bool:
    """Import `lark.lark` with `regex` hidden and give lark a `LazyRegex` in its place; False
    (lark imported as usual) when lark or regex was already imported."""
    if "lark.lark" in sys.modules or "regex" in sys.modules:
        importlib.import_module("lark.lark")
        return False
    # `import regex` raises ImportError: a None entry is the import system's documented way to
    # block a module, which typeshed's `dict[str, ModuleType]` for sys.modules does not allow
    sys.modules["regex"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("lark")
    finally:
        if sys.modules.get("regex", ...) is None:
            del sys.modules["regex"]
    if importlib.util.find_spec("regex") is not None:
        # what `try: import regex` in lark's modules (lark.lark, lark.utils) would have left:
        # the module, and the flag saying it is there
        stand_in = LazyRegex("regex")
        for name, module in list(sys.modules.items()):
            if (name == "lark" or name.startswith("lark.")) and vars(module).get("_has_regex") is False:
                vars(module).update(regex=stand_in, _has_regex=True)
    return True


import_lark_without_regex()
