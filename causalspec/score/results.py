"""Result records of a check: what every report (terminal, JSON, JUnit, pytest) shows.

Why plain dataclasses with `to_dict`: one source of truth for the numbers; each report is a
view of these records, so the terminal, the JSON file and the pytest item can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from causalspec.score.guards import ALPHA, Agreement, PairedChange
from causalspec.score.stats import Proportion

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"


# ClaimResult kinds whose stress details (illusion check, buckets, suggestions, controls) the reports
# show: a declared set, or one output element's row of it (`O[i] -> output @ i`, claims/elements.py)
DETAILED_KINDS = ("declared", "element")


@dataclass
class ClaimResult:
    """One interchange set of a check, e.g. `{WX}` or `{WX | YZ}`, scored on its pairs."""

    label: str
    groups: list[list[str]]
    sampled: int
    kept: int
    dropped: dict[str, int]  # reason -> pairs
    changed: int  # kept pairs whose expected output differs from the base's own output
    moved: int  # kept pairs whose network output the patch changed
    baseline: Proportion  # unpatched network output == counterfactual label, over kept pairs
    iia: Proportion
    counterexamples: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "declared"  # "declared" | "subset" (approximate abstraction accuracy) | "element" (one output element)
    # learned featurizers: IIA of the trained subspace on its own training pairs (the gap to
    # `iia`, scored on held-out pairs, is the `heldout` control)
    train_iia: Proportion | None = None
    # diagnostics: IIA by the high-level values of base and source (score/buckets.py)
    buckets: list[dict[str, Any]] = field(default_factory=list)
    suggestion: str = ""
    # illusion check: the same pairs with the whole component patched instead of the subspace
    full_patch: dict[str, Any] | None = None
    # pairs whose clean or patched network output held a NaN / an inf ({"NaN": n, "inf": n}; empty
    # when every output was finite): any makes the check an error (claims.alignment.evaluate_conditions)
    nonfinite: dict[str, int] = field(default_factory=dict)
    # the guards' statistics (score/guards.py; judged in claims.alignment.evaluate_conditions): the
    # unpatched network's agreement with the model on the sampled bases against chance, and the kept
    # pairs IIA gained / lost against the no-intervention baseline. None when the claim was built
    # without per-pair outputs (the guards then fall back to the raw comparisons)
    agreement: Agreement | None = None
    paired: PairedChange | None = None

    @property
    def keep_rate(self) -> float:
        return self.kept / self.sampled if self.sampled else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "groups": self.groups, "kind": self.kind,
            "pairs": {"sampled": self.sampled, "kept": self.kept, "dropped": dict(self.dropped),
                      "keep_rate": None if not self.sampled else self.keep_rate,
                      "changed": self.changed, "moved": self.moved, "nonfinite": dict(self.nonfinite)},
            "baseline": self.baseline.to_dict(),
            "iia": self.iia.to_dict(),
            "counterexamples": self.counterexamples,
            "train_iia": None if self.train_iia is None else self.train_iia.to_dict(),
            "buckets": self.buckets, "suggestion": self.suggestion, "full_patch": self.full_patch,
            "guards": {"alpha": ALPHA,
                       # the chance test applies only where the keep filter dropped a pair (claims.alignment)
                       "agreement": None if self.agreement is None else {**self.agreement.to_dict(),
                                                                         "applies": self.kept < self.sampled},
                       "paired": None if self.paired is None else self.paired.to_dict()},
        }


@dataclass
class ConditionResult:
    text: str  # the condition as written, e.g. "iia >= 0.95 each lower95"
    metric: str
    statistic: str  # "point" | "lower95"
    aggregation: str  # "each" | "mean"
    op: str
    threshold: float
    value: float | None  # the number compared (min over claims for `each`)
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# The statistic of a control's draws that `control(NAME) <= x` compares, and the quantile the
# report shows beside it (docs/language.md, "Controls"). The mean: one lucky draw of a random
# subspace moves it by 1/n instead of deciding the verdict, and it still estimates what a
# typical random draw scores, which is what the control asks about.
CONTROL_STATISTIC = "mean"
CONTROL_QUANTILE = 90


def draw_summary(draws: list[float | None]) -> dict[str, Any]:
    """n, mean, the CONTROL_QUANTILE-th percentile (linear interpolation), min and max of a
    control's draws (None draws — no scored pair — are left out; all None: every number None)."""
    import numpy as np

    vals = [float(v) for v in draws if v is not None]
    if not vals:
        return {"n": 0, "mean": None, f"p{CONTROL_QUANTILE}": None, "min": None, "max": None}
    return {"n": len(vals), "mean": float(np.mean(vals)),
            f"p{CONTROL_QUANTILE}": float(np.percentile(vals, CONTROL_QUANTILE)),
            "min": float(min(vals)), "max": float(max(vals))}


@dataclass
class ControlResult:
    """One control of a check (`random_init`, `random_subspace`, `heldout`), per interchange set.

    `values` holds the number a `control(NAME)` condition compares, per declared set: for a
    control of random draws (random_init, random_subspace) the CONTROL_STATISTIC of its
    draws' IIA (`draws[i]` lists them, in draw order); for heldout the train − held-out IIA
    gap. `iia`/`baseline` pool every draw's pairs. A value is None when the control does
    not apply (detail says why).
    """

    name: str
    description: str
    labels: list[str] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    iia: list[Proportion | None] = field(default_factory=list)
    baseline: list[Proportion | None] = field(default_factory=list)
    detail: str = ""
    applicable: bool = True
    draws: list[list[float | None]] = field(default_factory=list)  # per set: each draw's IIA (random controls)
    n_draws: int = 0  # draws per set (0: the control draws nothing at random)
    seeds: list[int] = field(default_factory=list)  # the child seed of each draw (compile.seeds.derive_seed)

    def summary(self, i: int) -> dict[str, Any] | None:
        return draw_summary(self.draws[i]) if i < len(self.draws) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "applicable": self.applicable,
               "detail": self.detail, "n_draws": self.n_draws,
               "statistic": CONTROL_STATISTIC if self.n_draws else "value", "seeds": list(self.seeds),
               "sets": []}
        for i, (lab, v, p, b) in enumerate(zip(self.labels, self.values, self.iia, self.baseline)):
            entry: dict[str, Any] = {"label": lab, "value": v, "iia": None if p is None else p.to_dict(),
                     "baseline": None if b is None else b.to_dict()}
            if self.n_draws:
                entry["draws"] = list(self.draws[i]) if i < len(self.draws) else []
                entry["distribution"] = self.summary(i)
            out["sets"].append(entry)
        return out


@dataclass
class CheckResult:
    name: str
    alignment: str
    model: str
    network: str
    status: str  # passed | failed | skipped | error
    reason: str = ""  # why skipped / failed / error, one line
    claims: list[ClaimResult] = field(default_factory=list)
    conditions: list[ConditionResult] = field(default_factory=list)
    aaa: float | None = None  # approximate abstraction accuracy (mean IIA over variable subsets)
    seed: int = 0  # the effective seed (compile.seeds): every random choice of the check derives from it
    seed_source: str = "spec"  # where it came from: "--seed" (or the pytest flag) | "spec" | "default"
    pairs: int = 0
    pool: int = 0
    unique_inputs: int = 0
    forward_passes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    file: str = ""
    line: int = 0
    reproduce: str = ""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)  # learned featurizers: curve, artifact
    controls: list[ControlResult] = field(default_factory=list)
    locate: dict[str, Any] | None = None  # a `locate` sweep: cells, IIA, the chosen site
    # SAE featurizers (claims.sae_honesty): fidelity at the site, IIA with the error term kept vs
    # from the source; None when no variable is aligned through an SAE
    sae: dict[str, Any] | None = None
    kind: str = "check"  # "check" | "circuit" (a circuit claim: `circuit` holds its numbers)
    circuit: Any = None  # score/circuit_scores.CircuitSummary for kind == "circuit"
    # a real output's tolerance (`within T`): a prediction within T of the model's value counts as
    # right; None for a discrete output (compared for equality)
    tolerance: float | None = None
    # the option (`--strict`, `--causalspec-strict`) that turned this skip into an error; "" otherwise.
    # Not a JSON key: the reason says it too.
    strict_skip: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "alignment": self.alignment, "model": self.model, "network": self.network,
            "status": self.status, "reason": self.reason, "file": self.file, "line": self.line,
            "seed": self.seed, "seed_source": self.seed_source, "pairs": self.pairs, "pool": self.pool,
            "unique_inputs": self.unique_inputs,
            "forward_passes": dict(self.forward_passes), "seconds": round(self.seconds, 3),
            "approximate_abstraction_accuracy": self.aaa,
            "claims": [c.to_dict() for c in self.claims],
            "conditions": [c.to_dict() for c in self.conditions],
            "reproduce": self.reproduce, "notes": list(self.notes), "warnings": list(self.warnings),
            "training": self.training, "controls": [c.to_dict() for c in self.controls],
            "locate": self.locate, "sae": self.sae, "kind": self.kind, "tolerance": self.tolerance,
            "circuit": None if self.circuit is None else self.circuit.to_dict(),
        }


def summary_line(results: list[CheckResult]) -> str:
    """The closing line CI reads: `N passed, N failed` (`, N skipped` when any).

    A check that errored (e.g. user hook raised) counts as failed: it did not hold. Skips that
    `--strict` failed are counted as failed and named: `1 failed (1 skip failed by --strict)`.
    """
    passed = sum(r.status == PASSED for r in results)
    failed = sum(r.status in (FAILED, ERROR) for r in results)
    skipped = sum(r.status == SKIPPED for r in results)
    line = f"{passed} passed, {failed} failed"
    strict = [r.strict_skip for r in results if r.strict_skip]
    if strict:
        line += f" ({len(strict)} skip{'s' if len(strict) > 1 else ''} failed by {', '.join(dict.fromkeys(strict))})"
    if skipped:
        line += f", {skipped} skipped"
    return line
