"""DAS featurizers end to end on the planted-subspace net: training on a disjoint split,
held-out scoring, recovery of the planted directions, artifacts, controls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
from causalspec.compile.plan import compile_check
from causalspec.compile.training import row_keys, training_plan
from causalspec.semantics.analyse import load
from causalspec.testing.planted import planted_subspaces, principal_angles

from .conftest import write_spec

DAS_CHECK = """
align HierEq to planted as Rotated {
  WX -> module "layers.0" output : das(k=1)
  YZ -> module "layers.0" output : das(k=1)
  O  -> output : argmax
}
check Rotated {
  interchange WX, YZ, {WX, YZ}
  pairs 512 seed 0
  train 1024 steps 600
  controls random_subspace, heldout
  expect iia >= 0.99 each and control(random_subspace) <= 0.9 and control(heldout) <= 0.02
}
"""


def _run(path, tmp_path, **kw):
    ir = load(path)
    return run_checks(ir, CheckOptions(artifacts=str(tmp_path / "artifacts"), **kw))


@pytest.fixture(scope="module")
def first_run(planted_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("das")
    path = write_spec(planted_dir, "das.cspec", DAS_CHECK)
    [result] = _run(path, tmp)
    return path, tmp, result


def test_das_recovers_the_planted_subspace_on_held_out_pairs(first_run):
    path, tmp, r = first_run
    assert r.status == "passed", r.reason
    declared = [c for c in r.claims if c.kind == "declared"]
    assert [c.label for c in declared] == ["{WX}", "{YZ}", "{WX, YZ}"]
    for c in declared:
        assert c.iia.estimate >= 0.99, (c.label, c.iia)
        assert c.changed > 50  # the interchanges do move the expected output
    [training] = r.training
    tensors = load_file(training["artifact"])
    truth = planted_subspaces()
    for var in ("WX", "YZ"):
        learned = tensors[f"group0.{var}.basis"]
        assert learned.shape == (40, 1)
        angle = float(principal_angles(learned, truth[var]).max())
        assert angle < 0.1, (var, angle)  # radians: the learned direction is the planted one (about 3 degrees off)


def test_training_split_is_disjoint_from_held_out_pairs(first_run):
    path, _, _ = first_run
    ir = load(path)
    plan = compile_check(ir, ir.checks[0])
    tplan = training_plan(plan, 1024)
    held = set(row_keys(plan.model, plan.pool).tolist())
    train = row_keys(plan.model, tplan.pool).tolist()
    assert tplan.overlap == 0 and not held & set(train)
    assert len(tplan.claims) == len(plan.claims) and all(c.pairs.n == 1024 for c in tplan.claims)


def test_controls_and_heldout_gap_are_reported(first_run):
    _, _, r = first_run
    controls = {c.name: c for c in r.controls}
    assert set(controls) == {"random_subspace", "heldout"}
    rs = controls["random_subspace"]
    assert rs.applicable and len(rs.values) == 3
    assert max(rs.values) < 0.9  # a random direction of the same size does not carry WX
    gap = controls["heldout"]
    assert all(abs(v) <= 0.02 for v in gap.values)
    for c in r.claims:
        assert c.train_iia is not None and c.train_iia.trials > 0
    texts = {c.text: c for c in r.conditions}
    assert texts["control(random_subspace) <= 0.9"].passed
    assert texts["control(heldout) <= 0.02"].passed


def test_artifacts_reload_bit_identically_and_skip_training(first_run):
    path, tmp, r1 = first_run
    before = load_file(r1.training[0]["artifact"])
    [r2] = _run(path, tmp)
    assert r2.training[0]["reused"] is True and r1.training[0]["reused"] is False
    assert r2.training[0]["artifact"] == r1.training[0]["artifact"]
    after = load_file(r2.training[0]["artifact"])
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert [c.iia for c in r2.claims] == [c.iia for c in r1.claims]
    assert r2.forward_passes["patched"] < r1.forward_passes["patched"] + 1  # no training passes are counted
    # --retrain trains again and, being seeded, writes the same tensors
    [r3] = _run(path, tmp, retrain=True)
    assert r3.training[0]["reused"] is False
    again = load_file(r3.training[0]["artifact"])
    assert all(torch.equal(before[k], again[k]) for k in before)


def test_artifact_key_follows_seed_and_weights(first_run, planted_dir, tmp_path):
    from causalspec.claims.artifacts import artifact_key, weights_hash
    from causalspec.run.train import TrainConfig

    path, _, _ = first_run
    ir = load(path)
    check = ir.checks[0]
    plan = compile_check(ir, check)
    net = NetworkCache().get(ir, "planted", CheckOptions())
    key = artifact_key(ir, check, plan.alignment, net, plan, TrainConfig(), "network")
    assert key == artifact_key(ir, check, plan.alignment, net, plan, TrainConfig(), "network")
    assert key != artifact_key(ir, check, plan.alignment, net, plan, TrainConfig(seed=1), "network")
    assert key != artifact_key(ir, check, plan.alignment, net, plan, TrainConfig(), "random_init:0")
    h = weights_hash(net.module)
    with torch.no_grad():
        net.module.head.bias.add_(1.0)
    from causalspec.claims.artifacts import WEIGHT_HASHES

    WEIGHT_HASHES.clear()
    assert weights_hash(net.module) != h


def test_random_init_control_fails_on_the_random_copy(planted_dir, tmp_path):
    path = write_spec(planted_dir, "das_random.cspec", DAS_CHECK.replace(
        "controls random_subspace, heldout", "controls random_init").replace(
        "and control(random_subspace) <= 0.9 and control(heldout) <= 0.02", "and control(random_init) <= 0.75"))
    [r] = _run(path, tmp_path)
    [ctl] = r.controls
    assert ctl.name == "random_init" and ctl.applicable
    claims = [c.iia.estimate for c in r.claims if c.kind == "declared"]
    assert min(claims) >= 0.99
    # the same procedure (DAS trained on the random copy) does not reach the claim
    assert max(ctl.values) <= 0.75 and max(ctl.values) < min(claims) - 0.2
    assert r.status == "passed", r.reason
    variants = [t["variant"] for t in r.training]
    assert variants == ["network", "random_init #1", "random_init #2", "random_init #3"]  # 3 draws by default
    assert ctl.n_draws == 3 and all(len(d) == 3 for d in ctl.draws) and len(set(ctl.seeds)) == 3


def test_learned_featurizer_needs_class_scores(planted_dir, tmp_path):
    from causalspec.testing.planted import __file__ as planted_file

    body = DAS_CHECK.replace("controls random_subspace, heldout\n", "").replace(
        " and control(random_subspace) <= 0.9 and control(heldout) <= 0.02", "")
    spec = (planted_dir / "decode.cspec")
    text = (write_spec(planted_dir, "decode.cspec", body).read_text()
            .replace(f'  encode "{planted_file}:encode"', f'  encode "{planted_file}:encode"\n'
                                                          f'  decode "{planted_file}:decode"'))
    spec.write_text(text.replace("O  -> output : argmax", "O  -> output : decode"))
    [r] = _run(spec, tmp_path)
    assert r.status == "error" and "decode" in r.reason and "not differentiable" in r.reason


def test_sweep_cells_equal_single_site_checks(planted_dir, tmp_path):
    from causalspec.claims.locate import sweep

    body = """
align HierEq to planted as Base {
  O -> output : argmax
}
align HierEq to planted as AtL0 {
  WX -> module "layers.0" output : das(k=1)
  O -> output : argmax
}
align HierEq to planted as AtL1 {
  WX -> module "layers.1" output : das(k=1)
  O -> output : argmax
}
check Base as Find {
  locate WX over module "layers.{0..1}" output : das(k=1)
  interchange WX
  pairs 256 seed 3 train 1024 steps 400
  expect iia >= 0.9
}
check AtL0 { interchange WX  pairs 256 seed 3 train 1024 steps 400  expect iia >= 0.9 }
check AtL1 { interchange WX  pairs 256 seed 3 train 1024 steps 400  expect iia >= 0.9 }
"""
    path = write_spec(planted_dir, "sweep.cspec", body)
    ir = load(path)
    options = CheckOptions(artifacts=str(tmp_path / "a"))
    check = ir.checks[0]
    plan = compile_check(ir, check)
    net = NetworkCache().get(ir, "planted", options)
    found = sweep(ir, check, plan, net, options)
    assert found.site_labels == ['module "layers.0" output', 'module "layers.1" output']
    singles = run_checks(ir, CheckOptions(artifacts=str(tmp_path / "b"), only=["AtL0", "AtL1"]))
    for row, single in zip(found.cells, singles):
        assert row[0].iia["{WX}"] == single.claims[0].iia, (row[0].site, single.name)
    # one clean pass per unique input (plus the shared training split) served both cells
    assert found.forward_passes["clean"] == singles[0].forward_passes["clean"]
    assert found.cells[0][0].score >= 0.99 and found.cells[1][0].score < 0.9  # layers.1 mixes WX with YZ
    # the best cell is re-scored on fresh pairs by `check`
    [r] = run_checks(ir, CheckOptions(artifacts=str(tmp_path / "a"), only=["Find"]))
    assert r.locate["best"]["site"] == 'module "layers.0" output'
    assert r.locate["confirmation_seed"] != 3
    assert r.status == "passed", r.reason
    assert all(c["trained"]["reused"] for row in r.locate["cells"] for c in row)  # the sweep's artifacts


def test_seeded_training_is_deterministic():
    from causalspec.run.train import DASFeaturizer

    g1 = torch.Generator().manual_seed(0)
    g2 = torch.Generator().manual_seed(0)
    state = torch.random.get_rng_state()
    group = _fake_group()
    a = DASFeaturizer(group, 16, g1).weight().detach()
    b = DASFeaturizer(group, 16, g2).weight().detach()
    assert torch.equal(a, b)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone
    assert torch.allclose(a.T @ a, torch.eye(a.shape[1]), atol=1e-5)


def _fake_group():
    from causalspec.run.train import LearnedGroup
    from causalspec.semantics.ir import SiteBinding
    from causalspec.semantics.featurizers import LearnedDAS
    from causalspec.semantics.sites import ALL, SiteSpec

    site = SiteSpec("module", module_path="x", module_io="output")
    return LearnedGroup(site, (ALL,), "das", (("A", SiteBinding(site, (ALL,), LearnedDAS(2))),
                                              ("B", SiteBinding(site, (ALL,), LearnedDAS(3)))))


def test_random_copy_keeps_architecture_and_changes_weights(first_run):
    from causalspec.claims.procedure import random_copy

    path, _, _ = first_run
    ir = load(path)
    net = NetworkCache().get(ir, "planted", CheckOptions())
    copy = random_copy(net, 0)
    again = random_copy(net, 0)
    a, b, c = net.module.state_dict(), copy.module.state_dict(), again.module.state_dict()
    assert a.keys() == b.keys()
    assert all(a[k].shape == b[k].shape for k in a)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(b[k], c[k]) for k in b)  # seeded
    x = torch.tensor([[1, 1, 2, 3]])
    assert np.isfinite(copy.module(x).detach().numpy()).all()
