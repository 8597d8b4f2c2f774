"""Circuit files: circuits as JSON node/edge lists in the EAP-IG / MIB format, and back.

Format (what EAP-IG's `Graph.to_json` writes and `Graph.from_json` reads; MIB's circuit
track uses the same names):

    {
      "cfg":   {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": false, "d_model": 768},
      "nodes": {"input": {"in_graph": true}, "a9.h9": {"in_graph": true}, "m3": {...}, ...},
      "edges": {"a0.h1->a2.h3<q>": {"score": 0.12, "in_graph": true},
                "input->m0": {...}, "a9.h9->logits": {...}, ...}
    }

Node names: `input` (the embeddings), `a{L}.h{H}` (a head), `m{L}` (an MLP), `logits`.
An edge into a head names the head's input: `<q>`, `<k>` or `<v>`; edges into MLPs and the
logits have none. Reading also accepts `"nodes": {"a9.h9": true}` and lists of names
(`"nodes": ["a9.h9"], "edges": ["a9.h9->logits"]`, everything listed is in the graph), and
edge entries without `in_graph` (a scored edge list, e.g. for `causalspec circuit cpr`).

causalspec adds one key of its own, ignored by other tools: `"causalspec": {"circuit":
NAME, "granularity": …, "positions": {node: [position, …]}, "groups": {group: [node, …]}}`
— the MIB format has no token positions, so a positional circuit exported there loses them
unless read back by causalspec.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable


from causalspec.errors import UsageError
from causalspec.semantics.paths import missing_path_help
from causalspec.semantics.sites import PositionSpec
from causalspec.compile.circuit_plan import (EMBED, HEAD, LOGITS, PORTS, Arch, Member, Node, ResolvedCircuit,
                                             parse_node_name, prune_edges, upstream)
# the atomic writer and the tool header every output of ours carries (no import back into interop)
from causalspec.syntax.printer import print_number
from causalspec.files import atomic_write_bytes, atomic_write_text, tool_header

_EDGE = re.compile(r"^\s*(?P<src>[^\s<>-]+)\s*->\s*(?P<dst>[^\s<>]+?)\s*(<(?P<port>[qkv])>)?\s*$")
SCHEMA_KEY = "causalspec"


class CircuitFileError(UsageError, ValueError):
    """A circuit file that cannot be read (the message says where and why)."""


@dataclass(frozen=True)
class GraphEdge:
    src: Node | str  # Node or EMBED
    dst: Node | str  # Node or LOGITS
    port: str | None = None  # q | k | v for head targets

    @property
    def name(self) -> str:
        src = self.src.name if isinstance(self.src, Node) else "input"  # EMBED
        dst = self.dst.name if isinstance(self.dst, Node) else LOGITS
        return f"{src}->{dst}" + (f"<{self.port}>" if self.port else "")

    @property
    def receiver(self):
        return LOGITS if self.dst == LOGITS else (self.dst, self.port)


@dataclass
class CircuitGraph:
    """A circuit (or a scored full graph) as nodes and edges."""

    cfg: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, bool] = field(default_factory=dict)  # name -> in_graph
    edges: dict[GraphEdge, tuple[float | None, bool]] = field(default_factory=dict)  # -> (score, in_graph)
    extra: dict[str, Any] = field(default_factory=dict)  # the "causalspec" key

    def in_graph_edges(self) -> list[GraphEdge]:
        return [e for e, (_, inside) in self.edges.items() if inside]

    def scored_edges(self) -> list[tuple[GraphEdge, float]]:
        return [(e, s) for e, (s, _) in self.edges.items() if s is not None]


def parse_edge(name: str) -> GraphEdge:
    m = _EDGE.match(name)
    if not m:
        raise CircuitFileError(f"`{name}` is not an edge name (expected e.g. `a0.h1->a2.h3<q>` or `m3->logits`)")
    try:
        src = parse_node_name(m["src"])
        dst = parse_node_name(m["dst"])
    except ValueError as exc:
        raise CircuitFileError(f"edge `{name}`: {exc}") from None
    port = m["port"]
    if src == LOGITS:
        raise CircuitFileError(f"edge `{name}`: `logits` is the end of the graph, not a source")
    if dst == EMBED:
        raise CircuitFileError(f"edge `{name}`: `input` is the start of the graph, not a target")
    if isinstance(dst, Node) and dst.kind == HEAD and port is None:
        raise CircuitFileError(f"edge `{name}`: an edge into a head names its input: `<q>`, `<k>` or `<v>`")
    if (dst == LOGITS or (isinstance(dst, Node) and dst.kind != HEAD)) and port is not None:
        raise CircuitFileError(f"edge `{name}`: only heads have q/k/v inputs")
    return GraphEdge(src, dst, port)


def read_graph(path: str | Path) -> CircuitGraph:
    """Read a circuit file (format in the module docstring); `.pt` files as EAP-IG's `Graph.to_pt`."""
    path = Path(path)
    if not path.is_file():  # a misspelt name: say which file was meant, before any reader guesses
        if path.is_dir():
            raise CircuitFileError(f"circuit file `{path}` is a folder, not a circuit file")
        raise CircuitFileError(f"circuit file `{path}` not found; " + missing_path_help(
            str(path), path.absolute(), "paths are relative to the current directory"))
    if path.suffix == ".pt":
        return read_pt(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CircuitFileError(f"{path}: cannot read a JSON circuit file: {exc}") from None
    return graph_from_json(doc, str(path))


def graph_from_json(doc: Any, where: str = "circuit file") -> CircuitGraph:
    if not isinstance(doc, dict) or "nodes" not in doc and "edges" not in doc:
        raise CircuitFileError(f"{where}: expected an object with `nodes` and/or `edges`")
    g = CircuitGraph(cfg=dict(doc.get("cfg") or {}), extra=dict(doc.get(SCHEMA_KEY) or {}))
    nodes = doc.get("nodes") or {}
    masked = [n for n, info in (nodes.items() if isinstance(nodes, dict) else ())
              if isinstance(info, dict) and isinstance(info.get("neurons"), list) and not all(info["neurons"])]
    if masked:
        raise CircuitFileError(f"{where}: {len(masked)} node(s) have neuron-level masks (e.g. `{masked[0]}`); "
                               "causalspec evaluates whole heads and MLPs, so it refuses rather than drop them")
    for name, info in (nodes.items() if isinstance(nodes, dict) else ((n, True) for n in nodes)):
        inside = info.get("in_graph", True) if isinstance(info, dict) else bool(info)
        try:
            parse_node_name(name)
        except ValueError as exc:
            raise CircuitFileError(f"{where}: {exc}") from None
        g.nodes[name] = bool(inside)
    edges = doc.get("edges") or {}
    for name, info in (edges.items() if isinstance(edges, dict) else ((e, {}) for e in edges)):
        edge = parse_edge(name)
        if isinstance(info, dict):
            score = info.get("score")
            inside = info.get("in_graph", True)
        elif isinstance(info, bool):
            score, inside = None, info
        else:
            score, inside = info, True
        if score is not None:
            try:
                score = float(score)
            except (TypeError, ValueError):
                raise CircuitFileError(f"{where}: edge `{name}` has a score that is not a number: {score!r}") from None
        if score is not None and not math.isfinite(score):
            raise CircuitFileError(f"{where}: edge `{name}` has a score that is not finite: {score!r}")
        g.edges[edge] = (score, bool(inside))
    return _unplaceholder(g, where)


UNSCORED = "unscored"  # the causalspec key listing in-graph edges written with the placeholder score
PLACEHOLDER_SCORE = 1.0  # what an in-graph edge without a score is written with (EAP-IG needs a number)


def _unplaceholder(g: CircuitGraph, where: str) -> CircuitGraph:
    """Edges our writer gave the placeholder score (`"unscored"` in the causalspec key: `"all"`
    in-graph edges, or a list of names) come back without a score, so a re-import does not
    invent scores the circuit never had."""
    listed = g.extra.pop(UNSCORED, None)
    if listed is None:
        return g
    if listed == "all":
        names = {e.name for e, (_, inside) in g.edges.items() if inside}
    elif isinstance(listed, list) and all(isinstance(n, str) for n in listed):
        names = set(listed)
    else:
        raise CircuitFileError(f"{where}: `causalspec.{UNSCORED}` must be \"all\" or a list of edge names")
    for e, (_, inside) in list(g.edges.items()):
        if e.name in names:
            g.edges[e] = (None, inside)
    return g


def _with_placeholders(g: CircuitGraph) -> tuple[dict[str, Any], dict[GraphEdge, float]]:
    """The causalspec key to write (naming the unscored in-graph edges) and every edge's score
    to write (the placeholder where there is none)."""
    unscored = [e.name for e, (s, inside) in g.edges.items() if s is None and inside]
    extra = dict(g.extra)
    if unscored:
        inside = [e for e, (_, i) in g.edges.items() if i]
        extra[UNSCORED] = "all" if len(unscored) == len(inside) else unscored
    return extra, {e: (PLACEHOLDER_SCORE if s is None else s) for e, (s, _) in g.edges.items()}


PT_KEYS = ("cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph")


def read_pt(path: Path) -> CircuitGraph:
    """A `.pt` circuit as EAP-IG's `Graph.to_pt` writes it (and MIB's `load_graph_from_pt`
    reads it): a dict with `cfg`, `src_nodes` (forward node names), `dst_nodes` (receiver names,
    `a0.h1<q>`, `m0`, `logits`), `edges_scores` and `edges_in_graph` ([src, dst] tensors) and
    `nodes_in_graph`. Loaded with `torch.load(weights_only=True)`: nothing is unpickled but
    tensors and plain containers. Anything else is refused."""
    import torch  # the circuit files of `causalspec parse` never need torch

    try:
        d = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling refusal is the file's problem
        raise CircuitFileError(f"{path}: not a circuit .pt file torch.load(weights_only=True) can read: "
                               f"{exc}") from None
    if not isinstance(d, dict) or any(k not in d for k in PT_KEYS):
        have = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise CircuitFileError(f"{path}: an EAP-IG / MIB .pt circuit has keys {', '.join(PT_KEYS)}; this has {have}")
    if d.get("neurons_in_graph") is not None and not bool(d["neurons_in_graph"].all()):
        n = int((~d["neurons_in_graph"].bool()).any(-1).sum())
        raise CircuitFileError(f"{path}: {n} node(s) have neuron-level masks; causalspec evaluates whole heads and "
                               "MLPs, so it refuses rather than drop them")
    scores, inside = d["edges_scores"], d["edges_in_graph"].bool()
    src, dst = list(d["src_nodes"]), list(d["dst_nodes"])
    if tuple(scores.shape) != (len(src), len(dst)) or tuple(inside.shape) != (len(src), len(dst)):
        raise CircuitFileError(f"{path}: edges_scores / edges_in_graph must be [{len(src)} src, {len(dst)} dst]")
    g = CircuitGraph(cfg=dict(d["cfg"]), extra=_pt_extra(d.get(SCHEMA_KEY), path))
    for i, name in enumerate(src):
        g.nodes[name] = bool(d["nodes_in_graph"][i])
    g.nodes[LOGITS] = True
    arch = Arch(int(g.cfg["n_layers"]), int(g.cfg["n_heads"]), parallel=bool(g.cfg.get("parallel_attn_mlp", False)))
    for i, s_name in enumerate(src):
        for j, d_name in enumerate(dst):
            if s_name == d_name.split("<")[0]:
                continue
            e = parse_edge(f"{s_name}->{d_name}")
            if upstream(e.src, e.dst, e.port, arch):
                score = float(scores[i, j])
                if not math.isfinite(score):
                    raise CircuitFileError(f"{path}: edge `{e.name}` has a score that is not finite: {score!r}")
                g.edges[e] = (score, bool(inside[i, j]))
    return _unplaceholder(g, str(path))


def _pt_extra(raw: Any, path: Path) -> dict[str, Any]:
    """The causalspec key of a `.pt` file of ours: a JSON string (a plain str loads under
    `weights_only=True`; EAP-IG's and MIB's loaders ignore keys they do not know)."""
    if raw is None:
        return {}
    try:
        doc = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        doc = None
    extra = doc.get(SCHEMA_KEY) if isinstance(doc, dict) else None
    if not isinstance(extra, dict):
        raise CircuitFileError(f"{path}: its `{SCHEMA_KEY}` entry is not the JSON object causalspec writes")
    return extra


def write_pt(g: CircuitGraph, path: str | Path) -> Path:
    """Write a graph as EAP-IG's `Graph.to_pt` does (loadable by `Graph.from_pt` and MIB), plus
    our causalspec key as a JSON string. Saved through a buffer, so the archive's inner folder
    name does not depend on the file's name: the same graph gives the same bytes."""
    import io

    import torch

    layers, heads = int(g.cfg["n_layers"]), int(g.cfg["n_heads"])
    src = ["input"] + [n for L in range(layers) for n in [*(f"a{L}.h{h}" for h in range(heads)), f"m{L}"]]
    dst = [n for L in range(layers) for n in
           [*(f"a{L}.h{h}<{p}>" for p in "qkv" for h in range(heads)), f"m{L}"]] + [LOGITS]
    scores = torch.zeros((len(src), len(dst)))
    inside = torch.zeros((len(src), len(dst)), dtype=torch.bool)
    si, di = {n: i for i, n in enumerate(src)}, {n: j for j, n in enumerate(dst)}
    extra, written = _with_placeholders(g)
    if isinstance(extra.get(GROUP_EDGES), list):  # the tensor holds float32: so do the group edges' scores
        extra[GROUP_EDGES] = [[a, b, None if v is None else float(torch.tensor(v, dtype=torch.float32))]
                              for a, b, v in extra[GROUP_EDGES]]
    for e, (_, in_graph) in g.edges.items():
        s_name, d_name = e.name.split("->")
        scores[si[s_name], di[d_name]] = written[e]
        inside[si[s_name], di[d_name]] = in_graph
    nodes = torch.tensor([bool(g.nodes.get(n, False)) for n in src])
    buffer = io.BytesIO()
    torch.save({"cfg": dict(g.cfg), "src_nodes": src, "dst_nodes": dst, "edges_scores": scores,
                "edges_in_graph": inside, "nodes_in_graph": nodes,
                SCHEMA_KEY: json.dumps(_envelope(extra))}, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


SCHEMA = "causalspec.circuit/1"


def graph_to_json(g: CircuitGraph) -> dict[str, Any]:
    # `schema` and `tool` are the marker that lets a re-export replace its own file (causalspec/files.py);
    # EAP-IG / MIB readers ignore keys other than cfg, nodes and edges
    extra, written = _with_placeholders(g)
    out: dict[str, Any] = {**_envelope(extra), "cfg": g.cfg,
                           "nodes": {n: {"in_graph": inside} for n, inside in g.nodes.items()},
                           "edges": {e.name: {"score": written[e], "in_graph": inside}
                                     for e, (_, inside) in g.edges.items()}}
    return out


def _envelope(extra: dict[str, Any]) -> dict[str, Any]:
    """Our marker (`schema`, `tool`: a re-export may replace its own file, causalspec/files.py)
    and the causalspec key; in a JSON file beside cfg/nodes/edges, in a .pt file as a string."""
    return {"schema": SCHEMA, "tool": tool_header(), SCHEMA_KEY: {"tool": "causalspec", **extra}}


def write_graph(g: CircuitGraph, path: str | Path) -> Path:
    """Write atomically; an existing file is replaced only if it is one of ours."""
    text = json.dumps(graph_to_json(g), indent=1) + "\n"
    return atomic_write_text(path, text)


# ───────────────────────── spec circuits <-> graphs ─────────────────────────

def circuit_to_graph(resolved: ResolvedCircuit, arch: Arch, name: str = "", granularity: str = "node",
                     positions: PositionNames | None = None,
                     convention: list[str] | None = None,
                     group_edges: Iterable[tuple[str, str, str | None, float | None]] | None = None) -> CircuitGraph:
    """A resolved spec circuit as a graph. Edge circuits export their node-level edges; node
    circuits export the subgraph their nodes induce (input -> every node, every node -> the
    logits, every earlier node -> every later one): what node-level ablation lets through."""
    cfg = {"n_layers": arch.layers, "n_heads": arch.heads, "parallel_attn_mlp": arch.parallel}
    if arch.d_model:
        cfg["d_model"] = arch.d_model
    nodes = sorted(set(resolved.nodes))
    g = CircuitGraph(cfg=cfg)
    g.nodes["input"] = True
    for n in nodes:
        g.nodes[n.name] = True
    g.nodes[LOGITS] = True
    if resolved.edges is not None:
        for receiver, senders in resolved.edges.items():
            to, at = (LOGITS, None) if isinstance(receiver, str) else receiver  # LOGITS, or (node, port)
            for s in sorted(senders, key=_sender_order):
                if upstream(s, to, at, arch):
                    g.edges[GraphEdge(s, to, at)] = (resolved.scores.get((receiver, s)), True)
    else:
        every: list[Node | str] = [EMBED, *nodes]
        receivers: list[Node | str] = [*nodes, LOGITS]
        for dst in receivers:
            for port in (PORTS if isinstance(dst, Node) and dst.kind == HEAD else (None,)):
                for s in every:
                    if s != dst and upstream(s, dst, port, arch):
                        g.edges[GraphEdge(s, dst, port)] = (None, True)
    g.extra = {"circuit": name, "granularity": granularity,
               "groups": {gname: [m.node.name for m in ms] for gname, ms in resolved.groups.items()}}
    if positions is None:
        positions = PositionNames()
        for m in resolved.members:
            if not m.everywhere:
                positions.add(m.node.name, m.positions)
    if positions.by_node:
        g.extra["positions"] = positions.by_node
    if positions.defs:
        g.extra[POSITION_DEFS] = dict(sorted(positions.defs.items()))
    if convention is not None:
        g.extra["convention"] = convention
    if resolved.edges is not None and group_edges is not None:  # the spec's own edges, for a re-import
        g.extra[GROUP_EDGES] = [[src, dst + (f".{port}" if port else ""), score]
                                for src, dst, port, score in group_edges]
    return g


GROUP_EDGES = "group_edges"  # the causalspec key: an edge circuit's edges between its groups


def _group_edge_lines(g: CircuitGraph) -> list[str] | None:
    """The `edges` lines of a file of ours, between its groups, when they still mean exactly
    the file's in-graph edges and scores (as resolved: expanded to node edges, those that
    cannot exist dropped, and under MIB's convention the dangling ones pruned); None when
    the file has no group edges or was edited since (then one group per node is written)."""
    groups, listed = g.extra.get("groups"), g.extra.get(GROUP_EDGES)
    if not isinstance(groups, dict) or not isinstance(listed, list) or not g.cfg.get("n_layers"):
        return None
    arch = Arch(int(g.cfg["n_layers"]), int(g.cfg.get("n_heads", 0)), parallel=bool(g.cfg.get("parallel_attn_mlp")))
    nodes = {gname: [parse_node_name(m) for m in ms] for gname, ms in groups.items()}
    nodes["embed"] = [EMBED]
    expanded: dict[GraphEdge, float | None] = {}
    lines = []
    for item in listed:
        if not (isinstance(item, list) and len(item) == 3):
            return None
        src, dst, score = item
        target, _, port = str(dst).partition(".")
        if src not in nodes or (target not in nodes and target != LOGITS) or target == "embed":
            return None
        for s in nodes[src]:
            for d in ([LOGITS] if target == LOGITS else nodes[target]):
                heads = isinstance(d, Node) and d.kind == HEAD
                for p in ((port,) if port else PORTS) if heads else (None,):
                    if s != d and upstream(s, d, p, arch):
                        expanded[GraphEdge(s, d, p)] = score
        lines.append(f"{src} -> {dst}" + ("" if score is None else f" : score {print_number(float(score), True)}"))
    have = {e: s for e, (s, inside) in g.edges.items() if inside}
    if expanded != have:
        receivers: dict = {}
        for e in expanded:
            receivers[e.receiver] = receivers.get(e.receiver, frozenset()) | {e.src}
        pruned = prune_edges(receivers)
        kept = {e: score for e, score in expanded.items() if e.src in pruned.get(e.receiver, ())}
        if kept != have:
            return None
    return lines


POSITION_DEFS = "position_defs"  # the causalspec key: position name -> its declaration's expression


@dataclass
class PositionNames:
    """How an exported circuit names its positions: per node, the names its group is at; per
    name, the expression that declares it (`S1_next` -> `S1 + 1`, `S1` -> `slot(S, 1).last`).
    Every position that is an expression gets a name, so an import writes `@ S1_next` and a
    `position S1_next = S1 + 1` line for the network block, never an expression inline."""

    by_node: dict[str, list[str]] = field(default_factory=dict)
    defs: dict[str, str] = field(default_factory=dict)

    def add(self, node: str, positions: Iterable[PositionSpec]) -> None:
        self.by_node[node] = [self.name(p) for p in positions]

    def name(self, p: PositionSpec) -> str:
        """The name that stands for `p` (declared, or made up for an unnamed offset), defining
        it and the names it rests on; literals (`last`, `3`, `2..4`) stand for themselves."""
        if p.kind in ("last", "all", "index", "range") and not p.name:
            return str(p)
        if p.name:
            wanted, text = p.name, self.expression(p)
        elif p.kind == "offset" and p.base is not None:
            base = self.name(p.base)
            step = {1: "next", -1: "prev"}.get(p.offset) or \
                (f"plus{p.offset}" if p.offset > 0 else f"minus{-p.offset}")
            wanted, text = f"{base}_{step}", self.expression(p)
        else:  # an unnamed slot: a position declaration always names one, but be total
            wanted, text = f"{p.slot}{p.occurrence}_{p.part}", str(p)
        name, n = wanted, 1
        while self.defs.get(name, text) != text:  # taken by another meaning: S1_next_2
            n += 1
            name = f"{wanted}_{n}"
        self.defs[name] = text
        return name

    def expression(self, p: PositionSpec) -> str:
        """`p` as a declaration's right-hand side: an offset's base by its name."""
        if p.kind == "offset" and p.base is not None:
            return f"{self.name(p.base)} {'+' if p.offset >= 0 else '-'} {abs(p.offset)}"
        return str(p)


def position_declarations(g: CircuitGraph) -> list[str]:
    """`position NAME = EXPR` lines for every name the file's positions use (none for a
    file that does not define them), by name (a network block reads them in any order)."""
    defs = g.extra.get(POSITION_DEFS) if isinstance(g.extra, dict) else None
    if not isinstance(defs, dict):
        return []
    return [f"position {name} = {text}" for name, text in defs.items()]


def _sender_order(s: Node | str) -> tuple[int, int, int]:
    return (s.layer, s.rank, s.head) if isinstance(s, Node) else (-1, 0, 0)  # EMBED first


def full_graph(arch: Arch) -> list[GraphEdge]:
    """Every edge of the network's graph (input, heads, MLPs, logits), in forward order."""
    nodes: list[Node] = [n for L in range(arch.layers) for n in
                         [*(Node.attention(L, h) for h in range(arch.heads)), Node.mlp(L)]]
    receivers: list[Node | str] = [*nodes, LOGITS]
    senders: list[Node | str] = [EMBED, *nodes]
    out = []
    for dst in receivers:
        for port in (PORTS if isinstance(dst, Node) and dst.kind == HEAD else (None,)):
            for src in senders:
                if src != dst and upstream(src, dst, port, arch):
                    out.append(GraphEdge(src, dst, port))
    return out


def graph_to_resolved(edges: Iterable[GraphEdge],
                      universe: frozenset[str] = frozenset({HEAD, "mlp"})) -> ResolvedCircuit:
    """Edges of a graph as an edge-granularity circuit: one group per node, every position,
    the embeddings routed (the `input` node is part of the graph)."""
    members: dict[Node, Member] = {}
    allowed: dict = {}
    for e in edges:
        for n in (e.src, e.dst):
            if isinstance(n, Node) and n not in members:
                members[n] = Member(n, group=group_name(n))
        allowed[e.receiver] = allowed.get(e.receiver, frozenset()) | frozenset([e.src])
    groups: dict[str, tuple[Member, ...]] = {m.group: (m,) for m in sorted(members.values(), key=lambda m: m.node)}
    return ResolvedCircuit(groups, universe, allowed, embed_gated=True)


def group_name(node: Node) -> str:
    return node.name.replace(".", "_")


def graph_to_spec(g: CircuitGraph, name: str, network: str, output: str, ablation: str = "zero",
                  metric: str | None = None, expect: str = "faithfulness >= 0.8", granularity: str = "edge",
                  convention: str | None = "mib") -> str:
    """A `circuit` block for the graph's in-graph edges (edge granularity: one group per node)
    or nodes (node granularity: one group per layer's heads and one for the MLPs)."""
    positions = g.extra.get("positions", {}) if isinstance(g.extra, dict) else {}
    in_edges = g.in_graph_edges()
    named = {parse_node_name(n) for n, inside in g.nodes.items() if inside}
    for e in in_edges:
        named |= {e.src, e.dst}
    nodes: list[Node] = sorted(n for n in named if isinstance(n, Node))
    if not nodes:
        raise CircuitFileError("the file has no head or MLP in the graph: nothing to state as a circuit")
    lines = [f"circuit {name} on {network} for {output} {{"]
    if not g.extra.get("groups"):  # another tool's file: what it says of its model and graph, kept as a comment
        lines += _file_facts(g)
    ours = _group_edge_lines(g) if granularity == "edge" else None
    if ours is not None:  # a file of ours, unedited: its groups and their edges come back as they were
        lines += _group_lines(g.extra["groups"], positions)
        lines.append("  edges {")
        lines += [f"    {line}" for line in ours]
        lines.append("  }")
        lines.append("  granularity edge")
    elif granularity == "edge":
        for n in nodes:
            at = positions.get(n.name)
            lines.append(f"  group {group_name(n)} = {n}" + _at(at))
        lines.append("  edges {")
        for e in sorted(in_edges, key=lambda e: (_order(e.dst), e.port or "", _order(e.src))):
            src = group_name(e.src) if isinstance(e.src, Node) else "embed"
            dst = group_name(e.dst) + (f".{e.port}" if e.port else "") if isinstance(e.dst, Node) else LOGITS
            score = g.edges[e][0]
            lines.append(f"    {src} -> {dst}" + ("" if score is None else f" : score {print_number(score, True)}"))
        lines.append("  }")
        lines.append("  granularity edge")
    elif isinstance(g.extra.get("groups"), dict) and g.extra["groups"]:
        # a file of ours: its groups (and their positions) come back as they were
        lines += _group_lines(g.extra["groups"], positions)
    else:
        by_layer: dict[int, list[Node]] = {}
        mlps: list[Node] = []
        for n in nodes:
            (by_layer.setdefault(n.layer, []) if n.kind == HEAD else mlps).append(n)
        for layer, heads in sorted(by_layer.items()):
            lines.append(f"  group heads_{layer} = " + ", ".join(str(n) for n in heads))
        if mlps:
            lines.append("  group mlps = " + ", ".join(str(n) for n in mlps))
    dropped = sum(1 for score, inside in g.edges.values() if inside and score is not None)
    if granularity != "edge" and dropped:  # said, not silently lost
        lines.append(f"  # {dropped} edge score(s) of the file are not kept: a node circuit has no edges "
                     "(--granularity edge keeps them)")
    stated = g.extra.get("convention") if isinstance(g.extra.get("convention"), list) else None
    if stated is not None:  # a file of ours: the circuit's own convention lines
        lines += [f"  {line}" for line in stated]
    elif convention:
        lines.append(f"  convention {convention}")
    lines.append(f"  ablate complement with {ablation}")
    if metric:
        lines.append(f"  metric {metric}")
    lines.append(f"  expect {expect}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _file_facts(g: CircuitGraph) -> list[str]:
    """Comment lines with what a MIB / EAP-IG file states beyond its circuit: its `cfg` (the
    model its graph was built for) and how many of its nodes and edges are in the graph."""
    out = []
    if g.cfg:
        facts = ", ".join(f"{k} {str(v).lower() if isinstance(v, bool) else str(v).replace(chr(10), ' ')}"
                          for k, v in g.cfg.items())
        out.append(f"  # the file's cfg: {facts}")
    if g.edges or g.nodes:
        in_edges = sum(1 for _, inside in g.edges.values() if inside)
        in_nodes = sum(1 for inside in g.nodes.values() if inside)
        out.append(f"  # in the file's graph: {in_edges:,} of {len(g.edges):,} edges, {in_nodes:,} of "
                   f"{len(g.nodes):,} nodes")
    return out


def _group_lines(groups: dict[str, list[str]], positions: dict[str, list[str]]) -> list[str]:
    out = []
    for gname, members in groups.items():
        spelled = [str(parse_node_name(m)) for m in members]
        at = _at(positions.get(members[0]) if members else None)
        out.append(f"  group {gname} = " + ", ".join(spelled) + at)
    return out


def _at(positions: list[str] | None) -> str:
    """` @ END`, ` @ {CPOS, END}` (several positions need braces), or nothing (every position)."""
    if not positions or positions == ["all"]:
        return ""
    return f" @ {positions[0]}" if len(positions) == 1 else " @ {" + ", ".join(positions) + "}"


def _order(n) -> tuple:
    if n == EMBED:
        return (-1, 0, 0)
    if n == LOGITS:
        return (10**9, 0, 0)
    return (n.layer, n.rank, n.head)


# ───────────────────────── CPR / CMD ─────────────────────────

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


RANKINGS = ("absolute", "signed")


def top_edges(scored: list[tuple[GraphEdge, float]], fraction: float, total: int | None = None,
              rank: str = "absolute") -> list[GraphEdge]:
    """MIB's top-k edge set (MIB-circuit-track `evaluate_area_under_curve` + EAP-IG
    `Graph.apply_topn`): k = int(fraction · total), rounded *down*, where `total` is the number
    of edges of the model's whole graph (`len(graph.edges)`, 32,491 for GPT-2 small; default:
    the edges scored); the k edges with the largest |score| (`rank="absolute"`, EAP-IG's
    `apply_topn` default) or the largest signed score (`rank="signed"`: MIB's
    `scripts/run_evaluation.py` without `--absolute`), ties by name. At most the edges scored
    are taken (EAP-IG scores every edge of the graph, 0 when unscored). Pruning of dangling
    edges is done by the caller (`compile.circuit_plan.prune_edges`)."""
    if rank not in RANKINGS:
        raise ValueError(f"rank must be one of {', '.join(RANKINGS)}, not {rank!r}")
    n = len(scored) if total is None else total
    k = max(0, min(len(scored), int(fraction * n)))
    key = (lambda es: (-abs(es[1]), es[0].name)) if rank == "absolute" else (lambda es: (-es[1], es[0].name))
    return [e for e, _ in sorted(scored, key=key)[:k]]


__all__ = ["GROUP_EDGES", "MIB_FRACTIONS", "POSITION_DEFS", "RANKINGS", "CircuitFileError", "CircuitGraph", "GraphEdge",
           "PositionNames", "circuit_to_graph", "full_graph", "graph_from_json", "graph_to_json", "graph_to_resolved",
           "graph_to_spec", "parse_edge", "position_declarations", "read_graph", "read_pt", "top_edges", "upstream",
           "write_graph", "write_pt"]
