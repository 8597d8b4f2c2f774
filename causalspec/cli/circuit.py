"""`causalspec circuit export|import|cpr`: circuits as JSON node/edge lists, and CPR/CMD.

    causalspec circuit export SPEC --circuit NAME [-o FILE]      # spec circuit -> EAP-IG/MIB JSON
    causalspec circuit import FILE --name N --on NET --for M.OUT  # JSON -> a `circuit` block
    causalspec circuit cpr SPEC --circuit NAME --scores FILE      # faithfulness curve, CPR, CMD

The file format is described in causalspec/circuit_files.py. `export` resolves `attn[L]`
against the architecture: it reads the network's config when the weights are local, or
takes `--layers`/`--heads`. `cpr` runs the network (the circuit names it, and supplies the
prompts, the ablation and the metric); exit codes are those of the CLI (2 for a usage or
file error, 0 otherwise: CPR and CMD are measurements, not claims).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from causalspec.interop.circuit_files import (MIB_FRACTIONS, POSITION_DEFS, RANKINGS, CircuitFileError, PositionNames,
                                              circuit_to_graph, graph_to_json, graph_to_spec, position_declarations,
                                              read_graph, write_graph, write_pt)
from causalspec.cli.base import EXIT_OK, Command, UsageError, check_output_targets
from causalspec.compile.circuit_plan import Arch, CircuitPlanError, resolve_circuit
from causalspec.diagnostics import did_you_mean
from causalspec.errors import CheckError, CheckSkipped, SpecError
from causalspec.files import atomic_write_text, stamp_text, tool_header
from causalspec.report.json_report import jsonable
from causalspec.run.loading import NetworkLoadError, check_hf_config, local_hf_path
from causalspec.semantics.analyse import load, load_text
from causalspec.syntax import ast as A
from causalspec.syntax.parser import parse

HELP = "export and import circuits as JSON node/edge lists; CPR/CMD of a scored edge list"


def _fractions(text: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fractions {text!r}: expected numbers like 0.01,0.1,1") from None
    if not out or any(not 0 < f <= 1 for f in out) or out != sorted(out):
        raise argparse.ArgumentTypeError("--fractions must be ascending numbers in (0, 1]")
    return out


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sub = sp.add_subparsers(dest="circuit_command", metavar="ACTION")
    sub.required = True

    ex = sub.add_parser("export", help="write a spec circuit as an EAP-IG / MIB JSON node/edge list")
    ex.add_argument("spec", metavar="SPEC")
    ex.add_argument("--circuit", required=True, metavar="NAME", help="the circuit of SPEC to write")
    ex.add_argument("--output", "-o", metavar="FILE", help="output file (default: stdout)")
    ex.add_argument("--layers", type=int, help="layers of the network (default: read from its local config)")
    ex.add_argument("--heads", type=int, help="heads per layer (default: read from its local config)")
    ex.set_defaults(func=cmd_export)

    im = sub.add_parser("import", help="turn a JSON node/edge list into a `circuit` block")
    im.add_argument("file", metavar="FILE")
    im.add_argument("--name", required=True, help="name of the circuit")
    im.add_argument("--on", required=True, metavar="NETWORK", help="the network it runs on")
    im.add_argument("--for", required=True, dest="output", metavar="MODEL.OUTPUT",
                    help="the model output the circuit explains, e.g. IOI.answer")
    im.add_argument("--ablation", default="zero", help="`zero`, `mean over D` or `resample from D` (default zero)")
    im.add_argument("--metric", help="e.g. 'logit_diff(IO, S) @ END' (default: accuracy)")
    im.add_argument("--expect", default="faithfulness >= 0.8", help="the claim (default 'faithfulness >= 0.8')")
    im.add_argument("--granularity", choices=["edge", "node"], default="edge",
                    help="edge (default: a group per node and the file's edges) or node (a group per layer)")
    im.add_argument("--into", metavar="SPEC",
                    help="write SPEC with the circuit in it (replacing one of the same name) and the positions it "
                         "needs declared in the network's block")
    im.add_argument("--output", "-o", dest="out", metavar="FILE", help="output file (default: stdout)")
    im.set_defaults(func=cmd_import)

    cp = sub.add_parser("cpr", help="faithfulness curve of a scored edge list; CPR and CMD (MIB)")
    cp.add_argument("spec", metavar="SPEC")
    cp.add_argument("--circuit", required=True, metavar="NAME",
                    help="a circuit of SPEC: its network, prompts, ablation and metric are used")
    cp.add_argument("--scores", required=True, metavar="FILE", help="JSON edge list with scores")
    cp.add_argument("--fractions", type=_fractions, metavar="F,F,…",
                    help="edge fractions (default MIB's 0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.5,1)")
    cp.add_argument("--rank", choices=RANKINGS, default="absolute",
                    help="top edges by |score| (default; EAP-IG's apply_topn) or by signed score (MIB's "
                         "run_evaluation.py without --absolute)")
    cp.add_argument("--pairs", type=int, metavar="N", help="prompts (overrides the circuit's `pairs`)")
    cp.add_argument("--seed", type=int, metavar="S", help="seed of the prompts (overrides the circuit's `seed`)")
    cp.add_argument("--batch", type=int, metavar="B", help="forward-pass batch size")
    cp.add_argument("--json", metavar="FILE", help="also write the curve as JSON")
    cp.add_argument("--allow-download", action="store_true", help="let a Hugging Face network fetch missing weights")
    cp.set_defaults(func=cmd_cpr)


def _circuit(spec: str, name: str):
    ir = load(spec)
    if name not in ir.circuits:
        hint = did_you_mean(name, ir.circuits)
        raise UsageError(f"--circuit {name}: no circuit of that name in {spec}"
                         + (f"; {hint}" if hint else f" (circuits: {', '.join(ir.circuits) or 'none'})"))
    return ir, ir.circuits[name]


def _arch(ir, circuit, layers: int | None, heads: int | None):
    if layers is not None and heads is not None:
        return Arch(layers, heads)
    net = ir.networks[circuit.network]
    if net.framework == "hf":
        local = local_hf_path(net.source, Path(ir.file).resolve().parent)
        if local is not None:
            from transformers import AutoConfig  # lazy: slow to import, needed only here

            try:  # a corrupt config.json, or one that needs trust_remote_code: a message naming the file
                check_hf_config(local / "config.json", net.name, net.trust_remote_code)
                cfg = AutoConfig.from_pretrained(str(local), local_files_only=True,
                                                 trust_remote_code=net.trust_remote_code)
            except NetworkLoadError as exc:
                raise UsageError(str(exc)) from None
            except (OSError, ValueError) as exc:
                raise UsageError(f"network `{net.name}`: cannot read the config of `{local}`: {exc}") from None
            return Arch(int(cfg.num_hidden_layers), int(cfg.num_attention_heads), getattr(cfg, "model_type", ""),
                        parallel=bool(getattr(cfg, "use_parallel_residual", False)),
                        d_model=int(getattr(cfg, "hidden_size", 0) or 0))
    raise UsageError(f"network `{net.name}` has no local config to read its layers and heads from; "
                     "give --layers and --heads")


def convention_lines(c) -> list[str]:
    """The lines that state a circuit's convention (none when it states none)."""
    if not c.stated:
        return []
    out = ["convention mib"] if c.name == "mib" else []
    base_mlps, base_input = ("ablated", "token") if c.name == "mib" else ("auto", "token+position")
    if c.mlps != base_mlps:
        out.append(f"mlps {c.mlps}")
    if c.input_ablation != base_input:
        out.append(f"input ablation {c.input_ablation}")
    return out


def _write_or_print(text: str, out: str | None) -> None:
    if out:
        atomic_write_text(out, text)  # our generator line: a re-import may replace its own (unedited) file
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)


def cmd_export(args: argparse.Namespace) -> int:
    check_output_targets(output=args.output)
    ir, circuit = _circuit(args.spec, args.circuit)
    arch = _arch(ir, circuit, args.layers, args.heads)
    try:
        resolved = resolve_circuit(circuit, arch)
    except CircuitPlanError as exc:
        raise UsageError(str(exc)) from None
    graph = circuit_to_graph(resolved, arch, circuit.name, circuit.granularity,
                             convention=convention_lines(circuit.convention),
                             group_edges=[(e.src, e.dst, e.port, e.score) for e in circuit.edges])
    if args.output and str(args.output).endswith(".pt"):
        print(f"wrote {write_pt(graph, args.output)}")  # EAP-IG's Graph.to_pt layout
    elif args.output:
        print(f"wrote {write_graph(graph, args.output)}")
    else:
        sys.stdout.write(json.dumps(graph_to_json(graph), indent=1) + "\n")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    check_output_targets(output=args.out)
    try:
        graph = read_graph(args.file)
        text = graph_to_spec(graph, args.name, args.on, args.output, args.ablation, args.metric, args.expect,
                             args.granularity)
    except CircuitFileError as exc:
        raise UsageError(str(exc)) from None
    head = f"# imported by `causalspec circuit import` from {args.file}\n"
    declarations = position_declarations(graph)
    if args.into:
        body = into_spec(args.into, args.on, args.name, head + text, declarations, graph)
        if args.out:
            check_relocated(body, args.into, args.out)
    else:
        if declarations:  # the names the block uses, for the network block (--into writes them there)
            head += f"# its positions, to declare in network `{args.on}`:\n" + \
                "".join(f"#   {d}\n" for d in declarations)
        body = head + text
    _write_or_print(stamp_text("#", "circuit-import", body), args.out)
    return EXIT_OK


def into_spec(spec: str, network: str, name: str, block: str, declarations: list[str], graph) -> str:
    """SPEC's text with the circuit block in it (replacing a circuit of the same name, else
    appended) and the position declarations its network block lacks added at the block's end.
    The result is analysed, and each position it declares must mean what the file says."""
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--into {spec}: cannot read it: {exc.strerror or exc}") from None
    ast = parse(text, str(path))  # a syntax error in SPEC: its located diagnostic (exit 2)
    nets = [it for it in ast.items if isinstance(it, A.Network) and it.name.text == network]
    if not nets:
        raise UsageError(f"--into {spec}: no network `{network}` in it (--on names the network the circuit runs on)")
    net = nets[0]
    declared = {st.name.text for st in net.body if isinstance(st, A.PositionDecl)}
    missing = [d for d in declarations if d.split()[1] not in declared]
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in character offsets
    if missing:
        end = _offset(text, net.span.end_line, net.span.end_column)
        if net.braced:
            close = text.rindex("}", 0, end)
            line_start = text.rfind("\n", 0, close) + 1
            lines = "".join(f"  {d}\n" for d in missing)
            if text[line_start:close].strip():  # `}` shares its line with a statement
                edits.append((close, close, "\n" + lines))
            else:
                edits.append((line_start, line_start, lines))
        else:
            edits.append((end, end, " {\n" + "".join(f"  {d}\n" for d in missing) + "}"))
    same = [it for it in ast.items if isinstance(it, A.Circuit) and it.name.text == name]
    if same:
        edits.append((_offset(text, same[0].span.line, same[0].span.column),
                      _offset(text, same[0].span.end_line, same[0].span.end_column), block.rstrip("\n")))
    else:
        edits.append((len(text), len(text), ("" if text.endswith("\n") or not text else "\n") + "\n" + block))
    out = text
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    ir = load_text(out, str(path), path.resolve().parent)  # a spec that does not analyse: its diagnostics
    defs = graph.extra.get(POSITION_DEFS) or {}
    positions = ir.networks[network].encoding.positions
    names = PositionNames()
    for pname, want in defs.items():
        have = names.expression(positions[pname]) if pname in positions else None
        if have is not None and have != want:
            raise UsageError(f"--into {spec}: network `{network}` declares position `{pname}` as `{have}`, but "
                             f"{name}'s file means `{want}`; rename one of them")
    return out


def check_relocated(text: str, spec: str, out: str) -> None:
    """A spec written to another folder than SPEC's reads its relative paths (hook files,
    weights, `enum from` files) from that folder, where they may not exist: it must still
    analyse there, else the import is refused before anything is written (a spec that fails
    to parse where it was written is worse than no file)."""
    here, there = Path(spec).resolve().parent, Path(out).resolve().parent
    if here == there:
        return
    try:
        load_text(text, str(out), there)
    except SpecError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        why = f" ({first.code} {first.message})" if first else ""
        raise UsageError(f"-o {out}: the spec would not be valid there{why}: its relative paths would be read "
                         f"from {there}, not from the folder of {spec}; write it next to {spec}, e.g. "
                         f"-o {Path(spec).parent / Path(out).name}") from None


def _offset(text: str, line: int, column: int) -> int:
    """A 1-based line and column as an offset into `text`."""
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts[line - 1] + column - 1


def cmd_cpr(args: argparse.Namespace) -> int:
    # lazy: these import torch, which `causalspec parse` never needs
    from causalspec.claims.runner import CheckOptions, NetworkCache
    from causalspec.claims.circuit import edge_curve

    for flag, value in (("--pairs", args.pairs), ("--batch", args.batch)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1")
    check_output_targets(json=args.json)
    ir, circuit = _circuit(args.spec, args.circuit)
    try:
        scored = read_graph(args.scores).scored_edges()
    except CircuitFileError as exc:
        raise UsageError(str(exc)) from None
    if not scored:
        raise UsageError(f"{args.scores}: no edge has a score (an edge that `circuit export` wrote without a "
                         "`: score` is listed as unscored); cpr ranks a scored edge list, e.g. EAP-IG's attribution")
    options = CheckOptions(pairs=args.pairs, seed=args.seed, batch=args.batch, allow_download=args.allow_download)
    try:
        curve = edge_curve(ir, circuit, scored, args.fractions or list(MIB_FRACTIONS), options, NetworkCache(),
                           args.rank)
    except CheckSkipped as exc:  # no --strict here: a curve that cannot be drawn fails the command
        raise UsageError(f"cannot run circuit `{circuit.name}`: {exc}") from None
    except CheckError as exc:
        raise UsageError(str(exc)) from None
    console = Console(highlight=False)
    ranked = "top-|score|" if args.rank == "absolute" else "top-score"
    table = Table(title=f"faithfulness of the {ranked} edges of {args.scores} ({curve['edges_scored']} scored)")
    for col in ("fraction", "edges", "faithfulness [95% CI]"):
        table.add_column(col, justify="right")
    for p in curve["points"]:
        f = p["faithfulness"]
        shown = "n/a" if f["estimate"] is None else \
            f"{f['estimate']:.3f} [{_n(f['lower95'])}, {_n(f['upper95'])}]"
        table.add_row(f"{p['fraction']:g}", str(p["edges"]), shown)
    console.print(table)
    console.print(f"metric {curve['metric']} on {curve['prompts']} prompts; ablation: {curve['ablation']}",
                  markup=False)
    console.print(f"CPR (area under faithfulness, higher is better) = {curve['cpr']:.4f}", markup=False)
    console.print(f"CMD (area under |1 - faithfulness|, lower is better) = {curve['cmd']:.4f}", markup=False)
    if args.json:
        doc = {"schema": "causalspec.circuit-curve/1", "tool": tool_header(), **jsonable(curve)}
        atomic_write_text(args.json, json.dumps(doc, indent=1, allow_nan=False) + "\n")
        console.print(f"wrote {args.json}", markup=False)
    return EXIT_OK


def _n(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


COMMAND = Command("circuit", HELP, add_arguments, None, description=HELP + ".")
