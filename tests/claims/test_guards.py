"""The two statistical guards of a pass (causalspec/score/guards.py, claims.alignment): chance
agreement of the unpatched network (keep-rate guard) and the sign test of IIA against the
no-intervention baseline (baseline guard).

Why end to end on hand-built networks: the holes these guards close were wrong claims that
PASSED on real runs — a network computing `y` passing "O = x" on a binary output (it keeps
~25% of the pairs, above the 20% floor, and on those x == y), and a wrong site beating the
baseline by a pair or two. The tests pin that they now fail, and that the correct claims on
the same networks and pairs still pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from causalspec.claims.alignment import baseline_guard, evaluate_conditions, keep_rate_guard, thin_evidence_warning
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.compile.plan import compile_check
from causalspec.score.guards import (AGREEMENT_ROWS, AGREEMENT_ROWS_CAP, ALPHA, KAPPA_MARGIN, Agreement, PairedChange,
                                     agreement, agreement_rows, binomial_tail, model_chance, paired_change,
                                     pooled_agreement, pooled_paired)
from causalspec.score.iia import score_claim
from causalspec.score.results import ClaimResult
from causalspec.score.stats import wilson
from causalspec.semantics.analyse import load_text

HERE = Path(__file__).resolve()


# ───────────────────────── networks ─────────────────────────

class XYNet(nn.Module):
    """Inputs [x, y] (bools as floats); `feat` copies them; the head outputs feat[`read`] as a
    bool (classes false, true). read=0 computes x (the model's O), read=1 computes y."""

    def __init__(self, read: int) -> None:
        super().__init__()
        self.read = read
        self.feat = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.feat.weight.copy_(torch.eye(2))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = self.feat(v)[:, self.read]
        return torch.stack([1 - h, h], dim=-1)


def build_x() -> nn.Module:
    return XYNet(0)


def build_y() -> nn.Module:
    return XYNet(1)


def encode(values: dict) -> torch.Tensor:
    return torch.stack([torch.as_tensor(values[n], dtype=torch.float32).reshape(-1) for n in "xy"], dim=1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("guards")
    state = {k: v.detach().contiguous().clone() for k, v in XYNet(0).state_dict().items()}
    save_file(state, str(tmp / "xy.safetensors"))
    return tmp


# z is read by nothing: it only makes the input space large enough that a source drawn to differ
# from its base is still independent of it (on x, y alone the keep-rate is ~1/6, under the floor)
COPY_X = "model CopyX {\n  input x, y : bool\n  input z : int 0..7\n  var S : bool = x\n  output O : bool = S\n}\n"


def spec(net: str, site: str, pairs: int = 512, seed: int = 0) -> str:
    return (COPY_X + f'network {net} = torch "{HERE}:build_{net}" weights "xy.safetensors" {{\n'
            f'  encode "{HERE}:encode"\n}}\n'
            f'align CopyX to {net} as A {{\n  S -> module "feat" output : {site}\n  O -> output\n}}\n'
            f"check A {{\n  interchange S\n  pairs {pairs} seed {seed}\n  expect iia >= 0.9\n}}\n")


def run(text: str, folder: Path):
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    (result,) = run_checks(ir, CheckOptions())
    return result


# ───────────────────────── the chance-agreement hole ─────────────────────────

# seeds 0 and 2: the pool's x == y share came out at 54% (278, 275 of 512 rows), so a test against chance
# alone calls this network's agreement significant (p = 0.036, 0.049); the κ margin is what refuses it
@pytest.mark.parametrize("pairs,seed", [(512, 0), (1024, 0), (128, 5), (1024, 2)])
def test_a_network_computing_y_does_not_pass_o_equals_x_on_the_pairs_where_they_coincide(folder, pairs, seed):
    # the model says O = x (binary), the network outputs y: it agrees with the model on ~half the
    # inputs, keeps ~25% of the pairs (above the 20% floor), and on every kept pair (x == y on base
    # and source) interchanging y's unit gives exactly the counterfactual x. Before the chance test
    # this PASSED `iia >= 0.9` with IIA 1.000.
    r = run(spec("y", "[1:2]", pairs, seed), folder)
    (claim,) = r.claims
    assert claim.iia.estimate == 1.0 and claim.moved > 0 and claim.keep_rate > 0.2  # what passed before
    assert claim.paired is not None and claim.paired.significant  # the baseline guard alone would pass it
    a = claim.agreement
    # the pool's rows, topped up to 512 with rows drawn for the test (claims.chance)
    assert a is not None and a.trials == 512 and a.drawn == 512 - min(pairs, 512) and abs(a.chance - 0.5) < 0.05
    assert a.kappa < KAPPA_MARGIN and not a.significant
    assert r.status == "failed", r.reason
    assert (binomial_tail(a.agreed, a.trials, a.chance) < ALPHA) == (seed in (0, 2))
    assert "chance agreement" in r.reason and "not significantly above chance" in r.reason and "p = " in r.reason
    if a.drawn:
        assert "of the 512 inputs of its chance test (" in r.reason
        assert f"; {min(pairs, 512)} of the check's pool, {a.drawn} drawn for the test)" in r.reason
    else:
        assert "of the 512 inputs of the check's pool" in r.reason


@pytest.mark.parametrize("pairs", [16, 32, 64, 128, 512])
@pytest.mark.parametrize("seed", range(4))
def test_the_network_computing_y_fails_at_every_pair_count(folder, pairs, seed):
    # a small pool is topped up to 512 rows for the chance test: more rows refuse the hole more surely
    r = run(spec("y", "[1:2]", pairs, seed), folder)
    (claim,) = r.claims
    assert r.status == "failed", r.reason
    assert claim.agreement is not None and claim.agreement.trials == 512 and claim.agreement.p_value > 0.5
    assert claim.iia.estimate == 1.0  # only a guard refuses it


def test_rows_drawn_for_the_chance_test_change_nothing_else(folder):
    # the drawn rows cost clean forward passes and are read by the chance test alone: the pairs, the
    # pool and every score are the same as a run scored on the pool (a network right everywhere draws none)
    r = run(spec("y", "[1:2]", 64, 1), folder)
    (claim,) = r.claims
    ir = load_text(spec("y", "[1:2]", 64, 1), str(folder / "spec.cspec"), base_dir=folder)
    plan = compile_check(ir, ir.checks[0])
    assert r.pool == 64 and r.unique_inputs <= 64  # the pool is the plan's
    assert claim.sampled == plan.claims[0].pairs.n and claim.agreement is not None
    assert claim.agreement.drawn == 448 and claim.agreement.trials == 512
    assert r.forward_passes["clean"] == 1 and r.forward_passes["clean (chance test)"] == 1  # the drawn rows' batch
    x = run(spec("x", "[0:1]", 64, 1), folder)
    assert x.claims[0].agreement is not None and x.claims[0].agreement.drawn == 0  # nothing dropped: no test
    assert x.forward_passes["clean"] == 1 and "clean (chance test)" not in x.forward_passes


@pytest.mark.parametrize("pairs,seed", [(512, 0), (128, 5), (1024, 1), (16, 0)])
def test_the_network_computing_x_still_passes(folder, pairs, seed):
    r = run(spec("x", "[0:1]", pairs, seed), folder)
    assert r.status == "passed", r.reason
    (claim,) = r.claims
    assert claim.iia.estimate == 1.0 and claim.kept == claim.sampled
    assert claim.agreement is not None and claim.agreement.significant
    assert claim.paired is not None and claim.paired.lost == 0 and claim.paired.significant


def test_the_guards_numbers_are_in_the_json_report(folder):
    r = run(spec("y", "[1:2]"), folder)
    guards = r.to_dict()["claims"][0]["guards"]
    assert guards["alpha"] == ALPHA
    assert set(guards["agreement"]) == {"agreed", "trials", "drawn", "rate", "chance", "kappa", "null", "p_value",
                                        "significant", "applies"}
    assert guards["agreement"]["applies"] is True  # pairs were dropped
    assert guards["agreement"]["significant"] is False and guards["agreement"]["trials"] == 512
    assert guards["agreement"]["drawn"] == 0  # a pool of 512: nothing drawn
    small = run(spec("y", "[1:2]", 64), folder).to_dict()["claims"][0]["guards"]["agreement"]
    assert small["trials"] == 512 and small["drawn"] == 448  # 64 pool rows, 448 drawn for the test
    assert set(guards["paired"]) == {"gained", "lost", "p_value", "significant"}
    assert guards["paired"]["lost"] == 0


# ───────────────────────── the baseline guard ─────────────────────────

def _claim(gained: int, lost: int, kept: int = 200, changed: int = 20, sampled: int = 200) -> ClaimResult:
    base = kept - changed  # unpatched right where nothing changes
    return ClaimResult("{S}", [["S"]], sampled, kept, {}, changed, max(gained, 1), wilson(base, kept),
                       wilson(base + gained - lost, kept), agreement=Agreement(sampled, sampled, 0.5),
                       paired=PairedChange(gained, lost))


class _Check:
    conditions = ()


def test_a_lead_of_one_pair_over_the_baseline_is_not_earned():
    reason = baseline_guard(_claim(3, 2))  # IIA beats the baseline by one pair: the old rule passed it
    assert "gained the counterfactual output on 3 kept pair(s) and lost it on 2" in reason
    assert "p = 0.5" in reason and "may be luck" in reason and "(baseline guard)" in reason
    reason = baseline_guard(_claim(12, 8))
    assert "may be luck" in reason and "sampled pairs (now 200) would decide" in reason
    reason = baseline_guard(_claim(2, 1))
    assert "too few changed pairs to decide, and the patch lost 1" in reason
    assert baseline_guard(_claim(20, 0)) == ""  # p = 2**-20


def test_no_lead_says_more_pairs_would_not_help():
    reason = baseline_guard(_claim(5, 5))
    assert "no better than the no-intervention baseline" in reason and "more pairs would not change" in reason


def test_too_few_changed_pairs_to_decide_warns_when_nothing_was_lost_and_refuses_otherwise():
    # four changed pairs, all gained: p = 1/16, no outcome of 4 pairs reaches 5% — a correct claim on a
    # small sample is not refused, but warned about, with advice
    assert baseline_guard(_claim(4, 0, changed=4)) == ""
    warning = thin_evidence_warning(_claim(4, 0, changed=4))
    assert "too few changed pairs to decide" in warning and "at least 5" in warning
    assert "rests on 4 pair(s)" in warning and "about 250 sampled pairs (now 200)" in warning
    assert thin_evidence_warning(_claim(5, 0, changed=5)) == "" == baseline_guard(_claim(5, 0, changed=5))
    assert thin_evidence_warning(_claim(3, 1)) == ""  # refused instead:
    reason = baseline_guard(_claim(3, 1))
    assert "too few changed pairs to decide, and the patch lost 1" in reason and "(baseline guard)" in reason


def test_a_claim_without_per_pair_data_keeps_the_raw_comparison():
    c = _claim(3, 2)
    c.paired = None
    assert baseline_guard(c) == ""  # IIA above baseline: the old rule
    c.iia = c.baseline
    assert "no better than the no-intervention baseline" in baseline_guard(c)


def test_the_chance_test_is_not_needed_when_no_pair_was_dropped():
    c = _claim(20, 0)
    c.agreement = Agreement(16, 16, 0.9)  # right on every base, but 16 bases of a near-constant output
    assert not c.agreement.significant and keep_rate_guard(c) == ""
    c.kept -= 1  # one pair dropped: the kept pairs are a selection, the test applies
    assert "chance agreement" in keep_rate_guard(c)


def test_the_chance_advice_asks_for_a_larger_pool():
    # the test's sample is the pool topped up with drawn rows: only a pool larger than it enlarges it
    # (`pairs` no longer does: a default pool is min(pairs, 512), no larger than the 512 drawn up to)
    small = _claim(4, 0, kept=15, changed=4, sampled=16)
    small.agreement = Agreement(14, 16, 0.58)
    reason = keep_rate_guard(small)
    assert "a test on about 17 inputs would show it (now 16: raise `pool` to about 17" in reason
    assert "of the 16 inputs of the check's pool" in reason
    big = _claim(20, 0, kept=1000, sampled=1024)
    big.agreement = Agreement(1050, 1072, 0.967, drawn=560)
    reason = keep_rate_guard(big)
    assert "on 1050 of the 1072 inputs of its chance test (0.979, κ = " in reason
    assert "; 512 of the check's pool, 560 drawn for the test), not significantly above chance" in reason
    assert "(now 1072: raise `pool` to about" in reason and "`pairs`" not in reason


def test_guards_fail_the_verdict_after_the_conditions():
    v = evaluate_conditions(_Check(), [_claim(3, 2)], [], "n")
    assert v.status == "failed"  # no condition at all comes first
    assert v.reason == "the check has no expectation to judge"


# ───────────────────────── the statistics ─────────────────────────

def test_binomial_tail_is_exact():
    from fractions import Fraction
    from math import comb

    def exact(k: int, n: int, p: Fraction) -> float:
        return float(sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)))

    for k, n, p in [(0, 5, 0.3), (5, 5, 0.5), (4, 4, 0.5), (60, 100, 0.5), (3, 100, 0.5), (990, 1000, 0.99),
                    (6, 7, 0.001), (101, 100, 0.5)]:
        assert binomial_tail(k, n, p) == pytest.approx(exact(k, n, Fraction(p)), rel=1e-9, abs=1e-300)
    assert binomial_tail(5, 5, 0.5) == 1 / 32 and binomial_tail(3, 0, 0.5) == 0.0
    assert binomial_tail(2, 4, 1.0) == 1.0 and binomial_tail(2, 4, 0.0) == 0.0
    assert 0.0 <= binomial_tail(20000, 40000, 0.5) <= 1.0  # large n: no overflow


def test_agreement_and_chance_level():
    a = agreement(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    assert (a.agreed, a.trials, a.chance) == (2, 4, 0.5) and not a.significant
    b = agreement(np.array([0] * 15 + [1]), np.array([0] * 16))  # a constant network: chance = its agreement
    assert b.agreed == 15 and b.chance == pytest.approx(15 / 16)
    c = agreement(np.array([0, 1] * 10), np.array([0, 1] * 10))
    assert c.kappa == 1.0 and c.null == pytest.approx(0.6)  # chance 0.5 plus a fifth of the way to 1
    assert c.p_value == pytest.approx(0.6 ** 20) and c.significant
    assert agreement(np.array([0, 1] * 50), np.array([0, 1] * 30 + [1, 0] * 20)).kappa == pytest.approx(0.2)
    assert agreement(np.array([0, 1]), np.array([-2, -2])).chance == 0.0  # NaN codes match nothing
    assert agreement(np.zeros(0), np.zeros(0)).p_value == 1.0


def test_paired_change_counts_the_discordant_kept_pairs():
    expected = np.array([1, 1, 0, 0, 1, 1])
    base = np.array([0, 1, 0, 1, 1, 0])
    patched = np.array([1, 0, 0, 1, 1, 1])
    kept = np.array([True, True, True, True, True, False])
    d = paired_change(expected, base, patched, kept)
    assert (d.gained, d.lost) == (1, 1)
    assert paired_change(expected, base, patched).gained == 2
    assert PairedChange(0, 0).p_value == 1.0 and not PairedChange(0, 0).significant
    assert PairedChange(4, 0).pairs_needed(100) == 125 and PairedChange(2, 2).pairs_needed(100) is None


def test_score_claim_keeps_iia_minus_baseline_equal_to_gained_minus_lost():
    rng = np.random.default_rng(0)
    n = 300
    base_label, expected = rng.integers(0, 3, n), rng.integers(0, 3, n)
    net_base = np.where(rng.random(n) < 0.8, base_label, rng.integers(0, 3, n))
    net_patched = np.where(rng.random(n) < 0.7, expected, rng.integers(0, 3, n))
    src = rng.integers(0, 3, (1, n))
    c = score_claim("{S}", [["S"]], expected=expected, base_label=base_label, source_labels=src,
                    net_base=net_base, net_sources=src, net_patched=net_patched)
    assert c.paired is not None
    assert c.iia.successes - c.baseline.successes == c.paired.gained - c.paired.lost
    assert c.agreement is None  # the pool's agreement is the run's (claims.procedure.AlignmentRun.score)


def test_pooling_sums_counts_and_averages_chance():
    a = pooled_agreement([Agreement(10, 10, 0.5), Agreement(20, 30, 0.25)])
    assert a is not None and (a.agreed, a.trials) == (30, 40) and a.chance == pytest.approx((5 + 7.5) / 40)
    assert pooled_agreement([Agreement(1, 1, 0.5), None]) is None
    assert pooled_agreement([Agreement(10, 12, 0.5, drawn=2), Agreement(10, 12, 0.5, drawn=2)]).drawn == 4


def test_the_chance_tests_size():
    assert agreement_rows(0.5) == AGREEMENT_ROWS == agreement_rows(0.836) == agreement_rows(1 / 12)
    assert 1000 < agreement_rows(0.9802) < 1100  # an output true on 1%: a network at κ 0.5 is decided there
    assert agreement_rows(1.0) == AGREEMENT_ROWS_CAP == agreement_rows(0.9999)
    assert model_chance(np.array([0, 1, 0, 1])) == 0.5 and model_chance(np.array(["a"] * 3)) == 1.0
    p = pooled_paired([PairedChange(3, 1), PairedChange(4, 0)])
    assert p == PairedChange(7, 1)
