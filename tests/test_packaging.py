"""The wheel ships what an installed causalspec needs, above all the grammar.

The wheel is built offline with the installed hatchling (`pip wheel --no-build-isolation`);
without hatchling (it is in the `dev` extra) the test is skipped. `.ci/run` additionally
installs the package non-editable into a fresh venv and runs the CLI from outside the repo.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRAMMAR_IN_WHEEL = "causalspec/_grammar/causalspec.lark"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed (pip install -e '.[dev]' brings it)")
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = list(out.glob("causalspec-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_the_grammar(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert GRAMMAR_IN_WHEEL in names
        assert zf.read(GRAMMAR_IN_WHEEL) == (ROOT / "grammar" / "causalspec.lark").read_bytes()


def test_wheel_holds_the_package_only(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert "causalspec" in top
    assert top - {"causalspec"} == {n for n in top if n.endswith(".dist-info")}
    assert "causalspec/__init__.py" in names
    assert "causalspec/syntax/parser.py" in names
    assert "causalspec/py.typed" in names  # PEP 561: the package's annotations are used by type checkers
    assert "causalspec/api/spec.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = zf.read(info).decode()
        entry = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "Name: causalspec" in meta and "Version: 0.1.0" in meta
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    torch_req = [r for r in requires if r.startswith("torch")]
    assert torch_req and "==" not in torch_req[0], torch_req  # never pin torch (CUDA download)
    assert any(r.startswith("pandas") and "extra ==" in r and "notebook" in r for r in requires), requires
    assert "[console_scripts]" in entry and "causalspec = causalspec.cli:main" in entry


def test_unpacked_wheel_parses_with_its_own_grammar(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = (
        "import causalspec, causalspec.syntax.parser as p\n"
        "print(causalspec.__file__)\n"
        "print(p.grammar_path())\n"
        "p.parse('model M { input a : bool\\n output o : bool = not a }')\n"
    )
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=run_dir, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    package_file, grammar = proc.stdout.splitlines()[:2]
    assert Path(package_file).is_relative_to(site)
    assert Path(grammar) == site / GRAMMAR_IN_WHEEL



def _run_from_unpacked_wheel(wheel: Path, tmp_path: Path, code: str) -> tuple[Path, dict[str, str]]:
    """Run `code` with only the unpacked wheel on the path, from a folder outside the checkout;
    its `KEY: value` lines of output come back as a dict."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=run_dir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return site, dict(line.split(": ", 1) for line in proc.stdout.splitlines() if line.startswith("OUT "))


def test_testing_helpers_work_from_the_unpacked_wheel(wheel, tmp_path):
    """`causalspec.testing` outside the checkout: its hier_eq specs point at the copy of the
    example the wheel ships, and a spec built from them analyses without a diagnostic there
    (analysis checks that the builder file and the weights exist)."""
    code = (
        "from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_EXAMPLE, HIER_EQ_MODEL, only_model\n"
        "from causalspec.semantics.analyse import load_text\n"
        "print('OUT example:', HIER_EQ_EXAMPLE)\n"
        "print('OUT inputs:', sorted(only_model(HIER_EQ_MODEL).inputs))\n"
        "ir = load_text(HIER_EQ_MODEL + HAND_GOOD_CHECK)\n"
        "print('OUT checks:', [c.name for c in ir.checks])\n"
    )
    site, out = _run_from_unpacked_wheel(wheel, tmp_path, code)
    assert Path(out["OUT example"]) == site / "causalspec" / "testing" / "_hier_eq"
    assert (Path(out["OUT example"]) / "hand.safetensors").read_bytes() == \
        (ROOT / "examples" / "hier_eq" / "hand.safetensors").read_bytes()
    assert out["OUT inputs"] == "['W', 'X', 'Y', 'Z']"
    assert out["OUT checks"] == "['Good']"


@pytest.mark.slow
def test_a_check_from_the_testing_helpers_passes_from_the_unpacked_wheel(wheel, tmp_path):
    """The same, run to the end: the shipped hand-built net loads and its true alignment passes."""
    code = (
        "import json\n"
        "from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_MODEL\n"
        "from causalspec.cli import main\n"
        "open('good.cspec', 'w').write(HIER_EQ_MODEL + HAND_GOOD_CHECK)\n"
        "code = main(['check', 'good.cspec', '--json', 'good.json'])\n"
        "print('OUT exit:', code)\n"
        "print('OUT status:', json.load(open('good.json'))['checks'][0]['status'])\n"
    )
    _, out = _run_from_unpacked_wheel(wheel, tmp_path, code)
    assert out == {"OUT exit": "0", "OUT status": "passed"}
