import math

import numpy as np
import pytest

from causalspec.score.stats import bootstrap_mean, wilson


def test_wilson_matches_textbook_value():
    # 8 of 10: Wilson 95% interval is (0.4902, 0.9433) (Newcombe 1998, table I method 3).
    p = wilson(8, 10)
    assert p.estimate == 0.8
    assert p.lower == pytest.approx(0.4902, abs=5e-4)
    assert p.upper == pytest.approx(0.9433, abs=5e-4)


def test_wilson_extremes_stay_in_unit_interval():
    all_right = wilson(50, 50)
    assert all_right.upper == 1.0 and 0.9 < all_right.lower < 1.0
    none_right = wilson(0, 50)
    assert none_right.lower == 0.0 and 0.0 < none_right.upper < 0.1


def test_wilson_no_trials_is_nan_not_zero():
    p = wilson(0, 0)
    assert math.isnan(p.estimate) and math.isnan(p.lower)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson(5, 3)


def test_bootstrap_interval_contains_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small = rng.normal(1.0, 1.0, 20)
    big = rng.normal(1.0, 1.0, 2000)
    m, lo, hi = bootstrap_mean(small)
    M, LO, HI = bootstrap_mean(big)
    assert lo <= m <= hi and LO <= M <= HI
    assert (HI - LO) < (hi - lo)
