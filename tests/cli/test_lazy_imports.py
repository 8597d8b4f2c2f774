"""`causalspec parse` and `causalspec graph` answer fast because they import no heavy library
they do not use (issue 15: editors and pre-commit hooks run `parse` on every save). Checked on
the modules a fresh process holds afterwards, not on time, so it cannot flake on a busy
machine and a new eager import cannot slip in unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sympy", "matplotlib", "networkx", "scipy", "nnsight", "safetensors")

PROBE = """
import contextlib, io, json, sys
from causalspec.cli.app import main
codes = []
for argv in ARGVS:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def _modules_after(argvs: list[list[str]], tmp_path: Path) -> dict:
    code = f"ARGVS = {argvs!r}\nHEAVY = {HEAVY!r}\n" + PROBE
    env = {"PYTHONPATH": str(ROOT), "CAUSALSPEC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_the_cli_imports_no_heavy_library(tmp_path):
    result = _modules_after([], tmp_path)
    assert result["heavy"] == []


@pytest.mark.parametrize("spec", ["specs/hier_eq.cspec", "examples/induction_circuit/induction.cspec"])
def test_parse_and_graph_import_no_heavy_library(tmp_path, spec):
    # twice: the first run builds lark's tables into the (empty) cache, the second loads them
    result = _modules_after([["parse", spec], ["graph", spec], ["parse", spec]], tmp_path)
    assert result["codes"][0] == 0 and result["codes"][2] == 0
    assert result["heavy"] == [], f"parse/graph imported {result['heavy']}"


def test_the_probe_sees_a_heavy_import(tmp_path):
    # the check can fail: the JSON export writes LaTeX, which needs sympy
    result = _modules_after([["graph", "specs/hier_eq.cspec", "--format", "json"]], tmp_path)
    assert result["codes"] == [0] and "sympy" in result["heavy"]


def test_python_dash_m_causalspec_runs_the_command_line(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "CAUSALSPEC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "causalspec", "parse", "specs/hier_eq.cspec"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("ok: specs/hier_eq.cspec"), proc.stderr
    assert list((tmp_path / "cache").glob("lalr-*.bin"))  # the grammar tables were cached there
