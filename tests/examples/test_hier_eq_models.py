"""Tests for the shipped hierarchical-equality example (examples/hier_eq).

The hand-built net is the ground truth for the checker: its mechanism is
known exactly, so the reference interchange helper must give IIA 1.0 on the
true alignment and clearly less on a wrong one. Counterfactuals are computed
in plain python here, independently of the model module's helpers.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EX = Path(__file__).resolve().parents[2] / "examples" / "hier_eq"


def _load_model_module():
    spec = importlib.util.spec_from_file_location("hier_eq_model", EX / "model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


M = _load_model_module()
K = M.HAND_K


def _all_inputs() -> torch.Tensor:
    r = torch.arange(M.N_OBJ)
    return torch.cartesian_prod(r, r, r, r)


def _o(ids: torch.Tensor) -> torch.Tensor:
    return (ids[:, 0] == ids[:, 1]) == (ids[:, 2] == ids[:, 3])


def _iia(net, var: str, dims: slice, n: int = 500, seed: int = 0) -> float:
    """IIA of "var lives in layers.0[dims]", counterfactual in plain python."""
    g = torch.Generator().manual_seed(seed)
    base, source = M.sample_balanced(n, g), M.sample_balanced(n, g)
    got = M.decode(M.interchange(net, base, source, "layers.0", dims))
    hits = 0
    for (bw, bx, by, bz), (sw, sx, sy, sz), out in zip(base.tolist(), source.tolist(), got):
        wx, yz = bw == bx, by == bz
        if var == "WX":
            wx = sw == sx
        else:
            yz = sy == sz
        hits += out == (wx == yz)
    return hits / n


@pytest.fixture(scope="module")
def hand():
    return M.build_hand()


def test_hand_exact_on_all_inputs(hand):
    ids = _all_inputs()
    with torch.no_grad():
        logits = hand(ids)
    assert torch.equal(logits.argmax(-1).bool(), _o(ids))
    # Integer weights => logits are exactly +-1 (never a near-tie).
    assert torch.equal(logits[:, 1] - logits[:, 0], _o(ids).float() * 2 - 1)


def test_hand_layer0_slices_carry_wx_yz(hand):
    ids = _all_inputs()[::97]
    with torch.no_grad():
        h = hand.layers[0](hand.embed(ids).flatten(1))
    assert torch.equal(h[:, :K].sum(1), (ids[:, 0] == ids[:, 1]).float())
    assert torch.equal(h[:, K : 2 * K].sum(1), (ids[:, 2] == ids[:, 3]).float())


@pytest.mark.parametrize("var,dims", [("WX", slice(0, K)), ("YZ", slice(K, 2 * K))])
def test_hand_true_alignment_iia_is_one(hand, var, dims):
    assert _iia(hand, var, dims) == 1.0


@pytest.mark.parametrize(
    "var,dims",
    [("WX", slice(K, 2 * K)), ("YZ", slice(0, K)), ("WX", slice(0, K // 2))],
)
def test_hand_wrong_alignment_iia_is_clearly_lower(hand, var, dims):
    assert _iia(hand, var, dims) < 0.8


def test_encode_decode():
    ids = M.encode({"W": [1, 2], "X": [1, 3], "Y": [0, 0], "Z": [5, 0]})
    assert ids.dtype == torch.long and ids.tolist() == [[1, 1, 0, 5], [2, 3, 0, 0]]
    assert M.decode(torch.tensor([[0.0, 1.0], [2.0, -1.0]])) == [True, False]
    with pytest.raises(ValueError):
        M.encode({"W": [20], "X": [0], "Y": [0], "Z": [0]})
    with pytest.raises(KeyError):
        M.encode({"W": [0], "X": [0], "Y": [0]})


def test_hand_weights_file_matches_construction(hand):
    loaded = M.load_weights(M.HandBuiltHierEq(), EX / "hand.safetensors")
    for (n1, a), (n2, b) in zip(hand.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(a, b)


def test_trained_weights_accuracy():
    path = EX / "mlp.safetensors"
    assert path.stat().st_size < 1_000_000
    net = M.load_weights(M.build(), path).eval()
    ids = M.sample_balanced(2000, torch.Generator().manual_seed(1234))
    assert 0.4 < _o(ids).float().mean() < 0.6  # really balanced
    with torch.no_grad():
        acc = (net(ids).argmax(-1).bool() == _o(ids)).float().mean().item()
    assert acc >= 0.99


@pytest.mark.parametrize("make", [M.build_hand, lambda: M.build(seed=3)])
def test_save_load_roundtrip_bit_identical(tmp_path, make):
    net = make()
    p1, p2 = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    M.save(net, p1)
    fresh = M.load_weights(type(net)(), p1)
    M.save(fresh, p2)
    assert p1.read_bytes() == p2.read_bytes()
    for a, b in zip(net.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors", "b.safetensors"]  # no temp left


def test_build_is_deterministic_and_side_effect_free():
    state = torch.random.get_rng_state()
    a, b = M.build(seed=7), M.build(seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


@pytest.mark.slow
def test_train_script_produces_loadable_file(tmp_path):
    out = tmp_path / "mlp.safetensors"
    subprocess.run(
        [sys.executable, str(EX / "train.py"), "--out", str(out), "--steps", "20"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    M.load_weights(M.build(), out)
