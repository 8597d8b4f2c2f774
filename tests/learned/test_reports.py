"""Boundless DAS, and how learned featurizers, controls and sweeps are reported (terminal, HTML, CLI)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.cli import main
from causalspec.report.html import render_html
from causalspec.report.terminal import check_text
from causalspec.semantics.analyse import load

from .conftest import write_spec

BOUNDLESS = """
align HierEq to planted as Soft {
  WX -> module "layers.0" output : boundless
  O  -> output : argmax
}
check Soft {
  interchange WX
  pairs 256 seed 0 train 2048 steps 400
  controls heldout, random_subspace
  expect iia >= 0.99 and control(heldout) <= 0.05
}
"""

SWEEP = """
align HierEq to planted as Out {
  O -> output : argmax
}
check Out as Find {
  locate WX over module "layers.{0..1}" output : das(k=1)
  interchange WX
  pairs 256 seed 3 train 1024 steps 400
  controls random_subspace
  expect iia >= 0.95
}
"""


@pytest.fixture(scope="module")
def boundless(planted_dir, tmp_path_factory):
    path = write_spec(planted_dir, "boundless.cspec", BOUNDLESS)
    [r] = run_checks(load(path), CheckOptions(artifacts=str(tmp_path_factory.mktemp("b"))))
    return r


def test_boundless_learns_the_planted_dimensionality(boundless):
    r = boundless
    assert r.status == "passed", r.reason
    assert r.claims[0].iia.estimate >= 0.99
    [t] = r.training
    assert t["groups"][0]["kind"] == "boundless"
    assert t["groups"][0]["dims"] == {"WX": 1}  # the planted subspace is one direction
    rs = next(c for c in r.controls if c.name == "random_subspace")
    assert "draw(s) of random orthonormal subspace(s) of 1 dim(s)" in rs.detail


def test_terminal_block_shows_training_controls_and_illusion(boundless):
    text = check_text(boundless)
    assert "training: boundless on module \"layers.0\" output" in text and "WX 1 dim(s)" in text
    assert "loss " in text and "distinct inputs, disjoint from the held-out pairs" in text
    assert "random_subspace" in text and "heldout" in text and "illusion check" in text


def test_html_report_is_self_contained_and_escaped(boundless):
    r = boundless
    evil = "<script>alert('x')</script>"
    r.name = f"Soft{evil}"
    r.claims[0].counterexamples = [{"base": {"W": evil}, "sources": [{"W": 1}], "expected": evil,
                                    "predicted": False}]
    r.notes.append(evil)
    page = render_html([r], [f"specs/{evil}.cspec"])
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert page.count("data:image/png;base64,") >= 1  # the training curve, inline
    assert "http://" not in page and "https://" not in page  # nothing fetched
    assert "causalspec-report" in page[:4096]  # the overwrite marker


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_html_report_renders_in_headless_chromium(planted_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the HTML is checked without it")
    path = write_spec(planted_dir, "sweep_html.cspec", SWEEP)
    report = tmp_path / "report.html"
    rc = main(["check", str(path), "--html", str(report), "--artifacts", str(tmp_path / "a"), "--quiet"])
    assert rc == 0 and report.is_file()
    page = report.read_text()
    assert "Localization sweep" in page and "Controls" in page
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
                    f"--screenshot={shot}", report.as_uri()], check=True, capture_output=True, timeout=120)
    from PIL import Image

    img = Image.open(shot).convert("L")
    assert img.size == (1200, 2400)
    lo, hi = img.getextrema()
    assert hi - lo > 100  # something was drawn (not a blank page)


def test_cli_locate_prints_the_table_and_writes_a_heatmap(planted_dir, tmp_path, capsys):
    path = write_spec(planted_dir, "sweep_cli.cspec", SWEEP)
    rc = main(["locate", str(path), "--out", str(tmp_path), "--artifacts", str(tmp_path / "a"),
               "--json", str(tmp_path / "sweep.json")])
    out = capsys.readouterr().out
    assert rc == 0
    assert 'module "layers.0" output' in out and "best: module \"layers.0\" output" in out
    png = tmp_path / "sweep_cli.Find.locate.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json

    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["schema"] == "causalspec.locate/1" and doc["sweeps"][0]["best"]["site"] == 'module "layers.0" output'
    # a re-run replaces its own heatmap, JSON and artifacts (they carry our markers)
    assert main(["locate", str(path), "--out", str(tmp_path), "--artifacts", str(tmp_path / "a"),
                 "--json", str(tmp_path / "sweep.json")]) == 0
    assert not [p for p in tmp_path.rglob("*.tmp")]
    # a file of the user's where a heatmap goes: refused before any sweep runs, left as it was
    png.write_bytes(b"\x89PNG\r\n\x1a\nmy own picture")
    capsys.readouterr()
    assert main(["locate", str(path), "--out", str(tmp_path)]) == 2
    cap = capsys.readouterr()
    assert f"--out: {png} already exists and was not written by causalspec" in cap.err and cap.out == ""
    assert png.read_bytes() == b"\x89PNG\r\n\x1a\nmy own picture"
    # no check with `locate`: a usage error
    plain = write_spec(planted_dir, "plain.cspec", BOUNDLESS)
    assert main(["locate", str(plain)]) == 2


def test_check_rejects_html_that_is_not_ours(planted_dir, tmp_path):
    path = write_spec(planted_dir, "plain2.cspec", BOUNDLESS)
    target = tmp_path / "mine.html"
    target.write_text("<html>my own page</html>")
    assert main(["check", str(path), "--html", str(target)]) == 2
    assert target.read_text() == "<html>my own page</html>"
