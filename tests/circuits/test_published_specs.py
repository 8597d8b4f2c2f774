"""The published circuit claims of specs/ (issue 14, item 5): each spec states the published
circuit, is skipped with the documented reason without weights, and runs end to end on a
random-init twin of its architecture (numbers mean nothing there; the run, the conventions
and the ablations it reports must be complete). specs/ioi_circuit_gpt2.cspec has its own
module, tests/circuits/test_ioi_circuit_spec.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.compile.circuit_plan import Arch, resolve_circuit
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED
from causalspec.semantics.analyse import load

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
NO_GPT2 = "weights for `gpt2` not found locally"


def _gpt2_twin(tmp_path: Path, spec: str, words: list[str], data: list[str], **config) -> Path:
    """`spec` copied next to a random-init GPT-2 folder ./gpt2 (word tokenizer over `words` and
    the lines of the data files), with `hf "gpt2"` pointed at it."""
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    (tmp_path / "data").mkdir()
    vocab = list(words)
    for name in data:
        shutil.copy(SPECS / "data" / name, tmp_path / "data")
        vocab += (tmp_path / "data" / name).read_text().split()
    tok = build_word_tokenizer(list(dict.fromkeys(vocab)))
    build_tiny_model("gpt2", config.pop("vocab_size", None), tmp_path / "gpt2", seed=0, tokenizer=tok,
                     initializer_range=0.02, **config)
    text = (SPECS / spec).read_text()
    assert text.count('network gpt2 = hf "gpt2"') == 1
    out = tmp_path / spec
    out.write_text(text.replace('hf "gpt2"', 'hf "./gpt2"').replace("pairs 256\n  seed 1", "pairs 16\n  seed 1"))
    return out


def _complete(r, prompts: int):
    """A circuit result that ran end to end: finite means, a faithfulness score, a verdict."""
    assert r.kind == "circuit"
    assert r.status in (PASSED, FAILED) and r.status != ERROR, r.reason
    c = r.circuit
    assert c is not None and c.prompts == prompts
    for key in ("full model", "circuit", "everything ablated"):
        assert np.isfinite(c.means[key].estimate), key
    assert c.scores[0].name == "faithfulness"
    return c


# ─────────────── IOI under mean, resample and zero ablation (Miller et al. 2024) ───────────────

IOI_SPEC = "ioi_ablations_gpt2.cspec"
IOI_WORDS = "When and went to the store gave a drink".split()
IOI_HEADS = {
    "name_movers": ["a9.h9", "a10.h0", "a9.h6"],
    "backup_movers": ["a10.h10", "a10.h6", "a10.h2", "a10.h1", "a11.h2", "a9.h7", "a9.h0", "a11.h9"],
    "negative_movers": ["a10.h7", "a11.h10"],
    "s_inhibition": ["a7.h3", "a7.h9", "a8.h6", "a8.h10"],
    "induction": ["a5.h5", "a5.h8", "a5.h9", "a6.h9"],
    "duplicate_token": ["a0.h1", "a0.h10", "a3.h0"],
    "previous_token": ["a2.h2", "a4.h11"],
}
IOI_ABLATIONS = {"IOIMean": ("mean", "IOI_ABC"), "IOIResample": ("resample", "IOI_ABC"), "IOIZero": ("zero", None)}


def test_ioi_ablations_spec_states_one_circuit_under_three_ablations():
    ir = load(SPECS / IOI_SPEC)
    assert list(ir.circuits) == list(IOI_ABLATIONS)
    for name, (kind, dataset) in IOI_ABLATIONS.items():
        c = ir.circuits[name]
        resolved = resolve_circuit(c, Arch(12, 12, "gpt2"))
        assert {g: [m.node.name for m in ms] for g, ms in resolved.groups.items()} == IOI_HEADS
        assert (c.ablation.kind, c.ablation.dataset) == (kind, dataset)
        assert (c.metric.name, [a.value for a in c.metric.args]) == ("logit_diff", ["IO", "S"])
        [cond] = c.conditions
        assert (cond.metric, cond.op, cond.threshold) == ("faithfulness", ">=", 0.87)
        assert resolved.universe == frozenset({"head"})  # mlps kept: Wang et al.'s convention


def test_ioi_ablations_spec_is_skipped_without_gpt2_weights():
    results = run_checks(load(SPECS / IOI_SPEC))
    assert [r.status for r in results] == [SKIPPED] * 3
    assert all(NO_GPT2 in r.reason for r in results)


def test_ioi_ablations_spec_runs_end_to_end_on_a_random_gpt2_small_shape(tmp_path):
    spec = _gpt2_twin(tmp_path, IOI_SPEC, IOI_WORDS, ["ioi_names.txt"], n_layer=12, n_head=12, n_embd=48)
    results = run_checks(load(spec), CheckOptions(pairs=16, batch=16))
    assert [r.name for r in results] == list(IOI_ABLATIONS)
    faith = {}
    for r in results:
        c = _complete(r, 16)
        assert [g["name"] for g in c.groups] == list(IOI_HEADS)
        assert "the 118 of 144 attention heads outside the circuit" in c.universe
        faith[r.name] = c.scores[0].value.estimate
    assert "mean over dataset `IOI_ABC` (16 prompts" in results[0].circuit.ablation
    assert "resample" in results[1].circuit.ablation and "IOI_ABC" in results[1].circuit.ablation
    assert "zero" in results[2].circuit.ablation
    # one circuit, three ablations, three different numbers (Miller et al.'s point)
    assert len({round(v, 9) for v in faith.values()}) == 3, faith


# ─────────────── greater-than in GPT-2 small (Hanna, Liu, Variengien 2023) ───────────────

GT_SPEC = "greater_than_gpt2.cspec"
GT_WORDS = "endoftext The lasted from the year to 17".split()
GT_GROUPS = {
    "mid_heads": ["a5.h1", "a5.h5", "a6.h9", "a7.h10", "a8.h8", "a8.h11", "a9.h1"],
    "late_mlps": ["m8", "m9", "m10", "m11"],
    "early_heads": ["a0.h1", "a0.h3", "a0.h5"],
    "early_mlps": ["m0", "m1", "m2", "m3"],
}


def _digit_pairs(tmp_path: Path, spec: Path) -> None:
    """GPT-2 splits "1732" into "17" + "32": the twin's word tokenizer does too (digit pairs isolated)."""
    from tokenizers import Regex, pre_tokenizers
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "gpt2")
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated"),
        pre_tokenizers.Split(Regex(r"\d\d"), "isolated")])
    tok.save_pretrained(tmp_path / "gpt2")
    assert tok.tokenize("from the year 1732 to") == ["from", "the", "year", "17", "32", "to"]


def test_greater_than_spec_states_the_published_circuit():
    ir = load(SPECS / GT_SPEC)
    c = ir.circuits["GreaterThanCircuit"]
    resolved = resolve_circuit(c, Arch(12, 12, "gpt2"))
    assert {g: [m.node.name for m in ms] for g, ms in resolved.groups.items()} == GT_GROUPS
    assert resolved.universe == frozenset({"head", "mlp"})  # heads and MLPs outside are ablated
    assert (c.ablation.kind, c.ablation.dataset) == ("resample", "GT01")
    # the authors' prompts start with "<|endoftext|> " (dataset.py, eos=True)
    assert ir.datasets["GT01"].prompt.template.text == ("<|endoftext|> The {noun} lasted from the year 1701 "
                                                         "to the year 17")
    assert ir.networks["gpt2"].encoding.prompt.template.text.startswith("<|endoftext|> The {noun} lasted")
    assert (c.metric.name, [a.value for a in c.metric.args]) == ("prob_greater", ["YY"])
    [cond] = c.conditions
    # UNVERIFIED 89.5% (the spec's comments say what was searched); the authors' PD(N) is 0.817
    assert (cond.metric, cond.op, cond.threshold) == ("faithfulness", ">=", 0.895)
    assert len((SPECS / "data" / "greater_than_nouns.txt").read_text().split()) == 120


def test_greater_than_spec_is_skipped_without_gpt2_weights():
    [r] = run_checks(load(SPECS / GT_SPEC))
    assert r.status == SKIPPED and NO_GPT2 in r.reason


def test_greater_than_spec_runs_end_to_end_on_a_random_gpt2_small_shape(tmp_path):
    years = (SPECS / "data" / "years_00_99.txt").read_text().split()
    spec = _gpt2_twin(tmp_path, GT_SPEC, GT_WORDS + years, ["greater_than_nouns.txt", "years_00_99.txt"],
                      n_layer=12, n_head=12, n_embd=48)
    _digit_pairs(tmp_path, spec)
    [r] = run_checks(load(spec), CheckOptions(pairs=16, batch=16))
    c = _complete(r, 16)
    assert [g["name"] for g in c.groups] == list(GT_GROUPS)
    assert c.metric == "prob_greater(YY) @ END"
    assert "resample" in c.ablation and "GT01" in c.ablation
    # a probability difference lies in [-1, 1]
    for key in ("full model", "circuit", "everything ablated"):
        assert -1.0 <= c.means[key].estimate <= 1.0
    [cond] = r.conditions
    assert cond.text == "faithfulness >= 0.895"
    # m(N) is Hanna et al.'s probability difference, computed here independently from the logits
    assert c.means["full model"].estimate == pytest.approx(_probability_difference(tmp_path, spec, 16), abs=1e-5)


def _probability_difference(tmp_path: Path, spec: Path, n: int) -> float:
    """Mean over the circuit's prompts of sum p(y > YY) − sum p(y <= YY) over the tokens 00..99."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from causalspec.compile.circuit_plan import compile_circuit

    ir = load(spec)
    plan = compile_circuit(ir, ir.circuits["GreaterThanCircuit"], n, None)
    model = plan.model
    nouns = [str(v) for v in model.domain("noun").values]
    years = [str(v) for v in model.domain("YY").values]
    assert years == [f"{i:02d}" for i in range(100)]
    tok = AutoTokenizer.from_pretrained(tmp_path / "gpt2")
    net = AutoModelForCausalLM.from_pretrained(tmp_path / "gpt2").eval()
    year_ids = tok.convert_tokens_to_ids(years)
    pds = []
    for noun, yy in zip(plan.rows["noun"], plan.rows["YY"]):
        ids = tok(f"<|endoftext|> The {nouns[noun]} lasted from the year 17{years[yy]} to the year 17",
                  return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(net(**ids).logits[0, -1].double(), -1)[year_ids]
        pds.append(float(probs[yy + 1:].sum() - probs[:yy + 1].sum()))
    return sum(pds) / len(pds)


# ─────────────── induction heads in a 2-layer attention-only model (ARENA 1.2) ───────────────

IND_SPEC = "induction_attn_only_2l.cspec"


def _attn_only_twin(tmp_path: Path, spec: str, folder: str, words: list[str], data: list[str], **tl) -> Path:
    """`spec` next to a random-init attention-only model converted from a TransformerLens-layout
    state dict (the converter a user with real weights runs), with the network pointed at it."""
    from causalspec.run.attn_only import convert_transformer_lens, save_converted
    from causalspec.testing.tiny import build_word_tokenizer

    (tmp_path / "data").mkdir()
    vocab = list(words)
    for name in data:
        shutil.copy(SPECS / "data" / name, tmp_path / "data")
        vocab += (tmp_path / "data" / name).read_text().split()
    tok = build_word_tokenizer(list(dict.fromkeys(vocab)))
    cfg = {"d_vocab": len(tok), "n_ctx": 128, "attn_only": True, **tl}
    config, state = convert_transformer_lens(cfg, _random_tl_state(cfg))
    save_converted(config, state, tmp_path / folder, tok)
    text = (SPECS / spec).read_text()
    assert text.count(f'hf "{folder}"') == 1
    out = tmp_path / spec
    out.write_text(text.replace(f'hf "{folder}"', f'hf "./{folder}"').replace("pairs 256\n  seed 1",
                                                                               "pairs 16\n  seed 1"))
    return out


def _random_tl_state(cfg: dict) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    H, d, D, V = cfg["n_heads"], cfg["d_head"], cfg["d_model"], cfg["d_vocab"]
    s = {"embed.W_E": torch.randn(V, D, generator=g), "pos_embed.W_pos": torch.randn(cfg["n_ctx"], D, generator=g),
         "unembed.W_U": torch.randn(D, V, generator=g) * 0.3}
    for L in range(cfg["n_layers"]):
        for n in "QKV":
            s[f"blocks.{L}.attn.W_{n}"] = torch.randn(H, D, d, generator=g) * 0.3
            s[f"blocks.{L}.attn.b_{n}"] = torch.zeros(H, d)
        s[f"blocks.{L}.attn.W_O"] = torch.randn(H, d, D, generator=g) * 0.3
        s[f"blocks.{L}.attn.b_O"] = torch.zeros(D)
    return s


def test_induction_spec_states_the_arena_heads():
    ir = load(SPECS / IND_SPEC)
    c = ir.circuits["InductionCircuit"]
    resolved = resolve_circuit(c, Arch(2, 12, "attn-only"))
    assert {g: [m.node.name for m in ms] for g, ms in resolved.groups.items()} == {
        "previous_token": ["a0.h7"], "induction": ["a1.h4", "a1.h10"]}
    assert (c.ablation.kind, c.ablation.dataset) == ("mean", "Random")


def test_induction_spec_is_skipped_without_weights():
    [r] = run_checks(load(SPECS / IND_SPEC))
    assert r.status == SKIPPED and "weights for `attn-only-2l-half` not found locally" in r.reason


def test_induction_spec_runs_end_to_end_on_a_random_attn_only_2l_twin(tmp_path):
    """ARENA's shape (2 layers x 12 heads, no norm, shortformer positions) at width 48."""
    spec = _attn_only_twin(tmp_path, IND_SPEC, "attn-only-2l-half", ["endoftext"], ["common_words.txt"],
                           n_layers=2, n_heads=12, d_model=48, d_head=4, normalization_type=None,
                           positional_embedding_type="shortformer")
    [r] = run_checks(load(spec), CheckOptions(pairs=16, batch=16))
    c = _complete(r, 16)
    assert [g["name"] for g in c.groups] == ["previous_token", "induction"]
    assert "the 21 of 24 attention heads outside the circuit" in c.universe
    assert "mean over dataset `Random` (16 prompts" in c.ablation
    assert c.metric == "prob @ END"
    for key in ("full model", "circuit", "everything ablated"):
        assert 0.0 <= c.means[key].estimate <= 1.0


# ─────────────── the docstring circuit in attn-only-4l (Heimersheim & Janiak 2023) ───────────────

DOC_SPEC = "docstring_attn_only_4l.cspec"
DOC_WORDS = ["endoftext", "def", "self", "param"]
DOC_GROUPS = {  # auto-circuit's `docstring_node_based_official_edges`, quoted in the spec
    "arg_movers": (["a3.h0", "a3.h6"], ["param_3"]),
    "induction": (["a1.h4"], ["B_comma"]),
    "position_head": (["a2.h0"], ["C_def"]),
    "previous_token": (["a0.h5"], ["B_def", "C_def", "B_doc"]),
    "doc_induction": (["a1.h2"], ["A_doc", "B_doc"]),
    "doc_helper": (["a0.h2"], ["B_doc"]),
    "param_helper": (["a0.h4"], ["param_3"]),
    "extras": (["a1.h0", "a0.h1", "a2.h3"], ["all"]),
}
# TransformerLens's attn-only-4l, as its model properties table lists it (standard positions, LN)
ATTN_ONLY_4L = dict(n_layers=4, n_heads=8, d_model=512, d_head=64, normalization_type="LN",
                    positional_embedding_type="standard")


def test_docstring_spec_states_the_published_circuit():
    ir = load(SPECS / DOC_SPEC)
    c = ir.circuits["DocstringCircuit"]
    resolved = resolve_circuit(c, Arch(4, 8, "attn-only"))
    assert {g: [m.node.name for m in ms] for g, ms in resolved.groups.items()} == {
        g: heads for g, (heads, _) in DOC_GROUPS.items()}
    for g, (_, positions) in DOC_GROUPS.items():
        assert [p.name or p.kind for p in c.groups[g].positions] == positions, g
    assert resolved.universe == frozenset({"head"})  # no MLPs exist
    assert (c.ablation.kind, c.ablation.dataset) == ("resample", "DocRandom")
    # ACDC's docstring metric: the correct parameter against the best of the others
    assert (c.metric.name, [a.value for a in c.metric.args]) == ("logit_diff", ["C", "A", "B", "P1", "P2", "S"])
    [cond] = c.conditions
    assert (cond.metric, cond.op, cond.threshold) == ("faithfulness", ">=", 0.5)
    assert len((SPECS / "data" / "docstring_names.txt").read_text().split()) == 111  # ACDC's variable_names
    assert len((SPECS / "data" / "docstring_words.txt").read_text().split()) == 687  # its single-token nouns


def test_docstring_spec_is_skipped_without_weights():
    [r] = run_checks(load(SPECS / DOC_SPEC))
    assert r.status == SKIPPED and "weights for `attn-only-4l` not found locally" in r.reason


def test_docstring_spec_runs_end_to_end_on_a_random_attn_only_4l_twin(tmp_path):
    """attn-only-4l's shape (4 layers x 8 heads, d_model 512, LayerNorm, standard positions)."""
    spec = _attn_only_twin(tmp_path, DOC_SPEC, "attn-only-4l", DOC_WORDS,
                           ["docstring_names.txt", "docstring_words.txt"], **ATTN_ONLY_4L)
    config = json.loads((tmp_path / "attn-only-4l" / "config.json").read_text())
    assert (config["model_type"], config["positional_embedding_type"]) == ("tl_attn_only", "standard")
    [r] = run_checks(load(spec), CheckOptions(pairs=16, batch=16))
    c = _complete(r, 16)
    assert [g["name"] for g in c.groups] == list(DOC_GROUPS)
    assert "the 21 of 32 attention heads outside the circuit" in c.universe
    assert "resample" in c.ablation and "DocRandom" in c.ablation
    assert c.metric == "logit_diff(C, A, B, P1, P2, S) @ param_3"
    [cond] = r.conditions
    assert cond.text == "faithfulness >= 0.5"
    # m(N) is ACDC's docstring metric, computed here independently from the logits
    assert c.means["full model"].estimate == pytest.approx(_docstring_metric(tmp_path, spec, 16), abs=1e-4)


def _docstring_metric(tmp_path: Path, spec: Path, n: int) -> float:
    """Mean over the circuit's prompts of logit(C) − max(logit(A), logit(B), logit(P1), logit(P2),
    logit(S)) at the last token, the prompt written out by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from causalspec.compile.circuit_plan import compile_circuit

    ir = load(spec)
    plan = compile_circuit(ir, ir.circuits["DocstringCircuit"], n, None)
    names = [str(v) for v in plan.model.domain("C").values]
    words = [str(v) for v in plan.model.domain("W1").values]
    tok = AutoTokenizer.from_pretrained(tmp_path / "attn-only-4l")
    net = AutoModelForCausalLM.from_pretrained(tmp_path / "attn-only-4l").eval()
    out = []
    for i in range(n):
        v = {k: names[plan.rows[k][i]] for k in ("M", "P1", "P2", "A", "B", "C", "S")}
        v.update({k: words[plan.rows[k][i]] for k in ("W1", "W2", "W3", "D1", "D2", "D3", "D4")})
        text = (f"<|endoftext|>\ndef {v['M']}(self, {v['P1']}, {v['P2']}, {v['A']}, {v['B']}, {v['C']}, {v['S']}):\n"
                f'    """{v["W1"]} {v["W2"]} {v["W3"]}\n\n    :param {v["A"]}: {v["D1"]} {v["D2"]}\n'
                f'    :param {v["B"]}: {v["D3"]} {v["D4"]}\n    :param')
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            logits = net(**ids).logits[0, -1]
        tid = {k: tok(" " + v[k], add_special_tokens=False)["input_ids"][0] for k in ("A", "B", "C", "P1", "P2", "S")}
        out.append(float(logits[tid["C"]] - max(logits[tid[k]] for k in ("A", "B", "P1", "P2", "S"))))
    return sum(out) / len(out)
