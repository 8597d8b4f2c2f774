"""Golden corpus of invalid specs: each file in tests/syntax/bad/ states the diagnostics it
must produce in its first lines:

    # expect: E0203 7:22
    # expect: E0308 9:9          (optional further lines)
    # help: did you mean         (optional: a substring of the first diagnostic's help)

The first `# expect:` line is the first diagnostic (errors are sorted by position, as
`SpecError` carries them); every expected (code, line, column) must be among the
diagnostics. A `# help:` line must appear in the first diagnostic's help line, and every
diagnostic of the corpus has a help line: a diagnostic that does not say how to fix the
mistake is a bug. Rendering every file's diagnostics must work and point at the file.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from causalspec.diagnostics import CODES, SpecError, render
from causalspec.semantics.analyse import load

BAD_DIR = Path(__file__).parent / "bad"
BAD_FILES = sorted(BAD_DIR.glob("*.cspec"))
EXPECT_RE = re.compile(r"#\s*expect:\s*(E\d{4})\s+(\d+):(\d+)\s*$")
HELP_RE = re.compile(r"#\s*help:\s*(.+?)\s*$")


def _header(path: Path) -> list[str]:
    """The leading `# expect:` / `# help:` lines (a byte order mark before them is allowed)."""
    out = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if not (EXPECT_RE.match(line.strip()) or HELP_RE.match(line.strip())):
            break
        out.append(line.strip())
    return out


def expectations(path: Path) -> list[tuple[str, int, int]]:
    return [(m.group(1), int(m.group(2)), int(m.group(3)))
            for m in (EXPECT_RE.match(line) for line in _header(path)) if m]


def help_expectations(path: Path) -> list[str]:
    return [m.group(1) for m in (HELP_RE.match(line) for line in _header(path)) if m]


@functools.cache
def _analyse(path: Path):
    try:
        load(path)
    except SpecError as exc:
        return exc.diagnostics
    return None


def diagnostics_of(path: Path):
    diags = _analyse(path)
    assert diags is not None, f"{path.name}: analysis succeeded, but the file is in the bad corpus"
    assert diags, f"{path.name}: SpecError without diagnostics"
    return diags


def test_corpus_size_and_headers():
    assert len(BAD_FILES) >= 45, f"expected at least 45 invalid specs in {BAD_DIR}"
    for path in BAD_FILES:
        expected = expectations(path)
        assert expected, f"{path.name}: first line must be `# expect: CODE LINE:COL`"
        for code, _, _ in expected:
            assert code in CODES, f"{path.name}: {code} is not a registered diagnostic code"


def test_every_category_is_covered():
    categories = {code[1:3] for path in BAD_FILES for code, _, _ in expectations(path)}
    for cat in ("01", "02", "03", "04", "05", "06", "07", "08"):
        assert cat in categories, f"no bad spec expects an E{cat}xx diagnostic"


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_spec(path: Path):
    expected = expectations(path)
    diags = diagnostics_of(path)
    got = [(d.code, d.span.line, d.span.column) for d in diags]
    shown = "\n  ".join(f"{c} {l}:{col} {d.message}" for (c, l, col), d in zip(got, diags))
    assert got[0] == expected[0], f"{path.name}: first diagnostic differs; got\n  {shown}"
    missing = [e for e in expected if e not in got]
    assert not missing, f"{path.name}: expected {missing} among\n  {shown}"
    for wanted in help_expectations(path):
        assert wanted in (diags[0].help or ""), f"{path.name}: help {diags[0].help!r} lacks {wanted!r}"
    no_help = [f"{d.code} {d.span.line}:{d.span.column} {d.message}" for d in diags if not d.help]
    assert not no_help, f"{path.name}: diagnostics without a help line: {no_help}"


def test_issue10_cases_assert_code_span_and_help():
    """The text-input, bounds and common-mistake cases of issue 10 (prefix t10_) each pin a help."""
    cases = [p for p in BAD_FILES if p.name.startswith("t10_")]
    assert len(cases) >= 30, f"expected at least 30 t10_ cases, found {len(cases)}"
    for path in cases:
        assert expectations(path) and help_expectations(path), f"{path.name}: needs `# expect:` and `# help:`"


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_bad_spec_renders(path: Path):
    diags = diagnostics_of(path)
    text = path.read_text(encoding="utf-8")
    n_lines = len(text.splitlines())
    for with_source in (True, False):
        sources = {str(path): text} if with_source else None
        out = render(diags, sources)
        assert "-->" in out
        first = diags[0]
        assert f"{path}:{first.span.line}:{first.span.column}" in out
        for d in diags:
            assert f"error[{d.code}]" in out
            assert 1 <= d.span.line <= n_lines + 1 and d.span.column >= 1, f"bad span {d.span}"
        # the caret line sits under the quoted source line
        lines = out.splitlines()
        carets = [i for i, line in enumerate(lines) if re.match(r"^\s*\| *\^+", line)]
        if first.span.line <= n_lines:
            assert carets, f"no caret line in\n{out}"
            i = carets[0]
            src = lines[i - 1]
            assert src.startswith(f"{first.span.line} | "), f"caret not under the source line:\n{out}"
