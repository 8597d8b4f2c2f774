"""Fixed-basis featurizers and multi-site bindings through the whole check pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text
from causalspec.testing.specs import HIER_EQ_MODEL, hand_network

def spec(wx_site: str, yz_site: str = 'module "layers.0" output : [20:40]') -> str:
    return HIER_EQ_MODEL + hand_network() + f"""
align HierEq to hand as A {{
  WX -> {wx_site}
  YZ -> {yz_site}
  O  -> output : argmax
}}
check A {{
  interchange WX, {{WX, YZ}}
  pairs 200 seed 1
  expect iia >= 0.99 each
}}
"""


def run(text: str, tmp_path: Path):
    ir = load_text(text, str(tmp_path / "s.cspec"), base_dir=tmp_path)
    return run_checks(ir, CheckOptions())[0]


def rotated_basis_of_first_20_dims(seed: int = 0) -> torch.Tensor:
    """An orthonormal basis of span(e_0..e_19) in R^40 that is not axis-aligned."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g))
    basis = torch.zeros(40, 20)
    basis[:20] = q
    return basis


def test_rotated_basis_of_the_true_subspace_holds_exactly(tmp_path):
    save_file({"wx": rotated_basis_of_first_20_dims()}, str(tmp_path / "b.safetensors"))
    r = run(spec('module "layers.0" output : basis("b.safetensors", key="wx")'), tmp_path)
    assert r.status == "passed", r.reason
    assert all(c.iia.estimate == 1.0 for c in r.claims)


@pytest.mark.parametrize("form", ["transposed", "vector"])
def test_transposed_and_vector_basis_files_hold_exactly(tmp_path, form):
    # layers.1 reads only the sum of units 0..19, so the one direction 1_{0:20}/sqrt(20) carries WX
    basis = {"transposed": rotated_basis_of_first_20_dims().T,  # [20, 40]: read as its transpose
             "vector": torch.cat([torch.ones(20), torch.zeros(20)]) / 20 ** 0.5}[form]  # [40]: one direction
    save_file({"wx": basis.contiguous()}, str(tmp_path / "b.safetensors"))
    r = run(spec('module "layers.0" output : basis("b.safetensors")'), tmp_path)
    assert r.status == "passed", r.reason
    assert all(c.iia.estimate == 1.0 for c in r.claims)


def test_basis_of_the_wrong_subspace_fails(tmp_path):
    basis = torch.zeros(40, 20)
    basis[20:] = torch.linalg.qr(torch.randn(20, 20, generator=torch.Generator().manual_seed(1)))[0]
    save_file({"wx": basis}, str(tmp_path / "b.safetensors"))
    r = run(spec('module "layers.0" output : basis("b.safetensors", key="wx")'), tmp_path)
    assert r.status == "failed"
    assert r.claims[0].iia.estimate < 0.8


def test_half_of_the_subspace_is_not_enough(tmp_path):
    save_file({"wx": rotated_basis_of_first_20_dims()[:, :10].contiguous()}, str(tmp_path / "b.safetensors"))
    r = run(spec('module "layers.0" output : basis("b.safetensors", key="wx")'), tmp_path)
    assert r.status == "failed"


def test_non_orthonormal_basis_is_a_clear_error(tmp_path):
    save_file({"wx": torch.ones(40, 2)}, str(tmp_path / "b.safetensors"))
    r = run(spec('module "layers.0" output : basis("b.safetensors", key="wx")'), tmp_path)
    assert r.status == "error" and "orthonormal" in r.reason


@pytest.mark.parametrize("dtype", ["float16", "scaled"])
def test_a_basis_orthonormal_within_the_tolerance_is_used_not_an_internal_error(tmp_path, dtype):
    """A basis within the 1e-3 the file check accepts but not within the patch's own 1e-4 (a
    float16 file, or columns scaled by 1.0004) ended the run in an internal error (exit 3): it is
    now made exactly orthonormal (same span) and holds like the exact basis."""
    basis = rotated_basis_of_first_20_dims()
    basis = basis.to(torch.float16) if dtype == "float16" else basis * 1.0004
    gram = basis.double().T @ basis.double()
    assert (gram - torch.eye(20, dtype=torch.float64)).abs().max() > 1e-4  # outside the patch's tolerance
    save_file({"wx": basis.contiguous()}, str(tmp_path / "b.safetensors"))
    r = run(spec('module "layers.0" output : basis("b.safetensors", key="wx")'), tmp_path)
    assert r.status == "passed", r.reason
    assert all(c.iia.estimate == 1.0 for c in r.claims)


def test_a_variable_bound_to_two_sites_patches_both_in_one_run(tmp_path):
    # layers.1 reads layers.0's output: patching only the input of layers.1 is the same
    # intervention, and patching both sites at once must agree with it.
    r = run(spec('module "layers.0" output : [0:20], module "layers.1" input : [0:20]'), tmp_path)
    assert r.status == "passed", r.reason
    assert all(c.iia.estimate == 1.0 for c in r.claims)
