"""`causalspec graph` shows a mechanism that aggregates over a family as written (issue 13).

The model's AST holds the expanded form (`count(m[1] == x, m[2] == x, …)`), which is what runs;
the graph of the families reads the spec's own text, and `--expand` the elements'."""

from __future__ import annotations

import json

from causalspec.cli import main

SPEC = """
model M {
  const N = 3
  input m[1..N] : int 0..2
  input x : int 0..2
  var C : int 0..N = count(j in 1..N : m[j] == x)
  output Y : bool = C >= 2
}
"""


def _graph(tmp_path, capsys, *options) -> str:
    spec = tmp_path / "m.cspec"
    spec.write_text(SPEC)
    assert main(["graph", str(spec), *options]) == 0
    return capsys.readouterr().out


def test_graph_shows_the_aggregate_as_written_in_every_format(tmp_path, capsys):
    nodes = {n["name"]: n for n in json.loads(_graph(tmp_path, capsys, "--format", "json"))["nodes"]}
    assert nodes["C"]["mechanism"] == "count(j in 1..N : m[j] == x)" and "m[1..3]" in nodes
    assert "C = count(j in 1..N : m[j] == x)" in _graph(tmp_path, capsys, "--format", "dot")
    mermaid = _graph(tmp_path, capsys, "--format", "mermaid")
    assert "m[1..3]" in mermaid and "m[1] :" not in mermaid


def test_graph_expand_shows_the_elements_and_the_unrolled_mechanism(tmp_path, capsys):
    nodes = {n["name"]: n for n in json.loads(_graph(tmp_path, capsys, "--format", "json", "--expand"))["nodes"]}
    assert "m[2]" in nodes and "m[1..3]" not in nodes
    assert nodes["C"]["mechanism"] == "count(m[1] == x, m[2] == x, m[3] == x)"
