"""Circuit scores from per-prompt metric values (no network): definitions and intervals."""

from __future__ import annotations

import numpy as np
import pytest

from causalspec.score.circuit_scores import (ABLATED, CIRCUIT, FULL, bootstrap_stats, circuit_scores,
                                             full_without_key, needed_variants, without_key, without_node_key)


def values(n=200, seed=0):
    rng = np.random.default_rng(seed)
    full = 3 + rng.normal(0, 0.5, n)
    return {
        FULL: full,
        ABLATED: rng.normal(0, 0.5, n),
        CIRCUIT: 0.8 * full,
        without_key("g"): 0.3 * full,
        without_key("h"): 0.7 * full,
        without_node_key("a"): 0.5 * full,
        without_node_key("b"): 0.75 * full,
        full_without_key("g"): 0.4 * full,
        full_without_key("h"): 0.9 * full,
        full_without_key(None): 0.1 * full,
    }


def test_scores_follow_their_definitions():
    v = values()
    m = {k: float(np.mean(x)) for k, x in v.items()}
    eff = m[FULL] - m[ABLATED]
    wanted = [("faithfulness", None), ("necessity", "g"), ("minimality", "g"), ("completeness", None)]
    means, effect, scores = circuit_scores(v, {"g": ["a", "b"], "h": []}, wanted)
    got = {s.name: s.value.estimate for s in scores}
    assert effect.estimate == pytest.approx(eff)
    assert got["faithfulness"] == pytest.approx((m[CIRCUIT] - m[ABLATED]) / eff)
    assert got["necessity(g)"] == pytest.approx((m[CIRCUIT] - m[without_key("g")]) / eff)
    assert got["minimality(g)"] == pytest.approx(min(m[CIRCUIT] - m[without_node_key("a")],
                                                     m[CIRCUIT] - m[without_node_key("b")]) / eff)
    gaps = [abs(m[without_key("g")] - m[full_without_key("g")]), abs(m[without_key("h")] - m[full_without_key("h")]),
            abs(m[ABLATED] - m[full_without_key(None)])]
    assert got["completeness"] == pytest.approx(1 - max(gaps) / abs(eff))
    for s in scores:
        assert s.value.lower <= s.value.estimate <= s.value.upper
    assert means["full model"].estimate == pytest.approx(m[FULL])


def test_needed_variants():
    keys = [k for k, _ in needed_variants([("necessity", "g"), ("minimality", "g"), ("completeness", None)],
                                          {"g": ["a", "b"], "h": ["c"]})]
    assert keys == [without_key("g"), without_node_key("a"), without_node_key("b"), full_without_key("g"),
                    without_key("h"), full_without_key("h"), full_without_key(None)]


def test_bootstrap_ratio_interval_widens_as_the_denominator_vanishes():
    rng = np.random.default_rng(1)
    n = 300
    strong = {"num": rng.normal(1, 1, n), "den": rng.normal(2, 1, n)}
    weak = {"num": rng.normal(0.05, 1, n), "den": rng.normal(0.1, 1, n)}
    stats = {"ratio": lambda m: m["num"] / m["den"]}
    s, w = bootstrap_stats(strong, stats)["ratio"], bootstrap_stats(weak, stats)["ratio"]
    assert (s.upper - s.lower) < 0.5 < (w.upper - w.lower)
    assert bootstrap_stats(strong, stats, seed=3)["ratio"] == bootstrap_stats(strong, stats, seed=3)["ratio"]
