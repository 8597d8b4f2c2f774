"""Benchmark (not a test): parse + analyse a generated 1,000-variable model.

Run: python benchmarks/parse_analyse.py [--vars 1000] [--repeat 3]
Prints the time of each stage. The model is a layered random DAG over bool and small-int
variables so that type checking, the graph build, cycle detection and the (sampled) domain
check all do real work.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from causalspec.semantics.analyse import analyse
from causalspec.syntax.parser import parse


def generate(n_vars: int, n_inputs: int = 20, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = ["model Big {", "  domain Small = int 0..9"]
    ints, bools = [], []
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
        else:
            c = rng.choice(bools)
            a, b = rng.sample(ints, 2)
            lines.append(f"  var {name} : Small = if {c} then min({a}, {b}) else max({a}, {b})")
            ints.append(name)
    lines.append(f"  output out : bool = {bools[-1]} and not {bools[0]}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vars", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    text = generate(args.vars)
    parse(text, "bench.cspec")  # warm the grammar cache (built once per process)
    parse_t, analyse_t = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        spec = parse(text, "bench.cspec")
        t1 = time.perf_counter()
        ir = analyse(spec)
        t2 = time.perf_counter()
        parse_t.append(t1 - t0)
        analyse_t.append(t2 - t1)
    model = ir.models["Big"]
    print(f"model: {len(model.variables)} variables, {model.graph.number_of_edges()} edges, "
          f"{len(text.splitlines())} lines")
    print(f"parse:   median {statistics.median(parse_t) * 1000:.0f} ms over {args.repeat} runs")
    print(f"analyse: median {statistics.median(analyse_t) * 1000:.0f} ms over {args.repeat} runs "
          "(types, graph, cycle check, domain check on a 20,000-input sample)")


if __name__ == "__main__":
    main()
