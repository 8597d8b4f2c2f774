"""Cache-aware sweeps: one clean forward per unique input serves every cell of a sweep.

Why: a layer × position sweep (which site carries variable X?) patches the same pairs at
many sites. Peer libraries run both forwards of every pair again for every cell. Here the
clean pass runs once per unique input and records every cell's site (one forward with all
the read hooks) and, for decoder-only models, the keys/values of every layer; each cell's
patched run then recomputes only the positions from its patch on (`run.incremental`).
The cost of a sweep is therefore one clean pass plus, per cell and pair, the tokens from
the cell's position to the end — a `@ last` cell costs one token per pair.

This is the engine-level primitive; `locate` blocks of a spec (issue 4) and benchmarks build
on it. Cells are ordinary site bindings (`SiteBinding`: site, positions, featurizer), so
anything a check can patch, a sweep can sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from causalspec.semantics.ir import SiteBinding
from causalspec.semantics.featurizers import Identity
from causalspec.semantics.sites import PositionSpec, SiteSpec


@dataclass
class SweepResult:
    """Patched predictions of every cell: ``preds[c, i]`` for cell c and pair i."""

    cells: list[SiteBinding]
    preds: np.ndarray  # [n_cells, n_pairs] output codes
    clean: np.ndarray  # [n_unique] clean predictions (the correctness filter)
    forward_passes: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rows: dict = field(default_factory=dict, repr=False)  # the unique inputs
    base: np.ndarray | None = field(default=None, repr=False)  # [n_pairs] indices into rows
    source: np.ndarray | None = field(default=None, repr=False)
    cache: object = field(default=None, repr=False)  # the engine's CleanCache (activations, keys/values)

    def accuracy(self, expected: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """Per cell, the fraction of (kept) pairs whose patched prediction equals ``expected`` [n_pairs]."""
        hit = self.preds == np.asarray(expected)[None, :]
        if keep is not None:
            hit = hit[:, np.asarray(keep, dtype=bool)]
        return hit.mean(axis=1) if hit.shape[1] else np.full(len(self.cells), np.nan)


def cells(kinds: Iterable[str], layers: Iterable[int], positions: Sequence[PositionSpec],
          featurizer=None) -> list[SiteBinding]:
    """The grid kinds × layers × positions as bindings, layer-major (``resid.post[0] @ p0, @ p1, …``)."""
    feat = featurizer if featurizer is not None else Identity()
    return [SiteBinding(SiteSpec(kind, layer), (pos,), feat)
            for kind in kinds for layer in layers for pos in positions]


def sweep(engine, rows: dict[str, np.ndarray], base: np.ndarray, source: np.ndarray,
          grid: Sequence[SiteBinding], progress: Callable[[int], None] | None = None) -> SweepResult:
    """Interchange every cell of ``grid`` from ``rows[source[i]]`` into ``rows[base[i]]``.

    ``rows`` are unique inputs (``base``/``source`` index them). One clean pass records all
    cells' sites; then one (incremental, where the model allows) patched pass per cell.
    """
    grid = list(grid)
    if not grid:
        raise ValueError("a sweep needs at least one cell")
    before = dict(engine.forward_passes)
    base = np.asarray(base)
    source = np.asarray(source)
    cache = engine.run_clean(rows, grid, progress, bases=np.unique(base))
    preds = np.stack([engine.run_patched(rows, cache, base, [source], [[cell]], progress) for cell in grid])
    passes = {k: engine.forward_passes[k] - before.get(k, 0) for k in engine.forward_passes}
    notes = engine.run_notes() if hasattr(engine, "run_notes") else []
    return SweepResult(grid, preds, cache.preds, passes, notes, rows, base, source, cache)


__all__ = ["SweepResult", "cells", "sweep"]
