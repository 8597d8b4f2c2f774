"""The Python API (causalspec.load / loads / Spec.check / Network / Results): live networks bound
by name, errors as the CLI renders them, and results equal to the CLI's JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import causalspec
from causalspec.cli.app import main
from causalspec.testing.specs import HIER_EQ_EXAMPLE, MOVER_WORDS, mover_spec
from causalspec.testing.tiny import build_word_tokenizer, tiny_config

REPO = Path(__file__).resolve().parents[2]
HIER_EQ = REPO / "specs" / "hier_eq.cspec"
UNCACHED = "causalspec-tests/never-cached-model"  # a hub id no cache holds: unbound, its check is skipped


def _example_module():
    spec = importlib.util.spec_from_file_location("hier_eq_model_for_api", HIER_EQ_EXAMPLE / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verdicts(results) -> dict[str, str]:
    return {r.name: r.status for r in results}


def test_public_names_are_exported():
    for name in causalspec.__all__:
        assert getattr(causalspec, name) is not None
    assert causalspec.SpecError is causalspec.errors.SpecError
    with pytest.raises(AttributeError):
        _ = causalspec.no_such_name


def test_load_checks_a_spec_file_like_the_cli():
    results = causalspec.load(HIER_EQ).check(progress=False)  # the spec's 1024 pairs: lower95 >= 0.99
    assert _verdicts(results) == {"TrueAlignment": "passed", "SwappedAlignment": "failed"}
    assert results.exit_code == 1 and not results.passed
    true = results["TrueAlignment"]
    assert true.claims[0].iia.estimate == 1.0 and true.claims[0].iia.lower > 0.9
    assert [c.passed for c in true.conditions] == [True, True]
    assert results["SwappedAlignment"].claims[0].counterexamples
    only = causalspec.load(HIER_EQ).check(only="TrueAlignment", progress=False)
    assert only.passed and only.exit_code == 0 and len(only) == 1


def test_invalid_spec_raises_every_diagnostic_rendered_as_the_cli_does(tmp_path, capsys):
    bad = tmp_path / "bad.cspec"
    bad.write_text("model M {\n  input A : int 0..3\n  output B : bool = C\n}\nmodel M {\n}\n", encoding="utf-8")
    with pytest.raises(causalspec.SpecError) as caught:
        causalspec.load(bad)
    assert len(caught.value.diagnostics) >= 2
    assert main(["parse", str(bad)]) == 2
    cli = capsys.readouterr().err
    assert str(caught.value).strip() == cli.strip()
    with pytest.raises(causalspec.SpecError) as text_error:
        causalspec.loads(bad.read_text(encoding="utf-8"), base_dir=tmp_path, filename="bad.cspec")
    assert str(text_error.value) == str(caught.value)


def test_a_bound_torch_module_is_used_instead_of_the_files():
    """The live module has layers.0's two halves swapped: the swapped alignment now holds and the
    true one fails, which only happens if the bound module (not the weights file) ran."""
    module = _example_module().build_hand()
    with torch.no_grad():
        w = module.layers[0][0].weight
        w.copy_(torch.cat([w[20:40], w[0:20]]))
    results = causalspec.load(HIER_EQ).check(networks={"hand": module}, pairs=64, progress=False)
    assert _verdicts(results) == {"TrueAlignment": "failed", "SwappedAlignment": "passed"}


def test_an_encode_callable_replaces_the_specs_hook():
    """Feeding (Y, Z, W, X) moves WX into units 20:40: the verdicts swap, and the callable ran."""
    example = _example_module()
    calls = []

    def swapped(values):
        calls.append(len(values["W"]))
        return example.encode({"W": values["Y"], "X": values["Z"], "Y": values["W"], "Z": values["X"]})

    net = causalspec.Network(example.build_hand(), encode=swapped)
    results = causalspec.load(HIER_EQ).check(networks={"hand": net}, pairs=64, progress=False)
    assert calls
    assert _verdicts(results) == {"TrueAlignment": "failed", "SwappedAlignment": "passed"}


def _tiny_gpt2(words=MOVER_WORDS):
    from transformers import GPT2LMHeadModel

    tokenizer = build_word_tokenizer(words)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_config("gpt2", len(tokenizer), bos_token_id=2, eos_token_id=3))
    return model.eval(), tokenizer


def test_an_hf_model_and_tokenizer_are_bound_to_a_hub_name():
    """A hub id that is not cached: unbound, the check is skipped; bound to a tiny model
    built in memory, it runs on it (a random model: the verdict is whatever it is, but pairs
    were sampled and the network was evaluated)."""
    spec = causalspec.loads(mover_spec(UNCACHED, pairs=8))
    assert spec.networks == {"net": "hf"}
    assert _verdicts(spec.check(progress=False)) == {"Pos": "skipped"}
    model, tokenizer = _tiny_gpt2()
    for binding in ((model, tokenizer), causalspec.Network(model, tokenizer=tokenizer)):
        result = spec.check(networks={"net": binding}, progress=False)["Pos"]
        assert result.status in ("passed", "failed"), result.reason
        assert result.claims[0].sampled == 8 and result.forward_passes


def test_binding_mistakes_are_usage_errors():
    spec = causalspec.load(HIER_EQ)
    with pytest.raises(causalspec.UsageError, match="no network `hnad`.*did you mean `hand`"):
        spec.check(networks={"hnad": torch.nn.Linear(2, 2)}, progress=False)
    with pytest.raises(causalspec.UsageError, match="torch.nn.Module, not str"):
        spec.check(networks={"hand": "model.pt"}, progress=False)
    with pytest.raises(causalspec.UsageError, match="no tokenizer"):
        spec.check(networks={"hand": (torch.nn.Linear(2, 2), object())}, progress=False)
    with pytest.raises(causalspec.UsageError, match="only='TrueAligment'.*did you mean `TrueAlignment`"):
        spec.check(only="TrueAligment", progress=False)
    with pytest.raises(causalspec.UsageError, match="pairs= must be at least 1"):
        spec.check(pairs=0, progress=False)
    hf = causalspec.loads(mover_spec(UNCACHED, pairs=8))
    with pytest.raises(causalspec.UsageError, match="with its tokenizer"):
        hf.check(networks={"net": _tiny_gpt2()[0]}, progress=False)


def _without_timings(doc):
    if isinstance(doc, dict):
        return {k: _without_timings(v) for k, v in doc.items() if k != "seconds"}
    if isinstance(doc, list):
        return [_without_timings(v) for v in doc]
    return doc


# the shipped specs that run without external weights (the others are skipped: equal too)
SHIPPED = [("specs/hier_eq.cspec", []), ("specs/ioi_gpt2.cspec", []),
           ("examples/induction_circuit/induction.cspec", [])]


@pytest.mark.parametrize(("spec", "extra"), SHIPPED, ids=[s for s, _ in SHIPPED])
def test_api_results_equal_the_cli_json(spec, extra, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    report = tmp_path / "report.json"
    main(["check", spec, "--json", str(report), "-q", *extra])
    capsys.readouterr()
    cli = json.loads(report.read_text(encoding="utf-8"))
    api = causalspec.load(spec).check(progress=False).to_json()
    assert _without_timings(api) == _without_timings(cli)


@pytest.mark.slow  # trains DAS twice (~15 s each on 2 cores)
def test_api_results_equal_the_cli_json_on_the_das_spec(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    report, artifacts = tmp_path / "report.json", tmp_path / "artifacts"
    main(["check", "specs/hier_eq_das.cspec", "--json", str(report), "-q", "--retrain", "--artifacts", str(artifacts)])
    capsys.readouterr()
    cli = json.loads(report.read_text(encoding="utf-8"))
    api = causalspec.load("specs/hier_eq_das.cspec").check(retrain=True, artifacts=artifacts, progress=False)
    assert any(c["training"] for c in cli["checks"])
    assert _without_timings(api.to_json()) == _without_timings(cli)


def test_api_results_equal_the_cli_json_with_overrides(tmp_path, monkeypatch, capsys):
    """With --pairs/--seed the numbers agree too; only where the seed came from is named
    differently (`--seed` on the command line, `seed=` in Python)."""
    monkeypatch.chdir(REPO)
    report = tmp_path / "report.json"
    main(["check", "specs/hier_eq.cspec", "--json", str(report), "-q", "--pairs", "48", "--seed", "3"])
    capsys.readouterr()
    cli = _without_timings(json.loads(report.read_text(encoding="utf-8")))
    api = _without_timings(causalspec.load("specs/hier_eq.cspec").check(pairs=48, seed=3, progress=False).to_json())
    assert [c["seed_source"] for c in api["checks"]] == ["seed=", "seed="]
    for check in cli["checks"]:
        assert check.pop("seed_source") == "--seed"
    for check in api["checks"]:
        check.pop("seed_source")
    assert api == cli


NAMES = ["Mary", "John", "Tom", "Anna", "Paul", "Lisa", "Mark", "Kate"]
LOCATE_SPEC = f"""
model P {{
  domain Name = enum {{{", ".join(NAMES)}}}
  input  A, B : Name ~ uniform where A != B
  var    mover : Name = A
  output answer : Name = mover
}}
network net = hf "{UNCACHED}" {{
  prompt "When {{A}} and {{B}} went to the store, {{B}} gave a drink to"
  answer " {{answer}}"
  position END = last
}}
align P to net as Out {{
  answer -> output
}}
align P to net as Learned {{
  mover -> resid.post[1] @ END : das(k=1)
  answer -> output
}}
check Out as Where {{
  locate mover over resid.post[0..1] @ {{END}}
  interchange mover
  pairs 16 seed 0
  expect iia >= 0.0
}}
check Learned {{
  interchange mover
  pairs 16 seed 0 pool 32 train 64 steps 5 batch 16
  expect iia >= 0.0
}}
"""


@pytest.fixture(scope="module")
def trained_gpt2():
    """A tiny GPT-2 trained (a few seconds) to answer A on the prompt: kept pairs to score."""
    import itertools

    model, tokenizer = _tiny_gpt2("When and went to the store gave a drink".split() + NAMES)
    prompts = [(f"When {a} and {b} went to the store, {b} gave a drink to", a)
               for a, b in itertools.permutations(NAMES, 2)]
    ids = torch.tensor([tokenizer(t)["input_ids"] for t, _ in prompts])
    target = torch.tensor([tokenizer.convert_tokens_to_ids(a) for _, a in prompts])
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(ids).logits[:, -1], target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        assert (model(ids).logits[:, -1].argmax(-1) == target).float().mean() > 0.9
    return model, tokenizer


def test_locate_and_the_html_report_with_heatmap_and_loss_curve(trained_gpt2, tmp_path, monkeypatch):
    """`Spec.locate` sweeps a bound network; the inline report of a check run holds the verdict,
    the IIA with its interval, the sweep's heatmap and the learned featurizer's loss curve, as
    inline PNGs, with its style scoped to its own div."""
    monkeypatch.chdir(tmp_path)  # a spec from text keeps its trained artifacts under the current folder
    spec = causalspec.loads(LOCATE_SPEC)
    net = trained_gpt2
    sweeps = spec.locate(networks={"net": net}, progress=False)
    assert len(sweeps) == 1 and sweeps[0].check == "Where"
    assert [c.site for row in sweeps[0].cells for c in row] == ["resid.post[0]", "resid.post[1]"]
    assert "data:image/png;base64," in sweeps._repr_html_()
    assert sweeps.to_json()["schema"] == "causalspec.locate/1"
    results = spec.check(networks={"net": net}, progress=False)
    page = results._repr_html_()
    assert page.startswith('<div class="causalspec-report">') and "<html" not in page and "<script" not in page
    assert ".causalspec-report table{" in page and "\nbody{" not in page
    learned = results["Learned"]
    assert learned.training and learned.training[0].get("loss")
    assert page.count("data:image/png;base64,") >= 2  # the heatmap and the loss curve
    assert list((tmp_path / ".causalspec" / "artifacts").glob("*.safetensors"))  # there, not in the checkout
    for r in results:
        assert f'badge {r.status}">{r.status.upper()}' in page
        iia = r.claims[0].iia
        assert f"{iia.estimate:.3f} [{iia.lower:.3f}, {iia.upper:.3f}]" in page


def test_a_circuit_claim_runs_on_a_bound_model(tmp_path):
    from causalspec.testing.toy_circuits import build_induction_model, spec_header

    model, tokenizer = build_induction_model(tmp_path / "toy")
    circuit = """
circuit Node on toy for Induction.answer {
  group prev = head[0.0], mlp[0]
  group ind = attn[1] @ END
  ablate complement with mean over Ref
  metric logit_diff(B, C) @ END
  pairs 24
  expect faithfulness >= 0.9
}
"""
    spec = causalspec.loads(spec_header(UNCACHED, ref_pairs=24) + circuit)
    assert _verdicts(spec.check(progress=False)) == {"Node": "skipped"}
    result = spec.check(networks={"toy": (model, tokenizer)}, progress=False)["Node"]
    assert result.status == "passed", result.reason
    assert result.kind == "circuit"


def test_to_dataframe_rows_and_the_error_without_pandas(monkeypatch):
    pytest.importorskip("pandas")
    results = causalspec.load(HIER_EQ).check(only="SwappedAlignment", pairs=32, progress=False)
    frame = results.to_dataframe()
    assert list(frame["claim"])[:2] == ["{WX}", "{YZ}"]
    assert set(frame["status"]) == {"failed"}
    row = frame.iloc[0]
    claim = results[0].claims[0]
    assert (row["iia"], row["iia_lower95"], row["iia_upper95"]) == (claim.iia.estimate, claim.iia.lower,
                                                                    claim.iia.upper)
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"causalspec\[notebook\]"):
        results.to_dataframe()


LIVE_SPEC = HIER_EQ.read_text(encoding="utf-8").replace(
    'torch "../examples/hier_eq/model.py:build_hand" weights "../examples/hier_eq/hand.safetensors" {\n'
    '  encode "../examples/hier_eq/model.py:encode"',
    'torch "notebook.py:build" weights "notebook.safetensors" {\n  encode "notebook.py:encode"')


def test_a_live_torch_network_needs_no_files(tmp_path):
    """`live=` names networks bound in memory: their builder, weights and hook files need not exist
    (without it they are spec errors); binding them is then required, with an encode callable
    when the spec's hook file is missing."""
    assert "notebook.safetensors" in LIVE_SPEC
    with pytest.raises(causalspec.SpecError) as caught:
        causalspec.loads(LIVE_SPEC, base_dir=tmp_path)
    assert len(caught.value.diagnostics) >= 3  # builder file, weights file, encode hook file (and a cascade)
    spec = causalspec.loads(LIVE_SPEC, base_dir=tmp_path, live=["hand"])
    example = _example_module()
    results = spec.check(networks={"hand": causalspec.Network(example.build_hand(), encode=example.encode)},
                         pairs=64, progress=False)
    assert _verdicts(results) == {"TrueAlignment": "failed", "SwappedAlignment": "failed"}  # 64 pairs: lower95
    assert results["TrueAlignment"].claims[0].iia.estimate == 1.0
    with pytest.raises(causalspec.UsageError, match="loaded as live.*networks=\\{'hand': model\\}"):
        spec.check(progress=False)
    with pytest.raises(causalspec.UsageError, match="encode hook.*notebook.py"):
        spec.check(networks={"hand": example.build_hand()}, progress=False)
    with pytest.raises(causalspec.UsageError, match="live='hnad'.*did you mean `hand`"):
        causalspec.loads(LIVE_SPEC, base_dir=tmp_path, live=["hnad"])
