"""Sweeps and DAS on a transformer: layers x token positions, trained through answer-token
logits, on a tiny random-init GPT-2 (causalspec.testing.tiny; no hub). What is tested is the
plumbing — cells over `resid.post[L] @ POSITION`, one clean pass for all of them, per-cell
training on the candidates' logits — and that a sweep cell equals the single-site check."""

from __future__ import annotations

import pytest
import torch

from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
from causalspec.compile.plan import compile_check
from causalspec.claims.locate import sweep
from causalspec.semantics.analyse import load
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer, single_thread, tiny_config

# the place does not matter to the answer; it makes the input space (60 prompts) large enough for
# a held-out pool and a training split of their own (a split needs 16 distinct inputs)
PLACES = "store park beach market school office garden museum library station".split()
WORDS = "When and went to the gave a drink".split() + ["Mary", "John", "Tom"] + PLACES
PROMPT = "When {A} and {B} went to the {C}, {B} gave a drink to"

SPEC = """
model P {{
  domain Name = enum {{Mary, John, Tom}}
  domain Place = enum {{store, park, beach, market, school, office, garden, museum, library, station}}
  input  A, B : Name ~ uniform where A != B
  input  C : Place ~ uniform
  var    mover : Name = A
  output answer : Name = mover
}}
network net = hf "{path}" {{
  prompt "{prompt}"
  answer " {{answer}}"
  position A1 = slot(A)
  position END = last
}}
align P to net as Out {{
  answer -> output
}}
align P to net as Single {{
  mover -> resid.post[1] @ END : das(k=1)
  answer -> output
}}
check Out as Where {{
  locate mover over resid.post[0..1] @ {{A1, END}} : das(k=1)
  interchange mover
  pairs 64 seed 0 pool 12 train 256 steps 20 batch 32
  expect iia >= 0.1
}}
check Single {{
  interchange mover
  pairs 64 seed 0 pool 12 train 256 steps 20 batch 32
  expect iia >= 0.1
}}
"""


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    d = tmp_path_factory.mktemp("tinygpt2")
    tok = build_word_tokenizer(WORDS)
    cand = tok.convert_tokens_to_ids(["Mary", "John", "Tom"])
    names = ["Mary", "John", "Tom"]
    probes = [(PROMPT.format(A=a, B=b, C=c), names.index(a)) for a in names for b in names if a != b for c in PLACES]
    ids = torch.tensor([tok(t)["input_ids"] for t, _ in probes])  # names are one token: equal lengths
    target = torch.tensor([a for _, a in probes])
    from transformers import AutoModelForCausalLM

    special = {k: getattr(tok, k) for k in ("pad_token_id", "bos_token_id", "eos_token_id")
               if getattr(tok, k, None) is not None}
    config = tiny_config("gpt2", len(tok), n_layer=2, initializer_range=0.5, **special)
    # a random-init model that happens to answer A on most prompts, so that pairs are kept
    with single_thread():
        for seed in range(500):
            with torch.random.fork_rng(devices=[]):  # as build_tiny_model does, without saving each try
                torch.manual_seed(seed)
                model = AutoModelForCausalLM.from_config(config).eval()
            with torch.no_grad():
                right = int((model(ids).logits[:, -1, cand].argmax(-1) == target).sum())
            if right >= 36:
                break
        else:
            raise AssertionError("no seed gives a tiny GPT-2 that answers A on 36 of 60 prompts")
    build_tiny_model("gpt2", None, d / "net", seed=seed, tokenizer=tok, n_layer=2, initializer_range=0.5)
    path = d / "p.cspec"
    path.write_text(SPEC.format(path=d / "net", prompt=PROMPT))
    return path


def test_sweep_over_layers_and_positions_matches_a_single_site_check(spec, tmp_path):
    ir = load(spec)
    check = next(c for c in ir.checks if c.name == "Where")
    options = CheckOptions(artifacts=str(tmp_path / "a"))
    plan = compile_check(ir, check)
    net = NetworkCache().get(ir, "net", options)
    found = sweep(ir, check, plan, net, options)
    assert found.site_labels == ["resid.post[0]", "resid.post[1]"]
    assert found.position_labels == ["A1", "END"]
    scored = [c for row in found.cells for c in row if c.score is not None]
    assert scored, "some cell has kept pairs"
    assert all(c.trained is not None and c.trained["steps"] >= 1 for c in scored)
    # every cell trained on the incremental path (run.suffix), and the sweep's notes say so
    trained = [c for row in found.cells for c in row if c.trained is not None]
    assert all(c.trained["path"] == "incremental" for c in trained)
    assert any(n.startswith(f"`locate` training: {len(trained)} of {len(trained)} trained cell(s) on the "
                            "incremental path") for n in found.notes), found.notes
    assert found.to_dict()["notes"] == found.notes
    [single] = run_checks(ir, CheckOptions(artifacts=str(tmp_path / "b"), only=["Single"]))
    assert single.status in ("passed", "failed"), single.reason
    cell = found.cells[1][1]  # resid.post[1] @ END
    assert cell.iia["{mover}"] == single.claims[0].iia
    # one clean pass over the pool served all four cells (plus the shared training split)
    assert found.forward_passes["clean"] == single.forward_passes["clean"]
