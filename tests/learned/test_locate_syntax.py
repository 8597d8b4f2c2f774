"""`locate` statements: parsing, printing, expansion into cells, and their diagnostics."""

from __future__ import annotations

import pytest

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.syntax import ast as A
from causalspec.syntax.parser import parse
from causalspec.syntax.printer import print_spec

HF = """
model M {
  input a, b : bool
  var c : bool = a and b
  output o : bool = c
}
network n = hf "gpt2" { prompt "{a} and {b}" answer " {o}" position END = last position A1 = slot(a) }
align M to n as Out {
  o -> output
}
"""


def _check(body: str):
    ir = load_text(HF + body)
    return ir.checks[0]


def test_named_sweep_expands_layers_times_positions():
    chk = _check("check Out { locate c over resid.post[2..4] @ {A1, END} : das(k=2)  interchange c  "
                 "expect iia >= 0.9 }")
    [loc] = chk.locate
    assert loc.var == "c"
    assert loc.site_labels == ("resid.post[2]", "resid.post[3]", "resid.post[4]")
    assert loc.position_labels == ("A1", "END")
    assert len(loc.flat) == 6 and all(b.featurizer.kind == "das" and b.featurizer.k == 2 for b in loc.flat)
    assert [b.positions[0].name for b in loc.cells[0]] == ["A1", "END"]


def test_head_sweep_and_module_pattern():
    chk = _check("check Out { locate c over head[9.0..2].z @ END  interchange c  expect iia >= 0.9 }")
    assert chk.locate[0].site_labels == ("head[9.0].z", "head[9.1].z", "head[9.2].z")
    chk = _check('check Out { locate c over module "transformer.h.{0..1}.{attn,mlp}" output  interchange c  '
                 'expect iia >= 0.9 }')
    assert chk.locate[0].site_labels == tuple(f'module "transformer.h.{i}.{p}" output'
                                              for i in (0, 1) for p in ("attn", "mlp"))
    assert chk.locate[0].position_labels == ("all",)


@pytest.mark.parametrize("body, code", [
    ("check Out { locate c over resid.post[4..2] @ END  interchange c  expect iia >= 0.9 }", "E0711"),
    ('check Out { locate c over module "h.{2..1}" output  interchange c  expect iia >= 0.9 }', "E0711"),
    ('check Out { locate c over module "h.{a,,b}" output  interchange c  expect iia >= 0.9 }', "E0711"),
    ("check Out { locate c over resid.post[0..1] @ END locate c over resid.post[2] @ END interchange c "
     "expect iia >= 0.9 }", "E0711"),
    ("check Out { locate q over resid.post[0..1] @ END  interchange c  expect iia >= 0.9 }", "E0203"),
    ("check Out { locate o over resid.post[0..1] @ END  interchange c  expect iia >= 0.9 }", "E0703"),
    ("check Out { locate c over resid.post[0..1] @ NOPE  interchange c  expect iia >= 0.9 }", None),
    ("check Out { locate c over resid.post[0..1] @ END  interchange c  train 0  expect iia >= 0.9 }", "E0704"),
])
def test_bad_sweeps_are_diagnosed(body, code):
    with pytest.raises(SpecError) as info:
        load_text(HF + body)
    codes = {d.code for d in info.value.diagnostics}
    if code is not None:
        assert code in codes, codes


def test_locate_round_trips_through_the_printer():
    text = HF + "check Out { locate c over resid.post[0..11] @ {A1, END} : das(k=1)  interchange c  " \
                "train 100 steps 5  expect iia >= 0.9 }"
    spec = parse(text, "x")
    again = parse(print_spec(spec), "y")
    assert again == spec
    loc = next(s for s in spec.items[-1].body if isinstance(s, A.Locate))
    assert loc.site.ranges == ((0, 11),) and loc.braced


def test_train_and_steps_are_check_settings():
    chk = _check("check Out { locate c over resid.post[1] @ END : das  interchange c  train 64 steps 7  "
                 "expect iia >= 0.9 }")
    assert (chk.train, chk.steps) == (64, 7)
