"""The analysis speed-ups (issue 10 item 7) change no value and no diagnostic.

`if … then … else …` selects without np.where's per-element branches (arithmetic for ints
and enum codes, logic for bools); the sampled domain check stores values in narrow integer
types and widens them before a mechanism reads them; the paused garbage collector hands what
was built to the oldest generation instead of collecting it on the way out.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from causalspec.diagnostics import SpecError
from causalspec.semantics.analyse import load_text
from causalspec.syntax.gc_pause import paused_gc


def _model(body: str):
    return load_text(f"model M {{\n{body}\n}}\n", "speed.cspec").models["M"]


def test_if_then_else_selects_exactly_like_where():
    m = _model("""
      input a, b : int -9..9 ~ uniform
      input k : enum {red, green, blue} ~ uniform
      var i : int -9..9 = if a < b then a else b
      var d : int 0..18 = if a < b then b - a else a - b
      var e : enum {red, green, blue} = if a > 0 then k else blue
      var s : enum {red, green, blue} = if b > a then green else red
      var t : bool = if a == b then a > 0 else b < 0
      var w : bool = (if a > b then 4611686018427387904 else -4611686018427387904) > 0
      output o : bool = w
    """)
    rng = np.random.default_rng(3)
    a, b = rng.integers(-9, 10, 500), rng.integers(-9, 10, 500)
    k = rng.integers(0, 3, 500)
    env = m.run({"a": a, "b": b, "k": k})
    assert np.array_equal(env["i"], np.minimum(a, b))
    assert np.array_equal(env["d"], np.abs(a - b))
    assert np.array_equal(env["e"], np.where(a > 0, k, 2))
    assert np.array_equal(env["s"], np.where(b > a, 1, 0))
    assert np.array_equal(env["t"], np.where(a == b, a > 0, b < 0))
    assert np.array_equal(env["w"], a > b)
    for name, dtype in (("i", np.int64), ("d", np.int64), ("e", np.int64), ("s", np.int64), ("t", np.bool_)):
        assert env[name].dtype == dtype, name


def test_domain_check_values_are_exact_beyond_the_storage_type():
    """`a`, `b` and `s` fit int8 where the domain check stores them; `s * b` does not, and
    must be computed on int64 (a wrapped int8 product would report other values)."""
    with pytest.raises(SpecError) as info:
        load_text("""model M {
  input a, b : int 0..99 ~ uniform
  var s : int 0..120 = a + 20
  output q : int 0..11000 = s * b
}
""", "speed.cspec")
    (d,) = info.value.diagnostics
    assert d.code == "E0305" and d.span.line == 4
    assert d.label == "can be 11020..11781 outside the range"
    assert "observed 0..11781" in (d.help or "")


def test_domain_check_computes_intermediates_in_a_type_that_holds_them():
    """`q`'s inputs and its domain fit int8, its intermediate `a * b` (up to 9,801) does not:
    the check must compute it in a type that holds it (int8 would wrap around)."""
    with pytest.raises(SpecError) as info:
        load_text("""model M {
  input a, b : int 0..99 ~ uniform
  output q : int 0..90 = (a * b) // 100 + (a - b) * 0
}
""", "speed.cspec")
    (d,) = info.value.diagnostics
    assert d.code == "E0305" and "produces 9" in d.message
    assert d.label == "can be 91..98 outside the range"
    assert "observed 0..98" in (d.help or "")


def test_domain_check_reports_the_same_outputs_on_a_sample():
    """Above the exhaustive limit (6 inputs of 10 values: 10^6 combinations) the sampled
    check still finds the escape and names a witness whose values produce it."""
    with pytest.raises(SpecError) as info:
        load_text("""model M {
  domain Small = int 0..9
  input x0, x1, x2, x3, x4, x5 : Small ~ uniform
  var m : Small = if x0 < x1 then min(x2, x3) else max(x4, x5)
  output o : Small = if m < x0 then x0 - m else m - x0 + 1
}
""", "speed.cspec")
    (d,) = info.value.diagnostics
    assert d.code == "E0305" and "produces 10" in d.message and "sample of 20000" in d.message
    witness = dict(kv.split("=") for kv in d.notes[0].removeprefix("for example with ").split(", "))
    x = {k: int(v) for k, v in witness.items()}
    m = min(x["x2"], x["x3"]) if x["x0"] < x["x1"] else max(x["x4"], x["x5"])
    assert (x["x0"] - m if m < x["x0"] else m - x["x0"] + 1) == 10


def test_paused_gc_leaves_no_young_objects_to_collect():
    """Leaving the pause must not make the next allocation collect everything built during
    it: those objects go to the oldest generation, and no collection runs on the way out."""
    was = gc.isenabled()
    gc.enable()
    collections: list[int] = []

    def seen(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    try:
        with paused_gc():
            kept = [[i] for i in range(50_000)]  # containers: tracked by the collector
            gc.callbacks.append(seen)
        tail = [[i] for i in range(100)]  # allocations after the pause
        assert collections == []
        assert gc.isenabled()
        assert gc.get_count()[0] < 1_000
        assert any(x is kept[0] for x in gc.get_objects(generation=2))
        assert len(kept) == 50_000 and len(tail) == 100
    finally:
        if seen in gc.callbacks:
            gc.callbacks.remove(seen)
        (gc.enable if was else gc.disable)()


def test_paused_gc_keeps_objects_the_program_froze():
    was = gc.isenabled()
    gc.enable()
    try:
        marker = [[]]  # an object of the program's, frozen with the rest
        gc.freeze()
        assert gc.get_freeze_count() > 0
        assert not any(x is marker for x in gc.get_objects())  # get_objects leaves the frozen out
        with paused_gc():
            _ = [[i] for i in range(1_000)]
        # still frozen: paused_gc did not unfreeze the program's set (the count itself can drop
        # while frozen objects die of their last reference, so it is no exact measure)
        assert gc.get_freeze_count() > 0
        assert not any(x is marker for x in gc.get_objects())
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


def test_an_escape_is_reported_once_and_its_readers_see_clipped_values():
    """`m` escapes 0..9; `o` reads it and would escape too on the unclipped values (up to
    18). The check reports `m` only: its readers see `m` clipped into its range."""
    with pytest.raises(SpecError) as info:
        load_text("""model M {
  input a, b : int 0..9 ~ uniform
  var m : int 0..9 = a + b
  output o : int 0..9 = m - 1 + 1
}
""", "speed.cspec")
    (d,) = info.value.diagnostics
    assert d.code == "E0305" and d.span.line == 3 and d.label == "can be 10..18 outside the range"
