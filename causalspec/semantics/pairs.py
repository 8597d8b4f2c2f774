"""Counterfactual pairs for an interchange set, and whether a pair set tells hypotheses apart.

Why pairs carry a pool: the neural engine runs the network once per *distinct* input and
patches activations between rows, so a PairSet is a pool of input rows plus `base_index` /
`source_index` arrays into it. With `pool=P`, P rows are sampled once and bases/sources are
drawn from them (bases stratified by the balanced variable's value in the pool, sources
uniformly); without a pool, bases and each group's sources are sampled independently and the
pool is their concatenation (indices are `arange` blocks).

Source != base: a pair whose source input equals its base is a wasted pair (the interchange
is a no-op). Sources are drawn so that each group's source row differs from its base row in
at least one input wherever the pool allows it: with a pool, colliding source indices are
redrawn (a few rounds); without one, colliding sources are swapped with another pair's
source of the same group (which keeps the sampled multiset, hence its balance). Rows where
no different input exists (a one-row input space) stay equal and are flagged in `same_as_base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalspec.semantics.interventions import Env, Groups, interchange, normalize_groups, source_values
from causalspec.semantics.model import CausalModel
from causalspec.semantics.sampling import MODEL_DEFAULT, SeedLike, as_rng, concat, equal_shares, sample_inputs, take

REDRAW_ROUNDS = 16


@dataclass(eq=False)
class PairSet:
    """n counterfactual pairs (base, one source per group) and the model's expectations."""

    model: CausalModel = field(repr=False)
    groups: list[list[str]]
    n: int
    seed: int | None  # None when drawn from a caller's Generator
    pool: dict[str, np.ndarray]  # every distinct-ish input row used, P rows
    base_index: np.ndarray  # (n,) int64 into pool
    source_index: np.ndarray  # (len(groups), n) int64 into pool
    base: dict[str, np.ndarray]  # pool rows at base_index
    sources: list[dict[str, np.ndarray]]  # per group: pool rows at source_index[g]
    expected: dict[str, np.ndarray]  # every non-input variable under the interchange
    base_values: dict[str, np.ndarray]  # every non-input variable, base run without intervention
    base_output: dict[str, np.ndarray]  # outputs of the base run without intervention
    patched: dict[str, np.ndarray]  # value each interchanged variable is fixed to
    changed: np.ndarray  # (n,) bool: the interchange changes some output vs base_output
    same_as_base: np.ndarray  # (len(groups), n) bool: source input row == base input row
    pooled: bool  # True when drawn from a shared pool (make_pairs(pool=P))
    balanced_on: str | None = None

    @property
    def n_changed(self) -> int:
        return int(self.changed.sum())

    @property
    def outputs(self) -> list[str]:
        return self.model.outputs

    @property
    def pool_size(self) -> int:
        return len(self.pool[self.model.inputs[0]])

    @property
    def expected_output(self) -> dict[str, np.ndarray]:
        return {k: self.expected[k] for k in self.model.outputs}

    def rows(self, k: int = 10) -> list[dict[str, Any]]:
        """The first k pairs as Python values (for display): base inputs, sources per group,
        the patched values, expected (counterfactual) outputs, base outputs, changed."""
        k = min(k, self.n)
        m = self.model
        first = slice(0, k)
        base = m.decode(take(self.base, first))
        sources = [m.decode(take(s, first)) for s in self.sources]
        patched = m.decode(take(self.patched, first)) if self.patched else [{}] * k
        expected = m.decode(take(self.expected_output, first))
        base_out = m.decode(take(self.base_output, first))
        return [{"base": base[i], "sources": [s[i] for s in sources], "groups": self.groups,
                 "patched": patched[i], "expected": expected[i], "base_output": base_out[i],
                 "changed": bool(self.changed[i])} for i in range(k)]


def make_pairs(model: CausalModel, groups: Groups, n: int, seed: SeedLike = 0,
               pool: int | Mapping[str, np.ndarray] | None = None,
               balanced_on: str | None = MODEL_DEFAULT) -> PairSet:
    """Sample n pairs for the interchange set `groups` and compute the expected counterfactuals.

    groups: one list of variable names per source (a bare string is a one-variable group),
    e.g. [["WX", "YZ"]] (one source) or [["WX"], ["YZ"]] (two). seed: int or Generator.
    pool: draw bases/sources as indices into P sampled rows, or into a given pool (a mapping of
    input arrays, shared between interchange sets). balanced_on: as sample_inputs.
    """
    if not model.inputs:
        raise ValueError(f"model `{model.name}` has no inputs, so it has no counterfactual pairs")
    groups = normalize_groups(model, groups)
    if not groups:
        raise ValueError("an interchange set needs at least one group")
    rng = as_rng(seed)
    g = len(groups)
    if pool is None:
        batches = [sample_inputs(model, n, rng, balanced_on) for _ in range(1 + g)]
        pool_inputs = concat([b.inputs for b in batches], model.inputs)
        base_index = np.arange(n, dtype=np.int64)
        source_index = np.arange(n, dtype=np.int64)[None, :] + n * np.arange(1, g + 1, dtype=np.int64)[:, None]
        ids = row_ids(pool_inputs)
        for row in source_index:
            _separate_by_swaps(row, ids[base_index], ids, rng)
        var = batches[0].balanced_on
    else:
        if isinstance(pool, Mapping):
            # A pool drawn once and shared by several interchange sets (one check's plan):
            # every unique input then runs through the network once for all of them.
            pool_inputs = {k: np.asarray(pool[k]) for k in model.inputs}
            var = model.balanced_on if balanced_on is MODEL_DEFAULT else balanced_on
        else:
            if pool < 1 and n > 0:
                raise ValueError(f"pool must hold at least one input row, got {pool}")
            sample = sample_inputs(model, pool, rng, balanced_on)
            pool_inputs, var = sample.inputs, sample.balanced_on
        ids = row_ids(pool_inputs)
        base_index = _base_indices(model, pool_inputs, var, n, rng)
        source_index = np.stack([_redraw_distinct(ids, base_index, rng) for _ in groups]) if n else \
            np.zeros((g, 0), dtype=np.int64)
    return _evaluate(model, groups, n, int(seed) if isinstance(seed, (int, np.integer)) else None, pool_inputs,
                     base_index, source_index, ids, pool is not None, var)


def _evaluate(model: CausalModel, groups: list[list[str]], n: int, seed: int | None, pool: Env,
              base_index: np.ndarray, source_index: np.ndarray, ids: np.ndarray, pooled: bool,
              var: str | None) -> PairSet:
    base = take(pool, base_index)
    sources = [take(pool, row) for row in source_index]
    if n == 0:
        empty = {k: np.zeros(0, dtype=model.domain(k).dtype()) for k in model.variables}
        non_inputs = {k: v for k, v in empty.items() if k not in model.inputs}
        return PairSet(model, groups, 0, seed, pool, base_index, source_index, base, sources, non_inputs,
                       non_inputs, {k: empty[k] for k in model.outputs},
                       {k: empty[k] for grp in groups for k in grp}, np.zeros(0, bool),
                       np.zeros((len(groups), 0), bool), pooled, var)
    env = interchange(model, base, sources, groups)
    base_env = model.run(base)
    inputs = set(model.inputs)
    expected = {k: v for k, v in env.items() if k not in inputs}
    base_values = {k: v for k, v in base_env.items() if k not in inputs}
    base_output = {k: base_env[k] for k in model.outputs}
    changed = np.zeros(n, dtype=bool)
    for k in model.outputs:
        changed |= np.asarray(expected[k] != base_output[k], dtype=bool)  # (object arrays for reals)
    patched = source_values(model, sources, groups)
    same = ids[source_index] == ids[base_index][None, :]
    return PairSet(model, groups, n, seed, pool, base_index, source_index, base, sources, expected,
                   base_values, base_output, patched, changed, same, pooled, var)


def row_ids(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """An int id per row, equal iff the rows' inputs are equal (for dedup and collisions)."""
    cols = [np.asarray(v).astype(np.int64) for v in inputs.values()]
    if not cols or len(cols[0]) == 0:
        return np.zeros(len(cols[0]) if cols else 0, dtype=np.int64)
    _, inverse = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _base_indices(model: CausalModel, pool: Env, var: str | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """Base indices into the pool; stratified by the balanced variable's value in the pool
    (equal shares per value present) so bases stay balanced, else uniform."""
    size = len(next(iter(pool.values())))
    if var is None or n == 0:
        return rng.integers(0, size, n).astype(np.int64)
    codes = model.domain(var).codes(model.run(pool)[var])
    values = np.unique(codes)
    parts = [rng.choice(np.flatnonzero(codes == v), share)
             for v, share in zip(values, equal_shares(n, len(values), rng))]
    return rng.permutation(np.concatenate(parts)).astype(np.int64)


def _redraw_distinct(ids: np.ndarray, base_index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform source indices, redrawn (a few rounds) where the source row equals the base row."""
    size = len(ids)
    src = rng.integers(0, size, len(base_index)).astype(np.int64)
    if np.unique(ids).size < 2:
        return src
    for _ in range(REDRAW_ROUNDS):
        bad = np.flatnonzero(ids[src] == ids[base_index])
        if not len(bad):
            break
        src[bad] = rng.integers(0, size, len(bad))
    return src


def _separate_by_swaps(src: np.ndarray, base_ids: np.ndarray, ids: np.ndarray, rng: np.random.Generator,
                       tries: int = 16) -> None:
    """In place: swap each colliding source (same row as its base) with another pair's source
    when the swap leaves both pairs non-colliding. Loops over collisions only (rare unless
    the input space is tiny)."""
    n = len(src)
    sid = ids[src]
    for i in np.flatnonzero(sid == base_ids):
        if sid[i] != base_ids[i]:
            continue
        js = rng.integers(0, n, tries)
        ok = (sid[js] != base_ids[i]) & (base_ids[js] != sid[i])
        if ok.any():
            j = int(js[np.argmax(ok)])
            src[i], src[j] = src[j], src[i]
            sid[i], sid[j] = sid[j], sid[i]


# distinguishing two hypotheses -----------------------------------------------------------

@dataclass
class DistinguishResult:
    """How often two models' predictions differ on one pair set."""

    n: int
    differ: np.ndarray  # (n,) bool: some output differs under the interchange
    base_differ: np.ndarray  # (n,) bool: some output differs on the base without intervention
    per_output: dict[str, int]  # counterfactual differences per output
    examples: list[dict[str, Any]]  # up to `k_examples` differing pairs, Python values
    b_constraint_violations: int  # pairs whose base or a source violates model_b's constraints

    @property
    def n_differ(self) -> int:
        return int(self.differ.sum())

    @property
    def n_base_differ(self) -> int:
        return int(self.base_differ.sum())

    @property
    def fraction(self) -> float:
        return self.n_differ / self.n if self.n else 0.0

    @property
    def base_fraction(self) -> float:
        return self.n_base_differ / self.n if self.n else 0.0

    @property
    def distinguishes(self) -> bool:
        return self.n_differ > 0


def check_comparable(model_a: CausalModel, model_b: CausalModel) -> None:
    """Two models can be compared on the same pairs: same input names and domains (so one
    input row means the same thing), same output names and domains."""
    for what, a_names, b_names in (("inputs", model_a.inputs, model_b.inputs),
                                   ("outputs", model_a.outputs, model_b.outputs)):
        if sorted(a_names) != sorted(b_names):
            raise ValueError(f"models `{model_a.name}` and `{model_b.name}` have different {what}: "
                             f"{sorted(a_names)} vs {sorted(b_names)}")
        for k in a_names:
            if model_a.domain(k) != model_b.domain(k):
                raise ValueError(f"`{k}` has type {model_a.domain(k).describe()} in `{model_a.name}` but "
                                 f"{model_b.domain(k).describe()} in `{model_b.name}`")


def distinguishing_power(model_a: CausalModel, model_b: CausalModel, pairs: PairSet,
                         groups_b: Groups | None = None, k_examples: int = 5) -> DistinguishResult:
    """Run both models on the pair set's bases/sources: model_a with `pairs.groups`, model_b
    with `groups_b` (default: the same names) and count pairs whose counterfactual outputs
    differ — zero means these pairs cannot tell the hypotheses apart. Base outputs without
    intervention are compared too. model_b's constraints are not enforced (the pairs were
    drawn for model_a); rows violating them are counted in `b_constraint_violations`."""
    check_comparable(model_a, model_b)
    groups_b = normalize_groups(model_b, pairs.groups if groups_b is None else groups_b)
    if len(groups_b) != len(pairs.groups):
        raise ValueError(f"groups_b has {len(groups_b)} group(s), the pair set has {len(pairs.groups)} source(s)")
    if pairs.n == 0:
        z = np.zeros(0, dtype=bool)
        return DistinguishResult(0, z, z, {k: 0 for k in model_a.outputs}, [], 0)
    env_a = interchange(model_a, pairs.base, pairs.sources, pairs.groups)
    env_b = interchange(model_b, pairs.base, pairs.sources, groups_b)
    base_a, base_b = model_a.run(pairs.base), model_b.run(pairs.base)
    differ = np.zeros(pairs.n, dtype=bool)
    base_differ = np.zeros(pairs.n, dtype=bool)
    per_output = {}
    for k in model_a.outputs:
        d = env_a[k] != env_b[k]
        per_output[k] = int(d.sum())
        differ |= d
        base_differ |= base_a[k] != base_b[k]
    ok = model_b.satisfies_constraints(pairs.base)
    for s in pairs.sources:
        ok &= model_b.satisfies_constraints(s)
    examples = []
    for i in np.flatnonzero(differ)[:k_examples]:
        row = slice(int(i), int(i) + 1)
        examples.append({
            "index": int(i),
            "base": model_a.decode(take(pairs.base, row))[0],
            "sources": [model_a.decode(take(s, row))[0] for s in pairs.sources],
            "a": model_a.decode(take(env_a, row), model_a.outputs)[0],
            "b": model_b.decode(take(env_b, row), model_b.outputs)[0],
        })
    return DistinguishResult(pairs.n, differ, base_differ, per_output, examples, int((~ok).sum()))


def distinguishes(model_a: CausalModel, model_b: CausalModel, pairs: PairSet, groups_b: Groups | None = None) -> bool:
    """True when some pair of `pairs` gives different counterfactual outputs in the two models."""
    return distinguishing_power(model_a, model_b, pairs, groups_b).distinguishes
