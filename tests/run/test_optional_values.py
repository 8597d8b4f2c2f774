"""Values typed `T | None` (mypy strict_optional) that a caller can still hand over as None: each
is a clear error or a stated fallback, never an AttributeError on None deep inside."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from causalspec.claims.circuit import evaluate_circuit_conditions
from causalspec.compile.circuit_plan import Arch, CircuitPlanError, site_nodes
from causalspec.run.incremental import KVStore, starts_for
from causalspec.run.patching import decode
from causalspec.run.sites import Intervention
from causalspec.score.circuit_scores import CircuitSummary
from causalspec.score.results import FAILED
from causalspec.semantics.site_kinds import SiteAddress
from causalspec.semantics.sites import SiteSpec


def test_a_cache_layer_without_values_is_refused_like_one_without_keys():
    store = KVStore(2)
    keys = torch.zeros(2, 1, 3, 4)  # [batch, heads, seq, head_dim]
    reason = store.add(np.arange(2), [(keys, None)], torch.tensor([3, 2]))
    assert reason is not None and "key/value tensor per layer" in reason
    assert store.add(np.arange(2), [(keys, keys.clone())], torch.tensor([3, 2])) is None  # a whole layer is kept


def test_an_incremental_start_needs_the_patch_positions():
    batch = SimpleNamespace(meta={"rows": [SimpleNamespace(answer_pos=3)]})
    whole = Intervention(SiteAddress("resid.pre", layer=0), None, torch.zeros(1, 4))
    with pytest.raises(ValueError, match="needs the patch's positions"):
        starts_for(batch, [whole])
    at = Intervention(SiteAddress("resid.pre", layer=0), torch.tensor([[1]]), torch.zeros(1, 1, 4))
    assert starts_for(batch, [at]).tolist() == [1]


def test_decoding_candidates_needs_an_answer_position():
    raw = torch.randn(2, 5, 7)  # [batch, seq, vocab]
    with pytest.raises(ValueError, match="answer position"):
        decode(raw, None, torch.tensor([1, 4]))
    assert decode(raw, torch.tensor([4, 2]), torch.tensor([1, 4])).shape == (2,)


def test_the_effect_size_guard_reads_a_missing_effect_as_n_a():
    summary = CircuitSummary(output="M.O", metric="logit_diff", ablation="zero", granularity="node",
                             universe="heads", prompts=0, effect=None)
    verdict = evaluate_circuit_conditions(SimpleNamespace(conditions=[]), summary)
    assert verdict.status == FAILED
    assert "m(N) − m(∅) = n/a [n/a, n/a] includes 0" in verdict.reason


def test_a_head_node_without_its_layer_or_head_is_a_plan_error():
    arch = Arch(layers=2, heads=2)
    with pytest.raises(CircuitPlanError, match="names no layer"):
        site_nodes(SiteSpec("mlp"), arch)
    with pytest.raises(CircuitPlanError, match="names no head"):
        site_nodes(SiteSpec("head", layer=1), arch)
    assert [str(n) for n in site_nodes(SiteSpec("head", layer=1, head=0), arch)]
