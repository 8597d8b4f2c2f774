"""Benchmark (not a test): peak memory of DAS training against the batch size, GPT-2-small shape.

    python benchmarks/training_memory.py [--batches 16,64,256] [--steps 3] [--threads 1]

The setting of das_training.py (DAS k=16 at `resid.post[6] @ last`, 160 training inputs of 16
tokens). Each batch size runs in a fresh process (the allocator does not give memory back, so
one process would report the largest batch's peak for every later one): the model is loaded,
the training split's clean pass runs (its key/value store and activations stay in memory for
training: "store"), then `run.train.train` runs `--steps` steps on the incremental path (and,
with `--full`, on full forwards too, for comparison) while peak RSS is sampled every 5 ms.
"+step" is the peak's growth over the RSS before training: what the training steps
themselves add. CPU only (on a GPU, `torch.cuda.max_memory_allocated` would be the measure).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import PeakRSS, _rss, build_model, spec_text  # noqa: E402  (see _setup.py)
from das_training import FILLER, PROMPT, draw_pairs, inputs_split  # noqa: E402


def measure(model_dir: Path, batch: int, steps: int, full: bool) -> None:
    from causalspec.claims.runner import CheckOptions, NetworkCache
    from causalspec.compile.plan import compile_check
    from causalspec.run import train as T
    from causalspec.semantics.analyse import load_text
    from causalspec.testing.claims import make_engine

    text = spec_text(model_dir, PROMPT, 64, 64, batch, end_position=True).replace("@ END\n", "@ END : das(k=16)\n")
    ir = load_text(text, str(model_dir.parent / "m.cspec"), base_dir=model_dir.parent)
    check = ir.checks[0]
    net = NetworkCache().get(ir, ir.alignments[check.alignment].network, CheckOptions())
    plan = compile_check(ir, check)
    [binding] = plan.alignment.variables["mover"]
    engine = make_engine(plan, net, 64, incremental=not full)
    rows, _ = inputs_split()
    base, source = draw_pairs(160, 4096, 1)
    cache = engine.run_clean(rows, [binding], bases=np.unique(base))  # as a check's training split
    store = cache.kv.store.nbytes() if cache.kv is not None else 0
    claim = T.TrainClaim([["mover"]], base, [source], cache.preds[source])
    config = T.TrainConfig(steps=steps, batch=batch, restarts=1, early_stop=2.0, min_steps=steps)
    before = _rss()
    with PeakRSS() as mem:
        T.train(engine, rows, cache, plan.alignment, T.learned_groups(plan.alignment), [claim], config)
    path = "full forwards" if full else "incremental"
    print(f"batch {batch:5d}  {path:13s} RSS before training {before / 2**20:7.0f} MiB  "
          f"peak {mem.peak / 2**20:7.0f} MiB"
          f"  +step {(mem.peak - before) / 2**20:6.0f} MiB  (key/value store {store / 2**20:.1f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="16,64,256",
                    help="comma-separated batch sizes, each measured in a fresh process (default 16,64,256)")
    ap.add_argument("--steps", type=int, default=3, help="training steps per batch size (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default; default 1)")
    ap.add_argument("--full", action="store_true", help="also measure training with full forwards")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # model_dir batch full: the child process
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        measure(Path(args.one[0]), int(args.one[1]), args.steps, args.one[2] == "1")
        return
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "gpt2small"
        build_model(model_dir, FILLER)
        print(f"torch {torch.__version__}, {args.threads} thread(s); DAS k=16 at resid.post[6] @ last, seq 16, "
              f"{args.steps} steps per batch size, each in a fresh process")
        for batch in (int(b) for b in args.batches.split(",")):
            for full in ((False, True) if args.full else (False,)):
                subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--threads", str(args.threads),
                                "--one", str(model_dir), str(batch), "1" if full else "0"], check=True)


if __name__ == "__main__":
    main()
