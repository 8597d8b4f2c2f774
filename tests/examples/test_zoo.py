"""The ground-truth zoo (examples/zoo): tracr-compiled transformers whose layouts are known exactly.

Two things are held here, without jax (tracr is only needed to regenerate the files):

- the plain-torch port (causalspec/testing/tracr_port.py) computes what tracr's own assembled model
  computed when the files were written: the same decoded output on every recorded input, and the same
  residual stream, tap by tap, on the recorded streams;
- every zoo spec runs end to end: each check named `True…` passes with IIA 1.000 on every interchange
  set (and the patches moved the output), each check named `False…` fails — the claims that put a value
  in the wrong dimensions, before it is computed, in another value's dimensions or at the wrong layer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from causalspec.claims.runner import run_checks
from causalspec.semantics.analyse import load
from causalspec.testing.tracr_port import (
    decode_categorical,
    decode_numerical,
    encode_tokens,
    load_layout,
    load_port,
)

ZOO = Path(__file__).resolve().parents[2] / "examples" / "zoo"
PROGRAMS = sorted(p.stem for p in ZOO.glob("*.json"))
SPECS = sorted(ZOO.glob("*.cspec"))


def test_every_program_has_its_files_and_a_spec():
    assert len(PROGRAMS) >= 2
    reserved = {"hist", "sort_unique", "frac_prevs"}  # kept aside for independent verification
    assert not reserved & set(PROGRAMS)
    for name in PROGRAMS:
        assert (ZOO / f"{name}.safetensors").is_file()
        assert (ZOO / f"{name}.cspec").is_file()


@pytest.mark.parametrize("program", PROGRAMS)
def test_torch_port_matches_tracr_outputs(program):
    layout = load_layout(ZOO / f"{program}.json")
    model = load_port(ZOO / f"{program}.json", ZOO / f"{program}.safetensors")
    recorded = layout["recorded"]
    with torch.no_grad():
        outputs = model(encode_tokens(layout, [r["tokens"] for r in recorded]))
    if layout["output"]["encoding"] == "categorical":
        assert decode_categorical(layout, outputs) == [r["decoded"] for r in recorded]
    else:
        ours = decode_numerical(outputs)
        assert [len(row) for row in ours] == [len(r["decoded"]) for r in recorded]
        for row, rec in zip(ours, recorded):
            assert row == pytest.approx(rec["decoded"], abs=1e-5), rec["tokens"]
    # the whole residual stream, tap by tap, on the inputs whose streams tracr recorded
    for rec in layout["recorded_streams"]:
        with torch.no_grad():
            streams = model.streams(encode_tokens(layout, [rec["tokens"]]))
        assert len(streams) == len(rec["taps"]) == len(layout["taps"])
        for ours, theirs in zip(streams, rec["taps"]):
            torch.testing.assert_close(ours[0].double(), torch.tensor(theirs, dtype=torch.float64),
                                       atol=1e-5, rtol=0)


def test_port_check_can_fail():
    """The comparison above is not vacuous: a port with one weight perturbed decodes differently."""
    layout = load_layout(ZOO / "count_a.json")
    model = load_port(ZOO / "count_a.json", ZOO / "count_a.safetensors")
    with torch.no_grad():
        model.layers[0].mlp.linear_2.weight.mul_(-1.0)
        outputs = model(encode_tokens(layout, [r["tokens"] for r in layout["recorded"]]))
    assert decode_categorical(layout, outputs) != [r["decoded"] for r in layout["recorded"]]


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_zoo_spec_true_claims_pass_and_false_claims_fail(spec):
    ir = load(spec)
    results = run_checks(ir)
    names = [r.name for r in results]
    assert any(n.startswith("True") for n in names) and any(n.startswith("False") for n in names), names
    for result in results:
        assert result.name.startswith(("True", "False")), result.name
        if result.name.startswith("True"):
            assert result.status == "passed", (result.name, result.reason)
            for claim in result.claims:
                # exact slices of a compiled layout are no interpretability illusion (score.illusion)
                assert not (claim.full_patch or {}).get("dormant"), (result.name, claim.label, claim.full_patch)
                assert claim.kept == claim.sampled, (result.name, claim.label, claim.dropped)
                assert claim.iia.successes == claim.iia.trials > 0, (result.name, claim.label)
                assert claim.changed > 0 and claim.moved > 0, (result.name, claim.label)
        else:
            assert result.status == "failed", (result.name, result.status, result.reason)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_true_alignments_follow_the_layout(spec):
    """Every site of a True… alignment is one value's whole block of dimensions in the program's layout
    JSON, at a tap where that value is already in the stream — the specs are written from the layouts,
    and a regeneration that moves a value breaks this test before it breaks a check."""
    layout = load_layout(ZOO / f"{spec.stem}.json")
    blocks = {tuple(v["dims"]): (name, v["from_tap"]) for name, v in layout["values"].items()}
    ir = load(spec)
    checked = 0
    for name, alignment in ir.alignments.items():
        if not name.startswith("True"):
            continue
        for var, bindings in alignment.variables.items():
            for binding in bindings:
                assert binding.site.kind == "module" and binding.site.module_path.startswith("resid.")
                tap = int(binding.site.module_path.split(".")[1])
                dims = (binding.featurizer.lo, binding.featurizer.hi)
                assert dims in blocks, f"{name}: {var} -> {dims} is no value's block in {spec.stem}.json"
                value, from_tap = blocks[dims]
                assert tap >= from_tap, f"{name}: {var} read at tap {tap}, before {value} is written ({from_tap})"
                assert [p.index for p in binding.positions] and all(
                    1 <= p.index <= layout["max_seq_len"] for p in binding.positions)
                checked += 1
    assert checked >= 3


def test_numerical_decode_refuses_a_value_between_quarters():
    """count_a_share's decode reads 4 × the number exactly: a value off the grid is outside O's type
    (so a patch that wrote half a value would count as wrong, not be rounded into a pass)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_model", ZOO / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outputs = torch.zeros(2, 5, 2)  # [batch, BOS + 4 positions, output dim + PAD flag]
    outputs[0, 1:, 0] = torch.tensor([0.25, 0.5, 0.75, 1.0])
    outputs[1, 1:, 0] = torch.tensor([0.25, 0.375, 0.75, 1.0])
    assert module.decode_count_a_share(outputs) == [1 * 125 + 2 * 25 + 3 * 5 + 4, -1]


def test_family_form_gives_the_unrolled_specs_results():
    """examples/zoo/reverse.cspec is written with families (`L[i] -> … @ i`, `interchange L`); the same
    spec written unrolled (tests/examples/zoo_unrolled/reverse.cspec, one variable and one alignment
    line per position) gives identical numbers and verdicts on the same seed."""
    family = run_checks(load(ZOO / "reverse.cspec"))
    unrolled = run_checks(load(Path(__file__).parent / "zoo_unrolled" / "reverse.cspec"))
    assert [r.name for r in family] == [r.name for r in unrolled]

    def numbers(result):
        return [(c.sampled, c.kept, c.changed, c.moved, c.baseline.successes, c.iia.successes, c.iia.trials)
                for c in result.claims]

    for f, u in zip(family, unrolled):
        assert f.status == u.status, f.name
        assert numbers(f) == numbers(u), f.name
    assert any(c.moved for r in family for c in r.claims)
    # the family form is the shorter text: one alignment line per value, not one per position
    lines = (ZOO / "reverse.cspec").read_text().count("->")
    assert lines < (Path(__file__).parent / "zoo_unrolled" / "reverse.cspec").read_text().count("->")
