"""Export a high-level model's causal graph: Graphviz DOT, Mermaid, JSON, PNG.

Why four formats: DOT and Mermaid paste into papers, READMEs and issues (GitHub renders
Mermaid); JSON is the stable, machine-readable form other tools consume; PNG is a quick look
without any renderer installed.

Every exporter takes a `CausalModel` (or its networkx graph, whose nodes carry `kind`,
`type`, `domain`, `mechanism` and `span`) and lists nodes in the model's topological order
(declaration order breaks ties) and edges by (source, target) in that order, so the output
is byte-for-byte stable for a given spec (and causalspec version). Every format carries our
exact marker, which `causalspec.files` checks before a new export may replace a file:
DOT and Mermaid start with our generator line (with a digest of the rest, so an edited file
is no longer ours), JSON has the `"tool"`/`"schema"` header, PNG a tEXt `Software` chunk.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from causalspec.files import atomic_write_bytes, check_target, stamp_text, tool_header
from causalspec.semantics.expr import to_latex, to_sympy
from causalspec.semantics.model import CausalModel, node_attributes
from causalspec.syntax.printer import PrintError, print_expr

if TYPE_CHECKING:  # networkx (~0.1 s to import) is loaded by the PNG export and bare graphs only
    import networkx as nx

__all__ = ["to_dot", "to_mermaid", "to_json", "to_png", "family_graph", "family_view", "ModelView", "JSON_FORMAT",
           "PNG_SOFTWARE", "KIND_STYLE"]

# The `causalspec` key of `to_json`'s result; bump `version` (and SCHEMA) on any incompatible change.
JSON_FORMAT = {"format": "graph", "version": 1}
SCHEMA = "causalspec.graph/1"

# Written into every PNG's tEXt "Software" chunk: how a later export recognises its own file.
PNG_SOFTWARE = "causalspec graph_export"  # one of causalspec.files.PNG_SOFTWARE

# Shape/colour per variable kind, shared by every format (colour-blind-safe Okabe-Ito hues).
KIND_STYLE = {
    "input": {"dot_shape": "ellipse", "colour": "#56B4E9", "label": "input"},
    "var": {"dot_shape": "box", "colour": "#F0E442", "label": "intermediate (var)"},
    "output": {"dot_shape": "box", "colour": "#E69F00", "label": "output"},
}
_KINDS = tuple(KIND_STYLE)


# ───────────────────────── the graph, in a stable order ─────────────────────────

@dataclass(frozen=True)
class ModelView:
    """What the text exports read of a graph, spelled as networkx spells it (`nodes[n]` is a
    node's data, `edges` the (source, target) pairs), with the model's name and node order:
    built without importing networkx (~0.1 s), which DOT, Mermaid and JSON do not need.
    `family_view` returns one; the exporters accept it wherever they accept a model."""

    name: str
    nodes: dict[str, dict[str, Any]]
    edges: list[tuple[str, str]]
    order: list[str]


def _model_graph(model: Any, networkx: bool = False) -> tuple[str, Any, list[str]]:
    """(model name, graph, node order) for a `CausalModel`, a `ModelView` or a bare model
    graph. The graph of a `CausalModel` is a `ModelView` unless `networkx` asks for its
    networkx graph (PNG)."""
    if isinstance(model, ModelView) and not networkx:
        return model.name, model, list(model.order)
    if isinstance(model, ModelView):
        import networkx as nx

        graph = nx.DiGraph(name=model.name)
        for node in model.order:
            graph.add_node(node, **model.nodes[node])
        graph.add_edges_from(model.edges)
        return model.name, graph, list(model.order)
    if isinstance(model, CausalModel):
        name, order = model.name, list(model.order)
        # no family to expand (an aggregate over a static range, a `const`): the mechanisms as written
        written = {} if model.families.families else model.families.written
        if networkx:
            if not written:
                return name, model.graph, order
            graph = model.graph.copy()
            for n, expr in written.items():
                graph.nodes[n]["mechanism"] = expr
            return name, graph, order
        nodes = {n: node_attributes(v) for n, v in model.variables.items()}
        for n, expr in written.items():
            nodes[n]["mechanism"] = expr
        view = ModelView(name, nodes, [(p, n) for n, v in model.variables.items() for p in v.parents
                                       if p in model.variables], order)
        return name, view, order
    import networkx as nx

    if isinstance(model, nx.DiGraph):
        graph, name, order = model, str(model.graph.get("name", "model")), model.graph.get("order")
    else:
        graph, name, order = model.graph, model.name, list(getattr(model, "order", None) or ())
    if not order or set(order) != set(graph.nodes):
        try:
            order = list(nx.lexicographical_topological_sort(graph, key=str))
        except nx.NetworkXUnfeasible:  # a cyclic graph (only a hand-built one): still exportable
            order = sorted(graph.nodes, key=str)
    return name, graph, order


def family_view(model: Any) -> ModelView:
    """The model's graph with each family (`var H[i in 1..N]`) drawn as one node `H[1..N]`.

    Why: an unrolled family of N elements is N near-identical nodes and up to N² edges; the
    family node keeps the reader's view of the spec. Edges between families are merged (a
    family that reads its own earlier elements, `H[i-1]`, gets a self-loop); the node's
    mechanism is the family's, as written, and so is that of a variable whose mechanism
    aggregates over a family (`count(j in 1..N : m[j] == x)`, not `count(m[1] == x, …)`);
    `causalspec graph --expand` shows every element, with the mechanisms that run.
    Built without networkx (what `causalspec graph` exports as text); `family_graph` is the
    same graph as a networkx `DiGraph`."""
    families = getattr(getattr(model, "families", None), "families", None) or {}
    written = getattr(getattr(model, "families", None), "written", None) or {}
    member = {e: f"{f}[{fam.indices[0]}..{fam.indices[-1]}]" for f, fam in families.items()
              for e in fam.elements}
    if isinstance(model, CausalModel):  # the node data and edges of `model.graph`, without networkx
        node_data = {n: node_attributes(v) for n, v in model.variables.items()}
        model_edges = [(p, n) for n, v in model.variables.items() for p in v.parents if p in model.variables]
    else:
        node_data = {n: dict(model.graph.nodes[n]) for n in model.graph.nodes}
        model_edges = list(model.graph.edges)
    nodes: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for node in model.order:
        key = member.get(node, node)
        if key not in nodes:
            data = dict(node_data[node])
            if key != node:
                fam = families[key[:key.index("[")]]
                data["elements"] = len(fam.indices)
                data["mechanism"] = fam.mechanism
            elif node in written:  # an aggregate over a family, as written (not unrolled)
                data["mechanism"] = written[node]
            nodes[key] = data
            order.append(key)
    edges = list(dict.fromkeys((member.get(src, src), member.get(dst, dst)) for src, dst in model_edges))
    return ModelView(model.name, nodes, edges, order)


def family_graph(model: Any) -> nx.DiGraph:
    """`family_view` as a networkx `DiGraph` (its `graph["order"]` is the node order)."""
    view = family_view(model)
    _, graph, order = _model_graph(view, networkx=True)
    graph.graph["order"] = order
    return graph


def _edges(graph: nx.DiGraph | ModelView, order: list[str]) -> list[tuple[str, str]]:
    index = {n: i for i, n in enumerate(order)}
    return sorted(graph.edges, key=lambda e: (index[e[0]], index[e[1]]))


def _kind(data: dict) -> str:
    kind = data.get("kind", "var")
    return kind if kind in KIND_STYLE else "var"


def _type(data: dict) -> str:
    if data.get("type"):
        return str(data["type"])
    dom = data.get("domain")
    return dom.describe() if dom is not None else "?"


def mechanism_text(expr: Any) -> str | None:
    """A mechanism as spec text (the canonical printer), or sympy's text if it cannot print."""
    if expr is None:
        return None
    try:
        return print_expr(expr)
    except PrintError:  # a hand-built AST with no spec text
        return str(to_sympy(expr))


# ───────────────────────── DOT ─────────────────────────

def _dot_str(text: str) -> str:
    """A DOT double-quoted string. Backslashes are escaped too: in labels `\\n`, `\\l`,
    `\\N` ... are escape sequences, so a name or type must not produce one by accident."""
    return '"' + (str(text).replace("\\", "\\\\").replace('"', '\\"')
                  .replace("\r", "").replace("\n", "\\n")) + '"'


def to_dot(model: Any) -> str:
    """Graphviz DOT: inputs are ellipses, intermediates boxes, outputs filled double boxes;
    labels read `name : type`, the mechanism is the node's tooltip."""
    name, graph, order = _model_graph(model)
    lines = [
        f"// causal graph of model {name}",
        f"digraph {_dot_str(name)} {{",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", style=filled, fillcolor="white"];',
        '  edge [color="#444444"];',
    ]
    for node in order:
        data = graph.nodes[node]
        kind = _kind(data)
        style = KIND_STYLE[kind]
        attrs = [f"label={_dot_str(f'{node} : {_type(data)}')}", f"shape={style['dot_shape']}",
                 f"fillcolor={_dot_str(style['colour'])}"]
        if kind == "output":
            attrs.append("peripheries=2")
        mech = mechanism_text(data.get("mechanism"))
        if mech is not None:
            attrs.append(f"tooltip={_dot_str(f'{node} = {mech}')}")
        lines.append(f"  {_dot_str(node)} [{', '.join(attrs)}];")
    for src, dst in _edges(graph, order):
        lines.append(f"  {_dot_str(src)} -> {_dot_str(dst)};")
    lines.append("}")
    return stamp_text("//", "graph", "\n".join(lines) + "\n")


# ───────────────────────── Mermaid ─────────────────────────

_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;",
                     "\n": " ", "\r": " ", "`": "#96;"}


def _mermaid_text(text: str) -> str:
    """Label text for inside `"…"`: Mermaid's entity codes for every character that could end
    the label or be read as markup (`#` first, so codes are not re-escaped)."""
    return "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in str(text))


# Shapes: inputs stadium `([…])`, intermediates box `[…]`, outputs double box `[[…]]`.
_MERMAID_SHAPE = {"input": ("([", "])"), "var": ("[", "]"), "output": ("[[", "]]")}


def to_mermaid(model: Any) -> str:
    """A Mermaid `flowchart TD`. Node ids are generated (`n0`, `n1`, …) so that no variable
    name can clash with Mermaid syntax (`end`, names starting with `o`/`x`); the label holds
    `name : type`."""
    name, graph, order = _model_graph(model)
    ids = {node: f"n{i}" for i, node in enumerate(order)}
    lines = [f"%% causal graph of model {_mermaid_text(name)}", "flowchart TD"]
    for node in order:
        data = graph.nodes[node]
        left, right = _MERMAID_SHAPE[_kind(data)]
        lines.append(f'  {ids[node]}{left}"{_mermaid_text(f"{node} : {_type(data)}")}"{right}')
    for src, dst in _edges(graph, order):
        lines.append(f"  {ids[src]} --> {ids[dst]}")
    for kind in _KINDS:
        colour = KIND_STYLE[kind]["colour"]
        lines.append(f"  classDef kind_{kind} fill:{colour},stroke:#333333,color:#000000")
    for kind in _KINDS:
        members = [ids[n] for n in order if _kind(graph.nodes[n]) == kind]
        if members:
            lines.append(f"  class {','.join(members)} kind_{kind}")
    return stamp_text("%%", "graph", "\n".join(lines) + "\n")


# ───────────────────────── JSON ─────────────────────────

def _json_value(value: Any) -> Any:
    """numpy scalars -> Python scalars (domain values are bool, int or str)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _domain_json(dom: Any) -> dict | None:
    if dom is None:
        return None
    is_int = dom.kind == "int"
    return {
        "kind": dom.kind,
        "name": dom.name,
        "values": [_json_value(v) for v in dom.values],
        "lo": _json_value(dom.lo) if is_int else None,
        "hi": _json_value(dom.hi) if is_int else None,
    }


def _span_json(span: Any) -> dict | None:
    if span is None or not getattr(span, "known", True):
        return None
    return {"file": span.file, "line": span.line, "column": span.column}


def to_json(model: Any) -> dict:
    """A JSON-serialisable dict with a stable schema (version in `JSON_FORMAT`)::

        {"schema": "causalspec.graph/1", "tool": {"name": "causalspec", "version": "0.1.0"},
         "causalspec": {"format": "graph", "version": 1},
         "model": "HierEq",
         "nodes": [{"name", "kind", "type",
                    "domain": {"kind", "name", "values", "lo", "hi"},   # lo/hi: int domains only
                    "mechanism": spec text | null, "latex": LaTeX | null,   # null for inputs
                    "span": {"file", "line", "column"} | null}, ...],
         "edges": [{"source", "target"}, ...]}

    `values` lists the whole domain. Nodes are in topological order, edges sorted by it.
    """
    name, graph, order = _model_graph(model)
    nodes = []
    for node in order:
        data = graph.nodes[node]
        mech = data.get("mechanism")
        nodes.append({
            "name": str(node),
            "kind": data.get("kind"),
            "type": _type(data),
            "domain": _domain_json(data.get("domain")),
            "mechanism": mechanism_text(mech),
            "latex": to_latex(mech) if mech is not None else None,
            "span": _span_json(data.get("span")),
        })
    edges = [{"source": str(s), "target": str(t)} for s, t in _edges(graph, order)]
    return {"schema": SCHEMA, "tool": tool_header(), "causalspec": dict(JSON_FORMAT), "model": name,
            "nodes": nodes, "edges": edges}


# ───────────────────────── PNG ─────────────────────────

def _generations(graph: nx.DiGraph, order: list[str]) -> list[list[str]]:
    """Topological generations (inputs first), each in declaration order; a cyclic
    (hand-built) graph is one generation."""
    import networkx as nx

    index = {n: i for i, n in enumerate(order)}
    try:
        generations = [sorted(g, key=index.__getitem__) for g in nx.topological_generations(graph)]
    except nx.NetworkXUnfeasible:
        generations = [list(order)]
    return generations


def png_layout(graph: nx.DiGraph, order: list[str]) -> dict[str, tuple[float, float]]:
    """Layered layout: one row per topological generation, causes above effects, rows centred.

    The first row keeps declaration order; each later row is ordered by the mean position of
    its parents (the barycentre heuristic, ties by declaration order), which keeps edges from
    crossing in the common tree-shaped models.
    """
    index = {n: i for i, n in enumerate(order)}
    pos: dict[str, tuple[float, float]] = {}
    for depth, row in enumerate(_generations(graph, order)):
        def barycentre(node: str) -> tuple[float, int]:
            xs = [pos[p][0] for p in graph.predecessors(node) if p in pos]
            return (sum(xs) / len(xs) if xs else math.inf, index[node])

        if depth > 0:
            row = sorted(row, key=barycentre)
        for i, node in enumerate(row):
            pos[node] = (i - (len(row) - 1) / 2.0, -float(depth))
    return pos


def render_png(model: Any, dpi: int = 150) -> bytes:
    """The graph drawn with matplotlib (Agg, no pyplot state) as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    import networkx as nx

    name, graph, order = _model_graph(model, networkx=True)
    pos = png_layout(graph, order)
    generations = _generations(graph, order)
    widest = max((len(g) for g in generations), default=1)
    fig = Figure(figsize=(max(4.0, 2.4 * widest), max(3.0, 1.6 * len(generations) + 1.0)))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(f"model {name}")
    markers = {"input": "o", "var": "s", "output": "D"}
    nx.draw_networkx_edges(graph, pos, ax=ax, edgelist=_edges(graph, order), arrows=True, arrowsize=14,
                           edge_color="#444444", node_size=2200)
    handles = []
    for kind in _KINDS:
        members = [n for n in order if _kind(graph.nodes[n]) == kind]
        if members:
            nx.draw_networkx_nodes(graph, pos, ax=ax, nodelist=members, node_shape=markers[kind],
                                   node_color=KIND_STYLE[kind]["colour"], edgecolors="#333333",
                                   node_size=2200)
            handles.append(Line2D([], [], linestyle="none", marker=markers[kind], markersize=9,
                                  markerfacecolor=KIND_STYLE[kind]["colour"], markeredgecolor="#333333",
                                  label=KIND_STYLE[kind]["label"]))
    labels = {n: f"{n}\n{textwrap.fill(_type(graph.nodes[n]), 18)}" for n in order}
    nx.draw_networkx_labels(graph, pos, labels=labels, ax=ax, font_size=8)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    xs = [x for x, _ in pos.values()] or [0.0]
    ys = [y for _, y in pos.values()] or [0.0]
    pad_x = max(0.35, 0.25 * (max(xs) - min(xs)))
    pad_y = max(0.35, 0.25 * (max(ys) - min(ys)))
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight",
                metadata={"Software": PNG_SOFTWARE, "Title": f"causal graph of model {name}"})
    return buf.getvalue()


def to_png(model: Any, path: str | Path, dpi: int = 150) -> Path:
    """Draw the graph into `path` (atomically: temp file + rename). An existing file is replaced
    only if it is an output of ours (`causalspec.files.check_target`, checked before drawing);
    otherwise `OverwriteRefused` is raised and the file is left untouched."""
    path = check_target(path)
    return atomic_write_bytes(path, render_png(model, dpi=dpi))
