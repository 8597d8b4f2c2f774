"""Run a circuit claim: compile → load network → ablation values → variants → scores → CheckResult.

A circuit claim becomes a `CheckResult` with `kind = "circuit"`, so `causalspec check`, the
JSON and JUnit reports and the pytest plugin show it like a check (claims.runner.run_check
dispatches here). Its numbers live in `result.circuit` (score/circuit_scores.CircuitSummary):
the metric's means for the full model, the circuit and everything ablated, each claimed
score with its bootstrap interval, and the exact ablation in words.

Statuses: missing weights → skipped; a circuit the network cannot host (a head index out of
range, an unsupported family, prompts of different lengths under resampling) → error; a
claim that does not hold, or an ablation that does not move the metric at all (effect-size
guard) → failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from causalspec.claims.common import (CheckOptions, Verdict, check_failure, compare, condition_text, fmt,
                                     reproduce_command)
from causalspec.claims.circuit_guards import (EFFECT_RTOL, TASK, VACUOUS_SCORES, effect_above_rounding,
                                             effect_tolerance, overshoot_notes, task_accuracy_fn, task_guard,
                                             task_summary, whole_universe)
from causalspec.claims.networks import NetworkCache, engine_choice
from causalspec.compile.circuit_plan import (HEAD, MLP, Arch, CircuitPlan, ResolvedCircuit,
                                             compile_circuit, describe_prompt, prune_edges, resolve_circuit)
from causalspec.compile.seeds import derive_seed
from causalspec.interop.circuit_files import full_graph, graph_to_resolved, top_edges
from causalspec.run.adapters import CheckUsageError
from causalspec.run.engine import EngineOptions
from causalspec.run.circuit_engine import CircuitEngine, ResampleAblation, Variant, ZeroAblation, resample_mapping
from causalspec.run.families import resolve_family
from causalspec.run.hf_adapter import HFAdapter, unknown_token_check
from causalspec.score.circuit_scores import (ABLATED, CIRCUIT, FULL, CircuitSummary, circuit_scores,
                                             faithfulness_curve, needed_variants)
from causalspec.score.results import ERROR, FAILED, PASSED, CheckResult, ConditionResult
from causalspec.semantics.ir import ConventionIR
from causalspec.semantics.sites import ALL, LAST


REPORTED_GROUPS = 12  # up to this many groups, every group's necessity is reported


@dataclass
class _Found:
    """What a circuit claim's stages have returned so far (the CheckResult is built from it once)."""

    notes: list[str] = field(default_factory=list)
    forward_passes: dict[str, int] = field(default_factory=dict)
    circuit: CircuitSummary | None = None


def run_circuit(ir, circuit, options: CheckOptions, networks: NetworkCache) -> CheckResult:
    """The verdict of one circuit claim (`circuit` blocks): an error or a skip names its cause."""
    start = time.perf_counter()
    seed = int(options.seed if options.seed is not None else circuit.seed)
    pairs = int(options.pairs if options.pairs is not None else circuit.prompts)
    found = _Found()
    try:
        verdict = _run(ir, circuit, options, networks, found)
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - classified by the one ladder (ours: re-raised)
        verdict = Verdict(*check_failure(exc))
    return CheckResult(circuit.name, "", circuit.model, circuit.network, verdict.status, verdict.reason,
                       conditions=verdict.conditions, seed=seed,
                       seed_source=options.seed_flag if options.seed is not None else "spec", pairs=pairs,
                       forward_passes=found.forward_passes, seconds=time.perf_counter() - start, file=ir.file,
                       line=circuit.span.line, reproduce=reproduce_command(ir.file, circuit.name, pairs, seed),
                       notes=found.notes, kind="circuit", circuit=found.circuit)


class _EncodeOnly(HFAdapter):
    """An HFAdapter that only encodes (reference prompts are never scored)."""

    def _answer_candidates(self):  # the reference model's output is never read
        return None


def _run(ir, circuit, options: CheckOptions, networks: NetworkCache, found: _Found) -> Verdict:
    plan, engine, ablation, metric_fn, metric_text = prepare(ir, circuit, options, networks)
    loaded = networks.loaded.get(plan.network.name)
    found.notes.extend(getattr(loaded, "extra", {}).get("load_notes", ()))  # e.g. randomly initialised weights
    resolved = resolve_circuit(circuit, engine.arch)
    found.notes.extend(resolved.notes)
    progress = options.progress
    n = plan.prompts
    shared = _shared(networks)
    key_n = ("N", circuit.network, plan.network.source, describe_prompt(plan.network.encoding.prompt), circuit.model,
             circuit.output, n, plan.seed, repr(circuit.metric))
    key_e = ("∅", *key_n, _ablation_key(plan), resolved.universe, resolved.edges is not None and resolved.embed_gated,
             circuit.convention.input_ablation)
    reused = {k: shared[key] for k, key in ((FULL, key_n), (ABLATED, key_e)) if key in shared}

    wanted = [(c.metric, c.arg) for c in circuit.conditions]
    group_nodes = {g: [m.node.name for m in ms] for g, ms in resolved.groups.items()}
    if len(resolved.groups) <= REPORTED_GROUPS:  # necessity of every group is reported, claimed or not
        wanted += [("necessity", g) for g in resolved.groups if ("necessity", g) not in wanted]
    else:
        found.notes.append(f"necessity is reported only where claimed: the circuit has {len(resolved.groups)} "
                            f"groups (more than {REPORTED_GROUPS}), each would cost a forward pass per batch")
    variants = [v for v in (Variant(FULL, "clean"), Variant(ABLATED, "keep", _empty(resolved))) if v.key not in reused]
    variants.append(Variant(CIRCUIT, "keep", resolved))
    for key, (kind, arg) in needed_variants(wanted, group_nodes):
        if kind == "without":
            variants.append(Variant(key, "keep", resolved.without([arg])))
        elif kind == "without-node":
            g, v = arg
            node = next(m.node for m in resolved.groups[g] if m.node.name == v)
            variants.append(Variant(key, "keep", resolved.without_node(node)))
        else:
            members = resolved.members if arg is None else resolved.groups[arg]
            variants.append(Variant(key, "ablate", members=knocked_out_everywhere(members)))
    advance = progress("circuit forward passes", n * len(variants)) if progress else None
    beyond = getattr(ablation, "beyond", 0)
    values = engine.evaluate(plan.rows, variants, resolved.universe, ablation, metric_fn, advance,
                             on_clean={TASK: task_accuracy_fn(plan, engine.adapter)})
    beyond = getattr(ablation, "beyond", 0) - beyond
    key_t = ("task", *key_n)
    task_values = values.pop(TASK, None)
    if task_values is None:
        task_values = shared.get(key_t)
    else:
        shared[key_t] = task_values
    broken = nonfinite_metric(values, circuit.network)
    if broken:
        found.forward_passes = {k: v for k, v in engine.forward_passes.items() if v}
        return Verdict(ERROR, broken)
    values.update(reused)
    shared[key_n], shared[key_e] = values[FULL], values[ABLATED]
    if reused:
        shown = " and ".join({FULL: "m(N)", ABLATED: "m(∅)"}[k] for k in reused)
        found.notes.append(f"{shown}: per-prompt values reused from an earlier circuit of this run (same "
                            "network, prompts, metric and ablation)")
    means, effect, scores = circuit_scores(values, group_nodes, wanted, seed=plan.seed)

    summary = CircuitSummary(
        output=f"{circuit.model}.{circuit.output}", metric=metric_text,
        ablation=describe_ablation(plan, ablation), granularity=circuit.granularity,
        universe=describe_universe(resolved, engine.arch), prompts=n,
        groups=[{"name": g, "nodes": [m.node.name for m in ms], "spec": [str(m.node) for m in ms],
                 "positions": _positions_text(circuit.groups[g].positions)} for g, ms in resolved.groups.items()],
        edges=[_edge_text(e) for e in circuit.edges] if circuit.granularity == "edge" else [],
        means=means, effect=effect, scores=scores,
        clean_accuracy=_clean_accuracy(values) if circuit.metric.name == "accuracy" else None,
        reference_prompts=len(next(iter(plan.reference.rows.values()))) if plan.reference else 0,
        convention=circuit.convention.to_dict(), vacuous=whole_universe(resolved, engine.arch),
        metric_scale=float(getattr(metric_fn, "logit_scale", 0.0)),
        task=task_summary(task_values, plan, circuit.metric.name))
    found.circuit = summary
    found.forward_passes = {k: v for k, v in engine.forward_passes.items() if v}
    if beyond:
        found.notes.append(f"{beyond} batch(es) had prompts longer than every reference prompt: "
                            "positions past the longest reference prompt were ablated with the mean over all "
                            "reference tokens")
    if summary.task:
        t = summary.task
        why = "prob_greater scores the values' order" if circuit.metric.name == "prob_greater" else \
            f"{summary.output} has a single value"
        found.notes.append(f"full model: answers {summary.output} right on {t['successes']} of {t['trials']} prompts "
                           f"(chance {t['chance']:.1%})" + ("" if t["judged"] else f"; not judged: {why}"))
    found.notes.extend(overshoot_notes(circuit, summary))
    return evaluate_circuit_conditions(circuit, summary)


def nonfinite_metric(values: dict[str, np.ndarray], network: str) -> str:
    """The error of a circuit claim whose metric came out NaN or inf on any prompt of any
    variant (the full model, the circuit, an ablation), or "" when all are finite: a score
    over non-finite values cannot be judged (a mean with a NaN is NaN; a NaN compared is False)."""
    if not values:
        return ""
    stacked = np.vstack([np.asarray(v, dtype=float) for v in values.values()])  # [variants, prompts]
    nan = np.isnan(stacked).any(axis=0)
    inf = np.isinf(stacked).any(axis=0) & ~nan
    if not (nan.any() or inf.any()):
        return ""
    kinds = " and ".join(f"{kind} on {int(hit.sum())}" for kind, hit in (("NaN", nan), ("inf", inf)) if hit.any())
    which = [k for k, v in values.items() if not np.isfinite(np.asarray(v, dtype=float)).all()]
    return (f"network `{network}` gave non-finite metric values (NaN/inf) on {int((nan | inf).sum())} of "
            f"{stacked.shape[1]} prompts ({kinds}; in {', '.join(which)}); a circuit claim on non-finite outputs "
            "cannot be judged: fix the network (or its dtype)")


def prepare(ir, circuit, options, networks, edges: bool = False):
    """Plan, engine, ablation values (computed once) and metric of a circuit claim. With edge
    granularity (the circuit's, or `edges=True` for an edge curve) a network where it is
    ambiguous is refused before any forward pass."""
    plan = compile_circuit(ir, circuit, options.pairs, options.seed)
    _, remote = engine_choice(ir.networks[plan.network.name], options, Path(ir.file).resolve().parent)
    if remote is not None:
        raise CheckUsageError(f"circuit `{circuit.name}`: circuit claims run on the torch engine only, not remotely; "
                              "run them without --remote on a model you can load")
    net = networks.get(ir, plan.network.name, options)
    if net.backend != "hf":
        raise CheckUsageError(f"circuit `{circuit.name}`: circuits are evaluated on hf transformer networks; "
                              f"`{net.name}` is a torch network")
    adapter = HFAdapter(net, plan.network, plan.model, plan.output)
    engine = CircuitEngine(adapter, net.module, resolve_family(net.module),
                           EngineOptions(batch_size=options.batch or circuit.batch))
    if edges or circuit.granularity == "edge":
        what = "the edge curve of circuit" if edges else "circuit"
        engine.require_edge_granularity(f"{what} `{circuit.name}` on network `{plan.network.name}` "
                                        f"({plan.network.source!r})")
    metric_fn, metric_text = make_metric(plan, adapter)
    ablation = _ablation(plan, engine, net, adapter, options.progress, networks)
    return plan, engine, ablation, metric_fn, metric_text


def edge_curve(ir, circuit, scored, fractions, options, networks, rank: str = "absolute") -> dict:
    """Faithfulness of the top-|score| (or, `rank="signed"`, top-score) edges at each
    fraction, and the areas CPR and CMD.

    `circuit` supplies the network, prompts, ablation and metric (its groups are not used);
    `scored` is a list of (GraphEdge, score). Every circuit of the curve is evaluated at edge
    granularity over heads and MLPs, with the embeddings routed (MIB's graph), one forward
    pass per batch and fraction; N and ∅ are shared by all fractions.
    """
    plan, engine, ablation, metric_fn, metric_text = prepare(ir, circuit, options, networks, edges=True)
    universe = frozenset({HEAD, MLP})
    arch = engine.arch
    for e, _ in scored:
        for n in (e.src, e.dst):
            if hasattr(n, "layer") and (n.layer >= arch.layers or (n.kind == HEAD and n.head >= arch.heads)):
                raise CheckUsageError(f"edge `{e.name}` names {n}, which the network ({arch.family}, "
                                      f"{arch.layers} layers x {arch.heads} heads) does not have")
    empty = graph_to_resolved([], universe)
    variants = [Variant(FULL, "clean"), Variant(ABLATED, "keep", empty)]
    sizes, kept_sizes = [], []
    total = len(full_graph(arch))  # MIB's edge universe: every edge of the model's graph
    for i, f in enumerate(fractions):
        edges = top_edges(scored, f, total, rank)
        sizes.append(len(edges))
        resolved = graph_to_resolved(edges, universe)
        pruned = prune_edges(resolved.edges or {})
        kept_sizes.append(sum(len(v) for v in pruned.values()))
        variants.append(Variant(f"fraction:{i}", "keep", replace(resolved, edges=pruned)))
    values = engine.evaluate(plan.rows, variants, universe, ablation, metric_fn)

    keys = [f"fraction:{i}" for i in range(len(fractions))]
    xs = list(fractions)  # MIB integrates over the requested fractions
    points, effect, cpr, cmd = faithfulness_curve(values, keys, xs, seed=plan.seed)
    return {
        "circuit": circuit.name, "metric": metric_text, "ablation": describe_ablation(plan, ablation),
        "prompts": plan.prompts, "edges_scored": len(scored), "edges_total": total,
        "convention": ConventionIR.mib().to_dict(),
        "rank": rank,
        "rules": "MIB: k = int(fraction x all edges of the model's graph) "
                 f"top-{'|score|' if rank == 'absolute' else 'score'} edges, dangling edges pruned "
                 "(EAP-IG Graph.prune); CPR/CMD = trapezoids over the fractions, not divided by their range",
        "points": [{"fraction": f, "edges": k, "edges_after_pruning": kp, "faithfulness": p.to_dict()}
                   for f, k, kp, p in zip(fractions, sizes, kept_sizes, points)],
        "effect": effect.to_dict(),
        "cpr": cpr, "cmd": cmd,
        "forward_passes": {k: v for k, v in engine.forward_passes.items() if v},
    }


def _shared(networks) -> dict:
    shared = getattr(networks, "shared", None)
    return shared if isinstance(shared, dict) else {}


def _ablation_key(plan: CircuitPlan) -> tuple:
    a = plan.circuit.ablation
    ref = plan.reference
    if ref is None:
        return (a.kind,)
    return (a.kind, ref.dataset.name, ref.dataset.model, ref.dataset.pairs, ref.dataset.seed, plan.network.name,
            plan.network.source, describe_prompt(ref.network.encoding.prompt))


def knocked_out_everywhere(members) -> tuple:
    """N∖K's members, each ablated at every position (docs/language.md §8.3, "Completeness and
    position-restricted groups").

    Why: completeness compares C∖K with N∖K, and C∖K removes K's nodes from the circuit, so they
    are ablated at every position. A group's positions (`group g = head[0.1] @ S`) say where its
    nodes belong to the circuit; N∖K must not read them as where to knock the nodes out, or it
    would keep K's nodes at every other position and the two sides would remove different things.
    (Before, N∖K ablated K only at its positions: invisible for a group of the last layer at the
    last token, where nothing downstream reads the other positions, and wrong elsewhere.)"""
    return tuple(replace(m, positions=(ALL,)) for m in members)


def _empty(resolved: ResolvedCircuit) -> ResolvedCircuit:
    """∅: no member kept, no edge (the embedding is cut where the circuit routes it)."""
    return ResolvedCircuit({}, resolved.universe, {} if resolved.edges is not None else None,
                           resolved.embed_gated)


def _ablation(plan: CircuitPlan, engine, net, adapter, progress, networks=None):
    kind = plan.circuit.ablation.kind
    if kind == "zero":
        p = next(net.module.parameters())
        return ZeroAblation(p.dtype, p.device, token_only=plan.circuit.convention.input_ablation == "token")
    ref = plan.reference
    assert ref is not None
    ref_adapter = _EncodeOnly(net, ref.network, ref.model, ref.output)
    n_ref = len(next(iter(ref.rows.values())))
    if kind == "mean":
        shared = _shared(networks)
        key = ("mean-ablation", *_ablation_key(plan), engine.batch_size)
        if key not in shared:
            advance = progress("reference forward passes", n_ref) if progress else None
            shared[key] = engine.mean_ablation(ref_adapter, ref.rows, advance)
        return shared[key]
    eval_batch = adapter.encode(plan.rows)
    ref_batch = ref_adapter.encode(ref.rows)
    eval_len = np.array([r.length for r in eval_batch.meta["rows"]])
    ref_len = np.array([r.length for r in ref_batch.meta["rows"]])
    # the draw derives from the run's effective seed (compile.seeds: a hash, never `seed + offset`,
    # under which `Ref seed 1` at --seed 0 drew what `Ref seed 0` at --seed 1 did)
    mapping = resample_mapping(eval_len, ref_len, derive_seed(plan.seed, f"resample/{ref.dataset.name}"),
                               lambda i: adapter.describe_row(eval_batch, i), ref.dataset.name)
    return ResampleAblation(ref_adapter, ref.rows, mapping)


# ───────────────────────── metric ─────────────────────────

def make_metric(plan: CircuitPlan, adapter):
    """The circuit's metric as ``(logits, batch, row indices) -> per-row values``, and its text."""
    metric = plan.circuit.metric
    model, output = plan.model, plan.output
    domain = model.domain(output)
    env = model.run(plan.rows)
    cands = adapter.candidates
    if cands is None:
        raise CheckUsageError(f"metric `{metric.name}` needs answer tokens: give network `{plan.network.name}` an "
                              f"`answer` template")
    expected = domain.codes(env[output])

    def token_ids(arg) -> np.ndarray:
        n = len(expected)
        if arg.kind == "var":
            codes = domain.codes(env[arg.value])
            return cands.numpy()[codes]
        ids = adapter.tokenizer(arg.value, add_special_tokens=False)["input_ids"]
        if not ids:
            raise CheckUsageError(f"metric `{metric.name}`: {arg.value!r} tokenizes to no tokens")
        part = adapter.answer.tokens if adapter.answer is not None else "first"
        tok = int(ids[-1] if part == "last" else ids[0])
        unknown_token_check(adapter.tokenizer, tok, arg.value, f"metric `{metric.name}` of network "
                                                               f"`{plan.network.name}`")
        return np.full(n, tok)

    args = [token_ids(a) for a in metric.args]
    # prob_greater(X): the values of the output after X's value in the domain's order, per prompt
    above = None
    if metric.name == "prob_greater":
        codes = domain.codes(env[metric.args[0].value])  # [prompts]
        above = torch.as_tensor(np.arange(len(cands))[None, :] > codes[:, None])  # [prompts, values]
    binding = SimpleNamespace(site=f"metric {metric.name}", positions=metric.positions)
    # a masked LM answers at its mask token: there `last` (the default) means the answer position
    at_mask = getattr(adapter, "mask_id", None) is not None and tuple(metric.positions) == (LAST,)

    def fn(logits: torch.Tensor, batch, idx: np.ndarray) -> np.ndarray:
        if at_mask:
            pos = torch.tensor([[e.answer_pos] for e in batch.meta["rows"]], dtype=torch.long)
        else:
            pos = adapter.positions(batch, binding)  # [batch, n_pos]
        if pos.shape[1] != 1:
            raise CheckUsageError(f"metric `{metric.name}` is read at one token per prompt; its positions select "
                                  f"{pos.shape[1]}")
        rows = torch.arange(batch.size, device=logits.device)
        at = logits[rows, pos[:, 0].to(logits.device)].float()  # [batch, vocab]
        if metric.name == "accuracy":
            scores = at[:, cands.to(at.device)]  # [batch, values]
            pred = scores.argmax(-1).cpu().numpy()
            nan = torch.isnan(scores).any(-1).cpu().numpy()  # a row with NaN/inf scores has no answer
            inf = torch.isinf(scores).any(-1).cpu().numpy()
            return np.where(nan, np.nan, np.where(inf, np.inf, (pred == expected[idx]).astype(float)))
        if metric.name == "prob":
            probs = torch.softmax(at, dim=-1)
            toks = args[0][idx] if args else cands.numpy()[expected[idx]]
            return probs[rows, torch.as_tensor(toks, device=at.device)].cpu().numpy().astype(float)
        if above is not None:  # Hanna et al. 2023's probability difference
            p = torch.softmax(at, dim=-1)[:, cands.to(at.device)]  # [batch, values]
            up = above[torch.as_tensor(idx)].to(at.device)
            return ((p * up).sum(-1) - (p * ~up).sum(-1)).cpu().numpy().astype(float)
        read = torch.stack([at[rows, torch.as_tensor(arg[idx], device=at.device)] for arg in args], -1)
        finite = read[torch.isfinite(read)]
        if finite.numel():  # the logits' own size sets their rounding (effect_tolerance)
            fn.logit_scale = max(fn.logit_scale, float(finite.abs().max()))  # type: ignore[attr-defined]
        a = read[:, 0]
        if metric.name == "logit":
            return a.cpu().numpy().astype(float)
        # logit_diff(A, B, …): A's logit minus the largest of the others' (with two, A's minus B's;
        # with more, the docstring metric of Heimersheim & Janiak / ACDC: correct minus the best wrong)
        return (a - read[:, 1:].max(-1).values).cpu().numpy().astype(float)

    fn.logit_scale = 0.0  # type: ignore[attr-defined]  # largest |logit| a logit metric read
    shown = ", ".join(a.value if a.kind == "var" else repr(a.value) for a in metric.args)
    text = f"{metric.name}({shown})" if metric.args else metric.name
    text += f" @ {_positions_text(metric.positions)}"
    return fn, text


def _clean_accuracy(values) -> float:
    return float(np.mean(values[FULL]))


# ───────────────────────── descriptions ─────────────────────────

def describe_ablation(plan: CircuitPlan, ablation) -> str:
    a = plan.circuit.ablation
    if a.kind == "zero":
        inp = ("the input's token embedding (position embeddings stay)"
               if plan.circuit.convention.input_ablation == "token" else "the input's token and position embeddings")
        return f"zero: an ablated head's z, an ablated MLP's output and, where an edge from `embed` is cut, {inp} " \
               "are set to 0"
    ref = plan.reference
    if ref is None:  # compile.circuit_plan samples one for every `mean over D` / `resample from D` ablation
        raise ValueError(f"a `{a.kind}` ablation without its reference prompts")
    ds = ref.dataset
    n_ref = len(next(iter(ref.rows.values())))
    src = f"dataset `{ds.name}` ({n_ref} prompts of model `{ds.model}`, seed {ds.seed}, prompt " \
          f"{describe_prompt(ref.network.encoding.prompt)})"
    if a.kind == "mean":
        return f"mean over {src}: each ablated activation is replaced by its mean over the reference prompts, " \
               "per token position"
    return f"resample from {src}: each prompt takes every ablated activation from one reference prompt of the " \
           "same token length (drawn once, seeded)"


def describe_universe(resolved: ResolvedCircuit, arch: Arch) -> str:
    parts = []
    total_heads = arch.layers * arch.heads
    nodes = set(resolved.nodes)
    if HEAD in resolved.universe:
        kept = sum(1 for n in nodes if n.kind == HEAD)
        parts.append(f"ablated: the {total_heads - kept} of {total_heads} attention heads outside the circuit")
    if MLP in resolved.universe:
        kept = sum(1 for n in nodes if n.kind == MLP)
        parts.append(f"the {arch.layers - kept} of {arch.layers} MLPs outside the circuit")
    text = ", ".join(parts)
    text += ", and circuit nodes at positions outside their group's"
    kept_kinds = ["MLPs"] if MLP not in resolved.universe else []
    kept_kinds.append("embeddings")
    text += f"; kept as wires: {' and '.join(kept_kinds)}"
    if MLP not in resolved.universe:
        text += " (the circuit names no mlp node)"
    if resolved.edges is not None:
        n_edges = sum(len(s) for s in resolved.edges.values())
        text += f"; path patching: {n_edges} node-level edge(s), every other path into a circuit node or the " \
                "logits carries ablated values"
        if resolved.embed_gated:
            text += " (embeddings too: inputs without an edge from `embed` see ablated embeddings)"
    return text


def _positions_text(positions) -> str:
    return ", ".join(p.name or str(p) for p in positions)


def _edge_text(e) -> str:
    return f"{e.src} -> {e.dst}" + (f".{e.port}" if e.port else "")


# ───────────────────────── verdicts ─────────────────────────

def evaluate_circuit_conditions(circuit, summary: CircuitSummary) -> Verdict:
    """Judge every `expect` condition of a circuit claim on its scores, after the effect-size guard."""
    problems = []
    eff = summary.effect
    if eff is not None and summary.prompts < 2:
        problems.append(f"the circuit was evaluated on {summary.prompts} prompt(s): a bootstrap interval needs at "
                        "least 2, so the effect of the ablation cannot be told from noise (effect-size guard); "
                        "raise `pairs`")
    elif eff is None or not np.isfinite(eff.estimate) or not eff.excludes_zero:
        shown = "n/a [n/a, n/a]" if eff is None else f"{fmt(eff.estimate)} [{fmt(eff.lower)}, {fmt(eff.upper)}]"
        problems.append(f"ablating everything does not move the metric: m(N) − m(∅) = {shown} "
                        "includes 0, so every score (a ratio over it) is noise (effect-size guard)")
    elif not effect_above_rounding(eff, summary.means, summary.metric_scale):
        tol = effect_tolerance(summary.means, summary.metric_scale)
        problems.append(f"ablating everything does not move the metric: m(N) − m(∅) = {eff.estimate:.3g} "
                        f"[{eff.lower:.3g}, {eff.upper:.3g}] is within floating-point rounding (|effect| <= "
                        f"{tol:.2g}, {EFFECT_RTOL:g} of the scale of the metric and the logits it reads), so the "
                        "ablation changes nothing and every score (a ratio over it) is rounding noise "
                        "(effect-size guard)")
    task = task_guard(summary, summary.output)
    if task:
        problems.insert(0, task)
    if summary.vacuous and any(c.metric in VACUOUS_SCORES for c in circuit.conditions):
        problems.append(summary.vacuous)
    conditions = []
    for cond in circuit.conditions:
        score = summary.score(cond.metric, cond.arg)
        value = None
        if score is not None:
            value = score.value.lower if cond.statistic == "lower95" else score.value.estimate
            if value is not None and not np.isfinite(value):
                value = None
        ok = value is not None and compare(value, cond.op, cond.threshold)
        if summary.vacuous and cond.metric in VACUOUS_SCORES:
            ok = False  # 1 by construction: not evidence (whole_universe)
        detail = ""
        if score is not None:
            v = score.value
            detail = f"{fmt(v.estimate)} [{fmt(v.lower)}, {fmt(v.upper)}] over {summary.prompts} prompts"
        conditions.append(ConditionResult(condition_text(cond), cond.metric, cond.statistic,
                                          cond.aggregation, cond.op, cond.threshold, value, bool(ok), detail))
    failed = [c for c in conditions if not c.passed]
    if problems:
        return Verdict(FAILED, "; ".join(problems), conditions)
    if failed:
        return Verdict(FAILED, "; ".join(f"{c.text}: got {fmt(c.value)}" for c in failed), conditions)
    return Verdict(PASSED, "", conditions)


__all__ = ["describe_ablation", "describe_universe", "evaluate_circuit_conditions", "make_metric", "run_circuit"]
