"""The table of report writers: one row per report file `causalspec check` can write.

Why a table: the CLI declares the flags from it, checks every target before the run, and writes
every requested file after it, all by walking `WRITERS`; adding a format is a writer module and
one row here, not edits in three places of `cli/check.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from causalspec.report.html import write_html
from causalspec.report.json_report import write_json
from causalspec.report.junit import write_junit
from causalspec.score.results import CheckResult

Write = Callable[[str, Sequence[CheckResult], list[str], bool], Path]


@dataclass(frozen=True)
class ReportWriter:
    """`flag`: the CLI option without `--` (also the attribute argparse sets); `kind`: what the
    file is, for help lines; `write(path, results, files, interrupted)` writes it and returns
    the path written."""

    flag: str
    kind: str
    help: str
    write: Write


def _junit(path: str, results: Sequence[CheckResult], files: list[str], interrupted: bool) -> Path:
    return write_junit(path, results, files, interrupted=interrupted)


def _json(path: str, results: Sequence[CheckResult], files: list[str], interrupted: bool) -> Path:
    return write_json(path, results, files, interrupted=interrupted)


def _html(path: str, results: Sequence[CheckResult], files: list[str], interrupted: bool) -> Path:
    return write_html(path, results, files, interrupted=interrupted)


WRITERS: tuple[ReportWriter, ...] = (
    ReportWriter("json", "JSON", "also write a JSON report (schema causalspec.check/1)", _json),
    ReportWriter("junit", "JUnit XML", "also write a JUnit XML report", _junit),
    ReportWriter("html", "HTML", "also write a self-contained HTML report", _html),
)
WRITER = {w.flag: w for w in WRITERS}
