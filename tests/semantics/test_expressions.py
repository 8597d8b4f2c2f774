"""Mechanism expressions: vectorized evaluation, typing, sympy export, and injection safety."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest
import sympy

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.semantics.expr import to_latex, to_sympy

PACKAGE = Path(__file__).resolve().parents[2] / "causalspec"


def model_of(body: str, name: str = "M"):
    ir = load_text(f"model {name} {{\n{body}\n}}\n", "expr.cspec")
    return ir.models[name]


def codes_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_text(text, "expr.cspec")
    return [d.code for d in info.value.diagnostics]


# ───────────────────────── evaluation on hand-computed cases ─────────────────────────

def test_arithmetic_functions_and_tables_evaluate_vectorized():
    m = model_of("""
      input a, b : int 0..9 ~ uniform
      table T : int 0..9 -> int 0..3 = { 0: 3, 1: 2, _: 1 }
      var s : int -20..40 = (a - b) * 2 + a // 3 - b % 4
      var f : int 0..20 = max(abs(a - b), min(a, b, 5)) + mod(a, 3) + clip(a, 2, 4)
      var t : int 0..3 = T[a]
      var c : int 0..3 = count(a > b, a == b, a < 5)
      output o : bool = if a > b then xor(a > 5, b > 5) else not (a == b)
    """)
    a = np.array([0, 1, 7, 9, 4])
    b = np.array([0, 3, 2, 9, 8])
    env = m.run({"a": a, "b": b})
    for i in range(len(a)):
        x, y = int(a[i]), int(b[i])
        assert env["s"][i] == (x - y) * 2 + x // 3 - y % 4
        assert env["f"][i] == max(abs(x - y), min(x, y, 5)) + x % 3 + min(max(x, 2), 4)
        assert env["t"][i] == {0: 3, 1: 2}.get(x, 1)
        assert env["c"][i] == (x > y) + (x == y) + (x < 5)
        assert env["o"][i] == (((x > 5) != (y > 5)) if x > y else not (x == y))


def test_enum_values_compare_by_member_bare_or_quoted():
    m = model_of("""
      input order : enum {ABB, BAB, "A B"} ~ uniform
      output first : bool = order == ABB or order == "A B"
    """)
    env = m.run(m.encode_inputs({"order": ["ABB", "BAB", "A B"]}))
    assert list(env["first"]) == [True, False, True]


def test_do_on_an_intermediate_recomputes_descendants_only():
    m = model_of("""
      input a : int 0..3 ~ uniform
      var d : int 0..6 = a * 2
      output o : bool = d > 3
    """)
    env = m.run({"a": np.array([0, 3])}, {"d": np.array([5, 0])})
    assert list(env["a"]) == [0, 3] and list(env["o"]) == [True, False]


# ───────────────────────── types and domains ─────────────────────────

@pytest.mark.parametrize("body, code", [
    ("input a : int 0..3\n output o : bool = a + 1", "E0301"),           # int where bool declared
    ("input a : bool\n output o : int 0..3 = a * 2", "E0301"),           # arithmetic on bool
    ("input a : int 0..3\n output o : int 0..3 = a // (a - a)", "E0301"),  # divisor can be zero
    ("input a : int 0..3\n output o : int 0..3 = abs(a, a)", "E0304"),   # arity
    ("input a : int 0..3\n output o : int 0..3 = eval(a)", "E0204"),     # not whitelisted
    ("input a : int 0..9\n output o : int 0..5 = a + 1", "E0305"),       # escapes its domain
])
def test_type_and_domain_errors(body, code):
    assert code in codes_of(f"model M {{\n {body}\n}}\n")


def test_domain_overflow_names_a_witness_input():
    with pytest.raises(SpecError) as info:
        load_text("model M {\n input a : int 0..9\n output o : int 0..5 = a + 1\n}\n", "x.cspec")
    d = info.value.diagnostics[0]
    assert d.code == "E0305" and (d.span.line, d.span.column) == (3, 24)
    assert any("a=5" in n for n in d.notes)


# ───────────────────────── sympy export ─────────────────────────

def test_sympy_objects_are_built_from_the_ast():
    m = model_of("""
      input W, X, Y, Z : int 0..3 ~ uniform
      var WX : bool = W == X
      var YZ : bool = Y == Z
      var k : int 0..9 = if WX then W + 2 * X else abs(W - X)
      output O : bool = WX == YZ
    """)
    k = to_sympy(m.variables["k"].mechanism.ast)
    assert isinstance(k, sympy.Piecewise)
    assert k.free_symbols == {sympy.Symbol("W"), sympy.Symbol("X"), sympy.Symbol("WX")}
    assert to_latex(m.variables["O"].mechanism.ast) == "WX = YZ"


# ───────────────────────── injection safety ─────────────────────────

HOSTILE_STRINGS = [
    "__import__('os').system('touch PWNED')",
    "exec('import os; os.system(\\\"touch PWNED\\\")')",
    "lambda: __import__('os')",
    "${touch PWNED}",
    "Symbol('x').__class__",
]


@pytest.mark.parametrize("payload", HOSTILE_STRINGS)
def test_code_in_strings_is_inert_data(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    escaped = payload.replace("\\", "\\\\").replace('"', '\\"')
    m = model_of(f"""
      input v : enum {{"{escaped}", safe}} ~ uniform
      output hit : bool = v == "{escaped}"
    """)
    env = m.run(m.encode_inputs({"v": [payload, "safe"]}))
    assert list(env["hit"]) == [True, False]
    expr = to_sympy(m.variables["hit"].mechanism.ast)
    assert sympy.Symbol(payload) in expr.free_symbols  # a name, never parsed
    sympy.latex(expr)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["__import__", "__builtins__", "exec", "eval", "os", "sys",
                                  "E", "I", "pi", "oo", "S", "Symbol", "lambda_"])
def test_python_and_sympy_names_are_just_variable_names(name):
    m = model_of(f"""
      input {name} : int 0..3 ~ uniform
      output o : int 0..6 = {name} + {name}
    """)
    env = m.run({name: np.array([0, 1, 3])})
    assert list(env["o"]) == [0, 2, 6]
    expr = to_sympy(m.variables["o"].mechanism.ast)
    assert expr.free_symbols == {sympy.Symbol(name)}  # not sympy's E, I, pi, oo, ...


def test_calling_python_builtins_is_rejected():
    for call in ("__import__(1)", "eval(1)", "exec(1)", "getattr(1, 2)", "open(1)"):
        assert codes_of(f"model M {{\n input a : int 0..3\n output o : int 0..3 = {call}\n}}\n") == ["E0204"]


def _banned_calls(tree: ast.AST) -> set[str]:
    """Bare `eval(...)`/`exec(...)` and any `sympify`/`parse_expr`/`lambdify` call.

    (`module.eval()` — torch's train/eval switch — is a method call and allowed.)
    """
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in {"eval", "exec", "sympify", "parse_expr", "lambdify"}:
            out.add(f.id)
        if isinstance(f, ast.Attribute) and f.attr in {"sympify", "parse_expr", "lambdify"}:
            out.add(f.attr)
    return out


def test_package_never_evaluates_text():
    """The whole package: no eval/exec of strings, no sympify/parse_expr/lambdify."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for name in sorted(_banned_calls(ast.parse(path.read_text(encoding="utf-8")))):
            offenders.append(f"{path.relative_to(PACKAGE)}: {name}()")
    assert offenders == [], offenders


def test_no_stray_files_from_hostile_specs(tmp_path):
    assert not any(p.name == "PWNED" for p in Path(os.getcwd()).iterdir())
