"""`causalspec sample FILE`: sample inputs, or counterfactual pairs under an interchange, from
a spec's high-level model (no network runs)."""

from __future__ import annotations

import argparse

from rich.table import Table as RichTable

from causalspec.cli.base import EXIT_INVALID, EXIT_OK, Command, UsageError, load_reporting, pick_model, stderr, stdout
from causalspec.diagnostics import did_you_mean
from causalspec.semantics.domains import format_value
from causalspec.semantics.pairs import make_pairs
from causalspec.semantics.sampling import sample_inputs


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--model", help="model name (needed when the file has several)")
    sp.add_argument("--interchange", metavar="VARS",
                    help="variables to interchange: WX (one), WX,YZ (one source), WX|YZ (a source each)")
    sp.add_argument("--n", type=int, default=5, help="number of rows (default 5)")
    sp.add_argument("--seed", type=int, default=0, help="the same seed gives the same rows (default 0)")


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
    if not args.interchange:
        sample = sample_inputs(model, args.n, args.seed)
        inputs = getattr(sample, "inputs", sample)
        env = model.run(inputs)
        table = RichTable(title=f"{model.name}: {args.n} input(s), seed {args.seed}")
        for name in model.order:
            table.add_column(name)
        for row in model.decode(env, model.order):
            table.add_row(*[format_value(row[n]) for n in model.order])
        out.print(table)
        return EXIT_OK
    groups = parse_interchange(args.interchange, model)
    pairs = make_pairs(model, groups, args.n, args.seed)
    show = lambda d: ", ".join(f"{k}={format_value(v)}" for k, v in d.items())  # noqa: E731
    title = " | ".join("{" + ", ".join(g) + "}" for g in groups)
    table = RichTable(title=f"{model.name}: interchange {title} — {args.n} pair(s), seed {args.seed}")
    table.add_column("#", justify="right")
    table.add_column("base")
    for i, g in enumerate(groups):
        table.add_column(f"source {i + 1} ({', '.join(g)})" if len(groups) > 1 else "source")
    table.add_column("expected")
    table.add_column("base output")
    table.add_column("changed")
    for i, row in enumerate(pairs.rows(args.n)):
        table.add_row(str(i), show(row["base"]), *[show(s) for s in row["sources"]], show(row["expected"]),
                      show(row["base_output"]), "yes" if row["changed"] else "no")
    out.print(table)
    out.print(f"{pairs.n_changed} of {args.n} pair(s) change the output "
              f"({', '.join(model.outputs)}) under the interchange", markup=False)
    return EXIT_OK


COMMAND = Command("sample", "sample inputs or counterfactual pairs from the high-level model", add_arguments, run)
