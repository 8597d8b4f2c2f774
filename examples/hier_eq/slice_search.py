"""Search neuron-aligned alignments of WX and YZ in the trained MLP's first hidden layer.

The DAS paper's point on this task: the trained MLP's variables are not in individual
neurons, so the best *localist* (neuron-aligned) alignment is far below the learned
rotation. This script searches two families of neuron-aligned alignments at `layers.0`
and prints the best, on its own search pairs (seed 1, not the spec's seed 0):

* contiguous slices `[a:b]` of widths 8, 16, 32, 64 at stride 8 (the `BestSlices` check of
  specs/hier_eq_das.cspec states the winner as a spec);
* the top-k neurons by their single-neuron interchange effect (k = 8, 16, 32, 64), a
  non-contiguous neuron set (not expressible as one slice; patched as unit vectors).

For each family it picks, per variable, the set with the highest IIA for that variable
alone, then requires WX's and YZ's sets to be disjoint (a neuron cannot carry both) and
reports IIA of {WX}, {YZ} and {WX, YZ} for the best disjoint pair.

Run: python examples/hier_eq/slice_search.py   (about a minute on 2 CPU cores)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "hier_eq_das.cspec"
WIDTH = 128


def main(seed: int = 1, pairs: int = 1024) -> dict:
    from causalspec.claims.locate import cell_alignment
    from causalspec.claims.procedure import AlignmentRun, compute_threads, make_alignment_run
    from causalspec.claims.runner import CheckOptions, NetworkCache
    from causalspec.compile.plan import compile_check
    from causalspec.semantics.analyse import load
    from causalspec.semantics.ir import SiteBinding
    from causalspec.semantics.featurizers import Slice

    ir = load(SPEC)
    check = next(c for c in ir.checks if c.name == "BestSlices")
    plan = compile_check(ir, check, pairs, seed)
    options = CheckOptions()
    net = NetworkCache().get(ir, "mlp", options)
    base = make_alignment_run(ir, check, plan, net, options)
    site = plan.alignment.variables["WX"][0].site
    positions = plan.alignment.variables["WX"][0].positions
    claims = {c.label: c for c in plan.claims}

    def score(var_bases: dict[str, torch.Tensor], labels) -> dict[str, float]:
        """IIA per interchange set with each variable patched in the given unit-vector basis."""
        alignment = plan.alignment
        bindings = {}
        for var, basis in var_bases.items():
            b = SiteBinding(site, positions, Slice(0, int(basis.shape[1])))  # featurizer unused: basis given
            alignment = cell_alignment(alignment, var, b)
            bindings[(var, b)] = basis
        run = AlignmentRun(plan, base.engine, alignment=alignment)
        run.cache = cache_for(run)
        out = {}
        for label in labels:
            cr = run.claim_run(claims[label])
            res = run.score(cr, run.patch(cr, mode="given", random=bindings))
            out[label] = res.iia.estimate
        return out

    caches = {}

    def cache_for(run):
        key = "acts"
        if key not in caches:
            caches[key] = run.engine.run_clean(run.unique_rows, run.bindings)
        cache = caches[key]
        for b in run.bindings:  # every candidate reads the same activation
            if b not in cache.acts:
                cache.acts[b] = next(iter(cache.acts.values()))
        return cache

    eye = torch.eye(WIDTH)

    def unit(cols) -> torch.Tensor:
        return eye[:, sorted(cols)]

    results = {}
    with compute_threads(net.module):
        # family 1: contiguous slices
        slices = [(a, a + w) for w in (8, 16, 32, 64) for a in range(0, WIDTH - w + 1, 8)]
        single = {var: {s: score({var: unit(range(*s))}, [f"{{{var}}}"])[f"{{{var}}}"] for s in slices}
                  for var in ("WX", "YZ")}
        for name, widths in (("slices", (8, 16, 32, 64)), ("slices_16", (16,))):
            best_pair, best_sum = None, -1.0
            allowed = [s for s in slices if s[1] - s[0] in widths]
            top = {v: sorted(allowed, key=lambda s: -single[v][s])[:12] for v in single}
            for sw, sy in itertools.product(top["WX"], top["YZ"]):
                if sw[0] < sy[1] and sy[0] < sw[1]:
                    continue  # overlapping
                total = single["WX"][sw] + single["YZ"][sy]
                if total > best_sum:
                    best_pair, best_sum = (sw, sy), total
            sw, sy = best_pair
            results[name] = {"WX": f"[{sw[0]}:{sw[1]}]", "YZ": f"[{sy[0]}:{sy[1]}]",
                             **score({"WX": unit(range(*sw)), "YZ": unit(range(*sy))},
                                     ["{WX}", "{YZ}", "{WX, YZ}"])}
        # family 2: top-k neurons by single-neuron effect
        neuron = {var: np.array([score({var: unit([i])}, [f"{{{var}}}"])[f"{{{var}}}"] for i in range(WIDTH)])
                  for var in ("WX", "YZ")}
        best, best_sum = None, -1.0
        for k in (8, 16, 32, 64):
            wx = list(np.argsort(-neuron["WX"], kind="stable")[:k])
            yz = [i for i in np.argsort(-neuron["YZ"], kind="stable") if i not in wx][:k]
            got = score({"WX": unit(wx), "YZ": unit(yz)}, ["{WX}", "{YZ}", "{WX, YZ}"])
            if k == 16:
                results["top_16_neurons"] = {"k": k, **got}
            if got["{WX}"] + got["{YZ}"] > best_sum:
                best, best_sum = {"k": k, **got}, got["{WX}"] + got["{YZ}"]
        results["top_k_neurons"] = best
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    out = main()
    for key, what in (("slices", "best contiguous slices (widths 8..64)"),
                      ("slices_16", "best contiguous slices of 16 units (DAS's budget)")):
        s = out[key]
        print(f"{what}: WX {s['WX']}, YZ {s['YZ']}: "
              f"{{WX}} {s['{WX}']:.3f}  {{YZ}} {s['{YZ}']:.3f}  {{WX, YZ}} {s['{WX, YZ}']:.3f}")
    for key, what in (("top_16_neurons", "top-16 neurons per variable"), ("top_k_neurons", "best top-k neurons")):
        t = out[key]
        print(f"{what} (k={t['k']}): {{WX}} {t['{WX}']:.3f}  {{YZ}} {t['{YZ}']:.3f}  {{WX, YZ}} {t['{WX, YZ}']:.3f}")
