"""Cache-aware sweeps (causalspec.run.sweep): one clean pass for all cells, each cell's
predictions identical to a full-forward patched run of that cell alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from causalspec.compile.plan import compile_check
from causalspec.run.engine import Engine
from causalspec.run.families import resolve_family
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.loading import load_hf_network
from causalspec.run.sweep import cells, sweep
from causalspec.semantics.analyse import load
from causalspec.semantics.pairs import row_ids
from causalspec.semantics.sites import LAST, PositionSpec
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

WORDS = "When Then and went to the store gave a drink".split() + ["Mary", "John", "Tom", "Anna", "##bel"]
SPEC = """
model P {{
  domain Name = enum {{Mary, John, Tom, Annabel}}
  input  A, B : Name ~ uniform where A != B
  var    mover : Name = A
  output answer : Name = mover
}}
network net = hf "{path}" {{
  prompt "When {{A}} and {{B}} went to the store, {{B}} gave a drink to"
  answer " {{answer}}"
}}
align P to net as Pos {{
  mover -> resid.post[0] @ last
  answer -> output
}}
check Pos {{
  interchange mover
  pairs 32 seed 0 batch 8
  expect iia >= 0.0
}}
"""
POSITIONS = [PositionSpec("slot", slot="A"), PositionSpec("slot", slot="B", occurrence=2), LAST]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def setup(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"sweep_{request.param}")
    build_tiny_model(request.param, None, d, seed=0, tokenizer=build_word_tokenizer(WORDS), initializer_range=0.5)
    (d / "p.cspec").write_text(SPEC.format(path=d))
    ir = load(d / "p.cspec")
    plan = compile_check(ir, ir.checks[0])
    net = load_hf_network("net", str(d), d, None, "cpu", None)
    _, first, inverse = np.unique(row_ids(plan.pool), return_index=True, return_inverse=True)
    rows = {k: v[first] for k, v in plan.pool.items()}
    pairs = plan.claims[0].pairs
    return plan, net, rows, inverse[pairs.base_index], inverse[pairs.source_index[0]]


def engine_for(plan, net, incremental=True):
    engine = Engine(HFAdapter(net, plan.network, plan.model, plan.output), net.module, resolve_family(net.module), 8)
    engine.incremental = incremental
    return engine


def test_sweep_cells_equal_full_forward_runs_cell_by_cell(setup):
    plan, net, rows, base, source = setup
    grid = cells(["resid.post", "mlp.out"], range(2), POSITIONS)
    assert len(grid) == 12
    engine = engine_for(plan, net)
    result = sweep(engine, rows, base, source, grid)
    assert result.preds.shape == (12, len(base))
    n_unique = len(next(iter(rows.values())))
    # one clean pass for the whole sweep, one patched pass per cell
    assert result.forward_passes["clean"] == -(-n_unique // 8)
    assert result.forward_passes["patched"] == 12 * -(-len(base) // 8)
    assert any("incremental" in n for n in result.notes)
    moved = 0
    for c, cell in enumerate(grid):
        ref_engine = engine_for(plan, net, incremental=False)
        cache = ref_engine.run_clean(rows, [cell])
        ref = ref_engine.run_patched(rows, cache, base, [source], [[cell]])
        assert result.preds[c].tolist() == ref.tolist(), (str(cell.site), cell.positions)
        moved += int((ref != cache.preds[base]).sum())
    assert moved > 0  # some cell moves some output: the comparison is not vacuous


def test_accuracy_per_cell(setup):
    plan, net, rows, base, source = setup
    grid = cells(["resid.post"], [1], [LAST])
    result = sweep(engine_for(plan, net), rows, base, source, grid)
    expected = result.clean[source]  # full replacement at the last layer's last token copies the source's answer
    assert result.accuracy(expected).tolist() == [1.0]
    assert result.accuracy(expected, keep=np.zeros(len(base), bool)).shape == (1,)
    with pytest.raises(ValueError):
        sweep(engine_for(plan, net), rows, base, source, [])
