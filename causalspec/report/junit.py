"""JUnit XML report of a check run, for CI systems that display test results.

Layout: `<testsuites name="causalspec">` holds one `<testsuite>` per spec file (name = the
file as given) and one `<testcase>` per check (classname = the file's stem, name = the
check's name, time = seconds). A failed check carries `<failure message=REASON>` whose
text is the same block the terminal prints (numbers, conditions, counterexamples, the
reproduce command); a check that could not run carries `<error>`; a skipped one
`<skipped message=REASON>`. Each testcase has `<properties>` with the numbers: status,
seed, pairs, and per interchange set its IIA, 95% bounds, sampled, kept and baseline.

After a Ctrl-C (or SIGTERM) the file holds the checks that finished plus one more suite,
`causalspec (interrupted)`, whose one testcase carries an `<error type="Interrupted">`: JUnit
has no field for an interrupted run, and a report of only the finished (perhaps all passing)
checks would read green in CI although the rest never ran.

Written atomically; the root element names causalspec, which is the marker that lets a
re-run replace its own report and nothing else.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Sequence

from causalspec.files import atomic_write_text
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED, CheckResult

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _safe(text) -> str:
    """XML 1.0 cannot hold most control characters, escaped or not: drop them."""
    return _INVALID_XML.sub("", str(text))


def _num(v) -> str:
    if v is None or v != v:
        return "nan"
    return repr(float(v))


def _properties(r: CheckResult) -> list[tuple[str, str]]:
    props = [("status", r.status), ("seed", str(r.seed)), ("pairs", str(r.pairs))]
    if r.aaa is not None:
        props.append(("approximate_abstraction_accuracy", _num(r.aaa)))
    if getattr(r, "tolerance", None) is not None:  # a real output, right within this of the model's value
        props.append(("tolerance", _num(r.tolerance)))
    for c in r.claims:
        key = f"{c.label} (aaa subset)" if c.kind == "subset" else c.label
        props += [(f"iia {key}", _num(c.iia.estimate if c.iia.trials else None)),
                  (f"iia_lower95 {key}", _num(c.iia.lower if c.iia.trials else None)),
                  (f"iia_upper95 {key}", _num(c.iia.upper if c.iia.trials else None)),
                  (f"sampled {key}", str(c.sampled)), (f"kept {key}", str(c.kept)),
                  (f"baseline {key}", _num(c.baseline.estimate if c.baseline.trials else None))]
    if r.circuit is not None:
        from causalspec.report.circuit_report import circuit_properties

        props += circuit_properties(r.circuit)
    for cond in r.conditions:
        props.append((f"condition {cond.text}", f"{'pass' if cond.passed else 'fail'} {_num(cond.value)}"))
    return props


def _testcase(parent: ET.Element, r: CheckResult) -> None:
    from causalspec.report.terminal import check_text

    case = ET.SubElement(parent, "testcase", classname=_safe(Path(r.file).stem if r.file else "spec"),
                         name=_safe(r.name), time=f"{r.seconds:.3f}")
    if r.file:
        case.set("file", _safe(r.file))
        case.set("line", str(r.line))
    props = ET.SubElement(case, "properties")
    for name, value in _properties(r):
        ET.SubElement(props, "property", name=_safe(name), value=_safe(value))
    if r.status == FAILED:
        el = ET.SubElement(case, "failure", message=_safe(r.reason), type="CheckFailed")
        el.text = _safe(check_text(r))
    elif r.status == ERROR:
        el = ET.SubElement(case, "error", message=_safe(r.reason), type="CheckError")
        el.text = _safe(check_text(r))
    elif r.status == SKIPPED:
        ET.SubElement(case, "skipped", message=_safe(r.reason))
    elif r.status == PASSED:
        out = ET.SubElement(case, "system-out")
        out.text = _safe(check_text(r))


def to_junit(results: Sequence[CheckResult], spec_files: Iterable[str | os.PathLike] = (),
             interrupted: bool = False) -> ET.Element:
    """The `<testsuites>` element: a suite per spec file (in the given order, then any others),
    and after an interrupted run the `causalspec (interrupted)` suite with its error."""
    files = [os.fspath(f) for f in spec_files]
    for r in results:
        if r.file not in files:
            files.append(r.file)
    root = ET.Element("testsuites", name="causalspec")
    totals = dict(tests=0, failures=0, errors=0, skipped=0, time=0.0)
    for file in files:
        mine = [r for r in results if r.file == file]
        counts = dict(tests=len(mine), failures=sum(r.status == FAILED for r in mine),
                      errors=sum(r.status == ERROR for r in mine), skipped=sum(r.status == SKIPPED for r in mine),
                      time=sum(r.seconds for r in mine))
        attrib = {"name": _safe(file or "spec")}
        attrib.update({k: (f"{v:.3f}" if k == "time" else str(v)) for k, v in counts.items()})
        suite = ET.SubElement(root, "testsuite", attrib)
        for r in mine:
            _testcase(suite, r)
        for k in totals:
            totals[k] += counts[k]
    if interrupted:
        suite = ET.SubElement(root, "testsuite", name="causalspec (interrupted)", tests="1", failures="0",
                              errors="1", skipped="0", time="0.000")
        case = ET.SubElement(suite, "testcase", classname="causalspec", name="run interrupted", time="0.000")
        message = (f"the run was interrupted after {len(results)} finished check(s); "
                   "the checks after them did not run")
        ET.SubElement(case, "error", message=message, type="Interrupted").text = message
        totals["tests"] += 1
        totals["errors"] += 1
    for k, v in totals.items():
        root.set(k, f"{v:.3f}" if k == "time" else str(v))
    return root


def dumps(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | os.PathLike, results: Sequence[CheckResult],
                spec_files: Iterable[str | os.PathLike] = (), interrupted: bool = False) -> Path:
    """Write the report atomically; an existing file is replaced only if it is a causalspec file."""
    return atomic_write_text(path, dumps(to_junit(results, spec_files, interrupted)))
