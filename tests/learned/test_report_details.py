"""Issue 11, "Also": the low keep-rate hint, positions printed as themselves, and the
no-intervention baseline of `locate` tables and heatmaps."""

from __future__ import annotations

import json

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.cli import main
from causalspec.semantics.analyse import load, load_text

from .conftest import write_spec


def test_a_low_keep_rate_prints_a_hint_with_unpatched_predictions(planted_dir, capsys):
    # fails on the old main: the check only reported "no pair kept"
    spec = write_spec(planted_dir, "negated.cspec", """
model Negated {
  domain Obj = int 0..19
  input  W, X, Y, Z : Obj ~ uniform
  var    WX : bool = W == X
  var    YZ : bool = Y == Z
  output O  : bool = WX != YZ
  sample balanced O
}
align Negated to planted as Wrong {
  WX -> module "layers.0" output : [0:20]
  O  -> output : argmax
}
check Wrong {
  interchange WX
  pairs 64 seed 0
  expect iia >= 0.9
}
""")
    [r] = run_checks(load(spec), CheckOptions())
    [hint] = [w for w in r.warnings if "pairs of {WX} are kept" in w]
    assert "the prompt, the answer template or the tokenizer" in hint
    assert hint.count("-> network ") == 3 and "model " in hint  # three examples, prediction next to expectation
    main(["check", str(spec)])
    assert "unpatched predictions: W=" in capsys.readouterr().out


def test_a_fine_keep_rate_prints_no_hint(planted_dir):
    spec = write_spec(planted_dir, "right.cspec", """
align HierEq to planted as Right {
  WX -> module "layers.0" output : [0:20]
  O  -> output : argmax
}
check Right {
  interchange WX
  pairs 64 seed 0
  expect iia >= 0.0
}
""")
    [r] = run_checks(load(spec), CheckOptions())
    assert r.claims[0].keep_rate > 0.9 and not any("are kept" in w for w in r.warnings)


POSITIONS = """
model P {
  domain Name = enum {Mary, John, Tom}
  input  A, B : Name ~ uniform where A != B
  var    mover : Name = A
  output answer : Name = mover
}
network net = hf "gpt2" {
  prompt "When {A} and {B} went to the store, {B} gave a drink to"
  answer " {answer}"
  position END = last
}
align P to net as Out {
  answer -> output
}
check Out as Where {
  locate mover over resid.post[0..1] @ {3, 4..5, END} : das(k=1)
  interchange mover
  expect iia >= 0.1
}
"""


def test_integer_positions_print_as_themselves():
    # fails on the old main: both columns were labelled "index" (and the range "range")
    from causalspec.run.engine import binding_text
    from causalspec.run.train import learned_groups
    from causalspec.claims.locate import cell_alignment

    ir = load_text(POSITIONS)
    [check] = ir.checks
    loc = check.locate[0]
    assert loc.position_labels == ("3", "4..5", "END")
    binding = loc.cells[0][0]
    assert binding_text("mover", binding).endswith("@ 3 : das")
    [group] = learned_groups(cell_alignment(ir.alignments["Out"], "mover", binding), ["mover"])
    assert group.label.endswith("@ 3")


def test_locate_table_and_json_mark_the_baseline_and_positions(planted_dir, tmp_path, capsys):
    spec = write_spec(planted_dir, "sweep.cspec", """
align HierEq to planted as OutputOnly {
  O -> output : argmax
}
check OutputOnly as FindWX {
  locate WX over module "layers.{0..1}" output : [0:2]
  interchange WX
  pairs 128 seed 0
  expect iia >= 0.0
}
""")
    out = tmp_path / "sweep.json"
    assert main(["locate", str(spec), "--out", str(tmp_path), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    [sweep] = json.loads(out.read_text())["sweeps"]
    base = sweep["baseline"]["score"]
    assert 0 < base < 1 and set(sweep["baseline"]["iia"]) == {"{WX}"}
    assert "no intervention (baseline)" in text and f"no-intervention baseline {base:.3f}" in text
    assert "≤ baseline" in text  # a slice of layers.1's two units carries nothing of WX alone
    assert (tmp_path / "sweep.FindWX.locate.png").stat().st_size > 0
    # and through `check`, into the JSON report
    report = tmp_path / "check.json"
    main(["check", str(spec), "--json", str(report)])
    capsys.readouterr()
    [check] = json.loads(report.read_text())["checks"]
    assert check["locate"]["baseline"]["score"] == base
