"""examples/induction_circuit: its network is `hf "model"`, a folder the README's command
builds. Unbuilt, the skip must say both readings of `model` (a folder not built yet, a hub id),
where the folder was looked for and that the README says how — not only `--allow-download`,
which would send the reader to the hub for a repository named `model`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.score.results import SKIPPED
from causalspec.semantics.analyse import load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "induction_circuit"
BUILD = "python -m causalspec.testing.toy_circuits examples/induction_circuit/model"


def test_the_readme_and_the_spec_give_the_same_build_command_for_the_spec_s_folder():
    spec = (EXAMPLE / "induction.cspec").read_text()
    assert re.search(r'^network toy = hf "model" \{', spec, re.M)  # the folder `model` next to the spec
    assert BUILD in (EXAMPLE / "README.md").read_text()
    assert f"#   {BUILD}" in spec


def test_unbuilt_every_claim_skips_naming_both_readings(tmp_path, monkeypatch):
    shutil.copy(EXAMPLE / "induction.cspec", tmp_path)
    monkeypatch.chdir(tmp_path)
    results = run_checks(load(tmp_path / "induction.cspec"), CheckOptions(pairs=8))
    assert [r.status for r in results] == [SKIPPED] * 3
    reason = results[0].reason
    assert f"no model folder `model` (looked for {tmp_path / 'model'})" in reason
    assert "no hub weights for the hub id `model`" in reason and "README say how" in reason
    assert "meant as a hub id: run with --allow-download" in reason
