"""Sampling: constraints, weights, balance (enumerated and rejection paths), determinism."""

from __future__ import annotations

import numpy as np
import pytest

from causalspec.testing.specs import only_model as model
from causalspec.semantics import sampling
from causalspec.semantics.sampling import InputSample, SamplingError, sample_inputs


def test_where_constraint_holds_on_every_row():
    m = model("""model IOI {
      input IO, S : enum {Mary, John, Anna, Tom} ~ uniform where IO != S
      output A : enum {Mary, John, Anna, Tom} = IO
    }""")
    s = sample_inputs(m, 5000, seed=3)
    assert s.method == "rejection" and s.n == 5000
    assert len(s["IO"]) == 5000 and (s["IO"] != s["S"]).all()
    assert set(np.unique(s["IO"])) == {0, 1, 2, 3}  # enum indices


def test_tiny_acceptance_falls_back_to_enumeration():
    m = model("""model M {
      input A, B, C, D : int 0..9 where A == 0 and B == 0 and C == D
      output O : bool = C > 4
    }""")
    s = sample_inputs(m, 2000, seed=0)
    assert s.method == "enumeration"
    assert ((s["A"] == 0) & (s["B"] == 0) & (s["C"] == s["D"])).all()
    # constrained uniform: C uniform over 0..9
    counts = np.bincount(s["C"], minlength=10)
    assert counts.min() > 120 and counts.max() < 280


def test_too_rare_constraint_on_a_huge_space_raises(monkeypatch):
    m = model("""model M {
      input A, B, C, D, E, F, G, H : int 0..99 where A == 0
      output O : bool = A == E
    }""")
    monkeypatch.setattr(sampling, "MAX_DRAWS", 50_000)  # 1000 rows at 1% need ~100k draws
    with pytest.raises(SamplingError, match="accept too few inputs"):
        sample_inputs(m, 1000, seed=0)
    assert (sample_inputs(m, 100, seed=0)["A"] == 0).all()


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    return float(((counts - expected) ** 2 / expected).sum())


def test_weights_are_respected():
    m = model("""model M {
      input A : int 0..3 ~ weighted { 0: 1, 1: 3, 2: 4, 3: 2 }
      input B : bool ~ weighted { true: 9, false: 1 }
      input C : enum {p, q, r} ~ weighted { r: 1, p: 1 }
      output O : bool = A > 1 and B
    }""")
    s = sample_inputs(m, 20_000, seed=11, balanced_on=None)
    a = np.bincount(s["A"], minlength=4)
    # df = 3: P(chi2 > 21.1) = 1e-4; the seed is fixed, so this cannot flake
    assert chi_square(a, np.array([0.1, 0.3, 0.4, 0.2])) < 21.1
    assert abs(s["B"].mean() - 0.9) < 0.01
    c = np.bincount(s["C"], minlength=3)
    assert c[1] == 0 and abs(c[0] - c[2]) < 500  # unlisted values have probability 0


def test_weights_under_constraints_are_renormalised():
    m = model("""model M {
      input A : int 0..3 ~ weighted { 0: 5, 1: 1, 2: 2, 3: 1 } where A != 0
      output O : bool = A > 1
    }""")
    s = sample_inputs(m, 20_000, seed=5)
    counts = np.bincount(s["A"], minlength=4)
    assert counts[0] == 0
    assert chi_square(counts[1:], np.array([0.25, 0.5, 0.25])) < 18.4  # df = 2, 1e-4


def test_balanced_binary_output(hier):
    for n in (1000, 1001):
        s = sample_inputs(hier, n, seed=0)
        o = hier.run(s)["O"]
        assert abs(int(o.sum()) - n / 2) <= 1
        assert s.balanced_on == "O" and sum(s.counts_per_value.values()) == n
        assert s.complete and s.method == "enumeration"
    # rows are shuffled, not in value blocks
    o = hier.run(sample_inputs(hier, 1000, seed=0))["O"]
    assert 0.3 < o[:100].mean() < 0.7


def test_unbalanced_when_asked(hier):
    s = sample_inputs(hier, 4000, seed=0, balanced_on=None)
    assert s.method == "direct" and 0.88 < hier.run(s)["O"].mean() < 0.93


def test_balanced_three_valued_output():
    m = model("""model Cmp {
      input A, B : int 0..9
      output C : enum {eq, lt, gt} = if A == B then eq else if A < B then lt else gt
      sample balanced C
    }""")
    s = sample_inputs(m, 999, seed=2)
    counts = np.bincount(m.run(s)["C"], minlength=3)
    assert counts.tolist() == [333, 333, 333]
    assert s.counts_per_value == {"eq": 333, "lt": 333, "gt": 333}


def test_balanced_on_rare_intermediate_keeps_the_distribution_within_groups(hier):
    s = sample_inputs(hier, 4000, seed=4, balanced_on="WX")
    env = hier.run(s)
    assert env["WX"].sum() == 2000
    # within WX = true, W is still uniform over the 20 objects
    w = np.bincount(s["W"][env["WX"]], minlength=20)
    assert w.min() > 60 and w.max() < 150


def test_unreachable_values_get_no_share():
    m = model("""model M {
      input A : int 0..3
      output V : int 0..9 = A * 2
      sample balanced V
    }""")
    s = sample_inputs(m, 400, seed=0)
    assert s.counts_per_value == {0: 100, 2: 100, 4: 100, 6: 100}


LARGE = """
model Big {
  input A, B, C, D, E, F : int 0..19
  output O : bool = A == B
  sample balanced O
}
"""


def test_balanced_rejection_on_a_large_space():
    m = model(LARGE)
    s = sample_inputs(m, 1000, seed=0)
    assert s.method == "rejection" and s.complete
    assert m.run(s)["O"].sum() == 500 and s.counts_per_value == {False: 500, True: 500}


def test_balanced_rejection_reports_values_it_cannot_fill(monkeypatch):
    m = model("""model Rare {
      input A, B, C, D, E, F : int 0..19
      output O : bool = A == B and C == D and E == F
      sample balanced O
    }""")
    monkeypatch.setattr(sampling, "BALANCE_MAX_DRAWS", 200_000)  # ~25 expected hits of O
    s = sample_inputs(m, 400, seed=0)
    got = int(m.run(s)["O"].sum())
    assert 0 < got < 100 and s.n == 400 and len(s["A"]) == 400
    assert s.unfilled == {True: 200 - got} and not s.complete
    assert s.counts_per_value == {False: 400 - got, True: got}


def test_determinism(hier):
    a = sample_inputs(hier, 500, seed=7)
    b = sample_inputs(hier, 500, seed=7)
    c = sample_inputs(hier, 500, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in hier.inputs)
    assert not all(np.array_equal(a[k], c[k]) for k in hier.inputs)
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    assert all(np.array_equal(sample_inputs(hier, 50, g1)[k], sample_inputs(hier, 50, g2)[k]) for k in hier.inputs)
    m = model(LARGE)
    assert np.array_equal(sample_inputs(m, 300, 1)["C"], sample_inputs(m, 300, 1)["C"])


def test_sample_is_a_mapping_and_edge_cases(hier):
    s = sample_inputs(hier, 10, seed=0)
    assert isinstance(s, InputSample) and set(s) == {"W", "X", "Y", "Z"} and dict(s.items()).keys() == s.inputs.keys()
    assert len(sample_inputs(hier, 0)["W"]) == 0
    with pytest.raises(ValueError, match="not a variable"):
        sample_inputs(hier, 10, balanced_on="Q")
    with pytest.raises(ValueError):
        sample_inputs(hier, -1)
