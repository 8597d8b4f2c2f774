"""The published IOI circuit (specs/ioi_circuit_gpt2.cspec): parses, validates, is skipped
without GPT-2 weights, and runs end to end on random-init GPT-2s of GPT-2 small's 12 x 12
architecture (the numbers mean nothing there; the run and the report must be complete)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.compile.circuit_plan import Arch, resolve_circuit
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED
from causalspec.semantics.analyse import load

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "ioi_circuit_gpt2.cspec"
WORDS = "When and went to the store gave a drink".split()

PUBLISHED = {
    "name_movers": ["a9.h9", "a10.h0", "a9.h6"],
    "backup_movers": ["a10.h10", "a10.h6", "a10.h2", "a10.h1", "a11.h2", "a9.h7", "a9.h0", "a11.h9"],
    "negative_movers": ["a10.h7", "a11.h10"],
    "s_inhibition": ["a7.h3", "a7.h9", "a8.h6", "a8.h10"],
    "induction": ["a5.h5", "a5.h8", "a5.h9", "a6.h9"],
    "duplicate_token": ["a0.h1", "a0.h10", "a3.h0"],
    "previous_token": ["a2.h2", "a4.h11"],
}


def test_the_spec_states_the_published_circuit():
    ir = load(SPEC)
    c = ir.circuits["IOICircuit"]
    resolved = resolve_circuit(c, Arch(12, 12, "gpt2"))
    assert {g: [m.node.name for m in ms] for g, ms in resolved.groups.items()} == PUBLISHED
    assert sum(len(v) for v in PUBLISHED.values()) == 26
    where = {g: ", ".join(p.name or str(p) for p in c.groups[g].positions) for g in c.groups}
    assert where["name_movers"] == where["negative_movers"] == where["s_inhibition"] == "END"
    assert where["induction"] == where["duplicate_token"] == "S2"
    assert str(c.groups["previous_token"].positions[0]) == "slot(S, 1).last + 1"
    assert (c.ablation.kind, c.ablation.dataset) == ("mean", "IOI_ABC")
    assert ir.datasets["IOI_ABC"].prompt.template.text == "When {A} and {B} went to the store, {C} gave a drink to"
    assert (c.metric.name, [a.value for a in c.metric.args]) == ("logit_diff", ["IO", "S"])
    [cond] = c.conditions
    assert (cond.metric, cond.op, cond.threshold) == ("faithfulness", ">=", 0.87)
    assert resolved.universe == frozenset({"head"})  # MLPs are kept, as in the paper


def test_the_spec_is_skipped_without_gpt2_weights():
    [r] = run_checks(load(SPEC))
    assert r.status == SKIPPED and "weights for `gpt2` not found locally" in r.reason
    assert r.kind == "circuit"


def _twin(tmp_path: Path, **config) -> Path:
    """The spec next to a random-init GPT-2 of the given shape (word tokenizer over the prompt words)."""
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "specs" / "data" / "ioi_names.txt", tmp_path / "data")
    names = (tmp_path / "data" / "ioi_names.txt").read_text().split()
    tok = build_word_tokenizer(WORDS + names)
    # GPT2Config's own init scale (0.02), not the tiny models' larger one
    build_tiny_model("gpt2", config.pop("vocab_size", None), tmp_path / "gpt2", seed=0, tokenizer=tok,
                     initializer_range=0.02, **config)
    text = SPEC.read_text()
    assert text.count('network gpt2 = hf "gpt2"') == 1
    spec = tmp_path / "ioi_circuit.cspec"
    spec.write_text(text.replace("pairs 256\n  seed 1", "pairs 32\n  seed 1"))  # fewer reference prompts
    return spec


def _check_complete(r, prompts: int) -> None:
    assert r.status in (PASSED, FAILED) and r.status != ERROR, r.reason
    c = r.circuit
    assert c is not None and c.prompts == prompts
    assert [g["name"] for g in c.groups] == list(PUBLISHED)
    assert c.groups[-1]["positions"] == "slot(S, 1).last + 1"
    assert "mean over dataset `IOI_ABC` (32 prompts" in c.ablation
    assert "the 118 of 144 attention heads outside the circuit" in c.universe
    for key in ("full model", "circuit", "everything ablated"):
        assert np.isfinite(c.means[key].estimate)
    # faithfulness is claimed; necessity is reported for every group
    assert [s.name for s in c.scores] == ["faithfulness"] + [f"necessity({g})" for g in PUBLISHED]
    [cond] = r.conditions
    assert cond.text == "faithfulness >= 0.87"
    assert r.forward_passes["circuit"] >= 1 and r.forward_passes["reference"] >= 1
    from causalspec.report.json_report import dumps, to_json
    from causalspec.report.terminal import check_text

    doc = json.loads(dumps(to_json([r])))
    assert doc["checks"][0]["circuit"]["groups"][0]["nodes"] == PUBLISHED["name_movers"]
    text = check_text(r)
    assert "group previous_token = a2.h2, a4.h11 @ slot(S, 1).last + 1" in text


def test_the_spec_runs_end_to_end_on_a_narrow_random_gpt2_small(tmp_path):
    """GPT-2 small's 12 layers x 12 heads at width 48 (heads of 4 dims): fast enough for every run."""
    spec = _twin(tmp_path, n_layer=12, n_head=12, n_embd=48)
    [r] = run_checks(load(spec), CheckOptions(pairs=16, batch=16))
    _check_complete(r, 16)


def test_a_head_outside_the_architecture_is_an_error_naming_it(tmp_path):
    spec = _twin(tmp_path, n_layer=10, n_head=12, n_embd=48)
    [r] = run_checks(load(spec), CheckOptions(pairs=4))
    assert r.status == ERROR and "layer 10 out of range" in r.reason and "10 layers" in r.reason


@pytest.mark.slow
def test_the_spec_runs_end_to_end_on_a_full_size_random_gpt2_small(tmp_path):
    """GPT2Config() shape: 12 layers, 12 heads, d_model 768, 50257-token vocabulary (124M parameters)."""
    spec = _twin(tmp_path, n_layer=12, n_head=12, n_embd=768, vocab_size=50257)
    [r] = run_checks(load(spec), CheckOptions(pairs=16, batch=16))
    _check_complete(r, 16)
