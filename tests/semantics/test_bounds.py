"""Bounds before allocation (issue 10): sizes a spec asks for are counted, not built.

Memory is measured with tracemalloc (deterministic, unlike time): analysing a sweep of 10^10
cells must stay far below what building even a fraction of them would take.
"""

from __future__ import annotations

import tracemalloc

import pytest

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.semantics.checks import sweep_size
from causalspec.semantics.ir import MAX_LOCATE_CELLS
from causalspec.syntax import ast as A

NET = '''model M {
  input a, b : int 0..3
  var s : int 0..6 = a + b
  output big : bool = s > 3
}

network gpt2 = hf "gpt2" {
  prompt "{a} plus {b} is big:"
  answer " {big}"
  position END = last
}

align M to gpt2 as Sum {
  s -> resid.post[6] @ END
  big -> output
}
'''


def check(body: str) -> str:
    return NET + "check Sum {\n  interchange s\n" + body + "}\n"


def diagnostics(text: str):
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec")
    return info.value.diagnostics


@pytest.mark.parametrize("sweep,cells", [
    ("head[0..100000.0..100000].z", 100001 * 100001),
    ('module "h.{0..99999999999}.{0..3}" output', 10**11 * 4),
    ("resid.post[0..4000000000000000000]", 4 * 10**18 + 1),
])
def test_huge_sweep_is_counted_not_built(sweep, cells):
    tracemalloc.start()
    try:
        diags = diagnostics(check(f"  expect iia >= 0.5\n  locate s over {sweep}\n"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (d,) = diags
    assert d.code == "E0711" and f"{cells:,} cells" in d.message and d.help
    assert peak < 50 * 2**20, f"analysis peaked at {peak / 2**20:.0f} MiB"


def test_sweep_size_matches_expansion_for_small_sweeps():
    site = A.SweepSite(("head",), ((0, 2), (1, 3)), "z")
    assert sweep_size(site) == 9
    mod = A.SweepSite(None, None, None, "layers.{0..2}.{attn,mlp}", "output")
    assert sweep_size(mod) == 6
    assert sweep_size(A.SweepSite(("head",), ((3, 1),), "z")).startswith("range `3..1` is empty")
    assert MAX_LOCATE_CELLS == 1024


@pytest.mark.parametrize("text,fragment", [
    (check("  pairs 99999999999999999999999\n  expect iia >= 0.9\n"), "integer 99999999999999999999999 is too large"),
    (check("  expect iia >= 1e999999\n"), "overflows to infinity"),
    (check("  pairs 5 seed " + "7" * 5000 + "\n  expect iia >= 0.9\n"), "(5000 digits)"),
    ("model M {\n  input a : int 0..99999999999999999999\n  output o : bool = a > 1\n}\n", "too large"),
    ("model M {\n  input a : bool ~ weighted { true: 1e400, false: 1 }\n  output o : bool = a\n}\n",
     "overflows to infinity"),
])
def test_huge_literal_is_a_diagnostic(text, fragment):
    (d,) = diagnostics(text)
    assert d.code == "E0104" and fragment in d.message and d.help


def test_setting_beyond_memory_is_refused():
    (d,) = diagnostics(check("  pairs 20000000\n  expect iia >= 0.9\n"))
    assert d.code == "E0704" and "at most 10,000,000" in d.message


@pytest.mark.parametrize("mechanism,declared,reachable", [
    ("clip(x, 5, h)", "5..9", "0"),      # h = 0 pulls the result below the floor
    ("clip(x, l, 9)", "0..3", "9"),      # the floor l can lift it above x's range
    ("x // 2 - h", "0..9", "-9"),
    ("min(x, h) * 2", "0..9", "18"),
])
def test_domain_check_still_catches_what_the_static_range_allows(mechanism, declared, reachable):
    """The sampled domain check skips variables whose static range (interval arithmetic) fits
    their type; the ranges must therefore be sound, and these mechanisms are flagged."""
    text = (f"model M {{\n  input x, h, l : int 0..9\n  var v : int {declared} = {mechanism}\n"
            f"  output o : bool = v > 4\n}}\n")
    (d,) = diagnostics(text)
    assert d.code == "E0305" and d.span.line == 3 and reachable in d.help


def test_static_range_inside_the_type_needs_no_sampling():
    ir = load_text("model M {\n  input x, h : int 0..9\n  var v : int 0..9 = clip(x, 2, h)\n"
                   "  output o : bool = v > 4\n}\n", "t.cspec")
    assert ir.models["M"].variables["v"].mechanism.ty.lo == 0
