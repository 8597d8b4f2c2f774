"""Pause Python's cyclic garbage collector while a spec is parsed or analysed.

Why: parsing builds hundreds of thousands of small acyclic objects (lark trees, tokens,
metas, AST nodes), which refcounting frees on its own. Each allocation burst still triggers
the cyclic collector, whose full passes walk every live object; on a 10,000-variable spec
that was 40-50% of parse and analysis time and grew faster than the spec. Nothing the
language stage builds depends on the cyclic collector, so it is paused for the duration
and restored (to its previous state: nesting is safe) afterwards, even on an error.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
