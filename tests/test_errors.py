"""The error tree (causalspec/errors.py) and the declared diagnostic codes (causalspec/codes.py).

What these guard: a mistyped code is a missing name that fails when its module is imported
(never an "unregistered code" crash on an error path nobody ran); every declared code is
documented; the analysers write no bare code strings; and every exception causalspec raises
on purpose sits under one of the four kinds, keeping the builtin base existing handlers catch.
"""

from __future__ import annotations

import importlib
import io
import re
import sys
import tokenize
from pathlib import Path

import pytest

from causalspec import codes, errors
from causalspec.diagnostics import CODES, WARNING_CODES, DiagnosticSink

ROOT = Path(__file__).resolve().parents[1]
ERRORS_MD = ROOT / "docs" / "errors.md"


# ───────────────────────── declared codes ─────────────────────────

def _import_source(tmp_path, monkeypatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module(name)


def test_a_mistyped_code_fails_at_import(tmp_path, monkeypatch):
    # the way the analysers import codes: a typo is an ImportError when the module loads
    with pytest.raises(ImportError, match="E0291"):
        _import_source(tmp_path, monkeypatch, "uses_mistyped_code", "from causalspec.codes import E0201, E0291\n")
    # attribute access at module level: AttributeError at import
    with pytest.raises(AttributeError, match="E0291"):
        _import_source(tmp_path, monkeypatch, "uses_mistyped_attr", "from causalspec import codes\nC = codes.E0291\n")
    # the correct names import
    _import_source(tmp_path, monkeypatch, "uses_real_code", "from causalspec.codes import E0201, W0601\n")


def test_codes_registry_is_derived_from_the_constants():
    assert CODES == {str(c): c.description for c in codes.ALL if c.startswith("E")}
    assert WARNING_CODES == {str(c): c.description for c in codes.ALL if c.startswith("W")}
    assert WARNING_CODES["W0601"] == "prompt without placeholders"
    assert WARNING_CODES["W0701"] == "components outside the circuit kept under an unstated convention"
    assert codes.E0201 == "E0201" and codes.E0201.description == "duplicate declaration"
    # every constant is named after its own code (no `E0202 = Code("E0203", …)` slip)
    for name in dir(codes):
        value = getattr(codes, name)
        if isinstance(value, codes.Code):
            assert name == value, f"codes.{name} declares {value!r}"
    assert len(set(codes.ALL)) == len(codes.ALL)


def test_every_declared_code_has_a_documented_heading():
    text = ERRORS_MD.read_text(encoding="utf-8")
    headings = dict(re.findall(r"^### ([EW]\d{4}) — (.+)$", text, re.MULTILINE))
    for code in codes.ALL:
        assert code in headings, f"docs/errors.md has no `### {code} — {code.description}` heading"
        assert headings[code].strip() == code.description, (
            f"{code}: heading {headings[code]!r}, declared {code.description!r}")


def test_a_diagnostic_stores_the_plain_code_text():
    sink = DiagnosticSink()
    sink.error(codes.E0201, "m")
    sink.warn(codes.W0601, "m")
    assert [type(d.code) for d in sink.items] == [str, str]
    assert [d.code for d in sink.items] == ["E0201", "W0601"]


def _bare_codes(path: Path) -> list[str]:
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if tok.type == tokenize.STRING and re.fullmatch(r"""(["'])[EW]\d{4}\1""", tok.string):
            found.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string}")
    return found


def test_the_analysers_use_declared_codes_not_strings():
    files = [f for room in ("syntax", "semantics") for f in sorted((ROOT / "causalspec" / room).rglob("*.py"))]
    bare = [hit for f in files for hit in _bare_codes(f)]
    assert not bare, "use the constants of causalspec.codes:\n" + "\n".join(bare)


# ───────────────────────── the error tree ─────────────────────────

KINDS = {
    "causalspec.diagnostics:SpecError": (errors.SpecError, None),
    "causalspec.cli.base:UsageError": (errors.UsageError, None),
    "causalspec.files:OutputError": (errors.UsageError, None),
    "causalspec.files:OverwriteRefused": (errors.UsageError, None),
    "causalspec.files:UnwritableTarget": (errors.UsageError, None),
    "causalspec.run.devices:BadDeviceOrDtype": (errors.UsageError, ValueError),
    "causalspec.remote_hosts:HostConfigError": (errors.UsageError, ValueError),
    "causalspec.interop.circuit_files:CircuitFileError": (errors.UsageError, ValueError),
    "causalspec.run.loading:NetworkUnavailable": (errors.CheckSkipped, None),
    "causalspec.run.loading:NetworkLoadError": (errors.CheckError, None),
    "causalspec.run.loading:UserCodeError": (errors.CheckError, None),
    "causalspec.run.adapters:CheckUsageError": (errors.CheckError, None),
    "causalspec.run.sites:UnservableSite": (errors.CheckError, None),
    "causalspec.run.sites:SiteShapeError": (errors.CheckError, RuntimeError),
    "causalspec.run.sites:SiteCallError": (errors.CheckError, None),
    "causalspec.semantics.sampling:SamplingError": (errors.CheckError, ValueError),
    "causalspec.semantics.featurizers:FeaturizerError": (errors.CheckError, ValueError),
    "causalspec.compile.circuit_plan:CircuitPlanError": (errors.CheckError, ValueError),
    "causalspec.syntax.printer:PrintError": (errors.CausalspecError, ValueError),
}


@pytest.mark.parametrize("where", sorted(KINDS))
def test_each_exception_sits_under_its_kind(where):
    module, name = where.split(":")
    cls = getattr(importlib.import_module(module), name)
    kind, builtin = KINDS[where]
    assert issubclass(cls, kind) and issubclass(cls, errors.CausalspecError)
    if builtin is not None:  # handlers that catch the builtin still catch it
        assert issubclass(cls, builtin)


def test_the_four_kinds_are_distinct():
    kinds = [errors.SpecError, errors.UsageError, errors.CheckSkipped, errors.CheckError]
    for a in kinds:
        assert a.__bases__ == (errors.CausalspecError,)
        for b in kinds:
            assert a is b or not issubclass(a, b)
