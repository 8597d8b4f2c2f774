"""Compile a check into a plan: the interchange sets to test, their counterfactual pairs
drawn from one shared pool of inputs, and the site bindings each set patches.

Why one pool per check: every unique input's clean forward pass then runs once and serves
as base or source for every pair of every interchange set (and for the correctness filter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from causalspec.compile.seeds import effective_seed
from causalspec.semantics.ir import AlignmentIR, CheckIR, NetworkIR, SpecIR
from causalspec.semantics.model import CausalModel
from causalspec.semantics.pairs import PairSet, make_pairs
from causalspec.semantics.sampling import sample_inputs

DEFAULT_POOL_CAP = 512


@dataclass
class ClaimPlan:
    label: str  # "{WX}", "{WX, YZ}", "{WX | YZ}"
    groups: list[list[str]]
    pairs: PairSet
    kind: str = "declared"  # "declared" | "subset" (approximate abstraction accuracy)


@dataclass
class CheckPlan:
    check: CheckIR
    alignment: AlignmentIR
    model: CausalModel
    network: NetworkIR
    pool: dict[str, np.ndarray]
    claims: list[ClaimPlan] = field(default_factory=list)
    # the effective seed (command line > spec > default, compile.seeds): every random choice of
    # the check — training split and initialisation, control draws — derives from it
    seed: int = 0
    seed_source: str = "spec"

    @property
    def output(self) -> str:
        return self.alignment.output

    def bindings(self) -> list:
        """Every site binding some claim patches (deduplicated, in a stable order)."""
        seen: dict = {}
        for claim in self.claims:
            for group in claim.groups:
                for var in group:
                    for b in self.alignment.variables[var]:
                        seen.setdefault(b, None)
        return list(seen)


def label_of(groups: list[list[str]] | tuple) -> str:
    return "{" + " | ".join(", ".join(g) for g in groups) + "}"


def pool_size(check) -> int:
    return int(check.pool) if check.pool else min(int(check.pairs), DEFAULT_POOL_CAP)


def needs_aaa(check) -> bool:
    return any(c.metric == "aaa" for c in check.conditions)


def compile_check(ir: SpecIR, check, pairs: int | None = None, seed: int | None = None) -> CheckPlan:
    """Build the plan of one check. `pairs`/`seed` override the spec (e.g. from the CLI)."""
    alignment = ir.alignments[check.alignment]
    model = ir.models[alignment.model]
    network = ir.networks[alignment.network]
    n_pairs = int(pairs if pairs is not None else check.pairs)
    chosen = effective_seed(seed, check.seed, getattr(check, "seed_given", True))
    seed = chosen.value
    rng = np.random.default_rng(seed)  # the pairs' stream is the effective seed itself (compile.seeds)
    pool = sample_inputs(model, max(2, pool_size(check) if pairs is None else min(n_pairs, pool_size(check))),
                         rng)
    pool_inputs = dict(getattr(pool, "inputs", pool))
    plan = CheckPlan(check, alignment, model, network, pool_inputs, seed=seed, seed_source=chosen.source)
    # An `aaa`-only check without `interchange` gets every subset as its interchange sets
    # (semantics/checks.py); those are exactly the subset claims below, so they are not run twice.
    declared = [] if getattr(check, "interchange_default", False) else [[list(g) for g in s]
                                                                        for s in check.interchange]
    for groups in declared:
        plan.claims.append(ClaimPlan(label_of(groups), groups,
                                     make_pairs(model, groups, n_pairs, rng, pool=pool_inputs)))
    if needs_aaa(check):
        aligned = [v for v in alignment.variables if v != alignment.output]
        for k in range(1, len(aligned) + 1):
            for subset in combinations(aligned, k):
                groups = [list(subset)]
                plan.claims.append(ClaimPlan(label_of(groups), groups,
                                             make_pairs(model, groups, n_pairs, rng, pool=pool_inputs),
                                             kind="subset"))
    return plan
