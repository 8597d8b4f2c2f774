"""docs/python-api.md: every example runs as a doctest, and every public name has one."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import causalspec

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "python-api.md"


def test_every_public_name_has_a_section_and_an_example():
    text = DOC.read_text(encoding="utf-8")
    headings = "\n".join(re.findall(r"^### .*$", text, flags=re.M))
    examples = "\n".join(line for line in text.splitlines() if line.startswith((">>> ", "... ")))
    for name in causalspec.__all__:
        assert f"causalspec.{name}" in headings or f"`{name}" in headings, f"no section for {name}"
        assert re.search(rf"causalspec\.{re.escape(name)}\b", examples) or name in ("load", "loads"), name
    assert "causalspec.load(" in examples and "causalspec.loads(" in examples


def test_the_examples_run(monkeypatch):
    monkeypatch.chdir(REPO)
    failures, tried = doctest.testfile(str(DOC), module_relative=False, verbose=False, report=True,
                                       optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried > 30
    assert failures == 0
