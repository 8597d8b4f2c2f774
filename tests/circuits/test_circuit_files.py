"""Circuit files (EAP-IG / MIB JSON node/edge lists), spec <-> file round trips, and the
CPR/CMD faithfulness curve on the hand-built induction network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from causalspec.claims.runner import CheckOptions, NetworkCache
from causalspec.interop.circuit_files import (CircuitFileError, CircuitGraph, circuit_to_graph, full_graph,
                                      graph_from_json, graph_to_json, graph_to_spec, parse_edge, top_edges)
from causalspec.cli import main
from causalspec.compile.circuit_plan import EMBED, LOGITS, Arch, Node, parse_node_name, resolve_circuit
from causalspec.score.circuit_scores import area
from causalspec.semantics.analyse import load, load_text
from causalspec.testing.toy_circuits import build_induction_model, spec_header

TRUE_EDGES = {"input->a0.h0<q>", "input->a0.h0<k>", "input->a0.h0<v>", "input->a1.h0<q>", "input->a1.h0<k>",
              "input->a1.h0<v>", "a0.h0->a1.h0<k>", "a1.h0->logits", "input->logits"}
CIRCUITS = """
circuit EdgeK on toy for Induction.answer {
  group prev = head[0.0]
  group ind = head[1.0] @ END
  granularity edge
  edges { embed -> prev; embed -> ind; embed -> logits; prev -> ind.k; ind -> logits }
  ablate complement with mean over Ref
  metric logit_diff(B, C) @ END
  pairs 24
  expect faithfulness >= 0.9
}

circuit Node on toy for Induction.answer {
  group prev = head[0.0], mlp[0]
  group ind = attn[1] @ END
  ablate complement with mean over Ref
  metric logit_diff(B, C) @ END
  pairs 24
  expect faithfulness >= 0.9
}
"""


@pytest.fixture(scope="module")
def toy_spec(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("toyfiles")
    build_induction_model(d / "toy")
    spec = d / "c.cspec"
    spec.write_text(spec_header("toy", ref_pairs=24) + CIRCUITS)
    return spec


def test_node_and_edge_names():
    assert parse_node_name("a9.h9") == Node.attention(9, 9) and Node.attention(9, 9).name == "a9.h9"
    assert parse_node_name("m3") == Node.mlp(3) and str(Node.mlp(3)) == "mlp[3]"
    assert parse_node_name("input") == EMBED and parse_node_name("logits") == LOGITS
    e = parse_edge("a0.h1->a2.h3<q>")
    assert (e.src, e.dst, e.port) == (Node.attention(0, 1), Node.attention(2, 3), "q") and e.name == "a0.h1->a2.h3<q>"
    assert parse_edge("input->m0").name == "input->m0" and parse_edge("m11->logits").receiver == LOGITS
    for bad, why in (("a0.h1->a2.h3", "names its input"), ("m0->m1<q>", "only heads"), ("logits->m1", "end of"),
                     ("a1.h1->input", "start of"), ("x->m1", "not a node name"), ("a1.h1", "not an edge")):
        with pytest.raises(CircuitFileError, match=why):
            parse_edge(bad)


def test_reading_accepts_the_eap_ig_format_and_plain_lists():
    g = graph_from_json({"cfg": {"n_layers": 2}, "nodes": {"a0.h0": {"in_graph": True}, "m1": {"in_graph": False}},
                         "edges": {"a0.h0->logits": {"score": 0.5, "in_graph": True},
                                   "input->m1": {"score": -2, "in_graph": False}}})
    assert g.nodes == {"a0.h0": True, "m1": False}
    assert [e.name for e in g.in_graph_edges()] == ["a0.h0->logits"]
    assert sorted(s for _, s in g.scored_edges()) == [-2.0, 0.5]
    plain = graph_from_json({"nodes": ["a0.h0"], "edges": ["a0.h0->logits"]})
    assert plain.nodes == {"a0.h0": True} and [e.name for e in plain.in_graph_edges()] == ["a0.h0->logits"]
    with pytest.raises(CircuitFileError, match="not a number"):
        graph_from_json({"edges": {"a0.h0->logits": {"score": "high"}}})
    with pytest.raises(CircuitFileError, match="expected an object"):
        graph_from_json([1, 2])


def test_the_full_graph_has_mibs_edge_count():
    assert len(full_graph(Arch(12, 12))) == 32491  # GPT-2 small in MIB / EAP-IG
    toy = full_graph(Arch(2, 4))
    assert len(toy) == 110 and len({e.name for e in toy}) == 110
    assert {e.name for e in toy} >= TRUE_EDGES


def test_export_then_import_gives_back_the_circuit(toy_spec, tmp_path):
    ir = load(toy_spec)
    arch = Arch(2, 4, "gpt2", d_model=64)
    for name, want_edges in (("EdgeK", 9), ("Node", None)):
        circuit = ir.circuits[name]
        resolved = resolve_circuit(circuit, arch)
        g = circuit_to_graph(resolved, arch, name, circuit.granularity)
        doc = json.loads(json.dumps(graph_to_json(g)))
        assert doc["cfg"] == {"n_layers": 2, "n_heads": 4, "parallel_attn_mlp": False, "d_model": 64}
        back = graph_from_json(doc)
        if want_edges:
            assert {e.name for e in back.in_graph_edges()} == TRUE_EDGES
        text = graph_to_spec(back, "Back", "toy", "Induction.answer", "mean over Ref",
                             granularity=circuit.granularity)
        spec = load_text(spec_header(toy_spec.parent / "toy", 24) + text, base_dir=toy_spec.parent)
        again = resolve_circuit(spec.circuits["Back"], arch)
        assert set(again.nodes) == set(resolved.nodes)
        if want_edges:
            assert again.edges == resolved.edges
    # node circuits export what node-level ablation lets through: every forward edge among their nodes
    node = circuit_to_graph(resolve_circuit(ir.circuits["Node"], arch), arch)
    assert "a0.h0->a1.h3<k>" in {e.name for e in node.in_graph_edges()}
    assert "a1.h0->a1.h1<q>" not in {e.name for e in node.in_graph_edges()}  # same layer: no edge


def test_cli_export_import_and_refusing_bad_files(toy_spec, tmp_path, capsys):
    out = tmp_path / "edgek.json"
    assert main(["circuit", "export", str(toy_spec), "--circuit", "EdgeK", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["edges"]) == TRUE_EDGES and doc["causalspec"]["positions"] == {"a1.h0": ["END"]}
    assert main(["circuit", "export", str(toy_spec), "--circuit", "EdgeK", "-o", str(out)]) == 0  # ours: replaced
    capsys.readouterr()
    assert main(["circuit", "import", str(out), "--name", "Back", "--on", "toy", "--for", "Induction.answer"]) == 0
    text = capsys.readouterr().out
    # a file of ours comes back with its own groups and edges between them
    assert "group ind = head[1.0] @ END" in text and "prev -> ind.k" in text and "granularity edge" in text
    bad = tmp_path / "bad.json"
    bad.write_text('{"edges": ["a0.h0->a1.h0"]}')
    assert main(["circuit", "import", str(bad), "--name", "B", "--on", "toy", "--for", "Induction.answer"]) == 2
    assert "names its input" in capsys.readouterr().err
    assert main(["circuit", "export", str(toy_spec), "--circuit", "Nope"]) == 2
    mine = tmp_path / "user.json"
    mine.write_text("{}")
    assert main(["circuit", "export", str(toy_spec), "--circuit", "EdgeK", "-o", str(mine)]) == 2  # not ours


def test_top_edges_and_area():
    es = [(parse_edge(f"a0.h{i}->logits"), s) for i, s in enumerate([0.1, -3.0, 2.0, 0.5])]
    assert [e.name for e in top_edges(es, 0.5)] == ["a0.h1->logits", "a0.h2->logits"]
    assert len(top_edges(es, 0.001)) == 0 and len(top_edges(es, 1.0)) == 4  # MIB rounds down
    assert area([0.1, 0.5, 1.0], [1, 1, 1]) == pytest.approx(0.9)  # MIB does not divide by the range
    assert area([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5)


def test_cpr_and_cmd_of_a_scored_edge_list(toy_spec, tmp_path, capsys):
    from causalspec.claims.circuit import edge_curve

    rng = np.random.default_rng(0)
    g = CircuitGraph(cfg={"n_layers": 2, "n_heads": 4})
    for e in full_graph(Arch(2, 4)):
        g.edges[e] = (10 + float(rng.random()) if e.name in TRUE_EDGES else float(rng.random()), True)
    scored = g.scored_edges()
    ir = load(toy_spec)
    fractions = [0.05, 9 / 110, 0.5, 1.0]
    curve = edge_curve(ir, ir.circuits["Node"], scored, fractions, CheckOptions(pairs=16), NetworkCache())
    faith = [p["faithfulness"]["estimate"] for p in curve["points"]]
    assert [p["edges"] for p in curve["points"]] == [5, 9, 55, 110]  # int(fraction x 110 edges of the graph)
    assert abs(faith[0]) < 0.05  # the top 5 edges miss part of the circuit
    assert faith[1] == pytest.approx(1, abs=0.01)  # the 9 true edges: the whole circuit
    assert faith[3] == pytest.approx(1, abs=1e-4)  # every edge: the full model
    assert 0.5 < curve["cpr"] < 1.0 and 0 < curve["cmd"] < 0.5
    # MIB's integration (evaluate_area_under_curve, log_scale=False), written out here
    trapezoids = list(zip(fractions, fractions[1:], faith, faith[1:]))
    assert curve["cpr"] == pytest.approx(sum((x2 - x1) * (y1 + y2) / 2 for x1, x2, y1, y2 in trapezoids))
    assert curve["cmd"] == pytest.approx(sum((x2 - x1) * (abs(1 - y1) + abs(1 - y2)) / 2
                                             for x1, x2, y1, y2 in trapezoids))
    assert curve["rank"] == "absolute" and curve["edges_total"] == 110
    assert curve["forward_passes"]["clean"] == 1 and curve["forward_passes"]["knockout"] == 4  # one per fraction
    # the same through the CLI, with a JSON curve
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(graph_to_json(g)))
    out = tmp_path / "curve.json"
    code = main(["circuit", "cpr", str(toy_spec), "--circuit", "Node", "--scores", str(scores),
                 "--fractions", "0.05,0.5,1", "--pairs", "8", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "CPR (area under faithfulness" in text and "CMD" in text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "causalspec.circuit-curve/1" and len(doc["points"]) == 3
    with pytest.raises(SystemExit) as exit_:  # not ascending: argparse's usage error
        main(["circuit", "cpr", str(toy_spec), "--circuit", "Node", "--scores", str(scores), "--fractions", "0.5,0.1"])
    assert exit_.value.code == 2


def test_circuit_settings_are_validated():
    base = spec_header("toy") + """
circuit C on toy for Induction.answer {
  group g = head[0.0]
  ablate complement with zero
  SETTINGS
  expect faithfulness >= 0.5
}
"""
    from causalspec.diagnostics import SpecError

    ir = load_text(base.replace("SETTINGS", "pairs 12 seed 3 batch 4"))
    c = ir.circuits["C"]
    assert (c.prompts, c.seed, c.batch) == (12, 3, 4)
    assert load_text(base.replace("SETTINGS", "")).circuits["C"].prompts == 256
    for settings, msg in (("pool 8", "`pool` is a check setting"), ("pairs 0", "at least 1"),
                          ("seed 1 seed 2", "given twice")):
        with pytest.raises(SpecError) as err:
            load_text(base.replace("SETTINGS", settings))
        assert msg in str(err.value.diagnostics[0].message), settings


def test_cpr_rules_equal_a_reference_written_here():
    """MIB's rules, re-implemented in this test from their sources:
    * edge universe: every edge of the model's graph (MIB-circuit-track `evaluate_area_under_curve`:
      `n_scored_items = len(graph.edges)`; EAP-IG `Graph.from_model`: 32,491 edges for GPT-2 small),
      not the edges a file lists;
    * count: `int(pct * n)`, rounded down (same function);
    * ranking: top |score| (EAP-IG `Graph.apply_topn(n, absolute=True)`, its default) or top
      signed score (MIB `scripts/run_evaluation.py`: `absolute=args.absolute`, a store_true flag),
      then `Graph.prune`: a node stays only if it sends and receives an edge (the input always
      receives; the logits always stay);
    * area: sum over consecutive fractions of (x2 - x1) * (y1 + y2) / 2, x the fractions themselves
      (`log_scale=False`), not divided by their range 0.999."""
    from causalspec.compile.circuit_plan import prune_edges

    arch = Arch(2, 2)
    edges = full_graph(arch)
    total = len(edges)
    assert total == 46  # the forward edges of EAP-IG Graph.from_model for 2 layers x 2 heads
    rng = np.random.default_rng(1)
    scored = [(e, float(rng.normal())) for e in edges]
    listed = scored[:30]  # a file that scores only some edges: the universe is still the whole graph
    for rank in ("absolute", "signed"):
        for frac, subset in [(f, sub) for f in (0.001, 0.05, 0.1, 0.3, 0.5, 1.0) for sub in (scored, listed)]:
            want_k = min(len(subset), int(frac * total))
            order = (lambda es: -abs(es[1])) if rank == "absolute" else (lambda es: -es[1])
            ref = [e for e, _ in sorted(subset, key=lambda es: (order(es), es[0].name))][:want_k]
            assert top_edges(subset, frac, total, rank) == ref
            # reference prune on edge names
            alive_edges = {e.name: e for e in ref}
            while True:
                sends = {e.src for e in alive_edges.values()}
                receives = {e.dst for e in alive_edges.values()}
                alive = {n for n in sends if n == EMBED or n in receives}
                nxt = {k: e for k, e in alive_edges.items()
                       if e.src in alive and (e.dst == LOGITS or e.dst in alive)}
                if nxt.keys() == alive_edges.keys():
                    break
                alive_edges = nxt
            got = prune_edges(_receivers(ref))
            assert {(r, s) for r, ss in got.items() for s in ss} == {(e.receiver, e.src) for e in alive_edges.values()}
    assert len(top_edges(scored, 0.3, total)) == 13  # 0.3 x 46 = 13.8: down, not 14
    assert len(top_edges(listed, 0.5, total)) == 23 != int(0.5 * len(listed))  # of the graph, not of the file
    signed, absolute = top_edges(scored, 0.1, total, "signed"), top_edges(scored, 0.1, total)
    assert signed != absolute and all(s > 0 for e, s in scored if e in signed)
    xs, ys = [0.001, 0.01, 0.1, 1.0], [0.2, 0.5, 0.9, 1.0]
    ref_area = sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(3))
    assert area(xs, ys) == pytest.approx(ref_area) and area(xs, [1, 1, 1, 1]) == pytest.approx(0.999)
    assert len(full_graph(Arch(12, 12))) == 32491
    with pytest.raises(ValueError, match="rank must be"):
        top_edges(scored, 0.1, total, "abs")


def _receivers(edges):
    out: dict = {}
    for e in edges:
        out[e.receiver] = out.get(e.receiver, frozenset()) | {e.src}
    return out


def test_ioi_spec_export_import_export_is_identical(tmp_path):
    """specs/ioi_circuit_gpt2.cspec: the exported file imports (`--into` the spec) to a spec that
    parses, is fmt-clean and declares its positions by name, and exports to the identical file."""
    root = Path(__file__).resolve().parents[2]
    spec = root / "specs" / "ioi_circuit_gpt2.cspec"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ioi_names.txt").write_text((root / "specs" / "data" / "ioi_names.txt").read_text())
    first, second, imported = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "imp.cspec"
    size = ["--layers", "12", "--heads", "12"]
    assert main(["circuit", "export", str(spec), "--circuit", "IOICircuit", *size, "-o", str(first)]) == 0
    assert main(["circuit", "import", str(first), "--name", "IOICircuit", "--on", "gpt2", "--for", "IOI.answer",
                 "--granularity", "node", "--ablation", "mean over IOI_ABC", "--metric", "logit_diff(IO, S) @ END",
                 "--into", str(spec), "-o", str(imported)]) == 0
    text = imported.read_text()
    block = text[text.index("circuit IOICircuit"):]
    # the inline `S1 + 1` of the spec becomes a named position, declared in the network block
    assert "@ S1_next" in block and "slot(" not in block and "+" not in block and "  mlps kept\n" in block
    assert "  position S1_next = S1 + 1\n}" in text
    ir = load(imported)  # parses and validates
    assert str(ir.circuits["IOICircuit"].groups["previous_token"].positions[0]) == "slot(S, 1).last + 1"
    assert main(["fmt", "--check", str(imported)]) == 0
    assert main(["circuit", "export", str(imported), "--circuit", "IOICircuit", *size, "-o", str(second)]) == 0
    assert json.loads(first.read_text()) == json.loads(second.read_text())
    assert first.read_text() == second.read_text()


def test_several_positions_are_written_in_braces():
    g = CircuitGraph(nodes={"a0.h1": True}, extra={"positions": {"a0.h1": ["CPOS", "END"]}})
    g.edges[parse_edge("a0.h1->logits")] = (0.5, True)
    assert "group a0_h1 = head[0.1] @ {CPOS, END}" in graph_to_spec(g, "C", "n", "M.o")


def test_neuron_masks_are_refused_with_the_file_and_the_count():
    doc = {"nodes": {"m0": {"in_graph": True, "neurons": [True, False]}, "m1": {"in_graph": True, "neurons": [False]},
                     "a0.h0": {"in_graph": True, "neurons": [True, True]}}, "edges": {}}
    with pytest.raises(CircuitFileError, match=r"x.json: 2 node\(s\) have neuron-level masks"):
        graph_from_json(doc, "x.json")


def test_pt_circuit_files_as_eap_ig_writes_them(toy_spec, tmp_path):
    import torch

    from causalspec.interop.circuit_files import read_graph, read_pt

    pt, js = tmp_path / "c.pt", tmp_path / "c.json"
    assert main(["circuit", "export", str(toy_spec), "--circuit", "EdgeK", "-o", str(pt)]) == 0
    assert main(["circuit", "export", str(toy_spec), "--circuit", "EdgeK", "-o", str(js)]) == 0
    d = torch.load(str(pt), weights_only=True)
    # EAP-IG's Graph.to_pt keys, plus ours (a JSON string; EAP-IG's from_pt and MIB ignore it)
    assert sorted(d) == sorted(["cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph",
                                "causalspec"])
    n_fwd, n_bwd = 1 + 2 * (4 + 1), 2 * (3 * 4 + 1) + 1  # EAP-IG Graph.from_model
    assert tuple(d["edges_in_graph"].shape) == (n_fwd, n_bwd) and d["dst_nodes"][-1] == "logits"
    from_pt, from_json = read_graph(pt), read_graph(js)
    assert set(from_pt.in_graph_edges()) == set(from_json.in_graph_edges()) == {parse_edge(e) for e in TRUE_EDGES}
    assert len(from_pt.edges) == len(full_graph(Arch(2, 4)))  # every real edge, in the graph or not
    bad = tmp_path / "bad.pt"
    torch.save({"edges": [1, 2]}, str(bad))
    with pytest.raises(CircuitFileError, match="an EAP-IG / MIB .pt circuit has keys"):
        read_pt(bad)
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(b"not a torch file")
    with pytest.raises(CircuitFileError, match=r"weights_only=True"):
        read_pt(pickled)


def test_a_mib_file_imports_with_what_it_states_about_its_model_and_graph(tmp_path):
    """A MIB / EAP-IG file (no causalspec key) carries its `cfg` and its graph's size into the
    imported block as comments: the model it was built for stays visible next to the circuit."""
    from causalspec.syntax.parser import parse

    doc = {"cfg": {"n_layers": 2, "n_heads": 4, "parallel_attn_mlp": False, "d_model": 32},
           "nodes": {"input": {"in_graph": True}, "a0.h1": {"in_graph": True}, "a1.h2": {"in_graph": False},
                     "logits": {"in_graph": True}},
           "edges": {"input->a0.h1<q>": {"score": 0.5, "in_graph": True},
                     "a0.h1->logits": {"score": -1.25, "in_graph": True},
                     "a1.h2->logits": {"score": 0.01, "in_graph": False}}}
    block = graph_to_spec(graph_from_json(doc), "Imported", "n", "M.o")
    lines = block.splitlines()
    assert lines[1] == "  # the file's cfg: n_layers 2, n_heads 4, parallel_attn_mlp false, d_model 32"
    assert lines[2] == "  # in the file's graph: 2 of 3 edges, 3 of 4 nodes"
    spec = ('model M {\n  input a : bool\n  output o : bool = a\n}\n'
            'network n = hf "gpt2" { prompt "{a}" answer " {o}" }\n' + block)
    parse(spec, "imported.cspec")  # the comments keep the block valid
    # a file of ours gives back its own block, without these lines (export → import → export is exact)
    ours = CircuitGraph(cfg=dict(doc["cfg"]), nodes={"a0.h1": True}, extra={"groups": {"g": ["a0.h1"]}})
    assert "# the file's cfg" not in graph_to_spec(ours, "C", "n", "M.o", granularity="node")


def test_cpr_of_an_unscored_export_says_why_it_cannot_rank(toy_spec, tmp_path, capsys):
    """`circuit export` of a circuit whose edges carry no `: score` lists them as unscored; cpr
    on that file is a usage error (exit 2) that says so, before any network runs."""
    exported = tmp_path / "node.json"
    assert main(["circuit", "export", str(toy_spec), "--circuit", "Node", "--layers", "2", "--heads", "4",
                 "-o", str(exported)]) == 0
    capsys.readouterr()
    assert main(["circuit", "cpr", str(toy_spec), "--circuit", "Node", "--scores", str(exported)]) == 2
    err = capsys.readouterr().err
    assert "no edge has a score" in err and "unscored" in err and "EAP-IG" in err
