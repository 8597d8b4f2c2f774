"""Benchmark (not a test): wall and CPU time of `causalspec parse` and `causalspec graph` on
every shipped spec (specs/*.cspec, examples/**/*.cspec), each run a fresh process.

Run: python benchmarks/cli_latency.py [--runs 7] [--cold]
Each command runs as `python -m causalspec CMD SPEC` in a subprocess, `--runs` times; the
table gives the median wall time and the median CPU time (user + sys of the child, what the
command costs even on a shared machine). The target (issue 15) is <= 0.3 s wall: editors and
pre-commit hooks run `parse` on every save. One run per command is made first and discarded
(it fills lark's grammar cache in the user cache folder, as any first run after an install
or a grammar change does); `--cold` also times runs with an empty cache folder.
tests/cli/test_lazy_imports.py checks, without timing anything, that these commands do not
import torch, transformers, sympy, matplotlib or networkx.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.3


def shipped_specs() -> list[Path]:
    return sorted(ROOT.glob("specs/*.cspec")) + sorted(ROOT.glob("examples/**/*.cspec"))


def timed_run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, user+sys CPU s, exit code) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def measure(cmd: str, spec: Path, runs: int, env: dict[str, str], warm: bool = True) -> tuple[float, float, int]:
    argv = [sys.executable, "-m", "causalspec", cmd, str(spec.relative_to(ROOT))]
    if warm:
        timed_run(argv, env)
    results = [timed_run(argv, env) for _ in range(runs)]
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
            results[-1][2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7,
                    help="timed runs per command and spec, after one discarded warm-up run; the median is kept "
                         "(default 7)")
    ap.add_argument("--cold", action="store_true", help="also time runs with an empty grammar cache")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; median of {args.runs} runs each")
    print(f"{'command':<48} {'wall':>8} {'CPU':>8}  exit")
    worst = 0.0
    for spec in shipped_specs():
        for cmd in ("parse", "graph"):
            wall, cpu, rc = measure(cmd, spec, args.runs, env)
            # `graph` of a spec without a model (or with several) exits 2: still timed, marked
            print(f"{cmd + ' ' + str(spec.relative_to(ROOT)):<48} {wall:>7.3f}s {cpu:>7.3f}s  {rc}")
            worst = max(worst, wall)
    if args.cold:
        with tempfile.TemporaryDirectory() as empty:
            cold_env = dict(env, CAUSALSPEC_CACHE_DIR=empty)
            spec = ROOT / "specs" / "hier_eq.cspec"
            cold = [timed_run([sys.executable, "-m", "causalspec", "parse", str(spec)],
                              dict(cold_env, CAUSALSPEC_CACHE_DIR=tempfile.mkdtemp(dir=empty)))
                    for _ in range(args.runs)]
            print(f"{'parse specs/hier_eq.cspec, empty cache':<48} {statistics.median(c[0] for c in cold):>7.3f}s "
                  f"{statistics.median(c[1] for c in cold):>7.3f}s")
    print(f"slowest median wall: {worst:.3f}s (target <= {TARGET_S}s: {'met' if worst <= TARGET_S else 'NOT met'})")


if __name__ == "__main__":
    main()
