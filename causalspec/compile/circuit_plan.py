"""Compile a circuit claim into a plan: the prompts it is evaluated on, the reference
prompts its ablation draws from, and the circuit as nodes and edges of the network's graph.

Vocabulary (shared by the engine, the scores, the reports and the circuit files):

* a **node** is one attention head (`head[L.H]`, file name `a{L}.h{H}`) or one MLP (`mlp[L]`,
  `m{L}`) — the units a circuit keeps or ablates. `attn[L]` is every head of layer L;
  `head[L.H].z` / `.result` are that head; `attn.out[L]` / `mlp.out[L]` are `attn[L]` /
  `mlp[L]`. Embeddings are the graph's input (`embed`, file name `input`), never ablated as
  a node (edges out of `embed` can be cut, see the engine). The expansion of `attn[L]` needs
  the head count, so nodes are resolved against the architecture at run time
  (`resolve_nodes`), where an index out of range is an error naming the architecture.
* a **member** is a node together with the positions where it belongs to the circuit (the
  group's `@ …`, default every position). Outside those positions the node is ablated.
* the **universe** is the set of node kinds the circuit's complement is taken over. Under the
  default convention: heads if the circuit names any attention node, MLPs if it names any
  MLP; kinds it does not name are kept and act as wires (the convention of Wang et al. 2022
  for IOI: only heads are ablated, MLPs and embeddings are always present). The circuit's
  `convention` (semantics.ir.ConventionIR) can ablate both kinds (`convention mib`,
  `mlps ablated`) or keep MLPs (`mlps kept`); under `mib` dangling edges are also pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Union

import numpy as np

from causalspec.errors import CheckError
from causalspec.semantics.ir import CircuitIR, DatasetIR, EncodingIR, NetworkIR, PromptIR, SpecIR
from causalspec.semantics.model import CausalModel
from causalspec.semantics.sampling import sample_inputs
from causalspec.semantics.sites import ALL, PositionSpec, SiteSpec

HEAD, MLP = "head", "mlp"
EMBED, LOGITS = "embed", "logits"
PORTS = ("q", "k", "v")


class CircuitPlanError(CheckError, ValueError):
    """A circuit that cannot be evaluated as written (reported as a check-time error)."""


@dataclass(frozen=True, order=True)
class Node:
    """One head or MLP. Ordered as the forward pass computes them (layer, heads, then MLP)."""

    layer: int
    rank: int  # 0: attention head, 1: MLP (within a layer heads come first)
    head: int = -1

    @classmethod
    def attention(cls, layer: int, head: int) -> Node:
        return cls(layer, 0, head)

    @classmethod
    def mlp(cls, layer: int) -> Node:
        return cls(layer, 1)

    @property
    def kind(self) -> str:
        return HEAD if self.rank == 0 else MLP

    @property
    def name(self) -> str:
        """The MIB / EAP-IG name: `a9.h9`, `m3`."""
        return f"a{self.layer}.h{self.head}" if self.kind == HEAD else f"m{self.layer}"

    def __str__(self) -> str:
        """The spec spelling: `head[9.9]`, `mlp[3]`."""
        return f"head[{self.layer}.{self.head}]" if self.kind == HEAD else f"mlp[{self.layer}]"


def parse_node_name(name: str) -> Node | str:
    """`a9.h9` -> head, `m3` -> MLP, `input` -> EMBED, `logits` -> LOGITS; ValueError otherwise."""
    text = name.strip()
    if text in ("input", EMBED):
        return EMBED
    if text == LOGITS:
        return LOGITS
    try:
        if text.startswith("a") and ".h" in text:
            layer, head = text[1:].split(".h", 1)
            return Node.attention(int(layer), int(head))
        if text.startswith("m"):
            return Node.mlp(int(text[1:]))
    except ValueError:
        pass
    raise ValueError(f"`{name}` is not a node name (expected `a<L>.h<H>`, `m<L>`, `input` or `logits`)")


@dataclass(frozen=True)
class Member:
    node: Node
    positions: tuple[PositionSpec, ...] = (ALL,)
    group: str = ""

    @property
    def everywhere(self) -> bool:
        return ALL in self.positions


@dataclass(frozen=True)
class Arch:
    """The architecture facts node resolution needs."""

    layers: int
    heads: int
    family: str = ""
    parallel: bool = False  # attention and MLP of a layer both read resid.pre (NeoX parallel residual)
    d_model: int = 0  # 0: unknown


def upstream(src: Node | str, dst: Node | str, port: str | None, arch: Arch) -> bool:
    """Whether `src` can feed `dst` (its input `port`) in the forward pass: one rule for the
    engine's path patching, the file import/export and the whole-universe guard.

    A head reads the residual stream before its own layer, so only earlier layers feed it; an
    MLP also reads its own layer's attention, except under a parallel residual (NeoX), where
    both read resid.pre. `embed` feeds every node and `logits` reads them all."""
    if not isinstance(src, Node) or not isinstance(dst, Node):
        return True
    if dst.kind == HEAD:
        return src.layer < dst.layer
    if src.kind == HEAD:
        return src.layer < dst.layer or (src.layer == dst.layer and not arch.parallel)
    return src.layer < dst.layer


def site_nodes(site: SiteSpec, arch: Arch) -> list[Node] | None:
    """The nodes a group entry stands for (None: `embed`, always kept). Raises CircuitPlanError."""
    kind = site.kind
    if kind == "embed":
        return None
    if kind in ("head", "head.z", "head.result"):
        node = Node.attention(_layer(site), _head(site))
    elif kind in ("attn", "attn.out"):
        _check_layer(site, arch)
        return [Node.attention(_layer(site), h) for h in range(arch.heads)]
    elif kind in ("mlp", "mlp.out"):
        node = Node.mlp(_layer(site))
    elif kind in ("head.q", "head.k", "head.v"):
        raise CircuitPlanError(f"`{site}` is an input of a head, not a circuit node: list the head "
                               f"(`head[{site.layer}.{site.head}]`) and route to its input with an edge "
                               f"(`… -> GROUP.{kind[-1]}`)")
    else:
        raise CircuitPlanError(f"`{site}` cannot be evaluated as a circuit node: circuit evaluation "
                               "ablates heads (`head[L.H]`, `attn[L]`) and MLPs (`mlp[L]`)")
    _check_layer(site, arch)
    if node.kind == HEAD and node.head is not None and not 0 <= node.head < arch.heads:
        raise CircuitPlanError(f"`{site}`: head {node.head} out of range ({arch.family or 'the network'} has "
                               f"{arch.heads} heads per layer, 0..{arch.heads - 1})")
    return [node]


def _layer(site: SiteSpec) -> int:
    """A layered site's layer (the site kinds a circuit node comes from all have one)."""
    if site.layer is None:
        raise CircuitPlanError(f"`{site}` names no layer, so it cannot be a circuit node")
    return site.layer


def _head(site: SiteSpec) -> int:
    if site.head is None:
        raise CircuitPlanError(f"`{site}` names no head, so it cannot be a head node")
    return site.head


def _check_layer(site: SiteSpec, arch: Arch) -> None:
    if not 0 <= _layer(site) < arch.layers:
        raise CircuitPlanError(f"`{site}`: layer {site.layer} out of range ({arch.family or 'the network'} has "
                               f"{arch.layers} layers, 0..{arch.layers - 1})")


# an edge circuit's receiver: (head, port q|k|v), (mlp, None), or LOGITS
Receiver = Union[tuple[Node, str | None], str]


@dataclass(frozen=True)
class ResolvedCircuit:
    """A circuit's groups as members, its edges between nodes, and its universe."""

    groups: dict[str, tuple[Member, ...]]
    universe: frozenset[str]  # {HEAD, MLP} subset
    # edge granularity: receiver -> allowed senders. Receivers are (Node, port) for heads
    # (port q|k|v), (Node, None) for MLPs, LOGITS; senders are Nodes or EMBED.
    edges: dict[Receiver, frozenset[Node | str]] | None = None
    embed_gated: bool = False  # some edge names `embed`: receivers without one see ablated embeddings
    notes: tuple[str, ...] = ()
    # (receiver, sender) -> the `: score` of the spec edge it comes from (circuit files carry it)
    scores: dict[tuple[Receiver, Node | str], float] = field(default_factory=dict)

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(m for ms in self.groups.values() for m in ms)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(sorted({m.node for m in self.members}))

    def without(self, names: Iterable[str]) -> ResolvedCircuit:
        """The circuit with these groups removed (their nodes ablated, their edges gone)."""
        names = set(names)
        groups = {g: ms for g, ms in self.groups.items() if g not in names}
        kept = {m.node for ms in groups.values() for m in ms}
        edges = None
        if self.edges is not None:
            edges = {r: frozenset(s for s in senders if s == EMBED or s in kept)
                     for r, senders in self.edges.items() if r == LOGITS or r[0] in kept}
        return replace(self, groups=groups, edges=edges)

    def without_node(self, node: Node) -> ResolvedCircuit:
        groups = {g: tuple(m for m in ms if m.node != node) for g, ms in self.groups.items()}
        edges = None
        if self.edges is not None:
            edges = {r: frozenset(s for s in senders if s != node)
                     for r, senders in self.edges.items() if r == LOGITS or r[0] != node}
        return replace(self, groups=groups, edges=edges)


def resolve_circuit(circuit: CircuitIR, arch: Arch) -> ResolvedCircuit:
    """Expand groups into members and group edges into node edges (see the module docstring)."""
    groups: dict[str, tuple[Member, ...]] = {}
    notes: list[str] = []
    seen: dict[Node, str] = {}
    for name, g in circuit.groups.items():
        members = []
        for site in g.nodes:
            nodes = site_nodes(site, arch)
            if nodes is None:
                notes.append(f"group `{name}` lists `embed`: embeddings are the graph's input and are never "
                             "ablated as a node" + (" (edges out of `embed` are cut or kept per edge)"
                                                     if circuit.granularity == "edge" else ""))
                continue
            for node in nodes:
                if node in seen:
                    raise CircuitPlanError(f"{node} is in group `{seen[node]}` and in group `{name}` "
                                           f"(through `{site}`)")
                seen[node] = name
                members.append(Member(node, g.positions, name))
        groups[name] = tuple(members)
    kinds = {m.node.kind for ms in groups.values() for m in ms}
    if not kinds:
        raise CircuitPlanError(f"circuit `{circuit.name}` has no head or MLP node to keep")
    convention = circuit.convention
    universe = set(kinds)
    if convention.heads == "ablated":
        universe.add(HEAD)
    if convention.mlps == "ablated":
        universe.add(MLP)
    elif convention.mlps == "kept":
        universe.discard(MLP)
    edges: dict[Receiver, frozenset[Node | str]] | None = None
    scores: dict[tuple[Receiver, Node | str], float] = {}
    embed_gated = False
    if circuit.granularity == "edge":
        edges = {}
        embed_gated = convention.embed_edges == "always" or any(e.src == EMBED for e in circuit.edges)
        for e in circuit.edges:
            senders: list[Node | str] = [EMBED] if e.src == EMBED else [m.node for m in groups[e.src]]
            receivers: list[Receiver]
            if e.dst == LOGITS:
                receivers = [LOGITS]
            else:
                receivers = []
                for m in groups[e.dst]:
                    if m.node.kind == HEAD:
                        receivers += [(m.node, p) for p in ((e.port,) if e.port else PORTS)]
                    else:
                        receivers.append((m.node, None))
            for r in receivers:
                edges[r] = edges.get(r, frozenset()) | frozenset(senders)
                if e.score is not None:
                    for s in senders:
                        _score(scores, (r, s), e.score)
        if convention.prune:
            pruned = prune_edges(edges)
            dropped = sum(len(v) for v in edges.values()) - sum(len(v) for v in pruned.values())
            if dropped:
                notes.append(f"{dropped} dangling node-level edge(s) pruned (convention {convention.label}: edges "
                             "out of a node that receives no edge, or into a node that sends none, are dropped as "
                             "EAP-IG's Graph.prune does)")
            edges = pruned
            scores = {(r, s): v for (r, s), v in scores.items() if s in pruned.get(r, ())}
    return ResolvedCircuit(groups, frozenset(universe), edges, embed_gated, tuple(notes), scores)


def _score(scores: dict, key: tuple, value: float) -> None:
    """One score per node-level edge: two spec edges that expand to the same one must agree."""
    if key in scores and scores[key] != value:
        receiver, sender = key
        to = receiver if receiver == LOGITS else f"{receiver[0]}" + (f".{receiver[1]}" if receiver[1] else "")
        raise CircuitPlanError(f"the edge {sender} -> {to} gets two scores ({scores[key]!r} and {value!r}) from "
                               "two edges of the circuit; give it one")
    scores[key] = value


def prune_edges(edges: dict) -> dict:
    """EAP-IG's `Graph.prune` on node-level edges (receiver -> senders): repeatedly, a node
    (head or MLP) stays only if it sends an edge and receives one (the input always counts as
    receiving; the logits always stay), and an edge stays only if both ends stay. Receivers
    are LOGITS or (node, port); senders are nodes or EMBED."""
    current = {r: frozenset(s) for r, s in edges.items() if s}
    while True:
        sends = {s for senders in current.values() for s in senders}
        receives = {r[0] for r in current if r != LOGITS}
        alive = {n for n in sends | receives if n == EMBED or (n in sends and n in receives)}
        alive.add(EMBED)
        nxt = {}
        for r, senders in current.items():
            if r != LOGITS and r[0] not in alive:
                continue
            kept = frozenset(s for s in senders if s in alive)
            if kept:
                nxt[r] = kept
        if nxt == current:
            return current
        current = nxt


# ───────────────────────── prompts ─────────────────────────

@dataclass
class ReferencePlan:
    """The reference prompts of a `mean over D` / `resample from D` ablation."""

    dataset: DatasetIR
    model: CausalModel
    network: NetworkIR  # the circuit's network with the dataset's prompt (if it has one)
    rows: dict[str, np.ndarray]

    @property
    def output(self) -> str:
        return self.model.outputs[0]


@dataclass
class CircuitPlan:
    circuit: CircuitIR
    model: CausalModel
    network: NetworkIR
    rows: dict[str, np.ndarray]  # the evaluation prompts (model inputs, array representation)
    prompts: int
    seed: int
    reference: ReferencePlan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.circuit.output


def compile_circuit(ir: SpecIR, circuit: CircuitIR, pairs: int | None = None, seed: int | None = None) -> CircuitPlan:
    """Sample the prompts a circuit is evaluated on and the reference prompts of its ablation.

    `pairs`/`seed` override the circuit's own settings (CLI `--pairs`/`--seed`); the reference
    dataset keeps its own `pairs` and `seed`, so a circuit's ablation values do not change
    when fewer prompts are evaluated.
    """
    model = ir.models[circuit.model]
    network = ir.networks[circuit.network]
    n = int(pairs if pairs is not None else circuit.prompts)
    seed = int(seed if seed is not None else circuit.seed)
    rows = dict(getattr(s := sample_inputs(model, n, np.random.default_rng(seed)), "inputs", s))
    plan = CircuitPlan(circuit, model, network, rows, n, seed)
    ablation = circuit.ablation
    if ablation.dataset is not None:
        ds = ir.datasets[ablation.dataset]
        ref_model = ir.models[ds.model]
        ref_net = network
        if ds.prompt is not None:
            ref_net = replace(network, encoding=EncodingIR(prompt=ds.prompt, answer=network.encoding.answer,
                                                           positions=dict(network.encoding.positions)))
        sample = sample_inputs(ref_model, int(ds.pairs), np.random.default_rng(int(ds.seed)))
        plan.reference = ReferencePlan(ds, ref_model, ref_net, dict(getattr(sample, "inputs", sample)))
    return plan


def describe_prompt(prompt: PromptIR | None) -> str:
    if prompt is None:
        return "the network's prompt"
    if prompt.template is not None:
        return repr(prompt.template.text)
    return f"{len(prompt.cases)} templates by `{prompt.by}`"


__all__ = ["Arch", "CircuitPlan", "CircuitPlanError", "EMBED", "HEAD", "LOGITS", "MLP", "Member", "Node", "PORTS",
           "ReferencePlan", "ResolvedCircuit", "compile_circuit", "parse_node_name", "prune_edges", "resolve_circuit",
           "site_nodes", "upstream"]
