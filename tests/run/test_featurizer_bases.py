"""The engine patches exactly the subspace the featurizer IR denotes (`Featurizer.basis`).

Why: the engine once built its own bases beside the IR's description of them; these tests
fail if the two ever disagree again — on the bases themselves, their errors, and the
logits of real patched forward passes through `Engine.run_patched`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from causalspec.run import engine as engine_module
from causalspec.run.adapters import Batch, CheckUsageError
from causalspec.run.engine import Engine, EngineOptions
from causalspec.run.families import GenericFamily
from causalspec.semantics.ir import SiteBinding
from causalspec.semantics.featurizers import Boundless, FeaturizerError, FixedBasis, Identity, LearnedDAS, Slice
from causalspec.semantics.sites import SiteSpec

WIDTH = 12


class VectorAdapter:
    """Rows `{"x": [n, 6]}` straight into the module; keeps the raw logits of every forward."""

    sequence = False

    def __init__(self, module: nn.Module):
        self.module = module
        self.raw: list[torch.Tensor] = []

    def encode(self, rows) -> Batch:
        return Batch(torch.as_tensor(rows["x"], dtype=torch.float32), dict(rows), len(rows["x"]))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.module(batch.inputs)

    def predict(self, raw: torch.Tensor, batch: Batch) -> np.ndarray:
        self.raw.append(raw.detach().clone())
        return raw.argmax(-1).numpy()

    def positions(self, batch: Batch, binding):
        return None

    def describe_row(self, batch: Batch, i: int) -> str:
        return f"row {i}"


@pytest.fixture()
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, WIDTH), nn.Tanh(), nn.Linear(WIDTH, WIDTH), nn.Tanh(), nn.Linear(WIDTH, 3)).eval()


def saved(tmp_path, tensor: torch.Tensor, name: str = "b.safetensors") -> FixedBasis:
    save_file({"W": tensor.contiguous()}, str(tmp_path / name))
    return FixedBasis(name, tmp_path / name)


def rotated(k: int, seed: int = 1) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(WIDTH, k, generator=torch.Generator().manual_seed(seed)))[0]


def featurizers(tmp_path) -> list:
    q = rotated(4)
    return [Identity(), Slice(0, WIDTH), Slice(3, 7), saved(tmp_path, q), saved(tmp_path, q.T, "t.safetensors"),
            saved(tmp_path, q[:, 0], "v.safetensors")]


def test_engine_basis_is_the_irs(tmp_path, mlp):
    engine = Engine(VectorAdapter(mlp), mlp, GenericFamily())
    for feat in featurizers(tmp_path):
        ir = feat.basis(WIDTH)
        got = engine.basis(feat, WIDTH)
        assert (got is None) if ir is None else torch.equal(got, torch.from_numpy(ir)), feat
    # bfloat16 files: read by the engine's torch reader (numpy has none); unit vectors are exact
    feat = saved(tmp_path, torch.eye(WIDTH)[:, 2:5].to(torch.bfloat16), "bf16.safetensors")
    assert torch.equal(engine.basis(feat, WIDTH), torch.from_numpy(Slice(2, 5).basis(WIDTH)))


def test_engine_reports_the_irs_errors(tmp_path, mlp):
    engine = Engine(VectorAdapter(mlp), mlp, GenericFamily())
    bad = [Slice(0, WIDTH + 1), LearnedDAS(2), Boundless(), saved(tmp_path, torch.ones(WIDTH, 2)),
           saved(tmp_path, rotated(2)[:-1], "short.safetensors"), FixedBasis("gone.safetensors", tmp_path / "gone")]
    for feat in bad:
        with pytest.raises(FeaturizerError) as ir:
            feat.basis(WIDTH)
        with pytest.raises(CheckUsageError) as run:
            engine.basis(feat, WIDTH)
        assert str(run.value) == str(ir.value)


def test_a_basis_file_is_read_once_per_width(tmp_path, mlp, monkeypatch):
    reads = []
    real = engine_module.read_safetensors
    monkeypatch.setattr(engine_module, "read_safetensors", lambda path: reads.append(path) or real(path))
    engine = Engine(VectorAdapter(mlp), mlp, GenericFamily())
    feat = saved(tmp_path, torch.eye(WIDTH)[:, :2])
    assert engine.basis(feat, WIDTH) is engine.basis(feat, WIDTH) and len(reads) == 1
    with pytest.raises(CheckUsageError, match="has shape"):  # the same file at a site of another width
        engine.basis(feat, WIDTH + 1)


def test_patched_logits_are_the_irs_interchange(tmp_path, mlp):
    """Engine.run_patched at `2 output` (after the second linear) equals a forward whose
    activation there is `base + ((source - base) @ B) @ B.T` with the IR's B — and, for a
    slice, the base with dims lo:hi taken from the source."""
    rows = {"x": np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)}
    base, source = np.arange(10), np.roll(np.arange(10), 3)
    site = SiteSpec("module", module_path="2", module_io="output")
    with torch.no_grad():
        acts = mlp[:3](torch.as_tensor(rows["x"]))  # [10, WIDTH]: the site's clean activations
        tail = mlp[3:]
    for feat in featurizers(tmp_path):
        adapter = VectorAdapter(mlp)
        engine = Engine(adapter, mlp, GenericFamily(), EngineOptions(batch_size=4))
        binding = SiteBinding(site, (), feat)
        cache = engine.run_clean(rows, [binding])
        adapter.raw.clear()
        engine.run_patched(rows, cache, base, [source], [[binding]])
        got = torch.cat(adapter.raw)
        b = feat.basis(WIDTH)
        x, s = acts[base], acts[source]
        want_act = s if b is None else x + ((s - x) @ torch.from_numpy(b)) @ torch.from_numpy(b).T
        if isinstance(feat, Slice):
            by_hand = x.clone()
            by_hand[:, feat.lo:feat.hi] = s[:, feat.lo:feat.hi]
            assert torch.allclose(want_act, by_hand, atol=1e-6)
        with torch.no_grad():
            assert torch.allclose(got, tail(want_act), atol=1e-5), feat
