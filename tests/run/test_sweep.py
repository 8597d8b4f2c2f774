"""Cache-aware sweeps (causalspec.run.sweep): one clean pass for all cells, each cell's
predictions identical to a full-forward patched run of that cell alone."""

from __future__ import annotations

import numpy as np
import pytest

from causalspec.run.sweep import cells, sweep
from causalspec.semantics.analyse import load
from causalspec.semantics.sites import LAST, PositionSpec
from causalspec.testing.claims import claim_run, make_engine
from causalspec.testing.specs import mover_spec

POSITIONS = [PositionSpec("slot", slot="A"), PositionSpec("slot", slot="B", occurrence=2), LAST]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def setup(request, word_lm, tmp_path_factory):
    spec = tmp_path_factory.mktemp(f"sweep_{request.param}") / "p.cspec"
    spec.write_text(mover_spec(word_lm(request.param)))  # resid.post[0] @ last, 32 pairs, batch 8
    run = claim_run(load(spec))
    return run.plan, run.net, run.rows, run.base, run.sources[0]


def engine_for(plan, net, incremental=True):
    return make_engine(plan, net, 8, incremental)


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
