"""`device_map` (e.g. `--device-map auto`) reaches `from_pretrained`; without accelerate it is a
clear error. accelerate itself is not needed here: `from_pretrained` is spied on, and a
real placement is tested only where accelerate is installed (skipped politely otherwise)."""

from __future__ import annotations

import importlib.util

import pytest
import transformers

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.run import loading
from causalspec.run.loading import NetworkLoadError, load_hf_network
from causalspec.score.results import ERROR
from causalspec.semantics.analyse import load
from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

SPEC = """
model P {{
  domain Name = enum {{Mary, John}}
  input  A, B : Name ~ uniform where A != B
  output answer : Name = A
}}
network net = hf "{path}" {{
  prompt "When {{A}} and {{B}} went to"
  answer " {{answer}}"
}}
align P to net as Pos {{
  A -> resid.post[0] @ last
  answer -> output
}}
check Pos {{
  interchange A
  pairs 8 seed 0
  expect iia >= 0.0
}}
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("dm")
    build_tiny_model("gpt2", None, d, tokenizer=build_word_tokenizer("When and went to Mary John".split()))
    (d / "p.cspec").write_text(SPEC.format(path=d))
    return d


@pytest.fixture
def spy(monkeypatch):
    """Record from_pretrained's keyword arguments; load for real without the placement."""
    calls = []
    original = transformers.AutoModelForCausalLM.from_pretrained

    def fake(source, **kwargs):
        calls.append(dict(kwargs))
        kwargs.pop("device_map", None)
        return original(source, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "accelerate" else real_find(name, *a))
    return calls


def test_device_map_reaches_from_pretrained(model_dir, spy):
    net = load_hf_network("net", str(model_dir), model_dir, None, None, None, device_map="auto")
    assert spy[-1]["device_map"] == "auto"
    assert net.extra["device_map"] == "auto" and net.device == next(net.module.parameters()).device
    plain = load_hf_network("net", str(model_dir), model_dir, None, "cpu", None)
    assert "device_map" not in spy[-1] and plain.extra["device_map"] is None


def test_the_check_option_reaches_from_pretrained(model_dir, spy):
    [result] = run_checks(load(model_dir / "p.cspec"), CheckOptions(device_map="auto"))
    assert result.status != ERROR, result.reason
    assert spy and spy[-1]["device_map"] == "auto"


def test_without_accelerate_the_error_says_what_to_install(model_dir, monkeypatch):
    real_find = importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec",
                        lambda name, *a: None if name == "accelerate" else real_find(name, *a))
    with pytest.raises(NetworkLoadError, match=r"device_map='auto' needs the `accelerate` package"):
        load_hf_network("net", str(model_dir), model_dir, None, None, None, device_map="auto")
    [result] = run_checks(load(model_dir / "p.cspec"), CheckOptions(device_map="auto"))
    assert result.status == ERROR and "pip install accelerate" in result.reason


def test_real_placement_with_accelerate(model_dir):
    pytest.importorskip("accelerate", reason="accelerate is not installed (device_map needs it)")
    [result] = run_checks(load(model_dir / "p.cspec"), CheckOptions(device_map="auto"))
    assert result.status != ERROR, result.reason
