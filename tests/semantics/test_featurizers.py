"""What a featurizer denotes: `Featurizer.basis(width)`, the one description of its subspace.

The engine patches exactly this basis (tests/run/test_featurizer_bases.py checks that on a
real network); here, without torch, the IR's own answers and its errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from causalspec.semantics.featurizers import (Boundless, FeaturizerError, FixedBasis, Identity, LearnedDAS, Slice)


def orthonormal(width: int, k: int, seed: int = 0) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(width, k)))
    return q.astype(np.float32)


def fixed(tmp_path: Path, tensors: dict, key: str | None = None) -> FixedBasis:
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp_path / "b.safetensors"))
    return FixedBasis("b.safetensors", tmp_path / "b.safetensors", key)


def interchange(base: np.ndarray, source: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """The patch of `run.sites` (`Intervention`): source inside span(basis), base outside."""
    return source if basis is None else base + ((source - base) @ basis) @ basis.T


def test_identity_is_the_whole_activation_and_a_slice_its_unit_vectors():
    assert Identity().basis(8) is None
    b = Slice(2, 5).basis(8)
    assert b.shape == (8, 3) and b.dtype == np.float32 and np.array_equal(b, np.eye(8)[:, 2:5])
    rng = np.random.default_rng(0)
    base, src = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    patched = interchange(base, src, b)  # dims 2:5 from the source, the rest from the base
    assert np.allclose(patched[:, 2:5], src[:, 2:5]) and np.allclose(np.delete(patched, [2, 3, 4], 1),
                                                                    np.delete(base, [2, 3, 4], 1))
    assert Slice(0, 8).basis(8).shape == (8, 8)
    with pytest.raises(FeaturizerError, match=r"slice \[0:9\] does not fit an activation of width 8"):
        Slice(0, 9).basis(8)


def test_learned_featurizers_have_no_basis_before_training():
    assert LearnedDAS.learned and Boundless.learned and not Slice.learned and not FixedBasis.learned
    for feat, kind in ((LearnedDAS(2), "das"), (Boundless(), "boundless")):
        with pytest.raises(FeaturizerError, match=f"`{kind}` is learned: its subspace comes from training"):
            feat.basis(8)


def test_fixed_basis_is_the_files_matrix(tmp_path):
    q = orthonormal(8, 3)
    assert np.array_equal(fixed(tmp_path, {"W": q}).basis(8), q)  # the file's only tensor
    assert np.array_equal(fixed(tmp_path, {"W": q, "V": q[:, :1]}, key="V").basis(8), q[:, :1])
    assert np.array_equal(fixed(tmp_path, {"W": q.T}).basis(8), q)  # [k, width] is transposed
    assert np.array_equal(fixed(tmp_path, {"W": q[:, 0]}).basis(8), q[:, :1])  # a vector is one direction
    assert fixed(tmp_path, {"W": q.astype(np.float64)}).basis(8).dtype == np.float32
    # a reader other than safetensors' numpy one (the engine's reads with torch)
    assert np.array_equal(fixed(tmp_path, {"W": q}).basis(8, read=lambda path: {"W": q * 1}), q)


@pytest.mark.parametrize("tensors, key, message", [
    ({"W": np.ones((8, 2), np.float32)}, None, r"basis `b.safetensors` is not orthonormal \(B.T @ B != I\)"),
    ({"W": orthonormal(6, 2)}, None, r"basis `b.safetensors` has shape \(6, 2\); the site has width 8"),
    ({"W": np.zeros((2, 8, 1), np.float32)}, None, r"has shape \(2, 8, 1\); the site has width 8"),
    ({"W": orthonormal(8, 1), "V": orthonormal(8, 1)}, None,
     r"basis file `b.safetensors` holds 2 tensors \(V, W\); name one with key="),
    ({"W": orthonormal(8, 1)}, "X", r"basis file `b.safetensors` has no tensor `X` \(it has W\)"),
])
def test_bad_basis_files_are_clear_errors(tmp_path, tensors, key, message):
    with pytest.raises(FeaturizerError, match=message):
        fixed(tmp_path, tensors, key).basis(8)


def test_a_basis_file_gone_at_check_time(tmp_path):
    feat = fixed(tmp_path, {"W": orthonormal(8, 1)})
    feat.resolved.unlink()
    with pytest.raises(FeaturizerError, match=r"basis file `b.safetensors` not found \(looked for .*b.safetensors\)"):
        feat.basis(8)
