"""The illusion check: does a subspace patch act through a direction the site never uses?

Makelov, Lange & Nanda ("Is This the Subspace You Are Looking For? An Interpretability
Illusion for Subspace Activation Patching", ICLR 2024) split a patched direction v into the
part downstream computation reads and the part it does not. An *illusion* is a subspace
patch whose effect runs through a *dormant* direction — one along which the network's
activations never vary on its own inputs — activated because v also has a *disconnected*
component that does vary (with the feature) but is not read: neither part moves the output
alone, together they do, and the patch "works" without v being where the network keeps the
variable.

What the engine can measure for any network, without its weights: the clean activations
of the check's pool at the site span the directions the site actually uses (`clean_span`,
trusted only when the pool saturates it — `sample_limited`;
the principal subspace of the centred activations; directions whose standard deviation is
below `SPAN_RTOL` of the largest are dormant). A subspace patch writes
`((src − x) @ B) @ B.T` into the activation; its part outside that span is what the
network never sees on its own inputs. So the check reruns the same pairs writing the same
change of the subspace's coordinates with an in-span vector instead — the smallest one,
`((src − x) @ B) @ M.T` with `M = S (Bᵀ S)⁺` (S the span's orthonormal basis) — and compares:

* the patch never writes outside the span (`leak` ≈ 0: the subspace lies in it, or adds
  only directions that never vary): the two patches are the same, and nothing is rerun —
  exact alignments on compiled or hand-built networks land here, whatever the
  whole-component patch does (it also swaps the other variables the site carries, so its
  effect is no test of the subspace);
* the subspace patch moves the output (on at least `MIN_EFFECT` of kept pairs) but the
  in-span part alone moves it less than `RATIO` times as often: the effect runs through a
  dormant direction — the warning.

Why the smallest in-span vector with the same coordinates, not the orthogonal projection
`P B` of the patch: when two values move together at one site (tracr's `opp_idx = length −
index`: at a fixed position the two blocks change together on every input), an exact slice of
one block leaves the span — half of its change lies along "opp up, length down", which never
varies — and the projection writes only half of the opp change (plus half a length change),
so a true claim lost its effect and was called an illusion. The in-span vector with the same
coordinates changes the opp block fully and the length block with it, which is what the
network's own inputs do: the effect stays, no warning. Where the effect really runs through
a dormant direction — Makelov et al.'s `(e0 + e1)/√2` with e1 never varying, or a read of
`h0 − h1` where h0 = h1 on every input — the in-span vector reaches the coordinates only
along directions the downstream read does not see, and the effect goes.

Why not the whole-component patch (what this check compared before): when the site carries
several aligned variables, patching all of it swaps them all, and the output may move less
than under the subspace patch for reasons that have nothing to do with an illusion; and
in the paper's own toy example the whole component moves the output as much as the
illusory subspace does. The whole-component numbers are still reported, beside the check.

Pure numpy on arrays the engine hands over; the one extra patched pass is the caller's.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

SPAN_RTOL = 1e-3  # a principal direction with std below this fraction of the largest is dormant
LEAK_TOL = 1e-3  # leak below which the patch counts as staying inside the span (no rerun)
MIN_EFFECT = 0.05  # the subspace patch must move the output on at least this share of kept pairs
RATIO = 0.5  # ... and the in-span part less than this fraction as often


def clean_span(rows: Iterable[np.ndarray], rtol: float = SPAN_RTOL) -> np.ndarray:
    """An orthonormal basis `[width, r]` of the directions the clean activations vary along.

    `rows` are activations `[width]` or `[n_pos, width]` (one per input, positions pooled).
    The span is that of the centred activations, keeping principal directions whose singular
    value exceeds `rtol` times the largest (r = 0 when every row is the same).
    """
    mats = [np.asarray(r, dtype=np.float64).reshape(-1, np.asarray(r).shape[-1]) for r in rows]
    x = np.concatenate(mats, axis=0) if mats else np.zeros((0, 0))
    width = x.shape[1]
    if x.shape[0] < 2:
        return np.zeros((width, 0))
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] <= width:
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        if not s.size or s[0] <= 0:
            return np.zeros((width, 0))
        return np.ascontiguousarray(vt[s > rtol * s[0]].T)
    lam, vecs = np.linalg.eigh(x.T @ x)  # ascending; λ = s²
    top = lam[-1]
    if top <= 0:
        return np.zeros((width, 0))
    return np.ascontiguousarray(vecs[:, lam > (rtol ** 2) * top][:, ::-1])


def project(basis: np.ndarray, span: np.ndarray, rtol: float = SPAN_RTOL) -> tuple[np.ndarray, float]:
    """`M = S (Bᵀ S)⁺` (S = `span`, B = `basis`): the in-span patch `((src − x) @ B) @ Mᵀ`
    writes, for a change `c` of the subspace's coordinates, the smallest vector of the span
    whose coordinates change by `c` (by its part along coordinates that vary at all: singular
    values of `Bᵀ S` below `rtol` of the largest count as none). M = B when the subspace lies
    in the span.

    Also the subspace's *leak*: the largest fraction of a difference of clean activations (a
    vector in the span, unit length) that the subspace patch writes outside the span,
    ‖(I − P) B Bᵀ P‖₂ ∈ [0, 1] (P the projection onto the span). 0 means the patch never
    leaves the span — true of every subspace inside it, and also of one that merely contains
    constant directions (a slice with a dead unit: differences have nothing there to write);
    the in-span rerun would be the same patch and is skipped."""
    basis = np.asarray(basis, dtype=np.float64)
    if not span.size or not basis.size:
        inside = np.zeros_like(basis)
        return inside, 0.0
    coords = basis.T @ span  # [k, r]: how each span direction moves the subspace's coordinates
    inside = span @ np.linalg.pinv(coords, rcond=rtol)
    leak_map = (basis - span @ coords.T) @ coords  # [width, r]: (I − P) B Bᵀ on the span's basis
    leak = float(np.linalg.norm(leak_map, ord=2)) if leak_map.size else 0.0
    return inside, min(max(leak, 0.0), 1.0)


def sample_limited(rank: int, rows: int, width: int, pool_complete: bool) -> bool:
    """Whether the span is only as large as the sample allows, so "never varies" means "not
    sampled": every row added a new direction (rank = rows − 1) short of the full width, and
    the pool does not hold every input of the model. Then the test would call any direction
    outside a few samples' span dormant (a DAS subspace at a 768-wide site, 64 inputs): it
    is not run, and the report says so."""
    return rank >= rows - 1 and rank < width and not pool_complete


def illusion_summary(kept: np.ndarray, expected: np.ndarray, net_base: np.ndarray, sub_patched: np.ndarray,
                     span_patched: np.ndarray | None, leak: float, span_dims: dict | None = None
                     ) -> dict[str, Any]:
    """How often the subspace patch and its in-span part move the output (kept pairs), and
    whether that is an illusion. `span_patched` None: the patch stays in the span (the
    in-span part is the patch itself, not rerun); `leak` is the largest over the claim's
    bindings (`project`)."""
    k = np.asarray(kept, dtype=bool)
    n = int(k.sum())
    out: dict[str, Any] = {"leak": leak, "span_dims": span_dims or {}, "rerun": span_patched is not None}
    if not n:
        return {**out, "pairs": 0, "subspace_moved": None, "span_moved": None, "span_iia": None, "dormant": False}
    sub_moved = float((sub_patched[k] != net_base[k]).mean())
    if span_patched is None:
        span_moved, span_iia = sub_moved, float((sub_patched[k] == expected[k]).mean())
    else:
        span_moved = float((span_patched[k] != net_base[k]).mean())
        span_iia = float((span_patched[k] == expected[k]).mean())
    dormant = span_patched is not None and sub_moved >= MIN_EFFECT and span_moved < RATIO * sub_moved
    return {**out, "pairs": n, "subspace_moved": sub_moved, "span_moved": span_moved, "span_iia": span_iia,
            "dormant": bool(dormant)}


def illusion_warning(label: str, summary: dict[str, Any]) -> str:
    return (f"{label}: the subspace patch changes the output on {summary['subspace_moved']:.0%} of kept pairs, but "
            f"only {summary['span_moved']:.0%} when it writes only inside the span of the site's clean activations "
            f"(it writes up to {summary['leak']:.0%} of a change along directions they never vary in) — the "
            "effect runs through a dormant pathway (an interpretability illusion, Makelov et al. 2024), not "
            "through what the site carries on the network's own inputs")


__all__ = ["LEAK_TOL", "MIN_EFFECT", "RATIO", "SPAN_RTOL", "clean_span", "illusion_summary", "illusion_warning",
           "project", "sample_limited"]
