"""compile/plan.py and compile/training.py on the shipped hier_eq spec: claim labels and kinds,
pair counts, pool size, the effective seed, and a training pool disjoint from the held-out one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from causalspec.compile.plan import compile_check
from causalspec.compile.training import training_plan
from causalspec.semantics.analyse import load

SPEC = Path(__file__).resolve().parents[2] / "specs" / "hier_eq.cspec"
LABELS = [("{WX}", "declared"), ("{YZ}", "declared"), ("{WX, YZ}", "declared"), ("{WX | YZ}", "declared"),
          ("{WX}", "subset"), ("{YZ}", "subset"), ("{WX, YZ}", "subset")]


@pytest.fixture(scope="module")
def ir():
    return load(SPEC)


@pytest.mark.parametrize("pairs, seed, n, pool, chosen", [
    (None, None, 1024, 512, (0, "spec")),  # spec: pairs 1024 seed 0; the pool is capped
    (100, 5, 100, 100, (5, "--seed")),  # overrides: the pool never exceeds the pairs asked for
    (1, None, 1, 2, (0, "spec")),  # a pool always has two rows to pair
])
def test_compile_check_counts_and_seed(ir, pairs, seed, n, pool, chosen):
    plan = compile_check(ir, ir.checks[0], pairs=pairs, seed=seed)
    assert [(c.label, c.kind) for c in plan.claims] == LABELS  # `aaa` adds every subset
    assert [c.pairs.n for c in plan.claims] == [n] * len(LABELS)
    assert {k: len(v) for k, v in plan.pool.items()} == {k: pool for k in "WXYZ"}
    assert (plan.seed, plan.seed_source) == chosen


def test_compile_check_is_deterministic_per_seed(ir):
    a, b, c = (compile_check(ir, ir.checks[0], pairs=50, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(a.pool[k], b.pool[k]) for k in "WXYZ")
    assert not all(np.array_equal(a.pool[k], c.pool[k]) for k in "WXYZ")


def _rows(pool):
    return set(zip(*(np.asarray(pool[k]).tolist() for k in "WXYZ")))


def test_training_pool_is_disjoint_from_the_held_out_pool(ir):
    plan = compile_check(ir, ir.checks[0], pairs=100, seed=5)
    train = training_plan(plan)
    assert train.overlap == 0 and train.seed == 5
    assert not _rows(train.pool) & _rows(plan.pool)
    # the floor: at least 64 rows, at most 4096, else the training pairs asked for
    assert {k: len(v) for k, v in train.pool.items()} == {k: 4096 for k in "WXYZ"}
    assert train.n_pairs == 7 * 4096
    small = training_plan(plan, n_pairs=10)
    assert {k: len(v) for k, v in small.pool.items()} == {k: 64 for k in "WXYZ"}
    assert [c.pairs.n for c in small.claims] == [10] * 7
