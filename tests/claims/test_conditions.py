"""claims/common.py: `expect` conditions compared and written back as the user wrote them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from causalspec.claims.common import compare, condition_text


@pytest.mark.parametrize("value, op, threshold, expected", [
    (0.95, ">=", 0.95, True), (0.9499, ">=", 0.95, False),
    (0.95, ">", 0.95, False), (0.951, ">", 0.95, True),
    (0.1, "<=", 0.1, True), (0.11, "<=", 0.1, False),
    (0.1, "<", 0.1, False), (0.09, "<", 0.1, True),
])
def test_compare(value, op, threshold, expected):
    assert compare(value, op, threshold) is expected


def test_compare_rejects_an_unknown_operator():
    with pytest.raises(KeyError):
        compare(1.0, "==", 1.0)


def _cond(metric="iia", op=">=", threshold=0.95, aggregation="mean", statistic="point", arg=None):
    return SimpleNamespace(metric=metric, op=op, threshold=threshold, aggregation=aggregation,
                           statistic=statistic, arg=arg)


@pytest.mark.parametrize("cond, text", [
    (_cond(), "iia >= 0.95 mean"),
    (_cond(aggregation="each", statistic="lower95"), "iia >= 0.95 each lower95"),
    (_cond(metric="aaa", aggregation="each"), "aaa >= 0.95"),  # aggregation is iia's only
    (_cond(metric="keep", arg="WX", op="<", threshold=0.1, statistic="upper95"), "keep(WX) < 0.1 upper95"),
    (_cond(threshold=1.0), "iia >= 1 mean"),
])
def test_condition_text(cond, text):
    assert condition_text(cond) == text
