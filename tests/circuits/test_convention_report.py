"""The convention behind every circuit number is stated (terminal report, JSON, JUnit, the
CPR curve), and W0701 warns when a circuit leaves components outside its graph as wires
because no convention was stated."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from causalspec.cli import main
from causalspec.semantics.analyse import load_text
from causalspec.testing.toy_circuits import build_induction_model, spec_header

CIRCUITS = """
circuit Unstated on toy for Induction.answer {
  group ind = head[1.0], head[0.0] @ END
  ablate complement with zero
  metric logit_diff(B, C) @ END
  pairs 8
  expect faithfulness >= 0.0
}

circuit Mib on toy for Induction.answer {
  group ind = head[1.0], head[0.0] @ END
  convention mib
  ablate complement with zero
  metric logit_diff(B, C) @ END
  pairs 8
  expect faithfulness >= 0.0
}
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("conv")
    build_induction_model(d / "toy")
    return d


@pytest.mark.parametrize("statement,warned", [
    ("", "the MLPs outside it are kept as wires"),
    ("convention mib", None),
    ("mlps kept", None),
    ("mlps ablated", None),
    ("input ablation token", None),  # any stated aspect: the spec chose its convention
])
def test_w0701_warns_only_when_no_convention_is_stated(statement, warned):
    text = spec_header("toy") + f"""
circuit C on toy for Induction.answer {{
  group g = head[1.0]
  {statement}
  ablate complement with zero
  expect faithfulness >= 0.5
}}
"""
    warnings = load_text(text).warnings
    if warned is None:
        assert warnings == []
    else:
        [w] = warnings
        assert w.code == "W0701" and warned in w.message and "convention mib" in (w.help or "")


def test_w0701_names_the_heads_when_a_circuit_names_only_mlps():
    text = spec_header("toy") + """
circuit C on toy for Induction.answer {
  group g = mlp[1]
  ablate complement with zero
  expect faithfulness >= 0.5
}
"""
    [w] = load_text(text).warnings
    assert w.code == "W0701" and "the attention heads outside it are kept as wires" in w.message


def test_the_report_states_the_convention_behind_every_number(toy, capsys):
    spec = toy / "c.cspec"
    spec.write_text(spec_header(toy / "toy", ref_pairs=8) + CIRCUITS)
    out_json, out_junit = toy / "r.json", toy / "r.xml"
    main(["check", str(spec), "--json", str(out_json), "--junit", str(out_junit)])
    text = capsys.readouterr()
    shown = text.out + text.err
    assert "W0701" in shown  # the unstated circuit's warning reaches the user
    assert "convention causalspec: heads outside the circuit are ablated only if" in shown
    assert "(the default: the spec states no convention)" in shown
    assert "convention mib: heads outside the circuit are ablated; MLPs outside the circuit are ablated" in shown
    doc = json.loads(out_json.read_text())
    checks = {c["name"]: c for c in doc["checks"]}
    unstated = checks["Unstated"]["circuit"]["convention"]
    mib = checks["Mib"]["circuit"]["convention"]
    assert (unstated["name"], unstated["mlps"], unstated["stated"]) == ("causalspec", "auto", False)
    assert (mib["name"], mib["mlps"], mib["input_ablation"], mib["prune"]) == ("mib", "ablated", "token", True)
    # (that the numbers differ with the convention: test_mib_convention.py, on a model with live MLPs)
    props = {(p.get("name"), p.get("value")) for p in ET.parse(out_junit).iter("property")}
    assert ("circuit convention", "causalspec") in props and ("circuit convention", "mib") in props
