"""Red team (2): circuit claims that must not pass on a broken setup (causalspec/claims/circuit.py).

Each test builds the broken network or circuit by hand (the toy induction GPT-2 of
causalspec.testing.toy_circuits, edited) and checks what an honest tool must say.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from causalspec.claims.circuit import evaluate_circuit_conditions
from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
from causalspec.score.circuit_scores import CircuitSummary, Estimate
from causalspec.score.results import FAILED, PASSED
from causalspec.semantics.analyse import load
from causalspec.testing.tiny import single_thread
from causalspec.testing.toy_circuits import D_MODEL, build_induction_model, spec_header


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


def _circuit(name: str, body: str, ablation: str = "mean over Ref", expect: str = "faithfulness >= 0.5",
             metric: str = "logit_diff(B, C) @ END", pairs: int = 32, extra: str = "") -> str:
    return f"""
circuit {name} on toy for Induction.answer {{
  {body}
  {extra}
  ablate complement with {ablation}
  metric {metric}
  pairs {pairs}
  expect {expect}
}}
"""


def _run(tmp_path: Path, model: Path, *circuits: str, ref_pairs: int = 32):
    spec = tmp_path / "t.cspec"
    spec.write_text(spec_header(model, ref_pairs=ref_pairs) + "".join(circuits))
    return {r.name: r for r in run_checks(load(spec), CheckOptions(), NetworkCache())}


@pytest.fixture(scope="module")
def constant_values(tmp_path_factory):
    """The toy with every head's value vector a constant (W_V = 0, a bias): each head's z is the
    same vector at every position of every prompt, so mean ablation replaces it by its float32
    mean — itself up to the last bit — and ablating everything changes nothing but rounding."""
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("constant_v") / "model"
    build_induction_model(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_attn.weight[:, 2 * D_MODEL:3 * D_MODEL] = 0
            block.attn.c_attn.bias[2 * D_MODEL:3 * D_MODEL] = torch.linspace(0.1, 0.37, D_MODEL) * 7.3
    model.save_pretrained(path)
    return path


def test_mean_ablation_of_a_constant_activation_does_not_pass(tmp_path, constant_values):
    """Before: m(N) − m(∅) = 2.8e-7 with an interval excluding 0 (the same rounding on every
    prompt), faithfulness 1.0 → PASS. The effect is rounding, so the claim must fail."""
    res = _run(tmp_path, constant_values, _circuit("C", "group ind = head[1.0] @ END"), ref_pairs=37)
    r = res["C"]
    assert r.status == FAILED, (r.status, r.reason)
    assert "effect-size guard" in r.reason


def _summary(effect: Estimate, full: float, ablated: float) -> CircuitSummary:
    one = Estimate(1.0, 1.0, 1.0)
    from causalspec.score.circuit_scores import ScoreResult
    means = {"full model": Estimate(full, full, full), "circuit": Estimate(full, full, full),
             "everything ablated": Estimate(ablated, ablated, ablated)}
    return CircuitSummary(output="M.O", metric="logit_diff", ablation="mean", granularity="node", universe="",
                          prompts=32, means=means,
                          effect=effect, scores=[ScoreResult("faithfulness", "faithfulness", None, one, "")])


def _claim():
    cond = SimpleNamespace(metric="faithfulness", arg=None, statistic="mean", op=">=", threshold=0.5,
                           aggregation=None, text="faithfulness >= 0.5")
    return SimpleNamespace(conditions=[cond])


def test_effect_within_rounding_fails_and_a_small_real_effect_passes(monkeypatch):
    import causalspec.claims.circuit as mod
    monkeypatch.setattr(mod, "condition_text", lambda c: c.text)
    tiny = evaluate_circuit_conditions(_claim(), _summary(Estimate(2.8e-7, 8.9e-8, 4.9e-7), -0.0795, -0.0795))
    assert tiny.status == FAILED and "rounding" in tiny.reason
    # the tolerance scales with the metric: 1e-4 on logits of size 40 is rounding too
    big = evaluate_circuit_conditions(_claim(), _summary(Estimate(1e-4, 9e-5, 1.1e-4), 40.0, 40.0))
    assert big.status == FAILED
    # a logit difference near 0 read from logits near 50 carries their rounding
    near = _summary(Estimate(1e-4, 9e-5, 1.1e-4), 0.1, 0.1)
    near.metric_scale = 50.0
    assert evaluate_circuit_conditions(_claim(), near).status == FAILED
    # a small but real effect (0.01 logits, interval clear of rounding) is judged on its scores
    real = evaluate_circuit_conditions(_claim(), _summary(Estimate(0.01, 0.008, 0.012), 0.02, 0.01))
    assert real.status == PASSED, real.reason


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "model"
    build_induction_model(path)
    return path


def test_a_circuit_of_the_whole_model_is_not_an_earned_pass(tmp_path, toy):
    """Every head at every position (the universe of a heads-only circuit): C is N, nothing is
    ablated, faithfulness is 1 by construction. Before: PASS with no word. Necessity still
    knocks the group out and is judged as measured; with positions restricted the circuit
    ablates something and is judged normally."""
    res = _run(tmp_path, toy,
               _circuit("Whole", "group all = attn[0], attn[1]", "zero", "faithfulness >= 0.9"),
               _circuit("WholeNec", "group all = attn[0], attn[1]", "zero", "necessity(all) >= 0.9"),
               _circuit("WholeAtEnd", "group all = attn[0], attn[1] @ END", "zero", "faithfulness >= 0.0"))
    whole = res["Whole"]
    assert whole.status == FAILED and "by construction" in whole.reason, whole.reason
    assert whole.circuit.score("faithfulness").value.estimate == pytest.approx(1.0)
    assert res["WholeNec"].status == PASSED, res["WholeNec"].reason
    assert res["WholeAtEnd"].circuit.vacuous == ""


def test_nodes_outside_the_architecture_are_located_errors(tmp_path, toy):
    """Already right: a head or layer out of range ends in an error that names the architecture."""
    res = _run(tmp_path, toy, _circuit("H", "group g = head[1.7]", "zero"),
               _circuit("L", "group g = head[5.0]", "zero"))
    assert res["H"].status == "error" and "4 heads per layer" in res["H"].reason
    assert res["L"].status == "error" and "2 layers" in res["L"].reason


def test_a_metric_token_the_tokenizer_does_not_know_is_an_error(tmp_path, toy):
    """`"Marry"` (a typo) is `[UNK]` for the toy's word tokenizer. Before: the metric scored the
    unknown token's logit, the ablation moved it, and the claim PASSED with faithfulness 1.0."""
    res = _run(tmp_path, toy,
               _circuit("Diff", "group prev = head[0.0]\n  group ind = head[1.0] @ END",
                        metric='logit_diff("Marry", C) @ END'),
               _circuit("Prob", "group prev = head[0.0]\n  group ind = head[1.0] @ END", metric='prob("Marry") @ END'),
               _circuit("Known", "group prev = head[0.0]\n  group ind = head[1.0] @ END", metric='prob("Mary") @ END',
                        expect="faithfulness >= 0.0"))
    for name in ("Diff", "Prob"):
        assert res[name].status == "error", (name, res[name].status, res[name].reason)
        assert "unknown token" in res[name].reason and "'Marry'" in res[name].reason
    assert res["Known"].status in (PASSED, FAILED), res["Known"].reason


def test_an_answer_value_the_tokenizer_does_not_know_is_an_error(tmp_path, toy):
    """A domain value missing from the vocabulary is read from `[UNK]`'s logit; with one such value
    nothing collides, so only this check names it."""
    header = spec_header(toy, ref_pairs=8).replace("Lisa}", "Lisa, Zed}")
    assert "Zed" in header
    spec = tmp_path / "z.cspec"
    spec.write_text(header + _circuit("Z", "group ind = head[1.0] @ END", "zero"))
    (r,) = run_checks(load(spec), CheckOptions(), NetworkCache())
    assert r.status == "error" and "unknown token" in r.reason and "Zed" in r.reason, r.reason


def test_one_prompt_gives_no_interval_and_cannot_pass(tmp_path, toy):
    """`pairs 1`: every bootstrap resample is the one prompt, so the '95% interval' was [x, x] and
    the true circuit passed `faithfulness >= 0.5 lower95` on a single observation."""
    true = "group prev = head[0.0]\n  group ind = head[1.0] @ END"
    res = _run(tmp_path, toy, _circuit("One", true, expect="faithfulness >= 0.5 lower95", pairs=1),
               _circuit("Two", true, expect="faithfulness >= 0.5", pairs=4))
    one = res["One"]
    assert one.status == FAILED and "1 prompt" in one.reason, one.reason
    f = one.circuit.score("faithfulness").value
    assert f.estimate == pytest.approx(1.0, abs=0.01) and f.lower != f.lower  # NaN: no interval
    assert res["Two"].status == PASSED, res["Two"].reason


def test_an_edge_circuit_with_every_node_and_every_edge_is_vacuous_too(tmp_path, toy):
    """Path patching with every edge cuts nothing: C is N again. Leaving out one edge
    (embed -> logits, routed because other edges name `embed`) makes it a real claim."""
    full = "embed -> l0; embed -> l1; embed -> logits; l0 -> l1; l0 -> logits; l1 -> logits"
    cut = "embed -> l0; embed -> l1; l0 -> l1; l0 -> logits; l1 -> logits"
    body = "group l0 = attn[0]\n  group l1 = attn[1]"
    res = _run(tmp_path, toy,
               _circuit("All", body, "zero", extra=f"granularity edge\n  edges {{ {full} }}"),
               _circuit("NoEmbed", body, "zero",
                        extra="granularity edge\n  edges { l0 -> l1; l0 -> logits; l1 -> logits }"),
               _circuit("Cut", body, "zero", "faithfulness >= 0.0", extra=f"granularity edge\n  edges {{ {cut} }}"))
    for name in ("All", "NoEmbed"):
        assert res[name].status == FAILED and "by construction" in res[name].reason, (name, res[name].reason)
    assert res["Cut"].circuit.vacuous == "" and res["Cut"].status == PASSED, res["Cut"].reason


def test_a_gross_overshoot_is_noted(tmp_path, toy):
    """Cutting embed -> logits under zero ablation makes the circuit's logit difference ~4.9 times
    the full model's. `faithfulness >= 0.0` is bounded from below only and passes, but the
    report says the circuit overshoots."""
    cut = "embed -> l0; embed -> l1; l0 -> l1; l0 -> logits; l1 -> logits"
    res = _run(tmp_path, toy, _circuit("Cut", "group l0 = attn[0]\n  group l1 = attn[1]", "zero",
                                       "faithfulness >= 0.0", extra=f"granularity edge\n  edges {{ {cut} }}"))
    r = res["Cut"]
    assert r.circuit.score("faithfulness").value.estimate > 2
    assert any("overshoots" in n for n in r.notes), r.notes


def _edited_toy(path: Path, edit) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_induction_model(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        edit(model, AutoTokenizer.from_pretrained(path))
    model.save_pretrained(path)
    return path


def test_already_right_nan_outputs_are_an_error_and_a_constant_network_fails(tmp_path):
    """A network that gives NaN on the prompts with one name ends in an error naming the cause; a
    network whose logits ignore the input (final LayerNorm weight 0) fails the effect-size guard."""
    def nan_name(model, tok):
        model.transformer.wte.weight[tok.convert_tokens_to_ids("Lisa")] = float("nan")

    def constant(model, tok):
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(torch.linspace(-1, 1, D_MODEL))

    true = "group prev = head[0.0]\n  group ind = head[1.0] @ END"
    nan = _run(tmp_path, _edited_toy(tmp_path / "nan", nan_name), _circuit("C", true, "zero"))["C"]
    assert nan.status == "error" and "non-finite" in nan.reason, nan.reason
    const = _run(tmp_path, _edited_toy(tmp_path / "const", constant), _circuit("C", true, "zero"))["C"]
    assert const.status == FAILED and "effect-size guard" in const.reason, const.reason


def test_a_network_that_never_gives_the_answer_cannot_pass_a_circuit_claim(tmp_path):
    """The toy with its name unembedding rows permuted (name k's logit reads name k+1's answer
    direction): the network answers wrong on every prompt. The true heads still reproduce that
    wrong behaviour, so before, faithfulness >= 0.8 PASSED under every metric — `accuracy`
    (0 for the full model) included. The task guard fails them: no behaviour to explain."""
    from causalspec.testing.toy_circuits import NAMES

    def permute(model, tok):
        ids = tok.convert_tokens_to_ids(list(NAMES))
        rows = model.lm_head.weight[ids].clone()
        for i, t in enumerate(ids):
            model.lm_head.weight[t] = rows[(i + 1) % len(ids)]

    true = "group prev = head[0.0]\n  group ind = head[1.0] @ END"
    res = _run(tmp_path, _edited_toy(tmp_path / "perm", permute),
               *(_circuit(name, true, expect="faithfulness >= 0.8", metric=metric) for name, metric in
                 (("Diff", "logit_diff(B, C) @ END"), ("Prob", "prob()"), ("Acc", "accuracy"))))
    for name, r in res.items():
        assert r.status == FAILED and "task guard" in r.reason, (name, r.status, r.reason)
        assert r.circuit.task["successes"] == 0
        assert r.circuit.score("faithfulness").value.estimate > 0.8  # the circuit is faithful to a wrong network


def test_the_true_network_passes_the_task_guard(tmp_path, toy):
    res = _run(tmp_path, toy, _circuit("T", "group prev = head[0.0]\n  group ind = head[1.0] @ END",
                                       expect="faithfulness >= 0.9"))
    r = res["T"]
    assert r.status == PASSED, r.reason
    assert r.circuit.task["successes"] == r.circuit.task["trials"] == 32
    assert any("full model: answers Induction.answer right on 32 of 32" in n for n in r.notes), r.notes
