"""Run an alignment check: compile → load network → (locate) → engine → score → stress → verdict.

Why the check is assembled here and nowhere else: each stage returns what it found — the
`locate` sweep (`claims.locate.Located`), the scored interchange sets, the stress tests'
warnings, training reports and controls (`claims.stress`), the verdict of the `expect`
conditions (`Verdict`) — and `run_alignment_check` builds the `CheckResult` once from
them. A check that fails part-way keeps what finished before the failure (the JSON report
of an errored check shows its sweep, its load notes, its scored sets), and the ladder of
`claims.common.check_failure` names the cause.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from causalspec.claims.common import (CheckOptions, Verdict, check_failure, compare, condition_text, fmt,
                                     reproduce_command)
from causalspec.claims.chance import chance_agreement
from causalspec.claims.elements import (close_training, element_irs, elements_note, pooled_claims, pooled_controls,
                                       summed)
from causalspec.claims.locate import Sweep, locate_for_check, sweep
from causalspec.claims.networks import NetworkCache
from causalspec.claims.procedure import AlignmentRun, compute_threads, describer, make_alignment_run
from causalspec.claims.latent_search import confirmation_plan, search_latents
from causalspec.claims.sae_honesty import pooled_sae, sae_honesty
from causalspec.claims.stress import heldout_gap, stress_test
from causalspec.compile.plan import CheckPlan, compile_check
from causalspec.compile.seeds import effective_seed
from causalspec.run.loading import LoadedNetwork
from causalspec.score.guards import ALPHA, KAPPA_MARGIN, MIN_DISCORDANT, fmt_p
from causalspec.score.keep_rate import LOW_KEEP_RATE, low_keep_rate_hint
from causalspec.score.results import (CONTROL_STATISTIC, ERROR, FAILED, PASSED, CheckResult, ClaimResult,
                                      ConditionResult, ControlResult)
from causalspec.semantics.analyse import SpecIR
from causalspec.semantics.ir import AlignmentIR


@dataclass
class _Found:
    """What the stages of one check have returned so far (the CheckResult is built from it
    once, at the end, whether the check finished or failed part-way)."""

    notes: list[str] = field(default_factory=list)
    locate: dict[str, Any] | None = None
    pool: int = 0
    unique_inputs: int = 0
    claims: list[ClaimResult] = field(default_factory=list)
    aaa: float | None = None
    warnings: list[str] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)
    controls: list[ControlResult] = field(default_factory=list)
    forward_passes: dict[str, int] = field(default_factory=dict)
    sae: dict[str, Any] | None = None

    def add_notes(self, notes) -> None:
        for n in notes:  # each note once, in order of arrival
            if n not in self.notes:
                self.notes.append(n)


def run_alignment_check(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache) -> CheckResult:
    """The verdict of one alignment check (`check` blocks): an error or a skip names its cause."""
    start = time.perf_counter()
    alignment = ir.alignments[check.alignment]
    seed = effective_seed(options.seed, check.seed, getattr(check, "seed_given", True), options.seed_flag)
    pairs = int(options.pairs if options.pairs is not None else check.pairs)
    found = _Found()
    try:
        verdict = _run(ir, check, options, networks, found)
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - classified by the one ladder (ours: re-raised)
        verdict = Verdict(*check_failure(exc))
    return CheckResult(
        check.name, alignment.name, alignment.model, alignment.network, verdict.status, verdict.reason,
        claims=found.claims, conditions=verdict.conditions, aaa=found.aaa, seed=seed.value, seed_source=seed.source,
        pairs=pairs, pool=found.pool, unique_inputs=found.unique_inputs, forward_passes=found.forward_passes,
        seconds=time.perf_counter() - start, file=ir.file, line=check.span.line,
        reproduce=reproduce_command(ir.file, check.name, pairs, seed.value), notes=found.notes,
        warnings=found.warnings, training=found.training, controls=found.controls, locate=found.locate,
        sae=found.sae, tolerance=float(check.tolerance) if getattr(check, "tolerance", None) is not None else None)


def _run(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache, found: _Found) -> Verdict:
    alignment = ir.alignments[check.alignment]
    if alignment.output_elements:
        verdict = _run_elements(ir, check, options, networks, found, alignment)
    else:
        verdict = _run_one(ir, check, options, networks, found)
    judged = [c for c in found.claims if c.kind in ("declared", "subset")]  # the rows the guards judge
    found.warnings.extend(w for w in map(thin_evidence_warning, judged) if w)
    return verdict


def _run_elements(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache, found: _Found,
                  alignment: AlignmentIR) -> Verdict:
    """`O[i] -> output @ i`: the check run once per output element (`O[k]` read at its position,
    on the same pairs) and pooled (`claims.elements`). Learned featurizers are trained once, over
    every element (the pooled objective: `run.elements`), and scored per element."""
    irs = element_irs(ir, alignment)
    searched = None
    if getattr(check, "latent_search", None) is not None:  # one search, every latent scored at every element
        parts = [(one, compile_check(one, check, options.pairs, options.seed)) for one in irs]
        searched = search_latents(ir, check, parts[0][1], networks.get(ir, parts[0][1].network.name, options),
                                  options, elements=parts)
    pooled = None
    if getattr(check, "locate", None):  # one sweep, scored at every element and pooled, then one choice
        plan = compile_check(ir, check, options.pairs, options.seed)
        pooled = sweep(ir, check, plan, networks.get(ir, plan.network.name, options), options, options.progress)
    per: list[tuple[str, _Found]] = []
    training: dict = {}  # the element runs share one training (its split, clean pass and featurizers)
    try:
        for (element, _), one in zip(alignment.output_elements, irs):
            sub = _Found()
            per.append((element, sub))
            try:
                _run_one(one, check, options, networks, sub, pooled, training, searched)
            finally:  # what the element runs found so far is kept, whether or not the last one finished
                _merge_elements(alignment, per, found)
    finally:  # the shared training engines' activation stores (disk mode: their temporary folders)
        close_training(training)
    return evaluate_conditions(check, found.claims, found.controls, alignment.network)


def _merge_elements(alignment: AlignmentIR, per: list[tuple[str, _Found]], found: _Found) -> None:
    found.claims = pooled_claims([(el, f.claims) for el, f in per])
    found.controls = pooled_controls([(el, f.controls) for el, f in per])
    found.warnings = [f"{el}: {w}" for el, f in per for w in f.warnings]
    found.forward_passes = summed([f.forward_passes for _, f in per])
    found.pool, found.unique_inputs = per[0][1].pool, per[0][1].unique_inputs
    found.locate = next((f.locate for _, f in per if f.locate), None)  # the pooled sweep, the same in each
    found.sae = pooled_sae([(el, f.sae) for el, f in per])  # fidelity and error term per element, and pooled
    # one training over every element: its report once (each element's training-pair IIA is in its rows)
    found.training = [dict(t) for t in next((f.training for _, f in per if f.training), [])]
    if found.training:  # the network's report: its train/held-out gap over the pooled rows
        found.training[0]["heldout_gap"] = heldout_gap([(None, c) for c in found.claims if c.kind == "declared"])
    found.notes = []
    found.add_notes([elements_note(alignment.output_elements)] + [n for _, f in per for n in f.notes])
    subsets = [c for c in found.claims if c.kind == "subset"]
    found.aaa = float(np.mean([c.iia.estimate for c in subsets if c.iia.trials] or [np.nan])) if subsets else None


def _run_one(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache, found: _Found,
             swept: Sweep | None = None, training: dict | None = None, searched: dict | None = None) -> Verdict:
    plan = compile_check(ir, check, options.pairs, options.seed)
    net = networks.get(ir, plan.network.name, options)
    found.notes.extend(net.extra.get("load_notes", ()))  # e.g. parameters transformers initialised randomly
    latent_search = None
    if getattr(check, "latent_search", None) is not None:  # rank the SAE's latents, re-plan on fresh pairs
        latent_search = searched if searched is not None else search_latents(ir, check, plan, net, options)
        plan, note = confirmation_plan(ir, check, plan, latent_search, options)
        found.notes.append(note)
    if getattr(check, "locate", ()):  # sweep the cells, keep the best, re-plan on fresh pairs
        located = locate_for_check(ir, check, plan, net, options, swept)
        found.locate = located.sweep
        plan = located.confirmation(check)
        found.notes.append(located.note)
        found.add_notes(located.sweep.get("notes", ()))
    run = make_alignment_run(ir, check, plan, net, options)
    found.pool = len(next(iter(plan.pool.values())))
    found.unique_inputs = run.n_unique
    with compute_threads(net.module), run.engine:  # the engine closes its activation stores afterwards
        verdict = _score(ir, check, plan, net, run, options, found, training)
    if latent_search is not None:
        found.sae = {**(found.sae or {}), "latent_search": latent_search}
    return verdict


def _score(ir: SpecIR, check, plan: CheckPlan, net: LoadedNetwork, run: AlignmentRun, options: CheckOptions,
           found: _Found, training: dict | None = None) -> Verdict:
    engine = run.engine
    model, domain = plan.model, run.domain
    progress = options.progress
    total_pairs = sum(c.pairs.n for c in plan.claims)
    advance = progress("forward passes", run.n_unique + total_pairs) if progress else None
    run.clean(advance)
    if run.alignment.learned:  # train (or reuse) das / boundless subspaces on a disjoint split
        run.fit(ir, check, net, artifacts=options.artifacts, retrain=options.retrain, progress=progress,
                shared=training)

    runs = []
    scored = []
    for claim in plan.claims:
        cr = run.claim_run(claim)
        cr.patched = run.patch(cr, advance=advance)
        runs.append(cr)
        scored.append(run.score(cr, cr.patched, describe=describer(model, domain, cr)))
    if any(c.kept < c.sampled for c in scored):  # the chance test applies, on its own sample (claims.chance)
        tested = chance_agreement(run)
        for c in scored:
            c.agreement = tested
    found.claims.extend(scored)
    hint = low_keep_rate_hint(run, found.claims)
    if hint:
        found.warnings.append(hint)
    subsets = [c for c in found.claims if c.kind == "subset"]
    if subsets:
        found.aaa = float(np.mean([c.iia.estimate for c in subsets if c.iia.trials] or [np.nan]))
    # training report, diagnostics, illusion check, controls: each kept as it finishes
    for finding in stress_test(ir, check, plan, net, run, runs, found.claims, options, training):
        if isinstance(finding, str):
            found.warnings.append(finding)
        elif isinstance(finding, dict):
            found.training.append(finding)
        else:
            found.controls.append(finding)
    declared = [(cr, res) for cr, res in zip(runs, found.claims) if res.kind == "declared"]
    found.sae, sae_warnings = sae_honesty(run, declared)  # fidelity and the error-term comparison
    found.warnings.extend(sae_warnings)
    found.forward_passes = dict(engine.forward_passes)
    found.add_notes(engine.run_notes())
    return evaluate_conditions(check, found.claims, found.controls, plan.alignment.network)


# ───────────────────────── verdicts ─────────────────────────

def evaluate_conditions(check, claims: list[ClaimResult], controls: list[ControlResult], network: str) -> Verdict:
    """Judge every `expect` condition; then apply the guards that make a pass earned."""
    declared = [c for c in claims if c.kind == "declared"]
    subsets = [c for c in claims if c.kind == "subset"]
    problems = []
    unearned = []  # guards judged after the conditions: a failed condition is the clearer reason
    for claim in declared + subsets:
        if claim.kept == 0:
            problems.append(f"{claim.label}: no pair kept — the network is wrong on every base or source "
                            f"({claim.sampled} sampled)")
        elif claim.changed == 0:
            problems.append(f"{claim.label}: the interchange changes the expected output on none of the "
                            f"{claim.kept} kept pairs, so these pairs cannot test it")
        elif claim.moved == 0:
            problems.append(f"{claim.label}: the intervention changed the network's output on none of the "
                            f"{claim.kept} kept pairs (effect-size guard)")
        else:
            guard = keep_rate_guard(claim) or baseline_guard(claim)
            if guard:
                unearned.append(guard)
    conditions = [_condition(cond, declared, subsets, controls) for cond in check.conditions]
    failed_conditions = [c for c in conditions if not c.passed]
    broken = nonfinite_problem(declared + subsets, network)
    if broken:
        return Verdict(ERROR, broken, conditions)
    if problems:
        return Verdict(FAILED, "; ".join(problems), conditions)
    if failed_conditions:
        return Verdict(FAILED, "; ".join(f"{c.text}: got {fmt(c.value)}" + (f" ({c.detail})" if c.detail else "")
                                         for c in failed_conditions), conditions)
    if not conditions:
        return Verdict(FAILED, "the check has no expectation to judge", conditions)
    if unearned:
        return Verdict(FAILED, "; ".join(unearned), conditions)
    return Verdict(PASSED, "", conditions)


def keep_rate_guard(claim: ClaimResult) -> str:
    """Why the kept pairs of `claim` cannot earn a pass ('' when they can): under LOW_KEEP_RATE of
    the sampled pairs kept, or — when the keep filter dropped any pair — an unpatched network whose
    agreement with the model is not significantly above chance (score.guards.Agreement) on the
    check's pool, topped up with rows drawn for the test (claims.chance). The pairs a network
    happens to get right can agree with any claim: a network computing y passes "O = x" on the
    inputs where x == y, and with a binary output that keeps ~25% of the pairs, above the floor.
    When no pair was dropped nothing was selected: the kept pairs are the sampled ones, and the
    chance test is not needed (it would only refuse small samples of a network that is right
    everywhere), and nothing is drawn for it."""
    if claim.keep_rate < LOW_KEEP_RATE:
        return (f"{claim.label}: only {claim.kept} of {claim.sampled} pairs kept ({claim.keep_rate:.0%}, below "
                f"{LOW_KEEP_RATE:.0%}): the network disagrees with the model on most inputs, so the few it gets "
                "right cannot show it computes the model (keep-rate guard)")
    a = claim.agreement
    if a is None or claim.kept >= claim.sampled or a.significant:
        return ""
    needed = a.trials_needed()
    # the test's rows are the pool's, topped up with rows drawn for it (claims.chance):
    # only a pool larger than that sample enlarges it
    advice = (f"if the agreement is real, a test on about {needed} inputs would show it (now {a.trials}: raise "
              f"`pool` to about {needed} — the test uses every row of the pool; a larger pool costs only clean "
              "forward passes)" if needed is not None
              else "more inputs would not help: fix the network, the prompt or the read-out")
    sample = (f"the {a.trials} inputs of its chance test ({fmt(a.rate)}, κ = {fmt(a.kappa)}; {a.trials - a.drawn} "
              f"of the check's pool, {a.drawn} drawn for the test)" if a.drawn
              else f"the {a.trials} inputs of the check's pool ({fmt(a.rate)}, κ = {fmt(a.kappa)})")
    return (f"{claim.label}: the unpatched network agrees with the model on {a.agreed} of {sample}, "
            "not significantly above chance — "
            f"{fmt(a.chance)} is the agreement of a network whose outputs were independent of the model's, and a "
            f"pass needs more than {fmt(a.null)} (κ > {KAPPA_MARGIN:g}; one-sided exact binomial test "
            f"p = {fmt_p(a.p_value)}, needs < {ALPHA:g}): the {claim.kept} kept pairs may be just the inputs where "
            f"the two coincide, on which a false claim looks right; {advice} (keep-rate guard: chance agreement)")


def baseline_guard(claim: ClaimResult) -> str:
    """Why the IIA of `claim` does not earn a pass over the no-intervention baseline ('' when it
    does): on the same kept pairs, the pairs the patch gained (patched matches the counterfactual
    output, unpatched did not) must outnumber those it lost, by a one-sided exact sign test at
    ALPHA (score.guards.PairedChange). Where few pairs change the expected output a site that
    does not hold the variable scores about as high as doing nothing, and a raw comparison would
    call a one-pair lead earned.

    Too few to decide: with under MIN_DISCORDANT gained-or-lost pairs no outcome can reach ALPHA
    (0.5**4 = 0.0625), so the test cannot tell a correct claim from a lucky one. There a claim that
    lost no pair is not refused — every pair the patch changed went its way, and refusing would fail
    every correct claim on a sample this small — but `thin_evidence_warning` says so with advice; a
    claim that lost any is refused."""
    d = claim.paired
    if d is None:
        # built without per-pair outputs (a ClaimResult made by hand): only the raw comparison is possible
        if claim.iia.successes <= claim.baseline.successes:
            return (f"{claim.label}: IIA {fmt(claim.iia.estimate)} is no better than the no-intervention baseline "
                    f"{fmt(claim.baseline.estimate)}: the patched network matches the counterfactual output no more "
                    "often than the unpatched one (baseline guard)")
        return ""
    if d.significant:
        return ""
    head = f"{claim.label}: IIA {fmt(claim.iia.estimate)} against the no-intervention baseline " + _paired_text(claim)
    if d.gained <= d.lost:
        return (f"{head}; the patched network matches the counterfactual output no more often than the unpatched "
                "one (IIA is no better than the no-intervention baseline), and more pairs would not change that "
                "(baseline guard)")
    if d.discordant < MIN_DISCORDANT:
        if d.lost == 0:
            return ""  # too few to decide, nothing against it: a warning (thin_evidence_warning), not a refusal
        return (f"{head}; too few changed pairs to decide, and the patch lost {d.lost} of them — the test needs at "
                f"least {MIN_DISCORDANT} pairs where the patched and the unpatched outputs differ in matching it; "
                f"{_pairs_advice(claim)} (baseline guard)")
    return f"{head}; a lead this small may be luck; {_pairs_advice(claim)} (baseline guard)"


def thin_evidence_warning(claim: ClaimResult) -> str:
    """The warning of a claim the baseline guard let through with too few changed pairs to decide
    ('' otherwise): every pair the patch changed went the claim's way, but fewer than
    MIN_DISCORDANT of them, so no test can tell it from luck."""
    d = claim.paired
    if d is None or d.significant or d.lost or not 0 < d.gained < MIN_DISCORDANT:
        return ""
    return (f"{claim.label}: too few changed pairs to decide whether the IIA beats the no-intervention baseline "
            f"{fmt(claim.baseline.estimate)} — {_paired_text(claim, baseline=False)}; the test needs at least "
            f"{MIN_DISCORDANT} pairs where the patched and the unpatched outputs differ in matching it, so the pass "
            f"rests on {d.gained} pair(s); {_pairs_advice(claim)} (baseline guard)")


def _paired_text(claim: ClaimResult, baseline: bool = True) -> str:
    d = claim.paired
    assert d is not None
    return ((f"{fmt(claim.baseline.estimate)}: " if baseline else "")
            + f"the patch gained the counterfactual output on {d.gained} kept pair(s) and lost it on {d.lost} "
            f"(one-sided exact sign test p = {fmt_p(d.p_value)}, needs < {ALPHA:g})")


def _pairs_advice(claim: ClaimResult) -> str:
    needed = claim.paired.pairs_needed(claim.sampled) if claim.paired is not None else None
    return (f"at this rate about {needed} sampled pairs (now {claim.sampled}) would decide" if needed is not None
            else "raise `pairs`")


def _condition(cond, declared: list[ClaimResult], subsets: list[ClaimResult],
               controls: list[ControlResult]) -> ConditionResult:
    """One `expect` condition judged against the scored sets (or a control)."""
    stat = cond.statistic
    pick = (lambda p: p.lower) if stat == "lower95" else (lambda p: p.estimate)

    def result(value, ok, detail) -> ConditionResult:
        return ConditionResult(condition_text(cond), cond.metric, stat, cond.aggregation, cond.op, cond.threshold,
                               value, bool(ok), detail)

    if cond.metric == "iia":
        values = [pick(c.iia) for c in declared if c.iia.trials]
        if not values:
            return ConditionResult(condition_text(cond), "iia", stat, cond.aggregation, cond.op, cond.threshold,
                                   None, False, "no kept pairs to score")
        if cond.aggregation == "mean":
            value = float(np.mean(values))
            return result(value, compare(value, cond.op, cond.threshold),
                          f"mean over {len(values)} interchange set(s)")
        oks = [compare(v, cond.op, cond.threshold) for v in values]
        ok = all(oks) and len(values) == len(declared)
        value = float(min(values) if cond.op in (">=", ">") else max(values))
        failing = [c.label for c, o in zip(declared, oks) if not o]
        return result(value, ok, "every interchange set" if ok else f"fails for {', '.join(failing)}")
    if cond.metric == "aaa":
        values = [pick(c.iia) for c in subsets if c.iia.trials]
        mean = float(np.mean(values)) if values else None
        ok = mean is not None and compare(mean, cond.op, cond.threshold)
        return result(mean, ok, f"mean IIA over {len(subsets)} non-empty subset(s) of the aligned variables")
    if cond.metric == "control":
        return result(*_control_condition(cond, controls))
    return ConditionResult(condition_text(cond), cond.metric, stat, cond.aggregation, cond.op, cond.threshold, None,
                           False, f"unknown metric `{cond.metric}`")


def nonfinite_problem(claims, network: str) -> str:
    """The error of a check whose network gave NaN or inf outputs on any pair (clean or patched),
    or "" when every output was finite. Such a claim cannot pass: its pairs were dropped or
    scored as wrong, and the rest may look fine (a network NaN on a third of its inputs
    would otherwise pass `iia >= 0.75`)."""
    parts = []
    for c in claims:
        if c.nonfinite:
            kinds = " and ".join(f"{kind} on {count}" for kind, count in c.nonfinite.items())
            parts.append(f"{c.label}: {sum(c.nonfinite.values())} of {c.sampled} pairs ({kinds})")
    if not parts:
        return ""
    return (f"network `{network}` gave non-finite outputs (NaN/inf) on clean or patched runs — "
            + "; ".join(parts) + "; a claim on non-finite outputs cannot be judged: fix the network (or its dtype)")


def _control_condition(cond, controls: list[ControlResult]) -> tuple[float | None, bool, str]:
    """`control(NAME) <= t`: every declared set's control value (each), or their mean, bounded.

    A control of random draws has one value per set: the mean of its draws
    (score.results.CONTROL_STATISTIC); the detail says how many draws it is the mean of.
    """
    control = next((c for c in controls if c.name == cond.arg), None)
    if control is None:
        return None, False, f"control `{cond.arg}` did not run"
    if not control.applicable:
        return None, False, f"control `{cond.arg}` does not apply: {control.detail}"
    values = [v for v in control.values if v is not None]
    if not values:
        return None, False, f"control `{cond.arg}` has no scored pairs"
    of = f"{CONTROL_STATISTIC} of {control.n_draws} draw(s) per set; " if control.n_draws else ""
    if cond.aggregation == "mean":
        value = float(np.mean(values))
        return value, compare(value, cond.op, cond.threshold), f"{of}mean over {len(values)} interchange set(s)"
    oks = [v is not None and compare(v, cond.op, cond.threshold) for v in control.values]
    value = float(max(values) if cond.op in ("<=", "<") else min(values))
    failing = [lab for lab, o in zip(control.labels, oks) if not o]
    ok = all(oks)
    return value, ok, of + ("every interchange set" if ok else f"fails for {', '.join(failing)}")
