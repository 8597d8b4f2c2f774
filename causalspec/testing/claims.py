"""A check's first claim through the engine, step by step (tests and benchmarks).

Why: `causalspec check` runs the clean pass, the patched pass and the scoring in one call;
tests that compare two ways of running (incremental vs full forwards, the torch engine vs
the nnsight backend, under a memory limit) and the throughput benchmarks need the
predictions in between. One copy of that setup — the plan, the pool's unique inputs, each
pair's indices into them, the bindings of each interchanged group — keeps them measuring
the same thing `claims.alignment` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from causalspec.compile.plan import CheckPlan, compile_check
from causalspec.run.engine import Engine, EngineOptions
from causalspec.run.families import resolve_family
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.loading import LoadedNetwork, load_hf_network
from causalspec.semantics.pairs import row_ids


def unique_pool(pool: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(the pool's unique rows, each pool row's index into them), as the engine's clean pass wants them."""
    _, first, inverse = np.unique(row_ids(pool), return_index=True, return_inverse=True)
    return {k: v[first] for k, v in pool.items()}, inverse


def make_engine(plan, net, batch: int, incremental: bool | None = None, engine_cls=None):
    """An engine (default `run.engine.Engine`) over an HF adapter of `net` for `plan`;
    `incremental` None keeps the engine's default."""
    options = EngineOptions(batch_size=batch) if incremental is None else EngineOptions(batch_size=batch,
                                                                                      incremental=incremental)
    return (engine_cls or Engine)(HFAdapter(net, plan.network, plan.model, plan.output), net.module,
                                  resolve_family(net.module), options)


@dataclass
class ClaimRun:
    """What the engine needs to run the first claim of `plan`: indices are into `rows`."""

    plan: CheckPlan
    net: LoadedNetwork
    engine: Engine
    rows: dict[str, np.ndarray]  # the pool's unique inputs
    base: np.ndarray  # per pair: its base input
    sources: list[np.ndarray]  # per source of the interchange, per pair: its source input
    groups: list[list]  # per interchanged group: the site bindings it patches

    @property
    def claim(self):
        return self.plan.claims[0]

    @property
    def n_unique(self) -> int:
        return len(next(iter(self.rows.values())))

    def clean(self):
        return self.engine.run_clean(self.rows, self.plan.bindings(), bases=np.unique(self.base))

    def patched(self, cache) -> np.ndarray:
        return self.engine.run_patched(self.rows, cache, self.base, self.sources, self.groups)

    def run(self):
        """(clean cache, patched predictions per pair)."""
        cache = self.clean()
        return cache, self.patched(cache)


def claim_run(ir, check: Any = None, *, net=None, batch: int | None = None,
              pairs: int | None = None, incremental: bool | None = None, engine_cls=None) -> ClaimRun:
    """Plan `check` (a CheckIR, its name, or None: the spec's first) with `pairs` overriding the
    spec's, load its `hf` network on the CPU unless `net` is given, and build the engine
    (`batch` defaults to the check's)."""
    if check is None:
        check = ir.checks[0]
    elif isinstance(check, str):
        check = next(c for c in ir.checks if c.name == check)
    plan = compile_check(ir, check, pairs)
    if net is None:
        net = load_hf_network(plan.network.name, str(plan.network.source), Path(ir.file).parent, None, "cpu", None)
    engine = make_engine(plan, net, batch if batch is not None else check.batch, incremental, engine_cls)
    rows, inverse = unique_pool(plan.pool)
    claim = plan.claims[0]
    groups = [[b for v in g for b in plan.alignment.variables[v]] for g in claim.groups]
    return ClaimRun(plan, net, engine, rows, inverse[claim.pairs.base_index],
                    [inverse[s] for s in claim.pairs.source_index], groups)


__all__ = ["ClaimRun", "claim_run", "make_engine", "unique_pool"]
