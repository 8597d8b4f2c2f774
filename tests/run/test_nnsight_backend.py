"""The nnsight backend (causalspec.run.nnsight_backend) gives the torch engine's predictions.

Skipped where nnsight is not installed (it is an optional extra: pip install nnsight)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("nnsight")

from causalspec.checking import CheckOptions, run_checks  # noqa: E402
from causalspec.compile.plan import compile_check  # noqa: E402
from causalspec.run.adapters import CheckUsageError  # noqa: E402
from causalspec.run.engine import Engine  # noqa: E402
from causalspec.run.families import resolve_family  # noqa: E402
from causalspec.run.hf_adapter import HFAdapter  # noqa: E402
from causalspec.run.loading import load_hf_network  # noqa: E402
from causalspec.run.nnsight_backend import NNsightEngine  # noqa: E402
from causalspec.score.results import ERROR  # noqa: E402
from causalspec.semantics.analyse import load  # noqa: E402
from causalspec.semantics.pairs import row_ids  # noqa: E402
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer  # noqa: E402

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
  position A1 = slot(A, 1)
  position END = last
}}
align P to net as Pos {{
  mover -> {site} @ {at}{feat}
  answer -> output
}}
check Pos {{
  interchange mover
  pairs 24 seed 0 batch 8
  expect iia >= 0.0
}}
"""


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"nn_{request.param}")
    build_tiny_model(request.param, None, d, seed=0, tokenizer=build_word_tokenizer(WORDS), initializer_range=0.5)
    return d


def predictions(ir, engine_cls):
    plan = compile_check(ir, ir.checks[0])
    net = load_hf_network("net", str(plan.network.source), Path(ir.file).parent, None, "cpu", None)
    engine = engine_cls(HFAdapter(net, plan.network, plan.model, plan.output), net.module,
                        resolve_family(net.module), 8)
    if engine_cls is Engine:
        engine.incremental = False
    _, first, inverse = np.unique(row_ids(plan.pool), return_index=True, return_inverse=True)
    rows = {k: v[first] for k, v in plan.pool.items()}
    cache = engine.run_clean(rows, plan.bindings())
    claim = plan.claims[0]
    groups = [[b for v in g for b in plan.alignment.variables[v]] for g in claim.groups]
    patched = engine.run_patched(rows, cache, inverse[claim.pairs.base_index],
                                 [inverse[s] for s in claim.pairs.source_index], groups)
    return cache, patched


@pytest.mark.parametrize("site,at,feat", [("resid.post[0]", "A1", ""), ("resid.pre[1]", "END", ""),
                                          ("head[1.1].v", "A1", ""), ("mlp.out[0]", "END", " : [0:16]"),
                                          ("embed", "A1", "")])
def test_nnsight_backend_equals_the_torch_engine(model_dir, tmp_path, site, at, feat):
    (tmp_path / "p.cspec").write_text(SPEC.format(path=model_dir, site=site, at=at, feat=feat))
    ir = load(tmp_path / "p.cspec")
    ref_cache, ref = predictions(ir, Engine)
    cache, patched = predictions(ir, NNsightEngine)
    assert cache.preds.tolist() == ref_cache.preds.tolist()
    for b in ref_cache.acts:
        for x, y in zip(cache.acts[b], ref_cache.acts[b]):
            assert torch.allclose(x, y, atol=1e-5)
    assert patched.tolist() == ref.tolist()


def test_sites_written_through_two_hooks_are_refused(model_dir, tmp_path):
    (tmp_path / "p.cspec").write_text(SPEC.format(path=model_dir, site="head[0.1].result", at="END", feat=""))
    ir = load(tmp_path / "p.cspec")
    with pytest.raises(CheckUsageError, match="not supported by the nnsight backend"):
        predictions(ir, NNsightEngine)


def test_check_option_selects_the_backend(model_dir, tmp_path):
    (tmp_path / "p.cspec").write_text(SPEC.format(path=model_dir, site="resid.post[0]", at="A1", feat=""))
    ir = load(tmp_path / "p.cspec")
    [torch_result] = run_checks(ir)
    [nn_result] = run_checks(ir, CheckOptions(backend="nnsight"))
    assert nn_result.status != ERROR, nn_result.reason
    assert any("nnsight" in n for n in nn_result.notes)
    assert nn_result.claims[0].iia.successes == torch_result.claims[0].iia.successes
