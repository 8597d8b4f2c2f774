"""The published circuit claims of specs/ (issue 14, item 5): each spec states the published
circuit, is skipped with the documented reason without weights, and runs end to end on a
random-init twin of its architecture (numbers mean nothing there; the run, the conventions
and the ablations it reports must be complete). specs/ioi_circuit_gpt2.cspec has its own
module, tests/circuits/test_ioi_circuit_spec.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.compile.circuit_plan import Arch, resolve_circuit
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED
from causalspec.semantics.analyse import load

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
NO_GPT2 = "weights for `gpt2` not found locally"


def _gpt2_twin(tmp_path: Path, spec: str, words: list[str], data: list[str], **config) -> Path:
    """`spec` copied next to a random-init GPT-2 folder ./gpt2 (word tokenizer over `words` and
    the lines of the data files), with `hf "gpt2"` pointed at it."""
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    (tmp_path / "data").mkdir()
    vocab = list(words)
    for name in data:
        shutil.copy(SPECS / "data" / name, tmp_path / "data")
        vocab += (tmp_path / "data" / name).read_text().split()
    tok = build_word_tokenizer(list(dict.fromkeys(vocab)))
    build_tiny_model("gpt2", config.pop("vocab_size", None), tmp_path / "gpt2", seed=0, tokenizer=tok,
                     initializer_range=0.02, **config)
    text = (SPECS / spec).read_text()
    assert text.count('network gpt2 = hf "gpt2"') == 1
    out = tmp_path / spec
    out.write_text(text.replace('hf "gpt2"', 'hf "./gpt2"').replace("pairs 256\n  seed 1", "pairs 16\n  seed 1"))
    return out


def _complete(r, prompts: int):
    """A circuit result that ran end to end: finite means, a faithfulness score, a verdict."""
    assert r.kind == "circuit"
    assert r.status in (PASSED, FAILED) and r.status != ERROR, r.reason
    c = r.circuit
    assert c is not None and c.prompts == prompts
    for key in ("full model", "circuit", "everything ablated"):
        assert np.isfinite(c.means[key].estimate), key
    assert c.scores[0].name == "faithfulness"
    return c


# ─────────────── IOI under mean, resample and zero ablation (Miller et al. 2024) ───────────────

IOI_SPEC = "ioi_ablations_gpt2.cspec"
IOI_WORDS = "When and went to the store gave a drink".split()
IOI_HEADS = {
    "name_movers": ["a9.h9", "a10.h0", "a9.h6"],
    "backup_movers": ["a10.h10", "a10.h6", "a10.h2", "a10.h1", "a11.h2", "a9.h7", "a9.h0", "a11.h9"],
    "negative_movers": ["a10.h7", "a11.h10"],
    "s_inhibition": ["a7.h3", "a7.h9", "a8.h6", "a8.h10"],
    "induction": ["a5.h5", "a5.h8", "a5.h9", "a6.h9"],
    "duplicate_token": ["a0.h1", "a0.h10", "a3.h0"],
    "previous_token": ["a2.h2", "a4.h11"],
}
IOI_ABLATIONS = {"IOIMean": ("mean", "IOI_ABC"), "IOIResample": ("resample", "IOI_ABC"), "IOIZero": ("zero", None)}


def test_ioi_ablations_spec_states_one_circuit_under_three_ablations():
    ir = load(SPECS / IOI_SPEC)
    assert list(ir.circuits) == list(IOI_ABLATIONS)
    for name, (kind, dataset) in IOI_ABLATIONS.items():
        c = ir.circuits[name]
        resolved = resolve_circuit(c, Arch(12, 12, "gpt2"))
        assert {g: [m.node.name for m in ms] for g, ms in resolved.groups.items()} == IOI_HEADS
        assert (c.ablation.kind, c.ablation.dataset) == (kind, dataset)
        assert (c.metric.name, [a.value for a in c.metric.args]) == ("logit_diff", ["IO", "S"])
        [cond] = c.conditions
        assert (cond.metric, cond.op, cond.threshold) == ("faithfulness", ">=", 0.87)
        assert resolved.universe == frozenset({"head"})  # mlps kept: Wang et al.'s convention


def test_ioi_ablations_spec_is_skipped_without_gpt2_weights():
    results = run_checks(load(SPECS / IOI_SPEC))
    assert [r.status for r in results] == [SKIPPED] * 3
    assert all(NO_GPT2 in r.reason for r in results)


def test_ioi_ablations_spec_runs_end_to_end_on_a_random_gpt2_small_shape(tmp_path):
    spec = _gpt2_twin(tmp_path, IOI_SPEC, IOI_WORDS, ["ioi_names.txt"], n_layer=12, n_head=12, n_embd=48)
    results = run_checks(load(spec), CheckOptions(pairs=16, batch=16))
    assert [r.name for r in results] == list(IOI_ABLATIONS)
    faith = {}
    for r in results:
        c = _complete(r, 16)
        assert [g["name"] for g in c.groups] == list(IOI_HEADS)
        assert "the 118 of 144 attention heads outside the circuit" in c.universe
        faith[r.name] = c.scores[0].value.estimate
    assert "mean over dataset `IOI_ABC` (16 prompts" in results[0].circuit.ablation
    assert "resample" in results[1].circuit.ablation and "IOI_ABC" in results[1].circuit.ablation
    assert "zero" in results[2].circuit.ablation
    # one circuit, three ablations, three different numbers (Miller et al.'s point)
    assert len({round(v, 9) for v in faith.values()}) == 3, faith
