"""Per-position outputs: a check of `O[i] -> output @ i` scored element by element and pooled.

Why per element: a network whose output is a sequence (a torch network returning
`[batch, positions, classes]`) answers once per position, and a claim about the family `H`
says something at every one of them — `interchange H[2]` must move the output at position 2
and leave the others as the model says. The check therefore runs once per output element
(`O[k]` read at its position, on the same pairs: the pairs derive from the check's seed and
the model's inputs, not from the output), and this module pools what the runs found:

* each interchange set gets one row per element (`{H} → O[2]`, kind "element") with that
  element's counts, IIA and counterexamples, and one pooled row under the set's own label
  (kind "declared", or "subset" for `aaa`) that sums the element rows' counts: pairs are
  counted once per element (`sampled` is pairs × elements), and the 95% interval is the
  Wilson interval of those pooled trials — which treats an element's pair as independent of
  the same pair at another element, so it is narrower than a pair-level interval would be;
* the expectations and the guards (a set that changes or moves nothing) judge the pooled
  rows; a set that changes only its own element's output (`interchange H[2]`) is judged on
  all of them, so the network must also keep the other positions right;
* controls list one value per (set, element); warnings are prefixed by their element;
* a `locate` sweeps once per element and is pooled before the choice (`claims.locate.pooled_sweep`),
  so every element run confirms the same cells.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from causalspec.score.guards import pooled_agreement, pooled_paired
from causalspec.score.results import ClaimResult, ControlResult
from causalspec.score.stats import wilson

ELEMENT = "element"  # ClaimResult.kind of a per-element row


def element_irs(ir, alignment) -> list:
    """The spec IR once per output element of `alignment` (`O[i] -> output @ i`): the alignment
    reads `O[k]` at its position, and keeps every element in `train_elements` (its learned
    featurizers are trained once over all of them: `run.elements`)."""
    return [replace(ir, alignments={**ir.alignments, alignment.name: replace(
        alignment, output=element, output_position=position, output_elements=(),
        train_elements=alignment.output_elements)})
        for element, position in alignment.output_elements]


def element_label(label: str, element: str) -> str:
    """The row of interchange set `label` scored at output element `element`: `{H} → O[2]`."""
    return f"{label} → {element}"


def element_claims(element: str, claims: Sequence[ClaimResult]) -> list[ClaimResult]:
    """One element's scored sets, relabelled as its rows (counterexamples say which output)."""
    return [replace(c, label=element_label(c.label, element), kind=ELEMENT,
                    counterexamples=[{**ex, "output": element} for ex in c.counterexamples])
            for c in claims]


def pooled_claims(per_element: Sequence[tuple[str, Sequence[ClaimResult]]]) -> list[ClaimResult]:
    """Per interchange set (in the order of the first element's results): the sum of the element
    rows' counts under the set's own label and kind, followed by the element rows."""
    if not per_element:
        return []
    out: list[ClaimResult] = []
    first = per_element[0][1]
    for i, c in enumerate(first):
        parts = [claims[i] for _, claims in per_element if i < len(claims)]
        out.append(_pool(c, parts))
    for i in range(len(first)):
        for element, claims in per_element:
            if i < len(claims):
                out.extend(element_claims(element, [claims[i]]))
    return out


def _pool(like: ClaimResult, parts: Sequence[ClaimResult]) -> ClaimResult:
    dropped: dict[str, int] = {}
    nonfinite: dict[str, int] = {}
    for p in parts:
        for k, v in p.dropped.items():
            dropped[k] = dropped.get(k, 0) + v
        for k, v in p.nonfinite.items():
            nonfinite[k] = nonfinite.get(k, 0) + v
    return ClaimResult(
        like.label, like.groups, sum(p.sampled for p in parts), sum(p.kept for p in parts), dropped,
        sum(p.changed for p in parts), sum(p.moved for p in parts),
        wilson(sum(p.baseline.successes for p in parts), sum(p.baseline.trials for p in parts)),
        wilson(sum(p.iia.successes for p in parts), sum(p.iia.trials for p in parts)),
        kind=like.kind, nonfinite=nonfinite, train_iia=_pooled_train_iia(parts),
        agreement=pooled_agreement([p.agreement for p in parts]), paired=pooled_paired([p.paired for p in parts]))


def _pooled_train_iia(parts: Sequence[ClaimResult]):
    """A learned featurizer's IIA on its training pairs, pooled over the elements like the held-out
    IIA (None unless every element has one)."""
    train = [p.train_iia for p in parts]
    known = [t for t in train if t is not None]
    if not train or len(known) < len(train):
        return None
    return wilson(sum(t.successes for t in known), sum(t.trials for t in known))


def pooled_controls(per_element: Sequence[tuple[str, Sequence[ControlResult]]]) -> list[ControlResult]:
    """Each control once, with one value per (set, element) in element order within each set."""
    names: list[str] = []
    for _, controls in per_element:
        names += [c.name for c in controls if c.name not in names]
    out = []
    for name in names:
        found = [(el, c) for el, controls in per_element for c in controls if c.name == name]
        like = found[0][1]
        merged = ControlResult(name, like.description, n_draws=like.n_draws,
                               applicable=all(c.applicable for _, c in found),
                               seeds=list(like.seeds))
        merged.detail = next((c.detail for _, c in found if not c.applicable), like.detail)
        sets = len(like.labels)
        for i in range(sets):
            for el, c in found:
                if i >= len(c.labels):
                    continue
                merged.labels.append(element_label(c.labels[i], el))
                merged.values.append(c.values[i] if i < len(c.values) else None)
                merged.iia.append(c.iia[i] if i < len(c.iia) else None)
                merged.baseline.append(c.baseline[i] if i < len(c.baseline) else None)
                if c.n_draws:
                    merged.draws.append(list(c.draws[i]) if i < len(c.draws) else [])
        out.append(merged)
    return out


def close_training(training: dict) -> None:
    """Close the training engines the element runs shared (`AlignmentRun.fit`'s `shared`): the
    network's, and each `random_init` draw's (kept under `random_init:<seed>`), whose activation
    stores hold temporary folders in disk mode."""
    engines = [training.get("engine")] + [d.get("engine") for k, d in training.items()
                                          if isinstance(k, str) and k.startswith("random_init:")]
    for engine in engines:
        if engine is not None:
            engine.close()


def summed(counts: Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in counts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def elements_note(elements: Sequence[tuple[str, Any]]) -> str:
    where = ", ".join(f"{e} at position {getattr(p, 'label', p)}" for e, p in elements)
    return (f"per-position output: every interchange set is scored at each of {len(elements)} output elements "
            f"({where}) on the same pairs; a set's row pools its element rows (`→ O[k]`), counting each pair "
            "once per element, and the expectations judge the pooled rows")


__all__ = ["ELEMENT", "close_training", "element_claims", "element_irs", "element_label", "elements_note",
           "pooled_claims", "pooled_controls", "summed"]
