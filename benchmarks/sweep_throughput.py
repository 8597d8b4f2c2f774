"""Benchmark (not a test): a 12-layer × 3-position interchange sweep on a GPT-2-small-shaped model.

    python benchmarks/sweep_throughput.py [--pairs 64] [--pool 64] [--batch 64] [--threads N]

Setting: a random-init GPT-2 with GPT-2 small's body (12 layers, 12 heads, d_model 768; a small
word-level vocabulary), prompts of 17 tokens with the two names at positions 4 and 6 and the
second name again at 13, pairs drawn from a pool of inputs. The sweep patches `resid.post[L]`
for L in 0..11 at three positions — slot A (token 4), slot B's second occurrence (token 13)
and the last token (16) — from source into base: 36 cells, the same pairs in every cell.
Measured side by side in one run, on the same pairs:

  * causalspec (`causalspec.run.sweep`): one clean forward per unique input for the whole
    sweep, then per cell an incremental patched forward per pair from the cell's position on,
    through the blocks above the cell's layer only;
  * pyvene (if installed) run per cell, as its users do: each cell a `block_output` interchange
    at layer L and position q (two full forwards per pair and cell);
  * a plain batched forward of the 2N base and source inputs, measured once and multiplied by
    the number of cells (the least any two-forwards-per-pair tool pays for the sweep).

Patched argmaxes (over the answer candidates) of causalspec and pyvene are asserted equal in
every cell. Peak RSS is sampled while each method runs. Quote ratios measured in one run; on
a loaded 2-core machine use --threads 1 (see iia_throughput.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import LAYERS, PeakRSS, bench_spec, time_clean, time_plain, warm_up  # noqa: E402  (see _setup.py)

WORDS = "after the long day and went to store then gave it".split()
PROMPT = "after the long day {A} and {B} went to the store and then {B} gave it to"


def grid():
    from causalspec.run.sweep import cells
    from causalspec.semantics.sites import LAST, PositionSpec

    positions = [PositionSpec("slot", slot="A"), PositionSpec("slot", slot="B", occurrence=2), LAST]
    return cells(["resid.post"], range(LAYERS), positions)


def time_causalspec(ir, check, networks):
    from causalspec.claims.runner import CheckOptions
    from causalspec.run.sweep import sweep
    from causalspec.testing.claims import claim_run

    net = networks.get(ir, ir.alignments[check.alignment].network, CheckOptions())
    run = claim_run(ir, check, net=net)
    cells = grid()
    t0 = time.perf_counter()
    result = sweep(run.engine, run.rows, run.base, run.sources[0], cells)
    seconds = time.perf_counter() - t0
    return run.plan, net, run.engine.adapter, result, seconds, run.n_unique


def positions_of(adapter, batch, cell) -> list[int]:
    pos = adapter.positions(batch, cell)  # [batch, 1]
    return pos[:, 0].tolist()


def time_pyvene(net, adapter, base, source, cells, batch: int):
    try:
        import pyvene as pv
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        print(f"pyvene: not available ({type(exc).__name__}: {exc}); skipped")
        return None, None
    from importlib.metadata import version

    print(f"pyvene {version('pyvene')}")
    n = base.size
    lengths_b = base.inputs["attention_mask"].sum(1) - 1
    cands = adapter.candidates
    models = {}
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for cell in cells:
            layer = cell.site.layer
            if layer not in models:
                config = pv.IntervenableConfig(representations=[{"layer": layer, "component": "block_output",
                                                                 "unit": "pos", "max_number_of_units": 1}],
                                               intervention_types=pv.VanillaIntervention)
                models[layer] = pv.IntervenableModel(config, model=net.module)
                models[layer].disable_model_gradients()
            model = models[layer]
            pos_b, pos_s = positions_of(adapter, base, cell), positions_of(adapter, source, cell)
            preds = []
            for s in range(0, n, batch):
                sl = slice(s, s + batch)
                b_in = {"input_ids": base.inputs["input_ids"][sl], "attention_mask": base.inputs["attention_mask"][sl]}
                s_in = {"input_ids": source.inputs["input_ids"][sl],
                        "attention_mask": source.inputs["attention_mask"][sl]}
                locs = {"sources->base": ([[[p] for p in pos_s[sl]]], [[[p] for p in pos_b[sl]]])}
                _, res = model(b_in, [s_in], unit_locations=locs)
                logits = res.logits[torch.arange(len(lengths_b[sl])), lengths_b[sl]]
                preds.append(logits[:, cands].argmax(-1).numpy())
            out.append(np.concatenate(preds))
    return np.stack(out), time.perf_counter() - t0


def time_limit(net, adapter, result, base, batch: int) -> tuple[float, float]:
    """(s) plain forward of the unique inputs; (s) hook-free incremental forwards of exactly the
    positions every cell must recompute for every pair (pasts gathered outside the timing)."""
    from causalspec.run.families import resolve_family
    from causalspec.run.incremental import incremental_forward

    family = resolve_family(net.module)
    store = result.cache.kv.store
    clean_s = time_clean(net, adapter, result.rows, batch)
    recompute_s = 0.0
    lengths = base.inputs["attention_mask"].sum(1)
    for cell in result.cells:
        start = torch.as_tensor(positions_of(adapter, base, cell))
        skip = min(cell.site.layer + 1, LAYERS - 1)  # resid.post[L]: blocks 0..L replay the clean run
        skip = skip if skip in store.resid else 0
        for s in range(0, base.size, batch):
            sl = slice(s, s + batch)
            rows_u = store.rows_of(result.base[sl])  # store rows: only inputs used as bases are kept
            past = store.past(rows_u, int(start[sl].max()), skip)
            resid_in = ((lambda positions, rows_u=rows_u, skip=skip: store.resid_at(skip, rows_u, positions))
                        if skip else None)
            t0 = time.perf_counter()
            incremental_forward(net.module, family, base.inputs["input_ids"][sl], lengths[sl], past, start[sl],
                                skip=skip, resid_in=resid_in)
            recompute_s += time.perf_counter() - t0
    return clean_s, recompute_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=64,
                    help="(base, source) pairs, the same in each of the 36 cells (default 64)")
    ap.add_argument("--pool", type=int, default=64, help="inputs the pairs are drawn from (default 64)")
    ap.add_argument("--batch", type=int, default=64, help="forward batch size of every method (default 64)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from causalspec.claims.runner import CheckOptions, NetworkCache

    with bench_spec(WORDS, PROMPT, "sweep.cspec", args.pairs, args.pool, args.batch) as ir:
        check = ir.checks[0]
        networks = NetworkCache()
        warm_up(networks.get(ir, ir.alignments[check.alignment].network, CheckOptions()), args.batch)
        with PeakRSS() as mem_cs:
            plan, net, adapter, result, cs_s, unique = time_causalspec(ir, check, networks)
        claim = plan.claims[0]
        base, source = adapter.encode(claim.pairs.base), adapter.encode(claim.pairs.sources[0])
        n, cells = base.size, result.cells
        seq = int(base.inputs["attention_mask"].sum(1).max())
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); GPT-2-small body, seq {seq}, "
              f"{n} pairs from a pool of {args.pool} inputs ({unique} unique), batch {args.batch}; "
              f"{len(cells)} cells (resid.post[0..{LAYERS - 1}] x slot A, slot B#2, last)")
        print("causalspec forward passes:", result.forward_passes, "|", "; ".join(result.notes))
        rows = [("causalspec sweep", cs_s, mem_cs)]
        with PeakRSS() as mem_plain:
            plain_one = time_plain(net, base, source, args.batch)
        rows.append((f"plain 2N forward x {len(cells)} cells", plain_one * len(cells), mem_plain))
        with PeakRSS() as mem_pv:
            pv_preds, pv_s = time_pyvene(net, adapter, base, source, cells, args.batch)
        if pv_s is not None:
            rows.append(("pyvene, per cell", pv_s, mem_pv))
            same = int((pv_preds == result.preds).sum())
            print(f"identical patched argmaxes, causalspec vs pyvene: {same}/{result.preds.size} "
                  f"({len(cells)} cells x {n} pairs)")
            assert same == result.preds.size, "causalspec and pyvene disagree on patched predictions"
        clean_s, recompute_s = time_limit(net, adapter, result, base, args.batch)
        cell_pairs = n * len(cells)
        for label, s, mem in rows:
            print(f"{label:40s} {s:8.2f} s   {cell_pairs / s:8.1f} cell-pairs/s   {mem.text()}")
        limit = clean_s + recompute_s
        print(f"limit: forward of {unique} unique inputs {clean_s:.2f} s + hook-free recomputation of every cell's "
              f"positions {recompute_s:.2f} s = {limit:.2f} s; causalspec at {limit / cs_s:.0%} of the limit")
        print(f"ratio causalspec / plain 2N forward per cell: {rows[1][1] / cs_s:.2f}x")
        if pv_s is not None:
            print(f"ratio causalspec / pyvene per cell:           {pv_s / cs_s:.2f}x")


if __name__ == "__main__":
    main()
