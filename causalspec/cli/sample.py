"""`causalspec sample FILE`: sample inputs, or counterfactual pairs under an interchange, from
a spec's high-level model (no network runs)."""

from __future__ import annotations

import argparse

from causalspec.cli.base import EXIT_INVALID, EXIT_OK, Command, UsageError, load_reporting, pick_model, stderr, stdout
from causalspec.diagnostics import did_you_mean
from causalspec.report.sample_view import columns, compact_names, inputs_tables, pairs_table
from causalspec.semantics.pairs import make_pairs
from causalspec.semantics.sampling import sample_inputs


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--model", help="model name (needed when the file has several)")
    sp.add_argument("--interchange", metavar="VARS",
                    help="variables to interchange: WX (one), WX,YZ (one source), WX|YZ (a source each)")
    sp.add_argument("--n", type=int, default=5, help="number of rows (default 5)")
    sp.add_argument("--seed", type=int, default=0, help="the same seed gives the same rows (default 0)")
    sp.add_argument("--expand", action="store_true",
                    help="one column per element of a family (`H[1]`, `H[2]`, …) instead of `H = [1, 2, …]`")


def parse_interchange(text: str, model) -> list[list[str]]:
    """`WX` / `WX,YZ` (one source) / `WX|YZ` (each group its own source) -> groups; `H` (a
    family) is all of `H[1]`, `H[2]`, …"""
    groups = []
    for part in text.split("|"):
        # a family name (`H`) stands for all its elements, from one source
        names = list(model.families.expand_names(tuple(n.strip() for n in part.split(",") if n.strip())))
        if not names:
            raise UsageError(f"--interchange {text!r}: empty group; write e.g. WX,YZ or WX|YZ")
        for n in names:
            if n not in model.variables:
                hint = did_you_mean(n, model.variables)
                raise UsageError(f"--interchange: model `{model.name}` has no variable `{n}`"
                                 + (f"; {hint}" if hint else ""))
        groups.append(names)
    return groups


def run(args: argparse.Namespace) -> int:
    ir = load_reporting(args.file, stderr())  # its warnings too: e.g. files read from outside its folder
    if ir is None:
        return EXIT_INVALID
    model = pick_model(ir, args.model)
    if args.n < 1:
        raise UsageError("--n must be at least 1")
    out = stdout()
    console = out.rich
    families = model.families
    if not args.interchange:
        sample = sample_inputs(model, args.n, args.seed)
        inputs = getattr(sample, "inputs", sample)
        env = model.run(inputs)
        title = f"{model.name}: {args.n} input(s), seed {args.seed}"
        for table in inputs_tables(console, title, columns(model.order, families, args.expand),
                                   model.decode(env, model.order)):
            out.print(table)
        return EXIT_OK
    groups = parse_interchange(args.interchange, model)
    if not model.inputs:
        raise UsageError(f"--interchange: model `{model.name}` has no inputs, so it has no counterfactual pairs")
    pairs = make_pairs(model, groups, args.n, args.seed)
    shown = [compact_names(g, families, args.expand) for g in groups]
    title = " | ".join("{" + ", ".join(g) + "}" for g in shown)
    headers = ["base", *[f"source {i + 1} ({', '.join(g)})" if len(groups) > 1 else "source"
                         for i, g in enumerate(shown)], "expected", "base output"]
    rows = pairs.rows(args.n)
    out.print(pairs_table(console, f"{model.name}: interchange {title} — {args.n} pair(s), seed {args.seed}", headers,
                          [[r["base"], *r["sources"], r["expected"], r["base_output"]] for r in rows],
                          [r["changed"] for r in rows], families, args.expand))
    out.print(f"{pairs.n_changed} of {args.n} pair(s) change the output "
              f"({', '.join(compact_names(model.outputs, families, args.expand))}) under the interchange", markup=False)
    return EXIT_OK

COMMAND = Command("sample", "sample inputs or counterfactual pairs from the high-level model", add_arguments, run)
