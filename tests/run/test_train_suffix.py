"""Training learned featurizers on the incremental path (causalspec.run.suffix) equals full forwards.

One training batch's loss and the gradients of the featurizer's parameters, computed through
the suffix only (blocks from the patch's, positions from the patch onwards, from the training
split's cached keys/values and block inputs), must equal those of a full patched forward:
loss within 1e-5 absolute, gradients within 1e-4 relative to their largest entry (float32;
the two paths add the same numbers in a different order). On tiny GPT-2, NeoX and Llama (GQA),
at the last token, at a slot, at a range starting at the first token (blocks below still
skipped, no past), and inside a block (mlp.out); DAS and Boundless DAS. No gradient reaches
the network's weights. A bidirectional model falls back to full forwards and says why; a
forward that runs out of memory is retried in smaller chunks whose gradients add up to the
same step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from causalspec.run import suffix, train as T
from causalspec.semantics.analyse import load
from causalspec.testing.claims import claim_run
from causalspec.testing.specs import mover_spec

KINDS = ["gpt2", "neox", "llama"]
CASES = {  # name -> (site, position): the binding trained with das(k=2)
    "last": ("resid.post[1]", "END"),
    "slot": ("resid.post[0]", "A1"),
    "from-first-token": ("resid.post[0]", "0..2"),
    "in-block": ("mlp.out[0]", "A1"),
}


def setup(word_lm, tmp_path, kind, site, at, featurizer="das(k=2)"):
    path = tmp_path / "spec.cspec"
    path.write_text(mover_spec(word_lm(kind), site=site, at=f"{at} : {featurizer}", positions=True, pairs=48,
                               batch=16))
    ir = load(path)
    run = claim_run(ir, incremental=True)
    cache = run.clean()
    alignment = run.plan.alignment
    groups = T.learned_groups(alignment)
    adapter = run.engine.adapter
    expected = adapter.domain.codes(run.claim.pairs.expected[run.plan.output])
    claim = T.TrainClaim(run.claim.groups, run.base, run.sources, expected)
    width = cache.acts.width(groups[0].members[0][1])
    feats = [T.featurizer_for(g, width, torch.Generator().manual_seed(3)) for g in groups]
    buckets = T.training_buckets(run.engine, run.rows, cache, claim, alignment)
    idx = max(buckets, key=len)[:12]
    return run, cache, alignment, feats, claim, idx


def loss_and_grads(run, cache, alignment, feats, claim, idx, full, temperature=None):
    stats = suffix.SuffixStats()
    params = [p for f in feats for p in f.parameters()]
    with T.frozen_weights(run.engine.module), torch.enable_grad():
        loss, scores, _ = T.batch_loss(run.engine, run.rows, cache, alignment, feats, claim, idx,
                                       temperature=temperature, full=full, stats=stats)
        grads = torch.autograd.grad(loss, params)
    return float(loss.detach()), [g.clone() for g in grads], scores.detach(), stats


def assert_close(a, b):
    for x, y in zip(a, b):
        scale = max(float(y.abs().max()), 1e-6)
        assert float((x - y).abs().max()) <= 1e-4 * scale, (float((x - y).abs().max()), scale)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_loss_and_gradients_equal_full_forward(word_lm, tmp_path, kind, case):
    site, at = CASES[case]
    run, cache, alignment, feats, claim, idx = setup(word_lm, tmp_path, kind, site, at)
    assert cache.kv is not None
    inc_loss, inc_grads, inc_scores, inc_stats = loss_and_grads(run, cache, alignment, feats, claim, idx, False)
    full_loss, full_grads, full_scores, full_stats = loss_and_grads(run, cache, alignment, feats, claim, idx, True)
    assert inc_stats.steps == 1 and not inc_stats.fallbacks, inc_stats  # the incremental path ran
    assert inc_stats.tokens < inc_stats.full_tokens or inc_stats.block_tokens < inc_stats.full_tokens * 2
    assert full_stats.steps == 0 and full_stats.fallbacks
    assert abs(inc_loss - full_loss) < 1e-5, (inc_loss, full_loss)
    assert float((inc_scores - full_scores).abs().max()) < 1e-4
    assert_close(inc_grads, full_grads)
    assert max(float(g.abs().max()) for g in full_grads) > 1e-6  # the featurizer does move the loss
    assert all(p.grad is None and p.requires_grad for p in run.engine.module.parameters())  # weights untouched


def test_boundless_equals_full_forward(word_lm, tmp_path):
    run, cache, alignment, feats, claim, idx = setup(word_lm, tmp_path, "gpt2", "resid.post[0]", "A1", "boundless")
    inc = loss_and_grads(run, cache, alignment, feats, claim, idx, False, temperature=0.5)
    full = loss_and_grads(run, cache, alignment, feats, claim, idx, True, temperature=0.5)
    assert inc[3].steps == 1
    assert abs(inc[0] - full[0]) < 1e-5
    assert_close(inc[1], full[1])


def test_training_runs_on_the_incremental_path_and_says_so(word_lm, tmp_path):
    run, cache, alignment, _, claim, _ = setup(word_lm, tmp_path, "llama", "resid.post[0]", "A1")
    groups = T.learned_groups(alignment)
    config = T.TrainConfig(steps=4, batch=16, restarts=1, min_steps=1)
    trained = T.train(run.engine, run.rows, cache, alignment, groups, [claim], config)
    assert trained.info["path"] == "incremental"
    assert any(n.startswith("training: 4 forward/backward pass(es) on the incremental path") for n in
               run.engine.notes), run.engine.notes
    # the same training with full forwards reaches the same subspace (float tolerance)
    full = claim_run(load(tmp_path / "spec.cspec"), incremental=False)
    full_cache = full.clean()
    assert full_cache.kv is None
    assert full.base.tolist() == run.base.tolist()
    again = T.train(full.engine, full.rows, full_cache, full.plan.alignment, T.learned_groups(full.plan.alignment),
                    [claim], config)
    assert again.info["path"] == "full"
    assert any("training: full forwards for 4 step(s) — incremental forwards are off" in n for n in full.engine.notes)
    # Adam divides each gradient entry by its running magnitude, so float-order noise in entries
    # near zero becomes visible after a few steps: the first loss agrees to 1e-5, the rest closely
    assert abs(trained.info["loss"][0] - again.info["loss"][0]) < 1e-5
    assert np.allclose(trained.info["loss"], again.info["loss"], atol=1e-2)
    [basis] = trained.bases.values()
    [basis_full] = again.bases.values()
    assert torch.allclose(basis, basis_full, atol=2e-2)


def test_bidirectional_models_train_in_full_and_say_why(word_lm, tmp_path):
    path = tmp_path / "spec.cspec"
    text = mover_spec(word_lm("bert"), site="resid.post[0]", at="A1 : das(k=2)", positions=True, pairs=32)
    path.write_text(text.replace('to"', 'to [MASK]"'))
    run = claim_run(load(path), incremental=True)
    cache = run.clean()
    assert cache.kv is None
    reason = T.full_reason(run.engine, cache)
    assert reason is not None and "bidirectional" in reason


def test_out_of_memory_backs_off_to_smaller_chunks_with_the_same_step(word_lm, tmp_path, monkeypatch):
    run, cache, alignment, _, claim, _ = setup(word_lm, tmp_path, "gpt2", "resid.post[1]", "END")
    groups = T.learned_groups(alignment)
    config = T.TrainConfig(steps=3, batch=16, restarts=1, min_steps=1)
    before = T.train(run.engine, run.rows, cache, alignment, groups, [claim], config)
    real = suffix.answer_logits

    def small_only(runner, batch, *args, **kwargs):
        if batch.size > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(runner, batch, *args, **kwargs)

    monkeypatch.setattr(suffix, "answer_logits", small_only)
    after = T.train(run.engine, run.rows, cache, alignment, groups, [claim], config)
    assert any("training forwards ran out of memory on a batch of 16; continued with batches of 8" in n
               for n in run.engine.notes), run.engine.notes
    assert abs(before.info["loss"][0] - after.info["loss"][0]) < 1e-5  # the same step, summed in chunks
    assert np.allclose(before.info["loss"], after.info["loss"], atol=1e-2)  # (Adam: see above)
    [(key, basis)] = before.bases.items()
    assert torch.allclose(basis, after.bases[key], atol=2e-2)


PLACES = "store park beach market school office garden museum library station".split()
PLACES_SPEC = """
model P {{
  domain Name = enum {{Mary, John, Tom}}
  domain Place = enum {{{places}}}
  input  A, B : Name ~ uniform where A != B
  input  C : Place ~ uniform
  var    mover : Name = A
  output answer : Name = mover
}}
network net = hf "{path}" {{
  prompt "When {{A}} and {{B}} went to the {{C}}, {{B}} gave a drink to"
  answer " {{answer}}"
  position A1 = slot(A)
}}
align P to net as Pos {{
  mover -> resid.post[0] @ A1 : das(k=1)
  answer -> output
}}
check Pos {{
  interchange mover
  pairs 32 seed 0 pool 12 train 128 steps 2 batch 32
  expect iia >= 0.0
}}
"""


def test_the_training_split_keeps_keys_and_values_of_its_bases_only(tmp_path):
    # issue 15: an input of the training split that is only ever a source is never the base of
    # a training step, so its keys and values are not kept; training still runs on the
    # incremental path, and its score on the training pairs equals that of full forwards
    from causalspec.claims.procedure import make_alignment_run
    from causalspec.claims.runner import CheckOptions, NetworkCache
    from causalspec.compile.plan import compile_check
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    words = "When and went to the gave a drink".split() + ["Mary", "John", "Tom"] + PLACES
    build_tiny_model("gpt2", None, tmp_path / "net", seed=0, tokenizer=build_word_tokenizer(words), n_layer=2)
    path = tmp_path / "spec.cspec"
    path.write_text(PLACES_SPEC.format(path=tmp_path / "net", places=", ".join(PLACES)))
    ir = load(path)
    check = ir.checks[0]
    plan = compile_check(ir, check)
    scores = {}
    for incremental in (True, False):
        options = CheckOptions(artifacts=str(tmp_path / f"a{incremental}"), incremental=incremental)
        net = NetworkCache().get(ir, "net", options)
        run = make_alignment_run(ir, check, plan, net, options, keep_filter=False)  # a random net: score all
        run.clean()
        fitted = run.fit(ir, check, net, artifacts=options.artifacts)
        scores[incremental] = {k: (v.successes, v.trials) for k, v in run.train_scores().items()}
        if not incremental:
            assert fitted.train_cache.kv is None
            continue
        assert fitted.trained.info["path"] == "incremental"
        store = fitted.train_cache.kv.store
        n = len(next(iter(fitted.train_rows.values())))
        bases = np.unique(np.concatenate([r.base_u for r in fitted.train_claims]))
        assert store.kept == len(bases) < n, (store.kept, len(bases), n)  # source-only inputs: nothing kept
        assert all(t.shape[0] == len(bases) for t in (*store.keys, *store.values, *store.resid.values()))
        assert store.rows_of(bases) is not None
    assert scores[True] == scores[False]


@pytest.mark.parametrize("shape", [(48, 4), (32, 32)])
def test_the_featurizer_weight_equals_torchs_orthogonal_parametrization(shape):
    # train.tall_cayley solves for the k columns only; value and gradients must equal those of
    # torch's `parametrizations.orthogonal` (Cayley), which solves for all n and keeps k
    n, k = shape
    torch.manual_seed(0)
    lin = torch.nn.utils.parametrizations.orthogonal(torch.nn.Linear(k, n, bias=False), orthogonal_map="cayley")
    with torch.no_grad():
        lin.weight = torch.linalg.qr(torch.randn(n, k))[0]
        lin.parametrizations.weight.original.add_(0.1 * torch.randn(n, k))  # away from the start
    theirs = lin.weight
    probe = torch.randn(n, k)
    [g_theirs] = torch.autograd.grad((theirs * probe).sum(), [lin.parametrizations.weight.original])
    if n > k:  # the tall case never runs torch's full n x n solve
        def refuse(*args):
            raise AssertionError("torch's parametrization ran")
        lin.parametrizations.weight[0].forward = refuse
    ours = T.tall_cayley(lin)
    assert torch.allclose(ours, theirs, atol=1e-5), float((ours - theirs).abs().max())
    assert torch.allclose(ours.T @ ours, torch.eye(k), atol=1e-5)  # orthonormal columns
    [g_ours] = torch.autograd.grad((ours * probe).sum(), [lin.parametrizations.weight.original])
    assert torch.allclose(g_ours, g_theirs, atol=1e-5), float((g_ours - g_theirs).abs().max())
    assert float(g_theirs.abs().max()) > 1e-3
