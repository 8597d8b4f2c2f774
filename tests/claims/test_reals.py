"""Real-valued variables end to end (issue 13): a network computing a mean passes an alignment
claim `within` a tolerance, and fails where its value is off by more than the tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest

import causalspec.testing.fraction as frac
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text

MODEL = """
model Frac {
  const N = 4
  domain Tok = enum {a, b}
  input t[1..N], x : Tok
  var frac[i in 1..N] : real = mean(j in 1..i : t[j] == x)
  output O : real = frac[N]
}
"""


def spec(builder: str = "build", tol: str = "0.01", weights: str = "frac.safetensors",
         site: str = 'module "prefix" output @ 4 : [0:1]',
         featurizer: str = "", extra: str = "", output: str = "O -> output @ 4") -> str:
    return MODEL + f"""
network net = torch "{frac.__file__}:{builder}" weights "{weights}" {{
  encode "{frac.__file__}:encode"
  output : value
}}
align Frac to net as A {{
  frac[4] -> {site}{featurizer}
  {output}
}}
check A {{
  interchange frac[4]
  pairs 256 seed 3
  {extra}
  expect iia >= 0.95 within {tol}
}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("frac")
    frac.save(tmp / "frac.safetensors")
    frac.save(tmp / "shifted.safetensors", frac.build_shifted())  # the shift is the head's bias
    return tmp


def run(text: str, folder: Path):
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    (result,) = run_checks(ir, CheckOptions())
    return result


def test_a_network_computing_the_mean_passes_within_the_tolerance(folder):
    r = run(spec(), folder)
    assert r.status == "passed", r.reason
    (claim,) = r.claims
    assert claim.kept == claim.sampled == 256
    assert claim.iia.successes == 256
    assert claim.changed > 0 and claim.moved > 0  # interventions move the output, as predicted


def test_a_network_off_by_more_than_the_tolerance_under_intervention_fails(folder):
    r = run(spec("build_leaky", tol="0.05"), folder)
    assert r.status == "failed", r.reason
    (claim,) = r.claims
    assert claim.kept == 256  # right on every clean input: only the interventions are off
    assert claim.moved > 0
    # patched output 0.5·source + 0.5·base: within 0.05 of the source's value only where the two agree
    assert claim.changed > 100 and claim.iia.successes == 256 - claim.changed
    example = claim.counterexamples[0]  # the network's float where it matches no model value
    assert isinstance(example["expected"], str) and "/" in example["expected"]
    assert isinstance(example["predicted"], (float, str))
    # a tolerance wide enough to cover its error covers two model values (1/4 apart): an error, not a pass
    wide = run(spec("build_leaky", tol="0.5"), folder)
    assert wide.status == "error" and "within the tolerance 1/2" in wide.reason and "two values" in wide.reason


def test_a_network_shifted_by_more_than_the_tolerance_is_wrong_on_its_inputs(folder):
    r = run(spec("build_shifted", tol="0.05", weights="shifted.safetensors"), folder)
    assert r.status == "failed"
    (claim,) = r.claims
    assert claim.kept == 0 and claim.dropped == {"network wrong on the base input": 256}
    assert run(spec("build_shifted", tol="0.11", weights="shifted.safetensors"), folder).status == "passed"


def test_zero_tolerance_passes_against_exactly_representable_floats(folder):
    # frac[4] is a multiple of 1/4: the network's float32 output is the model's Fraction exactly
    r = run(spec(tol="0"), folder)
    assert r.status == "passed", r.reason
    assert r.claims[0].iia.successes == 256
    assert r.tolerance == 0.0


def test_the_report_states_the_tolerance(folder):
    from causalspec.report.json_report import to_json
    from causalspec.report.terminal import headline

    r = run(spec(tol="0.01"), folder)
    doc = to_json([r], ["spec.cspec"])
    (check,) = doc["checks"]
    assert check["tolerance"] == 0.01
    assert check["conditions"][0]["text"] == "iia >= 0.95 each within 0.01"
    assert "within 0.01 of the model's" in headline(r)
    from causalspec.report.junit import dumps, to_junit

    assert "<property name=\"tolerance\" value=\"0.01\"" in dumps(to_junit([r]))


def test_an_output_that_is_not_one_number_per_example_is_a_check_error_naming_the_shape(folder):
    r = run(spec("build_wide"), folder)
    assert r.status == "error"
    assert "expected a float output [" in r.reason and ", 2)" in r.reason and "`output : value`" in r.reason


def test_non_finite_values_follow_the_non_finite_rule(folder):
    r = run(spec("build_nan"), folder)
    assert r.status == "error" and "NaN" in r.reason


def test_das_trains_with_a_regression_loss_on_a_real_output_and_passes(folder):
    # frac[4] lives in one direction of `mix`'s 4 dimensions (dimension 2, negated); das(k=1) finds it
    text = spec(site='module "mix" output @ 4', featurizer=" : das(k=1)", tol="0.05",
                extra="pool 16\n  train 512\n  steps 150")
    r = run(text, folder)
    assert r.status == "passed", r.reason
    (claim,) = r.claims
    assert claim.iia.successes >= 0.95 * claim.iia.trials and claim.moved > 0
    (training,) = r.training
    assert training["loss"][-1] < training["loss"][0] / 10  # the squared error fell while training
    # the same training at position 3 (where frac[3] lives, not frac[4]) cannot move the output
    elsewhere = run(text.replace('"mix" output @ 4 :', '"mix" output @ 3 :'), folder)
    assert elsewhere.status == "failed" and elsewhere.claims[0].moved == 0


@pytest.mark.parametrize("builder", ["build_last", "build_flat"])
def test_a_batch_or_batch_by_one_output_is_the_value_without_a_position(folder, builder):
    r = run(spec(builder, output="O -> output"), folder)
    assert r.status == "passed", r.reason
    assert r.claims[0].moved > 0


def test_boundless_trains_with_the_regression_loss_too(folder):
    text = spec(site='module "mix" output @ 4', featurizer=" : boundless", tol="0.05",
                extra="pool 16\n  train 512\n  steps 150")
    r = run(text, folder)
    assert r.status == "passed", r.reason
    assert r.training[0]["loss"][-1] < r.training[0]["loss"][0]


FAMILY_OUTPUT = """
model Frac {
  const N = 4
  domain Tok = enum {a, b}
  input t[1..N], x : Tok
  var frac[i in 1..N] : real = mean(j in 1..i : t[j] == x)
  output O[i in 1..N] : real = frac[i]
}
network net = torch "%s:build" weights "%s" {
  encode "%s:encode"
  output : value
}
align Frac to net as A {
  frac[i] -> module "prefix" output @ i : [0:1]
  O[i] -> output @ i
}
check A {
  interchange frac
  pairs 128 seed 3
  expect iia >= 0.95 within 0.01
}
"""


@pytest.mark.parametrize("weights, verdict", [("frac.safetensors", "passed"), ("shifted.safetensors", "failed")])
def test_a_real_family_output_is_checked_at_every_position_within_the_tolerance(folder, weights, verdict):
    """Reals meet per-position outputs: `O[i] -> output @ i` reads a value at each position and
    matches it within the tolerance; a network off by more than the tolerance fails."""
    result = run(FAMILY_OUTPUT % (frac.__file__, weights, frac.__file__), folder)
    assert result.status == verdict, result.reason
    elements = [c for c in result.claims if c.kind == "element"]
    assert len(elements) == 4
    if verdict == "passed":
        assert all(c.iia.successes == c.kept > 0 and c.moved > 0 for c in elements)


def test_das_per_element_trains_the_summed_regression_loss_on_a_real_family_output(folder):
    """`O[i] -> output @ i` on a real family with `das`: one training over every element (the squared
    errors summed over the positions), scored per element within the tolerance."""
    text = (FAMILY_OUTPUT % (frac.__file__, "frac.safetensors", frac.__file__)).replace(
        'frac[i] -> module "prefix" output @ i : [0:1]', 'frac[i] -> module "mix" output @ i : das(k=1)').replace(
        "interchange frac\n", "interchange frac[4]\n  pool 16\n  train 512\n  steps 150\n").replace("0.01", "0.05")
    result = run(text, folder)
    assert result.status == "passed", result.reason
    (training,) = result.training
    assert training["elements"] == ["O[1]", "O[2]", "O[3]", "O[4]"]
    assert training["loss"][-1] < training["loss"][0] / 10
    rows = {c.label: c for c in result.claims if c.kind == "element"}
    assert rows["{frac[4]} → O[4]"].moved > 0 and rows["{frac[4]} → O[1]"].changed == 0
    # each element's training-pair IIA is scored in that element's own value table (the codes of the
    # training run's table are re-coded), so it is as good as the held-out IIA there
    assert all(c.train_iia is not None and c.train_iia.estimate >= 0.95 for c in rows.values())


def test_the_artifact_key_names_the_output_position(folder):
    """Featurizers trained reading the output at position 4 are not reused for a check that reads it
    at position 3 (the key once named only the output, not where it is read)."""
    text = spec(site='module "mix" output @ 4', featurizer=" : das(k=1)", tol="0.05",
                extra="pool 16\n  train 256\n  steps 40")
    at4 = run(text, folder)
    at3 = run(text.replace("O -> output @ 4", "O -> output @ 3"), folder)
    assert at4.training[0]["key"] != at3.training[0]["key"]
    assert not at3.training[0]["reused"]
