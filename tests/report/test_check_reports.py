"""Reports of a check run: terminal (rich), JSON (schema causalspec.check/1), JUnit XML.

Built on hand-made CheckResult records (no network runs): the reports are views of those
records, and tests/cli/test_check.py runs the real pipeline end to end.
"""

from __future__ import annotations

import io
import json
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from causalspec.files import OverwriteRefused
from causalspec.report.json_report import SCHEMA, to_json, write_json
from causalspec.report.junit import to_junit, write_junit
from causalspec.report.terminal import (CheckProgress, TerminalReport, check_text, counterexamples, make_console,
                                        render_results)
from causalspec.score.results import CheckResult, ClaimResult, ConditionResult, summary_line
from causalspec.score.stats import wilson

ANSI = re.compile(r"\x1b\[")


def claim(label, sampled, kept, ok, *, kind="declared", base=60, examples=()):
    return ClaimResult(label, [[v.strip() for v in label.strip("{}").split(",")]], sampled, kept,
                       {"base_wrong": sampled - kept} if kept < sampled else {}, changed=kept // 3,
                       moved=kept // 3, baseline=wilson(base, kept) if kept else wilson(0, 0),
                       iia=wilson(ok, kept) if kept else wilson(0, 0), counterexamples=list(examples), kind=kind)


def example(i):
    return {"base": {"W": i, "X": i, "Y": 2, "Z": 3}, "sources": [{"W": 5, "X": 6, "Y": 7, "Z": 7}],
            "expected": True, "predicted": False, "base_output": False}


def results():
    passed = CheckResult("Good", "Good", "HierEq", "hand", "passed", seed=0, pairs=128, pool=128,
                         unique_inputs=120, forward_passes={"clean": 2, "patched": 4}, seconds=0.5,
                         file="specs/a.cspec", line=20, reproduce="causalspec check specs/a.cspec --only Good")
    passed.claims = [claim("{WX}", 128, 128, 128), claim("{YZ}", 128, 126, 126),
                     claim("{WX}", 128, 128, 128, kind="subset")]
    passed.aaa = 1.0
    passed.conditions = [ConditionResult("iia >= 0.95 each", "iia", "point", "each", ">=", 0.95, 1.0, True,
                                         "every interchange set")]
    failed = CheckResult("Bad", "Bad", "HierEq", "hand", "failed", reason="iia >= 0.9 each: got 0.500",
                         seed=3, pairs=128, file="specs/a.cspec", line=30,
                         reproduce="causalspec check specs/a.cspec --only Bad --pairs 128 --seed 3")
    failed.claims = [claim("{WX}", 128, 128, 64, examples=[example(i) for i in range(5)]),
                     claim("{YZ}", 128, 0, 0, examples=[])]  # nothing kept: NaN IIA
    failed.conditions = [ConditionResult("iia >= 0.9 each", "iia", "point", "each", ">=", 0.9, 0.5, False,
                                         "fails for {WX}")]
    skipped = CheckResult("Gpt", "Gpt", "IOI", "gpt2", "skipped", reason="weights for `gpt2` not found locally",
                          file="specs/b.cspec", line=5)
    error = CheckResult("Hook", "Hook", "IOI", "gpt2", "error", reason="encode hook raised <ValueError>",
                        file="specs/b.cspec", line=9, reproduce="causalspec check specs/b.cspec --only Hook")
    return [passed, failed, skipped, error]


def render(rs, quiet=False) -> str:
    buf = io.StringIO()
    render_results(rs, make_console(file=buf), quiet=quiet)
    return buf.getvalue()


# ───────────────────────── terminal ─────────────────────────

def test_terminal_report_states_the_numbers_and_ends_with_the_summary_line():
    rs = results()
    text = render(rs)
    lines = text.splitlines()
    assert lines[-1] == summary_line(rs) == "1 passed, 2 failed, 1 skipped"
    assert not ANSI.search(text)  # not a terminal: no colour codes
    assert "holds on 128 sampled pairs (seed 0)" in text
    assert "verified" not in text.lower()
    for header in ("interchange set", "sampled", "kept (keep-rate)", "changed", "moved", "baseline", "IIA [95% CI]"):
        assert header in text
    assert "126 (98.4%)" in text  # kept with keep-rate
    assert "1.000 [0.971, 1.000]" in text  # IIA with its Wilson interval
    assert "n/a (no kept pairs)" in text  # NaN never printed as nan
    assert "nan" not in text.lower()
    assert "approximate abstraction accuracy 1.000" in text
    assert "✓ iia >= 0.95 each  — compared 1.000" in text and "✗ iia >= 0.9 each  — compared 0.500" in text
    assert "skipped: weights for `gpt2` not found locally" in text
    assert "error: encode hook raised <ValueError>" in text  # the message, with no markup eaten
    assert "reproduce: causalspec check specs/a.cspec --only Bad --pairs 128 --seed 3" in text


def test_failed_check_shows_at_most_three_counterexamples():
    bad = results()[1]
    assert len(counterexamples(bad)) == 3
    text = check_text(bad)
    assert "counterexamples (3 shown)" in text
    assert text.count("W=5, X=6, Y=7, Z=7") == 3  # the source inputs, one row each
    assert "W=0, X=0, Y=2, Z=3" in text and "W=3, X=3" not in text
    no_header = check_text(bad, header=False)
    assert no_header.startswith("does not hold on 128 sampled pairs (seed 3) for each of 2 interchange sets: "
                                "iia >= 0.9")


def test_quiet_report_prints_only_what_needs_attention():
    rs = results()
    text = render(rs, quiet=True)
    assert "Good" not in text and "IIA [95% CI]" not in text
    assert "Bad" in text and "reproduce:" in text and "Gpt" in text
    assert text.splitlines()[-1] == "1 passed, 2 failed, 1 skipped"


def test_summary_line_is_plain_even_on_a_colour_terminal():
    buf = io.StringIO()
    console = make_console(file=buf)
    console._force_terminal = True  # as on a TTY
    console._color_system = console._detect_color_system()
    report = TerminalReport(console)
    rs = results()
    for r in rs:
        report.check(r)
    report.summary(rs)
    text = buf.getvalue()
    assert ANSI.search(text)  # the blocks are coloured ...
    assert text.splitlines()[-1] == "1 passed, 2 failed, 1 skipped"  # ... the closing line is not
    assert render([]).splitlines()[-1] == "0 passed, 0 failed"


def test_ascii_only_output_gets_ascii_marks():
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    render_results(results(), make_console(file=out))
    out.flush()
    text = raw.getvalue().decode("ascii")  # nothing the encoding cannot hold
    assert "x FAIL Bad  HierEq -> hand" in text and "+ iia >= 0.95 each  - compared 1.000" in text


def test_progress_is_silent_off_a_terminal_and_starts_only_after_the_delay():
    buf = io.StringIO()
    quiet_bar = CheckProgress(make_console(file=buf))
    assert not quiet_bar.enabled
    quiet_bar("forward passes", 10)(10)
    assert buf.getvalue() == ""

    now = [0.0]
    tty = make_console(file=io.StringIO())
    bar = CheckProgress(tty, delay=2.0, enabled=True, clock=lambda: now[0])
    with bar:
        bar.begin("Good")
        advance = bar("forward passes", 100)
        advance(10)
        assert not bar.visible  # a quick check never shows a bar
        now[0] = 2.5
        advance(10)
        assert bar.visible
    assert not bar.visible


# ───────────────────────── JSON ─────────────────────────

TOP_KEYS = {"schema", "tool", "files", "summary", "checks"}
CHECK_KEYS = {"name", "alignment", "model", "network", "status", "reason", "file", "line", "seed", "pairs", "pool",
              "unique_inputs", "forward_passes", "seconds", "approximate_abstraction_accuracy", "claims",
              "conditions", "reproduce", "notes"}
CLAIM_KEYS = {"label", "groups", "kind", "pairs", "baseline", "iia", "counterexamples"}
# issue 5 (circuit claims): a result's kind and a circuit claim's numbers, same schema version
CHECK_KEYS |= {"kind", "circuit"}
# issue 4 (learned featurizers, controls, diagnostics, sweeps): added keys, same schema version
CHECK_KEYS |= {"warnings", "training", "controls", "locate"}
CLAIM_KEYS |= {"train_iia", "buckets", "suggestion", "full_patch"}
# issue 11 (one effective seed): where the seed came from
CHECK_KEYS |= {"seed_source"}
# issue 17 (SAE featurizers): fidelity, the error-term comparison and the latent search (null without an SAE)
CHECK_KEYS |= {"sae"}
# issue 13 (real outputs): the tolerance a real output is scored with (null for a discrete one)
CHECK_KEYS |= {"tolerance"}
# the guards' tests per set (score/guards.py): chance agreement and the sign test against the baseline
CLAIM_KEYS |= {"guards"}
PAIRS_KEYS = {"sampled", "kept", "dropped", "keep_rate", "changed", "moved", "nonfinite"}
PROPORTION_KEYS = {"successes", "trials", "estimate", "lower95", "upper95"}
CONDITION_KEYS = {"text", "metric", "statistic", "aggregation", "op", "threshold", "value", "passed", "detail"}


def test_json_schema_keys_are_stable():
    doc = to_json(results(), ["specs/a.cspec", "specs/b.cspec"])
    assert set(doc) == TOP_KEYS
    assert doc["schema"] == SCHEMA == "causalspec.check/1"
    assert set(doc["tool"]) == {"name", "version"} and doc["tool"]["name"] == "causalspec"
    assert doc["summary"] == {"passed": 1, "failed": 1, "skipped": 1, "errors": 1}
    assert doc["files"] == ["specs/a.cspec", "specs/b.cspec"]
    for check in doc["checks"]:
        assert set(check) == CHECK_KEYS
        for c in check["claims"]:
            assert set(c) == CLAIM_KEYS and set(c["pairs"]) == PAIRS_KEYS
            assert set(c["iia"]) == PROPORTION_KEYS == set(c["baseline"])
        for cond in check["conditions"]:
            assert set(cond) == CONDITION_KEYS


def test_json_round_trips_with_nan_as_null():
    rs = results()
    rs[1].aaa = float("nan")
    rs[1].claims[0].counterexamples[0]["expected"] = np.bool_(True)  # numpy values from a domain
    rs[1].notes.append(np.float32(0.5))
    doc = to_json(rs)
    text = json.dumps(doc, allow_nan=False)  # raises on any NaN left
    back = json.loads(text)
    assert back == doc
    bad = back["checks"][1]
    assert bad["approximate_abstraction_accuracy"] is None
    assert bad["claims"][1]["iia"]["estimate"] is None and bad["claims"][1]["iia"]["lower95"] is None
    assert bad["claims"][0]["counterexamples"][0]["expected"] is True
    assert not any(isinstance(v, float) and math.isnan(v) for v in _leaves(back))


def _leaves(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, list):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def test_write_json_replaces_its_own_file_but_never_a_user_file(tmp_path):
    target = tmp_path / "out" / "report.json"
    write_json(target, results(), ["specs/a.cspec"])
    write_json(target, results()[:1], ["specs/a.cspec"])  # a re-run overwrites its own report
    assert json.loads(target.read_text())["summary"]["passed"] == 1
    assert len(json.loads(target.read_text())["checks"]) == 1
    user = tmp_path / "mine.json"
    user.write_text('{"precious": true}')
    with pytest.raises(OverwriteRefused):
        write_json(user, results())
    assert user.read_text() == '{"precious": true}'


# ───────────────────────── JUnit ─────────────────────────

def test_junit_has_a_suite_per_file_and_a_case_per_check(tmp_path):
    target = tmp_path / "junit.xml"
    write_junit(target, results(), ["specs/a.cspec", "specs/b.cspec", "specs/empty.cspec"])
    write_junit(target, results(), ["specs/a.cspec", "specs/b.cspec", "specs/empty.cspec"])  # overwrites its own
    root = ET.parse(target).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("4", "1", "1", "1")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["specs/a.cspec", "specs/b.cspec", "specs/empty.cspec"]
    assert [s.get("tests") for s in suites] == ["2", "2", "0"]
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert {c.get("classname") for c in cases.values()} == {"a", "b"}
    assert float(cases["Good"].get("time")) == pytest.approx(0.5)
    assert cases["Good"].find("failure") is None and cases["Good"].find("skipped") is None
    props = {p.get("name"): p.get("value") for p in cases["Good"].iter("property")}
    assert float(props["iia {WX}"]) == 1.0 and float(props["iia_lower95 {WX}"]) == pytest.approx(0.9709, abs=1e-4)
    assert props["kept {YZ}"] == "126" and props["seed"] == "0" and "iia {WX} (aaa subset)" in props
    failure = cases["Bad"].find("failure")
    assert failure.get("message") == "iia >= 0.9 each: got 0.500"
    assert "counterexamples (3 shown)" in failure.text and "reproduce: causalspec check" in failure.text
    assert cases["Gpt"].find("skipped").get("message") == "weights for `gpt2` not found locally"
    assert cases["Hook"].find("error").get("message") == "encode hook raised <ValueError>"


def test_junit_drops_characters_xml_cannot_hold(tmp_path):
    r = results()[3]
    r.reason = "hook printed \x1b[31mred\x00"
    ET.fromstring(ET.tostring(to_junit([r])))
    write_junit(tmp_path / "j.xml", [r])
    assert ET.parse(tmp_path / "j.xml").getroot().find(".//error").get("message") == "hook printed [31mred"
