"""`real` values in models (issue 13): exact arithmetic, the type rules and their diagnostics,
and how a network's float is matched against an exact value (run.values)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from causalspec.diagnostics import SpecError
from causalspec.errors import CheckError
from causalspec.run.patching import INF_OUTPUT, NAN_OUTPUT, UNDECODABLE
from causalspec.run.values import ValueTable
from causalspec.semantics.analyse import load_text
from causalspec.semantics.domains import Domain

EXACT = """
model Exact {
  const N = 3
  domain Tok = enum {a, b}
  input t[1..N], x : Tok
  input k : int 1..3
  var frac[i in 1..N] : real = mean(j in 1..i : t[j] == x)
  var third : real = 1 / 3 + 1 / 3 + 1 / 3
  var inv : real = 1 / k
  var mixed : real = if k > 1 then inv else 2
  var lo : real = min(inv, 1 / 2) + max(-inv, 0) + abs(-inv) + clip(inv, 0, 1 / 2)
  output O : real = frac[N] * third - inv + mean(k, 1 / 2)
  output big : bool = O > 1 / 2 and mixed <= 2
  example {t[1] = a, t[2] = b, t[3] = a, x = a, k = 3} => third = 1, frac[2] = 1/2, O = 25/12, mixed = 1/3
  example do(frac[3] = 1/4) {t[1] = a, t[2] = a, t[3] = a, x = a, k = 1} => O = 0
}
"""


def model(text: str = EXACT):
    return next(iter(load_text(text, "t.cspec").models.values()))


def test_arithmetic_is_exact_rationals():
    m = model()
    env = m.run(m.enumerate_inputs())
    assert all(v == 1 and isinstance(v, Fraction) for v in env["third"])  # 1/3 + 1/3 + 1/3 == 1, exactly
    assert set(env["frac[3]"]) == {Fraction(0), Fraction(1, 3), Fraction(2, 3), Fraction(1)}
    assert set(env["inv"]) == {Fraction(1), Fraction(1, 2), Fraction(1, 3)}
    assert env["big"].dtype == bool
    assert m.variables["frac[2]"].mechanism.ty.lo == 0 and m.variables["frac[2]"].mechanism.ty.hi == 1
    # values decode to Fractions and print as fractions in lowest terms
    assert m.domain("O").format(Fraction(7, 6)) == "7/6" and m.domain("O").format(Fraction(2)) == "2"


def test_examples_check_reals_exactly():
    with pytest.raises(SpecError) as info:
        model(EXACT.replace("O = 25/12", "O = 2"))
    (d,) = info.value.diagnostics
    assert d.code == "E0501" and "`O` is 25/12" in d.message


def _codes(body: str, decl: str = "") -> list[tuple[str, str]]:
    text = f"model M {{\n  input a, b : int 1..3\n  input p : bool\n{decl}  output o : {body}\n}}\n"
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec")
    return [(d.code, d.message) for d in info.value.diagnostics]


@pytest.mark.parametrize("body, message", [
    ("bool = a / b == 1", "`==` compares exact values"),
    ("bool = a / b != 1", "`!=` compares exact values"),
    ("int 0..3 = a / b", "mechanism of `o` is declared int 0..3"),
    ("int 0..3 = (a / b) // 1", "`//` is integer arithmetic"),
    ("int 0..3 = count(a / b > 1, a / b)", "argument 2 of `count` must be bool"),
    ("bool = t[a / b]", "key 1 of table `t` must be int 1..3"),
    ("bool = not (a / b)", "operand of `not` must be bool"),
    ("int 0..3 = mod(a / b, 2)", "argument 1 of `mod` must be int"),
])
def test_a_real_where_a_discrete_value_is_needed_is_e0220(body, message):
    got = _codes(body, "  table t : int 1..3 -> bool = {1: true, 2: false, 3: true}\n")
    assert [c for c, _ in got] == ["E0220"], got
    assert message in got[0][1]


def test_division_needs_a_divisor_that_cannot_be_zero():
    got = _codes("real = a / (b - 2)")
    assert got[0][0] == "E0301" and "divisor of `/` can be zero" in got[0][1]
    model("model M {\n  input a, b : int 0..3\n  output o : real = a / max(b, 1)\n}\n")  # guarded: fine


def test_real_types_need_vars_and_outputs():
    text = "model M {\n  input r : real\n  input k : int 0..2\n  output o : bool = r > k\n}\n"
    with pytest.raises(SpecError) as info:
        load_text(text, "t.cspec")
    assert [d.code for d in info.value.diagnostics] == ["E0221"]  # and no cascade on `r`'s reader


def test_reals_seen_domain_codes_exact_values():
    d = Domain.reals_seen([Fraction(1, 3), 1, Fraction(1, 2)])
    assert d.values == (Fraction(1, 3), Fraction(1, 2), Fraction(1))
    assert d.codes(d.encode([1, Fraction(1, 2)])).tolist() == [2, 1]
    assert d.lookup(0.5) is None  # a float is not an exact value
    with pytest.raises(ValueError, match="2/3"):
        d.codes(np.array([Fraction(2, 3)], dtype=object))


def test_a_float_counts_as_the_one_model_value_within_the_tolerance():
    table = ValueTable(Fraction(1, 100))
    codes = table.codes(np.array([Fraction(1, 3), Fraction(1, 2), Fraction(1, 3)], dtype=object))
    assert codes.tolist() == [0, 1, 0]
    got = table.match(np.array([0.333, 0.5, 0.52, 0.3423, 0.52]), "net")
    assert got.tolist()[:2] == [0, 1] and got[3] == 0
    assert got[2] == got[4] < min(UNDECODABLE, NAN_OUTPUT, INF_OUTPUT)  # a float of its own: never a label
    assert table.value_of(int(got[2])) == 0.52 and table.value_of(1) == Fraction(1, 2)
    exact = ValueTable(Fraction(0))
    exact.add([Fraction(1, 2), Fraction(1, 3)])
    # within 0: 0.5 is exactly 1/2; no float is exactly 1/3
    got = exact.match(np.array([0.5, 1 / 3], dtype=np.float32), "net")
    assert got[0] == 0 and got[1] < 0 and exact.value_of(int(got[1])) == float(np.float32(1 / 3))
    wide = ValueTable(Fraction(1, 5))
    wide.add([Fraction(1, 4), Fraction(1, 2)])
    with pytest.raises(CheckError, match="two values of the model, 1/4 and 1/2"):
        wide.match(np.array([0.4]), "net")


def test_sample_prints_reals_as_fractions(tmp_path, capsys):
    from causalspec.cli import main

    spec = tmp_path / "s.cspec"
    spec.write_text("model M {\n  input k : int 1..3\n  var inv : real = 1 / k\n  output o : real = inv / 2\n}\n")
    assert main(["sample", str(spec), "--n", "6", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "1/6" in out or "1/4" in out  # inv / 2 for k = 3 or k = 2, exactly
    assert "0.16" not in out and "0.33" not in out  # never a decimal
    assert main(["sample", str(spec), "--n", "4", "--interchange", "inv"]) == 0
    assert "o=1/" in capsys.readouterr().out  # the counterfactual outputs, as fractions


def test_a_real_variable_declared_earlier_divides_when_its_range_excludes_zero():
    ok = "model M {\n  input k : int 1..3\n  var r : real = k / 2\n  output o : real = 1 / r\n}\n"
    m = model(ok)
    assert set(m.run(m.enumerate_inputs())["o"]) == {Fraction(2), Fraction(1), Fraction(2, 3)}
    with pytest.raises(SpecError) as info:  # r can be 0: refused, with its range
        model(ok.replace("k / 2", "(k - 1) / 2"))
    assert "its range is 0..1" in info.value.diagnostics[0].message


def test_do_on_a_real_stays_in_the_range_its_readers_rely_on():
    text = ("model M {\n  input k : int 1..3\n  var r : real = k / 2\n  output o : real = 1 / r\n"
            "  example do(r = 3/4) {k = 1} => o = 4/3\n}\n")
    model(text)
    with pytest.raises(SpecError) as info:  # 1 / 0 would be undefined: refused where it is written
        model(text.replace("do(r = 3/4)", "do(r = 0)"))
    (d,) = info.value.diagnostics
    assert d.code == "E0303" and "1/2..3/2" in d.message
