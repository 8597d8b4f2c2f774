"""Benchmark (not a test): parse + analyse a generated 10,000-variable model.

Run: python benchmarks/parse_analyse.py [--vars 10000] [--repeat 3]
Prints the time of each stage, as CPU time of this process (what the code costs, even on a
shared machine) and as wall time. The target (issue 10) is parse + analyse of 10,000
variables in under 2 s; the spec is causalspec.testing.large.large_model, a layered random
DAG over bool and small-int variables, so that type checking, the graph build, the cycle
check and the (sampled) domain check all do real work. tests/semantics/test_scaling.py
checks, without timing anything, that the work grows linearly with the spec.
"""

from __future__ import annotations

import argparse
import statistics
import time

from causalspec.semantics.analyse import analyse
from causalspec.syntax.parser import parse
from causalspec.testing.large import large_model

TARGET_S = 2.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vars", type=int, default=10_000,
                    help="variables of the generated model (testing.large.large_model; default 10000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of parse + analyse; the median is kept (default 3)")
    args = ap.parse_args()
    text = large_model(args.vars)
    parse(text, "bench.cspec")  # warm the grammar cache (built once per process)
    cpu = {"parse": [], "analyse": []}
    wall = {"parse": [], "analyse": []}
    for _ in range(args.repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        spec = parse(text, "bench.cspec")
        c1, w1 = time.process_time(), time.perf_counter()
        ir = analyse(spec)
        c2, w2 = time.process_time(), time.perf_counter()
        cpu["parse"].append(c1 - c0)
        cpu["analyse"].append(c2 - c1)
        wall["parse"].append(w1 - w0)
        wall["analyse"].append(w2 - w1)
    model = ir.models["Big"]
    print(f"model: {len(model.variables)} variables, {model.graph.number_of_edges()} edges, "
          f"{len(text.splitlines())} lines")
    for stage in ("parse", "analyse"):
        print(f"{stage + ':':9}median {statistics.median(cpu[stage]) * 1000:.0f} ms CPU, "
              f"{statistics.median(wall[stage]) * 1000:.0f} ms wall over {args.repeat} runs")
    total = statistics.median([p + a for p, a in zip(cpu["parse"], cpu["analyse"])])
    print(f"total:   median {total * 1000:.0f} ms CPU (target {TARGET_S:.0f} s for 10,000 variables; "
          "analyse includes the domain check on a 20,000-input sample)")


if __name__ == "__main__":
    main()
