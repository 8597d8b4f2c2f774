"""The statistics of the two guards that make a pass earned beyond its threshold.

Why tests and not raw comparisons: both guards ask whether a difference could be luck, and a
raw comparison answers that wrongly at both ends — it calls a one-pair difference earned and
cannot say when a difference is too thin to mean anything. Both tests here are exact
one-sided binomial tests at the 5% level (`ALPHA`), written out (`binomial_tail`) rather
than imported: scipy is not a dependency.

* **Chance agreement** (`Agreement`, the keep-rate guard's second half). A check scores only
  the pairs whose base and sources the unpatched network gets right. When the network's
  outputs have nothing to do with the model's, those pairs are the inputs where the two
  coincide, and on them a false claim can look perfect: a network that outputs `y`, checked
  against a model whose binary output is `x`, is right on half the inputs, keeps a quarter of
  the pairs, and on every kept pair (where x == y) interchanging `y`'s site gives exactly the
  counterfactual `x`. So the network's agreement with the model must be significantly above
  the agreement expected if its outputs were independent of the model's,
  `chance = Σ_v p_model(v) · p_net(v)` (both marginals from the same inputs). The trials are
  the rows of the check's pool, duplicates included: they are drawn independently from the
  input distribution (stratified under `sample balanced`), and the pairs reuse them. A pool
  with fewer rows than `agreement_rows` asks for (at least AGREEMENT_ROWS; more for a rare
  output) is topped up with rows drawn for the test alone (`Agreement.drawn`; claims.chance):
  14 of 16 right on a binary output is p = 0.0501, and a pool of 512 holds ~5 rows of an
  output true on 1%. The
  pairs' bases are not independent draws from the distribution: they are drawn from the
  pool, so they share its luck, and a test over more bases than the pool has rows claims
  more evidence than there is (a pool with 278 of 512 rows `x == y` gave 281 of 512 bases,
  and with 1024 pairs the bases would count each row twice). The distinct inputs are
  independent but too few on a small space: `x, y : bool` has 4, and no test on 4 trials
  reaches 5%, even for a network that is right everywhere. The test is `P(X >= agreed)` for
  `X ~ Binomial(rows, null)` with
  `null = chance + KAPPA_MARGIN · (1 − chance)`: agreement significantly beyond "slight"
  (Cohen's κ > 0.2), not merely above chance. Against chance itself a level-5% test passes
  one pool in twenty of a network that ignores the model, and a check's pool is fixed by its
  seed: the network computing `y` above passes it at seed 0 (278 of 512 rows, p = 0.036). With
  the margin, such a pool would need κ̂ about 0.2 above its true κ of 0.
* **Paired change** (`PairedChange`, the baseline guard). IIA and the no-intervention
  baseline are scored on the same kept pairs, so the comparison is paired: only the pairs
  where they differ carry evidence — `gained` (the patched output matches the counterfactual,
  the unpatched one did not) and `lost` (the reverse); IIA − baseline = (gained − lost) /
  kept. Under "the patch does no better than doing nothing" each such pair is gained or lost
  with probability 1/2 at most, so the exact sign test (McNemar's exact test) is
  `P(X >= gained)` for `X ~ Binomial(gained + lost, 1/2)`. It needs at least
  `MIN_DISCORDANT` (5) such pairs to reach 5% at all; below that the verdict layer
  (claims.alignment.baseline_guard) does not refuse a claim that lost none, and warns. The
  advice says how many pairs would give enough at the rates observed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

ALPHA = 0.05  # both guards: a one-sided exact test must reject at this level
KAPPA_MARGIN = 0.2  # the chance test's null: agreement at most chance + 0.2 · (1 − chance), i.e. κ <= 0.2
AGREEMENT_ROWS = 512  # the chance test's fewest rows: a smaller pool is topped up with rows drawn for the test
AGREEMENT_ROWS_CAP = 4096  # ... and its most (a rare output asks for more: `agreement_rows`)
DECIDE_KAPPA = 0.5  # the κ the test's size is chosen to decide (`agreement_rows`)
MIN_DISCORDANT = 5  # the fewest gained-or-lost pairs with which the sign test can reach ALPHA (0.5**5 < 0.05)
_MAX_NEEDED = 1_000_000  # the pairs-needed advice stops looking beyond this many changed pairs


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly (summed in log space, so large n neither
    overflows nor underflows)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)

    def log_pmf(i: int) -> float:
        return base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q

    def summed(lo: int, hi: int) -> float:  # Σ_{i=lo}^{hi} pmf(i)
        logs = [log_pmf(i) for i in range(lo, hi + 1)]
        top = max(logs)
        return math.exp(top) * math.fsum(math.exp(v - top) for v in logs)

    if k > n * p:  # the upper tail is the short side: sum it
        return min(1.0, summed(k, n))
    return min(1.0, max(0.0, 1.0 - summed(0, k - 1)))  # at or below the mean: the tail is large


@dataclass(frozen=True)
class Agreement:
    """The unpatched network against the model on the rows of a check's pool."""

    agreed: int  # rows whose unpatched network output is the model's output
    trials: int  # rows (duplicates included): the pool's, then the `drawn` ones
    chance: float  # Σ_v p_model(v) · p_net(v): the agreement of a network independent of the model
    drawn: int = 0  # rows drawn for the test beyond the pool's (claims.chance.chance_agreement)

    @property
    def rate(self) -> float:
        return self.agreed / self.trials if self.trials else float("nan")

    @property
    def kappa(self) -> float:
        """Cohen's κ = (rate − chance) / (1 − chance): the share of the inputs, beyond chance, on
        which the network agrees with the model (nan when chance is 1: nothing to go beyond)."""
        return (self.rate - self.chance) / (1 - self.chance) if self.trials and self.chance < 1 else float("nan")

    @property
    def null(self) -> float:
        """The agreement the test must beat: chance plus KAPPA_MARGIN of the way to 1."""
        return self.chance + KAPPA_MARGIN * (1 - self.chance)

    @property
    def p_value(self) -> float:
        """One-sided exact binomial test of "agreement is no better than `null`"."""
        return binomial_tail(self.agreed, self.trials, self.null) if self.trials else 1.0

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def trials_needed(self) -> int | None:
        """About how many rows (inputs in the pool) would make this agreement significant if its
        rate held; None when no number would (the rate is not above `null`) or nothing was sampled."""
        if not self.trials or self.rate <= self.null:
            return None
        return _trials_to_decide(self.rate, self.null, self.trials)

    def to_dict(self) -> dict[str, Any]:
        return {"agreed": self.agreed, "trials": self.trials, "drawn": self.drawn,
                "rate": None if not self.trials else self.rate, "chance": self.chance,
                "kappa": None if not self.trials else self.kappa, "null": self.null,
                "p_value": self.p_value, "significant": self.significant}


def agreement(model_codes: np.ndarray, net_codes: np.ndarray) -> Agreement:
    """How often the network's output code equals the model's, and the chance level of that
    from the two marginals (a network code that is no model value — an out-of-domain
    prediction, a NaN — never matches, and adds nothing to the chance level)."""
    model_codes, net_codes = np.asarray(model_codes).reshape(-1), np.asarray(net_codes).reshape(-1)
    n = len(model_codes)
    if n == 0:
        return Agreement(0, 0, 0.0)
    values, model_counts = np.unique(model_codes, return_counts=True)
    net_counts = np.array([np.count_nonzero(net_codes == v) for v in values.tolist()])
    chance = float(np.dot(model_counts, net_counts)) / (n * n)
    return Agreement(int(np.count_nonzero(model_codes == net_codes)), n, min(chance, 1.0))


def pooled_agreement(parts: Sequence[Agreement | None]) -> Agreement | None:
    """Several agreements (one per output element) as one: counts summed, the chance level the
    trial-weighted mean. A binomial tail at the mean chance bounds the tail of the sum of
    independent parts (Hoeffding 1956) wherever the agreement is above that mean. The elements
    are read on the same pool rows, so like the pooled IIA (claims.elements) this treats a row's
    elements as independent. None unless every part has one."""
    known = [p for p in parts if p is not None]
    if not parts or len(known) < len(parts):
        return None
    trials = sum(p.trials for p in known)
    chance = sum(p.chance * p.trials for p in known) / trials if trials else 0.0
    return Agreement(sum(p.agreed for p in known), trials, chance, sum(p.drawn for p in known))


def agreement_rows(model_chance: float) -> int:
    """How many rows the chance test uses (pool rows first, then rows drawn for it): at least
    AGREEMENT_ROWS, and enough that a network with the model's own output distribution whose
    agreement is at κ = DECIDE_KAPPA (well above the margin, KAPPA_MARGIN) is significant at its
    expected agreement; at most AGREEMENT_ROWS_CAP. `model_chance` = Σ_v p_model(v)², the chance
    level of such a network, from the model alone (no network output is seen before the size is
    fixed, so the test is one test on one sample of a fixed size). A binary output balanced or
    true on 9% needs the 512 (33, 117 rows); one true on 1% (chance 0.98) needs about 1070."""
    if model_chance >= 1.0:  # a constant output: nothing to estimate the size from
        return AGREEMENT_ROWS_CAP
    null = model_chance + KAPPA_MARGIN * (1 - model_chance)
    rate = model_chance + DECIDE_KAPPA * (1 - model_chance)
    n = _trials_to_decide(rate, null, AGREEMENT_ROWS)
    return AGREEMENT_ROWS_CAP if n is None else min(n, AGREEMENT_ROWS_CAP)


def model_chance(values: Any) -> float:
    """Σ_v p(v)² over model output values (any hashable values; an object array is fine)."""
    flat = [repr(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    if not flat:
        return 1.0
    _, counts = np.unique(np.array(flat), return_counts=True)
    return float(np.sum((counts / len(flat)) ** 2))


@dataclass(frozen=True)
class PairedChange:
    """Kept pairs where the patched and the unpatched network disagree on matching the
    counterfactual output (the discordant pairs of IIA against its baseline)."""

    gained: int  # patched matches the counterfactual output, unpatched did not
    lost: int  # unpatched matched it, patched does not

    @property
    def discordant(self) -> int:
        return self.gained + self.lost

    @property
    def p_value(self) -> float:
        """One-sided exact sign (McNemar) test of "the patch gains no more often than it loses"."""
        return binomial_tail(self.gained, self.discordant, 0.5)

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def pairs_needed(self, sampled: int) -> int | None:
        """About how many sampled pairs would make this difference significant if the gained and
        lost pairs kept their rates per sampled pair; None when no number would (the patch
        gains no more often than it loses) or nothing was sampled."""
        if sampled <= 0 or self.gained <= self.lost:
            return None
        # the fewest discordant pairs at this share of gained ones that reach significance
        m = _trials_to_decide(self.gained / self.discordant, 0.5, max(self.discordant, 1))
        return None if m is None else max(sampled, math.ceil(sampled * m / self.discordant))

    def to_dict(self) -> dict[str, Any]:
        return {"gained": self.gained, "lost": self.lost, "p_value": self.p_value,
                "significant": self.significant}


def _trials_to_decide(rate: float, null: float, start: int) -> int | None:
    """The fewest trials n >= start on which successes at `rate` (ceil(rate · n)) make the
    one-sided exact test against Binomial(n, null) significant at ALPHA; None beyond
    _MAX_NEEDED. The one sizing rule of the advice and of the chance test's size."""
    return _smallest(lambda n: binomial_tail(math.ceil(rate * n - 1e-9), n, null) < ALPHA, start)


def _smallest(enough: Callable[[int], bool], start: int) -> int | None:
    """The smallest n >= start with enough(n), searched by doubling then bisection (the tests'
    p-values fall as n grows at a fixed rate, up to rounding); None beyond _MAX_NEEDED."""
    if enough(start):
        return start
    lo, hi = start, start * 2
    while not enough(hi):
        lo, hi = hi, hi * 2
        if hi > _MAX_NEEDED:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi


def paired_change(expected: np.ndarray, net_base: np.ndarray, net_patched: np.ndarray,
                  kept: np.ndarray | None = None) -> PairedChange:
    """The gained and lost pairs among `kept` (all pairs when None)."""
    expected, net_base, net_patched = np.asarray(expected), np.asarray(net_base), np.asarray(net_patched)
    k = np.ones(len(expected), bool) if kept is None else np.asarray(kept, bool)
    hit, was = (net_patched == expected) & k, (net_base == expected) & k
    return PairedChange(int(np.count_nonzero(hit & ~was)), int(np.count_nonzero(was & ~hit)))


def pooled_paired(parts: Sequence[PairedChange | None]) -> PairedChange | None:
    """Several paired changes (one per output element) as one, counts summed (each pair counted
    once per element, like the pooled IIA). None unless every part has one."""
    known = [p for p in parts if p is not None]
    if not parts or len(known) < len(parts):
        return None
    return PairedChange(sum(p.gained for p in known), sum(p.lost for p in known))


def fmt_p(p: float) -> str:
    """A p-value as a report shows it: 3 significant digits, `< 1e-6` below that."""
    return "< 1e-6" if p < 1e-6 else f"{p:.3g}"


__all__ = ["AGREEMENT_ROWS", "AGREEMENT_ROWS_CAP", "ALPHA", "DECIDE_KAPPA", "MIN_DISCORDANT", "Agreement",
           "PairedChange", "agreement", "agreement_rows", "binomial_tail", "fmt_p", "model_chance",
           "paired_change", "pooled_agreement", "pooled_paired"]
