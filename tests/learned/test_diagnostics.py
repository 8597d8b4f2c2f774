"""Diagnostics of where a claim fails (buckets, suggestions) and the illusion check."""

from __future__ import annotations

import numpy as np

from causalspec.claims.runner import CheckOptions, run_checks
import pytest

from causalspec.score.buckets import buckets, full_patch_summary
from causalspec.score.illusion import clean_span, illusion_summary, illusion_warning, project
from causalspec.semantics.analyse import load_text
from causalspec.testing.illusion import TOY_SPEC, XOR_SPEC, write_toy, write_xor

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


def test_full_patch_summary_reports_without_a_verdict():
    kept = np.ones(100, bool)
    base = np.zeros(100, int)
    expected = np.ones(100, int)
    sub = np.r_[np.ones(40, int), np.zeros(60, int)]  # the subspace patch moves 40%
    full = np.zeros(100, int)  # the whole component moves nothing
    s = full_patch_summary(kept, expected, base, sub, full)
    assert s == {"pairs": 100, "subspace_moved": 0.4, "full_moved": 0.0, "full_iia": 0.0}  # no "dormant" verdict


def test_clean_span_keeps_the_directions_the_activations_vary_along():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 1)) * np.array([[1.0, 1.0, 0.0, 0.0]]) + np.array([3.0, 3.0, 7.0, 0.0])
    span = clean_span(list(x))  # rows [width]
    assert span.shape == (4, 1)
    assert abs(abs(span[:, 0] @ np.array([1, 1, 0, 0]) / np.sqrt(2)) - 1) < 1e-9
    # rows [n_pos, width] pool their positions; more rows than the width takes the eigh path
    y = rng.normal(size=(40, 3, 2)) @ np.eye(2, 5) + 1e-9 * rng.normal(size=(40, 3, 5))
    assert clean_span(list(y)).shape == (5, 2)  # 1e-9 noise is below the tolerance
    assert clean_span([np.ones(4)] * 3).shape == (4, 0)  # nothing varies
    inside, leak = project(np.array([[1.0], [0.0], [0.0], [0.0]]), span)
    # a difference t(1,1)/√2 patched along e0 writes (t/√2, 0): half of its length leaves the span;
    # the in-span vector with the same e0 change moves e1 with it, as the activations do
    assert leak == pytest.approx(0.5) and inside[:, 0] == pytest.approx([1.0, 1.0, 0, 0])
    assert project(span, span)[1] == pytest.approx(0.0, abs=1e-12)
    # a slice holding a dim that never varies (a dead unit) writes nothing there: no leak
    e = np.eye(4)
    assert project(e[:, [0, 2]], e[:, [0]])[1] == pytest.approx(0.0)


def test_the_in_span_patch_changes_the_same_coordinates_as_the_subspace_patch():
    """Two values that move together at one site (tracr's `opp_idx = length - index` at a fixed
    position): an exact slice of one block leaves the span, but the in-span vector that changes
    its coordinates as much changes the other block with it — a downstream read of the slice
    sees the whole change (no illusion); a read of the difference of the blocks (the dormant
    direction) sees none of it (the illusion the check must still catch)."""
    rng = np.random.default_rng(2)
    x = np.concatenate([np.eye(3)[rng.integers(0, 3, size=60)]] * 2 + [np.zeros((60, 1))], axis=1)
    span = clean_span(list(x))  # blocks 0..2 and 3..5 always equal, dim 6 dead
    slice_ = np.eye(7)[:, 3:6]
    inside, leak = project(slice_, span)
    assert leak == pytest.approx(0.5)  # half of a change of the block alone is off the span: rerun
    change = x[1] - x[0]
    patched = change @ slice_ @ inside.T  # what the in-span rerun writes for the pair (x[0], x[1])
    assert patched[3:6] == pytest.approx(change[3:6])  # the slice's own coordinates change fully
    assert patched[0:3] == pytest.approx(change[0:3])  # ... and the block that moves with it too
    assert (patched[3:6] - patched[0:3]) == pytest.approx(np.zeros(3))  # the dormant read sees nothing
    assert project(span, span)[0] == pytest.approx(span)  # inside the span: the patch itself


def test_a_span_the_pool_is_too_small_to_saturate_is_not_trusted():
    from causalspec.score.illusion import sample_limited

    rng = np.random.default_rng(1)
    few = rng.normal(size=(10, 64))  # 10 inputs at a 64-wide site: every one adds a direction
    assert clean_span(list(few)).shape[1] == 9
    assert sample_limited(9, 10, 64, pool_complete=False)
    assert not sample_limited(9, 10, 64, pool_complete=True)  # every input of the model is in the pool
    assert not sample_limited(3, 10, 64, pool_complete=False)  # rank 3 from 10 inputs: the site uses 3 dims
    assert not sample_limited(64, 100, 64, pool_complete=False)  # full width: nothing is dormant anyway


def test_illusion_summary_fires_only_when_the_in_span_part_loses_the_effect():
    kept = np.ones(100, bool)
    base = np.zeros(100, int)
    expected = np.ones(100, int)
    sub = np.r_[np.ones(40, int), np.zeros(60, int)]  # the subspace patch moves 40%
    lost = illusion_summary(kept, expected, base, sub, np.zeros(100, int), 0.75)
    assert lost["dormant"] and lost["span_moved"] == 0.0 and lost["subspace_moved"] == 0.4
    assert "dormant pathway" in illusion_warning("{X}", lost) and "75%" in illusion_warning("{X}", lost)
    kept_effect = illusion_summary(kept, expected, base, sub, sub, 0.3)
    assert not kept_effect["dormant"]
    inside = illusion_summary(kept, expected, base, sub, None, 0.0)  # the subspace lies in the span: no rerun
    assert not inside["dormant"] and inside["span_moved"] == 0.4 and not inside["rerun"]
    tiny = illusion_summary(kept, expected, base, np.r_[np.ones(3, int), np.zeros(97, int)], np.zeros(100, int), 0.9)
    assert not tiny["dormant"]  # the subspace patch itself barely moves anything


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
    assert claim.full_patch["dormant"] and claim.full_patch["span_moved"] == 0.0
    assert claim.full_patch["leak"] == pytest.approx(0.5)  # e0 = ([1,1] + [1,-1]) / 2; [1,-1] never varies
    assert any("dormant pathway" in w for w in r.warnings)
    assert r.forward_passes["patched (illusion check)"] >= 1


# ───────────── the paper's toy example, and an exact alignment the old check flagged ─────────────





def test_illusion_check_fires_on_the_papers_toy_example(tmp_path):
    """The subspace patch along v = disconnected + dormant passes the claim (IIA 1) — an
    illusion; the whole-component patch moves the output just as often, so comparing with it
    (the old check) stays silent. Restricted to the span of the clean activations (e0, e2),
    the patch writes only along the disconnected e0 and moves nothing: the warning fires."""
    from causalspec.semantics.analyse import load

    write_toy(tmp_path)
    spec = tmp_path / "t.cspec"
    spec.write_text(TOY_SPEC.replace("KEY", "v"))
    [r] = run_checks(load(spec), CheckOptions())
    [claim] = r.claims
    assert claim.iia.estimate == 1.0  # the illusion: the claim holds
    f = claim.full_patch
    assert f["subspace_moved"] > 0.3 and f["full_moved"] == f["subspace_moved"]  # the whole patch moves as much
    assert f["span_moved"] == 0.0 and f["leak"] == pytest.approx(0.5)
    assert f["dormant"]
    [w] = [w for w in r.warnings if "dormant pathway" in w]
    assert "{V}" in w and "50%" in w
    assert r.forward_passes["patched (illusion check)"] >= 2  # the whole component, then the in-span part


def test_illusion_check_is_silent_on_the_real_pathway_of_the_toy(tmp_path):
    from causalspec.semantics.analyse import load

    write_toy(tmp_path)
    spec = tmp_path / "t.cspec"
    spec.write_text(TOY_SPEC.replace("KEY", "true"))
    [r] = run_checks(load(spec), CheckOptions())
    [claim] = r.claims
    assert claim.iia.estimate == 1.0
    assert claim.full_patch["leak"] == pytest.approx(0.0, abs=1e-9) and not claim.full_patch["dormant"]
    assert not any("dormant pathway" in w for w in r.warnings)






def test_illusion_check_is_silent_on_an_exact_alignment_the_whole_component_moves_less(tmp_path):
    """Patching A's dim moves the output whenever A changes (half the pairs); patching the
    whole site swaps B too, and the output (= d) moves only when d differs (rare) — less than
    half as often, which the old check called a dormant pathway. Both dims vary on the
    network's own inputs: nothing is dormant, no warning."""
    from causalspec.semantics.analyse import load

    write_xor(tmp_path)
    spec = tmp_path / "x.cspec"
    spec.write_text(XOR_SPEC)
    [r] = run_checks(load(spec), CheckOptions())
    [claim] = r.claims
    assert claim.iia.estimate == 1.0
    f = claim.full_patch
    assert f["subspace_moved"] > 0.3 and f["full_moved"] < 0.5 * f["subspace_moved"]  # the old check's trigger
    assert not any("dormant" in w or "illusion" in w for w in r.warnings)
    assert not f["dormant"]
    assert f["leak"] == pytest.approx(0.0, abs=1e-9) and not f["rerun"]  # no extra pass
