"""Snapshot the causal graph of every model in the golden corpus.

Each model of `tests/syntax/ok/<file>.cspec` has `ok/snapshots/<file>__<model>.json`: its
variables (kind, type, sorted parents), sorted edges and topological order. A change in
analysis that silently rewires a graph shows up here as a readable JSON diff.

To regenerate after an intended change (then read the diff!):

    CAUSALSPEC_UPDATE_SNAPSHOTS=1 python3 -m pytest tests/syntax/test_graph_snapshots.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load

OK_DIR = Path(__file__).parent / "ok"
SNAP_DIR = OK_DIR / "snapshots"
UPDATE = os.environ.get("CAUSALSPEC_UPDATE_SNAPSHOTS") == "1"

OK_FILES = sorted(OK_DIR.glob("*.cspec"))
# The printer's syntax sample (tests/syntax/test_printer.py asserts its exact layout): it
# parses, but it is not a semantically valid spec. Skipped here while it fails analysis.
SYNTAX_ONLY = {"kitchen_sink.cspec"}


def load_ok(spec: Path):
    if spec.name in SYNTAX_ONLY:
        try:
            return load(spec)
        except SpecError:
            pytest.skip(f"{spec.name} is a syntax-only sample (it does not pass analysis)")
    return load(spec)


def graph_snapshot(cm) -> dict:
    g = cm.graph
    nodes = {}
    for name in sorted(g.nodes):
        data = g.nodes[name]
        nodes[name] = {
            "kind": data["kind"],
            "type": data["type"],
            "parents": sorted(g.predecessors(name)),
        }
    return {
        "model": cm.name,
        "nodes": nodes,
        "edges": sorted([u, v] for u, v in g.edges),
        "order": list(cm.order),
    }


def snapshot_path(spec: Path, model: str) -> Path:
    return SNAP_DIR / f"{spec.stem}__{model}.json"


def dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("spec", OK_FILES, ids=[p.name for p in OK_FILES])
def test_graph_snapshot(spec: Path):
    ir = load_ok(spec)
    assert ir.models, f"{spec.name} declares no model"
    mismatched = []
    for name, cm in ir.models.items():
        path = snapshot_path(spec, name)
        text = dump(graph_snapshot(cm))
        if UPDATE:
            SNAP_DIR.mkdir(exist_ok=True)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            continue
        if not path.exists():
            mismatched.append(f"{path.name}: missing (run with CAUSALSPEC_UPDATE_SNAPSHOTS=1)")
        elif path.read_text(encoding="utf-8") != text:
            mismatched.append(f"{path.name}: differs; got\n{text}")
    assert not mismatched, "graph snapshots out of date:\n" + "\n".join(mismatched)


def test_no_orphan_snapshots():
    """Every snapshot belongs to a model of an existing ok file (stale ones are removed on update)."""
    wanted = set()
    for spec in OK_FILES:
        try:
            wanted |= {snapshot_path(spec, name).name for name in load(spec).models}
        except SpecError:
            if spec.name not in SYNTAX_ONLY:
                raise
    orphans = sorted(p.name for p in SNAP_DIR.glob("*.json") if p.name not in wanted)
    if UPDATE:
        for name in orphans:
            (SNAP_DIR / name).unlink()
        return
    assert not orphans, f"snapshots without a model (delete them or update): {', '.join(orphans)}"
