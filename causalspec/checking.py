"""Run the checks of a spec: compile → load network → engine → score → CheckResult.

Why a module of its own: the CLI, the pytest plugin and tests all run checks the same way;
this is the one place that turns a check into a verdict, so their verdicts cannot differ.
Hub weights not in the local cache make a check *skipped* with the reason (a failure under
`strict`, for CI that must test every claim); problems that only show at check
time (a site the architecture cannot serve, token counts that differ between base and
source, a user hook that raises) make it an *error* with a message naming the cause.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from causalspec.compile.plan import CheckPlan, compile_check
from causalspec.run.adapters import CheckUsageError, TorchAdapter
from causalspec.run.loading import (LoadedNetwork, NetworkLoadError, NetworkUnavailable, local_hf_path,
                                    load_hf_network, load_torch_network)
from causalspec.score.results import CONTROL_STATISTIC, ERROR, FAILED, PASSED, SKIPPED, CheckResult, ConditionResult
from causalspec.semantics.analyse import SpecIR


@dataclass
class CheckOptions:
    pairs: int | None = None  # override every check's `pairs`
    seed: int | None = None  # override every check's `seed`
    seed_flag: str = "--seed"  # how the override was given, for reports (the pytest plugin: --causalspec-seed)
    batch: int | None = None
    only: list[str] | None = None  # run only these check names
    allow_download: bool = False
    device: str | None = None
    dtype: str | None = None
    progress: Callable | None = None  # progress(kind, total) -> callable(advance)
    device_map: str | None = None  # hf networks: from_pretrained(device_map=...), e.g. "auto" (accelerate)
    incremental: bool = True  # patched forwards recompute only positions >= the patch where the model allows
    # "torch" (hooks) | "nnsight" (run.nnsight_backend: nnsight sessions, full forwards); None: what the
    # network's `backend` statement says, else torch
    backend: str | None = None
    # nnsight sessions on NDIF: True (the configured host), an http(s) URL (a self-hosted NDIF), "local"
    # (nnsight's dry run of the remote path, here); None: what the network's `backend` statement says
    remote: Any = None
    retrain: bool = False  # train learned featurizers even when an artifact for the same inputs exists
    artifacts: str | None = None  # folder of trained-featurizer artifacts (default: .causalspec/artifacts)
    # where clean passes keep the site activations: None/"memory"; "disk" (a temporary folder,
    # removed when the check ends); or a folder, under which they are kept (run.activation_store)
    activations: str | None = None
    # a skipped check (hub weights not cached, a device missing) becomes an error: for CI that must
    # test every claim. `strict_flag` is the option's name as the user gave it, quoted in the reason.
    strict: bool = False
    strict_flag: str = "--strict"


@dataclass
class NetworkCache:
    """Networks loaded once per run, shared by every check that names them."""

    loaded: dict = field(default_factory=dict)
    # values claims of one run share (circuit claims: ablation means, m(N), m(∅))
    shared: dict = field(default_factory=dict)

    def get(self, ir: SpecIR, name: str, options: CheckOptions) -> LoadedNetwork:
        if name in self.loaded:
            value = self.loaded[name]
            if isinstance(value, Exception):
                raise value
            return value
        net = ir.networks[name]
        base_dir = Path(ir.file).resolve().parent
        try:
            _, remote = engine_choice(net, options, base_dir)
            if net.backend == "torch":
                value = load_torch_network(name, net.builder.ref, net.weights, base_dir,
                                           net.encode.ref if net.encode else None,
                                           net.decode.ref if net.decode else None,
                                           options.device or net.device, options.dtype or net.dtype)
            else:
                value = load_hf_network(name, net.source, base_dir, net.model_class,
                                        options.device or net.device, options.dtype or net.dtype,
                                        trust_remote_code=net.trust_remote_code,
                                        allow_download=options.allow_download,
                                        device_map=options.device_map or net.device_map,
                                        weights=remote in (None, "local"))  # remote: the weights stay there
        except (NetworkUnavailable, NetworkLoadError) as exc:
            self.loaded[name] = exc
            raise
        self.loaded[name] = value
        return value


def engine_choice(net, options: CheckOptions, base_dir: Path) -> tuple[str, Any]:
    """(backend, remote target) for a network: the command line's choice, else the spec's
    `backend` statement, else the torch engine here. `--remote` implies the nnsight backend.

    A host named only by the spec is refused unless the user allowed it (causalspec.remote_hosts):
    the spec must not choose where the user's API key goes or whose pickled replies are loaded.
    This runs before the network is loaded, so a refused check contacts nothing."""
    from causalspec.run.nnsight_backend import remote_target

    if options.remote is not None:  # the user's own command line
        remote = remote_target(options.remote)
    else:
        host = getattr(net, "remote_host", None)
        if host:
            _allowed_spec_host(net, host)
        remote = remote_target((host or True) if getattr(net, "remote", False) else None)
    backend = options.backend or ("nnsight" if remote is not None else getattr(net, "engine", None)) or "torch"
    if remote is not None and backend != "nnsight":
        raise CheckUsageError(f"network `{net.name}`: remote execution runs nnsight sessions; use "
                              "`--backend nnsight` (or drop `--backend torch`)")
    if remote is not None and net.backend != "hf":
        raise CheckUsageError(f"network `{net.name}` is a torch network; NDIF runs hub models, so remote checks "
                              "need an `hf` network")
    if remote not in (None, "local") and net.backend == "hf" and local_hf_path(net.source, base_dir):
        raise CheckUsageError(f"network `{net.name}` is the local folder `{net.source}`; NDIF runs models it hosts, "
                              "named by their hub id (e.g. hf \"openai-community/gpt2\"); `--remote local` "
                              "dry-runs the remote path here")
    return backend, remote


def _allowed_spec_host(net, host: str) -> None:
    """Raise the refusal (a check ERROR) when the user has not allowed the spec's `host`."""
    from causalspec.remote_hosts import refuse_reason

    span = getattr(net, "remote_span", None) or net.span
    reason = refuse_reason(host, f"network `{net.name}` ({span})")
    if reason is not None:
        raise CheckUsageError(reason)


def selected_checks(ir: SpecIR, only: list[str] | None) -> list:
    """The checks, then the circuit claims, of a spec (those named in `only`, when given)."""
    claims = list(ir.checks) + list(ir.circuits.values())
    if not only:
        return claims
    return [c for c in claims if c.name in only]


def run_checks(ir: SpecIR, options: CheckOptions | None = None,
               networks: NetworkCache | None = None) -> list[CheckResult]:
    options = options or CheckOptions()
    networks = networks or NetworkCache()
    return [run_check(ir, check, options, networks) for check in selected_checks(ir, options.only)]


def run_check(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache) -> CheckResult:
    """The verdict of one check or circuit claim; its notes list the files the spec reads from
    outside its folder (semantics.file_access), whatever the verdict."""
    if not hasattr(check, "alignment"):  # a circuit claim (CircuitIR)
        from causalspec.circuit_checking import run_circuit

        result = run_circuit(ir, check, options, networks)
    else:
        result = _run_alignment_check(ir, check, options, networks)
    from causalspec.semantics.file_access import outside_notes

    result.notes[:0] = [n for n in outside_notes(ir.warnings) if n not in result.notes]
    return apply_strict(result, options)


def _run_alignment_check(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache) -> CheckResult:
    start = time.perf_counter()
    alignment = ir.alignments[check.alignment]
    from causalspec.compile.seeds import effective_seed

    seed = effective_seed(options.seed, check.seed, getattr(check, "seed_given", True), options.seed_flag)
    result = CheckResult(check.name, alignment.name, alignment.model, alignment.network, ERROR,
                         seed=seed.value, seed_source=seed.source,
                         pairs=int(options.pairs if options.pairs is not None else check.pairs),
                         file=ir.file, line=check.span.line)
    result.reproduce = reproduce_command(ir.file, check.name, result.pairs, result.seed)
    try:
        _run(ir, check, options, networks, result)
    except NetworkUnavailable as exc:
        result.status, result.reason = SKIPPED, str(exc)
    except (NetworkLoadError, CheckUsageError) as exc:
        result.status, result.reason = ERROR, str(exc)
    except _unservable() as exc:
        result.status, result.reason = ERROR, str(exc)
    except SystemExit as exc:  # causalspec never exits mid-check: user code did (a hook, a model's own code)
        result.status, result.reason = ERROR, user_exit_reason(exc)
    except Exception as exc:  # noqa: BLE001 - the user's code raised (else: ours, re-raised)
        result.status, result.reason = ERROR, user_raise_reason(exc)
    result.seconds = time.perf_counter() - start
    return apply_strict(result, options)


def apply_strict(result: CheckResult, options: CheckOptions) -> CheckResult:
    """Under `strict`, a skipped check is an error whose reason says why it counts as failed."""
    if options.strict and result.status == SKIPPED:
        result.status = ERROR
        result.reason = f"skipped, and {options.strict_flag} fails every skip: {result.reason}"
        result.strict_skip = options.strict_flag
    return result


def user_raise_reason(exc: Exception) -> str:
    """The error of a check during which user code raised somewhere the hooks are not wrapped
    one by one (e.g. a `trust_remote_code` model's forward); re-raises `exc` when it was
    raised in causalspec's own code or in a library alone: that is a bug of ours (exit 3)."""
    from causalspec.run.adapters import exception_origin
    from causalspec.run.loading import describe_exception

    kind, file, line = exception_origin(exc)
    if kind != "user":
        raise exc
    return f"user code {describe_exception(exc)} (at {file}:{line})"


def user_exit_reason(exc: SystemExit) -> str:
    """The error of a check during which user code called `sys.exit` outside the hooks that are
    wrapped one by one (`run.loading.call_user`), e.g. in a `trust_remote_code` model's forward:
    without this, the run would end with exit 0 and no summary, and CI would read it as green."""
    from causalspec.run.loading import describe_exception

    return f"user code {describe_exception(exc)} while the check ran"


def _unservable():
    from causalspec.run.sites import SiteCallError, SiteShapeError, UnservableSite

    return (UnservableSite, SiteShapeError, SiteCallError)


def reproduce_command(file: str, name: str, pairs: int, seed: int) -> str:
    return (f"causalspec check {shlex.quote(str(file))} --only {shlex.quote(name)} "
            f"--pairs {pairs} --seed {seed}")


def _adapter(net: LoadedNetwork, plan: CheckPlan):
    if net.backend == "torch":
        return TorchAdapter(net, plan.model, plan.output)
    from causalspec.run.hf_adapter import HFAdapter

    return HFAdapter(net, plan.network, plan.model, plan.output)


def _run(ir: SpecIR, check, options: CheckOptions, networks: NetworkCache, result: CheckResult) -> None:
    plan = compile_check(ir, check, options.pairs, options.seed)
    net = networks.get(ir, plan.network.name, options)
    result.notes.extend(net.extra.get("load_notes", ()))  # e.g. parameters transformers initialised randomly
    if getattr(check, "locate", ()):  # sweep the cells, keep the best, re-plan on fresh pairs
        from causalspec.locate import locate_for_check

        plan = locate_for_check(ir, check, plan, net, options, result)
    run = alignment_run(ir, check, plan, net, options)
    result.pool = len(next(iter(plan.pool.values())))
    result.unique_inputs = run.n_unique

    from causalspec.alignment_run import compute_threads

    with compute_threads(net.module), run.engine:  # the engine closes its activation stores afterwards
        _score(ir, check, plan, net, run, options, result)


def _score(ir: SpecIR, check, plan: CheckPlan, net: LoadedNetwork, run, options: CheckOptions,
           result: CheckResult) -> None:
    engine = run.engine
    model, domain = plan.model, run.domain
    progress = options.progress
    total_pairs = sum(c.pairs.n for c in plan.claims)
    advance = progress("forward passes", run.n_unique + total_pairs) if progress else None
    run.clean(advance)
    if run.alignment.learned:  # train (or reuse) das / boundless subspaces on a disjoint split
        run.fit(ir, check, net, artifacts=options.artifacts, retrain=options.retrain, progress=progress)

    runs = []
    for claim in plan.claims:
        cr = run.claim_run(claim)
        cr.patched = run.patch(cr, advance=advance)
        runs.append(cr)
        result.claims.append(run.score(cr, cr.patched, describe=describer(model, domain, cr)))
    from causalspec.score.keep_rate import low_keep_rate_hint

    hint = low_keep_rate_hint(run, result.claims)
    if hint:
        result.warnings.append(hint)
    subsets = [c for c in result.claims if c.kind == "subset"]
    if subsets:
        result.aaa = float(np.mean([c.iia.estimate for c in subsets if c.iia.trials] or [np.nan]))
    from causalspec.stress import stress_test  # training report, diagnostics, illusion check, controls

    stress_test(ir, check, plan, net, run, runs, options, result)
    result.forward_passes = dict(engine.forward_passes)
    result.notes.extend(n for n in engine.run_notes() if n not in result.notes)
    evaluate_conditions(check, result)


def alignment_run(ir: SpecIR, check, plan: CheckPlan, net: LoadedNetwork, options: CheckOptions, *,
                  keep_filter: bool = True, label: str = ""):
    """The engine and `AlignmentRun` of `plan` on `net` (sites are located before any forward pass)."""
    from causalspec.alignment_run import AlignmentRun
    from causalspec.run.backends import backend_for
    from causalspec.run.engine import EngineOptions, address_of
    from causalspec.run.families import resolve_family

    adapter = _adapter(net, plan)
    family = resolve_family(net.module)
    for b in plan.bindings():  # fail before any forward pass when the architecture cannot serve a site
        family.locate(net.module, address_of(b.site))
    batch, base_dir = options.batch or check.batch, Path(ir.file).resolve().parent
    backend = backend_for(*engine_choice(ir.networks[plan.network.name], options, base_dir))
    if getattr(backend, "remote", None) is not None and plan.alignment.learned:
        raise CheckUsageError("learned featurizers (das, boundless) train on local activations; a remote "
                              "check cannot train them — train with the torch backend and check the saved "
                              "basis (`: basis(file=\"file.safetensors\")`)")
    engine = backend.engine(adapter, net.module, family, EngineOptions(
        batch_size=batch, base_dir=base_dir, incremental=options.incremental, activations=options.activations))
    return AlignmentRun(plan, engine, keep_filter=keep_filter, label=label)


def describer(model, domain, cr) -> Callable[[int, int], dict]:
    """`describe(i, predicted)`: a counterexample record of pair i of a claim run."""
    pairs, expected, base_label = cr.plan.pairs, cr.expected, cr.base_label

    def describe(i: int, predicted: int) -> dict:
        return {
            "base": _row(model, pairs.base, i),
            "sources": [_row(model, s, i) for s in pairs.sources],
            "expected": _value(domain, expected[i]),
            "predicted": _value(domain, predicted),
            "base_output": _value(domain, base_label[i]),
        }

    return describe


def _row(model, inputs: dict, i: int) -> dict:
    return {k: model.domain(k).decode(inputs[k][i:i + 1])[0] for k in model.inputs}


def _value(domain, code: int):
    return domain.values[code] if 0 <= code < domain.size else None


# ───────────────────────── verdicts ─────────────────────────

def condition_text(c) -> str:
    metric = f"{c.metric}({c.arg})" if c.arg else c.metric
    modes = [m for m in (c.aggregation if c.metric == "iia" else "", c.statistic if c.statistic != "point" else "")
             if m]
    return " ".join([metric, c.op, f"{c.threshold:g}", *modes])


def _compare(value: float, op: str, threshold: float) -> bool:
    return {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold,
            "<": value < threshold}[op]


def evaluate_conditions(check, result: CheckResult) -> None:
    """Judge every `expect` condition; then apply the guards that make a pass earned."""
    declared = [c for c in result.claims if c.kind == "declared"]
    subsets = [c for c in result.claims if c.kind == "subset"]
    problems = []
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
    for cond in check.conditions:
        stat = cond.statistic
        pick = (lambda p: p.lower) if stat == "lower95" else (lambda p: p.estimate)
        if cond.metric == "iia":
            claims = declared
            values = [pick(c.iia) for c in claims if c.iia.trials]
            if not values:
                result.conditions.append(ConditionResult(condition_text(cond), "iia", stat, cond.aggregation,
                                                         cond.op, cond.threshold, None, False,
                                                         "no kept pairs to score"))
                continue
            if cond.aggregation == "mean":
                value = float(np.mean(values))
                ok = _compare(value, cond.op, cond.threshold)
                detail = f"mean over {len(values)} interchange set(s)"
            else:
                oks = [_compare(v, cond.op, cond.threshold) for v in values]
                ok = all(oks) and len(values) == len(claims)
                value = float(min(values) if cond.op in (">=", ">") else max(values))
                failing = [c.label for c, o in zip(claims, oks) if not o]
                detail = "every interchange set" if ok else f"fails for {', '.join(failing)}"
        elif cond.metric == "aaa":
            values = [pick(c.iia) for c in subsets if c.iia.trials]
            value = float(np.mean(values)) if values else None
            ok = value is not None and _compare(value, cond.op, cond.threshold)
            detail = f"mean IIA over {len(subsets)} non-empty subset(s) of the aligned variables"
        elif cond.metric == "control":
            value, ok, detail = _control_condition(cond, result)
        else:
            result.conditions.append(ConditionResult(
                condition_text(cond), cond.metric, stat, cond.aggregation, cond.op, cond.threshold, None, False,
                f"unknown metric `{cond.metric}`"))
            continue
        result.conditions.append(ConditionResult(condition_text(cond), cond.metric, stat, cond.aggregation,
                                                 cond.op, cond.threshold, value, bool(ok), detail))
    failed_conditions = [c for c in result.conditions if not c.passed]
    broken = nonfinite_problem(declared + subsets, result.network)
    if broken:
        result.status, result.reason = ERROR, broken
    elif problems:
        result.status = FAILED
        result.reason = "; ".join(problems)
    elif failed_conditions:
        result.status = FAILED
        result.reason = "; ".join(f"{c.text}: got {_fmt(c.value)}" + (f" ({c.detail})" if c.detail else "")
                                  for c in failed_conditions)
    elif not result.conditions:
        result.status, result.reason = FAILED, "the check has no expectation to judge"
    else:
        result.status = PASSED
        result.reason = ""


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


def _control_condition(cond, result: CheckResult) -> tuple[float | None, bool, str]:
    """`control(NAME) <= t`: every declared set's control value (each), or their mean, bounded.

    A control of random draws has one value per set: the mean of its draws
    (score.results.CONTROL_STATISTIC); the detail says how many draws it is the mean of.
    """
    control = next((c for c in result.controls if c.name == cond.arg), None)
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
        return value, _compare(value, cond.op, cond.threshold), f"{of}mean over {len(values)} interchange set(s)"
    oks = [v is not None and _compare(v, cond.op, cond.threshold) for v in control.values]
    value = float(max(values) if cond.op in ("<=", "<") else min(values))
    failing = [lab for lab, o in zip(control.labels, oks) if not o]
    ok = all(oks)
    return value, ok, of + ("every interchange set" if ok else f"fails for {', '.join(failing)}")


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
