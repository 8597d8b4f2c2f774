"""Guards of a circuit claim: what keeps a pass from being unearned (claims/circuit.py uses them).

- the effect of ablating everything must clear floating-point rounding (`effect_above_rounding`);
- a circuit that is the whole model cannot pass faithfulness/completeness (`whole_universe`);
- the full model must compute MODEL.OUTPUT on the prompts (`task_guard`);
- a gross overshoot of faithfulness is noted (`overshoot_notes`).
"""

from __future__ import annotations

import numpy as np
import torch

from causalspec.compile.circuit_plan import EMBED, HEAD, LOGITS, MLP, Arch, CircuitPlan, ResolvedCircuit, upstream
from causalspec.score.circuit_scores import CircuitSummary
from causalspec.score.stats import wilson


def overshoot_notes(circuit, summary: CircuitSummary) -> list[str]:
    """A note for each claimed `faithfulness >= t` whose estimate exceeds 2 − t (|1 − f| > 1 − t).

    Why a note and not a failure: faithfulness claims are bounded from below by design (docs
    §8.1), and mean/resample ablations make true circuits overshoot a little. But a circuit at
    4.9 times the full model's effect is far from reproducing it (MIB's CMD counts |1 − f|),
    and a reader of "faithfulness >= 0.9 ✓" should be told."""
    out: list[str] = []
    s = summary.score("faithfulness")
    if s is None or not np.isfinite(s.value.estimate):
        return out
    for cond in circuit.conditions:
        if cond.metric == "faithfulness" and s.value.estimate > 2 - float(cond.threshold):
            out.append(f"faithfulness {s.value.estimate:.3f} overshoots the full model: the circuit moves the metric "
                       f"{s.value.estimate:.2f} times as much as the full model does (|1 − f| = "
                       f"{abs(1 - s.value.estimate):.2f} > 1 − {cond.threshold:g}); the claim is bounded from "
                       "below only, so this does not fail it — read the means above")
            break
    return out


TASK = "task:accuracy"  # the full model's per-prompt answer correctness (evaluated with N's forward pass)


def task_accuracy_fn(plan: CircuitPlan, adapter):
    """Per prompt, 1.0 when the network's answer — the output value whose answer token has the
    highest logit, read where the network's answer is read — is MODEL.OUTPUT's value, else 0.0."""
    domain = plan.model.domain(plan.output)
    expected = np.asarray(domain.codes(plan.model.run(plan.rows)[plan.output]))

    def fn(logits: torch.Tensor, batch, idx: np.ndarray) -> np.ndarray:
        return (np.asarray(adapter.predict(logits, batch)) == expected[idx]).astype(float)
    return fn


def task_summary(values, plan: CircuitPlan, metric: str) -> dict:
    """How often the full model gives MODEL.OUTPUT's value, and whether the task guard judges it
    (not for `prob_greater`, whose task is the order of the values, not the output's value; not
    for an output of a single value: the network's answer, an argmax over one candidate, is that
    value on every prompt, chance is 1 and no accuracy can be significantly above it, so the
    guard would fail every claim about such a model — a fixed-token metric over a placeholder
    output — whatever the network computes)."""
    if values is None:
        return {}
    v = np.asarray(values, dtype=float)
    k = plan.model.domain(plan.output).size
    return {"successes": int(np.nansum(v)), "trials": int(v.size), "chance": 1.0 / max(k, 1),
            "judged": metric != "prob_greater" and k >= 2}


def task_guard(summary: CircuitSummary, output: str) -> str:
    """Why the full model's behaviour cannot be explained as MODEL.OUTPUT ('' when it can): its
    answers are not significantly above chance (the Wilson 95% lower bound of its accuracy is at
    or below 1/k, k the output's values).

    Why: a circuit claim says that components explain how the network computes MODEL.OUTPUT.
    Faithfulness compares the circuit with the full model, whatever the full model does: a
    network whose unembedding was permuted answered wrong on every prompt, the circuit
    reproduced the wrong answers, and `faithfulness >= 0.8` PASSED for every metric, `accuracy`
    included (tests/claims/test_circuit_redteam2.py). The alignment checks refuse the same thing
    (pairs the network gets wrong are not kept); here the whole claim is refused.

    A full model right on every prompt is not refused, however few the prompts: it has the
    behaviour on every prompt the claim is judged on, so there is nothing a circuit could be
    explaining instead (the keep-rate guard's chance test likewise applies only where a pair
    was dropped). Without this, a correct network on 3 prompts of a binary output — Wilson
    lower bound 0.44 of 3/3 — failed a correct claim."""
    t = summary.task
    if not t or not t.get("judged") or not t.get("trials"):
        return ""
    if int(t["successes"]) == int(t["trials"]):
        return ""
    p = wilson(int(t["successes"]), int(t["trials"]))
    if p.lower > t["chance"]:
        return ""
    return (f"the full model does not compute {output} on these prompts: its answer (the value whose answer token has "
            f"the highest logit) is right on {t['successes']} of {t['trials']} ({p.estimate:.1%}, 95% CI "
            f"[{p.lower:.1%}, {p.upper:.1%}]), not above chance ({t['chance']:.1%}); a circuit cannot explain a "
            "behaviour the network does not have (task guard)")


VACUOUS_SCORES = ("faithfulness", "completeness")  # scores that are 1 by construction when C is N


def whole_universe(resolved: ResolvedCircuit, arch: Arch) -> str:
    """Why the circuit is the full model by construction, or "" when it is not.

    At node granularity a circuit holding every node of its universe (every head if it names
    a head, every MLP if it names an MLP) at every position ablates nothing: C is N, so
    faithfulness is 1 and completeness 1 whatever the network does — the circuit run makes no
    intervention that could move the metric. Such a claim cannot be an earned pass; those two
    conditions fail with this reason (necessity and minimality still knock nodes out and are
    judged as measured). At edge granularity the same holds when, in addition, every input of
    every node and the logits have an edge from every node upstream of them (and from `embed`
    when the circuit routes it): no path is cut either."""
    if not resolved.members:
        return ""
    if resolved.edges is not None and not _edges_complete(resolved, arch):
        return ""
    if not all(m.everywhere for m in resolved.members):
        return ""
    # the nodes the complement is taken over: the universe's kinds, and MLPs only where the
    # network has them (an attention-only network's `mlp` outputs 0: ablating it removes nothing)
    kinds_here = {k for k in resolved.universe if k == HEAD or (k == MLP and not _no_mlps(arch))}
    nodes = {n for n in resolved.nodes if n.kind in kinds_here}
    want = 0
    if HEAD in kinds_here:
        want += arch.layers * arch.heads
    if MLP in kinds_here:
        want += arch.layers
    if not kinds_here or len(nodes) < want:
        return ""
    kinds = " and ".join(k for k, on in (("every attention head", HEAD in kinds_here),
                                          ("every MLP", MLP in kinds_here)) if on)
    return (f"the circuit holds {kinds} of the network at every position ({len(nodes)} nodes"
            f"{', with every edge between them' if resolved.edges is not None else ''}), so nothing is "
            "ablated: m(C) = m(N) by construction and faithfulness/completeness are 1 whatever the network "
            "does (a vacuous claim); name the components you claim carry the behaviour")


ATTN_ONLY_FAMILY = "attn-only"  # run.families.ATTN_ONLY: TransformerLens attention-only models


def _no_mlps(arch: Arch) -> bool:
    """Whether the network has no MLPs (run.attn_only: its `mlp` modules output 0).

    Why it matters: under a convention that ablates MLPs (`convention mib`, `mlps ablated`)
    the universe holds MLP nodes; on an attention-only network they compute nothing, so a
    circuit of every head is still the whole model. Counting MLPs there called such a circuit
    partial, and its faithfulness 1 by construction passed."""
    return arch.family == ATTN_ONLY_FAMILY


def _edges_complete(resolved: ResolvedCircuit, arch: Arch) -> bool:
    """Whether the circuit's edges allow every sender into every receiver (path patching then cuts
    nothing); the upstream rule is the engine's (compile.circuit_plan.upstream)."""
    edges = resolved.edges or {}
    nodes = resolved.nodes
    receivers: list = [LOGITS]
    for n in nodes:
        receivers += [(n, p) for p in ("q", "k", "v")] if n.kind == HEAD else [(n, None)]
    for r in receivers:
        allowed = edges.get(r, frozenset())
        if resolved.embed_gated and EMBED not in allowed:
            return False
        dst, port = (r, None) if r == LOGITS else r
        if any(upstream(u, dst, port, arch) and u not in allowed for u in nodes):
            return False
    return True


EFFECT_RTOL = 1e-5  # an effect below this fraction of the metric's scale is floating-point rounding


def effect_tolerance(means, logit_scale: float = 0.0) -> float:
    """The largest |m(N) − m(∅)| that float32 rounding alone can produce: `EFFECT_RTOL` times the
    metric's scale, max(1, |m(N)|, |m(∅)|, the largest |logit| a logit metric read) (logits and
    probabilities are in natural units, so the scale is at least 1; a logit difference near 0
    between logits near 50 carries the rounding of logits near 50)."""
    scale = max(1.0, float(logit_scale) if np.isfinite(logit_scale) else 1.0)
    for key in ("full model", "everything ablated"):
        e = means.get(key)
        if e is not None and np.isfinite(e.estimate):
            scale = max(scale, abs(float(e.estimate)))
    return EFFECT_RTOL * scale


def effect_above_rounding(eff, means, logit_scale: float = 0.0) -> bool:
    """Whether the interval of m(N) − m(∅) lies outside ±`effect_tolerance` (not merely outside 0).

    Why: an ablation that replaces an activation by (almost) itself — mean ablation of an
    activation that is constant over the reference prompts, whose float32 mean differs from
    it in the last bit — moves the metric by a few ulps, and the same few ulps on every
    prompt. The bootstrap interval of such an effect is tiny and can exclude 0, and then
    every score is a ratio of rounding errors: faithfulness 1.0 passed for a circuit whose
    ablation does nothing (tests/claims/test_circuit_redteam2.py). Requiring the effect to
    clear rounding, relative to the metric's magnitude, keeps the guard's meaning: an
    ablation must be shown to move the metric."""
    tol = effect_tolerance(means, logit_scale)
    return bool(eff.lower > tol or eff.upper < -tol)


__all__ = ["EFFECT_RTOL", "TASK", "VACUOUS_SCORES", "effect_above_rounding", "effect_tolerance", "overshoot_notes",
           "task_accuracy_fn", "task_guard", "task_summary", "whole_universe"]
