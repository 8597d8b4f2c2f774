"""`causalspec check`: exit codes, the closing line, report files, usage errors.

The specs are written into a temporary folder and point at the shipped hand-built
hierarchical-equality network (examples/hier_eq) by absolute path, with few pairs, so a run
takes well under a second once torch is imported.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from causalspec.testing.specs import HAND_GOOD_CHECK, HIER_EQ_MODEL, MISSING_HF_SPEC, hier_eq_alignment

from causalspec.cli import main


MODEL = HIER_EQ_MODEL

HAND = HAND_GOOD_CHECK + hier_eq_alignment("Swapped", "[20:40]", "[0:20]") + """
check Swapped {
  interchange WX
  pairs 48 seed 0
  expect iia >= 0.9 each
}
"""

MISSING_HF = MISSING_HF_SPEC


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("specs")
    files = {"hand": MODEL + HAND, "skip": MISSING_HF, "empty": MODEL,
             "bad": "model M {\n  input A : bool ~ uniform\n  output O : bool = B\n}\n"}
    out = {}
    for name, text in files.items():
        out[name] = d / f"{name}.cspec"
        out[name].write_text(text)
    return out


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["check", *map(str, argv)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_all_passed_exits_0_and_says_holds(specs, capsys):
    code, out, _ = run(capsys, specs["hand"], "--only", "Good")
    assert code == 0
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    assert "holds on 48 sampled pairs (seed 0)" in out
    assert "Swapped" not in out


def test_a_failed_check_exits_1_and_writes_both_reports(specs, capsys, tmp_path):
    j, x = tmp_path / "r" / "report.json", tmp_path / "r" / "junit.xml"
    code, out, _ = run(capsys, specs["hand"], "--json", j, "--junit", x, "--pairs", 40, "--seed", 1)
    assert code == 1
    lines = out.splitlines()
    assert lines[-1] == "1 passed, 1 failed"
    assert f"wrote {j}" in lines and f"wrote {x}" in lines
    assert "counterexamples (3 shown)" in out
    assert f"reproduce: causalspec check {specs['hand']} --only Swapped --pairs 40 --seed 1" in out

    doc = json.loads(j.read_text())
    assert doc["schema"] == "causalspec.check/1"
    assert doc["summary"] == {"passed": 1, "failed": 1, "skipped": 0, "errors": 0}
    assert doc["files"] == [str(specs["hand"])]
    assert [(c["name"], c["status"], c["pairs"], c["seed"]) for c in doc["checks"]] == [
        ("Good", "passed", 40, 1), ("Swapped", "failed", 40, 1)]
    assert doc["checks"][0]["claims"][0]["iia"]["estimate"] == 1.0

    suite = ET.parse(x).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "1", "0")
    assert [c.get("classname") for c in suite.iter("testcase")] == ["hand", "hand"]

    # the same command again replaces its own reports
    assert run(capsys, specs["hand"], "--only", "Good", "--json", j, "--junit", x)[0] == 0
    assert json.loads(j.read_text())["summary"]["failed"] == 0


def test_a_skipped_check_is_not_a_failure_but_is_not_counted_as_passed(specs, capsys):
    code, out, _ = run(capsys, specs["skip"], "--quiet")
    assert code == 0
    assert out.splitlines()[-1] == "0 passed, 0 failed, 1 skipped"
    assert "not found locally" in out


def test_an_invalid_spec_exits_2_with_diagnostics_and_runs_nothing(specs, capsys):
    code, out, err = run(capsys, specs["hand"], specs["bad"])
    assert code == 2
    assert "error[E0203]" in err and "Traceback" not in err + out
    assert "passed" not in out  # nothing ran: every spec is validated first


@pytest.mark.parametrize("argv, message", [
    (["--only", "Goood"], "did you mean `Good`?"),
    (["--pairs", "0"], "--pairs must be at least 1"),
])
def test_usage_mistakes_exit_2(specs, capsys, argv, message):
    code, out, err = run(capsys, specs["hand"], *argv)
    assert code == 2
    assert message in err
    assert "passed" not in out


def test_a_spec_with_nothing_to_check_is_not_green(specs, capsys):
    """A file whose claims were all deleted must not exit 0 with "0 passed": CI would read it as green."""
    code, out, err = run(capsys, specs["empty"])
    assert code == 2
    assert "nothing to check" in err and "no `check` and no `circuit` claim" in err
    assert "passed" not in out
    code, out, _ = run(capsys, specs["empty"], specs["hand"], "--only", "Good")  # the run tests something
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed"


def test_refuses_to_overwrite_a_user_file_before_running(specs, capsys, tmp_path):
    mine = tmp_path / "notes.json"
    mine.write_text("my notes")
    code, out, err = run(capsys, specs["hand"], "--json", mine)
    assert code == 2
    assert "refusing to overwrite" in err and "passed" not in out
    assert mine.read_text() == "my notes"
