"""Stress-testing a claim after it is scored: training report, diagnostics, illusion check, controls.

Why after scoring and separate from it: none of this changes the claim's IIA; it says how
far to trust it. Each part reuses what the check already computed (clean caches, patched
predictions) and adds only the forward passes it needs:

* training report — for learned featurizers: the loss curve, where training stopped, the
  artifact, and the IIA on the training pairs (which the `heldout` control compares);
* diagnostics — IIA per bucket of high-level values, worst buckets, a suggestion
  (`score.buckets`); no forward pass;
* illusion check — for subspace featurizers: the whole component patched on the same pairs
  (reported beside the claim), and the same change of the subspace's coordinates written by
  the smallest vector inside the span of the site's clean activations (`score.illusion`; one
  more pass, only when the subspace leaves that span) — a warning when the effect disappears
  with the restriction;
* controls, when the check declares them (`controls …` or `expect control(NAME) …`):
  `random_init` (the same procedure — training included — on n seeded random
  re-initialisations of the network, scored on every pair: a random network is not filtered
  for being right), `random_subspace` (n draws of random subspaces of the same sizes at the
  same sites, on the real network and the same kept pairs), `heldout` (training IIA minus
  held-out IIA). A control of random draws is a distribution: `control(NAME)` compares its
  mean (score.results.CONTROL_STATISTIC); each draw's seed derives from the check's seed.

`stress_test` returns its findings as values, one at a time and in report order (a warning,
a training report, a control), so the check keeps those that finished when a later part
fails; it fills in only the per-set fields of the scored `ClaimResult`s it stress-tests
(`train_iia`, `buckets`, `full_patch`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator

import numpy as np
import torch

from causalspec.claims.procedure import counted_as, describer, make_alignment_run, random_copy
from causalspec.compile.seeds import derive_seed
from causalspec.run.engine import FULL, binding_text
from causalspec.score.buckets import buckets, full_patch_summary
from causalspec.score.illusion import (LEAK_TOL, clean_span, illusion_summary, illusion_warning, project,
                                      sample_limited)
from causalspec.score.results import CONTROL_STATISTIC, ControlResult, draw_summary
from causalspec.score.stats import wilson
from causalspec.semantics import featurizers as F
from causalspec.semantics.pairs import row_ids

CONTROL_TEXT = {
    "random_init": "same alignment procedure on a randomly re-initialised copy of the network (every pair scored)",
    "random_subspace": "random subspaces of the same sizes at the same sites (kept pairs)",
    "heldout": "training-pair IIA minus held-out IIA of the trained featurizer",
}


def _describe_pair(describe: Callable[[int, int], dict], patched: np.ndarray, i: int) -> dict:
    """The counterexample record of pair i, with the prediction the patched run made."""
    return describe(i, int(patched[i]))


def stress_test(ir, check, plan, net, run, runs, claims, options,
                training: dict | None = None) -> Iterator[str | dict[str, Any] | ControlResult]:
    """The stress tests of a scored check, yielded as they finish: warnings (str), training
    reports (dict: the network's, then one per `random_init` draw) and controls (ControlResult).
    `runs` and `claims` are the check's claim runs and their scored results, in plan order.
    `training` is the dict the element runs of a per-element check share (`AlignmentRun.fit`'s
    `shared`): each `random_init` draw keeps its copy and its training there, so it is trained
    once per check like the network's featurizer, not once per element."""
    declared = [(cr, res) for cr, res in zip(runs, claims) if res.kind == "declared"]
    yield from _nonlinear_warning(run.alignment)
    if run.fitted is not None:
        train_iia = run.train_scores()
        for _, res in declared:
            res.train_iia = train_iia.get(res.label)
        report = run.training_report()
        report["heldout_gap"] = heldout_gap(declared)  # always, whether or not `heldout` is listed
        yield report
    _diagnose(run, declared)
    with counted_as(run.engine, "illusion check"):
        yield from _illusion(run, declared)
    for name in getattr(check, "controls", ()):
        if name == "random_init":
            for item in _random_init(ir, check, plan, net, run, declared, options, training):
                yield item
                if isinstance(item, ControlResult):
                    yield from control_matches_claim(item, declared)
        elif name == "random_subspace":
            with counted_as(run.engine, "random_subspace"):
                control = _random_subspace(run, declared, check)
            yield control
            yield from control_matches_claim(control, declared)
        elif name == "heldout":
            yield _heldout(run, declared)


def control_matches_claim(control: ControlResult, declared) -> Iterator[str]:
    """A warning per set where a random control (`random_subspace`, `random_init`) scores as high
    as the claim: its mean IIA reaches the claim's 95% lower bound.

    Why: a control exists to show that the claim's alignment is special — an arbitrary subspace
    of the same size, or the same procedure on a random network, should not do as well. When
    it does, the claim's IIA does not single out this alignment, whether or not the spec bounds
    the control with `expect control(NAME) <= x` (which is what turns this into a failure)."""
    if not control.applicable or not control.n_draws:
        return
    for (_, res), value in zip(declared, control.values):
        if value is None or not res.iia.trials:
            continue
        if value >= res.iia.lower:
            what = ("an arbitrary subspace of the same size" if control.name == "random_subspace"
                    else "the same procedure on a randomly re-initialised network")
            yield (f"{res.label}: control {control.name} scores {value:.3f} (mean of {control.n_draws} draw(s)), as "
                   f"high as the claim's IIA {res.iia.estimate:.3f} (95% lower bound {res.iia.lower:.3f}): {what} "
                   f"does as well, so this IIA does not single out the alignment; bound it with "
                   f"`expect control({control.name}) <= …` to make this a failure")


def heldout_gap(declared) -> list[dict]:
    """Per declared set: IIA on the training pairs, on the held-out pairs, and their difference
    (a learned featurizer fitted to its training pairs scores higher there)."""
    out = []
    for _, res in declared:
        train = res.train_iia.estimate if res.train_iia is not None and res.train_iia.trials else None
        held = res.iia.estimate if res.iia.trials else None
        out.append({"label": res.label, "train": train, "heldout": held,
                    "gap": None if train is None or held is None else train - held})
    return out


def _nonlinear_warning(alignment) -> Iterator[str]:
    kinds = sorted({b.featurizer.kind for bs in alignment.variables.values() for b in bs if not b.featurizer.linear})
    if kinds:
        yield (f"non-linear featurizer(s) {', '.join(kinds)}: with unrestricted maps any network can "
                               "be aligned to any algorithm; read the controls before the claim")


def _diagnose(run, declared) -> None:
    model = run.model
    for cr, res in declared:
        if cr.patched is None or not res.kept:
            continue
        pairs = cr.plan.pairs
        base_env = model.run(pairs.base)
        source_envs = [model.run(s) for s in pairs.sources]
        kept = cr.kept
        correct = cr.patched == cr.expected
        describe = describer(model, run.domain, cr)
        res.buckets, res.suggestion = buckets(model, cr.plan.groups, base_env, source_envs, kept, correct,
                                              functools.partial(_describe_pair, describe, cr.patched))


def _subspace(run, groups) -> bool:
    """A subspace featurizer somewhere in the claim (the illusion check's subject). SAE featurizers
    are not subspaces; their honesty check is the error-term comparison (claims.sae_honesty)."""
    feats = [b.featurizer for g in groups for v in g for b in run.alignment.variables[v]]
    return not any(isinstance(f, F.SAE) for f in feats) and any(not isinstance(f, F.Identity) for f in feats)


def _illusion(run, declared) -> Iterator[str]:
    """The whole-component patch (reported) and the in-span patch (the illusion test,
    `score.illusion`): one patched pass each per interchange set; the second only when
    some patched subspace leaves the span of the site's clean activations."""
    spans: dict = {}
    for cr, res in declared:
        if cr.patched is None or not _subspace(run, cr.plan.groups) or not res.kept:
            continue
        full = run.patch(cr, mode="full")
        summary = full_patch_summary(cr.kept, cr.expected, cr.net_base, cr.patched, full)
        restricted = _in_span_bases(run, cr.plan, spans)
        if isinstance(restricted, str):  # the span cannot be trusted or computed here
            summary.update({"dormant": False, "leak": None, "span_moved": None, "span_iia": None,
                            "span_dims": {}, "rerun": False, "untested": restricted})
        else:
            given, leak, dims = restricted
            span_preds = run.patch(cr, mode="given", random=given) if leak > LEAK_TOL else None
            summary.update(illusion_summary(cr.kept, cr.expected, cr.net_base, cr.patched, span_preds, leak, dims))
        res.full_patch = summary
        if summary["dormant"]:
            yield illusion_warning(res.label, summary)


def _in_span_bases(run, claim, spans: dict):
    """Per (variable, binding) of the claim: the patch restricted to write inside the span of
    the clean activations — `(B, M.T)` with `M = S (Bᵀ S)⁺` (`score.illusion.project`;
    `run.sites.Intervention`), FULL for a whole
    activation — with the largest leak (`score.illusion.project`) and, per binding, the sizes; or
    why the test does not apply (the clean activations stay on a remote server, or the pool
    is too small to span what the site uses: `score.illusion.sample_limited`)."""
    given: dict[tuple, Any] = {}
    leak = 0.0
    dims: dict[str, dict] = {}
    for group in claim.groups:
        for var in group:
            for b in run.alignment.variables[var]:
                width = run.cache.acts.width(b)
                basis = run.fitted.trained.basis(var, b) if run.fitted is not None else None
                if basis is None:
                    basis = run.engine.basis(b.featurizer, width)
                if basis is None:  # the whole activation: nothing to restrict
                    given[(var, b)] = FULL
                    continue
                if b not in spans:
                    rows = list(run.cache.acts[b])
                    if any(t.is_meta for t in rows):
                        return "the clean activations stay on the remote server"
                    n_rows = sum(int(t.numel() // max(int(t.shape[-1]), 1)) for t in rows)
                    span = clean_span(t.detach().float().cpu().numpy() for t in rows)
                    complete = run.n_unique >= run.model.input_space_size()
                    spans[b] = (span, sample_limited(int(span.shape[1]), n_rows, int(width), complete), n_rows)
                span, limited, n_rows = spans[b]
                if limited:
                    return (f"the pool's {run.n_unique} inputs span {span.shape[1]} of the {width} dims of "
                            f"`{b.site}` and each adds a new one: too few to tell which directions the site never "
                            "uses (raise `pool` above the site's width to test)")
                inside, out = project(basis.detach().cpu().double().numpy(), span)
                leak = max(leak, out)
                dims[binding_text(var, b)] = {"width": int(width), "span": int(span.shape[1]), "leak": out}
                given[(var, b)] = (basis.detach().float().cpu(),
                                   torch.from_numpy(np.ascontiguousarray(inside.T, dtype=np.float32)))
    return given, leak, dims


def _random_subspace(run, declared, check) -> ControlResult:
    """n random subspaces (`controls random_subspace(n=…)`), each scored on the claim's kept pairs."""
    out = ControlResult("random_subspace", CONTROL_TEXT["random_subspace"])
    n = check.control_draws("random_subspace") if hasattr(check, "control_draws") else 1
    draws: list[list] = [[] for _ in declared]
    pooled = [[0, 0] for _ in declared]
    baseline = [None] * len(declared)
    dims: set = set()
    for d in range(n):
        seed = derive_seed(run.plan.seed, f"random_subspace/{d}")
        bases, why = run.random_subspaces(seed)
        if why:
            out.applicable, out.detail = False, why
            return out
        out.seeds.append(seed)
        dims |= {int(b.shape[1]) for b in bases.values()}
        for i, (cr, _res) in enumerate(declared):
            scored = run.score(cr, run.patch(cr, mode="given", random=bases))
            draws[i].append(scored.iia.estimate if scored.iia.trials else None)
            pooled[i][0] += scored.iia.successes
            pooled[i][1] += scored.iia.trials
            baseline[i] = scored.baseline  # the same kept pairs in every draw
    _fill_draws(out, declared, draws, pooled, baseline, n)
    out.detail = (f"{n} draw(s) of random orthonormal subspace(s) of {', '.join(map(str, sorted(dims)))} dim(s) "
                  f"(seeds derived from the check's seed {run.plan.seed})")
    return out


def _fill_draws(out: ControlResult, declared, draws, pooled, baseline, n: int) -> None:
    """Per declared set: the draws, their CONTROL_STATISTIC (what `control(NAME)` compares) and
    the pooled IIA over every draw's pairs."""
    out.n_draws = n
    for i, (_, res) in enumerate(declared):
        out.labels.append(res.label)
        out.draws.append(draws[i])
        out.values.append(draw_summary(draws[i])[CONTROL_STATISTIC])
        out.iia.append(wilson(*pooled[i]))
        out.baseline.append(baseline[i])


def _heldout(run, declared) -> ControlResult:
    out = ControlResult("heldout", CONTROL_TEXT["heldout"])
    if run.fitted is None:
        out.applicable = False
        out.detail = "nothing in this alignment is trained (no das or boundless featurizer): there is no training split"
        return out
    for _cr, res in declared:
        out.labels.append(res.label)
        out.iia.append(res.train_iia)
        out.baseline.append(res.iia)
        if res.train_iia is not None and res.train_iia.trials and res.iia.trials:
            out.values.append(res.train_iia.estimate - res.iia.estimate)
        else:
            out.values.append(None)
    out.detail = "positive: better on the pairs it was trained on"
    return out


def _random_init(ir, check, plan, net, run, declared, options,
                 training: dict | None = None) -> Iterator[dict[str, Any] | ControlResult]:
    """n random re-initialisations (`controls random_init(n=…)`), each put through the same
    procedure: yields each draw's training report (learned featurizers), then the control."""
    out = ControlResult("random_init", CONTROL_TEXT["random_init"])
    if getattr(run.engine, "remote", None) is not None:  # the weights are on the server, not here
        out.applicable = False
        out.detail = "a remote model's weights cannot be redrawn; run this control on a model you can load"
        yield out
        return
    n = check.control_draws("random_init") if hasattr(check, "control_draws") else 1
    draws: list[list] = [[] for _ in declared]
    pooled = [[0, 0] for _ in declared]
    base_pooled = [[0, 0] for _ in declared]
    accuracy = []
    learned = False
    for d in range(n):
        seed = derive_seed(plan.seed, f"random_init/{d}")
        out.seeds.append(seed)
        other = _random_init_draw(ir, check, plan, net, options, seed, d, n, training)
        if other.alignment.learned:
            yield other.training_report()
        learned = other.alignment.learned
        for i, (cr, _res) in enumerate(declared):
            ocr = other.claim_run(cr.plan)
            scored = other.score(ocr, other.patch(ocr))
            draws[i].append(scored.iia.estimate if scored.iia.trials else None)
            pooled[i][0] += scored.iia.successes
            pooled[i][1] += scored.iia.trials
            base_pooled[i][0] += scored.baseline.successes
            base_pooled[i][1] += scored.baseline.trials
        other.engine.close()  # its activation stores (disk mode: removes their temporary folders)
        accuracy.append(float((other.cache.preds == other.pool_labels[_first_rows(other)]).mean()))
        for k, v in other.engine.forward_passes.items():
            key = f"{k} (random_init)" if "(" not in k else k.replace("(", "(random_init, ")
            run.engine.forward_passes[key] = run.engine.forward_passes.get(key, 0) + v
    _fill_draws(out, declared, draws, pooled, [wilson(*b) for b in base_pooled], n)
    out.detail = (f"{n} random cop{'y' if n == 1 else 'ies'} (seeds derived from the check's seed {plan.seed}); "
                  f"right on {sum(accuracy) / len(accuracy):.0%} of the pool's inputs on average; "
                  + ("the featurizer was trained on each the same way" if learned else "same sites and featurizers"))
    yield out


def _random_init_draw(ir, check, plan, net, options, seed: int, d: int, n: int, training: dict | None = None):
    """Draw d of random_init: a re-initialised copy, its clean pass and (learned featurizers)
    its training with the check's own training procedure and seed. With `training` (the element
    runs of `O[i] -> output @ i`), the copy and its training are the draw's, shared by every
    element run: the first trains over every element (the pooled objective), the others reuse it."""
    shared = None if training is None else training.setdefault(f"random_init:{seed}", {})
    copy = random_copy(net, seed) if shared is None or "copy" not in shared else shared["copy"]
    if shared is not None:
        shared["copy"] = copy
    other = make_alignment_run(ir, check, plan, copy, options, keep_filter=False,
                               label="random_init" if n == 1 else f"random_init #{d + 1}")
    other.clean()
    if other.alignment.learned:
        other.fit(ir, check, copy, artifacts=options.artifacts, retrain=options.retrain,
                  variant=f"random_init:{seed}", progress=options.progress, shared=shared)
    return other


def _first_rows(run):
    ids = row_ids(run.plan.pool)
    _, first = np.unique(ids, return_index=True)
    return first
