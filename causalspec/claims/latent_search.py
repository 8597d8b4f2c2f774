"""Finding the latents: `locate VAR over latents of SITE @ POSITIONS : sae("DIR")` in a check.

Why: "feature 4,512 tracks the subject" is a claim about which latents carry a variable; the
check answers it the way `locate` answers "which site": rank, choose, then score the choice
on fresh pairs so the choice cannot flatter the verdict.

1. One clean pass records the site; every latent's activation on every input is read from
   that cache (the SAE's encoder on the cached activations). A latent whose value is equal in
   base and source on every pair cannot change anything and costs no forward pass (its IIA
   is the no-intervention one); every other latent is patched alone, one patched pass per
   pair, and scored on the check's pairs (mean over its declared interchange sets).
2. Latents are ranked by that IIA (ties: the lower index). The smallest set greedy by rank —
   the top 1, then the top 2, … — whose IIA reaches the check's threshold (its first
   `expect iia >= t` / `> t`; 0.9 when it has none) is chosen; at most `MAX_SET` latents are
   tried, and without one reaching it the best of those sets is kept and said to fall short.
3. A DAS subspace of the same size is trained at the same site (on the check's training
   split, like any `das(k)`) and scored on the same pairs: what the SAE basis costs.
4. The claim is scored with the chosen latents on fresh pairs (seed + 1000003), with the
   check's controls and the SAE honesty report (`claims.sae_honesty`).
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import replace
from typing import Any

import numpy as np

from causalspec.claims.locate import CONFIRM_OFFSET, cell_alignment
from causalspec.claims.procedure import AlignmentRun, compute_threads, counted_as, make_alignment_run
from causalspec.compile.plan import CheckPlan, compile_check
from causalspec.run.adapters import CheckUsageError
from causalspec.run.sae import SAEPatch
from causalspec.semantics import featurizers as F
from causalspec.score.stats import wilson
from causalspec.semantics.ir import SiteBinding

MAX_SET = 32  # the largest greedy set tried
DEFAULT_THRESHOLD = 0.9


def threshold_of(check) -> float:
    """The IIA the chosen set must reach: the check's first `expect iia >= t` (or `> t`)."""
    for cond in check.conditions:
        if cond.metric == "iia" and cond.op in (">=", ">"):
            return float(cond.threshold)
    return DEFAULT_THRESHOLD


def _mean_iia(runs: list[AlignmentRun], claims, given: dict | None) -> tuple[float | None, dict[str, Any]]:
    """The mean over the declared sets of their IIA with the patch `given` (None: each run's own
    featurizers); over several runs (the output elements of `O[i] -> output @ i`, on the same
    pairs) a set's IIA pools their successes and trials (a pair counted once per element)."""
    scores, per = [], {}
    for i, claim in enumerate(claims):
        successes = trials = 0
        for run, run_claims in runs_claims(runs, claims):
            cr = run.claim_run(run_claims[i])
            res = run.score(cr, run.patch(cr, mode="given" if given is not None else "claim", random=given))
            successes, trials = successes + res.iia.successes, trials + res.iia.trials
        iia = wilson(successes, trials)
        per[claim.label] = iia.to_dict()
        if iia.trials:
            scores.append(iia.estimate)
    return (float(np.mean(scores)) if scores else None), per


def runs_claims(runs: list[AlignmentRun], claims) -> list[tuple[AlignmentRun, list]]:
    """Each run with its own declared sets, in the order of `claims` (an element's plan has its own)."""
    return [(run, [c for c in run.plan.claims if c.kind == "declared"]) for run in runs]


def search_latents(ir, check, plan: CheckPlan, net, options, elements: list | None = None) -> dict[str, Any]:
    """Steps 1–3 of the module docstring: the ranking, the chosen set and the DAS comparison.

    `elements`: for an alignment read at several output elements (`O[i] -> output @ i`), the
    (spec IR, plan) of each element (`claims.elements.element_irs`): every latent is scored at
    every element on the same pairs and pooled, so one set of latents is chosen for all of them."""
    start = time.perf_counter()
    search = check.latent_search
    var, binding = search.var, search.binding
    parts = elements or [(ir, plan)]
    runs = [make_alignment_run(one, check, replace(p, alignment=cell_alignment(p.alignment, var, binding)), net,
                               options) for one, p in parts]
    run = runs[0]
    declared = [c for c in plan.claims if c.kind == "declared"]
    threshold = threshold_of(check)
    with compute_threads(net.module), contextlib.ExitStack() as stack:
        for r in runs:
            stack.enter_context(r.engine)
        cache = run.clean()
        for other in runs[1:]:
            other.clean()
        store: Any = cache.acts
        width = store.width(binding)
        patch = run.engine.basis(binding.featurizer, width)
        if not isinstance(patch, SAEPatch):
            raise CheckUsageError(f"`locate {var} over latents of`: `{binding.featurizer.kind}` is not an SAE")
        d_sae = int(patch.W_enc.shape[1])
        movable = _movable_latents(run, declared, binding, patch)
        iia = np.full(d_sae, np.nan)
        baseline, _ = _mean_iia(runs, declared, {(var, binding): patch.with_(latents=())}) if len(movable) < d_sae \
            else (None, {})
        with contextlib.ExitStack() as counted:
            for r in runs:
                counted.enter_context(counted_as(r.engine, "latent search"))
            for j in range(d_sae):
                if j in movable:
                    iia[j], _ = _mean_iia(runs, declared, {(var, binding): patch.with_(latents=[j])})
                else:
                    iia[j] = np.nan if baseline is None else baseline
            order = sorted(range(d_sae), key=lambda j: (-(iia[j] if np.isfinite(iia[j]) else -1.0), j))
            greedy: list[dict[str, Any]] = []
            chosen: dict[str, Any] | None = None
            reached = False
            for m in range(1, min(MAX_SET, d_sae) + 1):
                latents = order[:m]
                score, per = _mean_iia(runs, declared, {(var, binding): patch.with_(latents=latents)})
                greedy.append({"latents": list(latents), "iia": score, "per_set": per})
                if score is not None and score >= threshold:
                    chosen, reached = greedy[-1], True
                    break
            if chosen is None:
                chosen = max(greedy, key=lambda g: -1.0 if g["iia"] is None else g["iia"])
        das = _das_comparison(ir, check, net, options, runs, var, binding, len(chosen["latents"]), declared)
        passes: dict[str, int] = {}
        for r in runs:
            for k, v in r.engine.forward_passes.items():
                passes[k] = passes.get(k, 0) + v
    ranking = [{"latent": int(j), "iia": None if not np.isfinite(iia[j]) else float(iia[j]),
                "patched": j in movable} for j in order]
    return {"var": var, "site": str(binding.site), "sae": binding.featurizer.path, "d_sae": d_sae,
            "threshold": threshold, "ranking": ranking, "greedy": greedy, "chosen": chosen["latents"],
            "chosen_iia": chosen["iia"], "chosen_per_set": chosen["per_set"], "reached": reached,
            "das": das, "pairs": int(declared[0].pairs.n) if declared else 0, "seed": int(plan.seed),
            "skipped_latents": d_sae - len(movable), "forward_passes": passes,
            **({"elements": [p.output for _, p in parts]} if elements else {}),
            "seconds": round(time.perf_counter() - start, 3)}


def _movable_latents(run: AlignmentRun, declared, binding, patch: SAEPatch) -> set[int]:
    """Latents whose value differs between base and source on some pair of some declared set
    (read from the clean cache): only these can change a patched output."""
    store: Any = run.cache.acts
    n = run.n_unique
    codes = patch.encode(store.stack(binding, np.arange(n)).float())  # [U, (n_pos,) d_sae]
    codes = codes.reshape(n, -1, codes.shape[-1])
    moved = np.zeros(codes.shape[-1], dtype=bool)
    for claim in declared:
        cr = run.claim_run(claim)
        for src in cr.sources_u:
            diff = (codes[cr.base_u] - codes[src]).abs().amax(dim=(0, 1))  # [d_sae]
            moved |= diff.numpy() > 0
    return set(np.flatnonzero(moved).tolist())


def _das_comparison(ir, check, net, options, runs, var, binding, k: int, declared) -> dict[str, Any]:
    """A `das(k)` subspace at the same site and positions, trained on the check's training split
    and scored on the same pairs as the latents (over several output elements: trained once over
    all of them, `run.elements`, and scored pooled)."""
    das_binding = SiteBinding(binding.site, binding.positions, F.LearnedDAS(k), binding.span)
    das_runs = []
    for run in runs:
        alignment = cell_alignment(run.plan.alignment, var, das_binding)
        das_run = AlignmentRun(replace(run.plan, alignment=alignment), run.engine, alignment=alignment)
        # the DAS binding shares the SAE binding's site and positions: its activations are the cache's
        cache = copy.copy(run.cache)
        cache.acts = _Alias(run.cache.acts, {das_binding: binding})
        das_run.cache = cache
        das_runs.append(das_run)
    shared: dict = {"bindings": [das_binding]}  # the element runs share one training
    try:
        with contextlib.ExitStack() as counted:
            for run in runs:
                counted.enter_context(counted_as(run.engine, "latent search DAS"))
            for das_run in das_runs:
                das_run.fit(ir, check, net, artifacts=options.artifacts, retrain=options.retrain,
                            shared=shared, variant="latent search DAS")
            score, per = _mean_iia(das_runs, declared, None)
    except CheckUsageError as exc:  # e.g. too small a training split: the comparison says why
        return {"k": k, "iia": None, "per_set": {}, "why": str(exc)}
    finally:
        if "engine" in shared:
            shared["engine"].close()
    return {"k": k, "iia": score, "per_set": per, "why": ""}


class _Alias:
    """An activation store that answers for a binding under another binding's name (the DAS
    binding of the comparison reads the SAE binding's activations: same site, same positions)."""

    def __init__(self, store, alias: dict):
        self._store = store
        self._alias = alias

    def _b(self, b):
        return self._alias.get(b, b)

    def __contains__(self, b) -> bool:
        return self._b(b) in self._store

    def __getitem__(self, b):
        return self._store[self._b(b)]

    def stack(self, b, rows):
        return self._store.stack(self._b(b), rows)

    def counts(self, b):
        return self._store.counts(self._b(b))

    def width(self, b) -> int:
        return self._store.width(self._b(b))


def confirmation_plan(ir, check, plan: CheckPlan, found: dict[str, Any], options) -> tuple[CheckPlan, str]:
    """The claim at the chosen latents on fresh pairs, and the note that says so."""
    search = check.latent_search
    chosen_feat = replace(search.binding.featurizer, latents=tuple(found["chosen"]))
    chosen = cell_alignment(plan.alignment, search.var, replace(search.binding, featurizer=chosen_feat))
    seed = int(plan.seed) + CONFIRM_OFFSET
    at = replace(ir, alignments={**ir.alignments, check.alignment: chosen})
    confirm = compile_check(at, check, options.pairs, seed)
    confirm = replace(confirm, alignment=chosen, seed=plan.seed, seed_source=plan.seed_source)
    latents = ", ".join(map(str, found["chosen"]))
    note = (f"`locate {search.var} over latents`: latent(s) [{latents}] of {found['d_sae']} at {found['site']} "
            f"(IIA {found['chosen_iia']:.3f} on the search's pairs, seed {found['seed']}; "
            + ("reaches" if found["reached"] else "falls short of")
            + f" {found['threshold']:g}); the claim below is scored with them on fresh pairs (seed {seed})")
    return confirm, note
