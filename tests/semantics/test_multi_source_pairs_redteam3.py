"""Red-team: the counterfactual output of a multi-source interchange when one interchanged
variable is a descendant of another (docs/language.md §4.4: the base run under
`do(A := A(source₁), B := B(source₂))` — B keeps source 2's value, it is *not* recomputed from
the new A; an interchanged input is copied from its source; variables not interchanged are
recomputed from the intervened parents). Checked against a plain-Python evaluation."""

from __future__ import annotations

import pytest

from causalspec.semantics.analyse import load_text
from causalspec.semantics.pairs import make_pairs

MODEL = """model Chain {
  domain D = int 0..3
  input x, y, z : D
  var A : D = x
  var B : int 0..6 = A + y
  var C : int 0..9 = B + z
  output O : int 0..99 = 10 * A + C
}
"""


def run(v: dict, do: dict) -> int:
    """O under `do` (plain Python, the model above)."""
    x, y, z = (do.get(n, v[n]) for n in "xyz")
    a = do.get("A", x)
    b = do.get("B", a + y)
    c = do.get("C", b + z)
    return 10 * a + c


def values(v: dict) -> dict:
    a = v["x"]
    b = a + v["y"]
    return {**v, "A": a, "B": b, "C": b + v["z"]}


@pytest.mark.parametrize("groups", [
    [["A"], ["B"]], [["B"], ["A"]], [["A", "B"]], [["A"], ["C"]], [["A", "y"], ["C"]], [["x"], ["y"], ["z"]],
    [["A"]], [["B"], ["z"]],
])
def test_multi_source_expected_output_is_the_documented_intervention(groups):
    model = load_text(MODEL, "chain.cspec").models["Chain"]
    ps = make_pairs(model, groups, 300, seed=11, pool=64)
    for i in range(ps.n):
        base = {n: int(ps.base[n][i]) for n in "xyz"}
        do = {}
        for g, group in enumerate(groups):
            src = values({n: int(ps.sources[g][n][i]) for n in "xyz"})
            do.update({var: src[var] for var in group})
        assert int(ps.expected["O"][i]) == run(base, do), (groups, base, do)
        assert bool(ps.changed[i]) == (run(base, do) != run(base, {}))
