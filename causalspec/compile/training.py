"""Training pairs for learned featurizers (`das`, `boundless`): a split disjoint from the check's.

Why a split of its own: a learned subspace is fitted to the pairs it sees, so a score on
those pairs says how well it was fitted, not whether the alignment holds. The check's own
pairs (the plan's pool) stay held out: training draws its own pool of inputs from an
independent random stream and drops every input row that also occurs in the held-out pool,
so no base or source the featurizer was trained on is ever scored. When the input space is
too small to keep the pools apart (every input is in the held-out pool), the pool falls back
to held-out inputs and records the overlap; `AlignmentRun.fit` refuses such a split, and one
below the floor of distinct inputs and pairs, with an error that names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from causalspec.compile.plan import CheckPlan, ClaimPlan
from causalspec.semantics.pairs import make_pairs, row_ids
from causalspec.semantics.sampling import sample_inputs

DEFAULT_TRAIN_PAIRS = 4096
TRAIN_STREAM = 0x7A11  # mixed into the seed: the training stream never replays the check's


@dataclass
class TrainingPlan:
    pool: dict[str, np.ndarray]
    claims: list[ClaimPlan] = field(default_factory=list)
    overlap: int = 0  # training pool rows that are also held-out rows (0 unless the space is tiny)
    seed: int = 0

    @property
    def n_pairs(self) -> int:
        return sum(c.pairs.n for c in self.claims)


def training_plan(plan: CheckPlan, n_pairs: int | None = None, seed: int | None = None,
                  pool_size: int | None = None) -> TrainingPlan:
    """Training pairs for every interchange set of `plan`, drawn from inputs it does not use."""
    model = plan.model
    seed = int(plan.seed if seed is None else seed)  # the check's effective seed (compile.seeds)
    n_pairs = int(n_pairs or getattr(plan.check, "train", None) or DEFAULT_TRAIN_PAIRS)
    rng = np.random.default_rng([seed, TRAIN_STREAM])
    held = set(row_keys(model, plan.pool).tolist())
    want = int(pool_size or max(64, min(n_pairs, 4096)))
    pool = _disjoint_pool(model, want, held, rng)
    overlap = int(sum(1 for r in row_keys(model, pool).tolist() if r in held))
    out = TrainingPlan(pool, overlap=overlap, seed=seed)
    for claim in plan.claims:
        out.claims.append(ClaimPlan(claim.label, claim.groups,
                                    make_pairs(model, claim.groups, n_pairs, rng, pool=pool), claim.kind))
    return out


def row_keys(model, rows: dict[str, np.ndarray]) -> np.ndarray:
    """Row keys comparable across pools (row_ids is only consistent within one call)."""
    cols = np.stack([np.asarray(model.domain(k).codes(rows[k])).astype(np.int64) for k in model.inputs], axis=1)
    # a stable hash of the row's values (a collision only drops one more training row)
    return np.array([hash(tuple(r)) for r in cols.tolist()], dtype=np.int64)


def _disjoint_pool(model, want: int, held: set, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`want` input rows, none of them in `held` when the input space allows it."""
    rows: dict[str, list] = {k: [] for k in model.inputs}
    got = 0
    for _ in range(8):
        sample = sample_inputs(model, max(want, 16) * 2, rng)
        inputs = dict(getattr(sample, "inputs", sample))
        keep = np.array([i not in held for i in row_keys(model, inputs).tolist()], dtype=bool)
        for k in model.inputs:
            rows[k].append(inputs[k][keep])
        got += int(keep.sum())
        if got >= want:
            break
    pool = {k: np.concatenate(v)[:want] for k, v in rows.items()}
    if len(next(iter(pool.values()))) < 2:  # the space is (almost) all held out: reuse it, say so
        sample = sample_inputs(model, want, rng)
        pool = dict(getattr(sample, "inputs", sample))
    return pool


__all__ = ["DEFAULT_TRAIN_PAIRS", "TrainingPlan", "training_plan", "row_ids"]
