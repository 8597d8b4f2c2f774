"""Lossless circuit-file round trips: spec -> file (JSON or EAP-IG .pt) -> `circuit import
--into` -> file gives the identical bytes; edge scores, node positions (as named positions
declared in the network block), groups and the convention survive; neuron masks are refused
with the file and the count. No network runs here: export takes --layers/--heads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from causalspec.cli import main
from causalspec.compile.circuit_plan import Arch, CircuitPlanError, resolve_circuit
from causalspec.files import is_ours
from causalspec.interop.circuit_files import (CircuitFileError, CircuitGraph, full_graph, graph_to_json, parse_edge,
                                              read_graph, write_pt)
from causalspec.semantics.analyse import load, load_text
from causalspec.syntax.parser import parse
from causalspec.syntax.printer import print_spec
from causalspec.testing.toy_circuits import spec_header

SIZE = ["--layers", "2", "--heads", "4"]
SCORED = """
circuit Scored on toy for Induction.answer {
  group prev = head[0.0] @ SECOND_next
  group ind = head[1.0] @ {END, 2}
  group late = mlp[1]
  edges {
    embed -> prev : score 0.1
    prev -> ind.k : score -2.5e-07
    ind -> late
    late -> logits : score 3
    ind -> logits : score 0.333
  }
  granularity edge
  convention mib
  ablate complement with mean over Ref
  metric logit_diff(B, C) @ END
  expect faithfulness >= 0.9
}
"""


def _spec(tmp_path: Path, circuits: str = SCORED, extra_positions: str = "") -> Path:
    """The toy's header (its network is never loaded here), a position the circuit reaches
    through an inline offset, and `circuits`."""
    header = spec_header("toy").replace(
        "  position END = last\n", "  position END = last\n  position SECOND = slot(B, 1)\n" + extra_positions)
    spec = tmp_path / "c.cspec"
    spec.write_text(header + circuits.replace("@ SECOND_next", "@ SECOND + 1"))
    return spec


def _import(file: Path, into: Path, out: Path, name: str, *flags: str) -> None:
    assert main(["circuit", "import", str(file), "--name", name, "--on", "toy", "--for", "Induction.answer",
                 "--ablation", "mean over Ref", "--metric", "logit_diff(B, C) @ END", *flags, "--into", str(into),
                 "-o", str(out)]) == 0


@pytest.mark.parametrize("suffix", [".json", ".pt"])
def test_scored_edge_circuit_export_import_export_is_byte_identical(tmp_path, suffix, capsys):
    spec = _spec(tmp_path)
    first, second, imported = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}", tmp_path / "imported.cspec"
    assert main(["circuit", "export", str(spec), "--circuit", "Scored", *SIZE, "-o", str(first)]) == 0
    graph = read_graph(first)
    scores = {e.name: s for e, (s, inside) in graph.edges.items() if inside}
    if suffix == ".json":  # the spec's scores, exactly; the unscored edge is not given one
        assert scores["input->a0.h0<q>"] == 0.1 and scores["a0.h0->a1.h0<k>"] == -2.5e-07
        assert scores["a1.h0->m1"] is None and scores["m1->logits"] == 3.0
        doc = json.loads(first.read_text())
        assert doc["edges"]["a1.h0->m1"]["score"] == 1.0 and doc["causalspec"]["unscored"] == ["a1.h0->m1"]
    else:  # float32, as EAP-IG's tensors hold them
        assert scores["input->a0.h0<q>"] == pytest.approx(0.1, rel=1e-7) and scores["a1.h0->m1"] is None
    assert main(["fmt", str(spec)]) == 0  # a canonical spec: the import must keep it so
    _import(first, spec, imported, "Scored", "--granularity", "edge")
    text = imported.read_text()
    block = text[text.index("circuit Scored"):]
    shown = "-2.5e-07" if suffix == ".json" else repr(float(__import__("numpy").float32(-2.5e-07)))
    # a file of ours: its own groups and the edges between them come back, scores included
    assert f"prev -> ind.k : score {shown}" in block and re.search(r"ind -> late *\n", block)
    assert "position SECOND_next = SECOND + 1" in text  # declared in the network block ...
    assert "@ SECOND_next" in block and "+" not in block.split("edges")[0]  # ... and no inline expression
    assert "group ind = head[1.0] @ {END, 2}" in block and "group prev = head[0.0] @ SECOND_next" in block
    load(imported)  # parses and analyses
    assert main(["fmt", "--check", str(imported)]) == 0
    capsys.readouterr()
    assert main(["circuit", "export", str(imported), "--circuit", "Scored", *SIZE, "-o", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()


def test_ioi_spec_round_trips_through_pt_with_its_positions_groups_and_convention(tmp_path):
    root = Path(__file__).resolve().parents[2]
    spec = tmp_path / "ioi.cspec"
    spec.write_text((root / "specs" / "ioi_circuit_gpt2.cspec").read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ioi_names.txt").write_text((root / "specs" / "data" / "ioi_names.txt").read_text())
    first, second, imported = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "imp.cspec"
    size = ["--layers", "12", "--heads", "12"]
    assert main(["circuit", "export", str(spec), "--circuit", "IOICircuit", *size, "-o", str(first)]) == 0
    g = read_graph(first)
    assert g.extra["positions"]["a2.h2"] == ["S1_next"] and g.extra["positions"]["a9.h9"] == ["END"]
    assert g.extra["position_defs"] == {"END": "last", "S1": "slot(S, 1).last", "S1_next": "S1 + 1",
                                        "S2": "slot(S, 2).last"}
    assert g.extra["convention"] == ["mlps kept"] and "previous_token" in g.extra["groups"]
    assert main(["circuit", "import", str(first), "--name", "IOICircuit", "--on", "gpt2", "--for", "IOI.answer",
                 "--granularity", "node", "--ablation", "mean over IOI_ABC", "--metric", "logit_diff(IO, S) @ END",
                 "--into", str(spec), "-o", str(imported)]) == 0
    ir = load(imported)
    assert ir.networks["gpt2"].encoding.positions["S1_next"].base.name == "S1"
    assert [str(p) for p in ir.circuits["IOICircuit"].groups["previous_token"].positions] == ["slot(S, 1).last + 1"]
    assert ir.circuits["IOICircuit"].convention.mlps == "kept"
    assert main(["circuit", "export", str(imported), "--circuit", "IOICircuit", *size, "-o", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()


def test_a_published_file_keeps_its_scores_and_in_graph_edges(tmp_path):
    """A file as EAP-IG writes it (every edge of the graph scored, some in the graph): the
    import keeps each in-graph edge's score, and the export gives the same in-graph edges and
    scores back (the out-of-graph edges' scores belong to the attribution, not the circuit)."""
    arch = Arch(2, 4)
    edges = full_graph(arch)
    g = CircuitGraph(cfg={"n_layers": 2, "n_heads": 4, "parallel_attn_mlp": False, "d_model": 64})
    g.nodes = {"input": True, "a0.h0": True, "a1.h0": True, "logits": True}
    keep = {"input->a0.h0<q>", "a0.h0->a1.h0<k>", "a1.h0->logits", "input->a1.h0<v>"}
    for i, e in enumerate(edges):
        g.edges[e] = ((i - 50) / 7.0, e.name in keep)
    src = tmp_path / "published.json"
    doc = graph_to_json(g)
    del doc["causalspec"], doc["schema"], doc["tool"]  # not one of ours
    src.write_text(json.dumps(doc))
    spec = _spec(tmp_path, circuits="")
    imported, out = tmp_path / "imp.cspec", tmp_path / "out.json"
    _import(src, spec, imported, "Published", "--granularity", "edge")
    assert "convention mib" in imported.read_text()  # the publisher's convention
    assert main(["circuit", "export", str(imported), "--circuit", "Published", *SIZE, "-o", str(out)]) == 0
    back = read_graph(out)
    want = {e.name: s for e, (s, inside) in g.edges.items() if inside}
    assert {e.name: s for e, (s, inside) in back.edges.items() if inside} == want
    assert "unscored" not in json.loads(out.read_text())["causalspec"]


def test_node_import_says_it_drops_edge_scores(tmp_path, capsys):
    g = CircuitGraph(nodes={"a0.h0": True})
    g.edges[parse_edge("a0.h0->logits")] = (0.5, True)
    src = tmp_path / "g.json"
    src.write_text(json.dumps(graph_to_json(g)))
    assert main(["circuit", "import", str(src), "--name", "N", "--on", "toy", "--for", "Induction.answer",
                 "--granularity", "node"]) == 0
    assert "1 edge score(s) of the file are not kept" in capsys.readouterr().out


def test_into_refuses_a_position_name_that_means_something_else(tmp_path, capsys):
    spec = _spec(tmp_path)
    out = tmp_path / "a.json"
    assert main(["circuit", "export", str(spec), "--circuit", "Scored", *SIZE, "-o", str(out)]) == 0
    clash = _spec(tmp_path, extra_positions="  position SECOND_next = SECOND + 2\n")
    capsys.readouterr()
    assert main(["circuit", "import", str(out), "--name", "Scored", "--on", "toy", "--for", "Induction.answer",
                 "--into", str(clash)]) == 2
    err = capsys.readouterr().err
    assert "declares position `SECOND_next` as `SECOND + 2`" in err and "means `SECOND + 1`" in err
    assert main(["circuit", "import", str(out), "--name", "Scored", "--on", "nope", "--for", "Induction.answer",
                 "--into", str(clash)]) == 2
    assert "no network `nope`" in capsys.readouterr().err


def test_import_without_into_lists_the_declarations_it_needs(tmp_path, capsys):
    spec = _spec(tmp_path)
    out = tmp_path / "a.json"
    assert main(["circuit", "export", str(spec), "--circuit", "Scored", *SIZE, "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["circuit", "import", str(out), "--name", "S", "--on", "toy", "--for", "Induction.answer"]) == 0
    text = capsys.readouterr().out
    assert "#   position SECOND_next = SECOND + 1\n" in text and "@ SECOND_next" in text


def test_edge_scores_parse_print_and_resolve():
    text = spec_header("toy") + """
circuit C on toy for Induction.answer {
  group score = head[0.0]
  group b = head[1.0], head[1.1]
  edges {
    score -> b.k : score 1e-05
    b -> logits : score -0.0
    score -> logits
  }
  granularity edge
  ablate complement with zero
  expect faithfulness >= 0.5
}
"""
    ast = parse(text)
    assert parse(print_spec(ast)) == ast  # the printer round-trips scores (and a group named `score`)
    circuit = load_text(text).circuits["C"]
    assert [e.score for e in circuit.edges] == [1e-05, -0.0, None]
    resolved = resolve_circuit(circuit, Arch(2, 4))
    from causalspec.compile.circuit_plan import Node

    assert resolved.scores[((Node.attention(1, 1), "k"), Node.attention(0, 0))] == 1e-05  # each node edge
    clash = text.replace("    score -> logits\n", "    score -> b.k : score 2\n")
    with pytest.raises(Exception, match="declared twice"):  # same edge twice: E0706
        load_text(clash)
    two = text.replace("group b = head[1.0], head[1.1]", "group b = head[1.0]\n  group c = head[1.1]").replace(
        "    score -> logits\n", "    score -> c : score 2\n")
    assert resolve_circuit(load_text(two).circuits["C"], Arch(2, 4)).scores
    # two spec edges that reach the same node edge (b.k is part of b) with different scores
    conflict = text.replace("    score -> logits\n", "    score -> b : score 2\n")
    with pytest.raises(CircuitPlanError, match=r"two scores \(1e-05 and 2.0\)"):
        resolve_circuit(load_text(conflict).circuits["C"], Arch(2, 4))


def test_pt_files_are_recognised_as_ours_and_neuron_masks_refused(tmp_path):
    import torch

    g = CircuitGraph(cfg={"n_layers": 1, "n_heads": 1}, nodes={"input": True, "a0.h0": True, "logits": True})
    g.edges[parse_edge("a0.h0->logits")] = (0.25, True)
    ours = write_pt(g, tmp_path / "g.pt")
    assert is_ours(ours) and write_pt(g, ours) == ours  # a re-export may replace its own file
    foreign = tmp_path / "f.pt"
    d = torch.load(str(ours), weights_only=True)
    del d["causalspec"]
    torch.save(d, str(foreign))
    assert not is_ours(foreign)
    with pytest.raises(Exception, match="not written by causalspec|not ours|exists"):
        write_pt(g, foreign)
    assert read_graph(foreign).edges[parse_edge("a0.h0->logits")] == (0.25, True)  # read as EAP-IG's
    masked = tmp_path / "masked.pt"
    d["neurons_in_graph"] = torch.ones((3, 4), dtype=torch.bool)
    d["neurons_in_graph"][1, 2] = False
    d["neurons_in_graph"][2, 0] = False
    torch.save(d, str(masked))
    with pytest.raises(CircuitFileError, match=r"masked.pt: 2 node\(s\) have neuron-level masks"):
        read_graph(masked)
    d["neurons_in_graph"][:] = True  # every neuron in: whole nodes, nothing lost
    torch.save(d, str(masked))
    assert read_graph(masked).in_graph_edges() == [parse_edge("a0.h0->logits")]


def test_an_edited_file_of_ours_comes_back_one_group_per_node(tmp_path, capsys):
    """The group edges in our key are used only while they mean exactly the file's edges and
    scores; after an edit the node-level edges are the truth."""
    spec = _spec(tmp_path)
    out = tmp_path / "a.json"
    assert main(["circuit", "export", str(spec), "--circuit", "Scored", *SIZE, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    for edit in ("score", "drop"):
        edited = json.loads(json.dumps(doc))
        if edit == "score":
            edited["edges"]["a1.h0->logits"]["score"] = 0.5
        else:
            del edited["edges"]["a1.h0->m1"]
        path = tmp_path / f"{edit}.json"
        path.write_text(json.dumps(edited))
        capsys.readouterr()
        assert main(["circuit", "import", str(path), "--name", "S", "--on", "toy", "--for", "Induction.answer"]) == 0
        text = capsys.readouterr().out
        assert "group a1_h0 = head[1.0] @ {END, 2}" in text and "group ind" not in text, edit
        assert ("a1_h0 -> logits : score 0.5" in text) == (edit == "score")
        assert ("a1_h0 -> m1" in text) == (edit == "score")


def test_import_into_a_spec_refuses_an_output_folder_where_its_relative_paths_break(tmp_path, capsys):
    """`--into specs/x.cspec -o elsewhere/y.cspec`: the spec's `enum from "data/…"` would be read
    from `elsewhere/`, where it does not exist; the import says so and writes nothing, while the
    same import next to the spec works."""
    root = Path(__file__).resolve().parents[2]
    folder, elsewhere = tmp_path / "specs", tmp_path / "elsewhere"
    (folder / "data").mkdir(parents=True)
    elsewhere.mkdir()
    spec = folder / "ioi.cspec"
    spec.write_text((root / "specs" / "ioi_circuit_gpt2.cspec").read_text())
    (folder / "data" / "ioi_names.txt").write_text((root / "specs" / "data" / "ioi_names.txt").read_text())
    exported = tmp_path / "ioi.json"
    assert main(["circuit", "export", str(spec), "--circuit", "IOICircuit", "--layers", "12", "--heads", "12",
                 "-o", str(exported)]) == 0
    flags = ["circuit", "import", str(exported), "--name", "IOICircuit", "--on", "gpt2", "--for", "IOI.answer",
             "--granularity", "node", "--into", str(spec)]
    capsys.readouterr()
    assert main([*flags, "-o", str(elsewhere / "again.cspec")]) == 2
    err = capsys.readouterr().err
    assert "E0801" in err and "data/ioi_names.txt" in err and f"-o {folder / 'again.cspec'}" in err
    assert not (elsewhere / "again.cspec").exists()
    assert main([*flags, "-o", str(folder / "again.cspec")]) == 0
    assert "IOICircuit" in load(folder / "again.cspec").circuits
