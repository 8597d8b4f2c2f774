"""Draw input batches from a causal model's input distribution, optionally balanced.

Why this module exists: every check compares the model with a network on sampled inputs, and
the sample decides what a score means. Three things matter:

* the declared distribution: each input is drawn from its own `~ uniform` / `~ weighted`
  distribution (independently), and rows violating `where` constraints are rejected — so a
  sample is a draw from the product distribution *conditioned on the constraints*;
* balance: `sample balanced V` asks for an equal share of rows per reachable value of V, so
  that an always-`false` network cannot score 95% on an output that is false 95% of the time.
  Rare values (W == X is 5% for 20 objects) make naive rejection slow, so small input spaces
  (<= ENUM_LIMIT combinations) are enumerated once, grouped by V, and sampled within each
  group by the input distribution's weights; large spaces use capped rejection rounds and the
  result says which values could not get their share;
* determinism: all randomness comes from one `np.random.Generator` (a seed gives the same
  arrays on every machine); Python's `random` is never used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from causalspec.errors import CheckError
from causalspec.semantics.model import CausalModel

# Input spaces up to this many combinations may be enumerated (same limit as analysis).
ENUM_LIMIT = 250_000
# Below this acceptance rate of the `where` constraints, enumerate when the space is small.
MIN_ACCEPT_RATE = 0.01
# Rejection rounds draw between ROUND_MIN and ROUND_MAX rows at a time.
ROUND_MIN = 4_096
ROUND_MAX = 500_000
# Give up rejection sampling (plain / balanced) after this many drawn rows.
MAX_DRAWS = 10_000_000
BALANCE_MAX_DRAWS = 4_000_000
# While some value of the balanced variable is still unseen, keep drawing up to this many rows
# (values rarer than about 1 / BALANCE_MIN_DRAWS may be missed and are listed as `unseen`).
BALANCE_MIN_DRAWS = 100_000

SeedLike = Union[int, np.random.Generator, None]


class _ModelDefault:
    """Sentinel: use the model's own `sample balanced V` (None when it has none)."""

    def __repr__(self) -> str:
        return "MODEL_DEFAULT"


MODEL_DEFAULT: Any = _ModelDefault()


class SamplingError(CheckError, ValueError):
    """The inputs cannot be sampled as asked (constraints accept too few inputs)."""


@dataclass(eq=False)
class InputSample(Mapping):
    """A sampled input batch. It *is* a mapping `input name -> array` (so it can be passed to
    `CausalModel.run` directly); `.inputs` is the same data as a plain dict.

    `len()` is the number of inputs (Mapping semantics); the number of rows is `n`.
    """

    inputs: dict[str, np.ndarray]
    n: int
    balanced_on: str | None = None
    # Balanced samples: rows per value of `balanced_on` (Python values, domain order).
    counts_per_value: dict[Any, int] = field(default_factory=dict)
    # Values that got fewer rows than their equal share -> how many rows short.
    unfilled: dict[Any, int] = field(default_factory=dict)
    # Rejection path only: values of the domain never observed (possibly unreachable).
    unseen: tuple = ()
    method: str = "direct"  # "direct" | "rejection" | "enumeration"

    def __getitem__(self, name: str) -> np.ndarray:
        return self.inputs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def complete(self) -> bool:
        """True when every balanced value got its equal share."""
        return not self.unfilled


# public helpers ------------------------------------------------------------------------------

def as_rng(seed: SeedLike) -> np.random.Generator:
    """A seed (or an existing Generator, used as is) -> a numpy Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def input_probabilities(model: CausalModel, name: str) -> np.ndarray:
    """Per-code probabilities of one input (aligned with its domain's values)."""
    var = model.variables[name]
    weights = var.distribution.weights if var.distribution is not None else None
    if weights is None:
        return np.full(var.domain.size, 1.0 / var.domain.size)
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def enumerate_support(model: CausalModel) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every input row allowed by the constraints with positive probability, and its
    probability under the (constrained, renormalised) input distribution.

    Raises SamplingError when the input space is larger than ENUM_LIMIT or nothing is allowed.
    """
    size = model.input_space_size()
    if size > ENUM_LIMIT:
        raise SamplingError(f"the input space of model `{model.name}` has {size} combinations, "
                            f"too many to enumerate (limit {ENUM_LIMIT})")
    inputs = model.enumerate_inputs()
    probs = np.ones(size)
    for name in model.inputs:
        probs *= input_probabilities(model, name)[model.domain(name).codes(inputs[name])]
    keep = (probs > 0) & model.satisfies_constraints(inputs)
    if not keep.any():
        raise SamplingError(f"no input of model `{model.name}` satisfies its `where` constraints "
                            "with positive probability")
    probs = probs[keep]
    return take(inputs, keep), probs / probs.sum()


def take(inputs: Mapping[str, np.ndarray], index: Any) -> dict[str, np.ndarray]:
    """Rows `index` (int array, bool mask or slice) of every array."""
    return {k: v[index] for k, v in inputs.items()}


def concat(batches: Sequence[Mapping[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([b[k] for b in batches]) for k in names}


# sampling -----------------------------------------------------------------------------------

def sample_inputs(model: CausalModel, n: int, seed: SeedLike = 0,
                  balanced_on: str | None = MODEL_DEFAULT) -> InputSample:
    """Draw `n` input rows from the model's input distribution under its constraints.

    `seed` is an int (same seed -> identical arrays) or a Generator (advanced in place, for
    callers drawing several batches from one stream). `balanced_on` defaults to the model's
    `sample balanced V`; pass None for plain draws, or any variable name to balance on it.
    """
    if n < 0:
        raise ValueError(f"cannot sample {n} rows")
    rng = as_rng(seed)
    var = model.balanced_on if balanced_on is MODEL_DEFAULT else balanced_on
    if var is not None and var not in model.variables:
        raise ValueError(f"cannot balance on `{var}`: not a variable of model `{model.name}`")
    if n == 0:
        return InputSample(_draw(model, 0, rng), 0, var)
    if var is None:
        return _sample_plain(model, n, rng)
    if model.input_space_size() <= ENUM_LIMIT:
        return _balanced_enumerated(model, n, rng, var)
    return _balanced_rejection(model, n, rng, var)


def _draw(model: CausalModel, m: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """m rows from the unconstrained product distribution (inputs in model order)."""
    out = {}
    for name in model.inputs:
        dom = model.domain(name)
        var = model.variables[name]
        if var.distribution is None or var.distribution.weights is None:
            codes = rng.integers(0, dom.size, m)
        else:
            codes = rng.choice(dom.size, m, p=input_probabilities(model, name))
        out[name] = dom.from_codes(codes)
    return out


def _round_size(remaining: int, rate: float) -> int:
    want = math.ceil(1.2 * remaining / max(rate, 1e-9))
    return int(min(ROUND_MAX, max(ROUND_MIN, want)))


def _too_few(model: CausalModel, accepted: int, drawn: int, n: int) -> SamplingError:
    return SamplingError(
        f"the `where` constraints of model `{model.name}` accept too few inputs: {accepted} of "
        f"{drawn} sampled inputs satisfy them, so {n} rows would need more than {MAX_DRAWS} draws, "
        f"and the input space ({model.input_space_size()} combinations) is too large to enumerate "
        f"(limit {ENUM_LIMIT}); loosen the constraint or shrink the domains")


def _sample_plain(model: CausalModel, n: int, rng: np.random.Generator) -> InputSample:
    if not model.constraints:
        return InputSample(_draw(model, n, rng), n, method="direct")
    small = model.input_space_size() <= ENUM_LIMIT
    kept: list[dict[str, np.ndarray]] = []
    have = drawn = 0
    while have < n:
        m = _round_size(n - have, have / drawn if drawn else 1.0)
        batch = _draw(model, m, rng)
        ok = model.satisfies_constraints(batch)
        drawn += m
        if ok.any():
            kept.append(take(batch, ok))
            have += int(ok.sum())
        if have >= n:
            break
        rate = have / drawn
        needed = (n - have) / max(rate, 1.0 / drawn)
        if small and (rate < MIN_ACCEPT_RATE or drawn + needed > MAX_DRAWS):
            return _plain_enumerated(model, n, rng)
        if drawn + needed > MAX_DRAWS:
            raise _too_few(model, have, drawn, n)
    inputs = take(concat(kept, model.inputs), slice(0, n))
    return InputSample(inputs, n, method="rejection")


def _plain_enumerated(model: CausalModel, n: int, rng: np.random.Generator) -> InputSample:
    support, probs = enumerate_support(model)
    idx = rng.choice(len(probs), n, p=probs)
    return InputSample(take(support, idx), n, method="enumeration")


def equal_shares(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """n split into k near-equal integer shares; the n % k extra rows go to random slots."""
    shares = np.full(k, n // k, dtype=np.int64)
    if n % k:
        shares[rng.choice(k, n % k, replace=False)] += 1
    return shares


def water_fill(n: int, caps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split n as equally as possible among slots, no slot above its cap (sum(caps) >= n)."""
    alloc = np.zeros(len(caps), dtype=np.int64)
    remaining = n
    active = np.flatnonzero(caps > 0)
    while remaining > 0 and len(active):
        give = np.minimum(equal_shares(remaining, len(active), rng), caps[active] - alloc[active])
        alloc[active] += give
        remaining -= int(give.sum())
        active = active[alloc[active] < caps[active]]
    return alloc


def _balanced_enumerated(model: CausalModel, n: int, rng: np.random.Generator, var: str) -> InputSample:
    dom = model.domain(var)
    support, probs = enumerate_support(model)
    codes = dom.codes(model.run(support)[var])
    order = np.argsort(codes, kind="stable")
    values, starts = np.unique(codes[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    shares = equal_shares(n, len(values), rng)
    parts = []
    for share, lo, hi in zip(shares, starts, ends):
        members = order[lo:hi]
        p = probs[members]
        parts.append(members[rng.choice(len(members), share, p=p / p.sum())])
    idx = rng.permutation(np.concatenate(parts))
    counts = {dom.values[int(v)]: int(s) for v, s in zip(values, shares)}
    return InputSample(take(support, idx), n, var, counts, method="enumeration")


def _balanced_rejection(model: CausalModel, n: int, rng: np.random.Generator, var: str) -> InputSample:
    """Stratified rejection: keep up to n rows per value of `var`, stop once every value seen
    has its equal share and either every domain value was seen or BALANCE_MIN_DRAWS rows were
    drawn (or after BALANCE_MAX_DRAWS rows), then split n as equally as the collected rows allow."""
    dom = model.domain(var)
    buckets: list[list[dict[str, np.ndarray]]] = [[] for _ in range(dom.size)]
    counts = np.zeros(dom.size, dtype=np.int64)
    seen_total = np.zeros(dom.size, dtype=np.int64)  # accepted rows per value, kept or not
    drawn = accepted = 0
    while True:
        seen = seen_total > 0
        if not seen.any():
            m = _round_size(n, 1.0 if drawn == 0 else 1.0 / drawn)
        else:
            share = math.ceil(n / int(seen.sum()))
            missing = np.maximum(share - counts[seen], 0)
            needed = float((missing / (seen_total[seen] / drawn)).max())
            if not missing.any():  # only looking for unseen values: double the draws
                needed = drawn
            m = int(min(ROUND_MAX, max(ROUND_MIN, math.ceil(1.2 * needed))))
        m = min(m, BALANCE_MAX_DRAWS - drawn)
        batch = _draw(model, m, rng)
        ok = model.satisfies_constraints(batch) if model.constraints else np.ones(m, dtype=bool)
        batch = take(batch, ok)
        drawn += m
        accepted += int(ok.sum())
        codes = dom.codes(model.run(batch)[var]) if ok.any() else np.zeros(0, dtype=np.int64)
        for v in np.unique(codes):
            rows = np.flatnonzero(codes == v)
            seen_total[v] += len(rows)
            room = n - counts[v]
            if room > 0:
                buckets[v].append(take(batch, rows[:room]))
                counts[v] += min(room, len(rows))
        seen = seen_total > 0
        share = math.ceil(n / max(int(seen.sum()), 1))
        filled = seen.any() and bool((counts[seen] >= share).all())
        searching = not seen.all() and drawn < BALANCE_MIN_DRAWS
        if (filled and not searching) or drawn >= BALANCE_MAX_DRAWS:
            break
    if counts.sum() < n:
        raise _too_few(model, accepted, drawn, n)
    alloc = water_fill(n, counts, rng)
    seen_values = np.flatnonzero(seen)
    floor_share = n // len(seen_values)
    unfilled = {dom.values[int(v)]: int(floor_share - alloc[v]) for v in seen_values if alloc[v] < floor_share}
    parts = [take(concat(buckets[v], model.inputs), slice(0, int(alloc[v])))
             for v in seen_values if alloc[v] > 0]
    inputs = take(concat(parts, model.inputs), rng.permutation(n))
    per_value = {dom.values[int(v)]: int(alloc[v]) for v in seen_values}
    unseen = tuple(dom.values[int(v)] for v in np.flatnonzero(~seen))
    return InputSample(inputs, n, var, per_value, unfilled, unseen, method="rejection")
