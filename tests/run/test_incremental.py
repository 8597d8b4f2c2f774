"""Incremental patched forwards (causalspec.run.incremental) equal full forwards.

Logits of the incremental path (cached keys/values for positions before the patch, explicit
position ids, a past+current mask with per-row holes) must equal a full patched forward at
every recomputed position (max abs diff < 1e-4), for every causal family of the shared tiny
models (tests/run/conftest.py: GPT-2, GPT-NeoX parallel and sequential, Llama (GQA), Gemma), for
patches at the first, a middle and the last position, in right-padded batches whose rows
differ in length. At the engine level, predictions with and without the incremental path,
and at any batch size, are identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from causalspec.claims.runner import run_checks
from causalspec.run.families import resolve_family
from causalspec.run import incremental
from causalspec.run.incremental import KVStore, first_block, incremental_forward, output_cache
from causalspec.run.engine import work_note
from causalspec.run.hooks import patch, record
from causalspec.run.sites import Intervention
from causalspec.semantics.site_kinds import SiteAddress
from causalspec.semantics.analyse import load
from causalspec.testing.claims import claim_run
from causalspec.testing.specs import MOVER_NAMES
from causalspec.testing.tiny import build_tiny_model

KINDS = ["gpt2", "neox", "llama"]
VOCAB = 60  # token ids below this (the shared tiny models of conftest.py have 100)
LENGTHS = [9, 6, 11, 7]


def padded(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, width = len(lengths), max(lengths)
    ids = torch.randint(5, VOCAB, (n, width), generator=g)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask  # padding id 0


def clean_store(model, ids, mask, split, resid_layers=()):
    """The store a clean pass builds, from two batches padded to different widths."""
    store = KVStore(len(ids))
    reads = [SiteAddress("resid.pre", layer=layer) for layer in resid_layers]
    for part in (np.arange(0, split), np.arange(split, len(ids))):
        width = int(mask[part].sum(1).max())
        with torch.no_grad(), record(model, resolve_family(model), reads) as captured:
            out = model(input_ids=ids[part, :width], attention_mask=mask[part, :width], use_cache=True)
        assert store.add(part, output_cache(out), mask[part].sum(1)) is None
        for site in reads:
            store.add_resid(part, site.layer, captured[site])
    store.finish()
    return store


def interventions_at(model, starts, lengths, seed=1):
    """resid.post[0] at each row's start, and mlp.out[1] at each row's last token."""
    g = torch.Generator().manual_seed(seed)
    d = model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.n_embd
    n = len(starts)
    return [Intervention(SiteAddress("resid.post", layer=0), torch.tensor(starts)[:, None],
                         torch.randn(n, 1, d, generator=g)),
            Intervention(SiteAddress("mlp.out", layer=1), (torch.tensor(lengths) - 1)[:, None],
                         torch.randn(n, 1, d, generator=g))]


CASES = {
    "first": lambda lengths: [0] * len(lengths),
    "middle": lambda lengths: [n // 2 for n in lengths],
    "last": lambda lengths: [n - 1 for n in lengths],
    "mixed": lambda lengths: [0, lengths[1] // 2, lengths[2] - 1, 1, lengths[4] // 2],
}


@pytest.mark.parametrize("case", list(CASES))
def test_incremental_logits_equal_full_forward(tiny_causal, case):
    tiny = tiny_causal.model
    family = resolve_family(tiny)
    ids, mask = padded(LENGTHS)
    store = clean_store(tiny, ids, mask, split=2)
    rows = torch.tensor([2, 0, 3, 1, 2])  # permuted, one row twice
    lengths = [LENGTHS[r] for r in rows]
    starts = CASES[case](lengths)
    ivs = interventions_at(tiny, starts, lengths)
    b_ids, b_mask = ids[rows], mask[rows]
    with torch.no_grad(), patch(tiny, family, ivs):
        full = tiny(input_ids=b_ids, attention_mask=b_mask).logits  # [batch, seq, vocab]
    start = torch.tensor(starts)
    past = store.past(rows, int(start.max()))
    logits, offset = incremental_forward(tiny, family, b_ids, torch.tensor(lengths), past, start, ivs)
    assert offset.tolist() == starts
    for i, (s, n) in enumerate(zip(starts, lengths)):
        diff = (logits[i, : n - s] - full[i, s:n]).abs().max().item()
        assert diff < 1e-4, (i, s, n, diff)
    # the answer-only head: one logit row per example, at its last real token
    answer = torch.tensor(lengths) - 1
    at, offset = incremental_forward(tiny, family, b_ids, torch.tensor(lengths), past, start, ivs, answer)
    assert at.shape[1] == 1 and offset.tolist() == answer.tolist()
    ref = full[torch.arange(len(rows)), answer]
    assert (at[:, 0] - ref).abs().max().item() < 1e-4
    # and the patch matters (the comparison is not vacuous)
    with torch.no_grad():
        clean = tiny(input_ids=b_ids, attention_mask=b_mask).logits
    assert (clean[torch.arange(len(rows)), answer] - ref).abs().max().item() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_eager_attention_too(kind, tmp_path):
    model = build_tiny_model(kind, VOCAB, tmp_path, seed=1)
    model.set_attn_implementation("eager")
    family = resolve_family(model)
    ids, mask = padded(LENGTHS, seed=3)
    store = clean_store(model, ids, mask, split=1)
    starts = [1, 5, 10, 6]
    ivs = interventions_at(model, starts, LENGTHS)
    with torch.no_grad(), patch(model, family, ivs):
        full = model(input_ids=ids, attention_mask=mask).logits
    logits, _ = incremental_forward(model, family, ids, torch.tensor(LENGTHS), store.past(torch.arange(4), 10),
                                    torch.tensor(starts), ivs)
    for i, (s, n) in enumerate(zip(starts, LENGTHS)):
        assert (logits[i, : n - s] - full[i, s:n]).abs().max().item() < 1e-4


SKIP_CASES = {  # sites (at each row's start, then at its last token) -> the first block that must run
    "resid.post[0]+mlp.out[2]": ([SiteAddress("resid.post", layer=0)], [SiteAddress("mlp.out", layer=2)], 1),
    "resid.post[1]": ([SiteAddress("resid.post", layer=1)], [], 2),
    "resid.pre[1]": ([SiteAddress("resid.pre", layer=1)], [], 1),
    "head[2.1].v+resid.post[2]": ([SiteAddress("head.v", layer=2, head=1)], [SiteAddress("resid.post", layer=2)], 2),
}


@pytest.fixture(params=["layers", "legacy-layout"])
def cache_layout(request, monkeypatch):
    """Both ways `_make_cache` builds a DynamicCache: lazily initialised ``layers`` (transformers
    4.56+/5.x) and the per-layer list layout of 4.40-4.55 (forced here on the installed version)."""
    if request.param == "legacy-layout":
        from transformers import DynamicCache

        monkeypatch.setattr(incremental, "_make_cache",
                            lambda past: incremental.legacy_layout_cache(DynamicCache, past))
    return request.param


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(SKIP_CASES))
@pytest.mark.parametrize("at_first", [False, True], ids=["mixed-starts", "all-at-position-0"])
def test_layer_skipping_equals_full_forward(kind, case, tmp_path, cache_layout, at_first):
    # all-at-position-0: no cached keys/values are used (a past of width 0), yet the blocks
    # below the patch are still skipped, from their cached clean input (issue 15)
    model = build_tiny_model(kind, VOCAB, tmp_path, seed=2, **({"n_layer": 3} if kind == "gpt2" else
                                                               {"num_hidden_layers": 3}))
    family = resolve_family(model)
    ids, mask = padded(LENGTHS, seed=4)
    store = clean_store(model, ids, mask, split=3, resid_layers=(1, 2))
    rows = torch.tensor([1, 3, 0, 2])
    lengths = [LENGTHS[r] for r in rows]
    starts = [0, 0, 0, 0] if at_first else [lengths[0] // 2, lengths[1] - 1, 2, 0]
    at_start, at_last, expected = SKIP_CASES[case]
    g = torch.Generator().manual_seed(5)
    d = model.config.hidden_size
    ivs = []
    for site in at_start + at_last:
        pos = torch.tensor(starts if site in at_start else [n - 1 for n in lengths])[:, None]
        width = model.config.hidden_size // model.config.num_attention_heads if site.kind == "head.v" else d
        ivs.append(Intervention(site, pos, torch.randn(len(rows), 1, width, generator=g)))
    skip = first_block(ivs, 3)
    assert skip == expected
    b_ids, b_mask = ids[rows], mask[rows]
    with torch.no_grad(), patch(model, family, ivs):
        full = model(input_ids=b_ids, attention_mask=b_mask).logits
    start = torch.tensor(starts)
    past = store.past(rows, int(start.max()), skip)
    assert all(k is None for k, _ in past[1:skip])  # skipped layers get no copy
    assert int(past[0][0].shape[-2]) == int(start.max())
    logits, _ = incremental_forward(model, family, b_ids, torch.tensor(lengths), past, start, ivs, skip=skip,
                                    resid_in=lambda positions: store.resid_at(skip, rows, positions))
    for i, (s, n) in enumerate(zip(starts, lengths)):
        assert (logits[i, : n - s] - full[i, s:n]).abs().max().item() < 1e-4, (i, s, n)
    assert len(model.get_submodule("transformer.h" if kind == "gpt2" else
                                   ("gpt_neox.layers" if kind == "neox" else "model.layers"))) == 3  # restored


def test_a_patch_before_the_start_is_refused(tiny_causal):
    tiny = tiny_causal.model
    family = resolve_family(tiny)
    ids, mask = padded(LENGTHS)
    store = clean_store(tiny, ids, mask, split=2)
    rows = torch.arange(4)
    ivs = interventions_at(tiny, [0, 0, 0, 0], LENGTHS)
    with pytest.raises(ValueError, match="before its row's start"):
        incremental_forward(tiny, family, ids, torch.tensor(LENGTHS), store.past(rows, 2), torch.full((4,), 2), ivs)


# ───────────────────────── engine level ─────────────────────────

SPEC = """
model P {{
  domain Name = enum {{{names}}}
  input  A, B : Name ~ uniform where A != B
  input  order : enum {{AB, BA}} ~ uniform
  var    mover : Name = A
  output answer : Name = mover
}}
network net = hf "{path}" {{
  prompt by order {{
    AB: "When {{A}} and {{B}} went to the store, {{B}} gave a drink to{mask}"
    BA: "Then {{B}} and {{A}} went to the store, {{B}} gave a drink to{mask}"
  }}
  answer " {{answer}}"
  position A1 = slot(A, 1)
  position B2 = slot(B, 2)
  position END = last
  position FIRST = 0
}}
align P to net as Pos {{
  mover -> {site} @ {at}
  answer -> output
}}
check Pos {{
  interchange mover
  pairs {pairs} seed 0 batch {batch}
  expect iia >= 0.0
}}
"""


def write_spec(directory: Path, model_dir: Path, site="resid.post[1]", at="END", pairs=48, batch=16, mask=""):
    spec = directory / f"spec_{abs(hash((site, at, pairs, batch)))}.cspec"
    spec.write_text(SPEC.format(names=", ".join(MOVER_NAMES), path=model_dir, site=site, at=at, pairs=pairs,
                                batch=batch, mask=mask))
    return load(spec)


def engine_predictions(ir, incremental: bool, batch: int):
    run = claim_run(ir, batch=batch, incremental=incremental)
    cache, preds = run.run()
    return preds, run.engine, cache


@pytest.mark.parametrize("site,at", [("resid.post[1]", "END"), ("resid.post[0]", "A1"), ("embed", "A1"),
                                     ("head[1.1].v", "A1"), ("head[0.1].z", "A1")])
@pytest.mark.parametrize("kind", KINDS)
def test_engine_incremental_equals_full_at_every_batch_size(word_lm, tmp_path, kind, site, at):
    ir = write_spec(tmp_path, word_lm(kind), site=site, at=at)
    full, _, cache = engine_predictions(ir, incremental=False, batch=16)
    assert cache.kv is None
    for batch in (16, 5, 64):
        preds, engine, cache = engine_predictions(ir, incremental=True, batch=batch)
        assert cache.kv is not None and cache.kv.stats.rows == len(preds)
        assert cache.kv.stats.tokens < cache.kv.stats.full_tokens
        assert preds.tolist() == full.tolist(), (batch, np.flatnonzero(preds != full))
        assert any("incremental" in n for n in engine.run_notes())
        skips = not site.startswith(("embed", "head[0."))  # the patch is above block 0
        assert any("blocks below the patch skipped" in n for n in engine.run_notes()) == skips, engine.run_notes()


@pytest.mark.parametrize("kind", KINDS)
def test_a_patch_at_position_0_skips_the_blocks_below_it(word_lm, tmp_path, kind):
    # issue 15: position 0 used to fall back to full forwards; above block 0 it now recomputes
    # every position but only the blocks above the patch, with predictions identical to full forwards
    ir = write_spec(tmp_path, word_lm(kind), site="resid.post[1]", at="FIRST")
    full, _, _ = engine_predictions(ir, incremental=False, batch=16)
    for batch in (16, 5):
        preds, engine, cache = engine_predictions(ir, incremental=True, batch=batch)
        assert preds.tolist() == full.tolist(), (batch, np.flatnonzero(preds != full))
        stats = cache.kv.stats
        assert stats.rows == len(preds) and not stats.fallbacks
        assert stats.tokens == stats.full_tokens  # position 0: every position is recomputed ...
        assert stats.block_tokens < stats.tokens * stats.n_layers  # ... in the blocks above the patch only
        assert any("blocks below the patch skipped" in n for n in engine.run_notes()), engine.run_notes()


def test_a_patch_at_position_0_of_block_0_runs_in_full_and_says_so(word_lm, tmp_path):
    ir = write_spec(tmp_path, word_lm("gpt2"), site="embed", at="FIRST")
    full, _, _ = engine_predictions(ir, incremental=False, batch=16)
    preds, engine, cache = engine_predictions(ir, incremental=True, batch=16)
    assert preds.tolist() == full.tolist()
    assert cache.kv.stats.rows == 0
    assert any("full" in n and "first token, in the first block" in n for n in engine.run_notes()), engine.run_notes()


def test_only_inputs_used_as_bases_keep_keys_and_values(word_lm, tmp_path):
    # issue 15: a source-only input is never the base of an incremental run; its keys and
    # values are not kept, and predictions are unchanged
    ir = write_spec(tmp_path, word_lm("llama"), site="resid.post[1]", at="A1", pairs=24)
    run = claim_run(ir, batch=8, incremental=True)
    cache, preds = run.run()
    full = claim_run(ir, batch=8, incremental=False).run()[1]
    assert preds.tolist() == full.tolist()
    store = cache.kv.store
    bases = np.unique(run.base)
    assert store.kept == len(bases) < run.n_unique, (store.kept, run.n_unique)
    assert store.resid and all(t.shape[0] == len(bases) for t in (*store.keys, *store.values, *store.resid.values()))
    source_only = np.setdiff1d(np.arange(run.n_unique), bases)
    assert store.rows_of(source_only[:1]) is None and store.rows_of(bases) is not None


def test_a_store_of_some_inputs_holds_what_the_full_store_holds(tiny_causal):
    tiny = tiny_causal.model
    ids, mask = padded(LENGTHS)
    every = clean_store(tiny, ids, mask, split=2, resid_layers=(1,))
    some = KVStore(len(ids), keep=np.array([3, 1]))
    for part in (np.arange(0, 2), np.arange(2, len(ids))):  # the second batch is wider: the store grows
        width = int(mask[part].sum(1).max())
        with torch.no_grad(), record(tiny, resolve_family(tiny), [SiteAddress("resid.pre", layer=1)]) as got:
            out = tiny(input_ids=ids[part, :width], attention_mask=mask[part, :width], use_cache=True)
        assert some.add(part, output_cache(out), mask[part].sum(1)) is None
        some.add_resid(part, 1, got[SiteAddress("resid.pre", layer=1)])
    some.finish()
    rows = some.rows_of(np.array([1, 3]))
    assert rows is not None and some.rows_of(np.array([0])) is None
    assert some.lengths[rows.numpy()].tolist() == [LENGTHS[1], LENGTHS[3]]
    for (k, v), (k2, v2) in zip(every.past(torch.tensor([1, 3]), 5), some.past(rows, 5)):
        assert torch.equal(k, k2) and torch.equal(v, v2)
    positions = torch.tensor([[0, 4], [2, 5]])
    assert torch.equal(every.resid_at(1, torch.tensor([1, 3]), positions), some.resid_at(1, rows, positions))
    assert some.nbytes() < every.nbytes()


def test_the_notes_state_the_work_bound_of_the_run(word_lm, tmp_path):
    ir = write_spec(tmp_path, word_lm("gpt2"), site="resid.post[1]", at="END", pairs=24)
    run = claim_run(ir, batch=8, incremental=True)
    run.run()
    [note] = [n for n in run.engine.run_notes() if n.startswith("work:")]
    assert note.startswith(f"work: {run.n_unique} clean forward(s), one per distinct input, and 24 patched run(s); "
                           "two forwards per pair would be 48")
    assert work_note(10, 40).endswith("(4.0 patched runs per distinct input)")
    assert "the pool saves nothing here" in work_note(80, 40)


def test_the_note_reports_the_skipped_share_of_block_computations():
    # 10 tokens of full forwards through 4 blocks = 40 (token, block) pairs; the patched runs
    # recomputed 5 tokens through the top 1 block: 15 pairs skipped below the patch (38%),
    # 5 computed in all (12%)
    stats = incremental.IncrementalStats(batches=1, rows=2, tokens=5, full_tokens=10, block_tokens=5, n_layers=4)
    note = stats.note()
    assert "recomputed 5 of 10 token positions (50%)" in note
    assert "blocks below the patch skipped (38% of a full forward's block computations; 12% computed in all)" in note


def test_bidirectional_models_run_in_full_and_say_so(word_lm, tmp_path):
    ir = write_spec(tmp_path, word_lm("bert"), at="B2", mask=" [MASK]")
    [result] = run_checks(ir)
    assert result.status != "error", result.reason
    assert any("bidirectional" in n and "full" in n for n in result.notes), result.notes


def test_check_results_report_the_incremental_path(word_lm, tmp_path):
    [result] = run_checks(write_spec(tmp_path, word_lm("gpt2"), at="END"))
    note = next(n for n in result.notes if "incremental" in n)
    assert "recomputed" in note and "token positions" in note


def test_a_check_uses_no_deprecated_cache_argument(word_lm, tmp_path):
    """transformers 5.x deprecates `past_key_values` (removed in 5.40): the incremental path passes
    and reads the cache under the name the model's forward declares, so no check warns."""
    import warnings

    ir = write_spec(tmp_path, word_lm("llama"), at="END")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [result] = run_checks(ir)
    assert result.status != "error", result.reason
    assert any("incremental" in n for n in result.notes), result.notes  # the cached path did run
    ours = [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))
            and ("past_key_values" in str(w.message) or "cache_params" in str(w.message))]
    assert not ours, [str(w.message) for w in ours]


@pytest.mark.parametrize("kind", KINDS)
def test_the_cache_argument_is_the_one_the_forward_declares(kind, tmp_path):
    import inspect

    model = build_tiny_model(kind, VOCAB, tmp_path, seed=0)
    name = incremental.cache_argument(type(model))
    params = inspect.signature(type(model).forward).parameters
    assert name in params
    assert name == ("cache" if "cache" in params else "past_key_values")
