"""Localization sweeps: `locate VAR over SITES @ POSITIONS : FEATURIZER` in a check.

Why inside a check: "where does WX live?" and "does WX live there?" are one question asked
twice, and the second answer is only honest if it is not read off the same numbers that
chose the site. So a check with `locate`:

1. sweeps every cell (site x position) with the check's own procedure — its interchange
   sets, pairs and seed; a learned featurizer is trained per cell on the check's training
   split — and scores each cell on the check's held-out pairs. These are exactly the
   numbers a separate single-site check of that cell reports (a test holds us to it).
2. picks the best cell (highest mean IIA over the declared interchange sets; ties go to
   the first cell in sweep order);
3. scores the claim at that cell on *fresh* pairs (a confirmation draw, seed + 1000003),
   with the check's controls, diagnostics and illusion check. The winner's curse of step 2
   does not leak into the verdict.

`causalspec locate` runs step 1 only and reports the table and a heatmap (`report.heatmap`).

Several variables (`semantics.ir.LocateIR.mode`): `locate H[i] over … @ i` makes a column per
element — cell (site, k) binds H[k] alone at position k and is scored by `interchange H[k]`
on the pairs a check of that element draws (`_column_claims`); each element then takes its
column's best cell for the confirmation, and each column has its own baseline. `locate {A, B}`
/ `locate {H[i]} … @ i` bind every variable in every cell (`bound_alignment`) and score the
check's own sets.

Speed: one clean forward pass per unique input records every cell's site at once (the
sweep's engine records the union of the cells' bindings), and the training split's clean
pass is shared by every cell the same way; a cell only adds its own training steps and
patched passes. Trained cells are artifacts like any check's, so a later single-site check
of a cell reuses the sweep's training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from causalspec.claims.elements import element_irs
from causalspec.claims.procedure import AlignmentRun, compute_threads, make_alignment_run
from causalspec.compile.plan import CheckPlan, compile_check
from causalspec.run.adapters import CheckUsageError
from causalspec.score.stats import Proportion, wilson

CONFIRM_OFFSET = 1_000_003


@dataclass
class Cell:
    site: str
    position: str
    binding: Any  # SiteBinding (the first variable's, when the cell binds several)
    iia: dict[str, Proportion] = field(default_factory=dict)  # declared set label -> IIA
    score: float | None = None  # mean IIA over declared sets
    trained: dict | None = None  # training report of this cell (learned featurizers)
    bound: tuple = ()  # (variable, SiteBinding) pairs the cell binds (LocateIR.cell_bindings)

    def to_dict(self) -> dict:
        return {"site": self.site, "position": self.position, "score": self.score,
                "iia": {k: v.to_dict() for k, v in self.iia.items()},
                "trained": None if self.trained is None else {k: self.trained[k] for k in
                                                             ("steps", "stopped", "reused", "artifact", "seconds")}}


@dataclass
class Sweep:
    check: str
    var: str
    featurizer: str
    site_labels: list[str]
    position_labels: list[str]
    cells: list[list[Cell]]
    pairs: int
    seed: int
    forward_passes: dict[str, int] = field(default_factory=dict)
    unique_inputs: int = 0
    seconds: float = 0.0
    # the no-intervention baseline per declared set: how often the unpatched network already
    # gives the counterfactual output on the kept pairs (the same pairs for every cell), and its
    # mean — the score a cell gets for changing nothing
    baseline: dict[str, Proportion] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # how the sweep ran (training path, fallbacks)
    # "single" (one variable), "element" (`locate H[i]`: a column per element, each scored by
    # `interchange H[k]`), "joint" (`locate {A, B}`: every cell binds every variable)
    mode: str = "single"
    # "element" mode: each column's own no-intervention baseline (its sets' pairs differ per element)
    column_baselines: list[float | None] = field(default_factory=list)

    def column_baseline(self, j: int) -> float | None:
        """The baseline a cell of column j is compared with (the sweep's, or its column's own)."""
        return self.column_baselines[j] if j < len(self.column_baselines) else self.baseline_score

    @property
    def baseline_score(self) -> float | None:
        vals = [p.estimate for p in self.baseline.values() if p.trials]
        return float(np.mean(vals)) if vals else None

    @property
    def best(self) -> Cell | None:
        scored = [(c.score, c) for row in self.cells for c in row if c.score is not None]
        if not scored:
            return None
        return max(scored, key=lambda sc: sc[0])[1]  # max keeps the first of equal scores

    def column_best(self) -> list[Cell | None]:
        """Per column, its best cell (the first of equal scores; None when none scored)."""
        out: list[Cell | None] = []
        for j in range(len(self.position_labels)):
            scored = [(s, row[j]) for row in self.cells if j < len(row) and (s := row[j].score) is not None]
            out.append(max(scored, key=lambda sc: sc[0])[1] if scored else None)
        return out

    def grid(self) -> np.ndarray:
        return np.array([[np.nan if c.score is None else c.score for c in row] for row in self.cells], dtype=float)

    def to_dict(self) -> dict:
        best = self.best
        return {"check": self.check, "var": self.var, "featurizer": self.featurizer, "sites": self.site_labels,
                "positions": self.position_labels, "pairs": self.pairs, "seed": self.seed,
                "cells": [[c.to_dict() for c in row] for row in self.cells],
                "best": None if best is None else {"site": best.site, "position": best.position,
                                                   "score": best.score,
                                                   "iia": {k: v.to_dict() for k, v in best.iia.items()}},
                "forward_passes": dict(self.forward_passes), "unique_inputs": self.unique_inputs,
                "seconds": round(self.seconds, 3), "notes": list(self.notes),
                "baseline": {"score": self.baseline_score,
                             "iia": {k: v.to_dict() for k, v in self.baseline.items()}},
                "mode": self.mode, "column_baselines": list(self.column_baselines),
                "column_best": [None if c is None else {"site": c.site, "position": c.position, "score": c.score}
                                for c in self.column_best()] if self.mode == "element" else None}


def feature_label(f) -> str:
    """How a featurizer is written: `das(k=1)`, `[0:8]`, `boundless`, `basis`, `identity`."""
    if f.kind == "das":
        return f"das(k={f.k})"
    if f.kind == "slice":
        return f"[{f.lo}:{f.hi}]"
    return f.kind


def cell_alignment(alignment, var: str, binding):
    """The alignment with `var` bound to one cell (its other variables unchanged)."""
    return replace(alignment, variables={**alignment.variables, var: (binding,)})


def bound_alignment(alignment, bound):
    """The alignment with each (variable, binding) pair of `bound` bound there (others unchanged)."""
    return replace(alignment, variables={**alignment.variables, **{var: (b,) for var, b in bound}})


def _column_claims(ir, check, plan, loc, options) -> list[list] | None:
    """`locate H[i]`: per column, the claims that score it — `interchange H[k]` on the pairs a
    separate check of that one element draws with the check's seed (its pool is the check's:
    the pool is drawn first from the same seed). None: every cell is scored by the check's sets."""
    if not loc.column_sets:
        return None
    out = []
    for names in loc.column_sets:
        one = replace(check, interchange=(tuple((n,) for n in names),), conditions=(), interchange_default=False)
        column = compile_check(ir, one, options.pairs, options.seed)
        if any(not np.array_equal(column.pool[k], plan.pool[k]) for k in plan.pool):  # pragma: no cover - invariant
            raise CheckUsageError("`locate`: an element's pairs were drawn from another pool")
        out.append([c for c in column.claims if c.kind == "declared"])
    return out


def sweep(ir, check, plan, net, options, progress=None) -> Sweep:
    """Score every cell of the check's `locate` on the check's held-out pairs. An alignment that
    reads several output elements (`O[i] -> output @ i`) is swept once per element, on the same
    pairs, and pooled (`pooled_sweep`): what `causalspec locate` shows is what the check chooses."""
    elements = plan.alignment.output_elements
    if elements:
        irs = element_irs(ir, plan.alignment)
        plans = [replace(plan, alignment=one.alignments[plan.alignment.name]) for one in irs]
        return pooled_sweep([_sweep(one, check, p, net, options, progress) for one, p in zip(irs, plans)],
                            [e for e, _ in elements])
    return _sweep(ir, check, plan, net, options, progress)


def _sweep(ir, check, plan, net, options, progress=None) -> Sweep:
    start = time.perf_counter()
    loc = check.locate[0]
    base = make_alignment_run(ir, check, _with_cells(plan, loc), net, options)  # locates every cell's site up front
    engine = base.engine
    union = base.bindings
    cells = [[Cell(loc.site_labels[i], loc.position_labels[j], b, bound=loc.cell_bindings(i, j))
              for j, b in enumerate(row)] for i, row in enumerate(loc.cells)]
    declared = [c for c in plan.claims if c.kind == "declared"]
    per_column = _column_claims(ir, check, plan, loc, options)
    shared: dict = {"bindings": union}
    baseline: dict[str, Proportion] = {}
    with compute_threads(net.module), engine:  # closes the sweep's activation stores afterwards
        advance = progress("forward passes (sweep, clean)", base.n_unique) if progress else None
        cache = base.clean(advance)
        flat = [c for row in cells for c in row]
        cell_advance = progress(f"locate {loc.var}: {len(flat)} cell(s)", len(flat)) if progress else None
        columns = [j for row in cells for j in range(len(row))]
        for cell, j in zip(flat, columns):
            alignment = bound_alignment(plan.alignment, cell.bound)
            cell_plan = plan if per_column is None else replace(plan, claims=per_column[j])
            run = AlignmentRun(cell_plan, engine, alignment=alignment)
            run.cache = cache
            if alignment.learned:
                run.fit(ir, check, net, artifacts=options.artifacts, retrain=options.retrain, shared=shared)
                cell.trained = run.training_report()
            scores = []
            for claim in (declared if per_column is None else per_column[j]):
                cr = run.claim_run(claim)
                res = run.score(cr, run.patch(cr))
                cell.iia[claim.label] = res.iia
                baseline.setdefault(claim.label, res.baseline)  # the kept pairs do not depend on the cell
                if res.iia.trials:
                    scores.append(res.iia.estimate)
            cell.score = float(np.mean(scores)) if scores else None
            if cell_advance:
                cell_advance(1)
        if "engine" in shared:  # the per-element training engine (run.elements): its activation stores
            shared["engine"].close()
    return Sweep(check.name, loc.var, feature_label(loc.featurizer), list(loc.site_labels), list(loc.position_labels),
                 cells, int(plan.claims[0].pairs.n) if plan.claims else 0, int(plan.seed),
                 dict(engine.forward_passes), base.n_unique, time.perf_counter() - start, baseline,
                 training_notes(flat, engine.notes), loc.mode, _column_baselines(per_column, baseline))


def _column_baselines(per_column, baseline: dict[str, Proportion]) -> list[float | None]:
    """Per column of an element sweep, the mean baseline of the sets that score it."""
    if per_column is None:
        return []
    out: list[float | None] = []
    for claims in per_column:
        vals = [baseline[c.label].estimate for c in claims if c.label in baseline and baseline[c.label].trials]
        out.append(float(np.mean(vals)) if vals else None)
    return out


def training_notes(cells: list[Cell], engine_notes: list[str]) -> list[str]:
    """What the sweep's notes say about its cells' training: how many trained on the incremental
    path (`run.suffix`), and why others ran full forwards or smaller batches (the engine's notes)."""
    trained = [c.trained for c in cells if c.trained is not None and not c.trained.get("reused")]
    if not trained:
        return []
    on_path = sum(1 for t in trained if t.get("path") == "incremental")
    out = [f"`locate` training: {on_path} of {len(trained)} trained cell(s) on the incremental path — one clean "
           "pass of the training split, shared by every cell, keeps the keys/values and block inputs each cell's "
           "training steps start from; a cell computes only the blocks above its site, from its position on"]
    out += [n for n in engine_notes if n.startswith(("training: full", "training forwards ran out of memory"))]
    return out


def _with_cells(plan, loc):
    """A plan whose alignment binds each located variable to every cell (for one clean pass)."""
    every: dict[str, dict] = {}
    for i, row in enumerate(loc.cells):
        for j in range(len(row)):
            for var, b in loc.cell_bindings(i, j):
                every.setdefault(var, {}).setdefault(b, None)
    alignment = replace(plan.alignment, variables={**plan.alignment.variables,
                                                   **{var: tuple(bs) for var, bs in every.items()}})
    return replace(plan, alignment=alignment)


@dataclass(frozen=True)
class Located:
    """What `locate` gives a check: the sweep (`Sweep.to_dict()`, for the report), and — when
    some cell could be scored — the plan that scores the best cell on fresh pairs, with the
    note that says so."""

    sweep: dict[str, Any]
    plan: CheckPlan | None = None
    note: str = ""

    def confirmation(self, check) -> CheckPlan:
        """The confirmation plan; a check error when no cell had a kept pair to score."""
        if self.plan is None:
            raise CheckUsageError(f"`locate` in check `{check.name}`: no cell has a kept pair to score")
        return self.plan


def locate_for_check(ir, check, plan, net, options, found: Sweep | None = None) -> Located:
    """Sweep, keep the best cell, and plan scoring it on fresh pairs (nothing is modified:
    the spec's IR and the check's plan stay as they were). `found`: a sweep already made
    (the pooled sweep of a check read at several output elements, `pooled_sweep`)."""
    if found is None:
        found = sweep(ir, check, plan, net, options, options.progress)
    best = found.best
    info = found.to_dict()
    if best is None:
        return Located(info)
    seed = int(plan.seed) + CONFIRM_OFFSET  # the confirmation pairs' stream (docs/language.md, "Seeds")
    if found.mode == "element":  # each element at the best cell of its own column
        picks = [c for c in found.column_best() if c is not None]
        chosen = bound_alignment(plan.alignment, [pair for c in picks for pair in c.bound])
        where = ", ".join(f"{c.bound[0][0]} at {c.site}" + (f" @ {c.position.split(' @ ')[-1]}"
                                                            if " @ " in c.position else "")
                          + f" ({c.score:.3f})" for c in picks)
    else:
        chosen = bound_alignment(plan.alignment, best.bound)
    at_best = replace(ir, alignments={**ir.alignments, check.alignment: chosen})
    confirm = compile_check(at_best, check, options.pairs, seed)
    # only the pairs are fresh: training split, initialisation and controls keep the check's seed
    confirm = replace(confirm, alignment=chosen, seed=plan.seed, seed_source=plan.seed_source)
    if found.mode == "element":
        note = (f"`locate {found.var}`: {sum(len(r) for r in found.cells)} cell(s), each element at the best "
                f"cell of its column — {where} (IIA of `interchange` of that element on the sweep's pairs, seed "
                f"{found.seed}); the claim below is scored there on fresh pairs (seed {seed})")
    else:
        note = (f"`locate {found.var}`: best of {sum(len(r) for r in found.cells)} cell(s) is "
                f"{best.site}" + (f" @ {best.position}" if best.position != "all" else "") +
                f" (mean IIA {best.score:.3f} on the sweep's pairs, seed {found.seed}); the claim below is "
                f"scored there on fresh pairs (seed {seed})")
    return Located({**info, "confirmation_seed": seed}, confirm, note)


def pooled_sweep(sweeps: list[Sweep], elements: list[str]) -> Sweep:
    """One sweep of a check read at several output elements (`O[i] -> output @ i`): each
    cell's IIA per set sums the element sweeps' successes and trials (a pair counted once per
    element), its score is their mean over sets; baselines likewise. The cells' bindings are
    the first sweep's (every element sweeps the same cells)."""
    first = sweeps[0]
    cells = []
    for i, row in enumerate(first.cells):
        out = []
        for j, c in enumerate(row):
            parts = [s.cells[i][j] for s in sweeps]
            iia = {label: wilson(sum(p.iia[label].successes for p in parts if label in p.iia),
                                 sum(p.iia[label].trials for p in parts if label in p.iia)) for label in c.iia}
            scored = [p.estimate for p in iia.values() if p.trials]
            out.append(replace(c, iia=iia, score=float(np.mean(scored)) if scored else None))
        cells.append(out)
    baseline = {label: wilson(sum(s.baseline[label].successes for s in sweeps if label in s.baseline),
                              sum(s.baseline[label].trials for s in sweeps if label in s.baseline))
                for label in first.baseline}
    column_baselines: list[float | None] = []
    if first.mode == "element":
        for j in range(len(first.position_labels)):
            labels = list(first.cells[0][j].iia) if first.cells else []
            vals = [baseline[lab].estimate for lab in labels if lab in baseline and baseline[lab].trials]
            column_baselines.append(float(np.mean(vals)) if vals else None)
    passes: dict[str, int] = {}
    for s in sweeps:
        for k, v in s.forward_passes.items():
            passes[k] = passes.get(k, 0) + v
    note = (f"the sweep is scored at {len(sweeps)} output elements ({', '.join(elements)}) on the same pairs; "
            "each cell's IIA pools them (a pair counted once per element)")
    return replace(first, cells=cells, baseline=baseline, column_baselines=column_baselines, forward_passes=passes,
                   seconds=sum(s.seconds for s in sweeps), notes=[note, *first.notes])


# ───────────────────────── from JSON ─────────────────────────

def sweep_from_dict(d: dict) -> Sweep:
    """A Sweep rebuilt from `Sweep.to_dict()` (for reports made from JSON)."""
    cells = []
    for row in d["cells"]:
        out = []
        for c in row:
            cell = Cell(c["site"], c["position"], None, score=c["score"], trained=c.get("trained"))
            cell.iia = {k: _proportion(v) for k, v in c["iia"].items()}
            out.append(cell)
        cells.append(out)
    baseline = {k: _proportion(v) for k, v in ((d.get("baseline") or {}).get("iia") or {}).items()}
    return Sweep(d["check"], d["var"], d["featurizer"], list(d["sites"]), list(d["positions"]), cells,
                 d.get("pairs", 0), d.get("seed", 0), d.get("forward_passes", {}), d.get("unique_inputs", 0),
                 d.get("seconds", 0.0), baseline, list(d.get("notes", ())), d.get("mode") or "single",
                 list(d.get("column_baselines") or ()))


def _proportion(v: dict) -> Proportion:
    return Proportion(v["successes"], v["trials"], v["lower95"] if v["lower95"] is not None else float("nan"),
                      v["upper95"] if v["upper95"] is not None else float("nan"))


__all__ = ["CONFIRM_OFFSET", "Located", "Sweep", "bound_alignment", "cell_alignment", "locate_for_check",
           "pooled_sweep", "sweep", "sweep_from_dict", "wilson"]
