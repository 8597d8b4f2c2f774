"""Scores of a circuit claim from per-prompt metric values, with bootstrap 95% intervals.

Definitions (m = the mean over prompts of the circuit's metric; N = the full model,
C = the circuit with the rest of its universe ablated, ∅ = the whole universe ablated,
C∖K = the circuit without the nodes of K, N∖K = the full model with only K ablated).
Every score is computed on *normalised* values

    n(X) = (m(X) − m(∅)) / (m(N) − m(∅))        so n(N) = 1 and n(∅) = 0,

whatever the sign of m(N) − m(∅) (a metric the full model pushes down, or an ablation
that raises it, gives a negative effect; n still reads "fraction of the full model's
effect"):

    faithfulness   = n(C)
    necessity(g)   = n(C) − n(C∖g)                           knocking g out of the circuit
    minimality(g)  = min over nodes v of g of n(C) − n(C∖v)
    completeness   = 1 − max over K in {each group, the whole circuit} of |n(C∖K) − n(N∖K)|
                                                             (C∖C is ∅: the complement alone)

Why normalise first: a minimum (or maximum) over raw differences m(C) − m(C∖v) picks the
wrong node when m(N) − m(∅) < 0 — dividing by a negative effect reverses the order, so
"min, then divide" returns the *largest* normalised drop. Normalising every value first
makes each score one formula for either sign.

All are relative to the effect of ablating everything, so 1 is "as much as the whole
model" and higher is better (completeness ≤ 1; the others may leave [0, 1] when ablations
overshoot). Intervals: percentile bootstrap over prompts — the same resampled prompt set
is used for every mean in one replicate, so a ratio's interval accounts for the
correlation of its numerator and denominator. When the interval of m(N) − m(∅) contains
0, every score is a ratio over noise; the claim then fails (effect-size guard).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

N_BOOT = 2000


@dataclass(frozen=True)
class Estimate:
    estimate: float
    lower: float
    upper: float

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": _num(self.estimate), "lower95": _num(self.lower), "upper95": _num(self.upper)}

    @property
    def excludes_zero(self) -> bool:
        return bool(self.lower > 0 or self.upper < 0)


def _num(v: float) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


Stat = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def bootstrap_stats(values: Mapping[str, np.ndarray], stats: Mapping[str, Stat], n_boot: int = N_BOOT,
                    seed: int = 0, level: float = 0.95) -> dict[str, Estimate]:
    """Point estimate and percentile interval of each statistic of the per-key means.

    `values[key]` are per-prompt numbers (all of one length); a statistic receives a mapping
    from key to means — scalars for the estimate, arrays of `n_boot` replicate means for the
    interval — and must be written with numpy operations that broadcast over both.
    """
    keys = list(values)
    n = len(values[keys[0]])
    means = {k: np.asarray(np.mean(values[k])) for k in keys}
    if n < 2:
        # one prompt: every resample is that prompt, so the percentile interval would be [x, x] — a
        # "95% interval" of width 0 that let `lower95` claims and the effect-size guard pass on a
        # single observation. The interval is undefined (NaN): such claims cannot be judged.
        with np.errstate(divide="ignore", invalid="ignore"):
            return {name: Estimate(float(f(means)), float("nan"), float("nan")) for name, f in stats.items()}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boot = {k: np.asarray(values[k], dtype=float)[idx].mean(axis=1) for k in keys}
    alpha = (1 - level) / 2
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, f in stats.items():
            point = float(f(means))
            reps = np.asarray(f(boot), dtype=float)
            finite = reps[~np.isnan(reps)]
            if finite.size == 0:
                out[name] = Estimate(point, float("nan"), float("nan"))
                continue
            out[name] = Estimate(point, float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha)))
    return out


# ───────────────────────── result records ─────────────────────────

@dataclass
class ScoreResult:
    name: str  # "faithfulness", "necessity(movers)"
    metric: str  # faithfulness | necessity | minimality | completeness
    arg: str | None
    value: Estimate
    definition: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "group": self.arg, **self.value.to_dict(),
                "definition": self.definition}


@dataclass
class CircuitSummary:
    """What a circuit claim reports besides its conditions (CheckResult.circuit)."""

    output: str  # MODEL.OUTPUT
    metric: str  # e.g. "logit_diff(IO, S) @ END"
    ablation: str  # the exact ablation, in words
    granularity: str  # node | edge
    universe: str  # what is ablated and what is kept
    prompts: int
    groups: list[dict[str, Any]] = field(default_factory=list)  # name, nodes, positions
    edges: list[str] = field(default_factory=list)
    means: dict[str, Estimate] = field(default_factory=dict)  # full model, circuit, everything ablated
    effect: Estimate | None = None  # m(N) − m(∅)
    scores: list[ScoreResult] = field(default_factory=list)
    clean_accuracy: float | None = None
    reference_prompts: int = 0
    convention: dict[str, Any] = field(default_factory=dict)  # semantics.ir.ConventionIR.to_dict()
    # why C is N by construction (every node of the universe at every position, node granularity), or ""
    vacuous: str = ""
    metric_scale: float = 0.0  # the largest |logit| a logit metric read (its rounding scale); 0 otherwise
    # the full model's answers on the prompts: {"successes", "trials", "chance", "judged"} (claims.circuit.task_guard)
    task: dict[str, Any] = field(default_factory=dict)

    def score(self, metric: str, arg: str | None = None) -> ScoreResult | None:
        for s in self.scores:
            if s.metric == metric and s.arg == arg:
                return s
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output, "metric": self.metric, "ablation": self.ablation,
            "granularity": self.granularity, "universe": self.universe, "prompts": self.prompts,
            "reference_prompts": self.reference_prompts, "groups": self.groups, "edges": self.edges,
            "means": {k: v.to_dict() for k, v in self.means.items()},
            "effect": None if self.effect is None else self.effect.to_dict(),
            "scores": [s.to_dict() for s in self.scores],
            "clean_accuracy": _num(self.clean_accuracy) if self.clean_accuracy is not None else None,
            "convention": self.convention, "vacuous": self.vacuous or None, "task": self.task or None,
        }


# ───────────────────────── the scores ─────────────────────────

FULL, CIRCUIT, ABLATED = "clean", "circuit", "ablated"


def without_key(group: str) -> str:
    return f"without:{group}"


def without_node_key(node: str) -> str:
    return f"without-node:{node}"


def full_without_key(group: str | None) -> str:
    return "full-without:*" if group is None else f"full-without:{group}"


DEFINITIONS = {  # as reported; each ratio is computed per node/group before any min or max
    "faithfulness": "(m(C) − m(∅)) / (m(N) − m(∅))",
    "necessity": "(m(C) − m(C∖g)) / (m(N) − m(∅))",
    "minimality": "min over nodes v of g of (m(C) − m(C∖v)) / (m(N) − m(∅))",
    "completeness": "1 − max over K in groups ∪ {C} of |m(C∖K) − m(N∖K)| / |m(N) − m(∅)|",
}


def normalised(m: Mapping[str, Any], key: str) -> Any:
    """n(X) = (m(X) − m(∅)) / (m(N) − m(∅)): the fraction of the full model's effect that
    variant X keeps (1 for N, 0 for ∅), for either sign of the effect. `m` maps variant keys
    to means — scalars, or arrays of bootstrap replicates (numpy broadcasts over both)."""
    return (m[key] - m[ABLATED]) / (m[FULL] - m[ABLATED])


def circuit_scores(values: Mapping[str, np.ndarray], groups: Mapping[str, list[str]],
                   wanted: list[tuple[str, str | None]],
                   seed: int = 0) -> tuple[dict[str, Estimate], Estimate, list[ScoreResult]]:
    """Means of N, C, ∅; the effect m(N) − m(∅); and each wanted (metric, group) score.

    `values` maps variant keys (FULL, CIRCUIT, ABLATED, `without_key(g)`,
    `without_node_key(v)`, `full_without_key(g)`) to per-prompt metric values; `groups`
    maps a group to its node names (for minimality).
    """
    def effect(m):
        return m[FULL] - m[ABLATED]

    def n(m, key):
        return normalised(m, key)

    stats: dict[str, Stat] = {
        "full model": lambda m: m[FULL],
        "circuit": lambda m: m[CIRCUIT],
        "everything ablated": lambda m: m[ABLATED],
        "effect": effect,
    }
    names = {}
    for metric, arg in wanted:
        name = metric if arg is None else f"{metric}({arg})"
        if name in names:
            continue
        names[name] = (metric, arg)
        if metric == "faithfulness":
            stats[name] = lambda m: n(m, CIRCUIT)
        elif metric == "necessity":
            def necessity(m, g=arg):
                return n(m, CIRCUIT) - n(m, without_key(g))
            stats[name] = necessity
        elif metric == "minimality":
            assert arg is not None  # minimality(GROUP) always names its group (semantics/circuits.py)

            def minimality(m, nodes=groups[arg]):
                return np.min(np.stack([np.asarray(n(m, CIRCUIT) - n(m, without_node_key(v))) for v in nodes]), axis=0)
            stats[name] = minimality
        elif metric == "completeness":
            def completeness(m, gs=tuple(groups)):
                gaps = [np.abs(n(m, without_key(g)) - n(m, full_without_key(g))) for g in gs]
                gaps.append(np.abs(n(m, ABLATED) - n(m, full_without_key(None))))
                return 1 - np.max(np.stack([np.asarray(x) for x in gaps]), axis=0)
            stats[name] = completeness
        else:
            raise ValueError(f"unknown circuit score {metric!r}")
    est = bootstrap_stats(values, stats, seed=seed)
    means = {k: est[k] for k in ("full model", "circuit", "everything ablated")}
    scores = [ScoreResult(name, metric, arg, est[name], DEFINITIONS[metric]) for name, (metric, arg) in names.items()]
    return means, est["effect"], scores


def area(xs: Iterable[float], ys: Iterable[float]) -> float:
    """MIB's area: the sum of trapezoids (x2 − x1) · (y1 + y2) / 2 over consecutive points, with
    x the requested fractions themselves and no normalisation by the x range (MIB's default
    fractions span 0.001..1, a range of 0.999, which MIB does not divide by)."""
    x, y = list(xs), list(ys)
    return float(sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(len(x) - 1)))


def faithfulness_curve(values: Mapping[str, np.ndarray], keys: list[str], xs: list[float],
                       seed: int = 0) -> tuple[list[Estimate], Estimate, float, float]:
    """The faithfulness n(K) of each circuit key in `keys` (at edge fractions `xs`), the
    effect m(N) − m(∅), and the areas CPR (under n) and CMD (under |1 − n|), trapezoids
    over `xs` as MIB sums them (no division by the range; `area`). `values` holds FULL, ABLATED and `keys`."""
    stats: dict[str, Stat] = {k: functools.partial(normalised, key=k) for k in keys}
    stats["effect"] = lambda m: m[FULL] - m[ABLATED]
    est = bootstrap_stats(values, stats, seed=seed)
    ys = [est[k].estimate for k in keys]
    return [est[k] for k in keys], est["effect"], area(xs, ys), area(xs, [abs(1 - y) for y in ys])


def needed_variants(wanted: list[tuple[str, str | None]], groups: Mapping[str, list[str]]) -> list[tuple[str, Any]]:
    """The variant keys the wanted scores read, beyond N, C and ∅: ("without", g),
    ("without-node", (g, v)), ("full-without", g | None)."""
    out: dict[str, tuple[str, Any]] = {}
    for metric, arg in wanted:
        if metric in ("necessity", "minimality") and arg is None:  # semantics.circuits requires the group
            raise ValueError(f"`{metric}` is asked without the group it scores")
        if metric == "necessity" and arg is not None:
            out[without_key(arg)] = ("without", arg)
        elif metric == "minimality" and arg is not None:
            for v in groups[arg]:
                out[without_node_key(v)] = ("without-node", (arg, v))
        elif metric == "completeness":
            for g in groups:
                out[without_key(g)] = ("without", g)
                out[full_without_key(g)] = ("full-without", g)
            out[full_without_key(None)] = ("full-without", None)
    return list(out.items())


__all__ = ["ABLATED", "CIRCUIT", "DEFINITIONS", "FULL", "CircuitSummary", "Estimate", "ScoreResult", "bootstrap_stats",
           "circuit_scores", "faithfulness_curve", "full_without_key", "needed_variants", "normalised", "without_key",
           "without_node_key"]
