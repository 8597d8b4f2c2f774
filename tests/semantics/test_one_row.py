"""The one-row evaluator (`Compiled.one`, `CausalModel.run_one`) that checks `example` lines and
finds a row satisfying `where` without numpy gives the values the batch evaluator gives, on
every row of generated models; where it has no evaluator the analysis falls back to numpy and
reports the same diagnostics."""

from __future__ import annotations

import random

import pytest

from causalspec.errors import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.testing.specs import only_model

HEAD = """model G {
  input a, b : int 0..3
  input p, q : bool
  input c : enum { r, g, bl }
"""


class _Gen:
    """Random well-typed expressions over the one-row subset: ints, bools and enum values;
    + - * and unary -, comparisons, == and != (enum values too), and/or/not, `if`, count."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ints = ["a", "b"]
        self.bools = ["p", "q"]
        self.enums = ["c"]

    def int_(self, depth: int) -> str:
        r = self.rng
        if depth == 0 or r.random() < 0.3:
            return r.choice(self.ints + [str(r.randint(-3, 3))])
        kind = r.choice(["+", "-", "*", "neg", "if", "count"])
        if kind == "neg":
            return f"-({self.int_(depth - 1)})"
        if kind == "if":
            return f"(if {self.bool_(depth - 1)} then {self.int_(depth - 1)} else {self.int_(depth - 1)})"
        if kind == "count":
            return f"count({', '.join(self.bool_(depth - 1) for _ in range(r.randint(1, 3)))})"
        return f"({self.int_(depth - 1)} {kind} {self.int_(depth - 1)})"

    def enum_(self, depth: int) -> str:
        r = self.rng
        if depth == 0 or r.random() < 0.4:
            return r.choice(self.enums)
        if r.random() < 0.25:  # two bare values: the declared enum decides (`_symbol_choice`)
            return f"(if {self.bool_(depth - 1)} then {r.choice(['r', 'g'])} else {r.choice(['bl', 'g'])})"
        if r.random() < 0.5:
            return f"(if {self.bool_(depth - 1)} then {r.choice(['r', 'g', 'bl'])} else {self.enum_(depth - 1)})"
        return f"(if {self.bool_(depth - 1)} then {self.enum_(depth - 1)} else {self.enum_(depth - 1)})"

    def bool_(self, depth: int) -> str:
        r = self.rng
        if depth == 0 or r.random() < 0.25:
            return r.choice(self.bools + ["true", "false"])
        kind = r.choice(["cmp", "eq", "enum_eq", "and", "or", "not", "if"])
        if kind == "cmp":
            return f"({self.int_(depth - 1)} {r.choice(['<', '<=', '>', '>='])} {self.int_(depth - 1)})"
        if kind == "eq":
            side = self.int_ if r.random() < 0.5 else self.bool_
            return f"({side(depth - 1)} {r.choice(['==', '!='])} {side(depth - 1)})"
        if kind == "enum_eq":
            other = r.choice(["r", "g", "bl"]) if r.random() < 0.5 else self.enum_(depth - 1)
            return f"({self.enum_(depth - 1)} {r.choice(['==', '!='])} {other})"
        if kind == "not":
            return f"(not ({self.bool_(depth - 1)}))"
        if kind == "if":
            return f"(if {self.bool_(depth - 1)} then {self.bool_(depth - 1)} else {self.bool_(depth - 1)})"
        return f"({self.bool_(depth - 1)} {kind} {self.bool_(depth - 1)})"


def _generated_model(seed: int) -> str:
    gen = _Gen(random.Random(seed))
    lines = [HEAD]
    for i in range(8):
        kind = gen.rng.choice(["int", "bool", "enum"])
        if kind == "int":
            lines.append(f"  var i{i} : int -10000..10000 = {gen.int_(3)}\n")
            gen.ints.append(f"i{i}")
        elif kind == "bool":
            lines.append(f"  var b{i} : bool = {gen.bool_(3)}\n")
            gen.bools.append(f"b{i}")
        else:
            lines.append(f"  var e{i} : enum {{ r, g, bl }} = {gen.enum_(3)}\n")
            gen.enums.append(f"e{i}")
    lines.append(f"  output o : bool = {gen.bool_(2)}\n}}\n")
    return "".join(lines)


def _decoded(cm, env, row: int | None = None) -> dict:
    return {k: cm.domain(k).decode(v if row is None else v[row:row + 1])[0] for k, v in env.items()}


def _with_example(text: str) -> str:
    """`text` with an `example` line that holds (its output computed by the batch evaluator):
    the analysis builds one-row evaluators for the mechanisms of models with examples only."""
    cm = only_model(text)
    row = {"a": 1, "b": 2, "p": True, "q": False, "c": "g"}
    got = cm.run({k: cm.domain(k).encode([v]) for k, v in row.items()})["o"]
    example = f"  example {{ a = 1, b = 2, p = true, q = false, c = g }} => o = {str(bool(got[0])).lower()}\n}}\n"
    return text[:text.rindex("}")] + example


@pytest.mark.parametrize("seed", range(12))
def test_one_row_equals_the_batch_evaluator_on_every_row(seed):
    cm = only_model(_with_example(_generated_model(seed)))
    assert len(cm.examples) == 1
    assert all(v.mechanism.one is not None for v in cm.variables.values() if not v.is_input)
    inputs = cm.enumerate_inputs()
    batch = cm.run(inputs)
    # an intervention on the first computed variable: its readers see the fixed value
    fixed_name = cm.intermediates[0]
    fixed_value = cm.domain(fixed_name).values[0]
    fixed = cm.run(inputs, {fixed_name: cm.domain(fixed_name).encode([fixed_value])[0]})
    n = len(inputs["a"])
    assert n == 4 * 4 * 2 * 2 * 3
    for i in range(n):
        row = {k: cm.domain(k).represent(cm.domain(k).decode(v[i:i + 1])[0]) for k, v in inputs.items()}
        assert _decoded(cm, {k: (v,) for k, v in cm.run_one(row).items()}) == _decoded(cm, batch, i)
        one = cm.run_one(row, {fixed_name: cm.domain(fixed_name).represent(fixed_value)})
        assert _decoded(cm, {k: (v,) for k, v in one.items()}) == _decoded(cm, fixed, i)


def test_constraints_one_row_equals_the_batch_evaluator():
    cm = only_model("model W {\n  input x, y : int 0..3 where x != y and (x + y > 2 or x == 0)\n"
                    "  output o : bool = x > y\n}\n")
    inputs = cm.enumerate_inputs()
    ok = cm.satisfies_constraints(inputs)
    for i in range(len(ok)):
        row = {"x": int(inputs["x"][i]), "y": int(inputs["y"][i])}
        assert cm.row_satisfies_constraints(row) is bool(ok[i])


@pytest.mark.parametrize("mechanism", ["x // 2", "min(x, 1)", "abs(x - 1)", "t[x]"])
def test_beyond_the_subset_there_is_no_one_row_evaluator(mechanism):
    cm = only_model("model T {\n  table t : int 0..3 -> int 0..3 = { _: 1 }\n  input x : int 0..3\n"
                    f"  var y : bool = x > 1\n  output o : int -3..3 = {mechanism}\n"
                    f"  example {{ x = 2 }} => y = true\n}}\n")
    assert cm.variables["y"].mechanism.one is not None
    assert cm.variables["o"].mechanism.one is None
    assert cm.run_one({"x": 2}) is None


def test_a_model_without_examples_builds_no_one_row_evaluators():
    # nothing runs its mechanisms one row at a time (the 10,000-variable benchmark's case);
    # its `where` constraint still gets one, for the search for a satisfying row
    cm = only_model("model N {\n  input x, y : int 0..3 where x != y\n  output o : bool = x > y\n}\n")
    assert cm.variables["o"].mechanism.one is None
    assert cm.constraints[0].one is not None


@pytest.mark.parametrize("expected, holds", [("2", True), ("3", False)])
def test_examples_beyond_the_subset_are_checked_with_numpy(expected, holds):
    text = ("model T {\n  input x : int 0..3\n  var h : int 0..3 = x // 2\n  output o : int 0..9 = h + x\n"
            f"  example {{ x = 2 }} => o = {3 if holds else 4}\n"
            f"  example do(h = {expected}) {{ x = 1 }} => o = {3 if holds else 9}\n}}\n")
    if holds:
        (model,) = load_text(text).models.values()
        assert len(model.examples) == 2
    else:
        with pytest.raises(SpecError) as exc:
            load_text(text)
        assert [d.code for d in exc.value.diagnostics] == ["E0501", "E0501"]
        assert "`o` is 3, expected 4" in exc.value.diagnostics[0].message
        assert "`o` is 4 under do(h=3), expected 9" in exc.value.diagnostics[1].message


def test_a_where_with_a_witness_far_down_the_rows_is_still_found_with_numpy():
    # the pure-Python search stops after WITNESS_ROWS rows; the exhaustive check then finds it
    text = ("model F {\n  input x, y, z : int 0..19 where x == 19 and y == 19 and z == 19\n"
            "  output o : bool = x == y\n}\n")
    assert only_model(text).constraints
    with pytest.raises(SpecError) as exc:
        load_text(text.replace("z == 19", "z == 19 and z < 19"))
    assert [d.code for d in exc.value.diagnostics] == ["E0310"]
