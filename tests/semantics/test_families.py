"""Families, constants and aggregates (issue 13): expansion into per-element variables."""

from __future__ import annotations

import numpy as np
import pytest

from causalspec.cli.sample import parse_interchange
from causalspec.errors import SpecError
from causalspec.report.graph_export import family_graph, family_view, to_dot, to_json, to_mermaid, to_png
from causalspec.semantics.analyse import load_text

SPEC = """
model M {
  const N = 4
  input t[1..N] : int 0..2
  var H[i in 1..N] : int 0..N = count(j in 1..N : t[j] == t[i])
  var Prev[i in 1..N] : bool = if i > 1 then t[i - 1] == t[i] else false
  var Run[i in 1..N] : int 1..N = if i > 1 then (if Prev[i] then Run[i - 1] + 1 else 1) else 1
  var Top : int 1..N = argmax(j in 1..N : H[j])
  var Big : int 0..2 = max(j in 1..N : t[j])
  var Small : int 0..2 = min(j in 2..N where j != 3 : t[j])
  var Ones : int 0..8 = sum(j in 1..N where t[j] > 0 : t[j])
  var AnyTwo : bool = any(j in 1..N : t[j] == 2)
  output AllPos : bool = all(j in 1..N where j > 1 : t[j] > 0)
}
"""


@pytest.fixture(scope="module")
def model():
    return load_text(SPEC, "f.cspec").models["M"]


def _reference(t: np.ndarray) -> dict[str, np.ndarray]:
    """The same mechanisms, in numpy, element by element."""
    n = t.shape[1]
    h = (t[:, :, None] == t[:, None, :]).sum(axis=2)
    prev = np.zeros_like(t, dtype=bool)
    prev[:, 1:] = t[:, 1:] == t[:, :-1]
    run = np.ones_like(t)
    for i in range(1, n):
        run[:, i] = np.where(prev[:, i], run[:, i - 1] + 1, 1)
    small = np.minimum(t[:, 1], t[:, 3])
    return {"H": h, "Prev": prev, "Run": run, "Top": h.argmax(axis=1) + 1, "Big": t.max(axis=1),
            "Small": small, "Ones": np.where(t > 0, t, 0).sum(axis=1), "AnyTwo": (t == 2).any(axis=1),
            "AllPos": (t[:, 1:] > 0).all(axis=1)}


def test_every_element_and_aggregate_matches_a_direct_computation(model):
    env = model.enumerate_inputs()  # 3**4 inputs
    out = model.run(env)
    rows = model.decode(out)
    t = np.array([[r[f"t[{i}]"] for i in range(1, 5)] for r in rows])
    ref = _reference(t)
    for fam in ("H", "Prev", "Run"):
        got = np.array([[r[f"{fam}[{i}]"] for i in range(1, 5)] for r in rows])
        assert (got == ref[fam]).all(), fam
    for name in ("Top", "Big", "Small", "Ones", "AnyTwo", "AllPos"):
        assert (np.array([r[name] for r in rows]) == ref[name]).all(), name


def test_families_are_recorded_and_elements_are_ordinary_variables(model):
    assert model.families.families["H"].elements == ("H[1]", "H[2]", "H[3]", "H[4]")
    assert model.families.consts == {"N": 4}
    assert set(model.graph.predecessors("Run[3]")) == {"Prev[3]", "Run[2]"}
    assert model.families.family_of("H[2]") == "H" and model.families.family_of("Top") is None


def test_graph_shows_a_family_as_one_node_and_expands_on_request(model):
    g = family_graph(model)
    assert "H[1..4]" in g and "H[1]" not in g
    assert g.has_edge("t[1..4]", "H[1..4]") and g.has_edge("Run[1..4]", "Run[1..4]")  # reads its own past
    dot = to_dot(g)
    assert '"H[1..4]"' in dot and "count(j in 1..N : t[j] == t[i])" in dot
    assert [n["name"] for n in to_json(model)["nodes"]][:2] == ["t[1]", "t[2]"]  # expanded


def test_the_networkx_free_family_view_exports_what_the_family_graph_exports(model, tmp_path):
    # `causalspec graph` exports the view (no networkx import); it must equal the DiGraph's export
    view, g = family_view(model), family_graph(model)
    assert view.order == g.graph["order"] and view.nodes.keys() == set(g.nodes)
    assert sorted(view.edges) == sorted(g.edges) and len(view.edges) == len(set(view.edges))
    for export in (to_dot, to_mermaid):  # (JSON: its LaTeX of `if Prev[i] ...` fails in sympy, both ways)
        assert export(view) == export(g), export.__name__
    assert to_png(view, tmp_path / "v.png").read_bytes() == to_png(g, tmp_path / "g.png").read_bytes()


def test_sample_interchange_names_a_family(model):
    assert parse_interchange("H|t[1]", model) == [["H[1]", "H[2]", "H[3]", "H[4]"], ["t[1]"]]


def test_a_self_reading_element_is_a_cycle_per_element():
    with pytest.raises(SpecError) as info:
        load_text("""
model M {
  input t[1..3] : int 0..2
  var H[i in 1..3] : int 0..9 = if i > 1 then H[i] + 1 else t[i]
  output o : int 0..9 = H[3]
}""", "c.cspec")
    diag = info.value.diagnostics[0]
    assert diag.code == "E0401" and "H[2]" in diag.message


def test_a_guard_on_a_variable_does_not_hide_an_out_of_range_index():
    with pytest.raises(SpecError) as info:
        load_text("""
model M {
  input t[1..3] : int 0..2
  var P[i in 1..3] : bool = if t[i] > 0 then t[i - 1] == 1 else false
  output o : bool = P[2]
}""", "g.cspec")
    assert [d.code for d in info.value.diagnostics] == ["E0216"]


def test_graph_shows_an_aggregate_over_a_family_as_written(model):
    """`Top = argmax(j in 1..N : H[j])` is not a family, but its mechanism aggregates over one: the
    family graph shows it as written (with the constant `N`), the expanded graph unrolled."""
    nodes = {n["name"]: n for n in to_json(family_graph(model))["nodes"]}
    assert nodes["Top"]["mechanism"] == "argmax(j in 1..N : H[j])"
    assert nodes["Small"]["mechanism"] == "min(j in 2..N where j != 3 : t[j])"
    assert "Prev" in nodes["Run[1..4]"]["latex"]  # a family element read as a condition has LaTeX too
    dot = to_dot(family_graph(model))
    assert '"Ones = sum(j in 1..N where t[j] > 0 : t[j])"' in dot and "H[1]" not in dot
    expanded = {n["name"]: n for n in to_json(model)["nodes"]}
    assert "H[1]" in expanded["Top"]["mechanism"] and "argmax" not in expanded["Top"]["mechanism"]


def test_a_model_with_no_family_shows_its_aggregates_and_constants_as_written():
    m = load_text("""
model M {
  const K = 3
  input x : int 0..3
  var c : int 0..3 = count(j in 1..K : x >= j)
  output y : int 0..6 = c + K
}""", "w.cspec").models["M"]
    assert not m.families.families
    nodes = {n["name"]: n["mechanism"] for n in to_json(m)["nodes"]}
    assert nodes == {"x": None, "c": "count(j in 1..K : x >= j)", "y": "c + K"}
    assert "c = count(j in 1..K : x >= j)" in to_dot(m)
    assert (m.run({"x": np.array([0, 2, 3])})["y"] == [3, 5, 6]).all()  # still runs the expanded form
