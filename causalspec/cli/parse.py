"""`causalspec parse FILE...`: parse and validate spec files; one line per valid file, the
diagnostics of an invalid one (exit 2)."""

from __future__ import annotations

import argparse

from causalspec.cli.base import EXIT_INVALID, EXIT_OK, Command, load_reporting, stderr, stdout


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("files", nargs="+", metavar="FILE")


def run(args: argparse.Namespace) -> int:
    out, err = stdout(), stderr()
    status = EXIT_OK
    for file in args.files:
        ir = load_reporting(file, err)
        if ir is None:
            status = EXIT_INVALID
            continue
        parts = [f"{len(ir.models)} model(s)"]
        for label, coll in (("network", ir.networks), ("alignment", ir.alignments), ("check", ir.checks),
                            ("circuit", ir.circuits), ("dataset", ir.datasets)):
            if coll:
                parts.append(f"{len(coll)} {label}(s)")
        examples = sum(len(m.examples) for m in ir.models.values())
        if examples:
            parts.append(f"{examples} example(s) hold")
        out.print(f"ok: {file} ({', '.join(parts)})", markup=False)
    return status


COMMAND = Command("parse", "parse and validate spec files", add_arguments, run)
