"""Outputs read at named positions (issue 13): `O -> output @ END`, `O[i] -> output @ S[i]`.

A named position is resolved per example, like a site's: on an hf token-level head a slot is
found in each example's prompt (so two templates that put `{x1}` at different tokens are both
read at `{x1}`); on a torch [batch, positions, classes] network `position END = last` is the
last position (a torch network has no prompt, so its positions are numbers and `last`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import causalspec.testing.histogram as hist
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.errors import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.semantics.sites import PositionSpec

COPY = """
model Copy {
  domain Col = enum {red, green, blue}
  input x1, x2, x3 : Col
  input order : enum {ab, ba}
  var V[i in 1..3] : Col = if i == 1 then x1 else if i == 2 then x2 else x3
  output O[i in 1..3] : Col = V[i]
}
network tok = hf "copier" {
  class token_classification
  prompt by order {
    ab: "{x1} {x2} {x3}"
    ba: "{x2} {x1} {x3}"
  }
  position C1 = slot(x1)
  position C2 = slot(x2)
  position C3 = slot(x3)
  position X[i in 1..3] = {C1, C2, C3}
  position Wrong[i in 1..3] = {C2, C1, C3}
}
align Copy to tok as BySlots {
  V[i] -> resid.post[1] @ X[i]
  O[i] -> output @ X[i]
}
check BySlots {
  interchange V, V[1]
  pairs 64 seed 0
  expect iia >= 0.99
}
align Copy to tok as One {
  V[1] -> resid.post[1] @ C1
  O[1] -> output @ C1
}
check One {
  interchange V[1]
  pairs 64 seed 0
  expect iia >= 0.99
}
align Copy to tok as Numbered {
  V[1] -> resid.post[1] @ C1
  O[1] -> output @ 0
}
check Numbered {
  interchange V[1]
  pairs 64 seed 0
  expect iia >= 0.99
}
align Copy to tok as WrongSlots {
  V[i] -> resid.post[1] @ X[i]
  O[i] -> output @ Wrong[i]
}
check WrongSlots {
  interchange V[1]
  pairs 64 seed 0
  expect iia >= 0.99
}
"""


def _run(text: str, folder: Path):
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    return {r.name: r for r in run_checks(ir, CheckOptions())}


def test_an_hf_token_level_output_is_read_at_each_examples_slot(copier):
    r = _run(COPY, copier)
    for name in ("BySlots", "One"):
        assert r[name].status == "passed", r[name].reason
        assert all(c.iia.successes == c.iia.trials > 0 for c in r[name].claims)
    rows = {c.label: c for c in r["BySlots"].claims}
    assert rows["{V[1]} → O[1]"].moved > 0 and rows["{V[1]} → O[2]"].changed == 0
    assert any("O[1] at position X[1]" in n for n in r["BySlots"].notes)
    assert all(c.kept == c.sampled for c in r["BySlots"].claims)  # right on every example, either template
    # token 0 is `{x1}` only in the `ab` template: read there, the network is wrong on the `ba`
    # examples (about half), and the correctness filter drops every pair with one
    (numbered,) = r["Numbered"].claims
    assert numbered.kept < 0.75 * numbered.sampled
    # the slots listed in the wrong order read O[1] at `{x2}`
    assert r["WrongSlots"].status == "failed"


def test_the_alignment_keeps_the_named_position(copier):
    ir = load_text(COPY, str(copier / "spec.cspec"), base_dir=copier)
    one = ir.alignments["One"]
    assert isinstance(one.output_position, PositionSpec) and one.output_position.label == "C1"
    assert [(e, p.label) for e, p in ir.alignments["BySlots"].output_elements] == [
        ("O[1]", "X[1]"), ("O[2]", "X[2]"), ("O[3]", "X[3]")]


HIST = f"""
model Hist {{
  const N = 5
  domain Tok = enum {{a, b, c}}
  input t[1..N] : Tok
  var H[i in 1..N] : int 0..N = count(j in 1..N : t[j] == t[i])
  output O[i in 1..N] : int 0..N = H[i]
}}
network hist = torch "{hist.__file__}:build" weights "hist.safetensors" {{
  encode "{hist.__file__}:encode"
  position END = last
  position P[i in 1..5] = {{1, 2, 3, 4, END}}
}}
align Hist to hist as A {{
  H[i] -> module "hist" output @ i
  OUTPUT
}}
check A {{
  interchange H[5], H[4]
  pairs 64 seed 1
  expect iia >= 0.99 each
}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hist")
    hist.save(tmp / "hist.safetensors")
    return tmp


@pytest.mark.parametrize("output, verdict", [
    ("O[5] -> output @ END", "failed"),  # {H[4]} does not move O[5]: nothing to test
    ("O[i] -> output @ P[i]", "passed"),
    ("O[i in 4..5] -> output @ P[i]", "passed"),
])
def test_a_torch_sequence_output_is_read_at_a_declared_position(folder, output, verdict):
    r = _run(HIST.replace("OUTPUT", output), folder)["A"]
    assert r.status == verdict, r.reason
    five = next(c for c in r.claims if c.label in ("{H[5]}", "{H[5]} → O[5]") and c.kind != "declared"
                or c.label == "{H[5]}")
    assert five.iia.successes == five.iia.trials > 0 and five.moved > 0


def test_a_declared_position_reads_the_same_numbers_as_its_index(folder):
    named = _run(HIST.replace("OUTPUT", "O[i] -> output @ P[i]"), folder)["A"]
    numbered = _run(HIST.replace("OUTPUT", "O[i] -> output @ i"), folder)["A"]
    assert [(c.label, c.kept, c.changed, c.moved, c.iia.successes) for c in named.claims] == \
        [(c.label, c.kept, c.changed, c.moved, c.iia.successes) for c in numbered.claims]


@pytest.mark.parametrize("output, code, message", [
    ("O[5] -> output @ 2..4", "E0614", "`2..4` is a range of tokens"),
    ("O[5] -> output @ all", "E0614", "is every token"),
    ("O[5] -> output @ NOPE", "E0212", "unknown position `NOPE`"),
])
def test_an_output_position_that_is_not_one_token_is_a_located_error(folder, output, code, message):
    text = HIST.replace("OUTPUT", output)
    with pytest.raises(SpecError) as err:
        load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    (d,) = [d for d in err.value.diagnostics if d.severity == "error"]
    assert d.code == code and message in d.message
    assert d.span.line == text.splitlines().index("  " + output) + 1


LEARNED = COPY.split("align Copy to tok as BySlots")[0] + """
align Copy to tok as Learned {
  V[i] -> resid.post[1] @ X[i] : das(k=2)
  O[i] -> output @ X[i]
}
check Learned {
  interchange V, V[1]
  pairs 64 seed 0
  pool 12
  train 256
  steps 80
  expect iia >= 0.95
}
"""


def test_das_per_element_on_an_hf_token_level_head_read_at_slots(copier):
    """Learned featurizers per element on an hf token-level head: each training forward reads every
    element at its slot in that example's prompt (run.elements over the hf adapter)."""
    r = _run(LEARNED, copier)["Learned"]
    assert r.status == "passed", r.reason
    assert all(c.iia.successes == c.iia.trials > 0 for c in r.claims if c.kind == "declared")
    assert r.training[0]["elements"] == ["O[1]", "O[2]", "O[3]"]
