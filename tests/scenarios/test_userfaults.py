"""Scenarios (issue 10, items 4 and 5): faults in user code and broken networks are check ERRORs.

Each scenario writes a spec with two checks into tmp_path and runs the real CLI
(`causalspec check`, in-process): `Good` is the hand-built hierarchical-equality net with its
true alignment (it must still run and pass), `Bad` names a faulty hook, model file, weights
file or network. The documented outcome: `Bad` is an ERROR whose reason names the hook or file
and the cause, the run exits 1 (never 3, never 0), the summary line is printed and the JSON
report is written with both checks in it.
"""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from causalspec.cli import main
from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_EXAMPLE, HIER_EQ_MODEL

HAND_WEIGHTS = HIER_EQ_EXAMPLE / "hand.safetensors"

# User code for the faulty networks: subclasses of the hand-built net (same weights) and hooks.
FAULTS_PY = f'''
import importlib.util
import sys

import torch
from torch import nn

_spec = importlib.util.spec_from_file_location("hier_eq_model_for_faults", {str(HIER_EQ_EXAMPLE / "model.py")!r})
hier = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hier)
encode = hier.encode


def decode(logits):
    return [bool(c) for c in logits.argmax(dim=-1).tolist()]


def build():
    return hier.HandBuiltHierEq()


# ---- encode faults
def encode_list(values):
    return hier.encode(values).tolist()


def encode_none(values):
    return None


def encode_transposed(values):  # [4, batch]: the batch is not the first axis
    return hier.encode(values).T.contiguous()


def encode_three_columns(values):  # [batch, 3]: forward cannot take it
    return hier.encode(values)[:, :3]


def encode_float(values):  # float ids: the embedding refuses them
    return hier.encode(values).float()


def encode_out_of_range(values):  # ids 20..39 for an embedding of 20 rows
    return hier.encode(values) + 20


def encode_exit(values):
    sys.exit(3)


# ---- forward faults
class NaNThird(hier.HandBuiltHierEq):
    """Right on two thirds of its inputs, NaN on the rest (W % 3 == 0)."""

    def forward(self, ids):
        out = super().forward(ids)
        return torch.where((ids[:, :1] % 3) == 0, torch.full_like(out, float("nan")), out)


class Inf(hier.HandBuiltHierEq):
    def forward(self, ids):
        out = super().forward(ids)
        return torch.where((ids[:, :1] % 4) == 0, torch.full_like(out, float("inf")), out)


class DictOut(hier.HandBuiltHierEq):
    def forward(self, ids):
        out = super().forward(ids)
        return {{"scores": out, "hidden": out * 2}}


class LogitsDict(hier.HandBuiltHierEq):
    def forward(self, ids):
        return {{"logits": super().forward(ids), "aux": ids}}


class Twice(hier.HandBuiltHierEq):
    """layers.0 runs twice per forward (its second output is discarded)."""

    def forward(self, ids):
        h = self.embed(ids).flatten(1)
        self.layers[0](h)
        for layer in self.layers:
            h = layer(h)
        return self.head(h)


class Spare(hier.HandBuiltHierEq):
    """Has a submodule `spare` that forward never calls."""

    def __init__(self):
        super().__init__()
        self.spare = nn.ReLU()


class Raises(hier.HandBuiltHierEq):
    def forward(self, ids):
        raise ValueError("this network is broken on purpose")


def build_nan():
    return NaNThird()


def build_inf():
    return Inf()


def build_dict():
    return DictOut()


def build_logits_dict():
    return LogitsDict()


def build_twice():
    return Twice()


def build_spare():
    return Spare()


def build_raises():
    return Raises()


def build_exit():
    sys.exit(0)


# ---- decode faults
def decode_short(logits):
    return decode(logits)[:-1]


def decode_none(logits):
    return None
'''

EXITING_MODEL_FILE = "import sys\nsys.exit(0)\n\ndef build():\n    pass\n"


def bad_network(builder: str = "faults.py:build", encode: str = "faults.py:encode", decode: str | None = None,
                weights: str | Path = HAND_WEIGHTS) -> str:
    hooks = f'  encode "{encode}"\n' + (f'  decode "{decode}"\n' if decode else "")
    return f'\nnetwork bad = torch "{builder}" weights "{weights}" {{\n{hooks}}}\n'


def bad_check(wx: str = 'module "layers.0" output : [0:20]', yz: str = 'module "layers.0" output : [20:40]',
              output: str = "output : argmax") -> str:
    return textwrap.dedent(f"""
        align HierEq to bad as Bad {{
          WX -> {wx}
          YZ -> {yz}
          O  -> {output}
        }}
        check Bad {{
          interchange WX, YZ
          pairs 48 seed 0
          expect iia >= 0.75 each
        }}
        """)


def run_cli(tmp_path: Path, text: str, capsys) -> tuple[int, dict, str]:
    """Write faults.py and the spec (HierEq + Good + `text`), run `causalspec check` on it
    with a JSON report; (exit code, check name -> JSON record, stdout + stderr)."""
    (tmp_path / "faults.py").write_text(FAULTS_PY)
    spec = tmp_path / "spec.cspec"
    spec.write_text(HIER_EQ_MODEL + HAND_GOOD_CHECK + text)
    report = tmp_path / "report.json"
    code = main(["check", str(spec), "--json", str(report)])
    out = capsys.readouterr()
    output = out.out + out.err
    assert report.is_file(), f"no JSON report written (exit {code}):\n{output}"
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
    return code, checks, output


def assert_bad_is_error(tmp_path: Path, text: str, capsys, *needles: str) -> dict:
    """`Bad` is an ERROR naming every needle, `Good` still passed, exit 1, summary printed."""
    code, checks, output = run_cli(tmp_path, text, capsys)
    assert "internal error" not in output and "bug in causalspec" not in output, output
    assert code == 1, output
    assert checks["Good"]["status"] == "passed", checks["Good"]["reason"]
    bad = checks["Bad"]
    assert bad["status"] == "error", (bad["status"], bad["reason"])
    for needle in needles:
        assert needle in bad["reason"], (needle, bad["reason"])
    assert "1 passed, 1 failed" in output, output
    return bad


# ───────────────────────── encode hooks ─────────────────────────

@pytest.mark.parametrize("hook, needles", [
    ("encode_list", ["faults.py:encode_list", "Tensor [batch, …] or a dict of tensors", "got list"]),
    ("encode_none", ["faults.py:encode_none", "Tensor [batch, …] or a dict of tensors", "got None"]),
    ("encode_transposed", ["faults.py:encode_transposed", "(4, 48)", "first axis"]),
    ("encode_three_columns", ["faults.py:encode_three_columns", "forward", "Tensor (", "int64"]),
    ("encode_float", ["faults.py:encode_float", "forward", "float32"]),
    ("encode_out_of_range", ["faults.py:encode_out_of_range", "embed", "20", "0..19"]),
    ("encode_exit", ["faults.py:encode_exit", "sys.exit(3)"]),
])
def test_encode_faults_are_check_errors(tmp_path, capsys, hook, needles):
    assert_bad_is_error(tmp_path, bad_network(encode=f"faults.py:{hook}") + bad_check(), capsys, *needles)


# ───────────────────────── forward and outputs ─────────────────────────

def test_a_forward_that_raises_is_a_check_error(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network("faults.py:build_raises") + bad_check(), capsys,
                        "forward", "ValueError", "broken on purpose")


def test_an_ambiguous_dict_output_is_a_check_error(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network("faults.py:build_dict") + bad_check(), capsys,
                        "dict", "scores", "hidden", "logits")


def test_a_dict_output_with_logits_is_read(tmp_path, capsys):
    code, checks, output = run_cli(tmp_path, bad_network("faults.py:build_logits_dict") + bad_check(), capsys)
    assert code == 0, output
    assert checks["Bad"]["status"] == "passed", checks["Bad"]["reason"]


@pytest.mark.parametrize("builder, kind", [("build_nan", "NaN"), ("build_inf", "inf")])
def test_non_finite_outputs_are_a_check_error_with_their_count(tmp_path, capsys, builder, kind):
    bad = assert_bad_is_error(tmp_path, bad_network(f"faults.py:{builder}") + bad_check(), capsys,
                              kind, "non-finite")
    counts = [c["pairs"]["nonfinite"] for c in bad["claims"]]
    assert all(sum(c.values()) > 0 for c in counts), counts
    assert all(set(c) <= {"NaN", "inf"} for c in counts)
    assert f"{sum(counts[0].values())} of 48" in bad["reason"], bad["reason"]


def test_non_finite_outputs_are_counted_with_a_decode_hook_too(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network("faults.py:build_nan", decode="faults.py:decode") + bad_check(),
                        capsys, "NaN", "non-finite")


# ───────────────────────── decode hooks ─────────────────────────

def test_a_short_decode_is_a_check_error(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network(decode="faults.py:decode_short") + bad_check(), capsys,
                        "faults.py:decode_short", "47 value(s)", "48")


def test_a_decode_returning_none_is_a_check_error(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network(decode="faults.py:decode_none") + bad_check(), capsys,
                        "faults.py:decode_none", "got None")


# ───────────────────────── sites ─────────────────────────

def test_a_module_called_twice_per_forward_is_a_check_error(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network("faults.py:build_twice") + bad_check(), capsys,
                        "layers.0", "2 times")


def test_a_site_on_a_module_forward_never_calls_is_a_check_error(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network("faults.py:build_spare") + bad_check(wx='module "spare" output'),
                        capsys, "spare", "never ran")


# ───────────────────────── builders and model files ─────────────────────────

def test_sys_exit_in_a_builder_is_a_check_error(tmp_path, capsys):
    assert_bad_is_error(tmp_path, bad_network("faults.py:build_exit") + bad_check(), capsys,
                        "faults.py:build_exit", "sys.exit(0)")


def test_sys_exit_in_a_model_file_is_a_check_error(tmp_path, capsys):
    (tmp_path / "exiting.py").write_text(EXITING_MODEL_FILE)
    assert_bad_is_error(tmp_path, bad_network("exiting.py:build") + bad_check(), capsys,
                        "exiting.py", "sys.exit(0)")


# ───────────────────────── weights and basis files ─────────────────────────

def test_a_truncated_weights_file_is_a_check_error(tmp_path, capsys):
    data = HAND_WEIGHTS.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    assert_bad_is_error(tmp_path, bad_network(weights="cut.safetensors") + bad_check(), capsys,
                        "cut.safetensors")


def test_a_truncated_basis_file_is_a_check_error(tmp_path, capsys):
    save_file({"wx": torch.eye(40)[:, :20].contiguous()}, str(tmp_path / "b.safetensors"))
    data = (tmp_path / "b.safetensors").read_bytes()
    (tmp_path / "b.safetensors").write_bytes(data[: len(data) // 2])
    assert_bad_is_error(tmp_path, bad_network() + bad_check(wx='module "layers.0" output : basis("b.safetensors")'),
                        capsys, "b.safetensors", "basis")


# ───────────────────────── Hugging Face folders ─────────────────────────

HF_CHECK = """
model Copy {
  domain Name = enum {Mary, John}
  input  A : Name ~ uniform
  var    B : Name = A
  output answer : Name = B
}
network bad = hf "tinyhf" {
  prompt "When {A} went to the store"
  answer " {answer}"
}
align Copy to bad as Bad {
  B -> resid.post[0] @ last
  answer -> output
}
check Bad {
  interchange B
  pairs 16 seed 0
  expect iia >= 0.0
}
"""


def _tiny_hf(folder: Path) -> None:
    from causalspec.testing.tiny import build_tiny_model, build_word_tokenizer

    tok = build_word_tokenizer("When went to the store Mary John".split())
    build_tiny_model("gpt2", None, folder, tokenizer=tok)


def test_a_truncated_hf_safetensors_file_is_a_check_error(tmp_path, capsys):
    folder = tmp_path / "tinyhf"
    _tiny_hf(folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert_bad_is_error(tmp_path, HF_CHECK, capsys, "model.safetensors")


class Boom:
    """Pickled into a `.bin` file: torch.load(weights_only=True) refuses this global."""

    def __reduce__(self):
        return (print, ("this .bin ran code",))


def test_a_blocked_bin_pickle_is_a_check_error(tmp_path, capsys):
    folder = tmp_path / "tinyhf"
    _tiny_hf(folder)
    (folder / "model.safetensors").unlink()
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"transformer.wte.weight": Boom()}, fh, protocol=2)
    bad = assert_bad_is_error(tmp_path, HF_CHECK, capsys, "pytorch_model.bin")
    assert "this .bin ran code" not in bad["reason"]


# ───────────────────────── circuit claims ─────────────────────────

def test_non_finite_circuit_metric_is_a_check_error(tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from causalspec.testing.toy_circuits import build_induction_model, spec_header

    toy = tmp_path / "toy"
    build_induction_model(toy)
    broken = tmp_path / "broken"
    shutil.copytree(toy, broken)
    state = load_file(str(broken / "model.safetensors"))
    lisa = AutoTokenizer.from_pretrained(str(broken)).convert_tokens_to_ids("Lisa")
    state["transformer.wte.weight"][lisa] = float("nan")  # prompts with Lisa, and Lisa's logit, are NaN
    save_file({k: v.contiguous() for k, v in state.items()}, str(broken / "model.safetensors"))
    circuits = "".join(f"""
network {net} = hf "{path}" {{
  prompt "then {{A}} {{B}} {{C}} {{A}}"
  answer " {{answer}}"
  position END = last
}}
circuit {name} on {net} for Induction.answer {{
  group prev = head[0.0]
  group ind = head[1.0] @ END
  ablate complement with zero
  metric logit_diff(B, C) @ END
  pairs 32
  expect faithfulness >= 0.8
}}
""" for net, path, name in (("good", toy, "Good"), ("bad", broken, "Bad")))
    spec = tmp_path / "spec.cspec"
    spec.write_text(spec_header(toy, ref_pairs=16) + circuits)
    report = tmp_path / "report.json"
    code = main(["check", str(spec), "--json", str(report)])
    output = "".join(capsys.readouterr())
    assert code == 1, output
    checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
    assert checks["Good"]["status"] == "passed", checks["Good"]["reason"]
    assert checks["Bad"]["status"] == "error", checks["Bad"]
    assert "NaN on" in checks["Bad"]["reason"] and "of 32 prompts" in checks["Bad"]["reason"], checks["Bad"]["reason"]


EXIT_IN_PARAMETERS = FAULTS_PY + '''

class ExitsLater(hier.HandBuiltHierEq):
    """User code that runs outside the hooks causalspec wraps one by one (here: a `config`
    property, read when the model family is resolved)."""

    @property
    def config(self):
        sys.exit(0)


def build_exits_later():
    return ExitsLater()
'''


def test_sys_exit_anywhere_in_user_code_is_a_check_error(tmp_path, capsys):
    # `run_check` turns a SystemExit that escaped every wrapper into an ERROR, so the run goes on,
    # prints its summary and exits 1 (today: exit 0, no summary, CI green)
    (tmp_path / "later.py").write_text(EXIT_IN_PARAMETERS)
    assert_bad_is_error(tmp_path, bad_network("later.py:build_exits_later", encode="later.py:encode") + bad_check(),
                        capsys, "user code called sys.exit(0)")


RAISES_LATER = FAULTS_PY + '''

class RaisesLater(hier.HandBuiltHierEq):
    """User code that raises outside the hooks causalspec wraps one by one (a `config` property)."""

    @property
    def config(self):
        raise ValueError("config is broken on purpose")


def build_raises_later():
    return RaisesLater()
'''


def test_an_exception_anywhere_in_user_code_is_a_check_error_naming_where(tmp_path, capsys):
    (tmp_path / "later.py").write_text(RAISES_LATER)
    assert_bad_is_error(tmp_path, bad_network("later.py:build_raises_later", encode="later.py:encode") + bad_check(),
                        capsys, "user code raised ValueError: config is broken on purpose", "later.py:")


def test_a_bug_in_causalspec_still_exits_3(tmp_path, capsys, monkeypatch):
    # the other side of the line: an exception raised in causalspec's own code is not the user's
    import functools

    from causalspec.claims import alignment, common

    monkeypatch.setattr(alignment, "_run", functools.partial(common.compare, 1.0, "=~"))
    (tmp_path / "faults.py").write_text(FAULTS_PY)
    spec = tmp_path / "spec.cspec"
    spec.write_text(HIER_EQ_MODEL + HAND_GOOD_CHECK)
    assert main(["check", str(spec)]) == 3
    assert "bug in causalspec" in capsys.readouterr().err
