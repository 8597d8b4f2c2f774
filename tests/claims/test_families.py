"""Families end to end (issue 13): a family spec and its unrolled form give the same results on
the same seed, and a [batch, positions, classes] torch network is checked per position."""

from __future__ import annotations

from pathlib import Path

import pytest

import causalspec.testing.histogram as hist
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text

NET = (f'network hist = torch "{hist.__file__}:build" weights "hist.safetensors" '
       f'{{ encode "{hist.__file__}:encode" }}\n')

FAMILY = """
model Hist {
  const N = 5
  domain Tok = enum {a, b, c}
  input t[1..N] : Tok
  var H[i in 1..N] : int 0..N = count(j in 1..N : t[j] == t[i])
  output O[i in 1..N] : int 0..N = H[i]
}
""" + NET + """
align Hist to hist as PerPos {
  H[i] -> module "hist" output @ i
  O[3] -> output @ 3
}
align Hist to hist as Slice {
  H[i] -> module "hist" output @ i : [0:1]
  O[3] -> output @ 3
}
check PerPos {
  interchange H, H[3], {H[3] | H[1]}
  pairs 128 seed 1
  expect iia >= 0.99 each
}
check Slice {
  interchange H
  pairs 128 seed 1
  expect iia >= 0.99
}
"""

_H = "\n".join(f"  var H{i} : int 0..5 = count({', '.join(f't{j} == t{i}' for j in range(1, 6))})"
               for i in range(1, 6))
UNROLLED = """
model Hist {
  domain Tok = enum {a, b, c}
  input t1, t2, t3, t4, t5 : Tok
""" + _H + "\n" + "\n".join(f"  output O{i} : int 0..5 = H{i}" for i in range(1, 6)) + """
}
""" + NET + """
align Hist to hist as PerPos {
""" + "\n".join(f'  H{i} -> module "hist" output @ {i}' for i in range(1, 6)) + """
  O3 -> output @ 3
}
align Hist to hist as Slice {
""" + "\n".join(f'  H{i} -> module "hist" output @ {i} : [0:1]' for i in range(1, 6)) + """
  O3 -> output @ 3
}
check PerPos {
  interchange {H1, H2, H3, H4, H5}, H3, {H3 | H1}
  pairs 128 seed 1
  expect iia >= 0.99 each
}
check Slice {
  interchange {H1, H2, H3, H4, H5}
  pairs 128 seed 1
  expect iia >= 0.99
}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hist")
    hist.save(tmp / "hist.safetensors")
    return tmp


def _run(text: str, folder: Path):
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    return {r.name: r for r in run_checks(ir, CheckOptions())}


def _numbers(result) -> list[tuple]:
    return [(c.sampled, c.kept, c.changed, c.moved, c.iia.successes, c.iia.trials) for c in result.claims]


def test_per_position_output_of_a_sequence_network_passes_where_the_value_lives(folder):
    r = _run(FAMILY, folder)
    per_pos, sliced = r["PerPos"], r["Slice"]
    assert per_pos.status == "passed", per_pos.reason
    for claim in per_pos.claims:
        assert claim.iia.successes == claim.iia.trials == 128
        assert claim.moved > 0  # the patch moves the output at position 3
    assert sliced.status == "failed"  # one coordinate of the one-hot does not carry H[i]


def test_family_and_unrolled_specs_give_identical_results_on_one_seed(folder):
    fam, unrolled = _run(FAMILY, folder), _run(UNROLLED, folder)
    for name in ("PerPos", "Slice"):
        assert fam[name].status == unrolled[name].status
        assert _numbers(fam[name]) == _numbers(unrolled[name])
    assert _numbers(fam["PerPos"])[0][2] > 0  # pairs whose expected output changed


def test_interchanging_an_element_the_output_does_not_read_cannot_pass(folder):
    text = FAMILY.replace("interchange H, H[3], {H[3] | H[1]}", "interchange H[2]")
    r = _run(text, folder)["PerPos"]
    assert r.status == "failed" and "changes the expected output on none" in r.reason


# ───────────── `O[i] -> output @ i`: every output element at its own position ─────────────

PER_ELEMENT = FAMILY.replace("  O[3] -> output @ 3\n}\nalign Hist to hist as Slice",
                             "  O[i] -> output @ i\n}\nalign Hist to hist as Slice")


def test_a_sequence_output_is_checked_at_every_position(folder):
    """A [batch, positions, classes] network checked per position: each interchange set gets one row
    per output element (its own counts and IIA) and a pooled row the expectations judge."""
    r = _run(PER_ELEMENT, folder)["PerPos"]
    assert r.status == "passed", r.reason
    declared = [c for c in r.claims if c.kind == "declared"]
    elements = [c for c in r.claims if c.kind == "element"]
    assert [c.label for c in declared] == ["{H[1], H[2], H[3], H[4], H[5]}", "{H[3]}", "{H[3] | H[1]}"]
    assert len(elements) == 3 * 5
    assert [c.label for c in elements[5:10]] == [f"{{H[3]}} → O[{k}]" for k in range(1, 6)]
    for pooled in declared:
        rows = [c for c in elements if c.label.startswith(pooled.label + " → ")]
        assert pooled.sampled == sum(c.sampled for c in rows) == 5 * 128
        assert pooled.iia.successes == pooled.iia.trials == 5 * 128
        assert pooled.changed == sum(c.changed for c in rows) > 0
    # interchanging H[3] changes the expected output at position 3 only: the other positions must stay
    changed = {c.label: c.changed for c in elements[5:10]}
    assert changed["{H[3]} → O[3]"] > 0 and sum(changed.values()) == changed["{H[3]} → O[3]"]
    assert any("per-position output" in n for n in r.notes)


def test_each_element_row_is_the_single_element_check_at_that_position(folder):
    """Per element the numbers are exactly those of a check that reads only `O[k] -> output @ k` on the
    same seed (the element runs share the pairs, which do not depend on the output read)."""
    rows = {c.label: c for c in _run(PER_ELEMENT, folder)["PerPos"].claims if c.kind == "element"}
    for k in (1, 4):
        single = _run(FAMILY.replace("O[3] -> output @ 3\n}\nalign Hist to hist as Slice",
                                     f"O[{k}] -> output @ {k}\n}}\nalign Hist to hist as Slice"), folder)["PerPos"]
        for c in single.claims:
            element = rows[f"{c.label} → O[{k}]"]
            assert _numbers_of(element) == _numbers_of(c)


def _numbers_of(c) -> tuple:
    return (c.sampled, c.kept, c.changed, c.moved, c.iia.successes, c.iia.trials, c.baseline.successes)


def test_outputs_read_at_the_wrong_positions_fail(folder):
    """O[k] read at position k + 1 (where the network answers H[k + 1]): the pooled rows fail."""
    text = PER_ELEMENT.replace("O[i] -> output @ i\n}\nalign Hist to hist as Slice",
                               "O[i in 1..4] -> output @ i+1\n}\nalign Hist to hist as Slice")
    r = _run(text, folder)["PerPos"]
    assert r.status == "failed"
    assert {c.label for c in r.claims if c.kind == "element"} >= {"{H[3]} → O[2]", "{H[3]} → O[4]"}
    assert min(c.iia.estimate for c in r.claims if c.kind == "declared") < 0.99


def test_per_element_outputs_report_in_json_and_html(folder):
    from causalspec.report.html import check_section

    r = _run(PER_ELEMENT, folder)["PerPos"]
    kinds = [c["kind"] for c in r.to_dict()["claims"]]
    assert kinds.count("declared") == 3 and kinds.count("element") == 15
    assert "{H[3]} → O[3]" in check_section(r)


# ───────────── `locate` over several variables ─────────────

LOCATE = FAMILY.split("align Hist to hist as PerPos")[0] + """
align Hist to hist as Out {
  O[3] -> output @ 3
}
check Out as PerElement {
  locate H[i] over module "{embed,hist,head}" output @ i
  interchange H
  pairs 64 seed 1
  expect iia >= 0.99
}
check Out as Joint {
  locate {H[i]} over module "{embed,hist}" output @ i
  interchange H
  pairs 64 seed 1
  expect iia >= 0.99
}
"""


def test_locating_a_family_gives_a_grid_of_sites_by_elements(folder):
    r = _run(LOCATE, folder)["PerElement"]
    assert r.status == "passed", r.reason
    loc = r.locate
    assert loc["mode"] == "element" and loc["var"] == "H[i]"
    assert loc["positions"] == [f"H[{k}] @ {k}" for k in range(1, 6)]
    grid = [[c["score"] for c in row] for row in loc["cells"]]
    assert grid[1] == grid[2] == [1.0] * 5  # the histogram and the head carry H[k] at position k
    assert max(grid[0]) < 1.0  # the token embeddings do not
    # each column has its own no-intervention baseline: the output read (O[3]) moves only with H[3],
    # so only column 3 can tell the sites apart, and the others are marked as at their baseline
    bases = loc["column_baselines"]
    assert bases[2] < 0.5 and all(b == 1.0 for k, b in enumerate(bases) if k != 2)
    assert grid[0][2] <= bases[2] < grid[1][2]
    # each cell is scored by interchanging its own element: the cell's only set is {H[k]}
    assert [list(c["iia"]) for c in loc["cells"][1]] == [[f"{{H[{k}]}}"] for k in range(1, 6)]
    assert [c["site"] for c in loc["column_best"]] == ['module "hist" output'] * 5
    # the confirmation binds every element at its column's best cell and scores `interchange H` there
    assert [c.label for c in r.claims] == ["{H[1], H[2], H[3], H[4], H[5]}"]
    assert any("each element at the best cell of its column" in n for n in r.notes)


def test_an_element_cell_gives_the_numbers_of_a_check_of_that_cell(folder):
    """Cell (embed, H[2]) of the sweep equals a separate check aligning H[2] there with
    `interchange H[2]` on the same seed (the pairs a check of that element draws)."""
    sweep = _run(LOCATE, folder)["PerElement"].locate
    cell = sweep["cells"][0][1]
    single = _run(LOCATE.split("check Out as PerElement")[0] + """
align Hist to hist as Embed2 {
  H[2] -> module "embed" output @ 2
  O[3] -> output @ 3
}
check Embed2 {
  interchange H[2]
  pairs 64 seed 1
  expect iia >= 0.99
}
""", folder)["Embed2"]
    [claim] = single.claims
    assert (cell["iia"]["{H[2]}"]["successes"], cell["iia"]["{H[2]}"]["trials"]) == (claim.iia.successes,
                                                                                       claim.iia.trials)


def test_a_joint_locate_binds_every_element_in_each_cell(folder):
    r = _run(LOCATE, folder)["Joint"]
    loc = r.locate
    assert loc["mode"] == "joint" and loc["var"] == "{H[i]}" and loc["positions"] == ["i"]
    assert len(loc["cells"]) == 2 and all(len(row) == 1 for row in loc["cells"])
    assert list(loc["cells"][1][0]["iia"]) == ["{H[1], H[2], H[3], H[4], H[5]}"]
    assert loc["cells"][1][0]["score"] == 1.0


@pytest.mark.parametrize("stmt, code, message", [
    ("locate H over module \"hist\" output", "E0713", "is a family"),
    ("locate Q[i] over module \"hist\" output @ i", "E0713", "not a family"),
    ("locate {H[i], H[2]} over module \"hist\" output @ i", "E0713", "twice"),
    ("locate H[i] over module \"hist\" output @ {i, 0}", "E0713", "one position"),
    ("locate H[i] over module \"l.{0..300}\" output @ i", "E0711", "1,505 cells"),
])
def test_bad_family_locates_are_located_errors(folder, stmt, code, message):
    from causalspec.errors import SpecError

    text = LOCATE.replace('locate H[i] over module "{embed,hist,head}" output @ i', stmt)
    with pytest.raises(SpecError) as err:
        _run(text, folder)
    diags = [d for d in err.value.diagnostics if d.code == code]
    line = text.splitlines().index("  " + stmt) + 1
    assert diags and message in diags[0].message and diags[0].span.line == line


# ───────────── hf token-level heads read per position ─────────────

COPY = """
model Copy {
  domain Col = enum {red, green, blue}
  input x1, x2, x3 : Col
  var V[i in 1..3] : Col = if i == 1 then x1 else if i == 2 then x2 else x3
  output O[i in 1..3] : Col = V[i]
}
network tok = hf "copier" {
  class token_classification
  prompt "{x1} {x2} {x3}"
  position C1 = slot(x1)
  position C2 = slot(x2)
  position C3 = slot(x3)
  position X[i in 1..3] = {C1, C2, C3}
  position Wrong[i in 1..3] = {C2, C1, C3}
}
align Copy to tok as PerToken {
  V[i] -> resid.post[1] @ i-1
  O[i] -> output @ i-1
}
check PerToken {
  interchange V, V[2]
  pairs 64 seed 0
  expect iia >= 0.99
}
align Copy to tok as Shifted {
  V[i in 1..2] -> resid.post[1] @ i
  O[i in 1..2] -> output @ i-1
}
check Shifted {
  interchange V[1]
  pairs 64 seed 0
  expect iia >= 0.99
}
align Copy to tok as BySlots {
  V[i] -> resid.post[1] @ X[i]
  O[i] -> output @ i-1
}
check BySlots {
  interchange V, V[1]
  pairs 64 seed 0
  expect iia >= 0.99
}
align Copy to tok as WrongSlots {
  V[i in 1..2] -> resid.post[1] @ Wrong[i]
  O[i in 1..2] -> output @ i-1
}
check WrongSlots {
  interchange V[1]
  pairs 64 seed 0
  expect iia >= 0.99
}
align Copy to tok as Whole {
  V[2] -> resid.post[1] @ 1
  O[2] -> output
}
check Whole {
  interchange V[2]
  pairs 16 seed 0
  expect iia >= 0.99
}
"""


def test_an_hf_token_level_head_is_checked_at_every_position(copier):
    """A GPT2ForTokenClassification whose label at each token is that token: the family V read per
    position passes, and the same claim with the sites one token off fails."""
    r = _run(COPY, copier)
    per_token, shifted = r["PerToken"], r["Shifted"]
    assert per_token.status == "passed", per_token.reason
    rows = {c.label: c for c in per_token.claims}
    assert rows["{V[2]} → O[2]"].changed > 0 and rows["{V[2]} → O[1]"].changed == 0
    assert all(c.iia.successes == c.iia.trials == 64 for c in per_token.claims if c.kind == "element")
    assert shifted.status == "failed"
    # a token-level head needs a position to read: a check ERROR that says so
    assert r["Whole"].status == "error" and "read `O[2]` at a token" in r["Whole"].reason


def test_family_elements_aligned_at_named_slots(copier):
    """`position X[i in 1..3] = {C1, C2, C3}` names the slots; `V[i] -> … @ X[i]` puts element i at
    the i-th (the same numbers as `@ i-1`, since slot x_k is token k - 1); listed in the wrong
    order the claim fails."""
    r = _run(COPY, copier)
    assert r["BySlots"].status == "passed", r["BySlots"].reason
    ir = load_text(COPY, str(copier / "spec.cspec"), base_dir=copier)
    assert [b.positions[0].label for b in ir.alignments["BySlots"].variables["V[2]"]] == ["X[2]"]
    same = [(c.kept, c.changed, c.iia.successes) for c in r["PerToken"].claims if c.label.startswith("{V[1], V[2]")]
    assert same == [(c.kept, c.changed, c.iia.successes) for c in r["BySlots"].claims
                    if c.label.startswith("{V[1], V[2]")]
    assert r["WrongSlots"].status == "failed"


@pytest.mark.parametrize("edit, message", [
    (("position X[i in 1..3] = {C1, C2, C3}", "position X[i in 1..3] = {C1, C2}"), "2 listed positions"),
    (("V[i] -> resid.post[1] @ X[i]", "V[1] -> resid.post[1] @ X[i]"), "by the index of a family alignment"),
    (("position C1 = slot(x1)", "position C1 = slot(x1, i)"), "only a position family has one"),
    (("position X[i in 1..3] = {C1, C2, C3}", "position X[i in 1..n] = {C1, C2, C3}"), "must be two numbers"),
])
def test_position_family_mistakes_are_located_errors(copier, edit, message):
    from causalspec.errors import SpecError

    text = COPY.replace(*edit)
    with pytest.raises(SpecError) as err:
        load_text(text, str(copier / "spec.cspec"), base_dir=copier)
    [diag] = [d for d in err.value.diagnostics if d.code == "E0615"]
    assert message in diag.message and diag.span.line == text.splitlines().index("  " + edit[1]) + 1


def test_locating_a_family_against_every_output_position(folder):
    """`locate H[i]` with `O[i] -> output @ i`: the sweep is scored at every output element and
    pooled, so every column tells the sites apart (its baseline is below 1), and one choice is
    confirmed at every element."""
    text = LOCATE.replace("align Hist to hist as Out {\n  O[3] -> output @ 3\n}",
                          "align Hist to hist as Out {\n  O[i] -> output @ i\n}")
    r = _run(text, folder)["PerElement"]
    assert r.status == "passed", r.reason
    loc = r.locate
    grid = [[c["score"] for c in row] for row in loc["cells"]]
    assert all(b < 0.95 for b in loc["column_baselines"])
    assert grid[1] == [1.0] * 5 and all(g <= b for g, b in zip(grid[0], loc["column_baselines"]))
    assert [c["site"] for c in loc["column_best"]] == ['module "hist" output'] * 5
    cell = loc["cells"][1][1]["iia"]["{H[2]}"]
    assert cell["trials"] == 5 * 64  # pooled over the five output elements
    assert any("scored at 5 output elements" in n for n in r.notes)
    assert [c.kind for c in r.claims].count("element") == 5
