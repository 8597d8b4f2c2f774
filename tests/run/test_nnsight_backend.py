"""The nnsight backend (causalspec.run.nnsight_backend) gives the torch engine's predictions.

Skipped where nnsight is not installed (it is an optional extra: pip install nnsight)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("nnsight")

from causalspec.claims.runner import CheckOptions, run_checks  # noqa: E402
from causalspec.run.adapters import CheckUsageError  # noqa: E402
from causalspec.run.engine import Engine  # noqa: E402
from causalspec.run.nnsight_backend import NNsightEngine  # noqa: E402
from causalspec.score.results import ERROR  # noqa: E402
from causalspec.semantics.analyse import load  # noqa: E402
from causalspec.testing.claims import claim_run  # noqa: E402
from causalspec.testing.specs import mover_spec  # noqa: E402


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request, word_lm):
    return word_lm(request.param)


def spec(tmp_path, model_dir, site="resid.post[0]", at="A1", feat=""):
    path = tmp_path / "p.cspec"
    path.write_text(mover_spec(model_dir, site=site, at=at + feat, positions=True, pairs=24))
    return load(path)


def predictions(ir, engine_cls):
    """(clean cache, patched predictions) of the spec's first claim on `engine_cls` (full forwards)."""
    return claim_run(ir, incremental=False, engine_cls=engine_cls).run()


@pytest.mark.parametrize("site,at,feat", [("resid.post[0]", "A1", ""), ("resid.pre[1]", "END", ""),
                                          ("head[1.1].v", "A1", ""), ("mlp.out[0]", "END", " : [0:16]"),
                                          ("embed", "A1", "")])
def test_nnsight_backend_equals_the_torch_engine(model_dir, tmp_path, site, at, feat):
    ir = spec(tmp_path, model_dir, site, at, feat)
    ref_cache, ref = predictions(ir, Engine)
    cache, patched = predictions(ir, NNsightEngine)
    assert cache.preds.tolist() == ref_cache.preds.tolist()
    for b in ref_cache.acts:
        for x, y in zip(cache.acts[b], ref_cache.acts[b]):
            assert torch.allclose(x, y, atol=1e-5)
    assert patched.tolist() == ref.tolist()


def test_sites_written_through_two_hooks_are_refused(model_dir, tmp_path):
    ir = spec(tmp_path, model_dir, "head[0.1].result", "END")
    with pytest.raises(CheckUsageError, match="not supported by the nnsight backend"):
        predictions(ir, NNsightEngine)


def test_check_option_selects_the_backend(model_dir, tmp_path):
    ir = spec(tmp_path, model_dir)
    [torch_result] = run_checks(ir)
    [nn_result] = run_checks(ir, CheckOptions(backend="nnsight"))
    assert nn_result.status != ERROR, nn_result.reason
    assert any("nnsight" in n for n in nn_result.notes)
    assert nn_result.claims[0].iia.successes == torch_result.claims[0].iia.successes
