"""`convention mib`: a MIB-format circuit scored here equals an independent MIB-style evaluation.

The reference below is written in this test, from EAP-IG's `evaluate_graph` semantics
(hannamw/EAP-IG, src/eap/evaluate.py and src/eap/graph.py), on a manual GPT-2 forward pass
built from the model's weights (no causalspec hook or engine code):

* the graph's forward nodes are `input` (the token embedding: EAP-IG's InputNode reads
  `hook_embed`, so the position embedding is never ablated), every head's result
  (``z_h @ W_O[h]``, without the attention bias b_O) and every MLP's output;
* every receiver (a head's q, k or v input, an MLP's input, the logits) reads the sum over
  its upstream forward nodes of the node's output in this run where the edge is in the
  graph, and of the node's ablated output where it is not (EAP-IG adds ``corrupted - clean``
  for every edge outside the graph), plus what no node owns (position embedding, b_O);
* zero ablation: the ablated output is 0; mean ablation: its per-position mean over the
  reference prompts (EAP-IG's `mean-positional`);
* edges out of nodes that receive no edge are pruned first (EAP-IG `Graph.prune`, which
  `evaluate_graph` calls): here `a0.h3->logits` (a0.h3 receives nothing).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
from causalspec.claims.circuit import prepare
from causalspec.interop.circuit_files import graph_from_json, graph_to_spec
from causalspec.score.results import ERROR
from causalspec.semantics.analyse import load
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer
from causalspec.testing.toy_circuits import FILLER, NAMES, spec_header

LAYERS, HEADS = 2, 4
CIRCUIT_EDGES = [
    "input->a0.h1<q>", "input->a0.h1<k>", "input->a0.h1<v>", "input->m0", "a0.h1->m0", "a0.h1->a1.h2<v>",
    "m0->a1.h2<q>", "input->a1.h2<k>", "a1.h2->logits", "m0->logits", "a0.h1->logits",
    "a0.h3->logits",  # dangling: a0.h3 receives no edge, so EAP-IG's prune drops it
]
PRUNED = {"a0.h3->logits"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("mib")
    tok = build_word_tokenizer([FILLER, *NAMES])
    build_tiny_model("gpt2", None, d / "tiny", seed=3, tokenizer=tok, n_layer=LAYERS, n_head=HEADS)
    return d


def mib_file(path: Path) -> Path:
    nodes = {"input": {"in_graph": True}, "logits": {"in_graph": True}}
    for L in range(LAYERS):
        for h in range(HEADS):
            nodes[f"a{L}.h{h}"] = {"in_graph": f"a{L}.h{h}" in " ".join(CIRCUIT_EDGES)}
        nodes[f"m{L}"] = {"in_graph": f"m{L}" in " ".join(CIRCUIT_EDGES)}
    doc = {"cfg": {"n_layers": LAYERS, "n_heads": HEADS, "parallel_attn_mlp": False, "d_model": 32},
           "nodes": nodes, "edges": {e: {"score": 1.0, "in_graph": True} for e in CIRCUIT_EDGES}}
    path.write_text(json.dumps(doc))
    return path


def spec_for(tiny: Path, ablation: str) -> Path:
    graph = graph_from_json(json.loads(mib_file(tiny / "circuit.json").read_text()))
    body = graph_to_spec(graph, "Imported", "toy", "Induction.answer", ablation, "logit_diff(B, C) @ END",
                         "faithfulness >= 0.0")
    assert "  convention mib\n" in body  # a MIB file imports under the MIB convention
    spec = tiny / f"c_{ablation.split()[0]}.cspec"
    spec.write_text(spec_header(tiny / "tiny", ref_pairs=16) + body.replace("  expect", "  pairs 12\n  expect"))
    return spec


# ───────────────────────── the independent reference ─────────────────────────

def upstream(src: str, dst: str) -> bool:
    """Whether forward node `src` feeds receiver `dst` (`a1.h2<q>`, `m0`, `logits`) in GPT-2."""
    if src == "input" or dst == "logits":
        return True
    s_layer = int(src[1:].split(".")[0])
    d_layer = int(dst[1:].split(".")[0].split("<")[0])
    if dst.startswith("a"):
        return s_layer < d_layer
    return s_layer < d_layer or (s_layer == d_layer and src.startswith("a"))


def mib_forward(model, ids: torch.Tensor, in_graph: set[str], ablated: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of the circuit `in_graph` (edge names), everything else carrying `ablated`."""
    tr = model.transformer
    b, seq = ids.shape
    hd = tr.config.n_embd // HEADS
    out: dict[str, torch.Tensor] = {"input": tr.wte(ids)}  # [b, seq, d]
    const = tr.wpe(torch.arange(seq))[None]  # [1, seq, d]: position embedding, never ablated

    def read(receiver: str, biases: int) -> torch.Tensor:
        x = const + sum(tr.h[i].attn.c_proj.bias for i in range(biases))
        for src, act in out.items():
            if upstream(src, receiver):
                x = x + (act if f"{src}->{receiver}" in in_graph else ablated[src])
        return x

    mask = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    for L, block in enumerate(tr.h):
        w, bias = block.attn.c_attn.weight, block.attn.c_attn.bias  # [d, 3d], Conv1D: x @ w + b
        d = w.shape[0]
        for h in range(HEADS):
            cols = slice(h * hd, (h + 1) * hd)
            qkv = {}
            for i, port in enumerate("qkv"):
                y = block.ln_1(read(f"a{L}.h{h}<{port}>", L)) @ w[:, i * d:(i + 1) * d] + bias[i * d:(i + 1) * d]
                qkv[port] = y[..., cols]  # [b, seq, hd]
            scores = qkv["q"] @ qkv["k"].transpose(-1, -2) / math.sqrt(hd)
            attn = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
            z = attn @ qkv["v"]  # [b, seq, hd]
            out[f"a{L}.h{h}"] = z @ block.attn.c_proj.weight[cols]  # the head's result, no b_O
        out[f"m{L}"] = block.mlp(block.ln_2(read(f"m{L}", L + 1)))
    return model.lm_head(tr.ln_f(read("logits", LAYERS)))


def full_graph_edges() -> set[str]:
    srcs = ["input", *(f"a{L}.h{h}" for L in range(LAYERS) for h in range(HEADS)), *(f"m{L}" for L in range(LAYERS))]
    dsts = [*(f"a{L}.h{h}<{p}>" for L in range(LAYERS) for h in range(HEADS) for p in "qkv"),
            *(f"m{L}" for L in range(LAYERS)), "logits"]
    return {f"{s}->{t}" for s in srcs for t in dsts if s != t.split("<")[0] and upstream(s, t)}


def reference_means(tiny: Path, spec: Path, ablation: str) -> dict[str, float]:
    ir = load(spec)
    circuit = ir.circuits["Imported"]
    options = CheckOptions(pairs=12)
    plan, engine, _, _, _ = prepare(ir, circuit, options, NetworkCache())
    model = engine.module
    adapter = engine.adapter
    batch = adapter.encode(plan.rows)
    ids = batch.inputs["input_ids"]
    assert bool(batch.inputs["attention_mask"].all())  # one length: no padding
    full = full_graph_edges()
    with torch.no_grad():
        if ablation == "zero":
            nodes = ["input", *(f"a{L}.h{h}" for L in range(LAYERS) for h in range(HEADS)),
                     *(f"m{L}" for L in range(LAYERS))]
            ablated = {n: torch.zeros(()) for n in nodes}
        else:  # per-position means of every node's clean output over the reference prompts
            ref_ids = adapter.encode(plan.reference.rows).inputs["input_ids"]
            captured: dict[str, torch.Tensor] = {}
            mib_forward_capture(model, ref_ids, captured)
            ablated = {n: v.mean(0, keepdim=True) for n, v in captured.items()}
        # the metric: logit_diff(B, C) at the last token
        env = plan.model.run(plan.rows)
        domain = plan.model.domain("answer")
        b_ids = adapter.candidates.numpy()[domain.codes(env["B"])]
        c_ids = adapter.candidates.numpy()[domain.codes(env["C"])]

        def metric(logits):
            last = logits[:, -1]
            r = torch.arange(len(last))
            return float((last[r, b_ids] - last[r, c_ids]).mean())

        circuit_edges = set(CIRCUIT_EDGES) - PRUNED
        return {"full model": metric(mib_forward(model, ids, full, ablated)),
                "circuit": metric(mib_forward(model, ids, circuit_edges, ablated)),
                "everything ablated": metric(mib_forward(model, ids, set(), ablated))}


def mib_forward_capture(model, ids, captured):
    """A clean pass recording each forward node's output (for the per-position means)."""
    tr = model.transformer
    seq = ids.shape[1]
    hd = tr.config.n_embd // HEADS
    x = tr.wte(ids) + tr.wpe(torch.arange(seq))[None]
    captured["input"] = tr.wte(ids)
    for L, block in enumerate(tr.h):
        h_in = block.ln_1(x)
        q, k, v = (h_in @ block.attn.c_attn.weight + block.attn.c_attn.bias).split(tr.config.n_embd, dim=-1)
        mask = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
        total = 0
        for h in range(HEADS):
            cols = slice(h * hd, (h + 1) * hd)
            s = q[..., cols] @ k[..., cols].transpose(-1, -2) / math.sqrt(hd)
            z = torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ v[..., cols]
            captured[f"a{L}.h{h}"] = z @ block.attn.c_proj.weight[cols]
            total = total + captured[f"a{L}.h{h}"]
        x = x + total + block.attn.c_proj.bias
        captured[f"m{L}"] = block.mlp(block.ln_2(x))
        x = x + captured[f"m{L}"]


@pytest.mark.parametrize("ablation", ["zero", "mean over Ref"])
def test_a_mib_circuit_scored_here_equals_an_independent_mib_evaluation(tiny, ablation):
    spec = spec_for(tiny, ablation)
    want = reference_means(tiny, spec, ablation.split()[0])
    [r] = run_checks(load(spec), CheckOptions(pairs=12))
    assert r.status != ERROR, r.reason
    got = {k: v.estimate for k, v in r.circuit.means.items()}
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-4), key
    assert want["circuit"] != pytest.approx(want["full model"], abs=1e-3)  # the circuit is not the whole model
    faith = (want["circuit"] - want["everything ablated"]) / (want["full model"] - want["everything ablated"])
    assert r.circuit.score("faithfulness").value.estimate == pytest.approx(faith, abs=1e-4)
    assert r.circuit.convention["name"] == "mib" and "token embedding only" in r.circuit.convention["text"]
    assert any("1 dangling node-level edge(s) pruned" in n for n in r.notes)


def test_the_default_convention_differs_where_mib_ablates(tiny):
    """The same circuit without `convention mib`: MLP 1 and the unnamed input edges become wires,
    and zero ablation of the input removes the position embedding too: other numbers."""
    spec = spec_for(tiny, "zero")
    text = spec.read_text().replace("  convention mib\n", "  mlps kept\n").replace("  group m0 = mlp[0]\n", "")
    text = "\n".join(line for line in text.splitlines() if "m0" not in line) + "\n"
    other = spec.with_name("default.cspec")
    other.write_text(text)
    [mib] = run_checks(load(spec), CheckOptions(pairs=12))
    [mine] = run_checks(load(other), CheckOptions(pairs=12))
    assert mine.circuit.convention["mlps"] == "kept" and mine.circuit.convention["name"] == "causalspec"
    assert mine.circuit.means["circuit"].estimate != pytest.approx(mib.circuit.means["circuit"].estimate, abs=1e-3)


def eap_ig_pt(path: Path) -> Path:
    """The same circuit as EAP-IG's `Graph.to_pt` lays it out, written here with torch.save
    (not with causalspec's writer): forward nodes `input, a0.h0.., m0, ...`, receivers
    `a0.h0<q>.. a0.h0<k>.. a0.h0<v>.., m0, ..., logits`, [src, dst] score and in-graph tensors."""
    src = ["input"] + [n for L in range(LAYERS) for n in [*(f"a{L}.h{h}" for h in range(HEADS)), f"m{L}"]]
    dst = [n for L in range(LAYERS) for n in [*(f"a{L}.h{h}<{p}>" for p in "qkv" for h in range(HEADS)), f"m{L}"]]
    dst.append("logits")
    scores = torch.zeros((len(src), len(dst)))
    inside = torch.zeros((len(src), len(dst)), dtype=torch.bool)
    for i, e in enumerate(CIRCUIT_EDGES):
        s, d = e.split("->")
        scores[src.index(s), dst.index(d)] = 0.5 + i  # real scores: the import must not care
        inside[src.index(s), dst.index(d)] = True
    nodes = torch.tensor([n == "input" or n in " ".join(CIRCUIT_EDGES) for n in src])
    torch.save({"cfg": {"n_layers": LAYERS, "n_heads": HEADS, "parallel_attn_mlp": False, "d_model": 32},
                "src_nodes": src, "dst_nodes": dst, "edges_scores": scores, "edges_in_graph": inside,
                "nodes_in_graph": nodes}, str(path))
    return path


def test_a_mib_pt_file_imported_by_the_cli_scores_the_same(tiny):
    """The user's path: `causalspec circuit import FILE.pt --into SPEC`, then `check`."""
    from causalspec.cli import main

    base = tiny / "base.cspec"
    base.write_text(spec_header(tiny / "tiny", ref_pairs=16))
    spec = tiny / "from_pt.cspec"
    assert main(["circuit", "import", str(eap_ig_pt(tiny / "circuit.pt")), "--name", "Imported", "--on", "toy",
                 "--for", "Induction.answer", "--metric", "logit_diff(B, C) @ END", "--expect",
                 "faithfulness >= 0.0", "--into", str(base), "-o", str(spec)]) == 0
    text = spec.read_text()
    assert "  convention mib\n" in text and "a1_h2 -> logits : score 8.5" in text
    spec.write_text(text.replace("  expect", "  pairs 12\n  expect"))
    want = reference_means(tiny, spec, "zero")
    [r] = run_checks(load(spec), CheckOptions(pairs=12))
    assert r.status != ERROR, r.reason
    for key in want:
        assert r.circuit.means[key].estimate == pytest.approx(want[key], abs=1e-4), key
