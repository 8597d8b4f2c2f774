"""End-to-end scenarios of issue 11 items 4-6 through the real CLI (in process).

* a subspace patch that works through a dormant direction passes its claim but the report
  warns of the illusion, with the in-span numbers in the JSON;
* an exact alignment whose whole-component patch moves the output less gets no warning;
* two variables on non-orthogonal fixed bases get the E0613 warning and the check runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from causalspec.cli import main
from causalspec.testing import illusion as D


def _check(spec: Path, capsys, tmp_path) -> tuple[int, str, dict]:
    out = tmp_path / "r.json"
    code = main(["check", str(spec), "--json", str(out)])
    text = capsys.readouterr()
    return code, text.out + text.err, json.loads(out.read_text())


def _claim(report: dict) -> dict:
    [check] = report["checks"]
    [claim] = check["claims"]
    return claim


def test_an_illusory_subspace_passes_but_the_report_warns(tmp_path, capsys):
    D.write_toy(tmp_path)
    spec = tmp_path / "t.cspec"
    spec.write_text(D.TOY_SPEC.replace("KEY", "v"))
    code, text, report = _check(spec, capsys, tmp_path)
    assert code == 0  # the claim holds: the warning says how far to trust it
    assert "dormant pathway" in text and "interpretability illusion" in text
    f = _claim(report)["full_patch"]
    assert f["dormant"] and f["span_moved"] == 0.0 and f["rerun"]


def test_an_exact_alignment_is_not_called_an_illusion(tmp_path, capsys):
    D.write_xor(tmp_path)
    spec = tmp_path / "x.cspec"
    spec.write_text(D.XOR_SPEC)
    code, text, report = _check(spec, capsys, tmp_path)
    assert code == 0
    assert "dormant" not in text and "illusion check" in text  # the table is there, the warning is not
    f = _claim(report)["full_patch"]
    assert f["full_moved"] < 0.5 * f["subspace_moved"] and not f["dormant"] and f["leak"] == 0.0


def test_non_orthogonal_fixed_bases_warn_at_analysis_and_the_check_still_runs(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    D.write_toy(tmp_path)
    save_file({"a": torch.tensor([[1.0], [0.0], [0.0]]), "b": torch.tensor([[0.6], [0.8], [0.0]])},
              str(tmp_path / "ab.safetensors"))
    spec = tmp_path / "s.cspec"
    spec.write_text(D.TOY_SPEC.replace("var V : bool = x", "var V : bool = x\n  var C : bool = c").replace(
        'basis(file="v.safetensors", key="KEY")',
        'basis(file="ab.safetensors", key="a")\n  C -> module "h" output : basis(file="ab.safetensors", key="b")'))
    code, text, report = _check(spec, capsys, tmp_path)
    assert "warning[E0613]" in text and "`C` and `V`" in text and "largest cosine 0.600" in text
    assert code in (0, 1) and report["checks"][0]["status"] in ("passed", "failed")  # checked, not refused
