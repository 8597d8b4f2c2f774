"""numpy for the analysis, imported when a value is first computed, not when a module loads.

Why: `causalspec parse` and `causalspec graph` analyse every model (issue 15 wants them under
0.3 s, for editors and pre-commit hooks), and importing numpy costs ~65 ms of CPU of that. A
model is only *evaluated* (with numpy) when the analysis has something to compute: `example`
lines, `where` constraints, tables, weighted inputs, mechanisms whose static range may leave
their type. The other specs are type-checked and drawn without numpy ever loading.

The semantics modules write `np.less(...)` as usual, with

    if TYPE_CHECKING:
        import numpy as np
    else:
        from causalspec.semantics import lazy_numpy
        np = lazy_numpy.numpy.bind(globals(), "np")

so type checkers see numpy itself, and after the first use `np` is numpy. Code that runs
before anything is evaluated (building a mechanism's evaluator, module-level tables) must
not touch `np.<name>`: every such access imports numpy.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for the module `name`, imported on the first attribute read. Then every global
    bound with `bind` is replaced by the module itself (evaluators read `np.add` as a plain
    module attribute, which the interpreter specialises; the 10,000-variable benchmark reads
    them ~10^5 times), and each attribute read through this object is kept on it."""

    def __init__(self, name: str) -> None:
        self._lazy_name = name
        self._bound: list[tuple[dict[str, Any], str]] = []
        self._module: Any = None

    def bind(self, namespace: dict[str, Any], alias: str) -> LazyModule:
        """This object, to be stored as `namespace[alias]` (a module's `globals()`): that global
        becomes the real module when it is first used (at once, when it already was)."""
        if self._module is not None:
            return self._module
        self._bound.append((namespace, alias))
        return self

    def __getattr__(self, attr: str) -> Any:  # only called for attributes not cached yet
        if attr.startswith("__") and attr.endswith("__"):
            # copy, pickle and inspect probe for dunders on any object: answer as an object
            # would instead of importing the module for them
            raise AttributeError(attr)
        module = self._module = importlib.import_module(self._lazy_name)
        for namespace, alias in self._bound:
            if namespace.get(alias) is self:
                namespace[alias] = module
        value = getattr(module, attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazily imported module {self._lazy_name!r}>"


numpy = LazyModule("numpy")
