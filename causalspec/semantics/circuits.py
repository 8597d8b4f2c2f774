"""Analyse `circuit` blocks: node groups, edges, ablations (and their reference datasets),
metrics and circuit claims."""


from __future__ import annotations

from dataclasses import replace

from causalspec.codes import (E0201, E0203, E0211, E0213, E0609, E0702, E0704, E0706, E0708, E0710, E0717, E0718,
                              E0719, E0720, W0701)
from causalspec.diagnostics import Span, did_you_mean
from causalspec.semantics.conditions import ConditionAnalysis
from causalspec.semantics.context import article, join_names
from causalspec.semantics.ir import (
    CIRCUIT_CLAIMS,
    CIRCUIT_METRICS,
    CONVENTIONS,
    DEFAULT_BATCH,
    DEFAULT_CIRCUIT_PROMPTS,
    DEFAULT_SEED,
    NODE_PORTS,
    RESERVED_ENDPOINTS,
    AblationIR,
    CircuitEdgeIR,
    CircuitIR,
    ConditionIR,
    ConventionIR,
    GroupIR,
    MetricArg,
    MetricIR,
    NetworkIR,
)
from causalspec.semantics.model import CausalModel
from causalspec.semantics.networks import NetworkAnalysis
from causalspec.semantics.paths import shortformer_folder
from causalspec.semantics.sites import ALL, LAST, PositionResolver, PositionSpec, SiteSpec, site_from_ast
from causalspec.syntax import ast as A


class CircuitAnalysis(NetworkAnalysis, ConditionAnalysis):
    def _circuit(self, circ: A.Circuit) -> CircuitIR | None:
        net = self._network_ref(circ.network)
        model = self._model(circ.model)
        resolver = self.resolvers.get(circ.network.text)
        ok = net is not None and model is not None
        output_ok = False
        if model is not None:
            var = model.variables.get(circ.output.text)
            if var is None:
                self.sink.error(E0203, f"`{circ.output.text}` is not a variable of model `{model.name}`",
                                circ.output.span, "unknown variable",
                                help=did_you_mean(circ.output.text, model.variables, "variables"))
                ok = False
            elif var.kind != "output":
                self.sink.error(E0609, f"`{circ.output.text}` is {article(var.kind)}; a circuit explains an output",
                                circ.output.span, "not an output",
                                help=f"outputs of `{model.name}` are {join_names(model.outputs)}")
                ok = False
            else:
                output_ok = True
        if net is not None and model is not None:
            self._check_network_for(net, model, f"circuit `{circ.name.text}`", circ.span)
            if output_ok:
                self._check_answer(net, model, circ.output.text, circ.output.span)
        groups: dict[str, GroupIR] = {}
        declared: dict[str, Span] = {}
        node_seen: dict[SiteSpec, Span] = {}
        for stmt in circ.body:
            if isinstance(stmt, A.GroupDecl):
                g = self._group(stmt, declared, node_seen, resolver)
                if g is None:
                    ok = False
                else:
                    groups[g.name] = g
        group_names = {s.name.text for s in circ.body if isinstance(s, A.GroupDecl)}
        if not group_names:
            self.sink.error(E0706, f"circuit `{circ.name.text}` has no group", circ.name.span, "empty circuit",
                            help="declare its parts: `group movers = head[9.9], head[9.6]`")
            ok = False
        edges: list[CircuitEdgeIR] = []
        ablation: AblationIR | None = None
        granularity: A.Granularity | None = None
        metric_decl: A.MetricDecl | None = None
        metric = MetricIR("accuracy")
        conditions: list[ConditionIR] = []
        expects = 0
        settings: dict[str, A.Setting] = {}
        convention = self._convention(circ, group_names)
        if convention is None:
            ok = False
            convention = ConventionIR()
        for stmt in circ.body:
            if isinstance(stmt, A.Setting):
                if stmt.key in ("pool", "train", "steps"):
                    self.sink.error(E0704, f"`{stmt.key}` is a check setting; a circuit takes `pairs`, `seed` and "
                                    "`batch`",
                                    stmt.span, "not a circuit setting",
                                    help="`pairs` is how many prompts the circuit is evaluated on")
                    ok = False
                else:
                    ok &= self._setting(stmt, settings)
            elif isinstance(stmt, A.CircuitEdges):
                for e in stmt.edges:
                    got = self._edge(e, groups, group_names, edges)
                    if got is None:
                        ok = False
                    else:
                        edges.append(got)
            elif isinstance(stmt, A.Ablate):
                if ablation is not None:
                    self.sink.error(E0710, "a circuit has one ablation; this is the second", stmt.span,
                                    "second ablation",
                                    help="keep one `ablate complement with …` line; write another circuit to compare")
                    ok = False
                    continue
                ablation = AblationIR(stmt.kind, stmt.dataset.text if stmt.dataset else None)
                if stmt.dataset is not None:
                    ok &= self._ablation_dataset(stmt.dataset, net)
            elif isinstance(stmt, A.Granularity):
                if granularity is not None:
                    self.sink.error(E0706, "`granularity` is given twice", stmt.span, "given again",
                                    help="keep one `granularity` line")
                    ok = False
                    continue
                granularity = stmt
            elif isinstance(stmt, A.MetricDecl):
                if metric_decl is not None:
                    self.sink.error(E0706, "a circuit has one metric; this is the second", stmt.span,
                                    "second metric",
                                    help="keep one `metric` line; write another circuit for another metric")
                    ok = False
                    continue
                metric_decl = stmt
                metric_ir = self._metric(stmt, model, net, resolver, circ.output.text if output_ok else None)
                if metric_ir is None:
                    ok = False
                else:
                    metric = metric_ir
            elif isinstance(stmt, A.Expect):
                expects += 1
                for cond in stmt.conditions:
                    cond_ir = self._circuit_condition(cond, group_names)
                    if cond_ir is None:
                        ok = False
                    else:
                        conditions.append(cond_ir)
        if ablation is None:
            self.sink.error(E0710, f"circuit `{circ.name.text}` does not say how the rest of the network is "
                            "ablated", circ.name.span, "no `ablate` line",
                            help="add e.g. `ablate complement with mean over D` (a `dataset D`), `resample from D`"
                                 " or `zero`")
            ok = False
        if granularity is not None and granularity.value == "edge" and not any(
                isinstance(s, A.CircuitEdges) for s in circ.body):
            self.sink.error(E0706, "`granularity edge` needs an `edges { … }` block", granularity.span,
                            "no edges declared", help="declare the circuit's edges, or use `granularity node`")
            ok = False
        if granularity is not None and granularity.value == "edge" and net is not None and net.framework == "hf":
            folder = shortformer_folder(net.source, self.base_dir)
            if folder is not None:
                self.sink.error(E0720, f"edge granularity on network `{net.name}` ({folder.name}: a TransformerLens "
                                "attention-only model with shortformer positions) is ambiguous",
                                granularity.span, "path patching is not defined here",
                                help="the position embedding enters each head's query and key input without being "
                                     "in the residual stream or any sender's output, so cutting edges says nothing "
                                     "about it; write `granularity node`")
                ok = False
        if not expects:
            self.sink.error(E0708, f"circuit `{circ.name.text}` has no `expect`: it can never fail",
                            circ.name.span, "nothing is claimed", help="add e.g. `expect faithfulness >= 0.8`")
            ok = False
        if not ok or net is None or model is None or ablation is None:  # each None was reported (ok is False)
            return None
        given = {k: v.value for k, v in settings.items()}
        return CircuitIR(circ.name.text, net.name, model.name, circ.output.text, groups, tuple(edges), ablation,
                         granularity.value if granularity else "node", metric, tuple(conditions), circ.span,
                         prompts=given.get("pairs", DEFAULT_CIRCUIT_PROMPTS), seed=given.get("seed", DEFAULT_SEED),
                         batch=given.get("batch", DEFAULT_BATCH), convention=convention)

    def _convention(self, circ: A.Circuit, group_names: set[str]) -> ConventionIR | None:
        """The circuit's convention: `convention NAME` sets the base, `mlps …` and `input ablation …`
        override one aspect each (in any order). Warns (W0701) when nothing is stated and the
        default keeps components outside the circuit as wires."""
        stmts = [s for s in circ.body if isinstance(s, A.Convention)]
        ok = True
        seen: dict[str, A.Convention] = {}
        for s in stmts:
            if s.aspect in seen:
                what = {"convention": "`convention`", "mlps": "`mlps`", "input": "`input ablation`"}[s.aspect]
                self.sink.error(E0718, f"{what} is given twice", s.span, "given again",
                                notes=[f"first given at {seen[s.aspect].span}"], help=f"keep one {what} line")
                ok = False
                continue
            seen[s.aspect] = s
        base = ConventionIR(stated=bool(stmts))
        named = seen.get("convention")
        if named is not None:
            if named.value.text not in CONVENTIONS:
                self.sink.error(E0717, f"unknown circuit convention `{named.value.text}`", named.value.span,
                                "not a convention",
                                help=did_you_mean(named.value.text, CONVENTIONS) or
                                f"conventions are {', '.join(CONVENTIONS)}; or state one aspect: `mlps ablated`, "
                                "`input ablation token`")
                ok = False
            elif named.value.text == "mib":
                base = ConventionIR.mib()
        if "mlps" in seen:
            base = replace(base, mlps=seen["mlps"].value.text)
        if "input" in seen:
            base = replace(base, input_ablation=seen["input"].value.text)
        mlp_nodes = [(g.name.text, n) for g in circ.body if isinstance(g, A.GroupDecl) for n in g.nodes
                     if isinstance(n, A.NamedSite) and n.path[:1] == ("mlp",)]
        if base.mlps == "kept" and mlp_nodes:
            group, node = mlp_nodes[0]
            self.sink.error(E0719, f"group `{group}` names an MLP, but this circuit keeps every MLP as a wire",
                            node.span, "an MLP node",
                            notes=[f"the convention is {base.label}"],
                            help="write `mlps ablated` (or `convention mib`) to ablate the MLPs outside the circuit, "
                                 "or remove the MLP from the group")
            ok = False
        if not ok:
            return None
        if not base.stated:
            kinds = {n.path[0] for g in circ.body if isinstance(g, A.GroupDecl) for n in g.nodes
                     if isinstance(n, A.NamedSite) and n.path}
            kept = []
            if not kinds & {"mlp"}:
                kept.append("MLPs")
            if not kinds & {"head", "attn"}:
                kept.append("attention heads")
            if kept:
                self.sink.warn(W0701, f"circuit `{circ.name.text}` names no {' and no '.join(k[:-1] for k in kept)} "
                               f"node: the {' and '.join(kept)} outside it are kept as wires, not ablated "
                               "(MIB and EAP-IG ablate them)", circ.name.span, "unstated convention",
                               help="state the convention: `convention mib` to score as MIB does, or "
                                    f"`mlps kept` to keep the {' and '.join(kept)} on purpose")
        return base

    def _group(self, stmt: A.GroupDecl, declared: dict[str, Span], node_seen: dict[SiteSpec, Span],
               resolver: PositionResolver | None) -> GroupIR | None:
        name = stmt.name
        ok = True
        if name.text in RESERVED_ENDPOINTS:
            self.sink.error(E0706, f"`{name.text}` is reserved for edges; name the group differently", name.span,
                            "reserved name", help=f"call the group e.g. `{name.text}_nodes`")
            ok = False
        elif name.text in declared:
            self.sink.error(E0201, f"group `{name.text}` is declared twice", name.span, "declared again",
                            notes=[f"first declared at {declared[name.text]}"],
                            help="rename one of the two groups, or merge their sites into one")
            ok = False
        else:
            declared[name.text] = name.span
        nodes = []
        for node in stmt.nodes:
            site = site_from_ast(node, self.sink, circuit=True)
            if site is None:
                ok = False
                continue
            if site.kind == "logits":
                self.sink.error(E0706, "`logits` is not a circuit node", node.span, "the circuit's sink",
                                help="edges end at `logits`: `group -> logits`")
                ok = False
                continue
            if site in node_seen:
                self.sink.error(E0706, f"`{site}` is in two groups (or twice in one)", node.span, "listed again",
                                notes=[f"first listed at {node_seen[site]}"],
                                help="a node belongs to one group; remove it from the other")
                ok = False
                continue
            node_seen[site] = node.span
            nodes.append(site)
        positions: tuple[PositionSpec, ...] | None = (ALL,)
        if resolver is not None:
            positions = resolver.site_positions(stmt.positions)
        if not ok or positions is None:
            return None
        return GroupIR(name.text, tuple(nodes), positions, stmt.span)

    def _edge(self, e: A.CircuitEdge, groups: dict[str, GroupIR], group_names: set[str],
              edges: list[CircuitEdgeIR]) -> CircuitEdgeIR | None:
        ok = True
        for end, role in ((e.src, "src"), (e.dst, "dst")):
            n = end.name.text
            if n in RESERVED_ENDPOINTS:
                if (role, n) == ("src", "logits"):
                    self.sink.error(E0706, "`logits` is the end of the circuit: it cannot be an edge's source",
                                    end.span, "edge out of logits",
                                    help="reverse the edge: `… -> logits`")
                    ok = False
                elif (role, n) == ("dst", "embed"):
                    self.sink.error(E0706, "`embed` is the start of the circuit: it cannot be an edge's target",
                                    end.span, "edge into embed",
                                    help="reverse the edge: `embed -> …`")
                    ok = False
            elif n not in group_names:
                self.sink.error(E0213, f"unknown group `{n}`", end.name.span, "not a group of this circuit",
                                help=did_you_mean(n, list(group_names) + list(RESERVED_ENDPOINTS)) or
                                f"groups are {join_names(sorted(group_names))}; `embed` and `logits` are built in")
                ok = False
            if end.port is None:
                continue
            if role == "src":
                self.sink.error(E0706, f"a port names an input of the edge's target; `{n}.{end.port.text}` "
                                "is a source", end.port.span, "port on a source",
                                help=f"write `{n} -> target.{end.port.text}`")
                ok = False
            elif end.port.text not in NODE_PORTS:
                self.sink.error(E0706, f"unknown port `.{end.port.text}`", end.port.span, "not a port",
                                help=did_you_mean(end.port.text, NODE_PORTS) or "head inputs are q, k and v")
                ok = False
            elif n in groups and not groups[n].heads_only:
                self.sink.error(E0706, f"port `.{end.port.text}` needs a group of attention heads; `{n}` has "
                                "other nodes", end.port.span, "not a head group",
                                help=f"drop `.{end.port.text}`, or split the heads into their own group")
                ok = False
            elif n in RESERVED_ENDPOINTS:
                self.sink.error(E0706, f"`{n}` has no ports", end.port.span, "not a head group",
                                help=f"write `{n}` without `.q`/`.k`/`.v`; ports belong to attention-head groups")
                ok = False
        if not ok:
            return None
        if e.src.name.text == e.dst.name.text:
            self.sink.error(E0706, f"edge from `{e.src.name.text}` to itself", e.span, "self-loop",
                            help="an edge connects two different groups; delete this one")
            return None
        got = CircuitEdgeIR(e.src.name.text, e.dst.name.text, e.dst.port.text if e.dst.port else None, e.score)
        if got in edges:
            self.sink.error(E0706, "this edge is declared twice", e.span, "declared again",
                            help="delete the second copy")
            return None
        return got

    def _ablation_dataset(self, ref: A.Name, net: NetworkIR | None) -> bool:
        if ref.text not in self.dataset_decls:
            self.sink.error(E0211, f"unknown dataset `{ref.text}`", ref.span, "no dataset of this name",
                            help=did_you_mean(ref.text, self.dataset_decls) or
                            f"declare it: `dataset {ref.text} from Model {{ prompt \"…\" pairs 256 }}`")
            return False
        ds = self.ir.datasets.get(ref.text)
        model = self.ir.models.get(ds.model) if ds is not None else None
        if ds is not None and ds.prompt is None and net is not None and model is not None:
            # The dataset's inputs go through this network's own encoding.
            self._check_network_for(net, model, f"dataset `{ds.name}`", ds.span)
        return True

    def _metric(self, stmt: A.MetricDecl, model: CausalModel | None, net: NetworkIR | None,
                resolver: PositionResolver | None, output: str | None) -> MetricIR | None:
        """`output` is the circuit's output variable, or None when it did not resolve."""
        name = stmt.name.text
        if name not in CIRCUIT_METRICS:
            self.sink.error(E0702, f"unknown circuit metric `{name}`", stmt.name.span, "not a metric",
                            help=did_you_mean(name, CIRCUIT_METRICS) or
                            f"metrics are {', '.join(CIRCUIT_METRICS)}")
            return None
        lo, hi = CIRCUIT_METRICS[name]
        args = stmt.args or ()
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} or {hi}" if hi == lo + 1 else f"{lo} to {hi}"
            self.sink.error(E0702, f"`{name}` takes {want} argument(s), got {len(args)}", stmt.span,
                            "wrong number of arguments",
                            help="e.g. `metric logit_diff(IO, S)`: the answer for IO minus the answer for S "
                            "(`logit_diff(C, A, B)`: C's minus the larger of A's and B's)"
                            if name == "logit_diff" else
                            f"e.g. `metric {name}(IO)`: the variable whose answer is read" if lo >= 1 else
                            f"write `metric {name}` without arguments")
            return None
        ok = True
        out_args = []
        for a in args:
            if isinstance(a, A.StrLit):
                if name == "prob_greater":  # an order is only defined over the output's values
                    self.sink.error(E0702, f"`prob_greater` compares values of the output; {a.value!r} is a token "
                                    "string", a.span, "not a variable",
                                    help="pass a variable of the output's type, e.g. `metric prob_greater(YY)`")
                    ok = False
                    continue
                out_args.append(MetricArg("token", a.value))
                continue
            out_args.append(MetricArg("var", a.text))
            if model is None:
                continue
            var = model.variables.get(a.text)
            if var is None:
                self.sink.error(E0203, f"`{a.text}` is not a variable of model `{model.name}`", a.span,
                                "unknown variable", help=did_you_mean(a.text, model.variables, "variables"))
                ok = False
            elif output is None:
                continue
            elif var.domain != model.variables[output].domain:
                self.sink.error(E0702, f"`{name}({a.text})`: `{a.text}` ({var.domain.describe()}) has not the "
                                f"output's values ({model.variables[output].domain.describe()})", a.span,
                                "not an answer value", help="metric arguments are rendered as answers")
                ok = False
            elif net is not None and net.encoding.answer is None:
                self.sink.error(E0702, f"`{name}({a.text})` needs an answer template in network `{net.name}` "
                                "to turn a value into tokens", a.span, "no answer template",
                                help=f"add `answer \" {{{output}}}\"` to the network, or pass a token string")
                ok = False
        positions: tuple[PositionSpec, ...] | None = (LAST,)
        if stmt.positions is not None and resolver is not None:
            positions = resolver.site_positions(stmt.positions)
        if not ok or positions is None:
            return None
        return MetricIR(name, tuple(out_args), positions)

    def _circuit_condition(self, cond: A.Condition, group_names: set[str]) -> ConditionIR | None:
        metric, arg = cond.metric.name.text, cond.metric.arg
        if metric not in CIRCUIT_CLAIMS:
            self.sink.error(E0702, f"unknown circuit claim `{metric}`", cond.metric.name.span, "not a claim",
                            help=did_you_mean(metric, CIRCUIT_CLAIMS) or
                            "claims are faithfulness, completeness, necessity(GROUP) and minimality(GROUP)")
            return None
        ok = True
        if CIRCUIT_CLAIMS[metric] and arg is None:
            self.sink.error(E0702, f"`{metric}` needs a group: `{metric}(GROUP)`", cond.metric.span,
                            "which group?", help=f"groups are {join_names(sorted(group_names))}")
            ok = False
        elif not CIRCUIT_CLAIMS[metric] and arg is not None:
            self.sink.error(E0702, f"`{metric}` takes no argument", arg.span, "unexpected argument",
                            help=f"`{metric}` is a property of the whole circuit")
            ok = False
        elif arg is not None and arg.text not in group_names:
            self.sink.error(E0213, f"unknown group `{arg.text}`", arg.span, "not a group of this circuit",
                            help=did_you_mean(arg.text, group_names) or f"groups are {join_names(sorted(group_names))}")
            ok = False
        if cond.op not in (">=", ">"):
            self.sink.error(E0702, f"`{metric} {cond.op} …`: circuit scores are bounded from below", cond.span,
                            "use >= or >", help="every circuit score is normalised so that higher is better")
            ok = False
        ok &= self._threshold(cond)
        statistic, aggregation, modes_ok = self._modes(cond)
        if not (ok and modes_ok):
            return None
        return ConditionIR(metric, arg.text if arg is not None else None, cond.op, float(cond.threshold),
                           statistic or "point", aggregation or "each", cond.span)
