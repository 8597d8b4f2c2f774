"""Build this example's files: the planted hierarchical-equality net's weights
(`planted.safetensors`) and its ground-truth SAE in SAELens's format (`sae_layer0/`).

    python examples/sae_latents/make_sae.py

The net is `causalspec.testing.planted` (WX and YZ each carried by one rotated direction of
`layers.0`'s output); the SAE's latent 0 decodes along WX's direction, latent 1 along YZ's, and
± pairs of orthonormal directions cover the rest (`causalspec.testing.sae.planted_sae`).
"""

from __future__ import annotations

from pathlib import Path

from causalspec.testing.planted import save_planted
from causalspec.testing.sae import planted_sae

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    save_planted(HERE / "planted.safetensors")
    planted_sae(HERE / "sae_layer0")
    print(f"wrote {HERE / 'planted.safetensors'} and {HERE / 'sae_layer0'}")
