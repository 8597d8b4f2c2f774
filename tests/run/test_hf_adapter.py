"""HFAdapter: prompts, positions from offsets, right padding, answer tokens, and the
engine's patched predictions against a plain-hook reference, on tiny random-init models
saved and loaded through the real `hf "<dir>"` path (causalspec.testing.tiny)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from causalspec.claims.runner import run_checks
from causalspec.compile.plan import compile_check
from causalspec.run.adapters import CheckUsageError
from causalspec.run.engine import Engine, EngineOptions
from causalspec.run.families import resolve_family
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.loading import load_hf_network
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED
from causalspec.semantics.analyse import load
from causalspec.semantics.sites import ALL, PositionSpec, SiteSpec
from causalspec.testing.claims import claim_run
from causalspec.testing.specs import MOVER_NAMES, MOVER_WORDS
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

ROOT = Path(__file__).resolve().parents[2]
NAMES = MOVER_NAMES  # Annabel is two tokens: Anna ##bel
WORDS = MOVER_WORDS

SPEC = """
model P {{
  domain Name = enum {{{names}}}
  input  A, B : Name ~ uniform where A != B
  input  order : enum {{AB, BA}} ~ uniform
  var    mover : Name = A
  output answer : Name = mover
}}
network net = hf "{path}" {{
  {cls}
  prompt by order {{
    AB: "{ab}"
    BA: "{ba}"
  }}
  answer "{answer}"
  position B2 = slot(B, 2)
  position B2all = slot(B, 2).all
  position END = last
}}
align P to net as Pos {{
  mover -> {site} @ {at}
  answer -> output
}}
check Pos {{
  interchange mover
  pairs {pairs} seed 0
  expect iia >= 0.5
}}
"""
AB = "When {A} and {B} went to the store, {B} gave a drink to"
BA = "Then {B} and {A} went to the store, {B} gave a drink to"


def write_spec(tmp: Path, path: Path, *, names=NAMES, ab=AB, ba=BA, answer=" {answer}", cls="",
               site="resid.post[1]", at="END", pairs=64, file="p.cspec"):
    text = SPEC.format(names=", ".join(names), path=path, ab=ab, ba=ba, answer=answer, cls=cls, site=site, at=at,
                       pairs=pairs)
    spec = tmp / file
    spec.write_text(text)
    return load(spec)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    """The word tokenizer (saved) and a 3-layer tiny GPT-2 next to it.

    A random GPT-2 with the default small init answers the same name for every prompt,
    which would make the engine tests vacuous; a larger init and the first seed whose
    answers differ between prompts make the answer depend on the input.
    """
    d = tmp_path_factory.mktemp("gpt2")
    tok = build_word_tokenizer(WORDS)
    cand = tok.convert_tokens_to_ids(["Mary", "John", "Tom"])
    probes = [AB.format(A=a, B=b) for a, b in [("Mary", "John"), ("John", "Tom"), ("Tom", "Mary"), ("John", "Mary")]]
    for seed in range(20):
        model = build_tiny_model("gpt2", None, d, seed=seed, tokenizer=tok, n_layer=3, initializer_range=0.5)
        with torch.no_grad():
            answers = {int(model(torch.tensor([tok(t)["input_ids"]])).logits[0, -1, cand].argmax()) for t in probes}
        if len(answers) > 1:
            return d
    raise AssertionError("no seed gives a tiny GPT-2 whose answer depends on the prompt")


@pytest.fixture(scope="module")
def gpt2(tok_dir):
    return load_hf_network("net", str(tok_dir), tok_dir, None, "cpu", None)


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("specs")


def adapter_for(ir, net, output="answer") -> HFAdapter:
    return HFAdapter(net, ir.networks["net"], ir.models["P"], output)


def rows(model, *examples) -> dict[str, np.ndarray]:
    """{input: array} for examples given as (A, B, order)."""
    return {"A": model.domain("A").encode([e[0] for e in examples]),
            "B": model.domain("B").encode([e[1] for e in examples]),
            "order": model.domain("order").encode([e[2] for e in examples])}


RESID_1 = SiteSpec("resid.post", 1)


def binding(*specs, site=RESID_1):
    return SimpleNamespace(positions=tuple(specs), site=site)


def toks(adapter, batch, i, positions) -> list[str]:
    ids = batch.inputs["input_ids"][i].tolist()
    return adapter.tokenizer.convert_ids_to_tokens([ids[p] for p in positions])


# ───────────────────────── encoding and positions ─────────────────────────


def test_slot_positions_with_a_multi_token_name(gpt2, tok_dir, spec_dir):
    ir = write_spec(spec_dir, tok_dir)
    ad = adapter_for(ir, gpt2)
    model = ir.models["P"]
    batch = ad.encode(rows(model, ("Annabel", "John", "AB"), ("Mary", "Annabel", "AB"), ("Mary", "Tom", "BA")))
    slot = lambda name, occ, part: PositionSpec("slot", slot=name, occurrence=occ, part=part)  # noqa: E731
    # row 0: When Anna ##bel and John went to the store , John gave a drink to
    assert ad.positions_list(batch, binding(slot("A", 1, "all"))) == [[1, 2], [1], [3]]
    assert ad.positions_list(batch, binding(slot("A", 1, "first"), slot("A", 1, "last"))) == [[1, 2], [1, 1], [3, 3]]
    assert ad.positions_list(batch, binding(slot("B", 2, "all")))[1] == [10, 11]
    assert toks(ad, batch, 1, [10, 11]) == ["Anna", "##bel"]
    assert toks(ad, batch, 0, ad.positions_list(batch, binding(slot("B", 1, "last")))[0]) == ["John"]
    # occurrence 2 is the second {B}, in both orders
    s2 = ad.positions_list(batch, binding(ir.networks["net"].encoding.positions["B2"]))
    assert [toks(ad, batch, i, p) for i, p in enumerate(s2)] == [["John"], ["##bel"], ["Tom"]]
    # last real token, offsets and ranges
    assert ad.positions_list(batch, binding(PositionSpec("last"))) == [[14], [15], [13]]
    before = PositionSpec("offset", base=slot("B", 2, "first"), offset=-1)
    assert [toks(ad, batch, i, p) for i, p in enumerate(ad.positions_list(batch, binding(before)))] == [[","]] * 3
    assert ad.positions_list(batch, binding(PositionSpec("range", lo=0, hi=2), PositionSpec("index", index=4))) \
        == [[0, 1, 2, 4]] * 3
    # `all` is every real token, never padding; rectangular only when counts agree
    assert [len(p) for p in ad.positions_list(batch, binding(ALL))] == [15, 16, 14]
    with pytest.raises(CheckUsageError, match="covers 14 token"):
        ad.positions(batch, binding(ALL))
    same = ad.positions(batch, binding(PositionSpec("last")))
    assert same.dtype == torch.long and same.tolist() == [[14], [15], [13]]


def test_positions_out_of_range_name_the_example(gpt2, tok_dir, spec_dir):
    ir = write_spec(spec_dir, tok_dir)
    ad = adapter_for(ir, gpt2)
    batch = ad.encode(rows(ir.models["P"], ("Mary", "John", "AB"), ("Mary", "Tom", "BA")))
    with pytest.raises(CheckUsageError, match=r"token 14, outside the prompt of example \(A=Mary, B=John, "
                                              r"order=AB: 'When Mary and John.*which has 14 token"):
        ad.positions_list(batch, binding(PositionSpec("index", index=14)))
    with pytest.raises(CheckUsageError, match="outside the prompt"):
        ad.positions_list(batch, binding(PositionSpec("offset", base=PositionSpec("last"), offset=1, name="AFTER")))
    with pytest.raises(CheckUsageError, match="outside the prompt"):
        ad.positions_list(batch, binding(PositionSpec("range", lo=10, hi=20)))


def test_prompt_by_variable_and_right_padding(gpt2, tok_dir, spec_dir):
    ir = write_spec(spec_dir, tok_dir)
    side = gpt2.tokenizer.padding_side
    ad = adapter_for(ir, gpt2)
    batch = ad.encode(rows(ir.models["P"], ("Mary", "Tom", "BA"), ("Annabel", "John", "AB")))
    assert ad.describe_row(batch, 0) == ("A=Mary, B=Tom, order=BA: "
                                         "'Then Tom and Mary went to the store, Tom gave a drink to'")
    assert "'When Annabel and John" in ad.describe_row(batch, 1)
    ids, mask = batch.inputs["input_ids"], batch.inputs["attention_mask"]
    assert ids.shape == (2, 15)
    assert mask[0].tolist() == [1] * 14 + [0] and mask[1].tolist() == [1] * 15  # right padding
    assert ids[0, 14].item() == gpt2.tokenizer.pad_token_id
    assert gpt2.tokenizer.padding_side == side  # the tokenizer object is never modified


def test_answer_tokens_collision_and_unsupported_parts(gpt2, tok_dir, spec_dir):
    names = ["Mary", "Anna", "Annabel"]  # Annabel's first token is Anna
    ir = write_spec(spec_dir, tok_dir, names=names, file="c.cspec")
    with pytest.raises(CheckUsageError, match=r"answer = Anna and answer = Annabel share their first token 'Anna'"):
        adapter_for(ir, gpt2)
    # scoring the last token instead: ##bel vs Anna, no collision
    encoding = ir.networks["net"].encoding
    answer = encoding.answer
    encoding.answer = replace(answer, tokens="last")
    ad = adapter_for(ir, gpt2)
    assert gpt2.tokenizer.convert_ids_to_tokens(ad.candidates.tolist()) == ["Mary", "Anna", "##bel"]
    encoding.answer = replace(answer, tokens="all")
    with pytest.raises(CheckUsageError, match="answer tokens `all` is not supported yet"):
        adapter_for(ir, gpt2)


def test_answer_tokens_parsed_from_the_spec(gpt2, tok_dir, spec_dir):
    write_spec(spec_dir, tok_dir, names=["Mary", "Anna", "Annabel"], file="d.cspec")
    spec = spec_dir / "d.cspec"
    spec.write_text(spec.read_text().replace('answer " {answer}"', 'answer " {answer}" last'))
    ir = load(spec)
    assert ir.networks["net"].encoding.answer.tokens == "last"
    assert adapter_for(ir, gpt2).candidates.shape == (3,)


# ───────────────────────── batched == alone ─────────────────────────


@pytest.mark.parametrize("kind", ["gpt2", "neox", "llama"])
def test_padded_batch_equals_each_example_alone(kind, tmp_path, spec_dir):
    tok = build_word_tokenizer(WORDS)
    build_tiny_model(kind, None, tmp_path, tokenizer=tok)
    net = load_hf_network("net", str(tmp_path), tmp_path, None, "cpu", None)
    ir = write_spec(spec_dir, tmp_path, file=f"{kind}.cspec")
    ad = adapter_for(ir, net)
    examples = [("Annabel", "John", "AB"), ("Mary", "Tom", "BA"), ("Tom", "Annabel", "AB"), ("John", "Mary", "AB")]
    model = ir.models["P"]
    batch = ad.encode(rows(model, *examples))
    assert len({e.length for e in batch.meta["rows"]}) > 1  # really padded
    with torch.no_grad():
        raw = ad.forward(batch)
    last = [e.length - 1 for e in batch.meta["rows"]]
    preds = ad.predict(raw, batch)
    for i, ex in enumerate(examples):
        alone = ad.encode(rows(model, ex))
        assert alone.inputs["input_ids"].shape[1] == last[i] + 1
        with torch.no_grad():
            one = ad.forward(alone)
        assert (raw[i, last[i]] - one[0, -1]).abs().max().item() < 1e-5
        assert ad.predict(one, alone)[0] == preds[i]


def test_bert_reads_the_answer_at_the_mask(tmp_path, spec_dir):
    tok = build_word_tokenizer(WORDS)
    build_tiny_model("bert", None, tmp_path, tokenizer=tok)
    net = load_hf_network("net", str(tmp_path), tmp_path, None, "cpu", None)
    assert net.extra["model_class"] == "masked_lm"
    ab, ba = AB.replace("a drink to", "a drink to [MASK] ."), BA.replace("a drink to", "a drink to [MASK] .")
    ir = write_spec(spec_dir, tmp_path, ab=ab, ba=ba, file="bert.cspec")
    ad = adapter_for(ir, net)
    batch = ad.encode(rows(ir.models["P"], ("Annabel", "John", "AB"), ("Mary", "Tom", "BA")))
    masks = [e.answer_pos for e in batch.meta["rows"]]
    assert masks == [15, 14]
    with torch.no_grad():
        raw = ad.forward(batch)
    cand = [tok.convert_tokens_to_ids(n) for n in ["Mary", "John", "Tom", "Anna"]]
    expected = [int(raw[i, masks[i], cand].argmax()) for i in range(2)]
    assert ad.predict(raw, batch).tolist() == expected
    # padding does not change a BERT row either (attention mask)
    alone = ad.encode(rows(ir.models["P"], ("Mary", "Tom", "BA")))
    with torch.no_grad():
        one = ad.forward(alone)
    n = one.shape[1]
    assert n == 16 and (raw[1, :n] - one[0]).abs().max().item() < 1e-5
    ir = write_spec(spec_dir, tmp_path, file="bert_nomask.cspec")
    with pytest.raises(CheckUsageError, match=r"must contain the mask token `\[MASK\]`"):
        adapter_for(ir, net)


# ───────────────────────── engine ─────────────────────────


def engine_pieces(ir, net):
    """What checking._run does before scoring (check Pos): the claim's run and its clean cache."""
    run = claim_run(ir, "Pos", net=net, batch=64)
    return run, run.clean()


def reference_patched(net, model, base: dict, source: dict, layer: int) -> np.ndarray:
    """Per pair, one at a time, with plain forward hooks: resid.post[layer] at the last
    token of the base := its value at the last token of the source; answer = argmax of
    the name tokens' logits at the last token."""
    tok, module = net.tokenizer, net.module
    names = model.domain("A").values
    cand = [tok(" " + n, add_special_tokens=False)["input_ids"][0] for n in names]
    block = module.transformer.h[layer]

    def text(row, i):
        a, b = names[row["A"][i]], names[row["B"][i]]
        order = model.domain("order").values[row["order"][i]]
        return (AB if order == "AB" else BA).format(A=a, B=b)

    def ids(t):
        return torch.tensor([tok(t)["input_ids"]])

    out = []
    for i in range(len(base["A"])):
        kept = {}

        def grab(mod, args, output, kept=kept):
            hidden = output[0] if isinstance(output, tuple) else output
            kept["v"] = hidden[0, -1].clone()

        def put(mod, args, output, kept=kept):
            hidden = output[0] if isinstance(output, tuple) else output
            hidden = hidden.clone()
            hidden[0, -1] = kept["v"]
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        with torch.no_grad():
            h = block.register_forward_hook(grab)
            module(ids(text(source, i)))
            h.remove()
            h = block.register_forward_hook(put)
            logits = module(ids(text(base, i))).logits
            h.remove()
        out.append(int(logits[0, -1, cand].argmax()))
    return np.asarray(out)


def test_engine_patched_predictions_match_plain_hooks(gpt2, tok_dir, spec_dir):
    # Annabel is two tokens: rows of one batch differ in length (right padding, per-row END)
    ir = write_spec(spec_dir, tok_dir, pairs=256, file="agree.cspec")
    result = run_checks(ir)[0]
    assert result.status in (PASSED, FAILED), result.reason
    assert result.claims and result.claims[0].sampled == 256
    p, cache = engine_pieces(ir, gpt2)
    patched = p.patched(cache)
    ref = reference_patched(gpt2, p.plan.model, p.claim.pairs.base, p.claim.pairs.sources[0], layer=1)
    assert len(patched) == 256
    assert (patched == ref).all(), np.flatnonzero(patched != ref)[:10]
    assert (patched != cache.preds[p.base]).any()  # the patch moves some outputs


def test_full_residual_replacement_reproduces_the_source(gpt2, tok_dir, spec_dir):
    # single-token names: every base/source pair has the same length under each order
    ir = write_spec(spec_dir, tok_dir, names=["Mary", "John", "Tom"], site="resid.post[0]", at="all",
                    pairs=64, file="full.cspec")
    p, cache = engine_pieces(ir, gpt2)
    patched = p.patched(cache)
    source_preds = cache.preds[p.sources[0]]
    assert (patched == source_preds).all()
    assert (cache.preds[p.base] != source_preds).any()  # not vacuous


def test_token_count_mismatch_between_base_and_source_names_the_example(gpt2, tok_dir, spec_dir):
    ir = write_spec(spec_dir, tok_dir, at="B2all", file="mismatch.cspec")
    model = ir.models["P"]
    check = ir.checks[0]
    plan = compile_check(ir, check, 4, 0)
    adapter = HFAdapter(gpt2, plan.network, plan.model, plan.output)
    engine = Engine(adapter, gpt2.module, resolve_family(gpt2.module), EngineOptions(batch_size=8))
    unique = rows(model, ("Mary", "Annabel", "AB"), ("Mary", "John", "AB"))
    bindings = plan.bindings()
    cache = engine.run_clean(unique, bindings)
    assert [tuple(a.shape) for a in cache.acts[bindings[0]]] == [(2, 32), (1, 32)]
    groups = [list(plan.alignment.variables["mover"])]
    with pytest.raises(CheckUsageError, match=r"covers 2 token\(s\) in base input \(A=Mary, B=Annabel, order=AB: "
                                              r"'When Mary and Annabel.*but 1 in source input \(A=Mary, B=John"):
        engine.run_patched(unique, cache, np.array([0]), [np.array([1])], groups)
    # pairs with equal counts patch fine, each within its own bucket
    out = engine.run_patched(unique, cache, np.array([0, 1, 1]), [np.array([0, 1, 1])], groups)
    assert out.tolist() == cache.preds[[0, 1, 1]].tolist()


# ───────────────────────── the IOI spec ─────────────────────────


def test_ioi_spec_is_skipped_without_gpt2_weights():
    results = run_checks(load(ROOT / "specs" / "ioi_gpt2.cspec"))
    assert [r.status for r in results] == [SKIPPED]
    assert "weights for `gpt2` not found locally" in results[0].reason


def test_ioi_spec_runs_end_to_end_on_a_tiny_gpt2(tmp_path):
    spec = ROOT / "specs" / "ioi_gpt2.cspec"
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "specs" / "data" / "ioi_names.txt", tmp_path / "data")
    names = (tmp_path / "data" / "ioi_names.txt").read_text().split()
    assert len(names) == 20
    tok = build_word_tokenizer("When and went to the store gave a drink".split() + names)
    build_tiny_model("gpt2", None, tmp_path / "tiny_gpt2", tokenizer=tok, n_layer=10)  # resid.post[9] exists
    text = spec.read_text()
    assert text.count('network gpt2 = hf "gpt2"') == 1
    (tmp_path / "ioi.cspec").write_text(text.replace('network gpt2 = hf "gpt2"', 'network gpt2 = hf "tiny_gpt2"'))
    [result] = run_checks(load(tmp_path / "ioi.cspec"))
    assert result.status in (PASSED, FAILED) and result.status != ERROR, result.reason
    assert result.pairs == 512 and result.unique_inputs > 0
    [claim] = result.claims
    assert claim.label == "{mover}" and claim.sampled == 512
    assert result.forward_passes["clean"] > 0 and result.forward_passes["patched"] > 0
    assert len(result.conditions) == 1 or result.reason


def test_special_tokens_count_as_positions_but_never_as_slot_tokens(gpt2, tok_dir, tmp_path, spec_dir):
    from transformers import AutoTokenizer

    build_word_tokenizer(WORDS, tmp_path, add_bos=True)
    bos_tok = AutoTokenizer.from_pretrained(str(tmp_path))  # the post-processor survives saving
    ir = write_spec(spec_dir, tok_dir)
    ad = adapter_for(ir, replace(gpt2, tokenizer=bos_tok))
    batch = ad.encode(rows(ir.models["P"], ("Annabel", "John", "AB")))
    assert toks(ad, batch, 0, [0, 1, 2]) == ["[BOS]", "When", "Anna"]
    slot_a = PositionSpec("slot", slot="A", occurrence=1, part="all")
    assert ad.positions_list(batch, binding(slot_a, PositionSpec("index", index=0), PositionSpec("last"))) \
        == [[2, 3, 0, 15]]


def test_a_tokenizer_that_appends_eos_is_refused_for_causal_lms(gpt2, tok_dir, spec_dir):
    from tokenizers import processors

    eos_tok = build_word_tokenizer(WORDS)
    eos_tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A [EOS]", special_tokens=[("[EOS]", eos_tok.eos_token_id)])
    ir = write_spec(spec_dir, tok_dir)
    ad = adapter_for(ir, replace(gpt2, tokenizer=eos_tok))
    with pytest.raises(CheckUsageError, match=r"appends the special token '\[EOS\]' after the prompt of example "
                                              r"\(A=Mary, B=John"):
        ad.encode(rows(ir.models["P"], ("Mary", "John", "AB")))
