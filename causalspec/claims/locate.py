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

`causalspec locate` runs step 1 only and reports the table and a heatmap.

Speed: one clean forward pass per unique input records every cell's site at once (the
sweep's engine records the union of the cells' bindings), and the training split's clean
pass is shared by every cell the same way; a cell only adds its own training steps and
patched passes. Trained cells are artifacts like any check's, so a later single-site check
of a cell reuses the sweep's training.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from causalspec.score.stats import Proportion, wilson

CONFIRM_OFFSET = 1_000_003


@dataclass
class Cell:
    site: str
    position: str
    binding: Any  # SiteBinding
    iia: dict[str, Proportion] = field(default_factory=dict)  # declared set label -> IIA
    score: float | None = None  # mean IIA over declared sets
    trained: dict | None = None  # training report of this cell (learned featurizers)

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

    @property
    def baseline_score(self) -> float | None:
        vals = [p.estimate for p in self.baseline.values() if p.trials]
        return float(np.mean(vals)) if vals else None

    @property
    def best(self) -> Cell | None:
        scored = [c for row in self.cells for c in row if c.score is not None]
        if not scored:
            return None
        return max(scored, key=lambda c: c.score)  # max keeps the first of equal scores

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
                "seconds": round(self.seconds, 3),
                "baseline": {"score": self.baseline_score,
                             "iia": {k: v.to_dict() for k, v in self.baseline.items()}}}


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


def sweep(ir, check, plan, net, options, progress=None) -> Sweep:
    """Score every cell of the check's `locate` on the check's held-out pairs."""
    import time

    from causalspec.claims.procedure import AlignmentRun, compute_threads
    from causalspec.claims.runner import alignment_run

    start = time.perf_counter()
    loc = check.locate[0]
    base = alignment_run(ir, check, _with_cells(plan, loc), net, options)  # locates every cell's site up front
    engine = base.engine
    union = base.bindings
    cells = [[Cell(loc.site_labels[i], loc.position_labels[j], b) for j, b in enumerate(row)]
             for i, row in enumerate(loc.cells)]
    declared = [c for c in plan.claims if c.kind == "declared"]
    shared: dict = {"bindings": union}
    baseline: dict[str, Proportion] = {}
    with compute_threads(net.module), engine:  # closes the sweep's activation stores afterwards
        advance = progress("forward passes (sweep, clean)", base.n_unique) if progress else None
        cache = base.clean(advance)
        flat = [c for row in cells for c in row]
        cell_advance = progress(f"locate {loc.var}: {len(flat)} cell(s)", len(flat)) if progress else None
        for cell in flat:
            alignment = cell_alignment(plan.alignment, loc.var, cell.binding)
            run = AlignmentRun(plan, engine, alignment=alignment)
            run.cache = cache
            if alignment.learned:
                run.fit(ir, check, net, artifacts=options.artifacts, retrain=options.retrain, shared=shared)
                cell.trained = run.training_report()
            scores = []
            for claim in declared:
                cr = run.claim_run(claim)
                res = run.score(cr, run.patch(cr))
                cell.iia[claim.label] = res.iia
                baseline.setdefault(claim.label, res.baseline)  # the kept pairs do not depend on the cell
                if res.iia.trials:
                    scores.append(res.iia.estimate)
            cell.score = float(np.mean(scores)) if scores else None
            if cell_advance:
                cell_advance(1)
    return Sweep(check.name, loc.var, feature_label(loc.featurizer), list(loc.site_labels), list(loc.position_labels),
                 cells, int(plan.claims[0].pairs.n) if plan.claims else 0, int(plan.seed),
                 dict(engine.forward_passes), base.n_unique, time.perf_counter() - start, baseline)


def _with_cells(plan, loc):
    """A plan whose alignment binds the located variable to every cell (for one clean pass)."""
    alignment = replace(plan.alignment, variables={**plan.alignment.variables, loc.var: tuple(loc.flat)})
    out = copy.copy(plan)
    out.alignment = alignment
    return out


def locate_for_check(ir, check, plan, net, options, result):
    """Sweep, keep the best cell, and return the plan that scores it on fresh pairs."""
    from causalspec.compile.plan import compile_check

    found = sweep(ir, check, plan, net, options, options.progress)
    best = found.best
    info = found.to_dict()
    result.locate = info
    if best is None:
        raise _no_cell(check)
    seed = int(plan.seed) + CONFIRM_OFFSET  # the confirmation pairs' stream (docs/language.md, "Seeds")
    chosen = cell_alignment(plan.alignment, check.locate[0].var, best.binding)
    ir2 = copy.copy(ir)
    ir2.alignments = {**ir.alignments, check.alignment: chosen}
    confirm = compile_check(ir2, check, options.pairs, seed)
    confirm.alignment = chosen
    # only the pairs are fresh: training split, initialisation and controls keep the check's seed
    confirm.seed, confirm.seed_source = plan.seed, plan.seed_source
    info["confirmation_seed"] = seed
    result.notes.append(f"`locate {found.var}`: best of {sum(len(r) for r in found.cells)} cell(s) is "
                        f"{best.site}" + (f" @ {best.position}" if best.position != "all" else "") +
                        f" (mean IIA {best.score:.3f} on the sweep's pairs, seed {found.seed}); the claim below is "
                        f"scored there on fresh pairs (seed {seed})")
    return confirm


def _no_cell(check):
    from causalspec.run.adapters import CheckUsageError

    return CheckUsageError(f"`locate` in check `{check.name}`: no cell has a kept pair to score")


# ───────────────────────── outputs ─────────────────────────

HEATMAP_SOFTWARE = "causalspec locate"  # the PNG's tEXt Software chunk: our marker (report/files.py)


def heatmap_bytes(found: Sweep) -> bytes:
    """Layer/site x position heatmap of held-out IIA, best cell outlined, as PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    grid = found.grid()
    rows, cols = grid.shape
    base = found.baseline_score
    # colours start at the no-intervention baseline: a cell that changes nothing scores it, so
    # every cell at or below it is the darkest colour and 0.7..1.0 spreads over the whole scale
    low = 0.0 if base is None or base >= 0.999 else base
    fig, ax = plt.subplots(figsize=(max(5.6, 0.9 * cols + 4.2), max(2.4, 0.42 * rows + 1.5)), dpi=110)
    try:
        im = ax.imshow(grid, vmin=low, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(cols), found.position_labels, fontsize=8)
        ax.set_yticks(range(rows), found.site_labels, fontsize=8)
        ax.set_xlabel("position")
        ax.set_ylabel("site")
        for i in range(rows):
            for j in range(cols):
                v = grid[i, j]
                text = "n/a" if np.isnan(v) else f"{v:.2f}" + (" ≤b" if base is not None and v <= base + 1e-9 else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if (not np.isnan(v) and v > low + 0.6 * (1 - low)) else "white")
        best = found.best
        if best is not None:
            i = found.site_labels.index(best.site)
            j = found.position_labels.index(best.position)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        title = f"locate {found.var} : {found.featurizer}"
        if base is not None:
            title += f"\nno-intervention baseline {base:.2f} (≤b: a cell at or below it)"
        ax.set_title(title, fontsize=9)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label("IIA, held-out pairs", fontsize=8)
        if base is not None:  # the scale starts at the baseline (when below 1): label that end of it
            ticks = [t for t in bar.get_ticks() if low + 0.05 < t <= 1.0]
            bar.set_ticks([low, *ticks], labels=[f"{low:.2f} baseline" if low else "0", *[f"{t:.1f}" for t in ticks]])
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": HEATMAP_SOFTWARE})
        return buf.getvalue()
    finally:
        plt.close(fig)


def heatmap_png(found: Sweep, path) -> Path:
    """The heatmap written to `path` atomically; an existing file is replaced only if it is
    an output of ours (`report.files`), else `OverwriteRefused`."""
    from causalspec.report.files import atomic_write_bytes

    return atomic_write_bytes(path, heatmap_bytes(found))


def heatmap_base64(found: Sweep) -> str:
    import base64

    return base64.b64encode(heatmap_bytes(found)).decode("ascii")


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
                 d.get("seconds", 0.0), baseline)


def _proportion(v: dict) -> Proportion:
    return Proportion(v["successes"], v["trials"], v["lower95"] if v["lower95"] is not None else float("nan"),
                      v["upper95"] if v["upper95"] is not None else float("nan"))


__all__ = ["CONFIRM_OFFSET", "Sweep", "cell_alignment", "heatmap_png", "locate_for_check", "sweep", "wilson"]
