"""score/iia.py `score_claim` on hand-made predictions: which pairs are kept (the network right
on base and sources), which dropped and why, and the changed / moved / baseline / IIA / non-finite
counts over the kept pairs only."""

from __future__ import annotations

import numpy as np
import pytest

from causalspec.score.iia import score_claim

A = np.array
NAN, INF = -2, -3  # the output codes of non-finite outputs (NONFINITE_KINDS)

# expected, base_label, source_labels, net_base, net_sources, net_patched ->
#   kept, dropped, changed, moved, baseline successes, iia successes, nonfinite
CASES = [
    pytest.param(A([1, 0, 1, 1]), A([0, 0, 1, 0]), A([[1, 0, 1, 1]]), A([0, 0, 1, 0]), A([[1, 0, 1, 1]]),
                 A([1, 0, 1, 1]), 4, {}, 2, 2, 2, 4, {}, id="all-kept-perfect"),
    pytest.param(A([1, 0, 1, 1]), A([0, 0, 1, 0]), A([[1, 0, 1, 1]]), A([0, 1, 1, 0]), A([[1, 0, 1, 1]]),
                 A([0, 1, 1, 0]), 3, {"network wrong on the base input": 1}, 2, 0, 1, 1, {}, id="wrong-base"),
    pytest.param(A([1, 0, 1, 1]), A([0, 0, 1, 0]), A([[1, 0, 1, 1]]), A([0, 0, 1, 0]), A([[1, 0, 0, 0]]),
                 A([1, 1, 1, 0]), 2, {"network wrong on a source input": 2}, 1, 2, 1, 1, {}, id="wrong-source"),
    pytest.param(A([1, 0]), A([0, 0]), A([[1, 0]]), A([0, NAN]), A([[1, INF]]),
                 A([INF, 0]), 1, {"network wrong on the base input": 1}, 1, 1, 0, 0, {"NaN": 1, "inf": 1},
                 id="nonfinite"),
]


@pytest.mark.parametrize("expected, base_label, source_labels, net_base, net_sources, net_patched, kept, "
                         "dropped, changed, moved, base_hits, iia_hits, nonfinite", CASES)
def test_score_claim_counts(expected, base_label, source_labels, net_base, net_sources, net_patched, kept,
                            dropped, changed, moved, base_hits, iia_hits, nonfinite):
    r = score_claim("{X}", [["X"]], expected=expected, base_label=base_label, source_labels=source_labels,
                    net_base=net_base, net_sources=net_sources, net_patched=net_patched)
    assert (r.sampled, r.kept, r.dropped, r.changed, r.moved) == (len(expected), kept, dropped, changed, moved)
    assert (r.baseline.successes, r.baseline.trials) == (base_hits, kept)
    assert (r.iia.successes, r.iia.trials) == (iia_hits, kept)
    assert r.nonfinite == nonfinite


def test_counterexamples_prefer_pairs_the_patch_should_have_changed():
    seen = []
    score_claim("{X}", [["X"]], expected=A([0, 1, 0]), base_label=A([0, 0, 0]), source_labels=A([[0, 0, 0]]),
                net_base=A([0, 0, 0]), net_sources=A([[0, 0, 0]]), net_patched=A([1, 0, 1]),
                describe=lambda i, predicted: seen.append((i, predicted)) or {})
    assert seen == [(1, 0), (0, 1), (2, 1)]
