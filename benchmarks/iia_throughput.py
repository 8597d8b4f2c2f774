"""Benchmark (not a test): interchange-intervention throughput on a GPT-2-small-shaped model.

    python benchmarks/iia_throughput.py [--pairs 256] [--pool 64] [--batch 64] [--threads N]

Setting: a random-init GPT-2 with GPT-2 small's body (12 layers, 12 heads, d_model 768; a
small word-level vocabulary, since no pretrained tokenizer can be fetched), prompts of 16
tokens, one claim `mover -> resid.post[6] @ END`, pairs drawn from a pool of inputs.
Measured side by side in one run, on the same pairs:

  * causalspec's engine: one clean forward per unique input + one patched forward per pair;
  * a plain batched forward of the 2N base and source inputs (no patching at all): the
    cost every "two forwards per pair" library pays at least;
  * pyvene (if installed; its version is printed, and it is skipped politely otherwise).

Patched argmaxes (over the answer candidates) of causalspec and pyvene are asserted equal.
Timings are wall-clock on a noisy machine: quote the ratios, measured in one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

FILLER = "so then after the long day at work the two friends went home with".split()  # 14 words
NAMES = ["Mary", "John", "Anna", "Tom", "Lisa", "Paul", "Kate", "Mark", "Emma", "Jack",
         "Sara", "Adam", "Lucy", "Ryan", "Nina", "Carl"]


def spec_text(model_dir: Path, pairs: int, pool: int, batch: int) -> str:
    names = ", ".join(NAMES)
    prompt = " ".join(FILLER) + " {A} {B}"
    return f"""
model Copy {{
  domain Name = enum {{{names}}}
  input A, B : Name ~ uniform where A != B
  var mover : Name = A
  output answer : Name = mover
}}
network gpt2small = hf "{model_dir}" {{
  prompt "{prompt}"
  answer " {{answer}}"
  position END = last
}}
align Copy to gpt2small as Claim {{
  mover -> resid.post[6] @ END
  answer -> output
}}
check Claim {{
  interchange mover
  pairs {pairs} seed 0 pool {pool} batch {batch}
  expect iia >= 0.0
}}
"""


def build_model(directory: Path) -> None:
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    tok = build_word_tokenizer(FILLER + NAMES)
    build_tiny_model("gpt2", len(tok), directory, seed=0, tokenizer=tok, n_layer=12, n_head=12, n_embd=768,
                     n_positions=64)


def time_engine(ir, check):
    """The engine path of `causalspec check`, split so its per-pair predictions are visible."""
    from causalspec.checking import CheckOptions, NetworkCache, _adapter
    from causalspec.compile.plan import compile_check
    from causalspec.run.engine import Engine
    from causalspec.run.families import resolve_family
    from causalspec.semantics.pairs import row_ids

    networks = NetworkCache()
    plan = compile_check(ir, check)
    net = networks.get(ir, plan.network.name, CheckOptions())
    adapter = _adapter(net, plan)
    engine = Engine(adapter, net.module, resolve_family(net.module), check.batch)
    claim = plan.claims[0]
    ids = row_ids(plan.pool)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rows = {k: v[first] for k, v in plan.pool.items()}
    bindings = plan.bindings()
    t0 = time.perf_counter()
    cache = engine.run_clean(rows, bindings)
    base_u = inverse[claim.pairs.base_index]
    sources_u = [inverse[s] for s in claim.pairs.source_index]
    groups = [[b for v in g for b in plan.alignment.variables[v]] for g in claim.groups]
    preds = engine.run_patched(rows, cache, base_u, sources_u, groups)
    seconds = time.perf_counter() - t0
    return plan, net, adapter, preds, seconds, len(first)


def encode_pairs(adapter, plan):
    claim = plan.claims[0]
    base = adapter.encode(claim.pairs.base)
    source = adapter.encode(claim.pairs.sources[0])
    return base, source


def time_plain(net, base, source, batch: int) -> float:
    ids = torch.cat([base.inputs["input_ids"], source.inputs["input_ids"]])
    mask = torch.cat([base.inputs["attention_mask"], source.inputs["attention_mask"]])
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(ids), batch):
            net.module(input_ids=ids[s:s + batch], attention_mask=mask[s:s + batch])
    return time.perf_counter() - t0


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
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--pool", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from causalspec.semantics.analyse import load_text

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "gpt2small"
        build_model(model_dir)
        ir = load_text(spec_text(model_dir, args.pairs, args.pool, args.batch), str(Path(tmp) / "bench.cspec"),
                       base_dir=Path(tmp))
        check = ir.checks[0]
        plan, net, adapter, preds, eng_s, unique = time_engine(ir, check)
        base, source = encode_pairs(adapter, plan)
        n = base.size
        seq = int(base.inputs["attention_mask"].sum(1).max())
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); GPT-2-small body, seq {seq}, "
              f"{n} pairs from a pool of {args.pool} inputs ({unique} unique), batch {args.batch}")
        plain_s = time_plain(net, base, source, args.batch)
        pv_preds, pv_s = time_pyvene(net, adapter, base, source, args.batch)
        rows = [("causalspec engine", eng_s), ("plain batched forward of 2N inputs", plain_s)]
        if pv_s is not None:
            rows.append(("pyvene", pv_s))
            same = int((pv_preds == preds).sum())
            print(f"identical patched argmaxes, causalspec vs pyvene: {same}/{n}")
            assert same == n, "causalspec and pyvene disagree on patched predictions"
        for label, s in rows:
            print(f"{label:40s} {s:8.2f} s   {n / s:8.1f} pairs/s")
        print(f"ratio engine / plain 2N forward: {plain_s / eng_s:.2f}x")
        if pv_s is not None:
            print(f"ratio engine / pyvene:           {pv_s / eng_s:.2f}x")


if __name__ == "__main__":
    main()
