"""Sparse autoencoders in SAELens's on-disk format, for tests and examples.

`write_sae` writes a folder SAELens's `SAE.load_from_disk` reads and `sae("DIR", …)` reads:
`cfg.json` (SAELens ≥ 6 field names: `architecture`, `d_in`, `d_sae`, `apply_b_dec_to_input`,
`normalize_activations`, `metadata.hook_name`, `k` for top-k) and `sae_weights.safetensors`
(`W_enc` [d_in, d_sae], `b_enc`, `W_dec` [d_sae, d_in], `b_dec`, `threshold` for JumpReLU).

`planted_sae` is a hand-built SAE for the planted hierarchical-equality net
(`causalspec.testing.planted`) at `module "layers.0" output`: latent 0's decoder row is the
true direction of WX, latent 1's of YZ (`planted_subspaces`), and the rest of the space is
covered by ± pairs of orthonormal directions, so the SAE reconstructs every activation
exactly. `train_sae` fits a small ReLU SAE to activations for a few hundred steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from causalspec.testing.planted import WIDTH, planted_subspaces, rotation

HOOK = "layers.0"  # the planted net's site: module "layers.0" output
WX_LATENT, YZ_LATENT = 0, 1


def write_sae(folder: str | os.PathLike, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor,
              b_dec: torch.Tensor, *, architecture: str = "standard", threshold: torch.Tensor | None = None,
              k: int | None = None, hook_name: str | None = HOOK, apply_b_dec_to_input: bool = False,
              extra_cfg: dict | None = None) -> Path:
    """Write an SAELens-format folder (created if needed); returns its path."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    d_in, d_sae = int(W_enc.shape[0]), int(W_enc.shape[1])
    cfg: dict = {"architecture": architecture, "d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cpu",
                 "apply_b_dec_to_input": apply_b_dec_to_input, "normalize_activations": "none",
                 "reshape_activations": "none", "metadata": {"hook_name": hook_name, "model_name": "causalspec-test"}}
    if k is not None:
        cfg["k"] = int(k)
    cfg.update(extra_cfg or {})
    (path / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    if threshold is not None:
        tensors["threshold"] = threshold
    save_file({n: t.detach().float().contiguous().clone() for n, t in tensors.items()},
              str(path / "sae_weights.safetensors"))
    return path


def planted_directions() -> torch.Tensor:
    """Unit decoder directions `[d_sae, 40]` of `planted_sae`: WX, YZ, then ± pairs spanning the rest."""
    dirs = planted_subspaces()
    truth = torch.cat([dirs["WX"], dirs["YZ"]], dim=1).double()  # [40, 2]
    q = rotation().double()
    # the complement of the two true directions inside span(Q) = R^40
    proj = torch.eye(WIDTH, dtype=torch.float64) - truth @ truth.T
    u, s, _ = torch.linalg.svd(proj @ q)
    rest = u[:, : WIDTH - 2]  # [40, 38] orthonormal, orthogonal to both true directions
    rows = [truth.T, rest.T, -rest.T]
    return torch.cat(rows, dim=0).float()  # [2 + 76, 40]


def planted_sae(folder: str | os.PathLike, *, hook_name: str | None = HOOK, encoder_scale: float = 1.0) -> Path:
    """The ground-truth SAE of the planted net (see the module docstring). `encoder_scale` < 1 on
    the WX latent makes it read only part of its direction, so the rest of WX stays in the error
    term (a test of the error-term comparison: the source's WX then travels only with the
    source's error term)."""
    dec = planted_directions()  # [78, 40]
    enc = dec.T.clone()  # [40, 78]: latent j reads x · d_j, ReLU keeps the positive side
    enc[:, WX_LATENT] *= encoder_scale
    d_sae = dec.shape[0]
    return write_sae(folder, enc, torch.zeros(d_sae), dec, torch.zeros(WIDTH), hook_name=hook_name)


def train_sae(acts: torch.Tensor, d_sae: int, *, steps: int = 300, l1: float = 1e-3, lr: float = 1e-2,
              seed: int = 0) -> dict[str, torch.Tensor]:
    """A ReLU SAE fitted to activations `[n, d_in]` (Adam on MSE + l1·‖f‖₁, decoder rows kept at unit
    norm, as SAELens's standard SAE); returns its tensors for `write_sae`."""
    g = torch.Generator().manual_seed(seed)
    d_in = acts.shape[1]
    W_dec = torch.randn(d_sae, d_in, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    params = {"W_enc": W_dec.T.clone().requires_grad_(True), "b_enc": torch.zeros(d_sae, requires_grad=True),
              "W_dec": W_dec.requires_grad_(True), "b_dec": acts.mean(0).clone().requires_grad_(True)}
    opt = torch.optim.Adam(params.values(), lr=lr)
    x = acts.float()
    for _ in range(steps):
        f = torch.relu((x - params["b_dec"]) @ params["W_enc"] + params["b_enc"])
        xhat = f @ params["W_dec"] + params["b_dec"]
        loss = ((xhat - x) ** 2).sum(-1).mean() + l1 * f.abs().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            params["W_dec"] /= params["W_dec"].norm(dim=1, keepdim=True).clamp_min(1e-8)
    return {k: v.detach() for k, v in params.items()}
