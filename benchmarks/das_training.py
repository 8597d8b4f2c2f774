"""Benchmark (not a test): DAS training throughput, causalspec vs pyvene, on a GPT-2-small-shaped model.

    python benchmarks/das_training.py [--steps 100] [--batch 64] [--lr 0.01] [--k 16] [--threads 1]
                                      [--pyvene rotated|lowrank|none] [--clock cpu|wall]

Setting: the random-init GPT-2-small body of `_setup.py` (12 layers, 12 heads, d_model 768, a
word vocabulary), prompts of 16 tokens, DAS with k = 16 at `resid.post[6] @ last`. The 240
inputs (A, B: 16 names, A != B) are split into 160 training and 80 held-out inputs; training
pairs (base, source) are drawn from the first, held-out pairs from the second. The target of a
pair is the network's own answer on the source (this random-init network does not copy A, so
the task's own counterfactual would be unreachable for both tools alike): the hypothesis
trained is "a 16-dim subspace of resid.post[6] at the last token carries the answer".

Measured side by side in one run, with the same training pairs, the same minibatches (the
same index stream), batch, step count, learning rate and schedule (Adam, cosine decay to 10%),
no early stopping:

  * causalspec: `run.train.train` — the training split's clean pass once (keys/values and the
    block-7 input of each unique input), then each step recomputes blocks 7-11 at the last
    token only (`run.suffix`), backward through that suffix, into the featurizer only;
  * pyvene `IntervenableModel` with `RotatedSpaceIntervention` (its DAS tutorials' setting: a
    768 x 768 orthogonal rotation, `interchange_dim` 16) — or `LowRankRotatedSpaceIntervention`
    (768 x 16, as causalspec) with `--pyvene lowrank`: each step runs the source and the base
    through the whole network, backward through blocks 7-11 at every position.

Both report steps/s (causalspec's including its clean pass), and the held-out IIA each trained
subspace reaches (patched answer == the network's answer on the source, Wilson 95% interval),
scored by causalspec's engine for causalspec and by pyvene for pyvene. "limit": what no
training of this design can beat — the clean forward of the unique training inputs plus, per
step, a hook-free forward + backward of the suffix (blocks 7-11, last token) with a trainable
additive patch. Times are this process's CPU time by default (`--clock wall` for wall time;
the other clock is printed beside): with one thread, CPU time is what the work cost even on a
machine shared with other jobs (see `_setup.Clock`); quote ratios measured in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import NAMES, Clock, PeakRSS, build_model, clean_clock, spec_text, warm_up  # noqa: E402  (see _setup.py)

FILLER = "so then after the long day at work the two friends went home with".split()  # 14 words
PROMPT = " ".join(FILLER) + " {A} {B}"
LAYER = 6


def inputs_split(seed: int = 0) -> tuple[dict, dict]:
    """All 240 (A, B) inputs (enum codes: indices into NAMES), shuffled, split 160 / 80 into
    training and held-out inputs."""
    combos = np.array([(a, b) for a in range(len(NAMES)) for b in range(len(NAMES)) if a != b], dtype=np.int64)
    combos = combos[np.random.default_rng(seed).permutation(len(combos))]
    return ({"A": combos[:160, 0], "B": combos[:160, 1]}, {"A": combos[160:, 0], "B": combos[160:, 1]})


def draw_pairs(n_inputs: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, n_inputs, n)
    source = (base + rng.integers(1, n_inputs, n)) % n_inputs  # never the base itself
    return base, source


def wilson(k: int, n: int) -> str:
    if not n:
        return "n/a"
    p, z = k / n, 1.96
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{p:.3f} [{mid - half:.3f}, {mid + half:.3f}] ({k}/{n})"


def lr_at(lr: float, step: int, steps: int) -> float:
    return lr * (0.55 + 0.45 * math.cos(math.pi * step / max(1, steps)))  # causalspec's schedule (run.train)


def run_causalspec(engine, alignment, binding, rows_t, base_t, source_t, rows_h, base_h, source_h, args):
    from causalspec.run import train as T

    groups = T.learned_groups(alignment)
    config = T.TrainConfig(steps=args.steps, lr=args.lr, batch=args.batch, early_stop=2.0, restarts=1,
                           min_steps=args.steps, seed=0)
    clean_c, train_c = Clock(), Clock()
    with clean_c:
        cache = engine.run_clean(rows_t, [binding], bases=np.unique(base_t))  # as a check's training split
    claim = T.TrainClaim([["mover"]], base_t, [source_t], cache.preds[source_t])
    with train_c:
        trained = T.train(engine, rows_t, cache, alignment, groups, [claim], config)
    held = engine.run_clean(rows_h, [binding], bases=np.unique(base_h))
    preds = engine.run_patched(rows_h, held, base_h, [source_h], [[binding]],
                               bases=[[trained.basis("mover", binding)]])
    target = held.preds[source_h]
    return clean_c, train_c, int((preds == target).sum()), trained, cache, claim, config


def minibatches(engine, rows_t, cache, claim, alignment, config):
    """The index stream causalspec's training drew (same rng, same buckets)."""
    from causalspec.run import train as T

    buckets = T.training_buckets(engine, rows_t, cache, claim, alignment)
    rng = np.random.default_rng(int(config.seed))
    return [T.draw_minibatch(buckets, config.batch, rng) for _ in range(config.steps)]


def encoded(adapter, rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b = adapter.encode(rows)
    last = b.inputs["attention_mask"].sum(1) - 1
    return b.inputs["input_ids"], b.inputs["attention_mask"], last


def run_pyvene(net, adapter, rows_t, base_t, source_t, targets_t, stream, rows_h, base_h, source_h, targets_h,
               args) -> tuple[Clock, int] | None:
    try:
        import pyvene as pv
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        print(f"pyvene: not available ({type(exc).__name__}: {exc}); skipped")
        return None
    from importlib.metadata import version

    kind = pv.RotatedSpaceIntervention if args.pyvene == "rotated" else pv.LowRankRotatedSpaceIntervention
    rep = {"layer": LAYER, "component": "block_output", "unit": "pos", "max_number_of_units": 1}
    if args.pyvene == "lowrank":
        rep["low_rank_dimension"] = args.k
    print(f"pyvene {version('pyvene')}, {kind.__name__}")
    torch.manual_seed(0)
    model = pv.IntervenableModel(pv.IntervenableConfig(representations=[rep], intervention_types=kind),
                                 model=net.module)
    model.disable_model_gradients()
    [intervention] = model.interventions.values()
    if args.pyvene == "rotated":
        intervention.set_interchange_dim(args.k)
    params = [p for p in intervention.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=args.lr)
    ids_t, mask_t, last_t = encoded(adapter, rows_t)
    cands = adapter.candidates

    clock = Clock()
    with clock:
        train_pyvene(model, optimiser, stream, ids_t, mask_t, last_t, base_t, source_t, targets_t, cands, args)
    ids_h, mask_h, last_h = encoded(adapter, rows_h)
    preds = []
    with torch.no_grad():
        for at in range(0, len(base_h), args.batch):
            b, s = base_h[at:at + args.batch], source_h[at:at + args.batch]
            _, out = model({"input_ids": ids_h[b], "attention_mask": mask_h[b]},
                           [{"input_ids": ids_h[s], "attention_mask": mask_h[s]}],
                           unit_locations={"sources->base": ([[[int(p)] for p in last_h[s]]],
                                                             [[[int(p)] for p in last_h[b]]])})
            preds.append(out.logits[torch.arange(len(b)), last_h[b]][:, cands].argmax(-1).numpy())
    right = int((np.concatenate(preds) == targets_h).sum())
    return clock, right


def train_pyvene(model, optimiser, stream, ids_t, mask_t, last_t, base_t, source_t, targets_t, cands, args) -> None:
    """pyvene's training loop: per step, the base and the source through the whole network."""
    for step, idx in enumerate(stream):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(args.lr, step, args.steps)
        b, s = base_t[idx], source_t[idx]
        _, out = model({"input_ids": ids_t[b], "attention_mask": mask_t[b]},
                       [{"input_ids": ids_t[s], "attention_mask": mask_t[s]}],
                       unit_locations={"sources->base": ([[[int(p)] for p in last_t[s]]],
                                                         [[[int(p)] for p in last_t[b]]])})
        scores = out.logits[torch.arange(len(b)), last_t[b]][:, cands].float()
        loss = torch.nn.functional.cross_entropy(scores, torch.as_tensor(targets_t[idx]))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()


def time_limit(engine, cache, rows_t, base_t, stream) -> Clock:
    """Seconds of the suffix's forward + backward for every step (a trainable additive patch at the
    last token of resid.post[6], no hooks of causalspec's): the limit's per-step part."""
    from causalspec.run import suffix
    from causalspec.run.hooks import installed
    from causalspec.semantics.site_kinds import SiteAddress

    runner = cache.kv
    adapter, module, family = engine.adapter, engine.module, engine.family
    site = SiteAddress("resid.post", layer=LAYER)
    delta = torch.zeros(module.config.n_embd, requires_grad=True)
    total = Clock()
    for idx in stream:
        batch = adapter.encode({k: v[base_t[idx]] for k, v in rows_t.items()})
        last = batch.inputs["attention_mask"].sum(1) - 1
        layout = suffix.plan(runner, batch, [suffix.Write(site, last[:, None])])
        assert isinstance(layout, suffix.Suffix), layout
        moved, rel = layout.shift(suffix.Write(site, last[:, None]))
        access = family.locate(module, moved)

        def add(x, rel=rel):  # [batch, T, d]: + delta at the patched position (T = 1 here)
            return x + delta * (torch.arange(x.shape[1])[None, :, None] == rel[:, :1, None])

        with total, torch.enable_grad():
            at = suffix.answer_logits(runner, batch, base_t[idx], layout, [moved],
                                      installed([lambda access=access, add=add: access.install_write(add)]))
            at[:, adapter.candidates].float().logsumexp(-1).sum().backward()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100,
                    help="training steps of both tools, no early stopping (default 100)")
    ap.add_argument("--batch", type=int, default=64,
                    help="training pairs per step, and the engine's batch (default 64)")
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate, cosine-decayed to 10%% (default 0.01)")
    ap.add_argument("--k", type=int, default=16, help="dimension of the trained DAS subspace (default 16)")
    ap.add_argument("--train-pairs", type=int, default=4096,
                    help="(base, source) pairs drawn from the 160 training inputs (default 4096)")
    ap.add_argument("--heldout-pairs", type=int, default=1024,
                    help="pairs drawn from the 80 held-out inputs that score the trained subspace (default 1024)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default; default 1)")
    ap.add_argument("--pyvene", choices=["rotated", "lowrank", "none"], default="rotated",
                    help="pyvene's intervention: rotated (768 x 768 rotation, its DAS tutorials), lowrank "
                         "(768 x k, as causalspec), none (causalspec only); default rotated")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="the clock of the figures (default: this process's CPU time, see _setup.Clock)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from causalspec.claims.runner import CheckOptions, NetworkCache
    from causalspec.compile.plan import compile_check
    from causalspec.run.train import frozen_weights
    from causalspec.semantics.analyse import load_text
    from causalspec.testing.claims import make_engine

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "gpt2small"
        build_model(model_dir, FILLER)
        text = spec_text(model_dir, PROMPT, 64, 64, args.batch, end_position=True)
        text = text.replace("@ END\n", f"@ END : das(k={args.k})\n")
        ir = load_text(text, str(Path(tmp) / "das.cspec"), base_dir=Path(tmp))
        check = ir.checks[0]
        net = NetworkCache().get(ir, ir.alignments[check.alignment].network, CheckOptions())
        warm_up(net, args.batch)
        plan = compile_check(ir, check)
        alignment = plan.alignment
        [binding] = alignment.variables["mover"]
        engine = make_engine(plan, net, args.batch)
        rows_t, rows_h = inputs_split()
        base_t, source_t = draw_pairs(160, args.train_pairs, 1)
        base_h, source_h = draw_pairs(80, args.heldout_pairs, 2)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); GPT-2-small body, seq 16; "
              f"DAS k={args.k} at resid.post[{LAYER}] @ last; {args.train_pairs} training pairs over 160 inputs, "
              f"{args.heldout_pairs} held-out pairs over 80 other inputs; batch {args.batch}, {args.steps} steps, "
              f"lr {args.lr} (Adam, cosine to 10%)")
        with PeakRSS() as mem_cs:
            clean_c, train_c, right_cs, trained, cache, claim, config = run_causalspec(
                engine, alignment, binding, rows_t, base_t, source_t, rows_h, base_h, source_h, args)
        print(f"causalspec notes: {[n for n in engine.notes if n.startswith('training')]}")
        stream = minibatches(engine, rows_t, cache, claim, alignment, config)
        held = engine.run_clean(rows_h, [binding])
        targets_h = held.preds[source_h]
        baseline = int((held.preds[base_h] == targets_h).sum())
        clock = args.clock
        clean_s, train_s = clean_c.get(clock), train_c.get(clock)
        cs_s = clean_s + train_s
        what = "this process's user + system time" if clock == "cpu" else "wall time"
        print(f"times on the {clock} clock ({what}; the other clock in brackets)")
        other = OTHER[clock]
        cs_other = clean_c.get(other) + train_c.get(other)
        print(f"{'causalspec':32s} {cs_s:8.2f} s ({clean_s:.2f} s clean pass + {train_s:.2f} s training; "
              f"{cs_other:.2f} s {other})  "
              f"{args.steps / cs_s:7.2f} steps/s   held-out IIA {wilson(right_cs, len(base_h))}   {mem_cs.text()}")
        pv = None
        if args.pyvene != "none":
            with PeakRSS() as mem_pv, frozen_weights(net.module):
                pv = run_pyvene(net, engine.adapter, rows_t, base_t, source_t, cache.preds[source_t], stream,
                                rows_h, base_h, source_h, targets_h, args)
            if pv is not None:
                pv_c, right_pv = pv
                pv_s = pv_c.get(clock)
                print(f"{'pyvene':32s} {pv_s:8.2f} s ({pv_c.get(other):.2f} s {other}) {'':19s}"
                      f"{args.steps / pv_s:7.2f} steps/s   held-out IIA {wilson(right_pv, len(base_h))}   "
                      f"{mem_pv.text()}")
        print(f"no-intervention baseline on the held-out pairs (base answer == source answer): "
              f"{wilson(baseline, len(base_h))}")
        with frozen_weights(net.module), contextlib.suppress(KeyboardInterrupt):
            suffix_c = time_limit(engine, cache, rows_t, base_t, stream)
        plain_c = clean_clock(net, engine.adapter, rows_t, args.batch)
        suffix_s, plain_s = suffix_c.get(clock), plain_c.get(clock)
        limit = plain_s + suffix_s
        other_share = (plain_c.get(other) + suffix_c.get(other)) / cs_other
        print(f"limit: plain forward of 160 inputs {plain_s:.2f} s + forward+backward "
              f"of the suffix for {args.steps} steps {suffix_s:.2f} s = {limit:.2f} s "
              f"({args.steps / limit:.2f} steps/s); causalspec at {limit / cs_s:.0%} of the limit "
              f"({other_share:.0%} on the {other} clock); training loop alone at {suffix_s / train_s:.0%}")
        if pv is not None:
            pv_s = pv[0].get(clock)
            print(f"ratio causalspec / pyvene steps/s: {pv_s / cs_s:.2f}x (training loop alone: "
                  f"{pv_s / train_s:.2f}x; {pv[0].get(other) / cs_other:.2f}x on the {other} clock)")
            diff = abs(right_cs - pv[1]) / len(base_h)
            p = (right_cs + pv[1]) / (2 * len(base_h))
            se = math.sqrt(2 * p * (1 - p) / len(base_h)) if 0 < p < 1 else 0.0
            print(f"held-out IIA difference {diff:.3f} ({'within' if diff <= 2 * se + 1e-9 else 'OUTSIDE'} two "
                  f"standard errors, {2 * se:.3f})")


OTHER = {"cpu": "wall", "wall": "cpu"}


if __name__ == "__main__":
    main()
