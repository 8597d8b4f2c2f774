"""Issue 11, item 2: a learned featurizer's training split says how much it really holds, is
refused below a floor, and the held-out gap is always reported.

The planted-subspace net reads objects 0..19; a model over objects 0..2 gives it an input
space of 3**4 = 81 inputs, so the check's held-out pool (512 draws) takes nearly all of them
and the training split is left with a handful.
"""

from __future__ import annotations

import json

from causalspec.claims.procedure import MIN_TRAIN_INPUTS, MIN_TRAIN_PAIRS
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.cli import main
from causalspec.semantics.analyse import load

from .conftest import network

SMALL_MODEL = """
model HierEq {
  domain Obj = int 0..2
  input  W, X, Y, Z : Obj ~ uniform
  var    WX : bool = W == X
  var    YZ : bool = Y == Z
  output O  : bool = WX == YZ
  sample balanced O
}
"""

CHECK = """
align HierEq to planted as Rotated {
  WX -> module "layers.0" output : das(k=1)
  YZ -> module "layers.0" output : das(k=1)
  O  -> output : argmax
}
check Rotated {
  interchange WX
  pairs 512 seed 0 POOL
  train 512 steps 60
  expect iia >= 0.5
}
"""


def _spec(folder, name: str, pool: str = ""):
    path = folder / name
    path.write_text(SMALL_MODEL + network() + CHECK.replace("POOL", pool), encoding="utf-8")
    return path


def test_a_split_below_the_floor_is_an_error_that_names_the_fix(planted_dir, tmp_path):
    # fails on the old main: training ran on the 3 inputs left (6 distinct pairs), and the check
    # got a verdict while the report said "512 training pairs"
    [r] = run_checks(load(_spec(planted_dir, "small.cspec", "pool 200")), CheckOptions(artifacts=str(tmp_path)))
    assert r.status == "error", (r.status, r.reason)
    assert "has 3 distinct input(s) and 6 distinct pair(s) for {WX}" in r.reason
    assert f"the floor is {MIN_TRAIN_INPUTS} distinct inputs and {MIN_TRAIN_PAIRS} distinct pairs" in r.reason
    assert "Lower `pool` (now 200) or `pairs`" in r.reason
    assert not r.training  # nothing was trained on it


def test_a_space_the_held_out_pairs_use_up_is_an_error_not_a_silent_overlap(planted_dir, tmp_path):
    # the old main trained on the held-out inputs themselves and only warned
    [r] = run_checks(load(_spec(planted_dir, "all_held.cspec")), CheckOptions(artifacts=str(tmp_path)))
    assert r.status == "error", (r.status, r.reason)
    assert "use every input of the space (81 distinct)" in r.reason and "Lower `pool` (now 512)" in r.reason


def test_the_report_gives_distinct_training_inputs_pairs_and_the_heldout_gap(planted_dir, tmp_path, capsys):
    path = _spec(planted_dir, "small_pool.cspec", "pool 24")  # a small held-out pool leaves most inputs to train on
    out = tmp_path / "r.json"
    code = main(["check", str(path), "--json", str(out), "--artifacts", str(tmp_path / "a")])
    text = capsys.readouterr().out
    assert code in (0, 1)
    [check] = json.loads(out.read_text())["checks"]
    assert check["status"] != "error", check["reason"]
    [t] = check["training"]
    assert MIN_TRAIN_INPUTS <= t["train_inputs"] <= 81
    assert t["train_distinct_pairs"]["{WX}"] >= MIN_TRAIN_PAIRS
    assert t["train_distinct_pairs"]["{WX}"] < t["train_pairs_used"]  # drawn with replacement from a small space
    assert f"over {t['train_inputs']} distinct inputs" in text
    assert f"({t['train_distinct_pairs']['{WX}']} distinct)" in text
    # the held-out gap, though the check does not list the `heldout` control
    [gap] = t["heldout_gap"]
    assert gap["label"] == "{WX}" and gap["gap"] == gap["train"] - gap["heldout"]
    assert "held-out gap (train IIA vs held-out IIA): {WX}" in text
    assert not check["controls"]
