"""Verdicts of `causalspec.claims.runner`: ground truth, guards, skips and check-time errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from safetensors.torch import save_file

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text
from causalspec.testing.specs import HIER_EQ_EXAMPLE, HIER_EQ_MODEL, hand_network, hier_eq_alignment

HIER = HIER_EQ_EXAMPLE
HIER_SPEC = (HIER_EQ_MODEL + hand_network() + hier_eq_alignment("True_", "[0:20]", "[20:40]")
             + hier_eq_alignment("Swapped", "[20:40]", "[0:20]") + """
check True_ {
  interchange WX, YZ, {WX, YZ}, {WX | YZ}
  pairs 256 seed 3
  expect iia >= 0.99 each
}
check Swapped {
  interchange WX, YZ
  pairs 256 seed 3
  expect iia >= 0.9 each
}
""")


def _run(text: str, tmp_path: Path, **options):
    ir = load_text(text, str(tmp_path / "spec.cspec"), base_dir=tmp_path)
    return {r.name: r for r in run_checks(ir, CheckOptions(**options))}


def test_true_alignment_scores_exactly_one_and_wrong_one_fails(tmp_path):
    results = _run(HIER_SPEC, tmp_path)
    true, swapped = results["True_"], results["Swapped"]
    assert true.status == "passed", true.reason
    for claim in true.claims:
        assert claim.kept == claim.sampled == 256  # the hand-built net is exact
        assert claim.iia.successes == claim.iia.trials  # IIA exactly 1.0
        assert claim.changed > 0 and claim.moved > 0
    assert swapped.status == "failed"
    assert all(c.iia.estimate < 0.7 for c in swapped.claims)
    assert "iia >= 0.9" in swapped.reason
    assert swapped.claims[0].counterexamples, "a failing claim shows counterexamples"
    ce = swapped.claims[0].counterexamples[0]
    assert set(ce) >= {"base", "sources", "expected", "predicted"} and ce["expected"] != ce["predicted"]


def test_same_seed_reproduces_every_number(tmp_path):
    a = [r.to_dict() for r in _run(HIER_SPEC, tmp_path, only=["Swapped"]).values()]
    b = [r.to_dict() for r in _run(HIER_SPEC, tmp_path, only=["Swapped"]).values()]
    for x in a + b:
        x.pop("seconds")
    assert a == b


def test_each_unique_input_runs_once_in_the_clean_pass(tmp_path):
    r = _run(HIER_SPEC, tmp_path, only=["True_"], batch=1000)["True_"]
    # one clean batch covers the whole pool; one patched batch per interchange set
    own = {k: v for k, v in r.forward_passes.items() if "(" not in k}  # the claim's own passes
    assert own == {"clean": 1, "patched": 4}
    assert r.forward_passes["patched (illusion check)"] == 4  # the slices' whole-component patches, listed apart
    assert r.unique_inputs <= r.pool


DEAD_NET = '''
import torch
from torch import nn


class Net(nn.Module):
    """Output = A. Hidden units 2..3 are computed but nothing reads them (dead)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(x)))


def build():
    return Net()


def weights():
    net = Net()
    with torch.no_grad():
        net.hidden.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))
        net.hidden.bias.copy_(torch.tensor([0.0, 1.0, 0.0, 1.0]))
        net.head.weight.copy_(torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))
        net.head.bias.zero_()
    return net.state_dict()


def encode(values):
    return torch.tensor([[float(a), float(b)] for a, b in zip(values["A"], values["B"])])
'''


def _dead_spec(tmp_path: Path, site: str, expect: str = "iia >= 0.0") -> str:
    (tmp_path / "dead.py").write_text(DEAD_NET)
    import importlib.util

    spec = importlib.util.spec_from_file_location("dead_net_for_test", tmp_path / "dead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_file({k: v.contiguous() for k, v in module.weights().items()}, str(tmp_path / "dead.safetensors"))
    return textwrap.dedent(f"""
        model Copy {{
          input A, B : bool ~ uniform
          var Hid : bool = A
          output O : bool = Hid
        }}
        network dead = torch "dead.py:build" weights "dead.safetensors" {{ encode "dead.py:encode" }}
        align Copy to dead as Claim {{
          Hid -> {site}
          O -> output : argmax
        }}
        check Claim {{
          interchange Hid
          pairs 64 seed 0
          expect {expect}
        }}
    """)


def test_effect_size_guard_fails_a_patch_that_never_moves_the_output(tmp_path):
    # `iia >= 0.0` always holds numerically; the guard must still refuse a pass because
    # patching the dead units never changes the network's output.
    r = _run(_dead_spec(tmp_path, 'module "hidden" output : [2:4]'), tmp_path)["Claim"]
    assert r.status == "failed"
    assert "effect-size guard" in r.reason
    assert r.claims[0].moved == 0 and r.claims[0].changed > 0


def test_live_units_pass_the_same_check(tmp_path):
    r = _run(_dead_spec(tmp_path, 'module "hidden" output : [0:2]', "iia >= 0.99"), tmp_path)["Claim"]
    assert r.status == "passed", r.reason
    assert r.claims[0].iia.estimate == 1.0


def test_site_the_family_cannot_serve_is_an_error_listing_what_it_can(tmp_path):
    r = _run(_dead_spec(tmp_path, "resid.post[0]"), tmp_path)["Claim"]
    assert r.status == "error"
    assert "resid.post[0]" in r.reason and "module" in r.reason


def test_missing_torch_weights_are_a_spec_error_and_weights_gone_since_an_error(tmp_path):
    """A local weights file is never a skip (issue 10): missing at analysis it is E0801; gone
    between analysis and the run, every check on it is an error naming the file."""
    from causalspec.diagnostics import SpecError

    text = HIER_SPEC.replace(f"{HIER}/hand.safetensors", str(tmp_path / "absent.safetensors"))
    with pytest.raises(SpecError) as info:
        _run(text, tmp_path)
    assert [d.code for d in info.value.diagnostics] == ["E0801"]
    weights = tmp_path / "hand.safetensors"
    weights.write_bytes((HIER / "hand.safetensors").read_bytes())
    ir = load_text(HIER_SPEC.replace(f"{HIER}/hand.safetensors", str(weights)), str(tmp_path / "spec.cspec"),
                   base_dir=tmp_path)
    weights.unlink()
    results = run_checks(ir, CheckOptions())
    assert {r.status for r in results} == {"error"}
    assert all(f"weights file `{weights}` not found" in r.reason for r in results)


def test_strict_turns_a_skip_into_an_error_that_says_so(tmp_path):
    from causalspec.claims.runner import apply_strict
    from causalspec.score.results import CheckResult, summary_line

    def skipped():
        return CheckResult("C", "A", "M", "gpt2", "skipped", reason="weights for `gpt2` not found locally")

    assert apply_strict(skipped(), CheckOptions()).status == "skipped"
    r = apply_strict(skipped(), CheckOptions(strict=True))
    assert (r.status, r.strict_skip) == ("error", "--strict")
    assert r.reason == "skipped, and --strict fails every skip: weights for `gpt2` not found locally"
    assert summary_line([r]) == "0 passed, 1 failed (1 skip failed by --strict)"
    assert summary_line([r, apply_strict(skipped(), CheckOptions(strict=True))]) == \
        "0 passed, 2 failed (2 skips failed by --strict)"
    passed = CheckResult("P", "A", "M", "n", "passed")
    assert apply_strict(passed, CheckOptions(strict=True)).status == "passed"
