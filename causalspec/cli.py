"""The `causalspec` command line.

Exit codes (stable; CI jobs rely on them): 0 ok, 1 a check failed, 2 invalid spec or usage
(an output target that is not ours or not writable included), 3 internal error, 130 interrupted
(Ctrl-C). A user mistake never shows a Python traceback: it becomes diagnostics
(exit 2); anything else is our bug and says so (exit 3).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table as RichTable

from causalspec.diagnostics import SpecError, render
from causalspec.report.files import OutputError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


class UsageError(Exception):
    """A command-line mistake (not a spec mistake): exit 2 with the message."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (e.g. a cancelled CI job), handled like Ctrl-C: temporary files are removed and
    `check` reports what finished; the exit code is the shell's 128 + SIGTERM (143)."""

    exit_code = 128 + int(getattr(signal, "SIGTERM", 15))


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a command runs, SIGTERM raises `Terminated` — only where nobody else handles
    SIGTERM (a program embedding `main` keeps its own handler) and in the main thread."""
    try:
        installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        if installed:
            signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        installed = False
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def check_output_targets(**targets) -> None:
    """Check output files (flag name -> path, None: not given) before anything is loaded or
    run, with the test the writer applies (`report.files.check_target`): a mistake in an
    output flag costs nothing, and never a full run thrown away. Flag names use `_` for `-`."""
    from causalspec.report.files import check_target

    given = {flag: Path(p) for flag, p in targets.items() if p}
    seen: dict = {}
    for flag, path in given.items():
        name = "--" + flag.replace("_", "-") if len(flag) > 1 else "-" + flag
        key = path.resolve()
        if key in seen:
            raise UsageError(f"{seen[key]} and {name} name the same file {path}; give each its own")
        seen[key] = name
        try:
            check_target(path)
        except OutputError as exc:
            raise UsageError(f"{name}: {exc}") from None


def check_output_folders(**folders) -> None:
    """`check_output_targets` for output folders (flag name -> path)."""
    from causalspec.report.files import check_folder

    for flag, path in folders.items():
        if path:
            try:
                check_folder(path)
            except OutputError as exc:
                raise UsageError(f"--{flag.replace('_', '-')}: {exc}") from None


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


# ───────────────────────── commands ─────────────────────────

def load_reporting(file: str, err: Console):
    """Analyse one spec file, printing its warnings to `err`; None (its diagnostics printed)
    when it does not validate. Every command that reads spec files reports them this way."""
    from causalspec.semantics.analyse import load

    try:
        ir = load(file)
    except SpecError as exc:
        err.print(render(exc.diagnostics), markup=False)
        err.print(f"{file}: {len(exc.diagnostics)} error(s)", markup=False)
        return None
    for w in ir.warnings:
        err.print(render([w]), markup=False)
    return ir


def cmd_parse(args: argparse.Namespace) -> int:
    out, err = _stdout(), _stderr()
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


def _pick_model(ir, name: str | None):
    if name is None:
        if len(ir.models) == 1:
            return next(iter(ir.models.values()))
        raise UsageError(f"{ir.file} declares {len(ir.models)} models ({', '.join(ir.models) or 'none'}); "
                         "choose one with --model NAME")
    if name not in ir.models:
        from causalspec.diagnostics import did_you_mean

        hint = did_you_mean(name, ir.models)
        raise UsageError(f"no model `{name}` in {ir.file}" + (f"; {hint}" if hint else
                                                              f"; models: {', '.join(ir.models)}"))
    return ir.models[name]


def cmd_graph(args: argparse.Namespace) -> int:
    from causalspec.report import graph_export
    from causalspec.semantics.analyse import load

    check_output_targets(output=args.output)
    ir = load(args.file)
    model = _pick_model(ir, args.model)
    fmt = args.format
    if fmt == "png":
        target = Path(args.output or f"{Path(args.file).stem}.{model.name}.png")
        if not args.output:
            check_output_targets(output=target)
        graph_export.to_png(model, target)
        _stdout().print(f"wrote {target}", markup=False)
        return EXIT_OK
    if fmt == "dot":
        text = graph_export.to_dot(model)
    elif fmt == "mermaid":
        text = graph_export.to_mermaid(model)
    else:
        import json

        text = json.dumps(graph_export.to_json(model), indent=2, sort_keys=True)
    if args.output:
        _write_text_output(Path(args.output), text)
        _stdout().print(f"wrote {args.output}", markup=False)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _write_text_output(path: Path, text: str) -> None:
    """Write atomically; refuse to replace a file that is not a previous export of ours."""
    from causalspec.report.files import atomic_write_text

    atomic_write_text(path, text)


def parse_interchange(text: str, model) -> list[list[str]]:
    """`WX` / `WX,YZ` (one source) / `WX|YZ` (each group its own source) -> groups."""
    from causalspec.diagnostics import did_you_mean

    groups = []
    for part in text.split("|"):
        names = [n.strip() for n in part.split(",") if n.strip()]
        if not names:
            raise UsageError(f"--interchange {text!r}: empty group; write e.g. WX,YZ or WX|YZ")
        for n in names:
            if n not in model.variables:
                hint = did_you_mean(n, model.variables)
                raise UsageError(f"--interchange: model `{model.name}` has no variable `{n}`"
                                 + (f"; {hint}" if hint else ""))
        groups.append(names)
    return groups


def cmd_sample(args: argparse.Namespace) -> int:
    from causalspec.semantics.domains import format_value
    from causalspec.semantics.pairs import make_pairs

    ir = load_reporting(args.file, _stderr())  # its warnings too: e.g. files read from outside its folder
    if ir is None:
        return EXIT_INVALID
    model = _pick_model(ir, args.model)
    if args.n < 1:
        raise UsageError("--n must be at least 1")
    out = _stdout()
    if not args.interchange:
        from causalspec.semantics.sampling import sample_inputs

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


# ───────────────────────── entry point ─────────────────────────

def version() -> str:
    """The installed distribution's version; `causalspec.__version__` when running from a
    source tree that is not installed (no distribution metadata)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("causalspec")
    except PackageNotFoundError:
        from causalspec import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causalspec", description="Check causal hypotheses about neural networks.")
    p.add_argument("--version", action="version", version=f"causalspec {version()}",
                   help="print the installed causalspec version and exit")
    p.add_argument("--traceback", action="store_true", help="show Python tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sp = sub.add_parser("parse", help="parse and validate spec files")
    sp.add_argument("files", nargs="+", metavar="FILE")
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser("graph", help="export a model's causal graph")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--model", help="model name (needed when the file has several)")
    sp.add_argument("--format", choices=["dot", "mermaid", "json", "png"], default="dot")
    sp.add_argument("--output", "-o", help="output file (png default: <spec>.<model>.png)")
    sp.set_defaults(func=cmd_graph)

    sp = sub.add_parser("sample", help="sample inputs or counterfactual pairs from the high-level model")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--model", help="model name (needed when the file has several)")
    sp.add_argument("--interchange", metavar="VARS",
                    help="variables to interchange: WX (one), WX,YZ (one source), WX|YZ (a source each)")
    sp.add_argument("--n", type=int, default=5, help="number of rows (default 5)")
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_sample)

    _register_optional_commands(sub)
    return p


def _register_optional_commands(sub) -> None:
    """Commands that live in later pipeline stages register themselves here."""
    try:
        from causalspec.report.cli_check import register
    except ImportError:
        return
    register(sub)
    from causalspec.report.cli_circuit import register as register_circuit

    register_circuit(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_tb = args.traceback or bool(os.environ.get("CAUSALSPEC_TRACEBACK"))
    try:
        with _sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except SpecError as exc:
        _stderr().print(render(exc.diagnostics), markup=False)
        return EXIT_INVALID
    except (UsageError, OutputError) as exc:
        _stderr().print(f"error: {exc}", markup=False)
        return EXIT_INVALID
    except KeyboardInterrupt as exc:  # Ctrl-C (130) or SIGTERM (143): not a bug, no traceback
        _stderr().print("terminated" if isinstance(exc, Terminated) else "interrupted", markup=False)
        return getattr(exc, "exit_code", EXIT_INTERRUPTED)
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence, reported as ours
        err = _stderr()
        err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False)
        if show_tb:
            err.print(traceback.format_exc(), markup=False)
        else:
            err.print("this is a bug in causalspec, not in your spec; rerun with --traceback and report it",
                      markup=False)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
