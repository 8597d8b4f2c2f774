"""An SAE trained here, for a few seconds, on the planted net's layers.0 activations: the
folder loads, a check through it runs, and its report is honest about the SAE's fidelity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.run.sae import SAEPatch, explained_variance
from causalspec.semantics.analyse import load
from causalspec.semantics.featurizers import load_sae
from causalspec.testing.planted import build_planted
from causalspec.testing.sae import train_sae, write_sae

from .conftest import write_spec

BODY = '''
align HierEq to planted as Out {
  O -> output : argmax
}
check Out as FindWX {
  locate WX over latents of module "layers.0" output : sae("trained")
  interchange WX
  pairs 128 seed 0
  expect iia >= 0.9
}
'''


def layer0_activations(n: int, seed: int = 0) -> torch.Tensor:
    net = build_planted()
    ids = torch.randint(0, 20, (n, 4), generator=torch.Generator().manual_seed(seed))
    # half the rows with W == X and half with Y == Z, as the balanced sampler draws them
    ids[: n // 2, 1] = ids[: n // 2, 0]
    ids[n // 4: 3 * n // 4, 3] = ids[n // 4: 3 * n // 4, 2]
    with torch.no_grad():
        return net.layers[0](net.embed(ids).flatten(1))  # [n, 40]


@pytest.fixture(scope="module")
def trained(sae_dir):
    acts = layer0_activations(2048)
    params = train_sae(acts, 48, steps=300, l1=1e-3)
    folder = write_sae(sae_dir / "trained", params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"],
                       apply_b_dec_to_input=True)
    return folder, acts


def test_trained_sae_loads_and_reconstructs(trained):
    folder, acts = trained
    w = load_sae(folder)
    assert w.config.apply_b_dec_to_input and w.config.d_sae == 48
    fve = explained_variance(acts, SAEPatch.from_weights(w, []))
    assert 0.5 < fve <= 1.0


def test_check_through_a_trained_sae_reports_its_fidelity(trained, sae_dir, tmp_path):
    folder, acts = trained
    (r,) = run_checks(load(write_spec(sae_dir, "trained.cspec", BODY)), CheckOptions(artifacts=str(tmp_path)))
    assert r.status in ("passed", "failed"), r.reason  # it ran; the verdict is the SAE's to earn
    search = r.sae["latent_search"]
    iias = [x["iia"] for x in search["ranking"] if x["iia"] is not None]
    assert iias == sorted(iias, reverse=True) and len(search["ranking"]) == 48
    assert search["das"]["k"] == len(search["chosen"])
    (fid,) = r.sae["fidelity"]
    # the reported fidelity is the SAE's own on these inputs: close to what it explains on fresh ones
    ours = explained_variance(acts, SAEPatch.from_weights(load_sae(folder), []))
    assert fid["variance_explained"] == pytest.approx(ours, abs=0.1)
    assert 0.0 <= fid["spliced_accuracy"] <= 1.0 and fid["inputs"] == r.unique_inputs
    (comp,) = r.sae["error_term_comparison"]
    assert comp["error_base"]["estimate"] == r.claims[0].iia.estimate
    assert np.isfinite(comp["error_source"]["estimate"])
    assert comp["warned"] == (abs(comp["difference"]) > r.sae["margin"])
