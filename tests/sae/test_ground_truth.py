"""Ground truth: a hand-built SAE on the planted net whose latents 0 and 1 decode along the true
directions of WX and YZ (causalspec.testing.sae.planted_sae)."""

from __future__ import annotations

import json

import pytest

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.claims.sae_honesty import ERROR_TERM_MARGIN
from causalspec.report.json_report import dumps, to_json
from causalspec.semantics.analyse import load

from .conftest import write_spec

BODY = '''
align HierEq to planted as True {
  WX -> module "layers.0" output : sae("sae", latents=[0])
  YZ -> module "layers.0" output : sae("sae", latents=[1])
  O -> output : argmax
}
align HierEq to planted as Wrong {
  WX -> module "layers.0" output : sae("sae", latents=[2, 3, 40])
  O -> output : argmax
}
align HierEq to planted as Half {
  WX -> module "layers.0" output : sae("sae_half", latents=[0])
  O -> output : argmax
}
align HierEq to planted as Out {
  O -> output : argmax
}
check True {
  interchange WX, YZ
  pairs 128 seed 0
  expect iia >= 0.95 each
}
check Wrong {
  interchange WX
  pairs 128 seed 0
  expect iia >= 0.95
}
check Half {
  interchange WX
  pairs 128 seed 0
  expect iia >= 0.95
}
check Out as FindWX {
  locate WX over latents of module "layers.0" output : sae("sae")
  interchange WX
  pairs 128 seed 0
  expect iia >= 0.95
}
check Out as FindYZ {
  locate YZ over latents of module "layers.0" output : sae("sae")
  interchange YZ
  pairs 128 seed 0
  expect iia >= 0.95
}
'''


@pytest.fixture(scope="module")
def results(sae_dir, tmp_path_factory):
    path = write_spec(sae_dir, "truth.cspec", BODY)
    ir = load(path)
    out = run_checks(ir, CheckOptions(artifacts=str(tmp_path_factory.mktemp("art"))))
    return {r.name: r for r in out}


def test_true_latents_pass_at_one(results):
    r = results["True"]
    assert r.status == "passed", r.reason
    assert [c.iia.estimate for c in r.claims] == [1.0, 1.0]
    assert all(c.moved > 0 for c in r.claims)  # the intervention moved the output: an earned pass


def test_other_latents_fail(results):
    r = results["Wrong"]
    assert r.status == "failed"
    assert r.claims[0].iia.estimate < 0.7


def test_every_sae_check_reports_fidelity_and_error_term(results):
    for name in ("True", "Wrong", "Half", "FindWX"):
        sae = results[name].sae
        assert sae is not None and sae["error_term"] == "base"
        assert sae["fidelity"] and sae["error_term_comparison"], name
    true = results["True"].sae
    assert true["fidelity"][0]["variance_explained"] == pytest.approx(1.0, abs=1e-5)  # exact reconstruction
    assert true["fidelity"][0]["spliced_accuracy"] == 1.0
    for comp in true["error_term_comparison"]:  # nothing rides on the (zero) error term
        assert comp["difference"] == 0.0 and not comp["warned"]


def test_effect_riding_on_the_error_term_warns(results):
    r = results["Half"]
    comp = r.sae["error_term_comparison"][0]
    assert abs(comp["difference"]) > ERROR_TERM_MARGIN and comp["warned"]
    assert comp["error_base"]["estimate"] != comp["error_source"]["estimate"]
    assert any("rides on what the SAE does not explain" in w for w in r.warnings)
    fid = r.sae["fidelity"][0]
    assert fid["spliced_accuracy"] < fid["clean_accuracy"] == 1.0
    assert any("reconstruction spliced in" in w for w in r.warnings)


def test_error_term_comparison_in_json(results, tmp_path):
    data = json.loads(dumps(to_json(list(results.values()))))
    by_name = {c["name"]: c for c in data["checks"]}
    for name in ("True", "Half", "FindWX"):
        assert by_name[name]["sae"]["error_term_comparison"], name
        assert "variance_explained" in by_name[name]["sae"]["fidelity"][0]


@pytest.mark.parametrize("check, latent", [("FindWX", 0), ("FindYZ", 1)])
def test_latent_search_recovers_planted_latent(results, check, latent):
    r = results[check]
    search = r.sae["latent_search"]
    assert search["ranking"][0]["latent"] == latent
    assert search["chosen"] == [latent] and search["reached"]
    assert search["chosen_iia"] == 1.0
    assert search["das"]["k"] == 1 and search["das"]["iia"] is not None
    assert r.status == "passed", r.reason  # confirmed on fresh pairs
    assert r.claims[0].iia.estimate == 1.0
    assert any("over latents" in n and "fresh pairs" in n for n in r.notes)


def test_terminal_and_html_reports_show_the_sae_section(results):
    from causalspec.report.html import check_section
    from causalspec.report.terminal import check_text

    for name in ("True", "Half", "FindWX"):
        text = check_text(results[name], width=200)
        assert "error term kept" in text and "error term from source" in text, name
        assert "variance explained" in text and "SAE spliced in" in text
        page = check_section(results[name])
        assert "Sparse autoencoder" in page and "error term from source" in page
    half = check_text(results["Half"], width=200)
    assert "rides on the error term" in half
    find = check_text(results["FindWX"], width=200)
    assert "latent search at" in find and "smallest greedy set reaching 0.95: [0]" in find
    assert "das(k=1)" in find
