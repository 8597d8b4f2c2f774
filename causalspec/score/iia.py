"""Score one interchange set from predictions already computed (never reruns the network).

Why the filter: a pair can only test the hypothesis when the network gets the base and
every source right without intervention; otherwise a "failure" may just be the network's
own error. The kept fraction is reported, and so is the no-intervention baseline (how often
the unpatched base output already equals the counterfactual label) — an IIA is only
impressive well above it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from causalspec.score.guards import paired_change
from causalspec.score.results import ClaimResult
from causalspec.score.stats import wilson

MAX_COUNTEREXAMPLES = 3

# Output codes of an example whose output held a NaN (or else an inf): the run layer's
# NAN_OUTPUT / INF_OUTPUT (`run.patching`), never equal to a label.
NONFINITE_KINDS = {-2: "NaN", -3: "inf"}


def nonfinite_counts(net_base: np.ndarray, net_sources: np.ndarray, net_patched: np.ndarray) -> dict[str, int]:
    """Pairs whose clean (base or any source) or patched output was not finite, by kind: a pair
    with a NaN anywhere counts under "NaN", else one with an inf under "inf". Empty when none."""
    n = len(net_base)
    if n == 0:
        return {}
    outputs = np.vstack([np.asarray(net_base)[None], np.asarray(net_sources).reshape(-1, n),
                         np.asarray(net_patched)[None]])  # [outputs per pair, pairs]
    (nan_code, _), (inf_code, _) = NONFINITE_KINDS.items()
    nan = (outputs == nan_code).any(axis=0)
    inf = (outputs == inf_code).any(axis=0) & ~nan
    return {kind: int(hit.sum()) for kind, hit in (("NaN", nan), ("inf", inf)) if hit.any()}


def score_claim(label: str, groups: list[list[str]], *, expected: np.ndarray, base_label: np.ndarray,
                source_labels: np.ndarray, net_base: np.ndarray, net_sources: np.ndarray,
                net_patched: np.ndarray, kind: str = "declared",
                describe: Callable[[int, int], dict] | None = None) -> ClaimResult:
    """All arrays hold output codes. `source_labels`/`net_sources` are [groups, pairs].

    `describe(i, predicted)` returns a counterexample record for pair i (inputs, expected, …).
    """
    n = len(expected)
    base_ok = net_base == base_label
    sources_ok = np.all(net_sources == source_labels, axis=0) if len(source_labels) else np.ones(n, bool)
    kept = base_ok & sources_ok
    dropped = {}
    wrong_base = int((~base_ok).sum())
    wrong_source = int((base_ok & ~sources_ok).sum())
    if wrong_base:
        dropped["network wrong on the base input"] = wrong_base
    if wrong_source:
        dropped["network wrong on a source input"] = wrong_source
    k = kept
    changed = int((expected[k] != base_label[k]).sum())
    moved = int((net_patched[k] != net_base[k]).sum())
    baseline = wilson(int((net_base[k] == expected[k]).sum()), int(k.sum()))
    iia = wilson(int((net_patched[k] == expected[k]).sum()), int(k.sum()))
    counterexamples = []
    if describe is not None:
        wrong = np.flatnonzero(k & (net_patched != expected))
        # Prefer pairs where the intervention should have changed the output: most telling.
        order = sorted(wrong, key=lambda i: (expected[i] == base_label[i], i))
        counterexamples = [describe(int(i), int(net_patched[i])) for i in order[:MAX_COUNTEREXAMPLES]]
    return ClaimResult(label, groups, n, int(k.sum()), dropped, changed, moved, baseline, iia,
                       counterexamples, kind, nonfinite=nonfinite_counts(net_base, net_sources, net_patched),
                       paired=paired_change(expected, net_base, net_patched, k))
