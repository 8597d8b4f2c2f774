"""The SAE patch: an interchange on a sparse autoencoder's latents, with its error term.

Why a callable and not a basis: an SAE's encoder is non-linear, so its patch is not a
subspace patch `x + ((s - x) @ B) @ Bᵀ`. `SAEPatch` is what `Intervention.basis` carries for
an `sae(…)` featurizer; `run.patching.mix` calls it with the base's and the source's
activations at the patched positions. Following SAELens (`encode`, `decode`):

    f(x)   = act((x − b_dec·[apply_b_dec_to_input]) @ W_enc + b_enc)
    x̂(f)  = f @ W_dec + b_dec
    err(x) = x − x̂(f(x))

and the patched activation, `f'` being the base's latents with the listed ones taken from the
source, is `x̂(f') + err` where `err` is, by `error`:

* `"base"` (the default, the claim): the base's error term — the activation keeps everything
  the SAE does not explain about the base; since `x̂` is affine, this is exactly
  `x + (f_src − f_base)[L] @ W_dec[L]`;
* `"source"`: the source's error term — what the SAE does not explain travels with the
  source, so an effect that rides on the error term shows up as a difference;
* `"none"`: no error term — the SAE's reconstruction spliced in. With no latents listed and
  the base as its own source this is the network run on the SAE's reconstruction (the
  fidelity the report gives).

Activations: `standard` ReLU, `jumprelu` (`relu(h) · [h > threshold]`), `topk` (the `k`
largest pre-activations, then ReLU, as SAELens's TopK).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor

from causalspec.run.sites import Intervention
from causalspec.semantics.featurizers import SAEWeights

ErrorTerm = Literal["base", "source", "none"]


@dataclass(frozen=True, eq=False)
class SAEPatch:
    """An SAE's tensors and the latents an interchange replaces (see the module docstring)."""

    W_enc: Tensor  # [d_in, d_sae]
    b_enc: Tensor  # [d_sae]
    W_dec: Tensor  # [d_sae, d_in]
    b_dec: Tensor  # [d_in]
    threshold: Tensor | None  # [d_sae], JumpReLU only
    architecture: str
    k: int | None
    apply_b_dec_to_input: bool
    latents: Tensor  # LongTensor [n] of latent indices
    error: ErrorTerm = "base"

    @classmethod
    def from_weights(cls, w: SAEWeights, latents, error: ErrorTerm = "base") -> SAEPatch:
        t = torch.from_numpy
        threshold = None if w.threshold is None else t(w.threshold)
        return cls(t(w.W_enc), t(w.b_enc), t(w.W_dec), t(w.b_dec), threshold, w.config.architecture,
                   w.config.k, w.config.apply_b_dec_to_input, torch.as_tensor(list(latents), dtype=torch.long),
                   error)

    def with_(self, *, latents=None, error: ErrorTerm | None = None) -> SAEPatch:
        """The same SAE with other latents or another error-term policy."""
        changes: dict = {}
        if latents is not None:
            changes["latents"] = torch.as_tensor(list(latents), dtype=torch.long)
        if error is not None:
            changes["error"] = error
        return replace(self, **changes)

    @property
    def width(self) -> int:
        return int(self.W_enc.shape[0])

    def _on(self, t: Tensor, like: Tensor) -> Tensor:
        return t.to(dtype=like.dtype, device=like.device)

    def encode(self, x: Tensor) -> Tensor:
        """Latent activations `[..., d_sae]` of activations `[..., d_in]`."""
        if self.apply_b_dec_to_input:
            x = x - self._on(self.b_dec, x)
        pre = x @ self._on(self.W_enc, x) + self._on(self.b_enc, x)
        if self.architecture == "jumprelu":
            # the SAE folder's reader requires `threshold` of a JumpReLU SAE and `k` of a top-k one
            # (featurizers.read_sae_config / sae_shape_problems); a patch built by hand may lack them
            if self.threshold is None:
                raise ValueError("a JumpReLU SAE needs its `threshold` tensor")
            return torch.relu(pre) * (pre > self._on(self.threshold, pre)).to(pre.dtype)
        if self.architecture == "topk":
            if self.k is None:
                raise ValueError("a top-k SAE needs its `k`")
            top = torch.topk(pre, k=int(self.k), dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        return torch.relu(pre)

    def decode(self, f: Tensor) -> Tensor:
        return f @ self._on(self.W_dec, f) + self._on(self.b_dec, f)

    def __call__(self, current: Tensor, source: Tensor) -> Tensor:
        """The patched activation (`run.patching.mix` calls this for an SAE featurizer)."""
        if current.shape[-1] != self.width:
            raise ValueError(f"SAE reads width {self.width}, the activation has {current.shape[-1]}")
        f_base = self.encode(current)
        idx = self.latents.to(f_base.device)
        if idx.numel():
            f_src = self.encode(source)
            mixed = f_base.clone()
            mixed[..., idx] = f_src[..., idx]
        else:
            mixed = f_base
        out = self.decode(mixed)
        if self.error == "base":
            return out + (current - self.decode(f_base))
        if self.error == "source":
            return out + (source - self.decode(self.encode(source)))
        return out


@dataclass(frozen=True, eq=False)
class JointSAEPatch:
    """Several SAE latent patches at one site, on one SAE, applied as **one** interchange.

    Why: two variables may share an SAE at a site through disjoint latents (docs/language.md
    §6.6), and the documented patch is `f'` = `f(x)` with *every* listed latent taken from its
    own variable's source, `x' = x̂(f') + err`. Applying the bindings' `SAEPatch`es one after the
    other instead re-encodes the already-patched activation, so the second patch reads latents the
    first one moved (whenever an encoder column is not orthogonal to another latent's decoder
    row): the IIA then depended on the order of the alignment's lines, and `{A, B}` with A, B on
    latents [0] and [1] scored differently from one variable on latents [0, 1] — the same
    intervention. `parts` holds each binding's latents and its source's activations at the
    patched positions (the `source` argument of `__call__` is not used). With the `"source"`
    error term the patches are merged only when they share one source (`merge_sae_patches`).
    """

    sae: SAEPatch
    parts: tuple[tuple[Tensor, Tensor], ...]  # (latents [n], source values [..., d_in]) per binding

    @property
    def width(self) -> int:
        return self.sae.width

    def __call__(self, current: Tensor, source: Tensor) -> Tensor:
        sae = self.sae
        if current.shape[-1] != sae.width:
            raise ValueError(f"SAE reads width {sae.width}, the activation has {current.shape[-1]}")
        f_base = sae.encode(current)
        mixed = f_base.clone()
        for latents, values in self.parts:
            idx = latents.to(f_base.device)
            if idx.numel():
                mixed[..., idx] = sae.encode(values.to(dtype=current.dtype, device=current.device))[..., idx]
        out = sae.decode(mixed)
        if sae.error == "base":
            return out + (current - sae.decode(f_base))
        if sae.error == "source":
            src = self.parts[0][1].to(dtype=current.dtype, device=current.device)
            return out + (src - sae.decode(sae.encode(src)))
        return out


def _same_sae(a: SAEPatch, b: SAEPatch) -> bool:
    if a is b:
        return True
    if (a.architecture, a.k, a.apply_b_dec_to_input, a.error) != (b.architecture, b.k, b.apply_b_dec_to_input,
                                                                   b.error):
        return False
    tensors = [(a.W_enc, b.W_enc), (a.b_enc, b.b_enc), (a.W_dec, b.W_dec), (a.b_dec, b.b_dec)]
    if (a.threshold is None) != (b.threshold is None):
        return False
    if a.threshold is not None and b.threshold is not None:
        tensors.append((a.threshold, b.threshold))
    # the engine shares one SAE's tensors among its patches (Engine.basis): identity first, a
    # value comparison only for patches built apart
    return all(x is y or (x.shape == y.shape and bool(torch.equal(x, y))) for x, y in tensors)


def merge_sae_patches(interventions: list, groups: list[int]) -> list:
    """`interventions` (`run.sites.Intervention`, group `groups[k]` each) with the SAE patches
    that share a site, an SAE and their positions merged into one `JointSAEPatch` (see its
    docstring; the merged one takes the first one's place). Everything else is unchanged."""
    out: list = []
    merged: list[list[int]] = []  # indices into `interventions` per output slot (SAE slots only)
    slot_of: list[int] = []
    for k, iv in enumerate(interventions):
        target = None
        if isinstance(iv.basis, SAEPatch):
            for slot, members in enumerate(merged):
                first = interventions[members[0]]
                if not isinstance(first.basis, SAEPatch) or first.site != iv.site:
                    continue
                same_pos = (first.positions is None and iv.positions is None) or (
                    first.positions is not None and iv.positions is not None
                    and first.positions.shape == iv.positions.shape and bool(torch.equal(first.positions,
                                                                                          iv.positions)))
                if not same_pos or not _same_sae(first.basis, iv.basis):
                    continue
                if iv.basis.error == "source" and any(groups[m] != groups[k] for m in members):
                    continue  # the source's error term is one source's: keep patches of other sources apart
                target = slot
                break
        if target is None:
            merged.append([k])
            slot_of.append(len(out))
            out.append(iv)
        else:
            merged[target].append(k)
    for slot, members in enumerate(merged):
        if len(members) < 2:
            continue
        first = interventions[members[0]]
        parts = tuple((interventions[m].basis.latents, interventions[m].values) for m in members)
        joint: Any = JointSAEPatch(first.basis, parts)  # a callable patch, as an SAEPatch is (run.patching.mix)
        out[slot_of[slot]] = Intervention(first.site, first.positions, first.values, joint)
    return out


def explained_variance(acts: Tensor, sae: SAEPatch) -> float:
    """Fraction of variance explained by the SAE on activations `[n, d_in]`:
    `1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖²` (pooled over rows and dims; SAELens reports the
    per-token mean of the same ratio)."""
    x = acts.double()
    xhat = sae.decode(sae.encode(acts.float())).double()
    resid = ((x - xhat) ** 2).sum()
    total = ((x - x.mean(dim=0, keepdim=True)) ** 2).sum()
    return float(1.0 - resid / total) if float(total) > 0 else float("nan")
