"""Circuit claims on a hand-built network whose circuit is known (causalspec.testing.toy_circuits).

Ground truth: head 0.0 (previous-token) feeds head 1.0 (induction) through its keys; head 1.0
at the last position writes the answer. Heads 0.1-0.3 and 1.1-1.3 are distractors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED
from causalspec.semantics.analyse import load
from causalspec.testing.toy_circuits import NAMES, TEMPLATE, build_induction_model, spec_header

ABLATIONS = {"zero": "zero", "mean": "mean over Ref", "resample": "resample from Ref"}
TRUE = "group prev = head[0.0]\n  group ind = head[1.0] @ END"
ALL_EMBED = "embed -> prev; embed -> ind; embed -> logits"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "model"
    build_induction_model(path)
    return path


@pytest.fixture(scope="module")
def networks():
    return NetworkCache()


def circuit(name: str, body: str, ablation: str = "zero", expect: str = "faithfulness >= 0.9",
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


def run(tmp_path: Path, toy: Path, networks, *circuits: str, header: str | None = None, **options):
    spec = tmp_path / "toy.cspec"
    spec.write_text((header or spec_header(toy, ref_pairs=32)) + "".join(circuits))
    ir = load(spec)
    return {r.name: r for r in run_checks(ir, CheckOptions(**options), networks)}


def faith(r) -> float:
    return r.circuit.score("faithfulness").value.estimate


def test_the_toy_does_induction(toy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(toy).eval()
    tok = AutoTokenizer.from_pretrained(toy)
    names = tok.convert_tokens_to_ids(list(NAMES))
    rng = np.random.default_rng(0)
    for _ in range(10):
        a, b, c = rng.choice(NAMES, 3, replace=False)
        ids = tok(TEMPLATE.format(A=a, B=b, C=c), return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0, -1, names]
        assert NAMES[int(logits.argmax())] == b
        assert float(logits.max() - logits.sort().values[-2]) > 5


@pytest.mark.parametrize("kind", list(ABLATIONS))
def test_true_circuit_is_faithful_and_dropping_a_key_head_collapses_it(tmp_path, toy, networks, kind):
    abl = ABLATIONS[kind]
    res = run(tmp_path, toy, networks,
              circuit("True", TRUE, abl, "faithfulness >= 0.95 lower95 and necessity(prev) >= 0.5 and "
                                         "necessity(ind) >= 0.9 and completeness >= 0.9"),
              circuit("NoPrev", "group ind = head[1.0] @ END", abl),
              circuit("NoInduction", "group prev = head[0.0]", abl),
              circuit("Extra", TRUE + "\n  group extra = head[0.1], head[0.3], head[1.2]", abl,
                      "faithfulness >= 0.9 and necessity(extra) >= 0.5"))
    true = res["True"]
    assert true.status == PASSED, true.reason
    assert true.kind == "circuit"
    assert abs(faith(true) - 1) < 0.01
    assert true.circuit.score("necessity", "ind").value.estimate > 0.95
    for name in ("NoPrev", "NoInduction"):
        assert res[name].status == FAILED
        assert faith(res[name]) < 0.15, (name, faith(res[name]))
    # irrelevant heads change nothing, and are not necessary
    extra = res["Extra"]
    assert abs(faith(extra) - faith(true)) < 0.01
    assert abs(extra.circuit.score("necessity", "extra").value.estimate) < 0.01
    assert extra.status == FAILED and "necessity(extra) >= 0.5" in extra.reason
    # the numbers carry intervals, and the report says which ablation produced them
    f = true.circuit.score("faithfulness").value
    assert f.lower <= f.estimate <= f.upper
    assert true.circuit.ablation.startswith(kind)
    assert "6 of 8 attention heads" in true.circuit.universe


@pytest.mark.parametrize("kind", list(ABLATIONS))
def test_edges_distinguish_a_real_edge_from_a_missing_one(tmp_path, toy, networks, kind):
    abl = ABLATIONS[kind]
    edges = "granularity edge\n  edges {{ {} ; {}; ind -> logits }}"
    res = run(tmp_path, toy, networks,
              circuit("Real", TRUE, abl, "faithfulness >= 0.95 and necessity(prev) >= 0.5",
                      extra=edges.format(ALL_EMBED, "prev -> ind.k")),
              circuit("WrongPort", TRUE, abl, extra=edges.format(ALL_EMBED, "prev -> ind.q")),
              circuit("NoValue", TRUE, abl, extra="granularity edge\n  edges { embed -> prev; embed -> ind.q; "
                                                  "embed -> ind.k; embed -> logits; prev -> ind.k; ind -> logits }"))
    assert res["Real"].status == PASSED, res["Real"].reason
    assert abs(faith(res["Real"]) - 1) < 0.01
    assert faith(res["WrongPort"]) < 0.15 and res["WrongPort"].status == FAILED
    assert faith(res["NoValue"]) < 0.15 and res["NoValue"].status == FAILED
    assert "path patching" in res["Real"].circuit.universe
    assert res["Real"].circuit.edges[-1] == "ind -> logits"


def test_edge_level_with_every_edge_equals_node_level(tmp_path, toy, networks):
    every = "granularity edge\n  edges { prev -> ind; prev -> logits; ind -> logits%s }"
    res = run(tmp_path, toy, networks, circuit("Node", TRUE, "mean over Ref"),
              circuit("Edge", TRUE, "mean over Ref", extra=every % ""),
              circuit("EdgeEmbed", TRUE, "mean over Ref", extra=every % ("; " + ALL_EMBED)))
    for key in ("full model", "circuit", "everything ablated"):
        assert res["Node"].circuit.means[key].estimate == pytest.approx(res["Edge"].circuit.means[key].estimate,
                                                                         abs=1e-5)
    # routing `embed` keeps the circuit the same; only ∅ changes (its logits lose the embeddings too)
    assert res["EdgeEmbed"].circuit.means["circuit"].estimate == pytest.approx(
        res["Node"].circuit.means["circuit"].estimate, abs=1e-5)


def test_path_patching_matches_a_two_run_splice(tmp_path, toy, networks):
    """`prev -> ind.k` only, zero ablation, embeddings not routed: head 1.0's keys must come
    from a run where head 0.0 is kept, its queries and values from one where it is ablated."""
    from causalspec.run.families import resolve_family
    from causalspec.semantics.site_kinds import SiteAddress
    from transformers import AutoModelForCausalLM, AutoTokenizer

    res = run(tmp_path, toy, networks, circuit("K", TRUE.replace(" @ END", ""), "zero", pairs=8,
                                               extra="granularity edge\n  edges { prev -> ind.k; ind -> logits }"))
    got = res["K"].circuit.means["circuit"].estimate

    model = AutoModelForCausalLM.from_pretrained(toy).eval()
    tok = AutoTokenizer.from_pretrained(toy)
    fam = resolve_family(model)
    ir = load(tmp_path / "toy.cspec")
    from causalspec.compile.circuit_plan import compile_circuit

    plan = compile_circuit(ir, ir.circuits["K"])
    model_ir = plan.model
    names = [model_ir.domain("A").decode(plan.rows[k]) for k in ("A", "B", "C")]
    texts = [TEMPLATE.format(A=a, B=b, C=c) for a, b, c in zip(*names)]
    ids = tok(texts, return_tensors="pt")
    hd = 16

    def run_with(keep0: set[int], keep1: set[int], splice=None):
        handles = []
        for layer, keep in ((0, keep0), (1, keep1)):
            inner = fam.locate(model, SiteAddress("head.z", layer, 0)).inner

            def edit(z, keep=keep):
                z = z.clone()
                for h in range(4):
                    if h not in keep:
                        z[..., h * hd:(h + 1) * hd] = 0
                return z

            handles += inner.install_write(edit)
        if splice is not None:
            c_attn = model.transformer.h[1].attn.c_attn

            def hook(mod, args, out):
                out = out.clone()
                cols = slice(64 + 0 * hd, 64 + 1 * hd)  # k of head 1.0
                out[..., cols] = splice[..., cols]
                return out

            handles.append(c_attn.register_forward_hook(hook))
        captured = {}
        h2 = model.transformer.h[1].attn.c_attn.register_forward_hook(lambda m, a, o: captured.setdefault("y", o))
        try:
            with torch.no_grad():
                logits = model(**ids).logits[:, -1]
        finally:
            h2.remove()
            for h in handles:
                h.remove()
        return logits, captured["y"]

    _, k_source = run_with({0}, {0})  # layer 0: head 0.0 kept; its c_attn output feeds the keys
    logits, _ = run_with(set(), {0}, splice=k_source)  # q, v (and the rest) see head 0.0 ablated
    b = torch.tensor(tok.convert_tokens_to_ids(list(names[1])))
    c = torch.tensor(tok.convert_tokens_to_ids(list(names[2])))
    rows = torch.arange(len(texts))
    want = float((logits[rows, b] - logits[rows, c]).mean())
    assert got == pytest.approx(want, abs=1e-4)


def test_each_variant_costs_one_forward_pass_per_batch(tmp_path, toy):
    res = run(tmp_path, toy, NetworkCache(),
              circuit("T", TRUE, "mean over Ref", "faithfulness >= 0.9 and necessity(prev) >= 0.5", pairs=32),
              circuit("U", "group ind = head[1.0] @ END", "mean over Ref", pairs=32), batch=16)
    fp = res["T"].forward_passes
    assert fp["circuit"] == 2 and fp["clean"] == 2 and fp["ablated"] == 2  # 32 prompts / batch 16
    assert fp["knockout"] == 4  # necessity of each of the 2 groups is reported: one more variant each
    assert fp["reference"] == 2  # the mean over 32 reference prompts, computed once
    # a second circuit on the same prompts, metric and ablation reuses the ablation values, m(N) and
    # m(∅): it costs one forward pass per batch (plus one per reported knockout)
    fu = res["U"].forward_passes
    assert fu == {"circuit": 2, "knockout": 2}, fu
    assert any("reused from an earlier circuit" in n for n in res["U"].notes)
    assert res["U"].circuit.means["full model"] == res["T"].circuit.means["full model"]


def test_metrics_prob_logit_and_accuracy(tmp_path, toy, networks):
    res = run(tmp_path, toy, networks,
              circuit("Acc", TRUE, "mean over Ref", metric="accuracy"),
              circuit("Prob", TRUE, "mean over Ref", metric="prob(B) @ END"),
              circuit("ProbOut", TRUE, "mean over Ref", metric="prob()"),
              circuit("Logit", TRUE, "mean over Ref", metric="logit(B)"))
    for r in res.values():
        assert r.status == PASSED, (r.name, r.reason)
    assert res["Acc"].circuit.means["full model"].estimate == 1.0
    assert res["Acc"].circuit.clean_accuracy == 1.0
    p = res["Prob"].circuit.means["full model"].estimate
    assert 0.3 < p <= 1.0
    assert res["ProbOut"].circuit.means["full model"].estimate == pytest.approx(p)


def test_statuses_skip_error_and_effect_size_guard(tmp_path, toy, networks):
    res = run(tmp_path, toy, networks,
              circuit("OutOfRange", "group g = head[5.0]", "zero"),
              circuit("MlpOnly", "group m = mlp[0]", "zero"),  # the toy's MLPs are zero: nothing moves
              circuit("QNode", "group g = head[1.0].q", "zero"))
    assert res["OutOfRange"].status == ERROR and "layer 5 out of range" in res["OutOfRange"].reason
    assert res["MlpOnly"].status == FAILED and "effect-size guard" in res["MlpOnly"].reason
    assert res["QNode"].status == ERROR and "input of a head" in res["QNode"].reason
    missing = spec_header("causalspec-test/absent-model") + circuit("Skip", TRUE)  # a hub id, not cached
    (tmp_path / "skip.cspec").write_text(missing)
    [r] = run_checks(load(tmp_path / "skip.cspec"))
    assert r.status == SKIPPED and "not found locally" in r.reason


def test_resample_needs_prompts_of_the_same_length(tmp_path, toy, networks):
    header = spec_header(toy, ref_pairs=16).replace("dataset Ref from Induction {",
                                                    'dataset Ref from Induction {\n  prompt "then {A} {B} {A}"')
    res = run(tmp_path, toy, networks, circuit("R", TRUE, "resample from Ref"),
              circuit("M", TRUE, "mean over Ref"), header=header)
    assert res["R"].status == ERROR and "same length" in res["R"].reason and "4 token(s)" in res["R"].reason
    # a mean over shorter prompts works; the positions past them get the overall mean, said in a note
    assert res["M"].status in (PASSED, FAILED)
    assert any("longer than every reference prompt" in n for n in res["M"].notes)
    assert "'then {A} {B} {A}'" in res["M"].circuit.ablation


def test_reports_json_junit_terminal_and_cli(tmp_path, toy, networks):
    from causalspec.cli import main
    from causalspec.report.json_report import dumps, to_json
    from causalspec.report.junit import dumps as junit_dumps, to_junit
    from causalspec.report.terminal import check_text

    res = run(tmp_path, toy, networks,
              circuit("T", TRUE, "mean over Ref", "faithfulness >= 0.9 lower95 and necessity(ind) >= 0.5"),
              circuit("Bad", "group ind = head[1.0] @ END", "mean over Ref"))
    text = check_text(res["T"])
    for needle in ("PASS T", "holds on 32 sampled prompts (seed 0)", "mean over dataset `Ref`",
                   "faithfulness", "necessity(ind)", "m(C), circuit", "group ind = a1.h0 @ END",
                   "faithfulness >= 0.9 lower95"):
        assert needle in text, needle
    bad = check_text(res["Bad"])
    assert "FAIL Bad" in bad and "reproduce: causalspec check" in bad and "--only Bad" in bad
    doc = json.loads(dumps(to_json(list(res.values()))))
    c = doc["checks"][0]
    assert c["kind"] == "circuit" and c["circuit"]["scores"][0]["name"] == "faithfulness"
    assert c["circuit"]["groups"][1] == {"name": "ind", "nodes": ["a1.h0"], "spec": ["head[1.0]"], "positions": "END"}
    xml = junit_dumps(to_junit(list(res.values())))
    assert 'name="faithfulness lower95"' in xml and 'name="circuit ablation"' in xml
    # the CLI runs circuits like checks: --only picks one, the exit code follows the verdict
    spec = str(tmp_path / "toy.cspec")
    assert main(["check", spec, "--only", "T", "--quiet"]) == 0
    assert main(["check", spec, "--only", "Bad", "--quiet"]) == 1


def test_the_shipped_example_holds_where_it_should(tmp_path, toy):
    import shutil

    root = Path(__file__).resolve().parents[2] / "examples" / "induction_circuit"
    shutil.copy(root / "induction.cspec", tmp_path)
    shutil.copytree(toy, tmp_path / "model")
    results = run_checks(load(tmp_path / "induction.cspec"), CheckOptions(pairs=32))
    assert [(r.name, r.status) for r in results] == [("InductionCircuit", PASSED), ("InductionPaths", PASSED),
                                                     ("WrongPort", FAILED)]


def test_attention_layers_are_head_groups_with_ports(tmp_path, toy, networks):
    body = "group prev = head[0.0]\n  group ind = attn[1] @ END"
    res = run(tmp_path, toy, networks, circuit("Layer", body, "mean over Ref", extra=(
        "granularity edge\n  edges { embed -> prev; embed -> ind; embed -> logits; prev -> ind.k; ind -> logits }")))
    r = res["Layer"]
    assert r.status == PASSED, r.reason
    assert r.circuit.groups[1]["nodes"] == ["a1.h0", "a1.h1", "a1.h2", "a1.h3"]
    assert "the 3 of 8 attention heads outside the circuit" in r.circuit.universe
