"""Benchmark (not a test): interchange-intervention throughput on a GPT-2-small-shaped model.

    python benchmarks/iia_throughput.py [--pairs 1024] [--pool 64] [--batch 64] [--threads N] [--no-full]

Setting: a random-init GPT-2 with GPT-2 small's body (12 layers, 12 heads, d_model 768; a
small word-level vocabulary, since no pretrained tokenizer can be fetched), prompts of 16
tokens, one claim `mover -> resid.post[6] @ END`, pairs drawn from a pool of inputs.
Measured side by side in one run, on the same pairs:

  * causalspec's engine: one clean forward per unique input + one patched forward per pair that
    recomputes only the positions from the patch on (cached keys/values of earlier positions)
    and only the blocks above the patched layer;
  * the same engine with incremental forwards off (full patched forwards), unless --no-full;
  * a plain batched forward of the 2N base and source inputs (no patching at all): the
    cost every "two forwards per pair" library pays at least;
  * pyvene (if installed; its version is printed, and it is skipped politely otherwise).

Patched argmaxes (over the answer candidates) of causalspec (both paths) and pyvene are asserted
equal. Peak RSS is sampled (every 5 ms) while each method runs. "limit" is what no engine of this
design can beat: a plain forward of the unique inputs plus hook-free incremental forwards of
exactly the positions (and blocks) each pair must recompute.
Timings are wall-clock on a noisy machine: quote the ratios, measured in one run. On a loaded
2-core machine use --threads 1: with 2 intra-op threads and other jobs running, small ops
(one-token forwards) wait milliseconds for the second thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import PeakRSS, bench_spec, time_clean, time_plain, warm_up  # noqa: E402  (see _setup.py)

FILLER = "so then after the long day at work the two friends went home with".split()  # 14 words
PROMPT = " ".join(FILLER) + " {A} {B}"


def time_engine(ir, check, incremental: bool = True, networks=None):
    """The engine path of `causalspec check`, split so its per-pair predictions are visible."""
    from causalspec.claims.runner import CheckOptions, NetworkCache
    from causalspec.testing.claims import claim_run

    networks = networks or NetworkCache()
    net = networks.get(ir, ir.alignments[check.alignment].network, CheckOptions())
    run = claim_run(ir, check, net=net, incremental=incremental)
    t0 = time.perf_counter()
    cache, preds = run.run()
    seconds = time.perf_counter() - t0
    time_engine.last = (run.engine, cache, run.rows, run.base)
    return run.plan, net, run.engine.adapter, preds, seconds, run.n_unique


def time_limit(net, adapter, batch: int) -> tuple[float, float]:
    """(s) plain forward of the unique inputs, (s) hook-free incremental forwards of each pair's
    recomputed positions (their pasts gathered beforehand, outside the timing)."""
    from causalspec.run.families import resolve_family
    from causalspec.run.incremental import incremental_forward

    engine, cache, rows, base_u = time_engine.last
    family = resolve_family(net.module)
    clean_s = time_clean(net, adapter, rows, batch)
    store = cache.kv.store
    recompute_s = 0.0
    for s in range(0, len(base_u), batch):
        u = base_u[s:s + batch]
        b = adapter.encode({k: v[u] for k, v in rows.items()})
        lengths = b.inputs["attention_mask"].sum(1)
        start = lengths - 1  # the patch is at the last token
        rows_u = store.rows_of(u)  # store rows (only inputs used as bases are kept), not unique ids
        skip = 7 if 7 in store.resid else 0  # resid.post[6]: blocks 0..6 replay the clean run
        past = store.past(rows_u, int(start.max()), skip)
        resid_in = ((lambda positions, skip=skip, rows_u=rows_u: store.resid_at(skip, rows_u, positions))
                    if skip else None)
        t0 = time.perf_counter()
        incremental_forward(net.module, family, b.inputs["input_ids"], lengths, past, start, skip=skip,
                            resid_in=resid_in)
        recompute_s += time.perf_counter() - t0
    return clean_s, recompute_s


def encode_pairs(adapter, plan):
    claim = plan.claims[0]
    base = adapter.encode(claim.pairs.base)
    source = adapter.encode(claim.pairs.sources[0])
    return base, source


def time_pyvene(net, adapter, base, source, batch: int):
    try:
        import pyvene as pv
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        print(f"pyvene: not available ({type(exc).__name__}: {exc}); skipped")
        return None, None
    from importlib.metadata import version

    print(f"pyvene {version('pyvene')}")
    config = pv.IntervenableConfig(representations=[{"layer": 6, "component": "block_output", "unit": "pos",
                                                     "max_number_of_units": 1}],
                                   intervention_types=pv.VanillaIntervention)
    model = pv.IntervenableModel(config, model=net.module)
    model.disable_model_gradients()
    n = base.size
    lengths_b = base.inputs["attention_mask"].sum(1) - 1
    lengths_s = source.inputs["attention_mask"].sum(1) - 1
    cands = adapter.candidates  # token id of each output value's answer (what causalspec scores)
    preds = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch):
            sl = slice(s, s + batch)
            b_in = {"input_ids": base.inputs["input_ids"][sl], "attention_mask": base.inputs["attention_mask"][sl]}
            s_in = {"input_ids": source.inputs["input_ids"][sl],
                    "attention_mask": source.inputs["attention_mask"][sl]}
            locs = {"sources->base": ([[[int(p)] for p in lengths_s[sl]]], [[[int(p)] for p in lengths_b[sl]]])}
            _, out = model(b_in, [s_in], unit_locations=locs)
            logits = out.logits[torch.arange(len(lengths_b[sl])), lengths_b[sl]]
            preds.append(logits[:, cands].argmax(-1).numpy())
    seconds = time.perf_counter() - t0
    return np.concatenate(preds), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1024, help="(base, source) pairs patched (default 1024)")
    ap.add_argument("--pool", type=int, default=64, help="inputs the pairs are drawn from (default 64)")
    ap.add_argument("--batch", type=int, default=64, help="forward batch size of every method (default 64)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-full", action="store_true", help="skip the engine with incremental forwards off")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with bench_spec(FILLER, PROMPT, "bench.cspec", args.pairs, args.pool, args.batch, end_position=True) as ir:
        check = ir.checks[0]
        from causalspec.claims.runner import CheckOptions, NetworkCache

        networks = NetworkCache()  # one copy of the network for every method (RSS is comparable)
        warm_up(networks.get(ir, ir.alignments[check.alignment].network, CheckOptions()), args.batch)
        with PeakRSS() as mem_engine:
            plan, net, adapter, preds, eng_s, unique = time_engine(ir, check, networks=networks)
        clean_s, recompute_s = time_limit(net, adapter, args.batch)
        base, source = encode_pairs(adapter, plan)
        n = base.size
        seq = int(base.inputs["attention_mask"].sum(1).max())
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); GPT-2-small body, seq {seq}, "
              f"{n} pairs from a pool of {args.pool} inputs ({unique} unique), batch {args.batch}")
        rows = [("causalspec engine (incremental)", eng_s, mem_engine)]
        if not args.no_full:
            with PeakRSS() as mem_full:
                _, _, _, full_preds, full_s, _ = time_engine(ir, check, incremental=False, networks=networks)
            same = int((full_preds == preds).sum())
            print(f"identical patched argmaxes, incremental vs full forwards: {same}/{n}")
            assert same == n, "incremental and full patched forwards disagree"
            rows.append(("causalspec engine (full forwards)", full_s, mem_full))
        with PeakRSS() as mem_plain:
            plain_s = time_plain(net, base, source, args.batch)
        rows.append(("plain batched forward of 2N inputs", plain_s, mem_plain))
        with PeakRSS() as mem_pv:
            pv_preds, pv_s = time_pyvene(net, adapter, base, source, args.batch)
        if pv_s is not None:
            rows.append(("pyvene", pv_s, mem_pv))
            same = int((pv_preds == preds).sum())
            print(f"identical patched argmaxes, causalspec vs pyvene: {same}/{n}")
            assert same == n, "causalspec and pyvene disagree on patched predictions"
        for label, s, mem in rows:
            print(f"{label:40s} {s:8.2f} s   {n / s:8.1f} pairs/s   {mem.text()}")
        limit = clean_s + recompute_s
        print(f"limit: forward of {unique} unique inputs {clean_s:.2f} s + hook-free recomputation of "
              f"{n} pairs {recompute_s:.2f} s = {limit:.2f} s ({n / limit:.1f} pairs/s); engine at "
              f"{limit / eng_s:.0%} of the limit")
        print(f"ratio engine / plain 2N forward: {plain_s / eng_s:.2f}x")
        if pv_s is not None:
            print(f"ratio engine / pyvene:           {pv_s / eng_s:.2f}x")


if __name__ == "__main__":
    main()
