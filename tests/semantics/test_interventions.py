"""do() and interchange interventions on hand-computed cases, plus a property test."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causalspec.testing.specs import HIER_EQ_MODEL
from causalspec.semantics.analyse import load_text
from causalspec.semantics.interventions import do, encode_value, interchange, normalize_groups, source_values

HIER = HIER_EQ_MODEL

CHAIN = """
model Chain {
  input  A : int 0..3
  input  T : enum {lo, hi}
  var    B : int 1..4 = A + 1
  var    C : int 2..8 = B * 2
  output O : bool = C > 4 and T == hi
}
"""


@functools.cache
def hier_model():
    return load_text(HIER).models["HierEq"]


@pytest.fixture(scope="module")
def hier():
    return hier_model()


@pytest.fixture(scope="module")
def chain():
    return load_text(CHAIN).models["Chain"]


BASE = dict(W=1, X=1, Y=2, Z=3)
SOURCE = dict(W=4, X=5, Y=0, Z=0)


def one(env, name):
    assert env[name].shape == (1,)
    return env[name][0].item()


def test_do_without_intervention_is_the_model(hier):
    env = do(hier, BASE)
    assert (one(env, "WX"), one(env, "YZ"), one(env, "O")) == (True, False, False)


def test_do_on_intermediate_recomputes_descendants(hier):
    env = do(hier, BASE, {"WX": False})
    assert (one(env, "WX"), one(env, "YZ"), one(env, "O")) == (False, False, True)


def test_do_on_output_fixes_only_the_output(hier):
    env = do(hier, BASE, {"O": True})
    assert (one(env, "WX"), one(env, "YZ"), one(env, "O")) == (True, False, True)


def test_do_accepts_arrays_and_lists_and_broadcasts_scalars(hier):
    env = do(hier, {"W": [1, 2, 3], "X": np.array([1, 2, 0]), "Y": 5, "Z": 5}, {"YZ": np.array([False, True, True])})
    assert env["W"].dtype == np.int64 and env["Y"].tolist() == [5, 5, 5]
    assert env["O"].tolist() == [False, True, False]


def test_do_on_input_replaces_it(chain):
    env = do(chain, {"A": 0, "T": "hi"}, {"A": 3})
    assert one(env, "A") == 3 and one(env, "C") == 8 and one(env, "O") is True


def test_enum_values_python_and_indices(chain):
    assert encode_value(chain.domain("T"), "hi").item() == 1
    assert encode_value(chain.domain("T"), np.array([0, 1])).tolist() == [0, 1]
    with pytest.raises(ValueError, match="outside"):
        encode_value(chain.domain("T"), np.array([2]))
    with pytest.raises(ValueError, match="not a value"):
        encode_value(chain.domain("T"), "mid")
    with pytest.raises(ValueError, match="not a value"):
        do(chain, {"A": 7, "T": "hi"})


def test_do_rejects_unknown_names_and_missing_inputs(hier):
    with pytest.raises(ValueError, match="unknown intervened variable `Q`"):
        do(hier, BASE, {"Q": True})
    with pytest.raises(ValueError, match="unknown input"):
        do(hier, {**BASE, "V": 1})
    with pytest.raises(ValueError, match="missing"):
        do(hier, {"W": 1, "X": 1, "Y": 2})


def test_interchange_single_variable(hier):
    env = interchange(hier, BASE, [SOURCE], [["WX"]])
    assert (one(env, "WX"), one(env, "YZ"), one(env, "O")) == (False, False, True)
    # the base inputs are untouched
    assert [one(env, k) for k in "WXYZ"] == [1, 1, 2, 3]


def test_interchange_of_all_parents_gives_the_source_output(hier):
    env = interchange(hier, BASE, [SOURCE], [["WX", "YZ"]])
    src = do(hier, SOURCE)
    assert one(env, "O") == one(src, "O") is False
    rng = np.random.default_rng(1)
    base = {k: rng.integers(0, 4, 500) for k in "WXYZ"}
    source = {k: rng.integers(0, 4, 500) for k in "WXYZ"}
    env = interchange(hier, base, [source], [["WX", "YZ"]])
    assert (env["O"] == hier.run(source)["O"]).all()


def test_multi_source_interchange(hier):
    base = dict(W=1, X=1, Y=2, Z=2)  # O = True
    s1 = dict(W=4, X=5, Y=9, Z=9)  # WX = False
    s2 = dict(W=3, X=3, Y=0, Z=0)  # YZ = True
    env = interchange(hier, base, [s1, s2], [["WX"], ["YZ"]])
    assert (one(env, "WX"), one(env, "YZ"), one(env, "O")) == (False, True, False)
    s2b = dict(W=3, X=3, Y=1, Z=2)  # YZ = False
    env = interchange(hier, base, [s1, s2b], ["WX", "YZ"])  # bare strings: one group each
    assert (one(env, "WX"), one(env, "YZ"), one(env, "O")) == (False, False, True)


def test_interchange_recomputes_downstream_of_intervened(chain):
    env = interchange(chain, {"A": 0, "T": "hi"}, {"A": 3, "T": "lo"}, [["B"]])
    assert (one(env, "A"), one(env, "B"), one(env, "C"), one(env, "O")) == (0, 4, 8, True)


def test_interchange_of_an_input_copies_the_source_value(chain):
    env = interchange(chain, {"A": 0, "T": "hi"}, {"A": 3, "T": "lo"}, [["T"]])
    assert chain.domain("T").decode(env["T"]) == ["lo"] and one(env, "A") == 0 and one(env, "O") is False


def test_interchange_of_output_and_upstream(hier):
    env = interchange(hier, BASE, [SOURCE, dict(W=0, X=0, Y=0, Z=0)], [["WX"], ["O"]])
    assert one(env, "WX") is False and one(env, "O") is True


def test_source_values(hier):
    fixed = source_values(hier, [SOURCE], [["WX", "YZ"]])
    assert fixed["WX"].tolist() == [False] and fixed["YZ"].tolist() == [True]


def test_interchange_validation(hier):
    with pytest.raises(ValueError, match="unknown variable `Q`"):
        interchange(hier, BASE, [SOURCE], [["Q"]])
    with pytest.raises(ValueError, match="two groups"):
        normalize_groups(hier, [["WX"], ["WX", "YZ"]])
    with pytest.raises(ValueError, match="need 2 source"):
        interchange(hier, BASE, [SOURCE], [["WX"], ["YZ"]])
    with pytest.raises(ValueError, match="empty"):
        normalize_groups(hier, [[]])
    with pytest.raises(ValueError, match="rows"):
        interchange(hier, {k: np.arange(3) for k in "WXYZ"}, [{k: np.arange(2) for k in "WXYZ"}], [["WX"]])


VARS = ["W", "X", "Y", "Z", "WX", "YZ", "O"]


@settings(max_examples=200, deadline=None, derandomize=True)  # the same examples every run
@given(rows=st.lists(st.tuples(*[st.integers(0, 19)] * 4), min_size=1, max_size=8),
       groups=st.lists(st.sets(st.sampled_from(VARS), min_size=1), min_size=1, max_size=3))
def test_interchange_with_source_equal_to_base_is_the_base_run(rows, groups):
    model = hier_model()
    used: set[str] = set()
    disjoint = []
    for g in groups:
        g = sorted(g - used)
        if g:
            disjoint.append(g)
            used.update(g)
    base = {k: np.array([r[i] for r in rows]) for i, k in enumerate("WXYZ")}
    env = interchange(model, base, [base] * len(disjoint), disjoint)
    plain = model.run(base)
    for k in VARS:
        assert np.array_equal(env[k], plain[k]), k
