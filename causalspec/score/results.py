"""Result records of a check: what every report (terminal, JSON, JUnit, pytest) shows.

Why plain dataclasses with `to_dict`: one source of truth for the numbers; each report is a
view of these records, so the terminal, the JSON file and the pytest item can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from causalspec.score.stats import Proportion

PASSED, FAILED, SKIPPED, ERROR = "passed", "failed", "skipped", "error"


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
    kind: str = "declared"  # "declared" | "subset" (for approximate abstraction accuracy)
    # learned featurizers: IIA of the trained subspace on its own training pairs (the gap to
    # `iia`, scored on held-out pairs, is the `heldout` control)
    train_iia: Proportion | None = None
    # diagnostics: IIA by the high-level values of base and source (score/diagnostics.py)
    buckets: list[dict[str, Any]] = field(default_factory=list)
    suggestion: str = ""
    # illusion check: the same pairs with the whole component patched instead of the subspace
    full_patch: dict[str, Any] | None = None
    # pairs whose clean or patched network output held a NaN / an inf ({"NaN": n, "inf": n}; empty
    # when every output was finite): any makes the check an error (checking.evaluate_conditions)
    nonfinite: dict[str, int] = field(default_factory=dict)

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


@dataclass
class ControlResult:
    """One control of a check (`random_init`, `random_subspace`, `heldout`), per interchange set.

    `values` holds the number a `control(NAME)` condition compares, per declared set: the
    control's IIA (random_init, random_subspace) or the train − held-out IIA gap (heldout).
    `value` is None when the control does not apply (detail says why).
    """

    name: str
    description: str
    labels: list[str] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    iia: list[Proportion | None] = field(default_factory=list)
    baseline: list[Proportion | None] = field(default_factory=list)
    detail: str = ""
    applicable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "applicable": self.applicable,
                "detail": self.detail,
                "sets": [{"label": lab, "value": v, "iia": None if p is None else p.to_dict(),
                          "baseline": None if b is None else b.to_dict()}
                         for lab, v, p, b in zip(self.labels, self.values, self.iia, self.baseline)]}


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
    seed: int = 0
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
    kind: str = "check"  # "check" | "circuit" (a circuit claim: `circuit` holds its numbers)
    circuit: Any = None  # score/circuit_scores.CircuitSummary for kind == "circuit"
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
            "seed": self.seed, "pairs": self.pairs, "pool": self.pool, "unique_inputs": self.unique_inputs,
            "forward_passes": dict(self.forward_passes), "seconds": round(self.seconds, 3),
            "approximate_abstraction_accuracy": self.aaa,
            "claims": [c.to_dict() for c in self.claims],
            "conditions": [c.to_dict() for c in self.conditions],
            "reproduce": self.reproduce, "notes": list(self.notes), "warnings": list(self.warnings),
            "training": self.training, "controls": [c.to_dict() for c in self.controls],
            "locate": self.locate, "kind": self.kind,
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
