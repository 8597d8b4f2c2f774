"""`Results.to_dataframe()` says what each row's IIA means: the metric (classes, or values within the
check's tolerance), the tolerance itself, and a learned featurizer's training-pair IIA."""

from __future__ import annotations

import pytest

import causalspec
import causalspec.testing.fraction as frac
import causalspec.testing.planted as planted
from causalspec.api.results import DATAFRAME_COLUMNS

REAL = f"""
model Frac {{
  const N = 4
  domain Tok = enum {{a, b}}
  input t[1..N], x : Tok
  var frac[i in 1..N] : real = mean(j in 1..i : t[j] == x)
  output O : real = frac[N]
}}
network net = torch "{frac.__file__}:build" weights "frac.safetensors" {{
  encode "{frac.__file__}:encode"
  output : value
}}
align Frac to net as A {{
  frac[4] -> module "prefix" output @ 4 : [0:1]
  O -> output @ 4
}}
check A {{
  interchange frac[4]
  pairs 64 seed 3
  expect iia >= 0.95 within 0.01
}}
"""

DISCRETE = f"""
model HierEq {{
  domain Obj = int 0..19
  input W, X, Y, Z : Obj
  var WX : bool = W == X
  var YZ : bool = Y == Z
  output O : bool = WX == YZ
  sample balanced O
}}
network planted = torch "{planted.__file__}:build_planted" weights "planted.safetensors" {{
  encode "{planted.__file__}:encode"
}}
align HierEq to planted as Learned {{
  WX -> module "layers.0" output : das(k=1)
  O -> output
}}
check Learned {{
  interchange WX
  pairs 64 seed 0
  train 256
  steps 60
  expect iia >= 0.5
}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frame")
    frac.save(tmp / "frac.safetensors")
    planted.save_planted(tmp / "planted.safetensors")
    return tmp


def test_a_real_check_rows_say_values_within_its_tolerance(folder):
    pytest.importorskip("pandas")
    frame = causalspec.loads(REAL, base_dir=folder).check(progress=False).to_dataframe()
    assert list(frame.columns) == list(DATAFRAME_COLUMNS)
    row = frame.iloc[0]
    assert (row["metric"], row["tolerance"]) == ("iia_within", 0.01)
    assert row["iia"] == 1.0
    assert row["train_iia"] is None or row["train_iia"] != row["train_iia"]  # None (NaN in a float column)


def test_a_discrete_learned_check_rows_say_classes_and_the_training_iia(folder):
    pytest.importorskip("pandas")
    results = causalspec.loads(DISCRETE, base_dir=folder).check(progress=False)
    frame = results.to_dataframe()
    row = frame.iloc[0]
    assert row["metric"] == "iia" and row["tolerance"] is None
    claim = results["Learned"].claims[0]
    assert claim.train_iia is not None and row["train_iia"] == claim.train_iia.estimate
