"""The run room's structure: engine options fixed at construction, backends chosen once, one
site vocabulary shared with the analysis, one strategy class per learned featurizer, and no
import cycle between sites, families and hooks."""

from __future__ import annotations

import ast
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch
from torch import nn

import causalspec.semantics.featurizers as F
from causalspec.run import families, hooks, sites
from causalspec.run.backends import NNsightBackend, TorchBackend, backend_for
from causalspec.run.engine import Engine, EngineOptions
from causalspec.run.families import GenericFamily
from causalspec.run.train import STRATEGIES, LearnedFeaturizer
from causalspec.semantics import site_kinds
from causalspec.semantics import sites as semantic_sites
from causalspec.semantics.site_kinds import KINDS, SiteAddress
from causalspec.semantics.sites import SiteSpec


class _Adapter:
    sequence = False


def test_engine_options_are_frozen_and_read_by_the_engine():
    options = EngineOptions(batch_size=3, incremental=False, kv_device="cpu", skip_layers=False, activations="disk")
    engine = Engine(_Adapter(), nn.Linear(2, 2), GenericFamily(), options)
    assert engine.options is options and engine.batch_size == 3
    with pytest.raises(FrozenInstanceError):
        options.incremental = True  # type: ignore[misc]
    assert not hasattr(engine, "incremental") and not hasattr(engine, "activations")


def test_a_backend_is_chosen_once_and_builds_its_engine():
    assert isinstance(backend_for("torch"), TorchBackend)
    assert backend_for("nnsight", "local") == NNsightBackend("local")
    with pytest.raises(ValueError, match="only the nnsight backend"):
        backend_for("torch", True)
    engine = TorchBackend().engine(_Adapter(), nn.Linear(2, 2), GenericFamily(), EngineOptions(batch_size=5))
    assert type(engine) is Engine and engine.batch_size == 5


def _address(kind):
    """A valid runtime address of each site kind (None for circuit nodes)."""
    row = site_kinds.KIND[kind]
    if row.node:
        return None
    if kind == "module":
        return SiteAddress("module", module_path="layers.0", module_io="output")
    return SiteAddress(kind, 2 if row.layered else None, 1 if row.headed else None)


@pytest.mark.parametrize("kind", [k.name for k in KINDS])
def test_semantics_and_run_name_every_site_kind_alike(kind):
    row = site_kinds.KIND[kind]
    spec = SiteSpec(kind, 2 if row.layered else None, 1 if row.headed else None,
                    *(("layers.0", "output") if kind == "module" else ()))
    address = _address(kind)
    if address is None:  # a circuit node: no runtime address until the compile stage expands it
        assert spec.is_node
        with pytest.raises(ValueError, match="unknown site kind"):
            _ = spec.address
        return
    assert isinstance(spec, SiteAddress) and not spec.is_node
    assert spec.address == address and type(spec.address) is SiteAddress
    assert str(spec) == str(address)


def test_the_kind_lists_come_from_one_table():
    assert semantic_sites.RESIDUAL_KINDS is site_kinds.RESIDUAL_KINDS
    assert semantic_sites.HEAD_PARTS is site_kinds.HEAD_PARTS
    assert sites.SiteAddress is hooks.SiteAddress is families.SiteAddress is SiteAddress
    assert site_kinds.SITE_KINDS == ("embed", "resid.pre", "resid.mid", "resid.post", "attn.out", "mlp.out",
                                     "head.q", "head.k", "head.v", "head.z", "head.result", "logits", "module")
    assert site_kinds.NODE_KINDS == ("attn", "mlp", "head")


def _imported(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_sites_families_and_hooks_import_downwards_only():
    assert not {"causalspec.run.families", "causalspec.run.hooks"} & _imported(sites)
    assert "causalspec.run.hooks" not in _imported(families)
    assert not {m for m in _imported(site_kinds) if m.startswith("causalspec")}  # the torch-free bottom


def test_every_learned_featurizer_kind_has_one_strategy_class():
    learned = {c.kind for c in vars(F).values()
               if isinstance(c, type) and issubclass(c, F.Featurizer) and c.learned}
    assert learned == set(STRATEGIES)
    assert all(issubclass(cls, LearnedFeaturizer) and cls.kind == kind for kind, cls in STRATEGIES.items())


def test_the_boundless_patch_goes_through_the_engines_edit():
    """The soft mask's patch keeps the engine's position handling: untouched positions stay."""
    from causalspec.run.train import masked_mix, subspace_edit

    x = torch.randn(2, 4, 3)
    values = torch.randn(2, 1, 3)
    rotation, mask = torch.eye(3), torch.tensor([1.0, 0.0, 1.0])
    edit = subspace_edit(SiteAddress("resid.post", 0), torch.tensor([[1], [3]]), values, (rotation, mask),
                          masked_mix)
    y = edit(x)
    assert torch.equal(y[0, [0, 2, 3]], x[0, [0, 2, 3]]) and torch.equal(y[1, :3], x[1, :3])
    assert torch.allclose(y[0, 1], torch.stack([values[0, 0, 0], x[0, 1, 1], values[0, 0, 2]]))
