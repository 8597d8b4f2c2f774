"""SAELens-format folders: the test helper writes them, `sae(…)` reads them, and the patch
follows SAELens's encode/decode for each architecture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from causalspec.run.sae import SAEPatch, explained_variance
from causalspec.semantics.featurizers import (SAE, FeaturizerError, SAEFolderError, hook_mismatch, hook_site,
                                              load_sae, read_sae_config)
from causalspec.semantics.site_kinds import SiteAddress
from causalspec.testing.planted import rotation
from causalspec.testing.sae import planted_directions, train_sae, write_sae


def _random_sae(folder, d_in=6, d_sae=10, **kw):
    g = torch.Generator().manual_seed(0)
    return write_sae(folder, torch.randn(d_in, d_sae, generator=g), torch.randn(d_sae, generator=g),
                     torch.randn(d_sae, d_in, generator=g), torch.randn(d_in, generator=g), **kw)


@pytest.mark.parametrize("arch, extra", [("standard", {}), ("jumprelu", {"threshold": torch.full((10,), 0.3)}),
                                         ("topk", {"k": 3})])
def test_helper_folders_load_and_encode_like_saelens(tmp_path, arch, extra):
    folder = _random_sae(tmp_path / arch, architecture=arch, apply_b_dec_to_input=True, **extra)
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == arch and cfg["d_in"] == 6 and cfg["d_sae"] == 10
    w = load_sae(folder)
    assert w.config.architecture == arch and w.W_enc.shape == (6, 10) and w.W_dec.shape == (10, 6)
    patch = SAEPatch.from_weights(w, [])
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    pre = (x - torch.from_numpy(w.b_dec)) @ torch.from_numpy(w.W_enc) + torch.from_numpy(w.b_enc)
    if arch == "standard":
        want = torch.relu(pre)
    elif arch == "jumprelu":
        want = torch.where(pre > 0.3, pre, torch.zeros_like(pre)).clamp_min(0)
    else:
        top = pre.topk(3, dim=-1)
        want = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    torch.testing.assert_close(patch.encode(x), want)
    if arch == "topk":
        assert int((patch.encode(x) != 0).sum(-1).max()) <= 3


def test_older_saelens_field_names(tmp_path):
    folder = _random_sae(tmp_path / "old", hook_name=None,
                         extra_cfg={"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 2},
                                    "hook_name": "blocks.3.hook_resid_post"})
    cfg_path = folder / "cfg.json"
    raw = json.loads(cfg_path.read_text())
    del raw["architecture"]
    cfg_path.write_text(json.dumps(raw))
    cfg = read_sae_config(folder)
    assert cfg.architecture == "topk" and cfg.k == 2 and cfg.hook_name == "blocks.3.hook_resid_post"


@pytest.mark.parametrize("change, message", [
    ({"architecture": "gated"}, "not supported"),
    ({"normalize_activations": "expected_average_only_in"}, "normalize_activations"),
    ({"d_in": "six"}, "d_in"),
])
def test_unsupported_configs_say_why(tmp_path, change, message):
    folder = _random_sae(tmp_path / "s", extra_cfg=change)
    with pytest.raises(SAEFolderError, match=message):
        load_sae(folder)


def test_error_term_policies(tmp_path):
    w = load_sae(_random_sae(tmp_path / "s"))
    patch = SAEPatch.from_weights(w, [2, 5])
    g = torch.Generator().manual_seed(3)
    base, src = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    fb, fs = patch.encode(base), patch.encode(src)
    mixed = fb.clone()
    mixed[:, [2, 5]] = fs[:, [2, 5]]
    err_b = base - patch.decode(fb)
    err_s = src - patch.decode(fs)
    torch.testing.assert_close(patch(base, src), patch.decode(mixed) + err_b)
    # with the base's error term the patch is the base plus the latents' change along their decoder rows
    torch.testing.assert_close(patch(base, src), base + (fs - fb)[:, [2, 5]] @ patch.W_dec[[2, 5]])
    torch.testing.assert_close(patch.with_(error="source")(base, src), patch.decode(mixed) + err_s)
    torch.testing.assert_close(patch.with_(latents=(), error="none")(base, base), patch.decode(fb))
    assert patch.with_(latents=())(base, src).allclose(base, atol=1e-5)  # no latent: nothing changes


def test_width_mismatch_names_the_folder(tmp_path):
    folder = _random_sae(tmp_path / "w")
    feat = SAE("w", folder, (1,))
    with pytest.raises(FeaturizerError, match=r"d_in=6.*cfg\.json.*width 40"):
        feat.weights(40)
    with pytest.raises(FeaturizerError, match="latent.*12"):
        SAE("w", folder, (12,)).weights(6)


def test_hook_names():
    assert hook_site("blocks.3.hook_resid_post") == "resid.post[3]"
    assert hook_site("blocks.0.hook_mlp_out") == "mlp.out[0]"
    assert hook_site("hook_embed") == "embed"
    assert hook_mismatch("blocks.3.hook_resid_post", SiteAddress("resid.post", 3)) is None
    assert "blocks.2.hook_resid_post" in hook_mismatch("blocks.2.hook_resid_post", SiteAddress("resid.post", 3))
    assert hook_mismatch("layers.0", SiteAddress("module", module_path="layers.0", module_io="output")) is None
    assert hook_mismatch("layers.1", SiteAddress("module", module_path="layers.0", module_io="output"))
    assert hook_mismatch(None, SiteAddress("resid.post", 3)) is None


def test_planted_directions_reconstruct_exactly():
    dec = planted_directions()
    # the planted net's layers.0 output is Q h with h >= 0: its WX and YZ coordinates are >= 0
    h = torch.relu(torch.randn(50, 40, generator=torch.Generator().manual_seed(0)))
    x = h @ rotation().T
    f = torch.relu(x @ dec.T)
    torch.testing.assert_close(f @ dec, x, atol=1e-4, rtol=1e-4)


def test_trained_sae_helper_reduces_error():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(256, 3, generator=g) @ torch.randn(3, 8, generator=g)  # rank 3 in 8 dims
    params = train_sae(acts, 16, steps=200)
    patch = SAEPatch(params["W_enc"], params["b_enc"], params["W_dec"], params["b_dec"], None, "standard", None,
                     True, torch.zeros(0, dtype=torch.long))
    assert explained_variance(acts, patch) > 0.8
    assert np.isfinite(explained_variance(acts, patch))
