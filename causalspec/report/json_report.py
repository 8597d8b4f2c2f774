"""JSON report of a check run: a stable, versioned schema for CI and other tools.

Schema `causalspec.check/1` (a change that removes or renames a key bumps the number;
adding a key does not):

    {
      "schema": "causalspec.check/1",
      "tool": {"name": "causalspec", "version": "0.1.0"},
      "files": ["specs/hier_eq.cspec", ...],          # the spec files checked
      "summary": {"passed": 1, "failed": 1, "skipped": 0, "errors": 0},
      "checks": [CheckResult.to_dict(), ...],
      "interrupted": true                             # only after a Ctrl-C: `checks` holds those that finished
    }

`summary.failed` counts checks whose claim did not hold and `summary.errors` checks that
could not be run to a verdict (the terminal's closing line counts both as failed). Numbers
that do not exist (an IIA with no kept pairs) are `null`, never NaN, so any JSON parser
reads the file. `schema` and `tool` are the marker that lets a re-run overwrite its own
report (and only that, see causalspec/files.py).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from causalspec.files import TOOL, atomic_write_text, tool_version
from causalspec.score.results import ERROR, FAILED, PASSED, SKIPPED, CheckResult

SCHEMA = "causalspec.check/1"


def summary_counts(results: Iterable[CheckResult]) -> dict[str, int]:
    results = list(results)
    return {"passed": sum(r.status == PASSED for r in results),
            "failed": sum(r.status == FAILED for r in results),
            "skipped": sum(r.status == SKIPPED for r in results),
            "errors": sum(r.status == ERROR for r in results)}


def jsonable(value: Any) -> Any:
    """A plain-JSON copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def to_json(results: Sequence[CheckResult], spec_files: Iterable[str | os.PathLike] = (),
            interrupted: bool = False) -> dict:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "tool": {"name": TOOL, "version": tool_version()},
        "files": [os.fspath(f) for f in spec_files],
        "summary": summary_counts(results),
        "checks": [jsonable(r.to_dict()) for r in results],
    }
    if interrupted:
        doc["interrupted"] = True
    return doc


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, results: Sequence[CheckResult],
               spec_files: Iterable[str | os.PathLike] = (), interrupted: bool = False) -> Path:
    """Write the report atomically; an existing file is replaced only if it is a report of ours."""
    return atomic_write_text(path, dumps(to_json(results, spec_files, interrupted)))
