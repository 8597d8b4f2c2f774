"""Spec checks run in parallel under pytest-xdist (`pytest specs/ -n auto`).

Runs a real `pytest -n 2` in a subprocess (xdist starts worker processes of its own), with
plugin autoloading off and both plugins named, so it works whether or not causalspec is
installed. Skipped where pytest-xdist is not installed (it is in the dev extra).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

ROOT = Path(__file__).resolve().parents[1]


def test_spec_checks_are_distributed_over_workers_with_the_same_verdicts(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-m", "pytest", "-p", "causalspec.pytest_plugin", "-p", "xdist.plugin", "-n", "2",
           "-p", "no:cacheprovider", "-v", "--causalspec-pairs", "400", str(ROOT / "specs" / "hier_eq.cspec")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # SwappedAlignment fails by design
    assert "created: 2/2 workers" in out, out
    assert re.search(r"\[gw\d\] .*PASSED .*hier_eq.cspec::TrueAlignment", out), out
    assert re.search(r"\[gw\d\] .*FAILED .*hier_eq.cspec::SwappedAlignment", out), out
    assert "1 failed, 1 passed" in out, out
