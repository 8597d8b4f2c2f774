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
# not heavy, but not needed by parse and graph either (issue 15: each cost 5-20 ms): rich (plain
# lines are written without it, cli/console.py), importlib.metadata (the version is read from
# the installed METADATA, files.py), regex (lark's optional engine, syntax/lark_import.py)
AVOIDABLE = ("rich", "importlib.metadata", "regex", "email", "importlib.resources")

PROBE = """
import contextlib, io, json, sys
from causalspec.cli.app import main
codes = []
for argv in ARGVS:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
avoidable = sorted(m for m in AVOIDABLE if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy, "avoidable": avoidable, "numpy": "numpy" in sys.modules}))
"""


def _modules_after(argvs: list[list[str]], tmp_path: Path) -> dict:
    code = f"ARGVS = {argvs!r}\nHEAVY = {HEAVY!r}\nAVOIDABLE = {AVOIDABLE!r}\n" + PROBE
    env = {"PYTHONPATH": str(ROOT), "CAUSALSPEC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_the_cli_imports_no_heavy_library(tmp_path):
    result = _modules_after([], tmp_path)
    assert result["heavy"] == []


# examples/zoo/count_a.cspec: a model with families (`graph` draws one node per family)
@pytest.mark.parametrize("spec", ["specs/hier_eq.cspec", "examples/induction_circuit/induction.cspec",
                                  "examples/zoo/count_a.cspec"])
def test_parse_and_graph_import_no_heavy_library(tmp_path, spec):
    # twice: the first run builds lark's tables into the (empty) cache, the second loads them
    result = _modules_after([["parse", spec], ["graph", spec], ["graph", spec, "--format", "mermaid"],
                             ["parse", spec]], tmp_path)
    assert result["codes"] == [0, 0, 0, 0]
    assert result["heavy"] == [], f"parse/graph imported {result['heavy']}"
    assert result["avoidable"] == [], f"parse/graph imported {result['avoidable']}"


# numpy (~65 ms) loads only when the analysis needs it (semantics/lazy_numpy.py): `example` lines
# and `where` constraints are evaluated one row at a time in pure Python (`Compiled.one`) where
# the expressions allow it; tables, reals and a sampled domain check still need numpy
@pytest.mark.parametrize("spec, models", [
    ("specs/induction_attn_only_2l.cspec", 2),  # nothing to evaluate
    ("specs/hier_eq.cspec", 1),  # examples, one with do()
    ("specs/ioi_gpt2.cspec", 1),  # a `where` constraint and examples
    ("specs/greater_than_gpt2.cspec", 2),  # a `where` constraint over enum values
    ("examples/zoo/detect_ab.cspec", 1),  # families, `if`, `and`, an example
])
def test_specs_whose_expressions_run_one_row_at_a_time_are_analysed_without_numpy(tmp_path, spec, models):
    result = _modules_after([["parse", spec], ["graph", spec], ["graph", spec, "--format", "mermaid"]], tmp_path)
    assert result["codes"] == ([0, 0, 0] if models == 1 else [0, 2, 2])
    assert result["numpy"] is False


def test_the_probe_sees_numpy_when_a_table_is_built(tmp_path):
    # the check can fail: reverse.cspec's tables are numpy arrays
    result = _modules_after([["parse", "examples/zoo/reverse.cspec"]], tmp_path)
    assert result["codes"] == [0] and result["numpy"] is True


def test_importing_the_analysis_imports_no_numpy(tmp_path):
    code = "import sys\nimport causalspec.semantics.analyse, causalspec.semantics.expr, causalspec.semantics.model\n" \
           "print('numpy' in sys.modules)"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_invalid_spec_reports_without_rich(tmp_path):
    bad = tmp_path / "bad.cspec"
    bad.write_text("model M {\n  input a : bool\n  output y : bool = not b\n}\n")
    result = _modules_after([["parse", str(bad)]], tmp_path)
    assert result["codes"] == [2] and result["heavy"] == [] and result["avoidable"] == []


def test_the_probe_sees_an_avoidable_import(tmp_path):
    # the check can fail: a tab in a printed line is rich's to expand, so rich is imported
    spec = tmp_path / "a\tb.cspec"
    spec.write_text("model M {\n  input a : bool\n  output y : bool = not a\n}\n")
    result = _modules_after([["parse", str(spec)]], tmp_path)
    assert result["codes"] == [0] and result["avoidable"] == ["rich"]


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


BLAS_PROBE = """
import os, sys
sys.argv = ["causalspec"] + ARGV
from causalspec.cli.app import main
main() if MAIN_ARGV is None else main(MAIN_ARGV)
print("OPENBLAS=" + str(os.environ.get("OPENBLAS_NUM_THREADS")))
"""


@pytest.mark.parametrize("argv, main_argv, expected", [
    (["parse", "specs/hier_eq.cspec"], None, "1"),  # the command: one BLAS thread
    (["graph", "specs/hier_eq.cspec"], None, "1"),
    (["sample", "specs/hier_eq.cspec", "--n", "2"], None, "None"),  # not a light command
    ([], ["parse", "specs/hier_eq.cspec"], "None"),  # main([...]) inside another program: its environment
])
def test_light_commands_ask_openblas_for_one_thread(tmp_path, argv, main_argv, expected):
    code = f"ARGV = {argv!r}\nMAIN_ARGV = {main_argv!r}\n" + BLAS_PROBE
    env = {"PYTHONPATH": str(ROOT), "CAUSALSPEC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == f"OPENBLAS={expected}"


def test_a_users_openblas_setting_is_kept(tmp_path):
    code = f"ARGV = {['parse', 'specs/hier_eq.cspec']!r}\nMAIN_ARGV = None\n" + BLAS_PROBE
    env = {"PYTHONPATH": str(ROOT), "CAUSALSPEC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "OPENBLAS_NUM_THREADS": "3"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "OPENBLAS=3"
