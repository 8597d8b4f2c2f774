"""Benchmark (not a test): the engine against pyvene across settings, one command.

    python benchmarks/matrix.py [--pairs 256] [--families gpt2,neox,llama] [--positions first,middle,last]
                                [--layers 1,6,10] [--pools pool,fresh] [--threads 1] [--batch 64]

Cells: family (GPT-2, GPT-NeoX, Llama with grouped-query attention; each with GPT-2 small's
body: 12 layers, 12 heads, d_model 768, random init, a word tokenizer) × patch position
(first token, a middle token, the last token of a 16-token prompt) × layer (`resid.post[L]`,
early / middle / late) × inputs (`pool`: pairs from a pool of 64 inputs; `fresh`: a pool of
2 × pairs, so nearly every pair brings new inputs). Per cell, on the same pairs, side by side:

  * causalspec's engine (the `check` path: one clean forward per distinct input, incremental
    patched forwards, blocks below the patch skipped);
  * pyvene's IntervenableModel, base and source run per pair (how peers are usually called);
  * pyvene with cached source representations (`source_representations`): the source's
    `block_output` computed once per distinct input by a plain forward (timed), then one
    pyvene forward per pair — the fairest peer setting;
  * the limit of this design: a plain forward of the distinct inputs plus hook-free
    incremental forwards of exactly what each pair must recompute (positions >= the patch,
    blocks above it).

Patched argmaxes (over the answer candidates) of the engine and both pyvene settings are
asserted identical. The table gives pairs/s, the ratios to both pyvene settings and the
engine's share of the limit (limit time / engine time), and the engine's clean pass against a
plain forward of the same inputs (clean/plain; the clean pass also records the bindings'
activations and keeps keys/values for the inputs used as bases).

Every timed part is measured on two clocks: wall time and this process's CPU time
(`time.process_time`, user + system of all its threads). With one torch thread (the default)
CPU time is what the work cost even while other jobs share the cores, so the columns are
computed from CPU time (`--clock wall` for wall time); `limit(wall)` repeats the share of the
limit on wall time. Ratios are measured side by side within a cell.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import NAMES, Clock, clean_clock, spec_text, warm_up  # noqa: E402  (see _setup.py)

FILLER = "so then after the long day at work the two friends went home with".split()  # 14 words
PROMPT = " ".join(FILLER) + " {A} {B}"  # 16 tokens
POSITIONS = {"first": "0", "middle": "8", "last": "last"}
FAMILIES = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, n_positions=64),
    "neox": dict(num_hidden_layers=12, num_attention_heads=12, hidden_size=768, intermediate_size=3072),
    "llama": dict(num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4, hidden_size=768,
                  intermediate_size=2048),
}


def build(kind: str, directory: Path) -> None:
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    tok = build_word_tokenizer(FILLER + NAMES)
    build_tiny_model(kind, len(tok), directory, seed=0, tokenizer=tok, initializer_range=0.02, **FAMILIES[kind])


def run_engine(ir, networks):
    """(run, cache, predictions, Clock of the whole check, Clock of its clean pass)."""
    from causalspec.claims.runner import CheckOptions
    from causalspec.testing.claims import claim_run

    check = ir.checks[0]
    net = networks.get(ir, ir.alignments[check.alignment].network, CheckOptions())
    run = claim_run(ir, check, net=net, incremental=True)
    total, clean = Clock(), Clock()
    with total:
        with clean:
            cache = run.clean()
        preds = run.patched(cache)
    return run, cache, preds, total, clean


def limit_seconds(run, cache, position: int, layer: int, batch: int) -> tuple[Clock, Clock]:
    """Clocks of (a plain forward of the distinct inputs + hook-free incremental forwards of
    each pair) and of the plain forward alone."""
    from causalspec.run.families import resolve_family
    from causalspec.run.incremental import incremental_forward

    net, adapter, store = run.net, run.engine.adapter, cache.kv.store
    family = resolve_family(net.module)
    plain = clean_clock(net, adapter, run.rows, batch)
    seconds = Clock()
    seconds.wall, seconds.cpu = plain.wall, plain.cpu
    skip = layer + 1 if layer + 1 in store.resid else 0
    for s in range(0, len(run.base), batch):
        u = run.base[s:s + batch]
        b = adapter.encode({k: v[u] for k, v in run.rows.items()})
        lengths = b.inputs["attention_mask"].sum(1)
        start = torch.full_like(lengths, position) if position >= 0 else lengths - 1
        rows = store.rows_of(u)
        past = store.past(rows, int(start.max()), skip)
        resid_in = (lambda p, rows=rows: store.resid_at(skip, rows, p)) if skip else None
        if int(start.max()) == 0 and not skip:  # nothing to reuse: a full forward is the limit
            with seconds, torch.no_grad():
                net.module(**b.inputs)
            continue
        with seconds:
            incremental_forward(net.module, family, b.inputs["input_ids"], lengths, past, start, skip=skip,
                                resid_in=resid_in)
    return seconds, plain


def run_pyvene(run, position: int, layer: int, batch: int, cached: bool) -> tuple[np.ndarray, Clock]:
    import pyvene as pv

    from causalspec.run.hooks import record
    from causalspec.semantics.site_kinds import SiteAddress

    site = SiteAddress("resid.post", layer=layer)
    net, adapter = run.net, run.engine.adapter
    config = pv.IntervenableConfig(representations=[{"layer": layer, "component": "block_output", "unit": "pos",
                                                     "max_number_of_units": 1}],
                                   intervention_types=pv.VanillaIntervention)
    model = pv.IntervenableModel(config, model=net.module)
    model.disable_model_gradients()
    base = adapter.encode({k: v[run.base] for k, v in run.rows.items()})
    source_u = run.sources[0]
    cands = adapter.candidates
    preds = []
    reps = None
    clock = Clock()
    with clock, torch.no_grad():
        if cached:  # the source's block output, once per distinct input (a plain forward, timed)
            distinct = np.unique(source_u)
            where = np.full(len(next(iter(run.rows.values()))), -1)
            where[distinct] = np.arange(len(distinct))
            parts = []
            for s in range(0, len(distinct), batch):
                d = adapter.encode({k: v[distinct[s:s + batch]] for k, v in run.rows.items()})
                with record(net.module, run.engine.family, [site]) as captured:  # one forward hook
                    net.module(**d.inputs)
                hidden = captured[site]  # [batch, seq, d_model]: block `layer`'s output
                pos = (d.inputs["attention_mask"].sum(1) - 1) if position < 0 else torch.full((len(hidden),), position)
                parts.append(hidden[torch.arange(len(hidden)), pos])
            reps = torch.cat(parts)  # [distinct, d_model]
        else:
            source = adapter.encode({k: v[source_u] for k, v in run.rows.items()})
        for s in range(0, base.size, batch):
            sl = slice(s, s + batch)
            b_in = {"input_ids": base.inputs["input_ids"][sl], "attention_mask": base.inputs["attention_mask"][sl]}
            last_b = b_in["attention_mask"].sum(1) - 1
            pos_b = last_b if position < 0 else torch.full_like(last_b, position)
            if cached:
                src = reps[torch.as_tensor(where[source_u[sl]])][:, None, :]  # [batch, 1, d]
                locs = {"sources->base": (None, [[[int(p)] for p in pos_b]])}
                _, out = model(b_in, unit_locations=locs, source_representations=src)
            else:
                s_in = {"input_ids": source.inputs["input_ids"][sl],
                        "attention_mask": source.inputs["attention_mask"][sl]}
                last_s = s_in["attention_mask"].sum(1) - 1
                pos_s = last_s if position < 0 else torch.full_like(last_s, position)
                locs = {"sources->base": ([[[int(p)] for p in pos_s]], [[[int(p)] for p in pos_b]])}
                _, out = model(b_in, [s_in], unit_locations=locs)
            logits = out.logits[torch.arange(len(last_b)), last_b]
            preds.append(logits[:, cands].argmax(-1).numpy())
    return np.concatenate(preds), clock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=256, help="(base, source) pairs per cell (default 256)")
    ap.add_argument("--batch", type=int, default=64, help="forward batch size of every method (default 64)")
    ap.add_argument("--families", default="gpt2,neox,llama",
                    help="comma-separated model families, of gpt2, neox, llama (default all three)")
    ap.add_argument("--positions", default="first,middle,last",
                    help="comma-separated patch positions, of first (token 0), middle (token 8), last "
                         "(default all three)")
    ap.add_argument("--layers", default="1,6,10",
                    help="comma-separated layers L of resid.post[L], 0-11 (default 1,6,10)")
    ap.add_argument("--pools", default="pool,fresh",
                    help="comma-separated input settings: pool (pairs from 64 inputs), fresh (a pool of 2 x "
                         "pairs inputs) (default both)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see benchmarks/README.md)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="the clock of the columns (default: this process's CPU time; see the docstring)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure each cell this many times, engine and limit interleaved (the median is kept)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from importlib.metadata import version

    from causalspec.claims.runner import NetworkCache
    from causalspec.semantics.analyse import load_text

    print(f"torch {torch.__version__}, pyvene {version('pyvene')}, {torch.get_num_threads()} thread(s); "
          f"{args.pairs} pairs per cell, batch {args.batch}; columns on the {args.clock} clock"
          + (f", median of {args.repeat}" if args.repeat > 1 else ""))
    header = (f"{'family':6} {'pos':6} {'layer':>5} {'inputs':6} {'distinct':>8} {'engine/s':>9} {'pyvene/s':>9} "
              f"{'pv-cached/s':>11} {'x pyvene':>8} {'x cached':>8} {'limit':>6} {'clean/plain':>11} "
              f"{'limit(wall)':>11}")
    print(header)
    rows_out = []
    for kind in args.families.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / kind
            build(kind, model_dir)
            networks = NetworkCache()
            warmed = False
            for position in args.positions.split(","):
                pos = -1 if POSITIONS[position] == "last" else int(POSITIONS[position])
                for layer in (int(x) for x in args.layers.split(",")):
                    for pool_kind in args.pools.split(","):
                        pool = 64 if pool_kind == "pool" else 2 * args.pairs
                        text = spec_text(model_dir, PROMPT, args.pairs, pool, args.batch, layer=layer,
                                         position=POSITIONS[position], network="net")
                        ir = load_text(text, str(Path(tmp) / "m.cspec"), base_dir=Path(tmp))
                        if not warmed:
                            from causalspec.claims.runner import CheckOptions

                            warm_up(networks.get(ir, ir.alignments[ir.checks[0].alignment].network,
                                                 CheckOptions()), args.batch)
                            warmed = True
                        measured = []  # engine and limit interleaved, `repeat` times
                        for _ in range(args.repeat):
                            run, cache, preds, eng, clean = run_engine(ir, networks)
                            lim, plain = limit_seconds(run, cache, pos, layer, args.batch)
                            measured.append((lim.get(args.clock) / eng.get(args.clock), eng, clean, lim, plain))
                        measured.sort(key=lambda m: m[0])
                        _, eng, clean, lim, plain = measured[len(measured) // 2]  # the median share
                        pv_preds, pv = run_pyvene(run, pos, layer, args.batch, cached=False)
                        pvc_preds, pvc = run_pyvene(run, pos, layer, args.batch, cached=True)
                        assert (pv_preds == preds).all(), f"{kind} {position} {layer}: engine and pyvene disagree"
                        assert (pvc_preds == preds).all(), f"{kind} {position} {layer}: cached pyvene disagrees"
                        n = len(preds)
                        eng_s, pv_s, pvc_s = (c.get(args.clock) for c in (eng, pv, pvc))
                        line = (f"{kind:6} {position:6} {layer:>5} {pool_kind:6} {run.n_unique:>8} {n / eng_s:>9.1f} "
                                f"{n / pv_s:>9.1f} {n / pvc_s:>11.1f} {pv_s / eng_s:>7.2f}x {pvc_s / eng_s:>7.2f}x "
                                f"{lim.get(args.clock) / eng_s:>6.0%} "
                                f"{clean.get(args.clock) / plain.get(args.clock):>10.2f}x {lim.wall / eng.wall:>11.0%}")
                        print(line, flush=True)
                        rows_out.append(line)
    print(f"identical patched argmaxes (engine, pyvene, pyvene cached) in all {len(rows_out)} cells")


if __name__ == "__main__":
    main()
