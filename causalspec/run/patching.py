"""The patch arithmetic and answer decoding every backend runs: one copy, torch only.

Why a module of its own, importing nothing but torch: the torch engine applies these formulas
through hooks (`run.sites`, `run.hf_adapter`), and the nnsight backend applies them inside an
nnsight session (`run.nnsight_runner`) that may run on NDIF, where causalspec is not
installed. So this module is shipped by value with the runner (`nnsight.register`, see
`run.nnsight_backend`) and must stay torch-only (a test enforces it): both backends run the
very same `mix`, `patch_positions` and `decode`, so they cannot drift apart.

* `mix` / `patch_positions`: the patched value of a site (a subspace patch, or the whole
  activation), at chosen token positions;
* `decode` / `with_nonfinite`: output codes from a forward's raw output (argmax over the
  answer candidates; NaN and inf rows marked apart);
* `main_tensor` / `replace_main`: the tensor a module's input or output carries.
"""

from __future__ import annotations

import torch

UNDECODABLE = -1  # a prediction outside the output domain (never equals a label)
# An example whose output (the scores read) holds a NaN, or else an inf. Never equal to a label,
# and counted apart: a claim with any non-finite output is an error (score.iia.nonfinite_counts).
NAN_OUTPUT = -2
INF_OUTPUT = -3


def mix(current: torch.Tensor, source: torch.Tensor, basis) -> torch.Tensor:
    """The patched value: ``source`` inside span(basis), ``current`` outside it.

    ``basis`` is None (the whole activation), a Tensor ``[W, k]`` with orthonormal columns,
    a callable ``(current, source) -> patched`` (an SAE featurizer, `run.sae`),
    or a pair ``(read [W, k], write [k, W])``: the difference is read along ``read`` and
    written back through ``write`` (``write = read.T`` is the plain subspace patch; the
    illusion check writes only the part of it inside the clean activations' span)."""
    if basis is None:
        return source
    if callable(basis):  # a non-linear featurizer's own patch (run.sae.SAEPatch: current, source -> patched)
        return basis(current, source)
    if isinstance(basis, (tuple, list)):
        read, write = (t.to(dtype=current.dtype, device=current.device) for t in basis)
        return current + ((source - current) @ read) @ write
    basis = basis.to(dtype=current.dtype, device=current.device)
    # [..., W] + (([..., W] @ [W, k]) @ [k, W]) -- equals x - xBB^T + sBB^T
    return current + ((source - current) @ basis) @ basis.T


def patch_positions(x: torch.Tensor, positions: torch.Tensor, values: torch.Tensor,
                    basis, combine=mix) -> torch.Tensor:
    """``x`` [batch, seq, width] with ``values`` [batch, n_pos, width] mixed in at ``positions``
    by ``combine(current, source, basis)`` (`mix`; training passes a featurizer's own formula)."""
    width = x.shape[-1]
    index = positions.to(x.device)[:, :, None].expand(-1, -1, width)  # [batch, n_pos, width]
    current = x.gather(1, index)
    return x.scatter(1, index, combine(current, values.to(dtype=x.dtype, device=x.device), basis))


def decode(raw: torch.Tensor, answer_pos: torch.Tensor | None, candidates: torch.Tensor | None) -> torch.Tensor:
    """Output codes [batch]: argmax over the candidates' logits at each row's answer position
    (``candidates`` None: ``raw`` is [batch, classes] and the class index is the code; or, with
    ``answer_pos``, a token-level head's [batch, seq, classes] read at each row's position)."""
    rows = torch.arange(raw.shape[0], device=raw.device)
    if candidates is None:
        scores = raw if answer_pos is None else raw[rows, answer_pos.to(raw.device)]
    elif answer_pos is None:
        raise ValueError("candidate tokens are read at an answer position, and none was given")
    else:
        scores = raw[rows, answer_pos.to(raw.device)][:, candidates.to(raw.device)]  # [batch, n_values]
    scores = scores.float()
    return with_nonfinite(scores.argmax(dim=-1), scores)


def with_nonfinite(codes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``codes`` [batch] with rows whose ``scores`` [batch, …] hold a NaN set to NAN_OUTPUT,
    and rows with an inf (and no NaN) set to INF_OUTPUT."""
    flat = scores.reshape(scores.shape[0], -1)
    nan = torch.isnan(flat).any(dim=-1)
    inf = torch.isinf(flat).any(dim=-1)
    codes = torch.where(inf, torch.full_like(codes, INF_OUTPUT), codes)
    return torch.where(nan, torch.full_like(codes, NAN_OUTPUT), codes)


def _primary_key(value) -> str:
    return "logits" if "logits" in value else next(iter(value.keys()))


def main_tensor(value):
    """The main tensor of a module's input or output: itself, the first element of a tuple or
    list (decoder blocks return a tuple or, in transformers >= 5, a bare tensor), or ``logits``
    / the first field of a ``ModelOutput``; None when there is none."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    if hasattr(value, "keys") and len(value):
        first = value[_primary_key(value)]
        return first if isinstance(first, torch.Tensor) else None
    return None


def replace_main(value, new: torch.Tensor):
    """``value`` with its main tensor (see `main_tensor`) replaced by ``new``."""
    if isinstance(value, torch.Tensor):
        return new
    if isinstance(value, tuple):
        return (new, *value[1:])
    if isinstance(value, list):
        return [new, *value[1:]]
    value[_primary_key(value)] = new  # ModelOutput: setting the key also sets the attribute
    return value
