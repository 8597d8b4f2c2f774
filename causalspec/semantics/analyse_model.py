"""Analyse one `model` block: resolve types, compile mechanisms, build and check the graph,
check domains exhaustively (or on a large sample), and check `example` lines.

Why collect instead of stopping: a researcher fixing a spec wants every problem at once;
each step records diagnostics in the sink and continues with what is still sound.
"""

from __future__ import annotations

import heapq
import itertools
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import numpy as np
else:  # numpy loads when a value is first computed (lazy_numpy.py)
    from causalspec.semantics import lazy_numpy

    np = lazy_numpy.numpy.bind(globals(), "np")

from causalspec.codes import (
    E0201,
    E0202,
    E0203,
    E0221,
    E0301,
    E0302,
    E0303,
    E0305,
    E0306,
    E0307,
    E0308,
    E0309,
    E0310,
    E0311,
    E0401,
    E0402,
    E0403,
    E0404,
    E0405,
    E0406,
    E0501,
    E0502,
    E0503,
    E0504,
    E0505,
    E0801,
    E0802,
)
from causalspec.diagnostics import DiagnosticSink, Span, did_you_mean
from causalspec.semantics.domains import Domain
from causalspec.semantics.families import expand_model
from causalspec.semantics.expr import INT_LIMIT, Compiled, ExprCompiler, Table
from causalspec.semantics.file_access import note_outside
from causalspec.semantics.model import CausalModel, Distribution, Example, Variable, build_graph
from causalspec.syntax import ast as A
from causalspec.semantics.paths import missing_path_help

# Up to this many input combinations the domain check enumerates all of them; above it,
# a seeded sample of DOMAIN_SAMPLE inputs is checked (and the diagnostic says so).
EXHAUSTIVE_LIMIT = 250_000
DOMAIN_SAMPLE = 20_000
# A table is a dense array over all its key combinations.
TABLE_LIMIT = 1_000_000


def analyse_model(model: A.Model, sink: DiagnosticSink, base_dir: Path) -> CausalModel | None:
    errors = len(sink.errors)
    expanded, families = expand_model(model, sink)  # families, consts, aggregates -> plain variables
    if len(sink.errors) > errors:
        return None
    cm = _ModelAnalyser(expanded, sink, base_dir).run()
    if cm is not None:
        cm.families = families
    return cm


class _ModelAnalyser:
    def __init__(self, model: A.Model, sink: DiagnosticSink, base_dir: Path):
        self.ast = model
        self.sink = sink
        self.base_dir = base_dir
        self.domains: dict[str, Domain] = {}
        self.tables: dict[str, Table] = {}
        self.vars: dict[str, Variable] = {}
        self.decl_spans: dict[str, Span] = {}
        self.var_asts: dict[str, A.VarDecl] = {}
        self.input_asts: dict[str, A.InputDecl] = {}
        self.errors_before = len(sink.errors)
        self._shared_compiler: ExprCompiler | None = None  # built once, by _compiler
        # per mechanism, the static range of every int value it computes (see _check_value_ranges)
        self.int_ranges: dict[str, tuple[int, int]] = {}

    # driver ------------------------------------------------------------------------
    def run(self) -> CausalModel | None:
        body = self.ast.body
        for stmt in body:
            if isinstance(stmt, A.DomainDecl):
                self._declare(stmt.name)
                dom = self.resolve_type(stmt.type, stmt.name.text)
                if dom is not None:
                    self.domains[stmt.name.text] = dom
        for stmt in body:
            if isinstance(stmt, A.TableDecl):
                self._declare(stmt.name)
        for stmt in body:
            if isinstance(stmt, A.InputDecl):
                dom = self.resolve_type(stmt.type)
                # reported, and the input kept (real): its readers are not reported as unknown names
                self._finite(dom, stmt.type, "an input",
                             "inputs are sampled from a finite domain: declare it `int lo..hi`, or compute "
                             "the real from discrete inputs with a `var` (e.g. `var r : real = k / 4`)")
                dist = self._distribution(stmt, dom) if dom is not None else None
                for name in stmt.names:
                    self._declare(name)
                    if dom is not None:
                        self.vars[name.text] = Variable(name.text, "input", dom, name.span, distribution=dist)
                        self.input_asts[name.text] = stmt
            elif isinstance(stmt, A.VarDecl):
                self._declare(stmt.name)
                dom = self.resolve_type(stmt.type)
                if dom is not None:
                    self.vars[stmt.name.text] = Variable(stmt.name.text, stmt.kind, dom, stmt.name.span)
                    self.var_asts[stmt.name.text] = stmt
        for stmt in body:
            if isinstance(stmt, A.TableDecl):
                self._table(stmt)

        self.enum_members = self._enum_members()
        self._compile_mechanisms()
        constraints = self._compile_constraints()
        order = self._order()
        balanced = self._balanced()
        if not any(v.kind == "output" for v in self.vars.values()) and len(self.sink.errors) == self.errors_before:
            self.sink.error(E0405, f"model `{self.ast.name.text}` has no output", self.ast.name.span,
                            "declare one with `output NAME : TYPE = …`",
                            help="the output is what the network's behaviour is compared with")
        if len(self.sink.errors) > self.errors_before or order is None:
            return None
        cm = CausalModel(self.ast.name.text, self.ast.span, self.vars, order, constraints,
                         balanced, [], self.tables, self.domains, self.ast)
        self._check_constraints_satisfiable(cm)
        self._check_value_ranges(cm)
        cm.examples = self._examples(cm)
        if len(self.sink.errors) > self.errors_before:
            return None
        return cm

    # declarations ------------------------------------------------------------------
    def _declare(self, name: A.Name) -> None:
        if name.text in self.decl_spans:
            first = self.decl_spans[name.text]
            self.sink.error(E0201, f"`{name.text}` is declared twice in model `{self.ast.name.text}`",
                            name.span, "declared again here", notes=[f"first declared at {first}"],
                            help=f"rename one of them, or delete the second declaration of `{name.text}`")
        else:
            self.decl_spans[name.text] = name.span

    def resolve_type(self, t: A.TypeExpr, domain_name: str | None = None) -> Domain | None:
        if isinstance(t, A.BoolType):
            return Domain.boolean()
        if isinstance(t, A.RealType):
            return Domain.real()
        if isinstance(t, A.IntType):
            if not isinstance(t.lo, int) or not isinstance(t.hi, int):  # a const bound left unexpanded
                return None
            if t.lo > t.hi:
                self.sink.error(E0302, f"integer range {t.lo}..{t.hi} is empty", t.span, "lo > hi",
                                help=f"write `int {t.hi}..{t.lo}`")
                return None
            if max(abs(t.lo), abs(t.hi)) > INT_LIMIT:
                self.sink.error(E0302, f"integer range {t.lo}..{t.hi} has bounds beyond 2^62", t.span,
                                "too large", help="a finite model needs small ranges, e.g. `int 0..99`")
                return None
            if t.hi - t.lo >= 1_000_000:
                self.sink.error(E0302, f"integer range {t.lo}..{t.hi} is too large for a finite model "
                                f"(over a million values)", t.span, "too many values",
                                help="narrow the range (every value is enumerated or sampled); an enum or a "
                                     "coarser int often states the hypothesis better")
                return None
            return Domain.integers(t.lo, t.hi, domain_name)
        if isinstance(t, A.EnumType):
            return self._enum(list(t.members), t.span, domain_name)
        if isinstance(t, A.EnumFileType):
            return self._enum_file(t, domain_name)
        if isinstance(t, A.NamedType):
            dom = self.domains.get(t.name.text)
            if dom is None:
                self.sink.error(E0202, f"unknown type or domain `{t.name.text}`", t.name.span,
                                "not declared", help=did_you_mean(t.name.text, list(self.domains) +
                                                                  ["bool", "int", "enum"], "types"))
            return dom
        raise TypeError(type(t))  # pragma: no cover

    def _enum(self, members: list[str], span: Span, name: str | None) -> Domain | None:
        seen: set[str] = set()
        for m in members:
            if m in seen:
                self.sink.error(E0309, f"enum value `{m}` appears twice", span, "duplicate value",
                                help=f"delete the second `{m}`; enum values must be distinct")
                return None
            seen.add(m)
        if not members:
            self.sink.error(E0302, "an enum needs at least one value", span, "empty enum",
                            help="list its values, e.g. `enum { red, green }`, or put one per line in the file")
            return None
        return Domain.enum(members, name)

    def _enum_file(self, t: A.EnumFileType, name: str | None) -> Domain | None:
        path = Path(t.path)
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.sink.error(E0801, f"enum file `{t.path}` not found", t.span, f"looked for {path}",
                            help=missing_path_help(t.path, path))
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.sink.error(E0802, f"cannot read enum file `{t.path}`: {exc}", t.span, "unreadable",
                            help="point at a UTF-8 text file with one enum value per line")
            return None
        note_outside(self.sink, "`enum from` file", t.path, path, self.base_dir, t.span)
        members = [line.strip() for line in text.splitlines()]
        members = [m for m in members if m and not m.startswith("#")]
        return self._enum(members, t.span, name)

    def _distribution(self, stmt: A.InputDecl, dom: Domain) -> Distribution:
        dist = stmt.distribution
        if dist is None or isinstance(dist, A.Uniform):
            return Distribution(None)
        weights = np.zeros(dom.size)
        for w in dist.weights:
            value = _literal_value(w.value)
            member = dom.lookup(value)
            if member is None:
                self.sink.error(E0303, f"{_show(value)} is not a value of {dom.describe()}", w.value.span,
                                "outside the domain", help=_suggest(value, dom))
                continue
            if not (math.isfinite(w.weight) and w.weight > 0):
                self.sink.error(E0306, f"weight {w.weight} must be a positive number", w.span, "bad weight",
                                help="weights are relative positive numbers; leave a value out to never sample it")
                continue
            idx = dom.values.index(member)
            if weights[idx] > 0:
                self.sink.error(E0306, f"value {_show(value)} has two weights", w.span, "weighted twice",
                                help="give each value one weight; delete the second")
            weights[idx] = w.weight
        peak = weights.max() if weights.size else 0.0
        if peak > 0:
            weights = weights / peak  # weights near 1e308 would overflow the sum
        total = weights.sum()
        return Distribution(weights / total if total > 0 else None)

    def _finite(self, dom: Domain | None, t: A.TypeExpr, what: str, help: str) -> Domain | None:
        """`dom`, or None with E0221 when it is `real` (a type that has no finite list of values)."""
        if dom is not None and dom.is_real:
            self.sink.error(E0221, f"{what} cannot be `real`", t.span, "a real type", help=help)
            return None
        return dom

    def _table(self, stmt: A.TableDecl) -> None:
        table_help = "a table lists its entries, so keys and values need finite types; compute a real from " \
                     "a table's int value with `/` instead (e.g. `score[x] / 4`)"
        maybe_keys = [self._finite(self.resolve_type(t), t, "a table key", table_help) for t in stmt.key_types]
        value_domain = self._finite(self.resolve_type(stmt.value_type), stmt.value_type, "a table value",
                                    table_help)
        key_domains = [d for d in maybe_keys if d is not None]
        if value_domain is None or len(key_domains) < len(maybe_keys):  # reported by resolve_type/_finite
            return
        shape = tuple(d.size for d in key_domains)
        if math.prod(shape) > TABLE_LIMIT:
            self.sink.error(E0302, f"table `{stmt.name.text}` has {math.prod(shape)} key combinations, "
                            f"too many for a finite model (over {TABLE_LIMIT})", stmt.name.span,
                            "too many keys", help="narrow the key types")
            return
        values = np.zeros(shape, dtype=value_domain.dtype())
        filled = np.zeros(shape, dtype=bool)
        default = None
        for entry in stmt.entries:
            value = _literal_value(entry.value)
            member = value_domain.lookup(value)
            if member is None:
                self.sink.error(E0307, f"table value {_show(value)} is not in {value_domain.describe()}",
                                entry.value.span, "outside the value type", help=_suggest(value, value_domain) or
                                f"table values must be of {value_domain.describe()}")
                continue
            encoded = value_domain.encode_one(member)
            if entry.keys is None:
                if default is not None:
                    self.sink.error(E0309, "table has two default entries `_`", entry.span, "second default",
                                    help="keep one `_: value` default entry")
                default = encoded
                continue
            if len(entry.keys) != len(key_domains):
                self.sink.error(E0307, f"table `{stmt.name.text}` has {len(key_domains)} key(s), this entry "
                                f"has {len(entry.keys)}", entry.span, "wrong key count",
                                help=f"write {len(key_domains)} key(s) per entry"
                                     + (", in parentheses: `(k1, k2): value`" if len(key_domains) > 1 else ""))
                continue
            idx = []
            for key, dom in zip(entry.keys, key_domains):
                member = dom.lookup(_literal_value(key))
                if member is None:
                    self.sink.error(E0307, f"table key {_show(_literal_value(key))} is not in {dom.describe()}",
                                    key.span, "outside the key type",
                                    help=_suggest(_literal_value(key), dom) or f"keys must be of {dom.describe()}")
                    break
                idx.append(dom.values.index(member))
            else:
                tup = tuple(idx)
                if filled[tup]:
                    self.sink.error(E0309, f"table key {_show_keys(entry.keys)} appears twice", entry.span,
                                    "duplicate key", help="give each key one entry; delete the second")
                values[tup] = encoded
                filled[tup] = True
        if default is not None:
            values[~filled] = default
        elif not filled.all():
            missing = np.argwhere(~filled)[0]
            example = ", ".join(_show(d.values[i]) for d, i in zip(key_domains, missing))
            self.sink.error(E0308, f"table `{stmt.name.text}` has no entry for ({example}) and no default",
                            stmt.name.span, f"{int((~filled).sum())} key(s) missing",
                            help="add a default entry `_: value`")
        self.tables[stmt.name.text] = Table(stmt.name.text, tuple(key_domains), value_domain, values)

    def _enum_members(self) -> dict[str, list[Domain]]:
        members: dict[str, list[Domain]] = {}
        doms = [v.domain for v in self.vars.values()] + list(self.domains.values())
        doms += [t.value_domain for t in self.tables.values()]
        doms += [d for t in self.tables.values() for d in t.key_domains]
        for dom in doms:
            if dom.kind != "enum":
                continue
            for m in dom.values:
                lst = members.setdefault(m, [])
                if dom not in lst:
                    lst.append(dom)
        return members

    # mechanisms ----------------------------------------------------------------------
    def _compiler(self, context: str) -> ExprCompiler:
        # One compiler (and one name -> domain map) for every mechanism and constraint: the
        # variables are all declared before any expression is compiled; rebuilding the map per
        # variable made analysis quadratic in the model's size (8,000 variables took seconds),
        # and one compiler keeps its per-variable reference cache across mechanisms.
        comp = self._shared_compiler
        if comp is None:
            domains = {k: v.domain for k, v in self.vars.items()}
            comp = self._shared_compiler = ExprCompiler(self.sink, domains, self.tables, self.enum_members, context)
        comp.context = context
        comp.expected = None
        comp.real_types = {}
        comp.one_row = True
        return comp

    def _compile_mechanisms(self) -> None:
        real_types: dict = {}  # static ranges of the real variables compiled so far (declaration order)
        has_examples = any(isinstance(s, A.ExampleDecl) for s in self.ast.body)
        for name, decl in self.var_asts.items():
            var = self.vars[name]
            comp = self._compiler(f"mechanism of `{name}`")
            comp.one_row = has_examples  # only `example` lines run mechanisms one row at a time
            comp.expected = var.domain
            comp.real_types = real_types
            comp.int_lo = comp.int_hi = 0
            compiled = comp.coerce(comp.compile(decl.expr), var.domain, f"mechanism of `{name}`")
            self.int_ranges[name] = (comp.int_lo, comp.int_hi)
            if var.domain.is_real and compiled.ty.kind == "real":
                real_types[name] = compiled.ty
            var.mechanism = compiled
            var.parents = tuple(sorted(compiled.names))

    def _compile_constraints(self) -> list[Compiled]:
        out = []
        done: set[int] = set()
        for decl in self.input_asts.values():
            if decl.where is None or id(decl) in done:
                continue
            done.add(id(decl))
            comp = self._compiler("`where` constraint")
            compiled = comp.compile(decl.where)
            if compiled.ty.kind not in ("bool", "error"):
                self.sink.error(E0301, f"`where` constraint must be bool, got {compiled.ty.describe()}",
                                decl.where.span, "not a condition",
                                help="write a comparison, e.g. `where a != b`")
                continue
            non_inputs = sorted(n for n in compiled.names if n in self.vars and not self.vars[n].is_input)
            if non_inputs:
                self.sink.error(E0301, f"`where` constraint uses `{non_inputs[0]}`, which is not an input",
                                decl.where.span, "constraints may use inputs only",
                                help="constrain inputs; derived variables follow from them")
                continue
            out.append(compiled)
        return out

    # graph -----------------------------------------------------------------------------
    def _order(self) -> tuple[str, ...] | None:
        """The variables in topological order, declaration order breaking ties (Kahn's
        algorithm with a heap of declaration indices: networkx's lexicographical_topological_sort,
        written out so that analysis does not import networkx, and over integer indices:
        graphlib's sorter cost a tenth of analysing a 10,000-variable model); None, with
        E0401, on a cycle."""
        parents = {name: [p for p in var.parents if p in self.vars] for name, var in self.vars.items()}
        self._check_declared_edges(parents)
        names = list(self.vars)
        index = {n: i for i, n in enumerate(names)}
        children: list[list[int]] = [[] for _ in names]
        waiting = [0] * len(names)  # parents not placed yet
        for i, name in enumerate(names):
            for p in parents[name]:
                children[index[p]].append(i)
            waiting[i] = len(parents[name])
        ready = [i for i, w in enumerate(waiting) if w == 0]  # ascending: already a heap
        order: list[str] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(names[i])
            for j in children[i]:
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) == len(names):
            return tuple(order)
        # only a cyclic model pays for networkx: find_cycle names the cycle the way earlier
        # versions reported it (same start, same located variable)
        import networkx as nx

        cycle = nx.find_cycle(build_graph(self.ast.name.text, self.vars))
        path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        first = cycle[0][1]
        self.sink.error(E0401, f"cycle in model `{self.ast.name.text}`: {path}", self.vars[first].span,
                        "part of a cycle", help="a mechanism may not depend on itself, directly or not")
        return None

    def _check_declared_edges(self, parents: dict[str, list[str]]) -> None:
        blocks = [s for s in self.ast.body if isinstance(s, A.EdgesDecl)]
        if not blocks:
            return
        declared: dict[tuple[str, str], A.Edge] = {}
        for block in blocks:
            for e in block.edges:
                bad = [n for n in (e.src, e.dst) if n.text not in self.vars]
                for n in bad:
                    self.sink.error(E0404, f"edge endpoint `{n.text}` is not a variable of model "
                                    f"`{self.ast.name.text}`", n.span, "unknown variable",
                                    help=did_you_mean(n.text, self.vars, "variables"))
                if not bad:
                    declared[(e.src.text, e.dst.text)] = e
        for (u, v), e in declared.items():
            if self.vars[v].is_input:
                self.sink.error(E0406, f"edge into input `{v}`: inputs have no parents", e.span,
                                "inputs are sampled, not computed",
                                help=f"remove `{u} -> {v}`, or make `{v}` a `var` computed from `{u}`")
            elif u not in parents[v]:
                self.sink.error(E0402, f"declared edge {u} -> {v} is not used by the mechanism of `{v}`",
                                e.span, "unused edge", help=f"remove it, or use `{u}` in `{v}`'s mechanism")
        for v, ps in parents.items():
            missing = [u for u in ps if (u, v) not in declared]
            if missing:
                decl = self.var_asts[v]
                edges = "; ".join(f"{u} -> {v}" for u in missing)
                self.sink.error(E0403, f"the mechanism of `{v}` uses {', '.join(f'`{u}`' for u in missing)}, "
                                f"missing from edges {{}}", decl.expr.span, "undeclared parent(s)",
                                help=f"add `{edges}` to edges {{}}")

    def _balanced(self) -> str | None:
        decls = [s for s in self.ast.body if isinstance(s, A.SampleDecl)]
        if len(decls) > 1:
            self.sink.error(E0201, "`sample balanced` is given twice", decls[1].span, "second sampling rule",
                            help="a model balances one variable; keep one `sample balanced` line")
        if not decls:
            return None
        name = decls[0].balanced_on
        var = self.vars.get(name.text)
        if var is None:
            self.sink.error(E0203, f"unknown variable `{name.text}` in `sample balanced`", name.span,
                            "not declared", help=did_you_mean(name.text, self.vars, "variables"))
            return None
        if var.is_input:
            self.sink.error(E0311, f"`sample balanced {name.text}`: `{name.text}` is an input",
                            name.span, "balance a computed variable",
                            help="inputs are sampled from their distribution; balance an output or var")
            return None
        if var.domain.is_real:
            self.sink.error(E0221, f"`sample balanced {name.text}`: `{name.text}` is real", name.span,
                            "a real variable", help="balancing draws inputs per value of a finite domain; "
                            "balance a discrete variable the real is computed from")
            return None
        return name.text

    # whole-model checks ----------------------------------------------------------------
    def _input_sample(self, cm: CausalModel) -> tuple[dict[str, np.ndarray], bool]:
        if cm.input_space_size() <= EXHAUSTIVE_LIMIT:
            return cm.enumerate_inputs(), True
        rng = np.random.default_rng(0)
        return {n: cm.domain(n).from_codes(rng.integers(0, cm.domain(n).size, DOMAIN_SAMPLE))
                for n in cm.inputs}, False

    def _check_constraints_satisfiable(self, cm: CausalModel) -> None:
        if not cm.constraints:
            return
        if cm.input_space_size() <= EXHAUSTIVE_LIMIT and _witness(cm):
            return  # a row satisfies them: what the enumeration below would find, without numpy
        inputs, exhaustive = self._input_sample(cm)
        if not cm.satisfies_constraints(inputs).any():
            span = cm.constraints[0].ast.span
            how = "no input combination" if exhaustive else f"none of {DOMAIN_SAMPLE} sampled inputs"
            self.sink.error(E0310, f"the `where` constraints of model `{cm.name}` reject every input "
                            f"({how} satisfies them)", span, "unsatisfiable",
                            help="loosen the `where` clauses, or widen the inputs' types or weights")

    def _check_value_ranges(self, cm: CausalModel) -> None:
        suspects = self._range_suspects(cm)
        if not suspects:
            return
        inputs, exhaustive = self._input_sample(cm)
        ok = cm.satisfies_constraints(inputs)
        inputs = {k: v[ok] for k, v in inputs.items()}
        n = int(ok.sum())
        if n == 0:
            return
        # Sampled values are stored in the narrowest integer type that holds their domain (they
        # are always inside it: a value found outside is reported and clipped), and a mechanism
        # reads them in the narrowest type that holds every int value it computes (the static
        # ranges of all its nodes, and its domain's bounds): each result then fits the type numpy
        # computes it in, so the values are exact. Holding thousands of 20,000-value int64
        # arrays made page faults most of this check's time, and int64 arithmetic the rest.
        store = {k: _narrow(v, cm.domain(k)) for k, v in inputs.items()}
        # Only the suspects and what they read are evaluated.
        needed = set(suspects)
        for name in reversed(cm.order):
            if name in needed:
                needed.update(cm.variables[name].parents)
        # A variable's sampled values are dropped after their last reader: holding all of them
        # (20,000 values x 10,000 variables) took most of a gigabyte on a large model.
        last_reader: dict[str, int] = {}
        for i, name in enumerate(cm.order):
            if name in needed:
                for p in cm.variables[name].parents:
                    last_reader[p] = i
        for i, name in enumerate(cm.order):
            var = cm.variables[name]
            if var.is_input or name not in needed:
                continue
            lo, hi = self.int_ranges.get(name, (-INT_LIMIT, INT_LIMIT))
            if var.domain.kind == "int":
                lo, hi = min(lo, var.domain.lo), max(hi, var.domain.hi)
            dtype = _int_dtype(lo, hi)
            vals = var.compiled.evaluate({p: _widen(store[p], dtype) for p in var.parents}, n)
            for p in var.parents:
                if last_reader.get(p) == i and p not in inputs:
                    del store[p]
            if name in suspects:
                vals = self._report_escape(cm, name, vals, inputs, exhaustive)
            if name in last_reader:
                store[name] = _narrow(vals, var.domain)

    def _report_escape(self, cm: CausalModel, name: str, vals: np.ndarray, inputs: dict[str, np.ndarray],
                       exhaustive: bool) -> np.ndarray:
        """E0305 when the sampled `vals` of `name` leave its declared range; the values its
        readers then see (clipped into the range, so that one escape is reported once)."""
        dom = cm.variables[name].domain
        bad = (vals < dom.lo) | (vals > dom.hi)
        if not bad.any():
            return vals
        row = int(np.argmax(bad))
        witness = ", ".join(f"{k}={_show(cm.domain(k).decode(inputs[k][row:row + 1])[0])}" for k in cm.inputs)
        scope = "" if exhaustive else f" (found on a sample of {DOMAIN_SAMPLE} inputs)"
        self.sink.error(E0305, f"mechanism of `{name}` produces {int(vals[row])}, outside its declared "
                        f"{dom.describe()}{scope}", self.var_asts[name].expr.span,
                        f"can be {int(vals[bad].min())}..{int(vals[bad].max())} outside the range"
                        if bad.sum() > 1 else "out of range",
                        notes=[f"for example with {witness}"],
                        help=f"widen the type (observed {int(vals.min())}..{int(vals.max())}) "
                             "or clip the value")
        return np.clip(vals, dom.lo, dom.hi)

    @staticmethod
    def _range_suspects(cm: CausalModel) -> set[str]:
        """The int variables whose mechanism might leave the declared range: those whose
        static range (interval arithmetic, computed while type checking) is not inside it.
        The others cannot produce a value outside it, whatever the inputs, so the sampled
        check skips them (and, when none is left, sampling altogether)."""
        out = set()
        for name, var in cm.variables.items():
            if var.is_input or var.domain.kind != "int" or var.mechanism is None:
                continue
            ty = var.mechanism.ty
            if not (ty.kind == "int" and var.domain.lo <= ty.lo and ty.hi <= var.domain.hi):
                out.add(name)
        return out

    def _examples(self, cm: CausalModel) -> list[Example]:
        out = []
        for stmt in self.ast.body:
            if not isinstance(stmt, A.ExampleDecl):
                continue
            ex = self._example(cm, stmt)
            if ex is not None:
                out.append(ex)
        return out

    def _assigned(self, cm, assignments, role: str) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        ok = True
        for a in assignments:
            var = cm.variables.get(a.name.text)
            if var is None:
                self.sink.error(E0203, f"unknown variable `{a.name.text}` in example", a.name.span,
                                "not in this model", help=did_you_mean(a.name.text, cm.variables, "variables"))
                ok = False
                continue
            if role == "input" and not var.is_input:
                self.sink.error(E0502, f"`{a.name.text}` is not an input; an example's {{…}} assigns inputs only",
                                a.name.span, f"`{a.name.text}` is a {var.kind}",
                                help=f"intervene with do({a.name.text} = …) or put it after `=>`")
                ok = False
                continue
            if role == "do" and var.is_input:
                self.sink.error(E0505, f"do() on input `{a.name.text}`: set the input in {{…}} instead",
                                a.name.span, "an input", help="do() intervenes on vars and outputs")
                ok = False
                continue
            if role == "expected" and var.is_input:
                self.sink.error(E0502, f"`{a.name.text}` is an input; `=>` lists computed values",
                                a.name.span, "an input",
                                help=f"set `{a.name.text}` inside the example's {{…}} instead")
                ok = False
                continue
            raw = _literal_value(a.value)
            member = var.domain.lookup(raw)
            if member is None:
                self.sink.error(E0303, f"{_show(raw)} is not a value of `{a.name.text}` ({var.domain.describe()})",
                                a.value.span, "outside the domain",
                                help=_suggest(raw, var.domain))
                ok = False
                continue
            ty = var.mechanism.ty if var.mechanism is not None else None
            if (role == "do" and var.domain.is_real and ty is not None and ty.kind == "real"
                    and ty.lo is not None and not ty.lo <= member <= ty.hi):
                # readers may divide by it, trusting the range its mechanism gives it (semantics.expr)
                self.sink.error(E0303, f"do({a.name.text} = {_show(raw)}): `{a.name.text}` is real in "
                                f"{ty.lo}..{ty.hi}, the values its mechanism can produce", a.value.span,
                                "outside its range", help=f"intervene with a value in {ty.lo}..{ty.hi}")
                ok = False
                continue
            if a.name.text in values:
                self.sink.error(E0201, f"`{a.name.text}` is assigned twice in this example", a.name.span,
                                "assigned again", help=f"give `{a.name.text}` one value; delete the second")
                ok = False
            values[a.name.text] = member
        return values if ok else None

    def _example(self, cm: CausalModel, stmt: A.ExampleDecl) -> Example | None:
        inputs = self._assigned(cm, stmt.inputs, "input")
        do = self._assigned(cm, stmt.interventions, "do")
        expected = self._assigned(cm, stmt.expected, "expected")
        if inputs is None or do is None or expected is None:
            return None
        missing = [n for n in cm.inputs if n not in inputs]
        if missing:
            self.sink.error(E0503, f"example leaves input(s) {', '.join(missing)} unassigned", stmt.span,
                            "incomplete example", help="give every input a value: " +
                            ", ".join(f"{n}=…" for n in missing))
            return None
        env = _run_example(cm, inputs, do)
        if env is None:
            self.sink.error(E0504, "example violates a `where` constraint of its inputs", stmt.span,
                            "inputs not allowed by the model",
                            help="choose input values that satisfy the model's `where` clauses")
            return None
        for a in stmt.expected:
            name = a.name.text
            got = cm.domain(name).decode(env[name])[0]
            if got != expected[name]:
                did = f" under do({', '.join(f'{k}={_show(v)}' for k, v in do.items())})" if do else ""
                self.sink.error(E0501, f"example does not hold: `{name}` is {_show(got)}{did}, "
                                f"expected {_show(expected[name])}", a.span, f"model computes {_show(got)}",
                                notes=[_trace(cm, env)],
                                help=f"fix the expected value (`{name} = {_show(got)}`) or the mechanism "
                                     "the note's values trace")
        return Example(inputs, do, expected, stmt.span)


# Rows the pure-Python search for a row satisfying `where` tries before the exhaustive numpy
# check (a few ms at most; `where a != b` is satisfied by the second row).
WITNESS_ROWS = 1024


def _witness(cm: CausalModel) -> bool:
    """Whether one of the first WITNESS_ROWS input rows (in enumeration order) satisfies every
    `where` constraint, evaluated in pure Python. False when none does or when a constraint
    has no one-row evaluator: the caller then checks every row with numpy, as before."""
    names = cm.inputs
    rows = itertools.product(*[cm.domain(n).representations() for n in names])
    for values in itertools.islice(rows, WITNESS_ROWS):
        ok = cm.row_satisfies_constraints(dict(zip(names, values)))
        if ok is None:
            return False
        if ok:
            return True
    return False


def _run_example(cm: CausalModel, inputs: dict[str, Any], do: dict[str, Any]) -> Mapping[str, Any] | None:
    """Every variable's value on an example's row, as one-element sequences (`Domain.decode`
    reads them), or None when the row violates a `where` constraint. In pure Python when every
    constraint and mechanism has a one-row evaluator (`Compiled.one`: `parse` then needs no
    numpy), else with `CausalModel.run`; both give the same values."""
    row = {k: cm.domain(k).represent(v) for k, v in inputs.items()}
    ok = cm.row_satisfies_constraints(row)
    if ok is not None:
        if not ok:
            return None
        env = cm.run_one(row, {k: cm.domain(k).represent(v) for k, v in do.items()})
        if env is not None:
            return {k: (v,) for k, v in env.items()}
    arrays = {k: cm.domain(k).encode([v]) for k, v in inputs.items()}
    if not cm.satisfies_constraints(arrays)[0]:
        return None
    return cm.run(arrays, {k: cm.domain(k).encode([v]) for k, v in do.items()})


def _int_dtype(lo: int, hi: int) -> np.dtype:
    """The narrowest signed integer type holding lo..hi."""
    for name, bits in (("int8", 8), ("int16", 16), ("int32", 32)):
        if -(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1):
            return np.dtype(name)
    return np.dtype(np.int64)


def _narrow(values: np.ndarray, domain: Domain) -> np.ndarray:
    """Int `values` (inside `domain`) in the narrowest signed integer type holding the domain."""
    if domain.kind != "int" or values.dtype.kind != "i":
        return values
    return values.astype(_int_dtype(domain.lo, domain.hi), copy=False)


def _widen(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """What `_narrow` stored, in `dtype` when that is wider (other kinds as they are)."""
    if values.dtype.kind == "i" and values.dtype.itemsize < dtype.itemsize:
        return values.astype(dtype)
    return values


def _literal_value(lit: A.Literal) -> Any:
    if isinstance(lit, A.IntLit):
        return lit.value
    if isinstance(lit, A.FracLit):
        return Fraction(lit.numerator, lit.denominator)
    if isinstance(lit, A.BoolLit):
        return lit.value
    if isinstance(lit, A.StrLit):
        return lit.value
    return lit.name


def literal_value(lit: A.Literal) -> Any:
    return _literal_value(lit)


def _suggest(value: Any, dom: Domain) -> str | None:
    if dom.kind == "int":
        return f"values are {dom.lo}..{dom.hi}"
    if dom.kind == "bool":
        return "values are true and false"
    return did_you_mean(str(value), dom.values, "values")


def _show(value: Any) -> str:
    return Domain.boolean().format(value)


def _show_keys(keys) -> str:
    return "(" + ", ".join(_show(_literal_value(k)) for k in keys) + ")"


def _trace(cm: CausalModel, env: Mapping[str, Any]) -> str:
    parts = [f"{n}={_show(cm.domain(n).decode(env[n])[0])}" for n in cm.order]
    return "model values: " + ", ".join(parts)
