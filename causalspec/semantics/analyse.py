"""Analyse a whole spec: every block, every diagnostic in one pass, then the Spec IR.

Why one orchestrator: name resolution crosses blocks (an alignment names a model and a
network; a check names an alignment), so blocks are analysed in dependency order here and
each analyser gets the IR of what it refers to.
"""

from __future__ import annotations

from pathlib import Path

from causalspec.codes import E0201
from causalspec.diagnostics import DiagnosticSink
from causalspec.semantics.analyse_model import analyse_model
from causalspec.semantics.blocks import analyse_blocks
from causalspec.semantics.ir import SpecIR
from causalspec.syntax import ast as A
from causalspec.syntax.gc_pause import paused_gc
from causalspec.syntax.parser import parse, parse_file


def analyse(spec: A.Spec, base_dir: Path | None = None, live: frozenset[str] = frozenset()) -> SpecIR:
    """Spec AST -> Spec IR, or `SpecError` carrying every diagnostic found. `live` names networks
    the caller binds in memory (the Python API): their files (weights, builder, hooks, model
    folder) are not required to exist."""
    with paused_gc():  # see causalspec/syntax/gc_pause.py
        return _analyse(spec, base_dir, live)


def _analyse(spec: A.Spec, base_dir: Path | None, live: frozenset[str] = frozenset()) -> SpecIR:
    base_dir = base_dir if base_dir is not None else Path(spec.file).resolve().parent
    sink = DiagnosticSink()
    ir = SpecIR(spec.file, spec)
    seen: dict[str, A.Name] = {}
    for item in spec.items:
        if isinstance(item, A.Model):
            _unique(item.name, seen, sink, "model")
            cm = analyse_model(item, sink, base_dir)
            if cm is not None:
                ir.models[cm.name] = cm
    analyse_blocks(spec, ir, sink, base_dir, live)
    sink.raise_if_errors()
    ir.warnings = sink.warnings
    return ir


def _unique(name: A.Name, seen: dict[str, A.Name], sink: DiagnosticSink, what: str) -> None:
    if name.text in seen:
        sink.error(E0201, f"{what} `{name.text}` is declared twice", name.span, "declared again here",
                   notes=[f"first declared at {seen[name.text].span}"],
                   help=f"rename one of the two {what}s; names are unique per kind")
    else:
        seen[name.text] = name


def load_text(text: str, file: str = "<string>", base_dir: Path | None = None) -> SpecIR:
    return analyse(parse(text, file), base_dir or Path.cwd())


def load(path: str | Path) -> SpecIR:
    """Parse and analyse a spec file (the public entry point of the language stage)."""
    spec = parse_file(path)
    return analyse(spec, Path(path).resolve().parent)
