"""Reconstruction honesty for SAE featurizers: fidelity at the site, and the claim without the
benefit of the error term.

Why: an intervention on SAE latents can look successful while the behaviour travels through
the SAE's reconstruction error — the part of the activation the SAE does not explain. The
claim itself keeps the base's error term (`decode(f') + err_base`, `run.sae`); this module
adds, for every SAE binding of the check's variables, on the check's own inputs:

* fidelity: the fraction of variance of the site's clean activations the SAE explains, and
  the network's accuracy with the SAE's reconstruction spliced in *without* its error term
  (next to its clean accuracy on the same inputs) — one patched pass per unique input;
* the claim scored again with the error term taken from the source
  (`decode(f') + err_source`) on the same pairs — one patched pass per pair — and a warning
  when the two IIAs differ by more than `ERROR_TERM_MARGIN`.

It returns a dict for `CheckResult.sae` (JSON key `"sae"`) and the warnings.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from causalspec.claims.elements import element_label
from causalspec.claims.procedure import counted_as
from causalspec.run.engine import binding_text
from causalspec.run.sae import ErrorTerm, SAEPatch, explained_variance
from causalspec.score.stats import wilson
from causalspec.semantics import featurizers as F

ERROR_TERM_MARGIN = 0.05  # IIA difference (error term kept vs from the source) that warns
POLICY = "base"  # the claim's error term: the base's (`decode(f') + err_base`)


def sae_bindings(alignment, variables) -> list[tuple[str, Any]]:
    """(variable, binding) pairs of `variables` aligned through an `sae(…)` featurizer."""
    return [(v, b) for v in variables for b in alignment.variables.get(v, ()) if isinstance(b.featurizer, F.SAE)]


def sae_honesty(run, declared) -> tuple[dict[str, Any] | None, list[str]]:
    """Fidelity per SAE binding and the error-term comparison per declared set (see the module
    docstring); (None, []) when no variable of the check is aligned through an SAE."""
    variables = list(dict.fromkeys(v for cr, _ in declared for g in cr.plan.groups for v in g))
    found = sae_bindings(run.alignment, variables)
    if not found:
        return None, []
    with counted_as(run.engine, "SAE fidelity"):
        fidelity = [_fidelity(run, v, b) for v, b in found]
    comparisons, warnings = [], []
    with counted_as(run.engine, "SAE error term from source"):
        for cr, res in declared:
            if cr.patched is None or not res.kept:
                continue
            given = _given(run, cr.plan, "source")
            if given is None:
                continue
            scored = run.score(cr, run.patch(cr, mode="given", random=given))
            kept_iia = res.iia.estimate if res.iia.trials else None
            source_iia = scored.iia.estimate if scored.iia.trials else None
            diff = None if kept_iia is None or source_iia is None else source_iia - kept_iia
            warned = diff is not None and abs(diff) > ERROR_TERM_MARGIN
            comparisons.append({"label": res.label, "error_base": res.iia.to_dict(),
                                "error_source": scored.iia.to_dict(), "difference": diff, "warned": warned})
            if warned and diff is not None:  # warned implies a difference
                warnings.append(
                    f"{res.label}: IIA is {kept_iia:.3f} with the base's SAE error term kept and {source_iia:.3f} "
                    f"with it taken from the source (a difference of {abs(diff):.3f} > {ERROR_TERM_MARGIN}): "
                    "part of the effect rides on what the SAE does not explain, not on the latents")
    for f in fidelity:
        if f["spliced_accuracy"] is not None and f["clean_accuracy"] is not None \
                and f["clean_accuracy"] - f["spliced_accuracy"] > ERROR_TERM_MARGIN:
            warnings.append(f"SAE at {f['binding']}: the network's accuracy falls from {f['clean_accuracy']:.3f} to "
                            f"{f['spliced_accuracy']:.3f} with the SAE's reconstruction spliced in (no error term; "
                            f"variance explained {f['variance_explained']:.3f}): the latents do not carry all the "
                            "network uses at this site")
    return {"error_term": POLICY, "margin": ERROR_TERM_MARGIN, "fidelity": fidelity,
            "error_term_comparison": comparisons}, warnings


def _patch_of(run, b) -> SAEPatch:
    patch = run.engine.basis(b.featurizer, run.cache.acts.width(b))
    assert isinstance(patch, SAEPatch)
    return patch


def _given(run, claim, error: ErrorTerm) -> dict | None:
    """Per (variable, binding) of `claim`: SAE bindings with `error`, others as in the claim."""
    given: dict = {}
    any_sae = False
    for g in claim.groups:
        for v in g:
            for b in run.alignment.variables[v]:
                if isinstance(b.featurizer, F.SAE):
                    given[(v, b)] = _patch_of(run, b).with_(error=error)
                    any_sae = True
                else:
                    given[(v, b)] = run.fitted.trained.basis(v, b) if run.fitted is not None else None
    return given if any_sae else None


def _fidelity(run, var: str, b) -> dict[str, Any]:
    """Variance explained on the clean activations, and accuracy with the reconstruction spliced in."""
    patch = _patch_of(run, b)
    rows = [t.reshape(-1, t.shape[-1]) for t in run.cache.acts[b]]
    acts = np.concatenate([t.detach().float().cpu().numpy() for t in rows]) if rows else np.zeros((0, 1))
    fve = explained_variance(torch.from_numpy(acts), patch) if len(acts) > 1 else None
    n = run.n_unique
    labels = np.empty(n, dtype=np.int64)
    labels[run.inverse] = run.pool_labels
    idx = np.arange(n)
    spliced = run.engine.run_patched(run.unique_rows, run.cache, idx, [idx], [[b]],
                                     bases=[[patch.with_(latents=(), error="none")]])
    return {"variable": var, "binding": binding_text(var, b), "sae": b.featurizer.path,
            "architecture": patch.architecture, "d_sae": int(patch.W_enc.shape[1]),
            "latents": list(b.featurizer.latents), "inputs": n, "variance_explained": fve,
            "clean_accuracy": float(np.mean(run.cache.preds == labels)) if n else None,
            "spliced_accuracy": float(np.mean(spliced == labels)) if n else None,
            "spliced": wilson(int(np.sum(spliced == labels)), n).to_dict()}


def pooled_sae(per_element: Sequence[tuple[str, dict[str, Any] | None]]) -> dict[str, Any] | None:
    """The SAE report of a per-element check (`O[i] -> output @ i`), pooled like its claims
    (`claims.elements`): each element run reports fidelity and the error-term comparison at its own
    output, and this keeps them all — per binding a pooled fidelity row (accuracies over every
    (input, element); variance explained over the elements' activations, each element's weighted by
    its inputs) followed by one row per element (`"output": "O[k]"`), and per declared set a pooled
    comparison (the element rows' successes and trials summed, as the pooled claim rows do; warned
    on the pooled difference) followed by the element rows (`{H[3]} → O[k]`). The latent search is
    the one pooled search, the same in every element run. None when no element run has a report."""
    found = [(el, s) for el, s in per_element if s]
    if not found:
        return None
    out: dict[str, Any] = {k: v for k, v in found[0][1].items() if k not in ("fidelity", "error_term_comparison")}
    if "fidelity" in found[0][1]:
        out["fidelity"] = _pooled_rows(found, "fidelity", "binding", _pool_fidelity)
        out["error_term_comparison"] = _pooled_rows(found, "error_term_comparison", "label", _pool_comparison)
    return out


def _pooled_rows(found, key: str, name: str, pool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    names = list(dict.fromkeys(r[name] for _, s in found for r in s.get(key, ())))
    for n in names:
        parts = [(el, r) for el, s in found for r in s.get(key, ()) if r[name] == n]
        rows.append({**pool([r for _, r in parts]), "elements": [el for el, _ in parts]})
        for el, r in parts:
            rows.append({**r, "output": el, **({"label": element_label(n, el)} if name == "label" else {})})
    return rows


def _weighted(values: list[tuple[float | None, int]]) -> float | None:
    known = [(v, n) for v, n in values if v is not None and n]
    total = sum(n for _, n in known)
    return sum(v * n for v, n in known) / total if known and total else None


def _pool_fidelity(parts: list[dict[str, Any]]) -> dict[str, Any]:
    n = sum(p["inputs"] for p in parts)
    spliced = [p["spliced"] for p in parts]
    return {**parts[0], "inputs": n,
            "variance_explained": _weighted([(p["variance_explained"], p["inputs"]) for p in parts]),
            "clean_accuracy": _weighted([(p["clean_accuracy"], p["inputs"]) for p in parts]),
            "spliced_accuracy": _weighted([(p["spliced_accuracy"], p["inputs"]) for p in parts]),
            "spliced": wilson(sum(s["successes"] for s in spliced), sum(s["trials"] for s in spliced)).to_dict()}


def _pool_comparison(parts: list[dict[str, Any]]) -> dict[str, Any]:
    def pooled(key: str) -> dict[str, Any]:
        return wilson(sum(p[key]["successes"] for p in parts), sum(p[key]["trials"] for p in parts)).to_dict()

    base, source = pooled("error_base"), pooled("error_source")
    diff = source["estimate"] - base["estimate"] if base["trials"] and source["trials"] else None
    return {"label": parts[0]["label"], "error_base": base, "error_source": source, "difference": diff,
            "warned": diff is not None and abs(diff) > ERROR_TERM_MARGIN}
