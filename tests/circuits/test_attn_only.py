"""causalspec.run.attn_only: TransformerLens's attention-only architecture as an HF model.

The reference below recomputes a HookedTransformer's forward pass from its own state dict
(per-head einsums in TransformerLens's weight layout, shortformer or standard positions,
LN / LNPre / no norm); the converted HF model must give the same logits, and a converted
folder must load through `hf "./folder"` and serve the circuit engine's sites."""

from __future__ import annotations

import json

import pytest
import torch

from causalspec.run.attn_only import AttnOnlyForCausalLM, convert_transformer_lens, main, register
from causalspec.run.families import ATTN_ONLY, resolve_family

ENDOFTEXT = "<|endoftext|>"


def tl_config(n_layers=2, n_heads=4, d_model=32, d_head=8, d_vocab=50, n_ctx=64, pos="shortformer", norm="LN"):
    return {"n_layers": n_layers, "n_heads": n_heads, "d_model": d_model, "d_head": d_head, "d_vocab": d_vocab,
            "n_ctx": n_ctx, "attn_only": True, "positional_embedding_type": pos, "normalization_type": norm,
            "eps": 1e-5}


def tl_state(cfg: dict, seed: int = 0, scale: float = 0.3) -> dict[str, torch.Tensor]:
    """A random HookedTransformer state dict (its key names and shapes)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * scale

    H, d, D, V = cfg["n_heads"], cfg["d_head"], cfg["d_model"], cfg["d_vocab"]
    s = {"embed.W_E": r(V, D), "pos_embed.W_pos": r(cfg["n_ctx"], D), "unembed.W_U": r(D, V), "unembed.b_U": r(V)}
    for L in range(cfg["n_layers"]):
        a = f"blocks.{L}.attn."
        for n in "QKV":
            s[a + f"W_{n}"], s[a + f"b_{n}"] = r(H, D, d), r(H, d)
        s[a + "W_O"], s[a + "b_O"] = r(H, d, D), r(D)
        if cfg["normalization_type"] == "LN":
            s[f"blocks.{L}.ln1.w"], s[f"blocks.{L}.ln1.b"] = 1 + r(D), r(D)
    if cfg["normalization_type"] == "LN":
        s["ln_final.w"], s["ln_final.b"] = 1 + r(D), r(D)
    return s


def reference_logits(cfg: dict, s: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """HookedTransformer's forward pass for an attn-only config, from its state dict."""
    def ln(x, w, b):
        if cfg["normalization_type"] is None:
            return x
        x = x - x.mean(-1, keepdim=True)
        x = x / (x.pow(2).mean(-1, keepdim=True) + cfg["eps"]).sqrt()
        return x * w + b if w is not None else x

    seq = tokens.shape[1]
    pos = s["pos_embed.W_pos"][:seq]
    resid = s["embed.W_E"][tokens]
    if cfg["positional_embedding_type"] == "standard":
        resid = resid + pos
    for L in range(cfg["n_layers"]):
        a = f"blocks.{L}.attn."
        w, b = s.get(f"blocks.{L}.ln1.w"), s.get(f"blocks.{L}.ln1.b")
        v_in = ln(resid, w, b)
        qk_in = ln(resid + pos, w, b) if cfg["positional_embedding_type"] == "shortformer" else v_in
        q = torch.einsum("bpm,hmd->bphd", qk_in, s[a + "W_Q"]) + s[a + "b_Q"]
        k = torch.einsum("bpm,hmd->bphd", qk_in, s[a + "W_K"]) + s[a + "b_K"]
        v = torch.einsum("bpm,hmd->bphd", v_in, s[a + "W_V"]) + s[a + "b_V"]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / cfg["d_head"] ** 0.5
        scores = scores.masked_fill(torch.triu(torch.ones(seq, seq, dtype=torch.bool), 1), float("-inf"))
        z = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)
        resid = resid + torch.einsum("bqhd,hdm->bqm", z, s[a + "W_O"]) + s[a + "b_O"]
    resid = ln(resid, s.get("ln_final.w"), s.get("ln_final.b"))
    return resid @ s["unembed.W_U"] + s["unembed.b_U"]


@pytest.mark.parametrize("pos", ["shortformer", "standard"])
@pytest.mark.parametrize("norm", ["LN", "LNPre", None])
def test_the_converted_model_computes_what_transformer_lens_computes(pos, norm):
    cfg = tl_config(pos=pos, norm=norm)
    state = tl_state(cfg)
    config, converted = convert_transformer_lens(cfg, state)
    model = AttnOnlyForCausalLM(config).eval()
    model.load_state_dict(converted, strict=True)
    tokens = torch.randint(0, cfg["d_vocab"], (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(input_ids=tokens).logits
    torch.testing.assert_close(got, reference_logits(cfg, state, tokens), atol=1e-4, rtol=1e-4)


def test_shortformer_positions_reach_queries_and_keys_only():
    """With shortformer positions a one-token prompt's logits do not depend on W_pos (the
    value path never sees positions, and a single key has softmax weight 1)."""
    cfg = tl_config()
    state = tl_state(cfg)
    other = dict(state, **{"pos_embed.W_pos": state["pos_embed.W_pos"] * 5})
    tokens = torch.tensor([[7]])
    outs = []
    for s in (state, other):
        config, converted = convert_transformer_lens(cfg, s)
        m = AttnOnlyForCausalLM(config).eval()
        m.load_state_dict(converted)
        with torch.no_grad():
            outs.append(m(input_ids=tokens).logits)
    torch.testing.assert_close(outs[0], outs[1])
    two = torch.tensor([[7, 3]])  # …but with two tokens the attention pattern does
    assert not torch.allclose(reference_logits(cfg, state, two), reference_logits(cfg, other, two))


def test_conversion_refuses_a_model_with_mlps():
    with pytest.raises(ValueError, match="has MLPs"):
        convert_transformer_lens({**tl_config(), "attn_only": False}, {})


def test_left_padding_is_refused():
    config, converted = convert_transformer_lens(tl_config(), tl_state(tl_config()))
    m = AttnOnlyForCausalLM(config)
    with pytest.raises(ValueError, match="right-padded"):
        m(input_ids=torch.tensor([[1, 2]]), attention_mask=torch.tensor([[0, 1]]))


def test_a_converted_folder_loads_through_auto_classes_and_is_the_attn_only_family(tmp_path):
    from transformers import AutoModelForCausalLM

    from causalspec.testing.tiny import build_word_tokenizer

    cfg = tl_config()
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    torch.save(tl_state(cfg), tmp_path / "model.pth")
    build_word_tokenizer(["a", "b"], tmp_path / "tok")
    assert main([str(tmp_path / "cfg.json"), str(tmp_path / "model.pth"), str(tmp_path / "tok"),
                 str(tmp_path / "out")]) == 0
    register()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert type(model) is AttnOnlyForCausalLM
    family = resolve_family(model)
    assert family.name == ATTN_ONLY.name == "attn-only"
    tokens = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=tokens).logits, reference_logits(cfg, tl_state(cfg), tokens),
                                   atol=1e-4, rtol=1e-4)


EDGE_SPEC = """
model Copy {
  domain Letter = enum { a, b, c, d }
  input A, B : Letter ~ uniform where A != B
  output answer : Letter = A
}

network tiny = hf "./attn-only" {
  prompt "then {A} {B} {A} {B}"
  answer " {answer}"
  position END = last
}

dataset Ref from Copy { pairs 8 seed 1 }

circuit Paths on tiny for Copy.answer {
  group first  = head[0.1]
  group second = head[1.2] @ END
  edges { embed -> first; first -> second.k; second -> logits }
  ablate complement with mean over Ref
  granularity GRANULARITY
  metric logit_diff(A, B) @ END
  pairs 8 seed 0
  expect faithfulness >= 0.5
}
"""


def _edge_spec(tmp_path, pos: str, granularity: str):
    from causalspec.run.attn_only import save_converted
    from causalspec.testing.tiny import build_word_tokenizer

    tok = build_word_tokenizer(["then", "a", "b", "c", "d"])
    cfg = tl_config(d_vocab=len(tok), pos=pos)
    config, converted = convert_transformer_lens(cfg, tl_state(cfg))
    save_converted(config, converted, tmp_path / "attn-only", tok)
    spec = tmp_path / "paths.cspec"
    spec.write_text(EDGE_SPEC.replace("GRANULARITY", granularity))
    return spec


def test_edge_granularity_on_a_local_shortformer_folder_is_a_located_error(tmp_path):
    from causalspec.errors import SpecError
    from causalspec.semantics.analyse import load

    spec = _edge_spec(tmp_path, "shortformer", "edge")
    with pytest.raises(SpecError) as info:
        load(spec)
    [d] = [d for d in info.value.diagnostics if d.code == "E0720"]
    line = spec.read_text().splitlines().index("  granularity edge") + 1
    assert (d.span.line, d.span.column) == (line, 3)
    assert "network `tiny` (attn-only" in d.message and "granularity node" in d.help


def test_edge_granularity_on_a_shortformer_model_is_a_check_error_naming_the_model_and_the_fix(tmp_path):
    """What analysis cannot see (a hub id served from the cache, a folder changed after
    analysis) is refused when the network is loaded: here the folder says `standard` while the
    spec is analysed and `shortformer` when it runs."""
    from causalspec.claims.runner import CheckOptions, run_checks
    from causalspec.score.results import ERROR
    from causalspec.semantics.analyse import load

    spec = _edge_spec(tmp_path, "standard", "edge")
    ir = load(spec)
    config = tmp_path / "attn-only" / "config.json"
    config.write_text(config.read_text().replace('"standard"', '"shortformer"'))
    [r] = run_checks(ir, CheckOptions(pairs=8, batch=8))
    assert r.status == ERROR
    assert "circuit `Paths` on network `tiny` ('./attn-only')" in r.reason
    assert "shortformer positions" in r.reason and "use `granularity node`" in r.reason
    assert not r.forward_passes  # refused before any forward pass


@pytest.mark.parametrize(("pos", "granularity"), [("standard", "edge"), ("shortformer", "node")])
def test_edge_granularity_is_refused_only_where_positions_bypass_the_residual_stream(tmp_path, pos, granularity):
    from causalspec.claims.runner import CheckOptions, run_checks
    from causalspec.score.results import FAILED, PASSED
    from causalspec.semantics.analyse import load

    [r] = run_checks(load(_edge_spec(tmp_path, pos, granularity)), CheckOptions(pairs=8, batch=8))
    assert r.status in (PASSED, FAILED), r.reason


def test_edge_granularity_problem_names_shortformer_tl_attn_only_configs_only():
    from causalspec.run.attn_only import edge_granularity_problem

    short, _ = convert_transformer_lens(tl_config(pos="shortformer"), tl_state(tl_config()))
    std, _ = convert_transformer_lens(tl_config(pos="standard"), tl_state(tl_config()))
    assert "shortformer" in edge_granularity_problem(short)
    assert edge_granularity_problem(std) is None
    assert edge_granularity_problem(type("GPT2Config", (), {"model_type": "gpt2"})()) is None


def test_every_head_of_an_attention_only_model_under_mib_is_a_vacuous_circuit(tmp_path):
    """`convention mib` ablates MLPs, but an attention-only model has none (its `mlp` outputs 0):
    a circuit of every head at every position is the whole model, and its faithfulness is 1 by
    construction. Before, the absent MLPs were counted and the circuit was judged partial."""
    from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
    from causalspec.semantics.analyse import load

    spec = _edge_spec(tmp_path, "standard", "node")
    text = spec.read_text()
    body = text[text.index("circuit Paths"):]
    whole = (body.replace("circuit Paths", "circuit Whole")
             .replace("  group first  = head[0.1]\n  group second = head[1.2] @ END\n"
                      "  edges { embed -> first; first -> second.k; second -> logits }\n",
                      "  group all = attn[0], attn[1]\n  convention mib\n")
             .replace("with mean over Ref", "with zero"))
    spec.write_text(text[:text.index("circuit Paths")] + whole)
    res = {r.name: r for r in run_checks(load(spec), CheckOptions(), NetworkCache())}
    r = res["Whole"]
    assert r.circuit is not None and "every attention head" in r.circuit.vacuous, (r.status, r.reason)
    assert r.status == "failed" and "by construction" in r.reason
