"""One alignment evaluated on one network: clean pass, learned featurizers, patched runs, scores.

Why a class of its own: a check evaluates its alignment on the real network, and its
controls evaluate *the same procedure* elsewhere — on a randomly re-initialised copy of the
network (`random_init`), with random subspaces of the same sizes (`random_subspace`), on the
training pairs of a learned featurizer (`heldout`), with the whole component patched
instead of the subspace (the illusion check). Putting the procedure in one object is what
makes "the same procedure" literally true. `claims.alignment` turns the numbers into a
verdict; this module only computes them, and never reruns a forward pass it already has.
`make_alignment_run` builds the engine and the run for a plan; the check, its `locate`
sweep and its `random_init` control all build theirs with it.

Learned featurizers (`das`, `boundless`) are trained on a split of pairs disjoint from the
check's (`compile.training`), saved as safetensors artifacts keyed by a content hash
(`claims.artifacts`) and reused when that hash is unchanged.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from causalspec.claims.artifacts import ARTIFACT_DIR, artifact_key
from causalspec.claims.common import CheckOptions
from causalspec.claims.networks import engine_choice
from causalspec.compile.plan import CheckPlan, ClaimPlan, label_of, pool_size
from causalspec.compile.training import training_plan
from causalspec.files import OutputError
from causalspec.run.adapters import CheckUsageError, TorchAdapter
from causalspec.run.backends import backend_for
from causalspec.run.elements import ElementsAdapter
from causalspec.run.engine import FULL, CleanCache, Engine, EngineOptions
from causalspec.run.families import resolve_family
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.loading import LoadedNetwork
from causalspec.run.values import ValueTable
from causalspec.run.train import TrainClaim, TrainConfig, decimate, learned_groups, load_artifact, save_artifact, train
from causalspec.score.guards import agreement, paired_change
from causalspec.score.iia import nonfinite_counts, score_claim
from causalspec.score.results import ClaimResult
from causalspec.score.stats import Proportion, wilson
from causalspec.semantics import featurizers as F
from causalspec.semantics.analyse import SpecIR
from causalspec.semantics.domains import format_real
from causalspec.semantics.pairs import row_ids


@dataclass
class ClaimRun:
    """The arrays of one interchange set on one network (indices into the run's unique inputs)."""

    plan: ClaimPlan
    base_u: np.ndarray
    sources_u: list[np.ndarray]
    expected: np.ndarray
    base_label: np.ndarray
    source_labels: np.ndarray
    net_base: np.ndarray
    net_sources: np.ndarray
    patched: np.ndarray | None = None

    @property
    def kept(self) -> np.ndarray:
        ok = self.net_base == self.base_label
        if len(self.source_labels):
            ok &= np.all(self.net_sources == self.source_labels, axis=0)
        return ok


@dataclass
class Fitted:
    """Learned featurizers of a run, and where they came from."""

    trained: Any  # run.train.TrainedFeaturizers
    reused: bool
    artifact: Path
    key: str
    train_rows: dict
    train_cache: CleanCache
    train_claims: list  # ClaimRun over the training pool, per claim of the plan
    overlap: int
    split: SplitSize | None = None  # distinct inputs and pairs training actually used


# The smallest training split a learned featurizer is trained on (docs/language.md, "Learned
# featurizers"): below it the featurizer memorises a handful of inputs, and the held-out
# score says more about the split than about the alignment.
MIN_TRAIN_INPUTS = 16  # distinct inputs over the split
MIN_TRAIN_PAIRS = 32  # distinct (base, sources) pairs per interchange set


@dataclass
class SplitSize:
    """How much a training split really holds: pairs are drawn with replacement from a pool,
    so "4096 training pairs" can be a few distinct ones when the input space is small."""

    pairs: int  # pairs trained on (after the correctness filter), all sets
    inputs: int  # distinct inputs among their bases and sources
    distinct_pairs: dict[str, int]  # per interchange set: distinct (base, sources) pairs
    sampled_inputs: int  # distinct inputs of the training pool (before pairs are drawn)
    overlap: int = 0  # training pool rows that are held-out rows (the space had nothing else left)

    @property
    def total_distinct_pairs(self) -> int:
        return int(sum(self.distinct_pairs.values()))

    def problem(self) -> str:
        """Why the split is below the floor ('' if it is not)."""
        if self.overlap:
            return "no input of its own (every input of the space is held out)"
        small = {k: v for k, v in self.distinct_pairs.items() if v < MIN_TRAIN_PAIRS}
        if self.inputs >= MIN_TRAIN_INPUTS and not small:
            return ""
        what = f"{self.inputs} distinct input(s)"
        if small:
            what += " and " + ", ".join(f"{v} distinct pair(s) for {k}" for k, v in small.items())
        return what


def split_size(claims: list, sampled_inputs: int, overlap: int = 0) -> SplitSize:
    """Distinct inputs and pairs of the TrainClaims a featurizer is trained on."""
    inputs: set = set()
    distinct: dict[str, int] = {}
    pairs = 0
    for c in claims:
        rows = np.stack([c.base, *c.sources], axis=1) if len(c.base) else np.zeros((0, 1 + len(c.sources)), int)
        inputs.update(rows.reshape(-1).tolist())
        label = label_of(c.groups)
        distinct[label] = len({tuple(r) for r in rows.tolist()})
        pairs += len(c.base)
    return SplitSize(pairs, len(inputs), distinct, sampled_inputs, overlap)


class AlignmentRun:
    def __init__(self, plan: CheckPlan, engine: Engine, *, alignment=None, keep_filter: bool = True,
                 label: str = "", progress: Callable | None = None):
        self.plan = plan
        self.alignment = alignment or plan.alignment
        self.engine = engine
        self.model = plan.model
        self.output = plan.output
        self.domain = self.model.domain(self.output)
        table = getattr(engine.adapter, "values", None)
        if self.domain.is_real:  # codes of the exact values met, shared with the adapter (run.values)
            if table is None:
                raise CheckUsageError(f"the real output `{self.output}` needs a network read as a value "
                                      "(`output : value`)")
            self.domain = table
            table.add(v for c in plan.claims for arr in (c.pairs.expected[self.output],
                                                         c.pairs.base_output[self.output]) for v in arr)
        self.keep_filter = keep_filter
        self.label = label
        self.progress = progress
        ids = row_ids(plan.pool)
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        self.inverse = inverse.reshape(-1)
        self.unique_rows = {k: v[first] for k, v in plan.pool.items()}
        self.n_unique = len(first)
        self.cache: CleanCache  # set by clean() (or by a caller sharing one clean pass) before any claim runs
        self.pool_labels = self.domain.codes(self.model.run(plan.pool)[self.output])
        self.fitted: Fitted | None = None
        self.bindings = self._bindings()
        # `O[i] -> output @ i` scored per element: learned featurizers train over all elements (run.elements)
        self.elements = tuple(getattr(self.alignment, "train_elements", ()))

    # bindings ----------------------------------------------------------------------------
    def _bindings(self) -> list:
        seen: dict = {}
        for claim in self.plan.claims:
            for group in claim.groups:
                for var in group:
                    for b in self.alignment.variables[var]:
                        seen.setdefault(b, None)
        return list(seen)

    def group_bindings(self, claim: ClaimPlan) -> list[list]:
        return [[b for v in g for b in self.alignment.variables[v]] for g in claim.groups]

    def bases(self, claim: ClaimPlan, mode: str = "claim", random: dict | None = None) -> list[list] | None:
        """Per group, per binding: the subspace to patch (None: the featurizer's own)."""
        if mode == "claim" and self.fitted is None:
            return None
        given = random or {}  # mode "given": e.g. a random control subspace per (var, binding)
        out = []
        for g in claim.groups:
            row: list[Any] = []
            for v in g:
                for b in self.alignment.variables[v]:
                    if mode == "full":
                        row.append(FULL)
                    elif mode == "given":
                        row.append(given[(v, b)])
                    else:
                        row.append(self.fitted.trained.basis(v, b) if self.fitted else None)
            out.append(row)
        return out

    # passes ------------------------------------------------------------------------------
    def clean(self, advance=None) -> CleanCache:
        # only inputs some claim uses as a base keep keys/values for incremental patched runs
        bases = np.unique(np.concatenate([self.inverse[c.pairs.base_index] for c in self.plan.claims]
                                         or [np.zeros(0, dtype=np.int64)]))
        self.cache = self.engine.run_clean(self.unique_rows, self.bindings, advance, bases=bases)
        return self.cache

    def claim_run(self, claim: ClaimPlan) -> ClaimRun:
        pairs = claim.pairs
        base_u = self.inverse[pairs.base_index]
        sources_u = [self.inverse[s] for s in pairs.source_index]
        return ClaimRun(claim, base_u, sources_u,
                        expected=self.domain.codes(pairs.expected[self.output]),
                        base_label=self.domain.codes(pairs.base_output[self.output]),
                        source_labels=np.stack([self.pool_labels[s] for s in pairs.source_index]),
                        net_base=self.cache.preds[base_u],
                        net_sources=np.stack([self.cache.preds[s] for s in sources_u]))

    def patch(self, run: ClaimRun, mode: str = "claim", random: dict | None = None, advance=None) -> np.ndarray:
        return self.engine.run_patched(self.unique_rows, self.cache, run.base_u, run.sources_u,
                                       self.group_bindings(run.plan), advance,
                                       bases=self.bases(run.plan, mode, random))

    def score(self, run: ClaimRun, patched: np.ndarray, describe=None) -> ClaimResult:
        net_base, net_sources = run.net_base, run.net_sources
        filtered = self.keep_filter  # else score every pair: the network is not expected to be right
        res = score_claim(run.plan.label, run.plan.groups, expected=run.expected, base_label=run.base_label,
                          source_labels=run.source_labels, net_base=net_base if filtered else run.base_label,
                          net_sources=net_sources if filtered else run.source_labels, net_patched=patched,
                          kind=run.plan.kind, describe=describe)
        if not filtered:
            res.moved = int((patched != net_base).sum())
            res.nonfinite = nonfinite_counts(net_base, net_sources, patched)  # the network's own outputs
            res.baseline = wilson(int((net_base == run.expected).sum()), len(net_base))
            res.paired = paired_change(run.expected, net_base, patched)
        # the keep-rate guard's chance test: every row of the pool, duplicates included (score.guards)
        res.agreement = agreement(self.pool_labels, np.asarray(self.cache.preds)[self.inverse])
        return res

    # learned featurizers -------------------------------------------------------------------
    def fit(self, ir, check, net, *, artifacts: str | Path | None = None, retrain: bool = False,
            variant: str = "network", progress: Callable | None = None, shared: dict | None = None) -> Fitted | None:
        """Train (or load) the learned featurizers of the claims' variables; None if there are none.

        `shared` lets several runs on the same plan and engine (the cells of a sweep) share
        one training split and its clean pass: pass the same dict to each, with the union of
        their bindings under "bindings".
        """
        variables = {v for c in self.plan.claims for g in c.groups for v in g}
        groups = learned_groups(self.alignment, sorted(variables))
        if not groups:
            return None
        shared = {} if shared is None else shared
        # featurizers trained over every output element, per set of learned bindings (a sweep's cells differ)
        pooled: dict = shared.setdefault("pooled", {}) if self.elements else {}
        learned = frozenset((v, b) for g in groups for v, b in g.members)
        if learned in pooled:  # another element's run trained them (the pooled objective)
            self.fitted = self._element_fitted(*pooled[learned])
            return self.fitted
        t_engine = self.engine
        if self.elements:  # train once over every output element: read them all in each training forward
            t_engine = shared.setdefault("engine", Engine(
                ElementsAdapter(self.engine.adapter, [p for _, p in self.elements]), self.engine.module,
                self.engine.family, replace(self.engine.options, incremental=False)))
        # one training split per set of interchange sets: the cells of an element sweep (`locate H[i]`)
        # score different sets per column, and a cell trains on its own column's pairs
        split_key = ("train", tuple(c.label for c in self.plan.claims))
        if split_key not in shared:
            tplan = training_plan(self.plan, getattr(check, "train", None))
            ids = row_ids(tplan.pool)
            _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
            t_rows = {k: v[first] for k, v in tplan.pool.items()}
            # only the training pairs' bases keep keys/values (training steps and the training
            # score start from them); an input that is only ever a source needs its activations only
            t_bases = np.unique(np.concatenate([inverse.reshape(-1)[c.pairs.base_index] for c in tplan.claims]
                                               or [np.zeros(0, dtype=np.int64)]))
            if isinstance(self.domain, ValueTable):  # a real output: the split's exact values are matched too
                self._labels(self.model.run(tplan.pool))
                for c in tplan.claims:
                    self._labels(c.pairs.expected)
            with counted_as(t_engine, "training split"):
                t_cache = t_engine.run_clean(t_rows, shared.get("bindings", self.bindings), bases=t_bases)
            shared[split_key] = (tplan, inverse.reshape(-1), t_rows, t_cache)
        tplan, inverse, t_rows, t_cache = shared[split_key]
        t_labels = self._labels(self.model.run(tplan.pool))
        claims, runs, drawn = [], [], []
        for claim in tplan.claims:
            pairs = claim.pairs
            base_u = inverse[pairs.base_index]
            sources_u = [inverse[s] for s in pairs.source_index]
            run = ClaimRun(claim, base_u, sources_u, self._labels(pairs.expected), self._labels(pairs.base_output),
                           np.stack([t_labels[s] for s in pairs.source_index]),
                           t_cache.preds[base_u], np.stack([t_cache.preds[s] for s in sources_u]))
            runs.append(run)
            right = np.asarray(run.kept if self.keep_filter else np.ones(run.expected.shape, dtype=bool))
            keep = np.asarray(right.any(axis=1) if right.ndim == 2 else right)  # any element right: the pair counts
            mask = right[keep] if right.ndim == 2 else None
            if keep.sum() < max(8, 0.1 * len(keep)):  # too few pairs the network gets right: use all
                keep = np.ones(len(base_u), dtype=bool)
                mask = None
            claims.append(TrainClaim(claim.groups, base_u[keep], [s[keep] for s in sources_u], run.expected[keep],
                                     mask))
            drawn.append(TrainClaim(claim.groups, base_u, sources_u, run.expected))
        split = split_size(claims, len(next(iter(t_rows.values()))), tplan.overlap)
        if split.problem():
            before = split_size(drawn, split.sampled_inputs, tplan.overlap)
            raise CheckUsageError(self._split_error(split, check, before))
        steps = getattr(check, "steps", None)  # the effective seed: --seed and `seed` train alike
        config = TrainConfig(seed=int(self.plan.seed), steps=int(steps) if steps else TrainConfig.steps)
        key = artifact_key(ir, check, self.alignment, net, self.plan, config, variant)
        folder = Path(artifacts) if artifacts else Path(ir.file).resolve().parent / ARTIFACT_DIR
        path = folder / f"{key[:32]}.safetensors"
        trained = None if retrain else load_artifact(path, groups, key)
        reused = trained is not None
        if trained is None:
            advance = progress(f"training {'/'.join(sorted({g.kind for g in groups}))}"
                               + (f" ({variant})" if variant != "network" else ""),
                               config.steps + config.warmup * (max(1, config.restarts) - 1)) if progress else None

            def fixed(var, b, width):
                return self.engine.basis(b.featurizer, width)

            trained = train(t_engine, t_rows, t_cache, self.alignment, groups, claims, config, fixed, advance)
            self.engine.forward_passes["training steps"] = (self.engine.forward_passes.get("training steps", 0)
                                                            + int(trained.info.get("steps", 0))
                                                            + int(trained.info.get("restart_steps", 0)))
            try:
                save_artifact(path, trained, key)
            except OutputError as exc:  # a check error naming the file, not the end of the run
                raise CheckUsageError(f"cannot save the trained featurizers: {exc}") from None
        if t_engine is not self.engine:  # the training engine's passes and notes are this run's
            for k, v in t_engine.forward_passes.items():
                if v:
                    self.engine.forward_passes[k] = self.engine.forward_passes.get(k, 0) + v
            t_engine.forward_passes = {k: 0 for k in t_engine.forward_passes}
            self.engine.notes.extend(n for n in t_engine.notes if n not in self.engine.notes)
        self.fitted = Fitted(trained, reused, path, key, t_rows, t_cache, runs, tplan.overlap, split)
        if self.elements:
            pooled[learned] = (self.fitted, self.domain)
            self.fitted = self._element_fitted(self.fitted, self.domain)
        return self.fitted

    def _labels(self, values: dict) -> np.ndarray:
        """The output codes of `values` (a model run, or a pair set's expected or base outputs):
        `[n]` for the run's output, `[n, elements]` when training over several output elements."""
        if not self.elements:
            return self.domain.codes(values[self.output])
        table = self.domain if isinstance(self.domain, ValueTable) else None  # a real output: one shared table
        return np.stack([(table or self.model.domain(e)).codes(values[e]) for e, _ in self.elements], axis=1)

    def _element_fitted(self, pooled: Fitted, domain) -> Fitted:
        """This element's view of featurizers trained over every output element: the same subspaces,
        and the training pairs scored at this element (its labels and clean predictions), which the
        training report and the `heldout` control compare with its held-out pairs. `domain` is the
        training run's: a real output's codes are that run's value table's, turned into this run's."""
        k = [e for e, _ in self.elements].index(self.output)
        table = self.domain if isinstance(self.domain, ValueTable) and domain is not self.domain else None

        def own(codes: np.ndarray) -> np.ndarray:  # a real output: each element run has its own value table
            return codes if table is None else table.recode(codes, domain)
        cache = CleanCache(own(pooled.train_cache.preds[:, k]), pooled.train_cache.acts)
        runs = [ClaimRun(r.plan, r.base_u, r.sources_u, own(r.expected[:, k]), own(r.base_label[:, k]),
                         own(r.source_labels[:, :, k]), own(r.net_base[:, k]), own(r.net_sources[:, :, k]))
                for r in pooled.train_claims]
        return replace(pooled, train_cache=cache, train_claims=runs)


    def _split_error(self, split: SplitSize, check, drawn: SplitSize) -> str:
        name = getattr(check, "name", "?")
        if not drawn.problem():  # the draw was large enough: the correctness filter left too little
            return (f"check `{name}`: the training split of its learned featurizer keeps {split.problem()} "
                    f"(the floor is {MIN_TRAIN_INPUTS} distinct inputs and {MIN_TRAIN_PAIRS} distinct pairs per "
                    f"interchange set): of {drawn.pairs} training pairs drawn, {split.pairs} have a base and "
                    "sources the network gets right. Raise `train`, or check the network's outputs: a low "
                    "keep-rate usually means the prompt, the answer template or the tokenizer is wrong")
        fix = (f"Lower `pool` (now {pool_size(check)}) or `pairs` so the held-out pairs leave inputs to train on "
               "(the input space is too small for both at this size), or align with a fixed basis instead")
        if split.overlap:
            return (f"check `{name}`: the held-out pairs use every input of the space ({self.n_unique} distinct), so "
                    "its learned featurizer has no input of its own to train on (training on scored inputs would "
                    f"make the held-out IIA a training score). {fix}")
        return (f"check `{name}`: the training split of its learned featurizer has {split.problem()} "
                f"(the floor is {MIN_TRAIN_INPUTS} distinct inputs and {MIN_TRAIN_PAIRS} distinct pairs per "
                f"interchange set): the held-out pairs already use {self.n_unique} distinct inputs and training "
                f"draws only inputs they do not use. {fix}")

    def train_scores(self) -> dict[str, Proportion]:
        """IIA of the trained featurizers on their own training pairs, per claim label."""
        if self.fitted is None:
            return {}
        f = self.fitted
        with counted_as(self.engine, "training split"):
            return self._train_scores(f)

    def _train_scores(self, f) -> dict[str, Proportion]:
        out = {}
        for run in f.train_claims:
            preds = self.engine.run_patched(f.train_rows, f.train_cache, run.base_u, run.sources_u,
                                            self.group_bindings(run.plan), None, bases=self.bases(run.plan))
            res = self.score(run, preds)
            out[run.plan.label] = res.iia
        return out

    def training_report(self) -> dict[str, Any]:
        f = self.fitted
        if f is None:  # callers ask only after fit() of a learned alignment
            raise RuntimeError("training_report() is asked before fit() trained a featurizer")
        info = f.trained.info
        return {"variant": self.label or "network", "groups": info.get("groups", []), "steps": info.get("steps"),
                "max_steps": info.get("max_steps"), "stopped": info.get("stopped"),
                "seconds": info.get("seconds"), "path": info.get("path"), "reused": f.reused,
                "artifact": str(f.artifact), "key": f.key,
                "train_pairs": int(sum(len(r.base_u) for r in f.train_claims)), "overlap": f.overlap,
                **({} if f.split is None else {"train_pairs_used": f.split.pairs, "train_inputs": f.split.inputs,
                                               "train_distinct_pairs": f.split.distinct_pairs}),
                "loss": decimate(info.get("loss", [])), "train_batch_iia": decimate(info.get("train_batch_iia", [])),
                **({"elements": [e for e, _ in self.elements]} if self.elements else {})}

    # controls --------------------------------------------------------------------------
    def random_subspaces(self, seed: int) -> tuple[dict, str]:
        """A random orthonormal subspace per (variable, binding), of the size the claim patches.

        Variables sharing a site get disjoint random subspaces (one QR, split into blocks).
        `seed` is the draw's own seed (compile.seeds.derive_seed(check seed, "random_subspace/<d>")).
        Returns (bases, '') or ({}, why it does not apply).
        """
        gen = torch.Generator().manual_seed(int(seed))
        per_site: dict = {}
        for var, bindings in self.alignment.variables.items():
            for b in bindings:
                per_site.setdefault((b.site, b.positions), []).append((var, b))
        out = {}
        for members in per_site.values():
            sizes = []
            for var, b in members:
                width = self.cache.acts.width(b) if b in self.cache.acts else None
                if width is None:
                    break
                k = self._dims(var, b, width)
                if k is None:
                    return {}, (f"`{var}` is aligned to the whole of `{b.site}`: a random subspace of the same "
                                "size is the same patch")
                sizes.append((var, b, width, k))
            if not sizes:
                continue
            width = sizes[0][2]
            total = sum(k for *_, k in sizes)
            q, _ = torch.linalg.qr(torch.randn(width, max(total, 1), generator=gen))
            start = 0
            for var, b, _, k in sizes:
                out[(var, b)] = q[:, start:start + k].contiguous()
                start += k
        return out, ""

    def _dims(self, var: str, b, width: int) -> int | None:
        if self.fitted is not None and (var, b) in self.fitted.trained.bases:
            return int(self.fitted.trained.bases[(var, b)].shape[1])
        if isinstance(b.featurizer, F.SAE):  # a random subspace of as many dims as latents patched
            return len(b.featurizer.latents)
        basis = self.engine.basis(b.featurizer, width)
        return None if basis is None else int(basis.shape[1])


@contextlib.contextmanager
def counted_as(engine: Engine, what: str):
    """Forward passes run inside the block are reported under `"<kind> (<what>)"`.

    The check's own numbers (`clean`, `patched`) then stay what they always meant: passes
    for the claim itself; training, controls and the illusion check are listed beside them.
    """
    before = dict(engine.forward_passes)
    try:
        yield
    finally:
        for k in list(engine.forward_passes):
            delta = engine.forward_passes[k] - before.get(k, 0)
            if delta and "(" not in k:
                engine.forward_passes[k] -= delta
                key = f"{k} ({what})"
                engine.forward_passes[key] = engine.forward_passes.get(key, 0) + delta


# ───────────────────────── threads ─────────────────────────

SMALL_NETWORK = 5_000_000  # parameters


@contextlib.contextmanager
def compute_threads(module: torch.nn.Module):
    """Run small networks single-threaded (restored on exit).

    A batch through a network of a few hundred thousand parameters is microseconds of
    arithmetic; with several intra-op threads on a busy machine it waits milliseconds for
    them instead (measured here: 2 ms vs 0.02 ms per 64x128 linear layer on 2 loaded
    cores). Large networks keep the caller's setting.
    """
    before = torch.get_num_threads()
    small = sum(p.numel() for p in module.parameters()) <= SMALL_NETWORK
    if small and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


# ───────────────────────── random re-initialisation ─────────────────────────

def random_copy(net, seed: int):
    """A copy of a loaded network with the same architecture and freshly drawn weights.

    Every submodule with `reset_parameters` is reset under a seeded RNG; parameters of other
    modules (e.g. GPT-2's Conv1D) are redrawn from a normal distribution with the original's
    standard deviation (biases and constant vectors keep their values: they carry no learned
    structure to speak of). The original network is untouched.
    """
    module = copy.deepcopy(net.module)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int(seed))
        handled: set[int] = set()
        for sub in module.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset) and sub is not module:
                try:
                    reset()
                    handled.update(id(p) for p in sub.parameters(recurse=False))
                except Exception:  # noqa: BLE001 - a module whose reset fails is redrawn below
                    pass
        for p in module.parameters():
            if id(p) in handled or p.numel() < 2:
                continue
            std = float(p.float().std())
            if std > 0:
                p.normal_(0.0, std)
    module.eval()
    return replace(net, module=module, source=f"random re-initialisation (seed {seed}) of {net.source}")


# ───────────────────────── building a run ─────────────────────────

def make_alignment_run(ir: SpecIR, check, plan: CheckPlan, net: LoadedNetwork, options: CheckOptions, *,
                       keep_filter: bool = True, label: str = "") -> AlignmentRun:
    """The engine and `AlignmentRun` of `plan` on `net` (sites are located before any forward pass)."""
    adapter = _adapter(net, plan)
    family = resolve_family(net.module)
    for b in plan.bindings():  # fail before any forward pass when the architecture cannot serve a site
        family.locate(net.module, b.site.address)
    batch, base_dir = options.batch or check.batch, Path(ir.file).resolve().parent
    backend = backend_for(*engine_choice(ir.networks[plan.network.name], options, base_dir))
    if getattr(backend, "remote", None) is not None and plan.alignment.learned:
        raise CheckUsageError("learned featurizers (das, boundless) train on local activations; a remote "
                              "check cannot train them — train with the torch backend and check the saved "
                              "basis (`: basis(file=\"file.safetensors\")`)")
    engine = backend.engine(adapter, net.module, family, EngineOptions(
        batch_size=batch, base_dir=base_dir, incremental=options.incremental, activations=options.activations))
    return AlignmentRun(plan, engine, keep_filter=keep_filter, label=label)


def _adapter(net: LoadedNetwork, plan: CheckPlan):
    values = None
    if plan.alignment.decoder == "value":  # a real output: matched within the check's tolerance
        values = ValueTable(plan.check.tolerance if plan.check.tolerance is not None else Fraction(0))
    if net.backend == "torch":
        return TorchAdapter(net, plan.model, plan.output, position=plan.alignment.output_position, values=values)
    return HFAdapter(net, plan.network, plan.model, plan.output, values=values, position=plan.alignment.output_position)


def describer(model, domain, cr: ClaimRun) -> Callable[[int, int], dict]:
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
    if isinstance(domain, ValueTable):  # a real output: a model value (exact, as text: `1/3`) or the network's float
        value = domain.value_of(int(code))
        return format_real(value) if isinstance(value, Fraction) else value
    return domain.values[code] if 0 <= code < domain.size else None
