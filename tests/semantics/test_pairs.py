"""Counterfactual pair sets: reproducibility, pools, changed counts, distinguishing power."""

from __future__ import annotations

import numpy as np
import pytest

from causalspec.testing.specs import HIER_EQ_MODEL, only_model as model
from causalspec.semantics.pairs import PairSet, distinguishes, distinguishing_power, make_pairs
from causalspec.semantics.sampling import take

HIER = HIER_EQ_MODEL

# Same behaviour without intervention, but O does not read WX.
BYPASS = """
model Bypass {
  domain Obj = int 0..19
  input  W, X, Y, Z : Obj ~ uniform
  var    WX : bool = W == X
  var    YZ : bool = Y == Z
  output O  : bool = (W == X) == YZ
  sample balanced O
}
"""

# Same graph, a different mechanism for WX.
NEAR = """
model Near {
  domain Obj = int 0..19
  input  W, X, Y, Z : Obj ~ uniform
  var    WX : bool = W == X or W == X + 1
  var    YZ : bool = Y == Z
  output O  : bool = WX == YZ
}
"""


def assert_same(a: PairSet, b: PairSet) -> None:
    for k in a.pool:
        assert np.array_equal(a.pool[k], b.pool[k])
    assert np.array_equal(a.base_index, b.base_index) and np.array_equal(a.source_index, b.source_index)
    for k in a.expected:
        assert np.array_equal(a.expected[k], b.expected[k])
    assert np.array_equal(a.changed, b.changed)


@pytest.mark.parametrize("pool", [None, 64])
def test_seeds_reproduce_pairs_exactly(hier, pool):
    a = make_pairs(hier, [["WX"], ["YZ"]], 300, seed=5, pool=pool)
    assert_same(a, make_pairs(hier, [["WX"], ["YZ"]], 300, seed=5, pool=pool))
    c = make_pairs(hier, [["WX"], ["YZ"]], 300, seed=6, pool=pool)
    assert not np.array_equal(a.base["W"], c.base["W"])
    assert a.seed == 5 and a.n == 300 and a.groups == [["WX"], ["YZ"]]


def test_pool_indices_and_values(hier):
    ps = make_pairs(hier, [["WX", "YZ"]], 500, seed=1, pool=40)
    assert ps.pooled and ps.pool_size == 40 and ps.source_index.shape == (1, 500)
    assert ps.base_index.min() >= 0 and ps.base_index.max() < 40
    assert ps.source_index.min() >= 0 and ps.source_index.max() < 40
    for k in hier.inputs:
        assert np.array_equal(ps.base[k], ps.pool[k][ps.base_index])
        assert np.array_equal(ps.sources[0][k], ps.pool[k][ps.source_index[0]])
    # bases are stratified on O within the pool, so they stay balanced
    assert ps.base_output["O"].sum() == 250
    # the pool reproduces the pair values
    again = make_pairs(hier, [["WX", "YZ"]], 500, seed=1, pool=40)
    assert_same(ps, again)


def test_no_pool_is_a_concatenation(hier):
    ps = make_pairs(hier, [["WX"], ["YZ"]], 200, seed=2)
    assert not ps.pooled and ps.pool_size == 600
    assert ps.base_index.tolist() == list(range(200))
    assert sorted(ps.source_index[0].tolist()) == list(range(200, 400))
    assert sorted(ps.source_index[1].tolist()) == list(range(400, 600))
    assert ps.base_output["O"].sum() == 100  # balanced bases
    assert hier.run(ps.sources[0])["O"].sum() == 100  # swaps keep the sources' balance


def test_expected_values(hier):
    ps = make_pairs(hier, [["WX", "YZ"]], 300, seed=3)
    assert np.array_equal(ps.expected["O"], hier.run(ps.sources[0])["O"])
    assert set(ps.expected) == {"WX", "YZ", "O"} and set(ps.base_output) == {"O"}
    assert np.array_equal(ps.patched["WX"], hier.run(ps.sources[0])["WX"])
    assert np.array_equal(ps.base_values["WX"], hier.run(ps.base)["WX"])


def brute_force_changed(ps: PairSet) -> list[bool]:
    """Pure-Python hierarchical equality, one pair at a time."""
    out = []
    for i in range(ps.n):
        base = {k: int(ps.base[k][i]) for k in "WXYZ"}
        vals = {"WX": base["W"] == base["X"], "YZ": base["Y"] == base["Z"]}
        base_o = vals["WX"] == vals["YZ"]
        for group, src in zip(ps.groups, ps.sources):
            s = {k: int(src[k][i]) for k in "WXYZ"}
            svals = {"WX": s["W"] == s["X"], "YZ": s["Y"] == s["Z"]}
            svals["O"] = svals["WX"] == svals["YZ"]
            for name in group:
                vals[name] = svals[name]
        o = vals["O"] if "O" in vals else vals["WX"] == vals["YZ"]
        out.append(o != base_o)
    return out


@pytest.mark.parametrize("groups", [[["WX"]], [["YZ"]], [["WX", "YZ"]], [["WX"], ["YZ"]], [["O"]]])
@pytest.mark.parametrize("pool", [None, 32])
def test_changed_matches_brute_force(hier, groups, pool):
    ps = make_pairs(hier, groups, 200, seed=9, pool=pool)
    expected = brute_force_changed(ps)
    assert ps.changed.tolist() == expected and ps.n_changed == sum(expected)


def test_sources_differ_from_bases_in_a_tiny_space():
    m = model("""model Tiny {
      input A, B : bool
      output O : bool = A and B
    }""")
    for pool in (None, 8):
        ps = make_pairs(m, [["O"], ["A"]], 400, seed=0, pool=pool)
        assert not ps.same_as_base.any()
        for src in ps.sources:
            assert ((src["A"] != ps.base["A"]) | (src["B"] != ps.base["B"])).all()


def test_rows_for_display(hier):
    ps = make_pairs(hier, [["WX"]], 20, seed=0)
    rows = ps.rows(3)
    assert len(rows) == 3 and len(ps.rows(100)) == 20
    r = rows[0]
    assert set(r) == {"base", "sources", "groups", "patched", "expected", "base_output", "changed"}
    assert set(r["base"]) == {"W", "X", "Y", "Z"} and isinstance(r["base"]["W"], int)
    assert len(r["sources"]) == 1 and isinstance(r["expected"]["O"], bool) and isinstance(r["changed"], bool)
    assert r["changed"] == (r["expected"]["O"] != r["base_output"]["O"])


def test_make_pairs_validation(hier):
    with pytest.raises(ValueError, match="unknown variable"):
        make_pairs(hier, [["Q"]], 10)
    with pytest.raises(ValueError, match="at least one group"):
        make_pairs(hier, [], 10)
    assert make_pairs(hier, [["WX"]], 0).n == 0


def test_identical_models_are_indistinguishable(hier):
    ps = make_pairs(hier, [["WX"], ["YZ"]], 500, seed=0)
    r = distinguishing_power(hier, model(HIER), ps)
    assert r.n_differ == 0 and r.n_base_differ == 0 and not r.distinguishes and r.examples == []


def test_bypass_differs_only_under_intervention(hier):
    bypass = model(BYPASS)
    ps = make_pairs(hier, [["WX"]], 500, seed=0)
    r = distinguishing_power(hier, bypass, ps)
    assert r.n_base_differ == 0  # same input-output behaviour
    # interchanging WX changes Hier's O on exactly the changed pairs, never Bypass's O
    assert r.n_differ == ps.n_changed > 0 and r.fraction == ps.n_changed / 500
    assert distinguishes(hier, bypass, ps)
    ex = r.examples[0]
    assert ex["a"]["O"] != ex["b"]["O"] and set(ex["base"]) == {"W", "X", "Y", "Z"}
    # interchanging YZ is read by both: indistinguishable
    assert distinguishing_power(hier, bypass, make_pairs(hier, [["YZ"]], 500, seed=0)).n_differ == 0


def test_different_mechanism_for_an_intermediate(hier):
    near = model(NEAR)
    ps = make_pairs(hier, [["WX"]], 1000, seed=0)
    r = distinguishing_power(hier, near, ps)
    assert r.n_differ > 0 and r.per_output == {"O": r.n_differ}
    assert r.n_base_differ > 0


def test_groups_b_and_compatibility(hier):
    ps = make_pairs(hier, [["WX"]], 200, seed=0)
    assert distinguishing_power(hier, hier, ps, groups_b=[["YZ"]]).n_differ > 0
    with pytest.raises(ValueError, match="unknown variable"):
        distinguishing_power(hier, hier, ps, groups_b=[["Q"]])
    other = model("""model Other {
      input W, X, Y, Z : int 0..9
      output O : bool = W == X
    }""")
    with pytest.raises(ValueError, match="type"):
        distinguishing_power(hier, other, ps)
    renamed = model("""model R {
      input W, X, Y, Z : int 0..19
      output P : bool = W == X
    }""")
    with pytest.raises(ValueError, match="different outputs"):
        distinguishing_power(hier, renamed, ps)


def test_take_helper_matches_indices(hier):
    ps = make_pairs(hier, [["WX"]], 50, seed=0, pool=10)
    assert np.array_equal(take(ps.pool, ps.base_index)["Z"], ps.base["Z"])
