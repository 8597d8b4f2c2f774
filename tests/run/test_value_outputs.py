"""`output : value logit "tok"` on an hf network (issue 13): the value of an example is that one
token's logit at the answer position, matched against the model's exact values; a name that is
not one token is a check error naming the tokens."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from causalspec.run.adapters import CheckUsageError
from causalspec.run.hf_adapter import HFAdapter
from causalspec.run.loading import load_hf_network
from causalspec.run.patching import UNDECODABLE
from causalspec.run.values import ValueTable
from causalspec.semantics.analyse import load_text
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

WORDS = ["red", "blue", "is", "it", "yes", "no", "very"]
SPEC = """
model M {{
  input c : enum {{red, blue}}
  input k : int 0..4
  output O : real = k / 4
}}
network net = hf "{path}" {{
  prompt "is it {{c}} {{c}}"
  output : value logit "{logit}"
}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_gpt2")
    tok = build_word_tokenizer(WORDS)
    build_tiny_model("gpt2", None, d, seed=0, tokenizer=tok, initializer_range=0.5)
    return d


def adapter(folder, logit: str = "yes", tol: Fraction = Fraction(0)) -> tuple[HFAdapter, ValueTable]:
    ir = load_text(SPEC.format(path=folder, logit=logit), "t.cspec", base_dir=folder)
    net = load_hf_network("net", str(folder), folder, None, "cpu", None)
    table = ValueTable(tol)
    return HFAdapter(net, ir.networks["net"], ir.models["M"], "O", values=table), table


def test_the_value_is_the_named_tokens_logit_at_the_answer_position(folder):
    a, table = adapter(folder)
    rows = {"c": np.array([0, 1, 0]), "k": np.array([0, 1, 2])}  # enum codes: red, blue, red
    batch = a.encode(rows)
    with torch.no_grad():
        raw = a.forward(batch)
        got = a.read_value(raw, batch)
    tok, model = a.tokenizer, a.net.module
    yes = tok.convert_tokens_to_ids("yes")
    for i, text in enumerate(["is it red red", "is it blue blue", "is it red red"]):
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            want = model(ids).logits[0, -1, yes]
        assert torch.allclose(got[i], want, atol=1e-5)
    assert got[0] != got[1]  # the value depends on the input
    # predictions: the code of the exact model value equal to the float (within 0), else UNDECODABLE
    table.add([Fraction(float(got[1]))])
    codes = a.predict(raw, batch)
    assert codes[1] == 0 and codes[0] == codes[2] < UNDECODABLE  # rows 0 and 2 share a prompt: one float
    assert table.value_of(int(codes[0])) == float(got[0])


def test_a_logit_name_that_is_not_one_token_is_a_check_error(folder):
    with pytest.raises(CheckUsageError, match="must name one token; the tokenizer reads 2"):
        adapter(folder, logit="very yes")


def test_a_check_on_an_hf_value_runs_through_the_engine(folder):
    """End to end (incremental patched forwards included): the random network does not compute
    k / 4, so every pair is dropped as wrong on its base input — a failed check, not an error."""
    from causalspec.claims.runner import CheckOptions, run_checks

    text = SPEC.format(path=folder, logit="yes") + """
align M to net as A {
  k -> resid.post[0] @ last
  O -> output
}
check A {
  interchange k
  pairs 32 seed 0
  expect iia >= 0.9 within 0.01
}
"""
    ir = load_text(text, str(folder / "t.cspec"), base_dir=folder)
    (r,) = run_checks(ir, CheckOptions())
    assert r.status == "failed", r.reason
    assert r.claims[0].dropped.get("network wrong on the base input", 0) > 0
    assert r.tolerance == 0.01


def test_a_value_tables_codes_are_recoded_into_another_table():
    first, second = ValueTable(Fraction(1, 100)), ValueTable(Fraction(1, 100))
    first.add([Fraction(1, 2), Fraction(1, 4)])
    second.add([Fraction(1, 4)])
    codes = np.array([[0, 1], [-1, 0]])  # 1/2, 1/4 / undecodable, 1/2
    assert second.recode(codes, first).tolist() == [[1, 0], [-1, 1]]  # 1/2 registered in `second` as code 1
    assert second.values == [Fraction(1, 4), Fraction(1, 2)]


def test_a_logit_name_the_tokenizer_does_not_know_is_a_check_error(folder):
    """Red team (2): `"yess"` is one token — `[UNK]` — so the one-token rule let it through and the
    value read was the unknown token's logit."""
    with pytest.raises(CheckUsageError, match="unknown token"):
        adapter(folder, logit="yess")
