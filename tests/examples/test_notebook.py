"""examples/notebooks/quickstart.ipynb runs headlessly (nbclient + ipykernel) and shows the
verdicts and IIA inline, as HTML, with no terminal escape codes in any output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "examples" / "notebooks" / "quickstart.ipynb"
KERNEL = "causalspec-test"


def _kernel_for_this_interpreter(folder: Path) -> None:
    """A kernelspec that starts this interpreter, with this checkout importable."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "causalspec tests", "language": "python",
        "env": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}), encoding="utf-8")


def _outputs(cell) -> list[dict]:
    return list(cell.get("outputs", []))


def _html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in _outputs(cell)
                   if o["output_type"] == "execute_result")


def test_quickstart_notebook_executes_and_shows_verdicts_inline(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    _kernel_for_this_interpreter(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        for out in _outputs(cell):
            assert out["output_type"] != "error", out
            text = json.dumps(out)
            assert "\\u001b[" not in text and "\x1b[" not in text, f"escape codes in {cell.source[:60]!r}"
    hier_eq = _html(code[0])  # spec.check() of specs/hier_eq.cspec
    assert hier_eq.startswith('<div class="causalspec-report">')
    assert 'badge passed">PASSED' in hier_eq and 'badge failed">FAILED' in hier_eq
    assert "1.000 [0.996, 1.000]" in hier_eq  # TrueAlignment's IIA and interval over 1024 pairs
    gpt2 = next(_html(c) for c in code if "gpt2_results = " in c.source)
    assert 'badge passed">PASSED' in gpt2 and "1.000 [0.943, 1.000]" in gpt2  # Layer1 over 64 pairs
    assert 'badge failed">FAILED' in gpt2  # Layer0 does not hold
    # the progress bar is HTML, updated in place
    bars = [o for c in code for o in _outputs(c) if "causalspec-progress" in o.get("data", {}).get("text/html", "")]
    assert bars and all("<progress" in o["data"]["text/html"] for o in bars)
