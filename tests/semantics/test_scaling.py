"""Parsing and analysis are linear in the spec's size — checked by counting work, not time.

Why line events: wall-clock asserts are flaky on shared machines, but the number of lines of
causalspec code executed is deterministic. Quadrupling the model must roughly quadruple it;
the quadratic map rebuild that `analyse_model` once did per variable (8,000 variables took
8 s) made the count grow ~10x. The 10,000-variable run below proves the size the benchmark
(benchmarks/parse_analyse.py) times actually analyses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import causalspec
from causalspec.semantics.analyse import analyse
from causalspec.syntax.parser import parse
from causalspec.testing.large import large_model

PACKAGE = str(Path(causalspec.__file__).resolve().parent)


def _lines_executed(text: str) -> int:
    """Lines of causalspec's own code run while parsing and analysing `text`."""
    count = 0

    def local(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None

    parse(text, "warm.cspec")  # the grammar is built once per process; not part of the count
    sys.settrace(tracer)
    try:
        analyse(parse(text, "big.cspec"))
    finally:
        sys.settrace(None)
    return count


def test_parse_and_analyse_work_grows_linearly():
    small = _lines_executed(large_model(250))
    big = _lines_executed(large_model(1000))
    ratio = big / small
    # 4x the variables: linear work gives ~4x (fixed costs push it slightly under); the old
    # per-variable map rebuild gave ~10x at these sizes.
    assert ratio < 5.0, f"4x the variables ran {ratio:.1f}x the lines of causalspec code"


@pytest.mark.slow
def test_ten_thousand_variables_analyse():
    ir = analyse(parse(large_model(10_000), "big.cspec"))
    assert len(ir.models["Big"].variables) == 10_000
