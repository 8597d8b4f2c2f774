"""Training learned featurizers: DAS (`das(k)`) and Boundless DAS (`boundless`).

Why here, in the run layer: training is patched forward passes with gradients flowing into
the featurizer's parameters (and nowhere else: the network's own weights stay frozen), so it
needs the same hooks as the engine. The training pairs are a split disjoint from the
check's held-out pairs (`causalspec.compile.training`); what is trained here is only ever
*scored* by the engine, on held-out pairs, with the trained subspace handed to it as a fixed
orthonormal basis.

DAS (Geiger et al. 2023): one learned matrix with orthonormal columns per site (an
orthogonal parametrization, `torch.nn.utils.parametrizations.orthogonal`, i.e. the first
columns of a rotation), cut into disjoint blocks of `k` columns, one block per aligned
variable at that site. The interchange of variable V from a source into a base is
`x + ((src - x) @ B_V) @ B_V.T`, the engine's subspace patch. The loss is the cross entropy
of the network's class scores on the patched run against the high-level model's
counterfactual output; for a real output (`output : value`) it is the squared error of the
network's value against the counterfactual value (MSE, the regression loss of pyvene's
interventions on continuous targets).

Boundless DAS (Wu et al. 2023): a full rotation per site and, per variable, a learned
boundary `b` over its share of the rotated dimensions: soft mask `m_i = sigmoid((b - i) / T)`
with the temperature `T` annealed from `temperature_start` to `temperature_end`, and a small
penalty on `b` so the subspace stays as small as the task allows. After training the mask
is cut at 0.5: the learned dimensionality is the number of rotated dimensions kept, and the
featurizer is scored as the plain subspace they span.

Each learned kind is one strategy class (`DASFeaturizer`, `BoundlessFeaturizer`, registered
in `STRATEGIES`): it owns its parameters, its training patch, its loss penalty and its final
subspaces, so the training loop never branches on the kind. The patch goes through the
engine's own machinery — `run.sites.make_edit` (shape checks, positions) with the kind's
formula, hooks installed by `run.hooks.installed`, minibatches bucketed by the engine's
`pair_buckets` — so training and scoring patch the same way.

Speed: where the training split's clean pass kept keys/values (a causal LM), each step runs
only the suffix the patch can change — the blocks from the patch's on, at the positions from
the patch on — and its backward (`run.suffix`, `batch_loss`); otherwise full forwards, with
the reason in the check's notes. A minibatch that runs out of memory is split (`run.batching`)
and its gradients summed, so the step is the same. Training stops early once the training IIA
over the last few steps reaches `early_stop`; small problems (an MLP's 128 units) run single-threaded, because on a busy
machine thread synchronisation costs more than a 128-wide matrix product.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence, cast

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from causalspec.files import SAFETENSORS_KIND, TOOL, atomic_write_bytes
from causalspec.run import suffix
from causalspec.run.adapters import CheckUsageError
from causalspec.run.batching import BatchSizer
from causalspec.run.hooks import installed
from causalspec.run.incremental import unsupported_reason
from causalspec.run.patching import mix
from causalspec.run.sites import make_edit
from causalspec.semantics.site_kinds import SiteAddress

ALGORITHM_VERSION = "das-5"  # part of the artifact key: bump when training changes its results
# das-5: a real output's training split keeps pairs whose values are not among the held-out values


@dataclass(frozen=True)
class TrainConfig:
    """How learned featurizers are trained, fixed when training starts."""

    steps: int = 300  # at most this many optimiser steps
    lr: float = 2e-2
    batch: int = 128
    early_stop: float = 0.99  # stop once the mean training IIA over the last `window` steps reaches it
    window: int = 25
    plateau: float = 0.05  # ... and the mean loss fell by at most this fraction over the last window
    min_steps: int = 50
    seed: int = 0
    restarts: int = 3  # initialisations tried for `warmup` steps each; the best one continues
    warmup: int = 40
    boundary_penalty: float = 0.1  # boundless: weight of the mean boundary (fraction of dims kept)

    def key(self) -> dict:
        return {k: getattr(self, k) for k in ("steps", "lr", "batch", "early_stop", "window", "plateau", "min_steps",
                                              "seed", "restarts", "warmup", "boundary_penalty")}


@dataclass(frozen=True)
class LearnedGroup:
    """The learned bindings that share one site (and positions): one rotation, disjoint blocks."""

    site: object  # SiteSpec
    positions: tuple
    kind: str  # "das" | "boundless"
    members: tuple  # ((var, SiteBinding), ...)

    @property
    def label(self) -> str:
        pos = ", ".join(p.label for p in self.positions)
        return f"{self.site}" + (f" @ {pos}" if pos else "")


def learned_groups(alignment, variables: Sequence[str] | None = None) -> list[LearnedGroup]:
    """Group the learned bindings of `alignment` (restricted to `variables`) by site."""
    found: dict[tuple, list] = {}
    for var, bindings in alignment.variables.items():
        if variables is not None and var not in variables:
            continue
        for b in bindings:
            if b.featurizer.learned:
                found.setdefault((b.site, b.positions, b.featurizer.kind), []).append((var, b))
    return [LearnedGroup(site, pos, kind, tuple(members)) for (site, pos, kind), members in found.items()]


@dataclass
class TrainedFeaturizers:
    """What training (or an artifact) yields: a fixed basis per learned (variable, binding)."""

    bases: dict  # (var, SiteBinding) -> Tensor [width, k]
    tensors: dict  # name -> Tensor, exactly what the artifact stores
    info: dict  # json-able: groups, history, steps, stop reason, seconds

    def basis(self, var: str, binding) -> torch.Tensor | None:
        return self.bases.get((var, binding))


@dataclass
class TrainClaim:
    """One interchange set's training pairs, as indices into the clean cache's rows."""

    groups: list[list[str]]
    base: np.ndarray  # [n] rows
    sources: list[np.ndarray]  # per group: [n] rows
    expected: np.ndarray  # [n] output codes; [n, elements] when trained over several output elements
    # [n, elements]: which (pair, element) targets count in the loss (the network is right on that
    # element of the base and sources); None: every target counts
    mask: np.ndarray | None = None


# ───────────────────────── class scores ─────────────────────────

def class_scores(adapter, raw: torch.Tensor, batch) -> torch.Tensor:
    """Differentiable scores `[batch, n_values]` of the output domain's values (argmax = prediction);
    `[batch, elements, n_values]` for an adapter reading several output elements (`run.elements`)."""
    readers = getattr(adapter, "readers", None)
    if readers is not None:
        return torch.stack([class_scores(r, raw, batch) for r in readers], dim=1)
    candidates = getattr(adapter, "candidates", None)
    if hasattr(adapter, "tokenizer") or candidates is not None:  # HF adapter
        if candidates is None:
            if getattr(adapter, "model_class", None) == "token_classification" and raw.dim() == 3:
                where = adapter.read_positions(batch).to(raw.device)  # the token each row is read at
                return raw[torch.arange(raw.shape[0], device=raw.device), where]
            return raw
        where = torch.tensor([e.answer_pos for e in batch.meta["rows"]], dtype=torch.long, device=raw.device)
        at = raw[torch.arange(batch.size, device=raw.device), where]  # [batch, vocab]
        return at[:, candidates.to(raw.device)]  # [batch, n_values]
    net = getattr(adapter, "net", None)
    if net is not None and getattr(net, "decode_hook", None) is not None:
        raise CheckUsageError(f"network `{net.name}` decodes its output with a `decode` hook, whose values are "
                              "not differentiable; learned featurizers (das, boundless) train on class scores — "
                              "drop the decode hook and let the output be read by argmax over [batch, classes]")
    if getattr(adapter, "position", None) is not None and raw.dim() == 3:  # `-> output @ 3`, `@ END`
        raw = raw[:, adapter.position_index(raw.shape[1])]
    if raw.dim() != 2:
        raise CheckUsageError(f"learned featurizers need class scores [batch, classes]; the network returns "
                              f"{tuple(raw.shape)}")
    return raw


def answer_scores(adapter, at: torch.Tensor) -> torch.Tensor:
    """Differentiable scores `[batch, n_values]` from logits `[batch, vocab]` already taken at each
    row's answer position (the incremental path's answer-only head, `run.suffix`)."""
    return at[:, adapter.candidates.to(at.device)]


def _note(engine, text: str) -> None:
    """Add a line to the engine's notes (what the check's report says about how it ran), once."""
    if text not in engine.notes:
        engine.notes.append(text)


# ───────────────────────── patching with parameters ─────────────────────────

def _edits(module: nn.Module, family, edits: Sequence[tuple]):
    """Install write hooks `(SiteAddress, edit)` for one forward; remove exactly those on exit
    (`run.hooks.installed`, the engine's installer)."""
    def installer(address, edit) -> Callable[[], list[RemovableHandle]]:
        return lambda: family.locate(module, address).install_write(edit)

    return installed([installer(address, edit) for address, edit in edits])


def subspace_edit(address, positions, values, basis, combine: Callable = mix) -> Callable:
    """The engine's patch (`run.sites.make_edit`: the same shape checks and position handling),
    differentiable in the basis; `combine` is its formula (`run.patching.mix`: the subspace
    patch `x + ((src - x) @ B) @ B.T`, or a featurizer's own).

    B need not be orthonormal here (boundless trains a soft mask on a rotation), which is why
    the edit is built without `Intervention`'s orthonormality check.
    """
    return make_edit(_TrainingPatch(address, positions, values, basis), combine)


@dataclass(frozen=True, eq=False)
class _TrainingPatch:
    """A `run.sites.Patch` without `Intervention`'s checks (see `subspace_edit`)."""

    site: SiteAddress
    positions: torch.Tensor | None
    values: torch.Tensor
    basis: Any


def masked_mix(current: torch.Tensor, source: torch.Tensor, basis) -> torch.Tensor:
    """Boundless DAS's soft patch `x + (((src - x) @ R) * m) @ R.T`; `basis` is `(R, m)`."""
    rotation, mask = basis
    r = rotation.to(dtype=current.dtype, device=current.device)
    return current + (((source - current) @ r) * mask.to(current.dtype)) @ r.T


@contextlib.contextmanager
def _threads_for(width: int):
    """Small problems run single-threaded (see the module docstring); the setting is restored."""
    before = torch.get_num_threads()
    if width <= 512 and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def frozen_weights(module: nn.Module):
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def tall_cayley(lin: nn.Module) -> torch.Tensor:
    """The weight [n, k] of ``lin`` under torch's orthogonal parametrization (Cayley map), solving
    for its k columns only.

    Why: for a tall n x k matrix (DAS: 768 x 16), `parametrizations.orthogonal` builds the n x n
    skew matrix A, solves ``(I - A/2) Q = I + A/2`` for all n columns of Q and keeps the first k.
    Solving for ``(I + A/2)[:, :k]`` only is the same Q[:, :k] (the same parametrization, the
    same parameters, rounding aside) at a fraction of the cost: the full solve was about a third
    of a training step on the incremental path. Anything else (a square matrix, another map, no
    trivialization base) reads ``lin.weight`` as before.
    """
    def weight() -> torch.Tensor:  # read only when returned: reading it runs torch's parametrization
        return cast(torch.Tensor, lin.weight)  # nn.Module.__getattr__ is typed `Tensor | Module`

    parametrizations = getattr(lin, "parametrizations", None)
    if parametrizations is None or "weight" not in parametrizations:
        return weight()
    plist = parametrizations["weight"]
    orth = plist[0]
    X = plist.original  # [n, k], unconstrained
    kind = getattr(getattr(orth, "orthogonal_map", None), "name", None)
    if len(plist) != 1 or X.dim() != 2 or kind != "cayley" or not hasattr(orth, "base"):
        return weight()
    n, k = X.shape
    if n <= k:
        return weight()
    A = torch.cat([X.tril(), X.new_zeros(n, n - k)], dim=-1)
    A = A - A.mH  # skew-symmetric [n, n]
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    q = torch.linalg.solve(eye - 0.5 * A, eye[:, :k] + 0.5 * A[:, :k])  # [n, k]
    base = orth.base
    return q if base is None else base @ q


# ───────────────────────── the featurizer strategies ─────────────────────────

class LearnedFeaturizer(nn.Module):
    """The parameters of one learned group, and how they patch: one class per featurizer kind
    (in the spirit of pyvene's one class per intervention), registered in `STRATEGIES`.

    Every kind starts from a matrix with orthonormal columns (`rot`: the first columns of a
    rotation, `torch.nn.utils.parametrizations.orthogonal`) cut into one block per variable;
    a kind says how wide the blocks are (`block_sizes`), what a patch during training is
    (`edit`), what it adds to the loss (`penalty`) and what its trained subspaces are
    (`final_bases`). Adding a featurizer kind is a subclass here plus its IR in
    `semantics.featurizers`; the training loop does not branch on kinds.
    """

    kind: ClassVar[str]
    annealed: ClassVar[bool] = False  # trains with a temperature annealed over the steps
    stops_early: ClassVar[bool] = True  # may stop before the step limit once training IIA saturates

    def __init__(self, group: LearnedGroup, width: int, generator: torch.Generator):
        super().__init__()
        self.group = group
        self.width = width
        self.vars = [(v, b) for v, b in group.members]
        sizes, cols = self.block_sizes(width)
        self.blocks = []
        start = 0
        for s in sizes:
            self.blocks.append(slice(start, start + s))
            start += s
        q, _ = torch.linalg.qr(torch.randn(width, cols, generator=generator))
        # The parametrization completes a tall matrix to a square one with the *global* RNG:
        # seed it (and leave the caller's RNG state alone) so training is reproducible.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            lin = nn.Linear(cols, width, bias=False)  # weight [width, cols]: orthonormal columns
            self.rot = nn.utils.parametrizations.orthogonal(lin, orthogonal_map="cayley")
            with torch.no_grad():
                self.rot.weight = q

    def block_sizes(self, width: int) -> tuple[list[int], int]:
        """(columns of each variable's block, columns of the whole matrix) at a site of `width`."""
        raise NotImplementedError

    def weight(self) -> torch.Tensor:
        return tall_cayley(self.rot)  # [width, cols]

    def edit(self, j: int, address, positions, values, weight: torch.Tensor, temperature: float | None) -> Callable:
        """The training patch of variable j (differentiable in the parameters); `weight` is this
        step's `weight()`."""
        raise NotImplementedError

    def penalty(self) -> torch.Tensor | None:
        """What this group adds to the penalty term of the loss (None: nothing)."""
        return None

    def after_step(self) -> None:
        """Keep the parameters in range after an optimiser step (under no_grad)."""

    def final_bases(self) -> list[torch.Tensor]:
        """The trained subspace of each variable, `[width, k]` with orthonormal columns."""
        raise NotImplementedError

    def extra_tensors(self, prefix: str) -> dict:
        """Tensors the artifact stores besides the weight and the bases."""
        return {}


class DASFeaturizer(LearnedFeaturizer):
    """DAS: disjoint blocks of `k` orthonormal columns, one per variable; the patch is the
    engine's subspace patch on the block."""

    kind = "das"

    def block_sizes(self, width: int) -> tuple[list[int], int]:
        sizes = [b.featurizer.k for _, b in self.vars]
        if sum(sizes) > width:
            raise CheckUsageError(f"{self.group.label}: das subspaces of {' + '.join(map(str, sizes))} dims do not "
                                  f"fit an activation of width {width}")
        return sizes, sum(sizes)

    def edit(self, j, address, positions, values, weight, temperature):
        return subspace_edit(address, positions, values, weight[:, self.blocks[j]])

    def final_bases(self) -> list[torch.Tensor]:
        with torch.no_grad():
            w = self.weight().detach().clone()
            return [w[:, b].contiguous() for b in self.blocks]


class BoundlessFeaturizer(LearnedFeaturizer):
    """Boundless DAS: a full rotation shared equally by the variables and, per variable, a learned
    boundary over its share: soft mask `m_i = sigmoid((b - i) / T)`, cut at 0.5 after training."""

    kind = "boundless"
    annealed = True
    stops_early = False

    def __init__(self, group: LearnedGroup, width: int, generator: torch.Generator):
        super().__init__(group, width, generator)
        # boundary per variable as a fraction of its share of the rotated dimensions (an
        # optimiser step then moves every boundary at the same relative speed); start halfway
        self.boundary = nn.Parameter(torch.full((len(self.blocks),), 0.5, dtype=torch.float32))

    def block_sizes(self, width: int) -> tuple[list[int], int]:
        share = width // len(self.vars)
        if share < 1:
            raise CheckUsageError(f"{self.group.label}: {len(self.vars)} boundless variables cannot share {width} dims")
        return [share] * len(self.vars), width

    def masks(self, temperature: float) -> list[torch.Tensor]:
        out = []
        for j, block in enumerate(self.blocks):
            n = block.stop - block.start
            idx = torch.arange(n, dtype=torch.float32) + 0.5
            out.append(torch.sigmoid((self.boundary[j] * n - idx) / temperature))
        return out

    def edit(self, j, address, positions, values, weight, temperature):
        mask = self.masks(temperature)[j]
        return subspace_edit(address, positions, values, (weight[:, self.blocks[j]], mask), masked_mix)

    def penalty(self) -> torch.Tensor:
        return self.boundary

    def after_step(self) -> None:
        self.boundary.clamp_(0.0, 1.0)

    def final_bases(self) -> list[torch.Tensor]:
        with torch.no_grad():
            w = self.weight().detach().clone()
            out = []
            for j, block in enumerate(self.blocks):
                n = block.stop - block.start
                keep = int(min(n, max(0, round(float(self.boundary[j]) * n))))
                out.append(w[:, block][:, :keep].contiguous())
            return out

    def extra_tensors(self, prefix: str) -> dict:
        return {f"{prefix}.boundary": self.boundary.detach().clone()}


STRATEGIES: dict[str, type[LearnedFeaturizer]] = {c.kind: c for c in (DASFeaturizer, BoundlessFeaturizer)}


def featurizer_for(group: LearnedGroup, width: int, generator: torch.Generator) -> LearnedFeaturizer:
    """The strategy object of a learned group (by its featurizer kind)."""
    return STRATEGIES[group.kind](group, width, generator)


# ───────────────────────── training ─────────────────────────

@dataclass
class _State:
    """One training run: parameters, optimiser, minibatch stream and its history."""

    sites: list
    optimiser: torch.optim.Optimizer
    rng: np.random.Generator
    where: dict
    losses: list = field(default_factory=list)
    accs: list = field(default_factory=list)
    per_claim: list = field(default_factory=list)


def full_reason(engine, cache) -> str | None:
    """Why training steps cannot run on the incremental path at all (`run.suffix`), or None."""
    if getattr(engine.adapter, "readers", None) is not None:
        return "the outputs are read at several positions (per-element training)"
    runner = getattr(cache, "kv", None)
    if runner is not None:
        return suffix.unusable(runner)
    options = getattr(engine, "options", None)
    if options is not None and not options.incremental:
        return "incremental forwards are off"
    return (unsupported_reason(engine.adapter, engine.module, engine.family)
            or "the training split's clean pass kept no key/value cache (no sequence axis, or a cache that is "
               "not one key/value tensor per layer)")


def batch_loss(engine, rows, cache, alignment, sites: Sequence[LearnedFeaturizer], claim: TrainClaim,
               idx: np.ndarray, total: int | None = None, temperature: float | None = None,
               fixed_basis: Callable | None = None, *, full: bool = False,
               stats: suffix.SuffixStats | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cross entropy summed over the pairs `idx` of `claim` / `total` (default: their number),
    class scores, targets), differentiable in the parameters of `sites`. For a real output (the
    adapter's `values`): (squared error summed / total, values [batch], target values [batch]).

    On the incremental path (`run.suffix`) where the cache allows it and `full` is not set;
    otherwise a full patched forward. `stats` counts which path each batch took."""
    adapter, module, family = engine.adapter, engine.module, engine.family
    table = getattr(adapter, "values", None)  # run.values.ValueTable: a real output (MSE), else classes
    where = {(v, b): (i, j) for i, st in enumerate(sites) for j, (v, b) in enumerate(st.vars)}
    weights = [st.weight() for st in sites]
    batch = adapter.encode({k: v[claim.base[idx]] for k, v in rows.items()})
    items = []  # (address, absolute positions, (address, positions) -> edit)
    for g, names in enumerate(claim.groups):
        src = claim.sources[g][idx]
        for var in names:
            for b in alignment.variables[var]:
                values = cache.acts.stack(b, src)  # [batch, n_pos, w] | [batch, w]
                pos = adapter.positions(batch, b)
                make: Callable[[SiteAddress, torch.Tensor], Callable]
                if (var, b) in where:  # learned: the group's strategy patches it
                    i, j = where[(var, b)]

                    def learned(site, p, i=i, j=j, values=values):
                        return sites[i].edit(j, site, p, values, weights[i], temperature)
                    make = learned
                else:
                    basis = fixed_basis(var, b, values.shape[-1]) if fixed_basis else None

                    def fixed(site, p, values=values, basis=basis):
                        return subspace_edit(site, p, values, basis)
                    make = fixed
                items.append((b.site.address, pos, make))
    writes = [suffix.Write(a, p) for a, p, _ in items]
    runner = getattr(cache, "kv", None)
    layout: suffix.Suffix | str | None = "the full path was asked for" if full else full_reason(engine, cache)
    if layout is None and runner is not None:  # full_reason is None only where the clean pass kept a runner
        layout = suffix.plan(runner, batch, writes)
        if isinstance(layout, suffix.Suffix) and not suffix.kept_bases(runner, claim.base[idx]):
            layout = "a base input's keys/values were not kept by the clean pass"
    if isinstance(layout, suffix.Suffix) and runner is not None:  # a Suffix is planned on the runner only
        edits = [(site, make(site, rel)) for (site, rel), (_, _, make) in zip((layout.shift(w) for w in writes), items)]
        if stats is not None:
            stats.n_layers = runner.n_layers
        at = suffix.answer_logits(runner, batch, claim.base[idx], layout, [a for a, _, _ in items],
                                  _edits(module, family, edits), stats)
        scores = answer_scores(adapter, at).float()
        if table is not None:
            scores = scores[:, 0]  # the named token's logit is the value
    else:
        if stats is not None:
            stats.fallbacks[layout] = stats.fallbacks.get(layout, 0) + 1
        with _edits(module, family, [(a, make(a, p)) for a, p, make in items]):
            raw = adapter.forward(batch)
        scores = (adapter.read_value(raw, batch) if table is not None else class_scores(adapter, raw, batch)).float()
    if claim.expected.ndim == 2:  # several output elements: each pair's losses summed over its elements
        return _elements_loss(table, scores, claim, idx, total)
    if table is not None:  # a real output: regression on the counterfactual value (MSE)
        target = torch.as_tensor(table.as_floats(claim.expected[idx]), dtype=torch.float32, device=scores.device)
        loss = nn.functional.mse_loss(scores, target, reduction="sum") / (total or len(idx))
        return loss, scores, target
    target = torch.as_tensor(claim.expected[idx], dtype=torch.long, device=scores.device)
    loss = nn.functional.cross_entropy(scores, target, reduction="sum") / (total or len(idx))
    return loss, scores, target


def _elements_loss(table, scores: torch.Tensor, claim: TrainClaim, idx: np.ndarray,
                   total: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pooled per-element objective: per pair, the loss at every output element (cross entropy
    of scores `[batch, elements, classes]`, or the squared error of values `[batch, elements]`),
    masked to the elements the network gets right, summed, divided by `total` pairs."""
    codes = claim.expected[idx]  # [batch, elements]
    if table is not None:
        floats = table.as_floats(codes.reshape(-1)).reshape(codes.shape)
        target = torch.as_tensor(floats, dtype=torch.float32, device=scores.device)
        per = (scores - target) ** 2
    else:
        target = torch.as_tensor(codes, dtype=torch.long, device=scores.device)
        per = nn.functional.cross_entropy(scores.reshape(-1, scores.shape[-1]), target.reshape(-1),
                                          reduction="none").reshape(target.shape)
    if claim.mask is not None:
        per = per * torch.as_tensor(claim.mask[idx], dtype=per.dtype, device=per.device)
    return per.sum() / (total or len(idx)), scores, target


def correct_count(adapter, scores: torch.Tensor, target: torch.Tensor, mask: np.ndarray | None = None) -> int:
    """Training pairs the patched run gets right: the argmax class, or (a real output) a value
    within the check's tolerance of the target (in floats: a training curve, not a verdict).
    Over several output elements (`target` [batch, elements]) a pair is right when every element
    that counts (`mask`) is."""
    values = getattr(adapter, "values", None)
    if values is not None:
        right = (scores.detach() - target).abs() <= float(values.tolerance)
    else:
        right = scores.detach().argmax(-1) == target
    if right.dim() == 2:
        if mask is not None:
            right = right | ~torch.as_tensor(mask, dtype=torch.bool, device=right.device)
        right = right.all(dim=1)
    return int(right.sum())


def no_gradient_reason(groups) -> str:
    """Why training cannot start when the loss does not depend on the learned subspaces at all."""
    sites = ", ".join(g.label for g in groups)
    return (f"learned featurizer at {sites}: the network's output has no gradient with respect to the "
            "learned subspace — either the output never reads this site (so no intervention there can move "
            "it), or an operation without a gradient (a comparison, rounding, argmax, an integer cast, "
            "`.detach()`) lies between the site and the output. das and boundless are trained by gradient "
            "descent: align the variable with a fixed featurizer (a slice `[a:b]` or `basis(…)`) there, "
            "or make the path differentiable")


def train(engine, rows, cache, alignment, groups: list[LearnedGroup], claims: list[TrainClaim],
          config: TrainConfig, fixed_basis: Callable | None = None,
          progress: Callable[[int], None] | None = None) -> TrainedFeaturizers:
    """Fit the learned groups on `claims` (training pairs over `rows`, the cache's inputs).

    With `config.restarts > 1`, that many seeded initialisations each train `config.warmup`
    steps on the same minibatches; the one with the lowest recent loss continues (a low-
    dimensional DAS subspace can settle in a poor local optimum from an unlucky start).
    """
    start_time = time.perf_counter()
    module = engine.module
    widths = [_width(cache, g.members[0][1]) for g in groups]
    annealed = [g for g in groups if STRATEGIES[g.kind].annealed]
    stops_early = all(STRATEGIES[g.kind].stops_early for g in groups)
    anneal: tuple[float, float] | None = None  # (start, end) temperatures; None: no group anneals
    if annealed:
        feat = annealed[0].members[0][1].featurizer
        anneal = (feat.temperature_start, feat.temperature_end)
    buckets = [training_buckets(engine, rows, cache, c, alignment) for c in claims]

    def new_state(restart: int) -> _State:
        gen = torch.Generator().manual_seed(int(config.seed) * 7919 + restart)
        sites = [featurizer_for(group, width, gen) for group, width in zip(groups, widths)]
        where = {(v, b): (i, j) for i, st in enumerate(sites) for j, (v, b) in enumerate(st.vars)}
        params = [p for st in sites for p in st.parameters()]
        return _State(sites, torch.optim.Adam(params, lr=config.lr), np.random.default_rng(int(config.seed)),
                      where, per_claim=[[] for _ in claims])

    stats = suffix.SuffixStats()
    sizer = BatchSizer(config.batch, on_backoff=lambda tried, new, exc: _note(
        engine, f"training forwards ran out of memory on a batch of {tried}; continued with batches of {new} "
                "(gradients accumulated over the smaller batches, so each step still sees its whole minibatch)"))

    def one_step(state: _State, step: int) -> None:
        sites, optimiser = state.sites, state.optimiser
        for group in optimiser.param_groups:  # cosine decay to 10% of the rate
            group["lr"] = config.lr * (0.55 + 0.45 * math.cos(math.pi * step / max(1, config.steps)))
        temperature = None
        if anneal is not None:  # geometric annealing start -> end
            t_start, t_end = anneal
            frac = step / max(1, config.steps - 1)
            temperature = t_start * (t_end / t_start) ** frac
        c = step % len(claims)
        claim = claims[c]
        idx = draw_minibatch(buckets[c], config.batch, state.rng)
        params = [p for st in sites for p in st.parameters()]
        grads = [torch.zeros_like(p) for p in params]
        loss_sum, correct = 0.0, 0
        # the minibatch in chunks of the sizer's size (one chunk unless a forward ran out of memory);
        # gradients are taken per chunk and added only once the chunk succeeded (run.batching)
        for chunk in sizer.chunks(len(idx)):
            with chunk:
                loss, scores, target = batch_loss(engine, rows, cache, alignment, sites, claim, idx[chunk.idx],
                                                   len(idx), temperature, fixed_basis, stats=stats)
                if not loss.requires_grad:
                    raise CheckUsageError(no_gradient_reason(groups))
                got = torch.autograd.grad(loss, params, allow_unused=True)
                for acc, gr in zip(grads, got):
                    if gr is not None:
                        acc += gr
                loss_sum += float(loss.detach())
                correct += correct_count(engine.adapter, scores, target,
                                         None if claim.mask is None else claim.mask[idx[chunk.idx]])
        penalised = [p for p in (st.penalty() for st in sites) if p is not None]
        if penalised:
            penalty = config.boundary_penalty * torch.cat(penalised).clamp_min(0).mean()
            for acc, gr in zip(grads, torch.autograd.grad(penalty, params, allow_unused=True)):
                if gr is not None:
                    acc += gr
            loss_sum += float(penalty.detach())
        for p, gr in zip(params, grads):
            p.grad = gr
        optimiser.step()
        with torch.no_grad():
            for st in sites:
                st.after_step()
        state.losses.append(loss_sum)
        state.accs.append(correct / max(1, len(idx)))
        state.per_claim[c].append(state.accs[-1])
        if progress:
            progress(1)

    stopped = f"reached the step limit ({config.steps})"
    restarts = max(1, int(config.restarts))
    warm = min(config.warmup, config.steps) if restarts > 1 else 0
    discarded = 0
    with _threads_for(max(widths or [0])), frozen_weights(module), torch.enable_grad():
        state = None
        if warm:
            candidates = []
            for r in range(restarts):
                cand = new_state(r)
                for step in range(warm):
                    one_step(cand, step)
                candidates.append((float(np.mean(cand.losses[-config.window:])), r, cand))
            _, chosen, state = min(candidates, key=lambda t: (t[0], t[1]))
            discarded = warm * (restarts - 1)
        else:
            state, chosen = new_state(0), 0
        for step in range(warm, config.steps):
            one_step(state, step)
            steps_done = step + 1
            recent = [float(np.mean(a[-config.window:])) if len(a) >= config.window else 0.0
                      for a in state.per_claim]
            if steps_done >= config.min_steps and min(recent) >= config.early_stop and stops_early:
                # ... and the loss has stopped falling (IIA saturates before the subspace settles)
                w = config.window * len(claims)
                losses = state.losses
                before, now = np.mean(losses[-2 * w:-w] or [np.inf]), np.mean(losses[-w:])
                if len(losses) >= 2 * w and before - now <= config.plateau * before:
                    stopped = (f"early stop at step {steps_done}: training IIA >= {config.early_stop:g} on every "
                               f"interchange set over its last {config.window} batches and the loss has levelled off")
                    break
    steps_done = len(state.losses)
    for text in stats.notes():
        _note(engine, text)
    if progress and steps_done + discarded < config.steps + warm * (restarts - 1):
        progress(config.steps + warm * (restarts - 1) - steps_done - discarded)
    if warm:
        stopped += f"; best of {restarts} initialisations after {warm} steps (#{chosen + 1})"
    bases: dict = {}
    tensors: dict = {}
    group_info = []
    for i, st in enumerate(state.sites):
        final = st.final_bases()
        tensors[f"group{i}.weight"] = st.weight().detach().clone().contiguous()
        dims = {}
        for j, (v, b) in enumerate(st.vars):
            bases[(v, b)] = final[j]
            tensors[f"group{i}.{v}.basis"] = final[j]
            dims[v] = int(final[j].shape[1])
        tensors.update(st.extra_tensors(f"group{i}"))
        group_info.append({"site": st.group.label, "kind": st.kind, "width": st.width, "dims": dims})
    info = {"groups": group_info, "steps": steps_done, "max_steps": config.steps, "stopped": stopped,
            "restart_steps": discarded, "seconds": round(time.perf_counter() - start_time, 3),
            "loss": state.losses, "train_batch_iia": state.accs, "config": config.key(),
            "algorithm": ALGORITHM_VERSION,
            "path": "incremental" if stats.steps and not stats.fallbacks else ("mixed" if stats.steps else "full")}
    return TrainedFeaturizers(bases, tensors, info)


def _width(cache, binding) -> int:
    if not len(cache.acts[binding]):
        raise CheckUsageError("no training inputs")
    return cache.acts.width(binding)


def training_buckets(engine, rows, cache, claim: TrainClaim, alignment) -> list[np.ndarray]:
    """Pairs grouped by the token counts of their patched sites (a batch must be rectangular):
    the engine's `pair_buckets`, over the bindings of each interchanged group."""
    flat = [(g, b) for g, names in enumerate(claim.groups) for var in names for b in alignment.variables[var]]
    return engine.pair_buckets(rows, cache, claim.base, claim.sources, flat)


def draw_minibatch(buckets: list[np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    sizes = np.array([len(b) for b in buckets], dtype=float)
    bucket = buckets[int(rng.choice(len(buckets), p=sizes / sizes.sum()))]
    return rng.choice(bucket, size=min(size, len(bucket)), replace=False)


# ───────────────────────── artifacts ─────────────────────────

def save_artifact(path, trained: TrainedFeaturizers, key: str) -> None:
    """Write the trained tensors and their info as safetensors, atomically (temp file + fsync +
    rename). The `causalspec: featurizers` metadata is our marker: an existing file is replaced
    only if it carries it (`causalspec.files`), otherwise `OverwriteRefused`."""
    from safetensors.torch import save

    meta = {TOOL: SAFETENSORS_KIND, "key": key, "info": json.dumps(trained.info)}
    data = save({k: v.detach().cpu().contiguous() for k, v in trained.tensors.items()}, metadata=meta)
    atomic_write_bytes(path, data)


def load_artifact(path, groups: list[LearnedGroup], key: str) -> TrainedFeaturizers | None:
    """The trained featurizers stored at `path` for `key`; None if absent or not ours."""
    from pathlib import Path

    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("causalspec") != "featurizers" or meta.get("key") != key:
                return None
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(meta["info"])
    except Exception:  # noqa: BLE001 - an unreadable artifact is retrained, not fatal
        return None
    bases = {}
    for i, group in enumerate(groups):
        for v, b in group.members:
            name = f"group{i}.{v}.basis"
            if name not in tensors:
                return None
            bases[(v, b)] = tensors[name]
    return TrainedFeaturizers(bases, tensors, info)


def decimate(values: Sequence[float], limit: int = 200) -> list[float]:
    """At most `limit` points of a curve (means of equal chunks), for reports."""
    values = list(values)
    if len(values) <= limit:
        return [float(v) for v in values]
    chunks = np.array_split(np.asarray(values, dtype=float), limit)
    return [float(c.mean()) for c in chunks]


def smooth(values: Sequence[float], window: int = 10) -> list[float]:
    out, acc = [], []
    for v in values:
        acc.append(v)
        if len(acc) > window:
            acc.pop(0)
        out.append(float(np.mean(acc)))
    return out


__all__ = ["ALGORITHM_VERSION", "LearnedGroup", "TrainClaim", "TrainConfig", "TrainedFeaturizers", "class_scores",
           "no_gradient_reason",
           "draw_minibatch", "frozen_weights", "training_buckets",
           "decimate", "learned_groups", "load_artifact", "save_artifact", "train"]
