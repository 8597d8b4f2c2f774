"""A generated large model, for the parse/analyse benchmark and the scaling tests.

Why one generator: the benchmark (benchmarks/parse_analyse.py) times it and
tests/semantics/test_scaling.py checks that the work grows linearly with it; both must
measure the same kind of spec. It is a layered random DAG over bool and small-int variables
so that type checking, the graph build, the cycle check and the (sampled) domain check all
do real work: a tenth of the variables are `|a - b|`, whose static range exceeds their type,
so the domain check evaluates them and everything they read on sampled inputs.
"""

from __future__ import annotations

import random


def large_model(n_vars: int, n_inputs: int = 20, seed: int = 0) -> str:
    """Spec text of one model `Big` with `n_vars` variables (inputs, vars and one output)."""
    if n_vars < n_inputs + 2:
        raise ValueError(f"n_vars must be at least {n_inputs + 2}")
    rng = random.Random(seed)
    lines = ["model Big {", "  domain Small = int 0..9"]
    ints: list[str] = []
    bools: list[str] = []
    for i in range(n_inputs):
        name = f"x{i}"
        lines.append(f"  input {name} : Small ~ uniform")
        ints.append(name)
    for i in range(n_vars - n_inputs - 1):
        name = f"v{i}"
        if rng.random() < 0.5 or not bools:
            a, b = rng.sample(ints, 2)
            lines.append(f"  var {name} : bool = {a} == {b} or {a} < {b}")
            bools.append(name)
        elif rng.random() < 0.2:
            # |a - b|: its static range (-9..9) exceeds Small, so the sampled domain check
            # must evaluate it (and what it reads) to see that it stays in 0..9.
            a, b = rng.sample(ints, 2)
            lines.append(f"  var {name} : Small = if {a} < {b} then {b} - {a} else {a} - {b}")
            ints.append(name)
        else:
            c = rng.choice(bools)
            a, b = rng.sample(ints, 2)
            lines.append(f"  var {name} : Small = if {c} then min({a}, {b}) else max({a}, {b})")
            ints.append(name)
    lines.append(f"  output out : bool = {bools[-1]} and not {bools[0]}")
    lines.append("}")
    return "\n".join(lines) + "\n"
