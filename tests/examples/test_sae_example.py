"""The shipped SAE example (examples/sae_latents) analyses cleanly and its SAE folder loads."""

from __future__ import annotations

from pathlib import Path

from causalspec.semantics.analyse import load
from causalspec.semantics.featurizers import SAE, load_sae

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sae_latents"


def test_example_analyses_without_warnings_and_its_sae_loads():
    ir = load(EXAMPLE / "sae_latents.cspec")
    assert not ir.warnings
    (b,) = ir.alignments["Latents"].variables["WX"]
    assert isinstance(b.featurizer, SAE) and b.featurizer.latents == (0,)
    assert ir.checks[1].latent_search is not None
    w = load_sae(EXAMPLE / "sae_layer0")
    assert (w.config.d_in, w.config.d_sae, w.config.hook_name) == (40, 78, "layers.0")
