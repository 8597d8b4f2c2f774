"""`causalspec graph FILE`: export a model's causal graph as DOT, Mermaid, JSON or PNG."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from causalspec.cli.base import EXIT_OK, Command, check_output_targets, pick_model, stdout
from causalspec.report import graph_export
from causalspec.files import atomic_write_text
from causalspec.semantics.analyse import load


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--model", help="model name (needed when the file has several)")
    sp.add_argument("--format", choices=["dot", "mermaid", "json", "png"], default="dot",
                    help="dot (default), mermaid, json (stable schema) or png (a drawing, written to a file)")
    sp.add_argument("--output", "-o", help="output file (png default: <spec>.<model>.png)")
    sp.add_argument("--expand", action="store_true",
                    help="draw every element of a family (`H[1]`, `H[2]`, …) instead of one node per family")


def run(args: argparse.Namespace) -> int:
    check_output_targets(output=args.output)
    ir = load(args.file)
    model = pick_model(ir, args.model)
    if not args.expand and model.families.families:
        model = graph_export.family_view(model)  # one node per family (networkx-free)
    fmt = args.format
    if fmt == "png":
        target = Path(args.output or f"{Path(args.file).stem}.{model.name}.png")
        if not args.output:
            check_output_targets(output=target)
        graph_export.to_png(model, target)
        stdout().print(f"wrote {target}", markup=False)
        return EXIT_OK
    if fmt == "dot":
        text = graph_export.to_dot(model)
    elif fmt == "mermaid":
        text = graph_export.to_mermaid(model)
    else:
        text = json.dumps(graph_export.to_json(model), indent=2, sort_keys=True)
    if args.output:
        # atomic; refuses to replace a file that is not a previous export of ours
        atomic_write_text(Path(args.output), text)
        stdout().print(f"wrote {args.output}", markup=False)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


COMMAND = Command("graph", "export a model's causal graph", add_arguments, run)
