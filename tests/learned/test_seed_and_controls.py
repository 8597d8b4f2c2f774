"""Issue 11, items 1 and 3: one effective seed reaches every random choice of a check, and
the random controls are distributions of draws.

The planted-subspace net (causalspec.testing.planted) keeps these fast: a DAS featurizer
trains on it in a second or two.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from causalspec.cli import main
from causalspec.compile.seeds import derive_seed, effective_seed
from causalspec.score.results import draw_summary

from .conftest import write_spec

SEEDED_CHECK = """
align HierEq to planted as Rotated {
  WX -> module "layers.0" output : das(k=1)
  YZ -> module "layers.0" output : das(k=1)
  O  -> output : argmax
}
check Rotated {
  interchange WX, {WX, YZ}
  pairs 96 SEED
  train 256 steps 60
  controls random_subspace, random_init, heldout
  expect iia >= 0.5 each and control(random_subspace) <= 0.95
}
"""


def _strip(doc):
    """The report without what may differ between two identical runs: timings, and where the
    seed came from (`seed_source` says "--seed" for one and "spec" for the other)."""
    if isinstance(doc, dict):
        return {k: _strip(v) for k, v in doc.items() if k not in ("seconds", "seed_source")}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def _check_json(path, tmp_path, capsys, *flags) -> dict:
    out = tmp_path / "report.json"
    code = main(["check", str(path), "--json", str(out), "--retrain", "--artifacts", str(tmp_path / "art"), *flags])
    capsys.readouterr()
    assert code in (0, 1)
    return json.loads(out.read_text(encoding="utf-8"))["checks"][0]


def test_seed_flag_and_spec_seed_give_identical_reports(planted_dir, tmp_path, capsys):
    # fails on the old main: --seed changed only the pairs; training, the random subspace and
    # the random re-initialisation kept the spec's seed 0
    path = write_spec(planted_dir, "seeded.cspec", SEEDED_CHECK.replace("SEED", "seed 0"))
    by_flag = _check_json(path, tmp_path, capsys, "--seed", "1")
    path.write_text(path.read_text().replace("pairs 96 seed 0", "pairs 96 seed 1"))
    by_spec = _check_json(path, tmp_path, capsys)
    assert by_flag["seed"] == by_spec["seed"] == 1
    assert by_flag["seed_source"] == "--seed" and by_spec["seed_source"] == "spec"
    assert by_flag["status"] != "error", by_flag["reason"]
    names = [c["name"] for c in by_flag["controls"]]
    assert names == ["random_subspace", "random_init", "heldout"]
    assert _strip(by_flag) == _strip(by_spec)
    # and the seed does reach them: another seed trains and draws differently
    path.write_text(path.read_text().replace("pairs 96 seed 1", "pairs 96 seed 2"))
    other = _check_json(path, tmp_path, capsys)
    assert other["training"][0]["loss"] != by_spec["training"][0]["loss"]
    assert other["controls"][0]["seeds"] != by_spec["controls"][0]["seeds"]


def test_report_states_the_effective_seed_and_its_source(planted_dir, tmp_path, capsys):
    path = write_spec(planted_dir, "seeded_text.cspec", SEEDED_CHECK.replace("SEED", ""))
    code = main(["check", str(path), "--seed", "3", "--artifacts", str(tmp_path / "art")])
    text = capsys.readouterr().out
    assert code in (0, 1)
    assert "(seed 3)" in text and "seed 3 from --seed" in text
    assert "seed 0" not in text  # no stream of the check kept the spec's default seed
    code = main(["check", str(path), "--artifacts", str(tmp_path / "art")])
    assert "seed 0 (the default)" in capsys.readouterr().out


def test_seed_derivation_is_stable_and_documented():
    # the numbers docs/language.md states
    assert derive_seed(0, "random_subspace/0") == derive_seed(0, "random_subspace/0")
    assert len({derive_seed(0, f"random_subspace/{d}") for d in range(50)}) == 50
    assert derive_seed(0, "random_init/0") != derive_seed(1, "random_init/0")
    assert 0 <= derive_seed(12345, "x") < 2 ** 63
    assert effective_seed(None, 4, True).source == "spec" and effective_seed(7, 4).value == 7
    assert effective_seed(None, 0, False).source == "default"


# ───────────────────────── controls are distributions ─────────────────────────

CHANCE_CHECK = """
align HierEq to planted as Wide {
  WX -> module "layers.0" output : basis("wide.safetensors")
  O  -> output : argmax
}
check Wide {
  interchange WX
  pairs 256 seed 0
  controls CONTROLS
  expect iia >= 0.9 and control(random_subspace) <= 0.6
}
"""


def _wide_basis(folder, k: int) -> None:
    """A fixed k-dim basis containing the planted WX direction: the claim is true. A random
    k-dim subspace of the 40 dims captures a large share of that direction by chance, so
    single draws land on both sides of the bound."""
    import torch
    from safetensors.torch import save_file

    from causalspec.testing.planted import planted_subspaces

    wx = planted_subspaces()["WX"].double()
    g = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.cat([wx, torch.randn(40, k - 1, generator=g, dtype=torch.float64)], dim=1))
    save_file({"basis": q.float().contiguous()}, str(folder / "wide.safetensors"))


def test_random_subspace_is_a_distribution_of_draws(planted_dir, tmp_path):
    from causalspec.claims.runner import CheckOptions, run_checks
    from causalspec.semantics.analyse import load

    _wide_basis(planted_dir, 20)
    path = write_spec(planted_dir, "chance.cspec", CHANCE_CHECK.replace("CONTROLS", "random_subspace(n=24)"))
    [r] = run_checks(load(path), CheckOptions())
    [ctl] = r.controls
    assert ctl.n_draws == 24 and len(ctl.draws[0]) == 24 and len(set(ctl.seeds)) == 24
    draws = [d for d in ctl.draws[0] if d is not None]
    # the case is built so that one draw passes or fails the bound by chance ...
    assert min(draws) <= 0.6 < max(draws), draws
    # ... and the verdict reads the documented statistic of all of them: the mean
    summary = draw_summary(ctl.draws[0])
    assert ctl.values[0] == pytest.approx(np.mean(draws)) == pytest.approx(summary["mean"])
    assert summary["p90"] == pytest.approx(np.percentile(draws, 90)) and summary["max"] == max(draws)
    cond = next(c for c in r.conditions if c.metric == "control")
    assert cond.value == pytest.approx(summary["mean"]) and "mean of 24 draw(s)" in cond.detail
    doc = ctl.to_dict()
    assert doc["statistic"] == "mean" and doc["n_draws"] == 24
    assert doc["sets"][0]["draws"] == ctl.draws[0] and doc["sets"][0]["distribution"]["p90"] == summary["p90"]


def test_control_draws_are_shown_in_the_report(planted_dir, tmp_path, capsys):
    _wide_basis(planted_dir, 20)
    path = write_spec(planted_dir, "chance_text.cspec", CHANCE_CHECK.replace("CONTROLS", "random_subspace"))
    main(["check", str(path)])
    text = capsys.readouterr().out
    assert "10 draw(s)" in text and "p90" in text and "max" in text  # the default n is 10


@pytest.mark.parametrize("controls, message", [
    ("random_subspace(n=0)", "`n` of control `random_subspace` must be a whole number"),
    ("random_subspace(k=3)", "takes one argument, `n`"),
    ("heldout(n=2)", "control `heldout` takes no arguments"),
    ("random_init(n=2.5)", "must be a whole number"),
])
def test_bad_control_arguments_are_located(planted_dir, controls, message, capsys):
    path = write_spec(planted_dir, "bad_controls.cspec", SEEDED_CHECK.replace("SEED", "").replace(
        "controls random_subspace, random_init, heldout", f"controls {controls}").replace(
        " and control(random_subspace) <= 0.95", ""))
    code = main(["check", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "E0712" in err and message in err, err


def test_the_pytest_flag_is_named_as_the_seed_source(planted_dir):
    from causalspec.claims.runner import CheckOptions, run_checks
    from causalspec.semantics.analyse import load

    _wide_basis(planted_dir, 20)
    path = write_spec(planted_dir, "chance_flag.cspec", CHANCE_CHECK.replace("CONTROLS", "random_subspace(n=2)"))
    [r] = run_checks(load(path), CheckOptions(seed=4, seed_flag="--causalspec-seed"))
    assert (r.seed, r.seed_source) == (4, "--causalspec-seed")
    [ctl] = r.controls
    assert ctl.seeds == [derive_seed(4, "random_subspace/0"), derive_seed(4, "random_subspace/1")]
    assert "seed 4" in ctl.detail
