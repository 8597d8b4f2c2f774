"""Path patching against an independent two-run splice, on tiny random models of each family.

Circuit: a = head[0.1], b = head[1.2], c = mlp[1]; edges {a -> b.k; b -> logits}; zero
ablation. Expected by the definition: b's keys see head 0.1 (and nothing else of the
ablated layer 0), b's queries and values see none of layer 0, and the logits see b but
neither head 0.1 nor mlp[1]. The reference builds exactly that from plain site hooks: run 1
keeps only head 0.1 in layer 0 and records b's k; run 2 ablates all of layer 0, splices that
k into b, keeps only b in layer 1 and zeroes mlp[1].
"""

from __future__ import annotations

import pytest
import torch

from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
from causalspec.compile.circuit_plan import compile_circuit
from causalspec.run.families import resolve_family
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.loading import load_hf_network
from causalspec.semantics.site_kinds import SiteAddress
from causalspec.semantics.analyse import load
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

NAMES = ["Mary", "John", "Tom", "Anna"]
FAMILIES = {
    "gpt2": ("gpt2", {}),
    "neox-parallel": ("neox", {"use_parallel_residual": True}),
    "neox-sequential": ("neox", {"use_parallel_residual": False}),
    "llama": ("llama", {"num_key_value_heads": 4}),
    # grouped-query attention: query heads 2 and 3 read key/value head 1, so b's `.k` input is
    # key/value head 1's (head 1.3 shares it, but is ablated: what it reads does not matter)
    "llama-gqa": ("llama", {"num_key_value_heads": 2}),
}
SPEC = """
model IOI {{
  domain Name = enum {{{names}}}
  input IO, S : Name ~ uniform where IO != S
  output answer : Name = IO
}}
network net = hf "{path}" {{
  prompt "When {{IO}} and {{S}} went to the store, {{S}} gave a drink to"
  answer " {{answer}}"
}}
circuit K on net for IOI.answer {{
  group a = head[0.1]
  group b = {b}
  group c = mlp[1]
  edges {{ a -> b.k; b -> logits }}
  granularity edge
  ablate complement with zero
  metric logit_diff(IO, S)
  pairs 6
  expect faithfulness >= 0.5
}}
"""


CASES = [(f, (2,)) for f in FAMILIES] + [("llama-gqa", (2, 3))]


@pytest.mark.parametrize(("family", "b_heads"), CASES, ids=[f"{f}-b{''.join(map(str, b))}" for f, b in CASES])
def test_path_patching_matches_a_splice(tmp_path, family, b_heads):
    """`b_heads` (2, 3) on GQA: both query heads of key/value head 1 are in the circuit, with the
    same edges, so their shared keys see head 0.1 alone."""
    kind, extra = FAMILIES[family]
    tok = build_word_tokenizer("When and went to the store gave a drink".split() + NAMES)
    build_tiny_model(kind, None, tmp_path / "m", tokenizer=tok, seed=1, initializer_range=0.3, **extra)
    spec = tmp_path / "k.cspec"
    spec.write_text(SPEC.format(names=", ".join(NAMES), path=tmp_path / "m",
                               b=", ".join(f"head[1.{h}]" for h in b_heads)))
    ir = load(spec)
    [r] = run_checks(ir, CheckOptions(), NetworkCache())
    assert r.status in ("passed", "failed"), r.reason
    got = r.circuit.means["circuit"].estimate

    plan = compile_circuit(ir, ir.circuits["K"])
    net = load_hf_network("net", str(tmp_path / "m"), tmp_path, None, "cpu", "float32")
    model, adapter = net.module, HFAdapter(net, plan.network, plan.model, plan.output)
    fam = resolve_family(model)
    batch = adapter.encode(plan.rows)
    hd = model.config.hidden_size // model.config.num_attention_heads
    heads = model.config.num_attention_heads

    def keep_only(layer: int, keep: set[int]):
        inner = fam.locate(model, SiteAddress("head.z", layer, 0)).inner

        def edit(z):
            z = z.clone()
            for h in range(heads):
                if h not in keep:
                    z[..., h * hd:(h + 1) * hd] = 0
            return z

        return inner.install_write(edit)

    def zero_mlp(layer: int):
        return fam.locate(model, SiteAddress("mlp.out", layer)).install_write(torch.zeros_like)

    kv_group = heads // (getattr(model.config, "num_key_value_heads", None) or heads)
    k_site = fam.locate(model, SiteAddress("head.k", 1, 2 // kv_group))  # head[L.H].k: H is a key/value head
    captured = {}
    handles = keep_only(0, {1}) + zero_mlp(0) + k_site.install_read(lambda k: captured.setdefault("k", k.clone()))
    try:
        with torch.no_grad():
            adapter.forward(batch)
    finally:
        for h in handles:
            h.remove()
    env = plan.model.run(plan.rows)
    dom = plan.model.domain("answer")
    io, s = adapter.candidates[dom.codes(env["IO"])], adapter.candidates[dom.codes(env["S"])]
    last = torch.tensor([e.answer_pos for e in batch.meta["rows"]])
    rows = torch.arange(batch.size)

    def run2(splice: bool) -> float:
        handles = keep_only(0, set()) + zero_mlp(0) + keep_only(1, set(b_heads)) + zero_mlp(1)
        if splice:
            handles += k_site.install_write(lambda k: captured["k"])
        try:
            with torch.no_grad():
                logits = adapter.forward(batch)
        finally:
            for h in handles:
                h.remove()
        at = logits[rows, last]
        return float((at[rows, io] - at[rows, s]).mean())

    want = run2(splice=True)
    assert got == pytest.approx(want, abs=1e-4), family
    # the splice is not vacuous: with b's keys blind to head 0.1 the number differs
    assert abs(run2(splice=False) - want) > 1e-3


def test_gqa_heads_sharing_a_key_value_head_with_different_key_edges_are_refused(tmp_path):
    """Heads 1.2 and 1.3 read key/value head 1; only 1.2's keys have an edge from head 0.1: no one
    key tensor can give each its own input, so the check is an error that says so (and how to fix
    it), not a number."""
    tok = build_word_tokenizer("When and went to the store gave a drink".split() + NAMES)
    build_tiny_model("llama", None, tmp_path / "m", tokenizer=tok, seed=1, initializer_range=0.3,
                     num_key_value_heads=2)
    text = SPEC.format(names=", ".join(NAMES), path=tmp_path / "m", b="head[1.2]").replace(
        "  group c = mlp[1]\n", "  group c = mlp[1]\n  group d = head[1.3]\n").replace(
        "b -> logits", "b -> logits; d -> logits")
    spec = tmp_path / "k.cspec"
    spec.write_text(text)
    [r] = run_checks(load(spec), CheckOptions(), NetworkCache())
    assert r.status == "error"
    assert "share key/value head 1" in r.reason and "`.k`" in r.reason and "granularity node" in r.reason


def test_gqa_heads_sharing_a_key_value_head_in_two_groups_with_equal_edges_equal_one_group(tmp_path):
    """Heads 1.2 and 1.3 (one key/value head) in two groups, each with an edge from head 0.1 into
    its keys: the same path patching as one group holding both (the shared keys see head 0.1)."""
    tok = build_word_tokenizer("When and went to the store gave a drink".split() + NAMES)
    build_tiny_model("llama", None, tmp_path / "m", tokenizer=tok, seed=1, initializer_range=0.3,
                     num_key_value_heads=2)
    one = SPEC.format(names=", ".join(NAMES), path=tmp_path / "m", b="head[1.2], head[1.3]")
    two = SPEC.format(names=", ".join(NAMES), path=tmp_path / "m", b="head[1.2]").replace(
        "  group c = mlp[1]\n", "  group c = mlp[1]\n  group d = head[1.3]\n").replace(
        "edges { a -> b.k; b -> logits }", "edges { a -> b.k; a -> d.k; b -> logits; d -> logits }")
    assert "d.k" in two
    got = []
    for text in (one, two):
        spec = tmp_path / "k.cspec"
        spec.write_text(text)
        [r] = run_checks(load(spec), CheckOptions(), NetworkCache())
        assert r.status in ("passed", "failed"), r.reason
        got.append(r.circuit.means["circuit"].estimate)
    assert got[0] == pytest.approx(got[1], abs=1e-6)
