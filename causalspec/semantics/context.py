"""The shared context of the analysis outside `model` blocks: the spec, the IR being filled,
the diagnostic sink, the spec's folder, what the block analysers remember across blocks
(position resolvers per network, encodings already checked, each alignment's variables), and
the helpers every block kind uses (duplicate names, model/network references, string-literal
spans, templates, `file.py:function` hooks, small message formatters).

Why a base class: the block analysers (semantics.networks, .datasets, .alignments,
.conditions, .checks, .circuits) are mixins over this one context, so they share state
without importing one another in a circle; semantics.blocks composes them.
"""


from __future__ import annotations

from pathlib import Path
from typing import Any

from causalspec.codes import E0201, E0206, E0207, E0606, E0610
from causalspec.diagnostics import DiagnosticSink, Span, did_you_mean
from causalspec.semantics.domains import Domain
from causalspec.semantics.file_access import note_outside
from causalspec.semantics.ir import HookRef, NetworkIR, SpecIR
from causalspec.semantics.model import CausalModel
from causalspec.semantics.paths import PathProblem, file_problem, resolve
from causalspec.semantics.python_names import top_level_names
from causalspec.semantics.sites import PositionResolver
from causalspec.semantics.templates import IDENT, Template, scan_template
from causalspec.syntax import ast as A


class Context:
    """State and helpers shared by every block analyser (see the module docstring)."""

    # filled by semantics.blocks before any block is analysed (duplicates reported once)
    network_decls: dict[str, A.Network]
    dataset_decls: dict[str, A.Dataset]
    alignment_decls: dict[str, A.Alignment]

    def __init__(self, spec: A.Spec, ir: SpecIR, sink: DiagnosticSink, base_dir: Path,
                 live: frozenset[str] = frozenset()):
        self.spec = spec
        # networks the caller binds in memory (the Python API): their files need not exist
        self.live = live
        self.ir = ir
        self.sink = sink
        self.base_dir = base_dir
        self.model_decls = {it.name.text: it for it in spec.items if isinstance(it, A.Model)}
        self.resolvers: dict[str, PositionResolver] = {}
        self.checked_encodings: set[tuple] = set()
        self.encode_reported: set[str] = set()
        # per alignment: every variable it mentions, its output variables (one, or the elements of
        # `O[i] -> output @ i`), and whether its variable lines resolved (if not, checks do not
        # report variables as unaligned)
        self.alignment_vars: dict[str, tuple[set[str], frozenset[str], bool]] = {}
        # the families of each alignment's model: `interchange H` stands for H's aligned elements
        self.alignment_families: dict[str, dict[str, tuple[str, ...]]] = {}
        self.prompt_declared: set[str] = set()

    def items(self, kind) -> list:
        return [it for it in self.spec.items if isinstance(it, kind)]

    def _unique(self, items: list, what: str) -> dict:
        seen: dict = {}
        for it in items:
            if it.name.text in seen:
                self.sink.error(E0201, f"{what} `{it.name.text}` is declared twice", it.name.span,
                                "declared again here", notes=[f"first declared at {seen[it.name.text].name.span}"],
                                help=f"rename one of the two {what}s; names are unique per kind")
            else:
                seen[it.name.text] = it
        return seen

    def _model(self, ref: A.Name) -> CausalModel | None:
        """The analysed model, or None (E0206 if it is not declared; silent if it had errors)."""
        if ref.text not in self.model_decls:
            self.sink.error(E0206, f"unknown model `{ref.text}`", ref.span, "no model of this name",
                            help=did_you_mean(ref.text, self.model_decls, "models"))
            return None
        return self.ir.models.get(ref.text)

    def _network_ref(self, ref: A.Name) -> NetworkIR | None:
        if ref.text not in self.network_decls:
            self.sink.error(E0207, f"unknown network `{ref.text}`", ref.span, "no network of this name",
                            help=did_you_mean(ref.text, self.network_decls) or
                            f"declare it: `network {ref.text} = hf \"…\"`")
            return None
        return self.ir.networks.get(ref.text)

    def _string_span(self, node_span: Span, value: str) -> tuple[Span, bool]:
        """The span of a string literal that ends its statement, when it can be located exactly
        (one line, no escapes in the literal); else the statement's span."""
        plain = all(c not in '"\\' and c.isprintable() for c in value)
        start = node_span.end_column - len(value) - 2
        if plain and node_span.known and node_span.line == node_span.end_line and start >= node_span.column:
            return Span(node_span.file, node_span.line, start, node_span.line, node_span.end_column), True
        return node_span, False

    def _template(self, text: str, span: Span, exact: bool) -> Template | None:
        parts, errors = scan_template(text)
        template = Template(text, parts, span, exact)
        for start, end, message, help_ in errors:
            self.sink.error(E0606, message, template.sub_span(start, end), "malformed template", help=help_)
        return template if not errors else None

    def _hook(self, ref: str, span: Span, what: str, at_end: bool = True,
              must_exist: bool = True) -> HookRef | None:
        lit_span = self._string_span(span, ref)[0] if at_end else span
        if ":" not in ref:
            self.sink.error(E0610, f"{what} `{ref}` must be written `file.py:function`", lit_span,
                            "missing `:function`", help=f"for example `\"{ref or 'model.py'}:build\"`")
            return None
        file, function = ref.rsplit(":", 1)
        if not IDENT.match(function):
            self.sink.error(E0610, f"{what} `{ref}`: `{function}` is not a function name", lit_span,
                            "expected `file.py:function`",
                            help="the part after the last `:` must be a Python identifier")
            return None
        if not file.endswith(".py"):
            self.sink.error(E0610, f"{what} `{ref}`: `{file}` is not a Python file", lit_span,
                            "expected a .py file", help="hooks and builders are functions in a .py file")
            return None
        problem = file_problem(file, self.base_dir, f"{what} file") if must_exist else None
        if problem is not None:
            self._path_error(problem, lit_span)
            return None
        path = resolve(file, self.base_dir)
        if must_exist:
            defined = top_level_names(path)  # read, never run (semantics.python_names)
            if defined is not None and function not in defined:
                public = sorted(n for n in defined if not n.startswith("_"))
                hint = did_you_mean(function, public) or (
                    f"it defines {', '.join(f'`{n}`' for n in public[:8])}" if public else "it defines nothing")
                self.sink.error(E0610, f"{what} `{ref}`: `{file}` defines no `{function}`", lit_span,
                                "no such function in the file", help=hint)
                return None
        note_outside(self.sink, f"{what} file", file, path, self.base_dir, lit_span)
        return HookRef(ref, file, function, path, span=lit_span)

    def _path_error(self, problem: PathProblem, span: Span) -> None:
        self.sink.error(problem.code, problem.message, span, problem.label, help=problem.help)


def join_names(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def article(kind: str) -> str:
    return {"input": "an input", "var": "an intermediate variable", "output": "an output"}.get(kind, kind)


def show_value(value: Any) -> str:
    return Domain.boolean().format(value)


def suggest_value(value: Any, dom: Domain) -> str | None:
    if dom.kind == "int":
        return f"values are {dom.lo}..{dom.hi}"
    if dom.kind == "bool":
        return "values are true and false"
    return did_you_mean(str(value), dom.values, "values")
