"""Diagnostics of where a claim fails (buckets, suggestions) and the illusion check."""

from __future__ import annotations

import numpy as np

from causalspec.checking import CheckOptions, run_checks
from causalspec.score.diagnostics import buckets, full_patch_summary, illusion_warning
from causalspec.semantics.analyse import load_text

MODEL = """
model M {
  input a, b : bool
  var A : bool = a
  var B : bool = b
  output o : bool = A and B
}
"""


def _model():
    ir = load_text(MODEL + "\n")
    return ir.models["M"]


def test_buckets_key_on_intervened_and_context_values():
    m = _model()
    base = m.run({"a": np.array([True, False, True, False]), "b": np.array([True, True, False, False])})
    src = m.run({"a": np.array([False, True, True, True]), "b": np.array([False, False, False, False])})
    kept = np.ones(4, bool)
    correct = np.array([True, False, True, False])
    out, suggestion = buckets(m, [["A"]], base, [src], kept, correct, describe=lambda i: {"pair": i})
    keys = [b["key"] for b in out]
    assert {"A": "true→false", "B (base)": "true"} in keys
    assert all(set(k) == {"A", "B (base)"} for k in keys)
    assert out[0]["iia"] == 0.0 and out[0]["examples"] == [{"pair": out[0]["examples"][0]["pair"]}]
    assert sum(b["pairs"] for b in out) == 4
    assert suggestion == ""  # too few failures to suggest anything


def test_suggestion_when_failures_concentrate_on_one_value():
    m = _model()
    n = 200
    rng = np.random.default_rng(0)
    a_base, a_src = rng.random(n) < 0.5, rng.random(n) < 0.5
    b = rng.random(n) < 0.5
    base = m.run({"a": a_base, "b": b})
    src = m.run({"a": a_src, "b": b})
    correct = ~(a_src & ~a_base)  # fails exactly when the source has A true and the base A false
    out, suggestion = buckets(m, [["A"]], base, [src], np.ones(n, bool), correct)
    assert "A" in suggestion and "false→true" in suggestion
    assert "try a larger subspace" in suggestion
    worst = out[0]
    assert worst["key"]["A"] == "false→true" and worst["iia"] == 0.0


def test_kept_filter_and_unknown_wide_domains_are_respected():
    ir = load_text("""
model W {
  input x : int 0..50
  var y : int 0..50 = x
  output o : bool = y > 25
}
""")
    m = ir.models["W"]
    env = m.run({"x": np.arange(10)})
    out, _ = buckets(m, [["y"]], env, [env], np.ones(10, bool), np.ones(10, bool))
    assert out == []  # a 51-value variable would give a bucket per pair: not a key


def test_full_patch_summary_flags_a_dormant_pathway():
    kept = np.ones(100, bool)
    base = np.zeros(100, int)
    expected = np.ones(100, int)
    sub = np.r_[np.ones(40, int), np.zeros(60, int)]  # the subspace patch moves 40%
    full = np.zeros(100, int)  # the whole component moves nothing
    s = full_patch_summary(kept, expected, base, sub, full)
    assert s["dormant"] and s["subspace_moved"] == 0.4 and s["full_moved"] == 0.0
    assert "dormant pathway" in illusion_warning("{X}", s)
    same = full_patch_summary(kept, expected, base, sub, sub)
    assert not same["dormant"]


DORMANT_NET = '''
import torch
from torch import nn


class Dormant(nn.Module):
    """h = [x, x] (two copies of the input bit); out reads h0 - h1 + x, so on its own inputs
    the component h never matters (h0 - h1 = 0), but patching h0 alone from a source does."""

    def __init__(self):
        super().__init__()
        self.h = nn.Identity()

    def forward(self, x):
        x = x.float()[:, None]
        h = self.h(torch.cat([x, x], dim=1))
        y = 4 * (h[:, 0] - h[:, 1]) + 2 * x[:, 0] - 1
        return torch.stack([-y, y], dim=1)


def build():
    return Dormant()


def encode(values):
    return torch.tensor([1 if v else 0 for v in values["x"]])
'''


def test_illusion_check_warns_on_a_dormant_pathway(tmp_path):
    from safetensors.torch import save_file

    from causalspec.semantics.analyse import load

    (tmp_path / "dormant.py").write_text(DORMANT_NET)
    save_file({}, str(tmp_path / "empty.safetensors"))  # the net has no parameters
    spec = tmp_path / "d.cspec"
    spec.write_text('''
model D {
  input x : bool
  var v : bool = x
  output o : bool = v
}
network net = torch "dormant.py:build" weights "empty.safetensors" {
  encode "dormant.py:encode"
}
align D to net as Sub {
  v -> module "h" output : [0:1]
  o -> output : argmax
}
check Sub {
  interchange v
  pairs 128 seed 0
  expect iia >= 0.5
}
''')
    [r] = run_checks(load(spec), CheckOptions())
    [claim] = r.claims
    assert claim.full_patch is not None
    assert claim.full_patch["subspace_moved"] > 0.2 and claim.full_patch["full_moved"] == 0.0
    assert claim.full_patch["dormant"]
    assert any("dormant pathway" in w for w in r.warnings)
    assert r.forward_passes["patched (illusion check)"] >= 1
