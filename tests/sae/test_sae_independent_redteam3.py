"""Red-team: SAE-latent claims scored against an independent computation of the documented
patch (docs/language.md §6.6): `f'` is `f(x)` with each listed latent taken from *its own
variable's* source, `x' = x + (f' − f(x)) @ W_dec` (the base keeps its error term).

The network is `tests/claims/test_multi_source_redteam3.py`'s `sum` (module `feat` = [x, y],
output x + y unless z == 3). The SAE (d_in 2, d_sae 4) subtracts `b_dec` from its input, has
biases, and its encoder columns are *not* orthogonal to the other latents' decoder rows (latent 1
reads x as well as y), so its reconstruction is inexact and patching latent 0 changes latent 1's
activation: the order in which two latent patches at one site are applied matters, and only the
joint formula is the documented one. Latent 0 reads exactly x (`relu(x − 0.5 + 0.5)`) and
decodes along feat[0]: the claim A → latent 0 is true.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.compile.plan import compile_check
from causalspec.semantics.analyse import load_text
from causalspec.testing.sae import write_sae
from tests.claims import test_multi_source_redteam3 as ms

W_ENC = torch.tensor([[1.0, 0.3, 0.2, -0.5], [0.0, 1.0, 0.7, 0.4]])
B_ENC = torch.tensor([0.5, 0.1, -0.3, 0.2])
W_DEC = torch.tensor([[1.0, 0.0], [0.2, 0.9], [0.5, 0.5], [-0.3, 0.6]])
B_DEC = torch.tensor([0.5, -0.1])

CHECKS = {  # name: (alignment lines, interchange)
    "TrueA": ('  A -> module "feat" output : sae("sae", latents=[0])', "A"),
    "WrongA": ('  A -> module "feat" output : sae("sae", latents=[2])', "A"),
    "Multi": ('  A -> module "feat" output : sae("sae", latents=[0])\n'
              '  B -> module "feat" output : sae("sae", latents=[1])', "{A | B}"),
    "Joint": ('  A -> module "feat" output : sae("sae", latents=[0])\n'
              '  B -> module "feat" output : sae("sae", latents=[1])', "{A, B}"),
    "Pair": ('  A -> module "feat" output : sae("sae", latents=[0, 1])', "A"),
}
LATENTS = {"TrueA": {"A": [0]}, "WrongA": {"A": [2]}, "Multi": {"A": [0], "B": [1]},
           "Joint": {"A": [0], "B": [1]}, "Pair": {"A": [0, 1]}}


def spec() -> str:
    net = (f'network sum = torch "{ms.HERE}:build_sum" weights "sum.safetensors" {{\n'
           f'  encode "{ms.HERE}:encode"\n}}\n')
    text = ms.MODEL + net
    for name, (lines, inter) in CHECKS.items():
        text += f"align Sum to sum as {name} {{\n{lines}\n  O -> output\n}}\n"
        text += f"check {name} {{\n  interchange {inter}\n  pairs 160 seed 2\n  expect iia >= 0.99\n}}\n"
    return text


THRESHOLD = torch.tensor([0.2, 0.6, 0.3, 0.1])  # jumprelu: latent 0 (x >= 1 is 1 or more) still reads x
TOPK = 3  # topk: 3 of the 4 latents; latent 0 is not always among them (the claim may fail)
ARCHITECTURES = ["standard", "jumprelu", "topk"]


def encode_sae(x: torch.Tensor, architecture: str = "standard") -> torch.Tensor:
    """SAELens's encoders, written out here (independently of causalspec.run.sae)."""
    pre = (x - B_DEC) @ W_ENC + B_ENC
    if architecture == "jumprelu":
        return torch.where(pre > THRESHOLD, torch.relu(pre), torch.zeros_like(pre))
    if architecture == "topk":
        keep = torch.zeros_like(pre, dtype=torch.bool)
        keep[pre.topk(TOPK).indices] = True
        return torch.where(keep, torch.relu(pre), torch.zeros_like(pre))
    return torch.relu(pre)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def setup(request, tmp_path_factory):
    arch = request.param
    tmp = tmp_path_factory.mktemp("sae_ind")
    save_file({k: v.contiguous().clone() for k, v in ms.SumNet().state_dict().items()}, str(tmp / "sum.safetensors"))
    write_sae(tmp / "sae", W_ENC, B_ENC, W_DEC, B_DEC, hook_name="feat", apply_b_dec_to_input=True,
              architecture=arch, threshold=THRESHOLD if arch == "jumprelu" else None,
              k=TOPK if arch == "topk" else None)
    ir = load_text(spec(), str(tmp / "spec.cspec"), base_dir=tmp)
    return ir, {r.name: r for r in run_checks(ir, CheckOptions())}, arch


def independent(ir, name: str, arch: str = "standard") -> tuple[int, int]:
    (check,) = [c for c in ir.checks if c.name == name]
    (claim,) = [c for c in compile_check(ir, check).claims if c.kind == "declared"]
    pairs, net = claim.pairs, ms.SumNet()

    def row(values: dict, i: int) -> dict:
        return {n: int(values[n][i]) for n in "xyz"}

    def run(v: dict, feat: torch.Tensor | None = None) -> int:
        handle = None if feat is None else net.feat.register_forward_hook(lambda m, i, o: feat.reshape(1, 2))
        try:
            return int(net(ms.encode({k: [x] for k, x in v.items()})).argmax(-1))
        finally:
            if handle is not None:
                handle.remove()

    def act(v: dict) -> torch.Tensor:
        return net.feat(ms.encode({k: [x] for k, x in v.items()}))[0]

    kept = right = 0
    for i in range(pairs.n):
        base, sources = row(pairs.base, i), [row(s, i) for s in pairs.sources]
        if any(run(v) != v["x"] + v["y"] for v in [base, *sources]):
            continue
        kept += 1
        src_of = {var: sources[g] for g, group in enumerate(claim.groups) for var in group}
        xb = act(base)
        f_base = encode_sae(xb, arch)
        f_new = f_base.clone()
        for var, latents in LATENTS[name].items():
            f_new[latents] = encode_sae(act(src_of[var]), arch)[latents]
        patched = xb + (f_new - f_base) @ W_DEC
        expected = src_of.get("A", base)["x"] + src_of.get("B", base)["y"]
        right += run(base, patched) == expected
    return kept, right


@pytest.mark.parametrize("name", list(CHECKS))
def test_sae_iia_matches_the_documented_formula(setup, name):
    ir, results, arch = setup
    r = results[name]
    kept, right = independent(ir, name, arch)
    (claim,) = [c for c in r.claims if c.kind == "declared"]
    assert claim.kept == kept
    assert (claim.iia.successes, claim.iia.trials) == (right, kept), (name, claim.iia, right)


def test_true_latent_passes_and_wrong_latent_fails(setup):
    _, results, arch = setup
    if arch != "standard":
        return  # only the ReLU SAE's latent 0 reads x exactly
    assert results["TrueA"].status == "passed", results["TrueA"].reason
    assert results["TrueA"].claims[0].iia.estimate == 1.0
    assert results["WrongA"].status == "failed", results["WrongA"].reason


def test_an_sae_with_a_nan_weight_is_an_error_naming_the_sae(tmp_path):
    """Was: every patched run NaN, and the error said to fix the *network*."""
    state = {k: v.contiguous().clone() for k, v in ms.SumNet().state_dict().items()}
    save_file(state, str(tmp_path / "sum.safetensors"))
    w_enc = W_ENC.clone()
    w_enc[1, 2] = float("nan")
    write_sae(tmp_path / "sae", w_enc, B_ENC, W_DEC, B_DEC, hook_name="feat", apply_b_dec_to_input=True)
    text = spec().split("align Sum")[0] + (
        'align Sum to sum as T {\n  A -> module "feat" output : sae("sae", latents=[0])\n  O -> output\n}\n'
        "check T {\n  interchange A\n  pairs 32 seed 1\n  expect iia >= 0.9\n}\n")
    (r,) = run_checks(load_text(text, str(tmp_path / "spec.cspec"), base_dir=tmp_path), CheckOptions())
    assert r.status == "error"
    assert "SAE `sae`" in r.reason and "W_enc" in r.reason and "non-finite" in r.reason, r.reason
    assert "fix the network" not in r.reason
