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


# ───────────── negative effects: every score is computed on normalised values ─────────────

def _const(n=50, **means):
    """Per-prompt values with the given means and a little prompt-to-prompt noise (zero mean)."""
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, n)
    noise -= noise.mean()
    return {k: m + noise for k, m in means.items()}


def test_minimality_with_a_negative_effect_takes_the_smallest_normalised_drop():
    # the ablation raises the metric: m(N) − m(∅) = 0 − 1 = −1. Knocking out node a moves the
    # metric by 0.168 of the effect, node b by 0.024: minimality is 0.024 (the least necessary
    # node), not 0.168 — the minimum must be taken after dividing by the (negative) effect.
    v = _const(**{FULL: 0.0, ABLATED: 1.0, CIRCUIT: 0.1,
                  without_node_key("a"): 0.1 + 0.168, without_node_key("b"): 0.1 + 0.024})
    _, effect, scores = circuit_scores(v, {"g": ["a", "b"]}, [("minimality", "g")])
    assert effect.estimate == pytest.approx(-1.0)
    [s] = scores
    assert s.value.estimate == pytest.approx(0.024)
    assert s.value.lower <= 0.024 + 1e-9 and s.value.upper >= 0.024 - 1e-9


def _all_scores(v, groups):
    wanted = [("faithfulness", None), ("completeness", None)] + [(m, g) for g, nodes in groups.items()
                                                                  for m in ("necessity", "minimality") if nodes]
    _, effect, scores = circuit_scores(v, groups, wanted)
    return effect, {s.name: s.value for s in scores}


@pytest.mark.parametrize("a,b", [(-1.0, 0.0), (-3.0, 2.0), (0.5, -7.0)])
def test_every_score_is_invariant_to_an_affine_change_of_the_metric(a, b):
    """n(X) = (m(X) − m(∅)) / (m(N) − m(∅)) is unchanged by m → a·m + b (a ≠ 0, either sign),
    so every score must be: a metric read as logit_diff(B, A) instead of (A, B) flips every
    sign and must give the same faithfulness, necessity, minimality and completeness."""
    v = values()
    groups = {"g": ["a", "b"], "h": []}
    eff, base = _all_scores(v, groups)
    eff2, moved = _all_scores({k: a * x + b for k, x in v.items()}, groups)
    assert eff2.estimate == pytest.approx(a * eff.estimate)
    assert set(base) == set(moved)
    for name in base:
        assert moved[name].estimate == pytest.approx(base[name].estimate, abs=1e-9), name
        assert moved[name].lower == pytest.approx(base[name].lower, abs=1e-9), name
        assert moved[name].upper == pytest.approx(base[name].upper, abs=1e-9), name


def test_scores_with_a_negative_effect_follow_the_normalised_definitions():
    means = {FULL: -2.0, ABLATED: 2.0, CIRCUIT: -1.0,  # effect −4; n(C) = 0.75
             without_key("g"): 1.0,  # n = 0.25: necessity 0.5
             without_node_key("a"): 0.0, without_node_key("b"): -0.6,  # n = 0.5, 0.65: drops 0.25, 0.1
             full_without_key("g"): 0.2,  # n = 0.45: gap |0.25 − 0.45| = 0.2
             full_without_key(None): 1.6}  # n = 0.1: gap |0 − 0.1| = 0.1
    v = _const(**means)
    _, effect, scores = circuit_scores(v, {"g": ["a", "b"]}, [("faithfulness", None), ("necessity", "g"),
                                                               ("minimality", "g"), ("completeness", None)])
    got = {s.name: s.value.estimate for s in scores}
    assert effect.estimate == pytest.approx(-4.0)
    assert got["faithfulness"] == pytest.approx(0.75)
    assert got["necessity(g)"] == pytest.approx(0.5)
    assert got["minimality(g)"] == pytest.approx(0.1)
    assert got["completeness"] == pytest.approx(0.8)


def test_faithfulness_curve_cpr_and_cmd_with_a_negative_effect():
    from causalspec.score.circuit_scores import faithfulness_curve

    # effect m(N) − m(∅) = 1 − 5 = −4; the circuits at three fractions keep 0, 0.5 and 1 of it
    v = _const(**{FULL: 1.0, ABLATED: 5.0, "f0": 5.0, "f1": 3.0, "f2": 1.0})
    points, effect, cpr, cmd = faithfulness_curve(v, ["f0", "f1", "f2"], [0.0, 0.5, 1.0])
    assert effect.estimate == pytest.approx(-4.0)
    assert [p.estimate for p in points] == pytest.approx([0.0, 0.5, 1.0])
    assert cpr == pytest.approx(0.5) and cmd == pytest.approx(0.5)
    flipped = faithfulness_curve({k: -x for k, x in v.items()}, ["f0", "f1", "f2"], [0.0, 0.5, 1.0])
    assert flipped[2:] == pytest.approx((cpr, cmd))
