"""Pause Python's cyclic garbage collector while a spec is parsed or analysed.

Why: parsing builds hundreds of thousands of small acyclic objects (lark trees, tokens,
metas, AST nodes), which refcounting frees on its own. Each allocation burst still triggers
the cyclic collector, whose full passes walk every live object; on a 10,000-variable spec
that was 40-50% of parse and analysis time and grew faster than the spec. Nothing the
language stage builds depends on the cyclic collector, so it is paused for the duration
and restored (to its previous state: nesting is safe) afterwards, even on an error.

Why `freeze`/`unfreeze` on the way out: every object allocated during the pause is still
counted as young, so the first allocation after `gc.enable()` ran a collection that walked
all of them (the whole AST or IR just built: ~80 ms after parsing and ~150 ms after analysing
10,000 variables, a tenth of the work). `gc.freeze()` followed by `gc.unfreeze()` moves every
tracked object into the oldest generation in constant time and resets the young count, which
is where these long-lived objects end up anyway; the next full collection still examines them.
It is skipped when the program froze objects itself (`gc.get_freeze_count()`), whose frozen
set `unfreeze` would release.
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
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
