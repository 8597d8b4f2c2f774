"""The keep-rate guard's chance test, on a sample of its own size (claims.alignment.keep_rate_guard,
score.guards.Agreement).

Why its own sample: the test asks whether the unpatched network agrees with the model beyond
chance, and on the check's pool alone a small pool cannot show it — 14 of 16 right on a binary
output is p = 0.0501, and a pool of 512 holds ~5 rows of an output true on 1% — so a network
right on most inputs failed only because the sample was small. The pool's rows count first;
when there are fewer of them than `score.guards.agreement_rows` asks for, the rest are drawn for
the test alone. Nothing else reads them: the pairs, the pool and every score are unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from causalspec.claims.procedure import AlignmentRun, counted_as
from causalspec.compile.seeds import derive_seed
from causalspec.run.values import ValueTable
from causalspec.score.guards import AGREEMENT_ROWS_CAP, Agreement, agreement, agreement_rows, model_chance
from causalspec.semantics.pairs import row_ids
from causalspec.semantics.sampling import sample_inputs


def chance_agreement(run: AlignmentRun) -> Agreement:
    """The agreement the keep-rate guard judges: every row of `run`'s pool, duplicates included,
    and — when the pool has fewer rows than `agreement_rows` asks for — rows drawn for the test
    from the model's input distribution (`sample_inputs`, stratified as the pool is), one clean
    forward pass per distinct drawn input (reported as `clean (chance test)`). All the
    drawing is seeded by `derive_seed(seed, "agreement")`: first a sample run through the model
    alone (no network pass) that sizes the test, then the rows. The size is fixed before any row
    of the test is seen, so this is one test on one sample at ALPHA; the pool's rows are
    independent draws from the same distribution, so they are kept (and were paid for). A
    real-valued output keeps the pool alone: its value table would have to take every drawn
    model value, and the network's values are matched against that table."""
    pool_preds = np.asarray(run.cache.preds)[run.inverse]
    tested = agreement(run.pool_labels, pool_preds)
    n_pool = len(run.pool_labels)
    if isinstance(run.domain, ValueTable) or n_pool >= AGREEMENT_ROWS_CAP:
        return tested
    rng = np.random.default_rng(derive_seed(run.plan.seed, "agreement"))
    sizing = run.model.run(_inputs(sample_inputs(run.model, AGREEMENT_ROWS_CAP, rng)))[run.output]
    extra = agreement_rows(model_chance(sizing)) - n_pool
    if extra <= 0:
        return tested
    rows = _inputs(sample_inputs(run.model, extra, rng))
    labels = run.domain.codes(run.model.run(rows)[run.output])
    _, first, inverse = np.unique(row_ids(rows), return_index=True, return_inverse=True)
    with counted_as(run.engine, "chance test"):  # reported beside the check's own: "clean (chance test)"
        cache = run.engine.run_clean({k: v[first] for k, v in rows.items()}, [], bases=np.zeros(0, dtype=np.int64))
    preds = np.asarray(cache.preds)[inverse.reshape(-1)]
    both = agreement(np.concatenate([run.pool_labels, labels]), np.concatenate([pool_preds, preds]))
    return replace(both, drawn=extra)


def _inputs(sample) -> dict[str, np.ndarray]:
    return dict(getattr(sample, "inputs", sample))


__all__ = ["chance_agreement"]
