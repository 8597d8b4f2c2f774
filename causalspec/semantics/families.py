"""Expand indexed families (`input t[1..N]`, `var H[i in 1..N] = …`), `const`s and aggregates
(`count(j in 1..N : …)`) into the ordinary per-element model the rest of causalspec runs.

Why expand instead of teaching every stage about families: sampling, interventions, pairs,
interchange, the engine and the scores all work on named variables already. A family `H` over
`1..N` becomes the variables `H[1]` … `H[N]` (their names hold the index), each with its own
type, domain check and place in the cycle check; `Families` keeps the grouping for graphs,
alignments (`H[i] -> … @ i`) and interchange sets (`interchange H`).

Indices are static: an index (`t[i-1]`), a range bound and a `const` are computed here from
the index variables and the constants, never from a variable's value (E0217). An index outside
the family's range is an error (E0216) unless the reference sits in the branch of an `if` whose
condition is static and false for that index — `if i > 1 then t[i-1] else t[i]` is the
boundary guard: static conditions pick their branch during expansion, so the other branch is
never built. Aggregates unroll into the existing operators (count, +, or, and, min, max, if;
`mean` into the function `mean(…)`, whose result is an exact real). `mean`, like min, max and
argmax, takes only a static condition, and over no index at all it is an error (E0218): the
mean of nothing is undefined, and we do not pick a value for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from causalspec.codes import E0201, E0214, E0215, E0216, E0217, E0218, E0312
from causalspec.diagnostics import DiagnosticSink, Span, did_you_mean
from causalspec.syntax import ast as A

# A family larger than this is refused (E0312): each element is a variable of its own.
MAX_FAMILY = 4096
AGGREGATES = ("count", "sum", "any", "all", "min", "max", "argmax", "mean")
# aggregates whose condition may depend on variables (the others need a static one, E0218)
DYNAMIC_WHERE = ("count", "sum", "any", "all")


def element(name: str, index: int) -> str:
    """The variable name of one element of a family: `H[2]`."""
    return f"{name}[{index}]"


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "input" | "var" | "output"
    indices: tuple[int, ...]
    span: Span
    # the family's own mechanism, as written (`count(j in 1..N : t[j] == t[i])`), for graphs
    mechanism: A.Expr | None = field(default=None, compare=False, repr=False)

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(element(self.name, i) for i in self.indices)


@dataclass
class Families:
    """The families of one model and its constants (what expansion learned)."""

    families: dict[str, Family] = field(default_factory=dict)
    consts: dict[str, int] = field(default_factory=dict)
    # mechanisms of variables that are not family elements, as written, where expansion changed
    # them (`count(j in 1..N : m[j] == x)` runs as `count(m[1] == x, …)`; `x + N` as `x + 4`): a
    # graph of the families shows these, an expanded graph the forms that run
    written: dict[str, A.Expr] = field(default_factory=dict)

    def family_of(self, var: str) -> str | None:
        """`H` for `H[2]`, None for a variable that is not a family element."""
        if var.endswith("]") and "[" in var:
            name = var[:var.index("[")]
            if name in self.families:
                return name
        return None

    def expand_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """Names with each family name replaced by its elements, in order."""
        out: list[str] = []
        for n in names:
            fam = self.families.get(n)
            out.extend(fam.elements if fam is not None else (n,))
        return tuple(out)


class _NotStatic(Exception):
    def __init__(self, node: A.Node, name: str):
        super().__init__(name)
        self.node = node
        self.name = name


def expand_model(model: A.Model, sink: DiagnosticSink) -> tuple[A.Model, Families]:
    """The model with families, consts and aggregates expanded; errors go to the sink."""
    return _Expander(model, sink).run()


class _Expander:
    def __init__(self, model: A.Model, sink: DiagnosticSink):
        self.model = model
        self.sink = sink
        self.fam = Families()
        self.ranges: dict[str, tuple[int, int]] = {}
        self.bad_consts: set[str] = set()  # reported once, where declared

    def run(self) -> tuple[A.Model, Families]:
        if not any(isinstance(s, A.ConstDecl) or (isinstance(s, A.InputDecl) and s.families)
                   or (isinstance(s, A.VarDecl) and s.index is not None) or _has_aggregate(s)
                   or _has_const_bound(s) for s in self.model.body):
            return self.model, self.fam  # nothing to expand: the common case stays free
        for stmt in self.model.body:
            if isinstance(stmt, A.ConstDecl):
                self._const(stmt)
        for stmt in self.model.body:  # every family's range first: mechanisms may use later families
            if isinstance(stmt, A.InputDecl):
                for name, rng in zip(stmt.names, stmt.families or (None,) * len(stmt.names)):
                    if rng is not None:
                        self._family(name, "input", rng)
            elif isinstance(stmt, A.VarDecl) and stmt.index is not None:
                self._family(stmt.name, stmt.kind, stmt.index, stmt.expr)
        body: list[A.ModelStmt] = []
        for stmt in self.model.body:
            body.extend(self._stmt(stmt))
        return replace(self.model, body=tuple(body)), self.fam

    # declarations ----------------------------------------------------------------------
    def _const(self, stmt: A.ConstDecl) -> None:
        name = stmt.name.text
        if name in self.fam.consts:
            self.sink.error(E0201, f"constant `{name}` is declared twice", stmt.name.span, "declared again here",
                            help=f"rename one of them, or delete the second `const {name}`")
            return
        value = self._static_int(stmt.value, {}, f"constant `{name}`")
        if value is not None:
            self.fam.consts[name] = value
        else:
            self.bad_consts.add(name)

    def _family(self, name: A.Name, kind: str, rng: A.FamilyRange, mechanism: A.Expr | None = None) -> None:
        if rng.lo is None or rng.hi is None:
            return
        lo = self._static_int(rng.lo, {}, "a family's range")
        hi = self._static_int(rng.hi, {}, "a family's range")
        if lo is None or hi is None:
            return
        if name.text in self.fam.families or name.text in self.fam.consts:
            self.sink.error(E0201, f"`{name.text}` is declared twice in model `{self.model.name.text}`",
                            name.span, "declared again here", help="rename one of them")
            return
        if lo > hi or hi - lo + 1 > MAX_FAMILY:
            why = f"{lo}..{hi} is empty" if lo > hi else f"{lo}..{hi} has {hi - lo + 1} elements (at most {MAX_FAMILY})"
            self.sink.error(E0312, f"family `{name.text}`: the range {why}", rng.span, "range of the family",
                            help="write the smaller index first: `[i in 1..N]` with N >= 1" if lo > hi
                            else "a family element is a variable of its own; use a smaller range")
            return
        self.ranges[name.text] = (lo, hi)
        self.fam.families[name.text] = Family(name.text, kind, tuple(range(lo, hi + 1)), name.span,
                                                 mechanism)

    def _stmt(self, stmt: A.ModelStmt) -> list[A.ModelStmt]:
        consts: dict[str, int] = dict(self.fam.consts)
        if isinstance(stmt, A.ConstDecl):
            return []
        if isinstance(stmt, A.DomainDecl):
            return [replace(stmt, type=self._type(stmt.type))]
        if isinstance(stmt, A.TableDecl):
            return [replace(stmt, key_types=tuple(self._type(t) for t in stmt.key_types),
                            value_type=self._type(stmt.value_type))]
        if isinstance(stmt, A.InputDecl):
            names: list[A.Name] = []
            for name, rng in zip(stmt.names, stmt.families or (None,) * len(stmt.names)):
                if rng is None:
                    names.append(name)
                elif name.text in self.ranges:
                    lo, hi = self.ranges[name.text]
                    names.extend(A.Name(element(name.text, k), span=name.span) for k in range(lo, hi + 1))
            where = self._expr(stmt.where, consts) if stmt.where is not None else None
            return [replace(stmt, names=tuple(names), type=self._type(stmt.type), where=where, families=())]
        if isinstance(stmt, A.VarDecl):
            type_ = self._type(stmt.type)
            if stmt.index is None:
                expr = self._expr(stmt.expr, consts)
                if expr != stmt.expr:
                    self.fam.written[stmt.name.text] = stmt.expr
                return [replace(stmt, type=type_, expr=expr)]
            if stmt.name.text not in self.ranges or stmt.index.var is None:
                return []
            lo, hi = self.ranges[stmt.name.text]
            out: list[A.ModelStmt] = []
            for k in range(lo, hi + 1):
                env = {**consts, stmt.index.var.text: k}
                out.append(replace(stmt, name=A.Name(element(stmt.name.text, k), span=stmt.name.span),
                                   type=self._type(stmt.type, env), expr=self._expr(stmt.expr, env), index=None))
            return out
        return [stmt]

    def _type(self, t: A.TypeExpr, env: Mapping[str, int] | None = None) -> A.TypeExpr:
        if not isinstance(t, A.IntType) or (isinstance(t.lo, int) and isinstance(t.hi, int)):
            return t
        env = env if env is not None else self.fam.consts
        lo = t.lo if isinstance(t.lo, int) else self._static_int(t.lo, env, "an int bound")
        hi = t.hi if isinstance(t.hi, int) else self._static_int(t.hi, env, "an int bound")
        return replace(t, lo=lo if lo is not None else 0, hi=hi if hi is not None else 0)

    # static values -----------------------------------------------------------------------
    def _static_int(self, e: A.Expr, env: Mapping[str, int], what: str) -> int | None:
        try:
            value = _static(e, {**self.fam.consts, **env})
        except _NotStatic as exc:
            if exc.name in self.bad_consts:
                return None  # its own declaration is reported
            self.sink.error(E0214, f"{what} must be a constant integer; `{exc.name}` is not a constant",
                            exc.node.span, "not a constant",
                            help=(did_you_mean(exc.name, self.fam.consts, "constants") if self.fam.consts else None)
                            or "a `const` is computed from numbers and other constants: declare it with "
                            "`const NAME = 5`, or write a number")
            return None
        except ZeroDivisionError:
            self.sink.error(E0214, f"{what} divides by zero", e.span, "division by zero")
            return None
        if isinstance(value, bool):
            self.sink.error(E0214, f"{what} must be an integer, not a boolean", e.span, "a boolean",
                            help="write an integer expression of numbers and constants")
            return None
        return value

    # expressions -------------------------------------------------------------------------
    def _expr(self, e: A.Expr, env: Mapping[str, int]) -> A.Expr:
        if isinstance(e, A.NameRef):
            if e.name in env:
                return _int_expr(env[e.name], e.span)
            if e.name in self.fam.families:
                fam = self.fam.families[e.name]
                self.sink.error(E0215, f"family `{e.name}` is used without an index", e.span, "a whole family",
                                help=f"write one element (`{e.name}[i]`, `{element(e.name, fam.indices[0])}`) "
                                f"or aggregate over it: `count(j in {fam.indices[0]}..{fam.indices[-1]} : "
                                f"{e.name}[j] == …)`")
            return e
        if isinstance(e, A.Index):
            if e.table.text in self.fam.families:
                return self._element(e, env)
            return replace(e, args=tuple(self._expr(a, env) for a in e.args))
        if isinstance(e, A.IfThenElse):
            try:
                cond = _static(e.cond, env)
            except (_NotStatic, ZeroDivisionError):
                return replace(e, cond=self._expr(e.cond, env), then=self._expr(e.then, env),
                               other=self._expr(e.other, env))
            if isinstance(cond, bool):  # a boundary guard: only the taken branch exists
                return self._expr(e.then if cond else e.other, env)
            return replace(e, cond=self._expr(e.cond, env), then=self._expr(e.then, env),
                           other=self._expr(e.other, env))
        if isinstance(e, A.Binary):
            return replace(e, left=self._expr(e.left, env), right=self._expr(e.right, env))
        if isinstance(e, A.Unary):
            return replace(e, operand=self._expr(e.operand, env))
        if isinstance(e, A.Call):
            return replace(e, args=tuple(self._expr(a, env) for a in e.args))
        if isinstance(e, A.Aggregate):
            return self._aggregate(e, env)
        return e

    def _element(self, e: A.Index, env: Mapping[str, int]) -> A.Expr:
        name = e.table.text
        lo, hi = self.ranges[name]
        if len(e.args) != 1:
            self.sink.error(E0215, f"family `{name}` takes one index, got {len(e.args)}", e.span, "one index",
                            help=f"write `{name}[i]`")
            return e
        try:
            k = _static(e.args[0], env)
        except _NotStatic as exc:
            self.sink.error(E0217, f"the index of `{name}[…]` must be computed from indices and constants; "
                            f"`{exc.name}` is a variable", exc.node.span, "not an index or constant",
                            help=f"select by value with an aggregate: `sum(j in {lo}..{hi} where j == … : {name}[j])`"
                            if exc.name not in self.fam.families else "indices are static; use an aggregate")
            return e
        except ZeroDivisionError:
            self.sink.error(E0217, f"the index of `{name}[…]` divides by zero", e.span, "division by zero")
            return e
        if isinstance(k, bool) or not lo <= k <= hi:
            where = ", ".join(f"{v} = {env[v]}" for v in _index_names(e.args[0]) if v in env
                              and v not in self.fam.consts)
            self.sink.error(E0216, f"`{name}[{k}]` is outside the family `{name}[{lo}..{hi}]`"
                            + (f" (for {where})" if where else ""), e.span, "index out of range",
                            help=f"guard the boundary: `if i > {lo} then {name}[i - 1] else …`, or start the "
                            "family's range where the index exists")
            return e
        return A.NameRef(element(name, k), span=e.span)

    def _aggregate(self, e: A.Aggregate, env: Mapping[str, int]) -> A.Expr:
        func = e.func.text
        if func not in AGGREGATES:
            self.sink.error(E0218, f"unknown aggregate `{func}`", e.func.span, "not an aggregate",
                            help=did_you_mean(func, AGGREGATES) or f"aggregates are {', '.join(AGGREGATES)}")
            return A.IntLit(0, span=e.span)
        lo = self._static_int(e.lo, env, "an aggregate's range")
        hi = self._static_int(e.hi, env, "an aggregate's range")
        if lo is None or hi is None:
            return A.IntLit(0, span=e.span)
        if hi - lo + 1 > MAX_FAMILY:
            self.sink.error(E0312, f"aggregate over {hi - lo + 1} indices (at most {MAX_FAMILY})", e.span,
                            "range too large")
            return A.IntLit(0, span=e.span)
        items: list[tuple[A.Expr | None, A.Expr, int]] = []  # (dynamic condition, body, index)
        for k in range(lo, hi + 1):
            inner = {**env, e.var.text: k}
            cond: A.Expr | None = None
            if e.where is not None:
                try:
                    keep = _static(e.where, inner)
                except (_NotStatic, ZeroDivisionError):
                    if func not in DYNAMIC_WHERE:
                        self.sink.error(E0218, f"`{func}` needs a condition computed from indices and constants",
                                        e.where.span, "depends on a variable",
                                        help="only count, sum, any and all take a condition on variables; "
                                        f"write `{func}(…)` over a static range, or use `if` in the body")
                        return A.IntLit(0, span=e.span)
                    cond = self._expr(e.where, inner)
                else:
                    if not keep:
                        continue
            items.append((cond, self._expr(e.body, inner), k))
        return self._combine(e, func, items)

    def _combine(self, e: A.Aggregate, func: str, items: list[tuple[A.Expr | None, A.Expr, int]]) -> A.Expr:
        sp = e.span
        if func == "count":
            if not items:
                return A.IntLit(0, span=sp)
            return A.Call(A.Name("count", span=e.func.span),
                          tuple(b if c is None else A.Binary("and", c, b, span=sp) for c, b, _ in items), span=sp)
        if func == "sum":
            terms = [b if c is None else A.IfThenElse(c, b, A.IntLit(0, span=sp), span=sp) for c, b, _ in items]
            return _fold("+", terms, A.IntLit(0, span=sp), sp)
        if func == "any":
            terms = [b if c is None else A.Binary("and", c, b, span=sp) for c, b, _ in items]
            return _fold("or", terms, A.BoolLit(False, span=sp), sp)
        if func == "all":
            terms = [b if c is None else A.Binary("or", A.Unary("not", c, span=sp), b, span=sp) for c, b, _ in items]
            return _fold("and", terms, A.BoolLit(True, span=sp), sp)
        if not items:
            self.sink.error(E0218, f"`{func}` over no index", sp, "empty range",
                            help="guard it: `if i > 1 then " + f"{func}(j in 1..i-1 : …) else …`")
            return A.IntLit(0, span=sp)
        bodies = [b for _, b, _ in items]
        if func in ("min", "max"):
            return bodies[0] if len(bodies) == 1 else A.Call(A.Name(func, span=e.func.span), tuple(bodies), span=sp)
        if func == "argmax":  # the first index with the largest value
            out: A.Expr = _int_expr(items[-1][2], sp)
            for pos in range(len(items) - 2, -1, -1):
                rest = bodies[pos + 1:]
                later = rest[0] if len(rest) == 1 else A.Call(A.Name("max", span=sp), tuple(rest), span=sp)
                out = A.IfThenElse(A.Binary(">=", bodies[pos], later, span=sp), _int_expr(items[pos][2], sp),
                                   out, span=sp)
            return out
        # mean: exact, a real (semantics.expr's `mean(…)`: the average of numbers, the fraction of true bools)
        return A.Call(A.Name("mean", span=e.func.span), tuple(bodies), span=sp)


def _fold(op: str, terms: list[A.Expr], empty: A.Expr, span: Span) -> A.Expr:
    if not terms:
        return empty
    out = terms[0]
    for t in terms[1:]:
        out = A.Binary(op, out, t, span=span)
    return out


def _int_expr(value: int, span: Span) -> A.Expr:
    if value < 0:
        return A.Unary("-", A.IntLit(-value, span=span), span=span)
    return A.IntLit(value, span=span)


def _index_names(e: A.Expr) -> list[str]:
    if isinstance(e, A.NameRef):
        return [e.name]
    if isinstance(e, A.Binary):
        return _index_names(e.left) + _index_names(e.right)
    if isinstance(e, A.Unary):
        return _index_names(e.operand)
    return []


def _static(e: A.Expr, env: Mapping[str, int]) -> int | bool:
    """The value of an expression of numbers, constants and indices; _NotStatic otherwise."""
    if isinstance(e, A.IntLit):
        return e.value
    if isinstance(e, A.BoolLit):
        return e.value
    if isinstance(e, A.NameRef):
        if e.name in env:
            return env[e.name]
        raise _NotStatic(e, e.name)
    if isinstance(e, A.Unary):
        v = _static(e.operand, env)
        return (not v) if e.op == "not" else -v
    if isinstance(e, A.Binary):
        if e.op in ("and", "or"):
            left = _static(e.left, env)
            right = _static(e.right, env)
            return (bool(left) and bool(right)) if e.op == "and" else (bool(left) or bool(right))
        a, b = _static(e.left, env), _static(e.right, env)
        ops = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "//": lambda: a // b,
               "%": lambda: a % b, "==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b,
               "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b}
        return ops[e.op]()
    if isinstance(e, A.IfThenElse):
        return _static(e.then, env) if _static(e.cond, env) else _static(e.other, env)
    if isinstance(e, A.Call) and e.func.text in ("min", "max", "abs") and e.args:
        vals = [_static(a, env) for a in e.args]
        return abs(vals[0]) if e.func.text == "abs" else (min(vals) if e.func.text == "min" else max(vals))
    name = e.func.text if isinstance(e, A.Call) else e.table.text if isinstance(e, A.Index) else type(e).__name__
    raise _NotStatic(e, name)


def _has_aggregate(stmt: A.ModelStmt) -> bool:
    """Whether a mechanism or `where` holds an aggregate (an explicit stack: this runs on
    every statement of every model, so it only descends into expression nodes, and by node
    type rather than a chain of isinstance checks — names and literals, most of the nodes,
    end the walk after one dict lookup)."""
    if isinstance(stmt, A.VarDecl):
        stack: list[Any] = [stmt.expr]  # expression nodes, told apart by _EXPR_KIND
    elif isinstance(stmt, A.InputDecl) and stmt.where is not None:
        stack = [stmt.where]
    else:
        return False
    while stack:
        e = stack.pop()
        kind = _EXPR_KIND.get(type(e), 0)
        if kind == 1:  # Binary
            stack.append(e.left)
            stack.append(e.right)
        elif kind == 2:  # IfThenElse
            stack.extend((e.cond, e.then, e.other))
        elif kind == 3:  # Call, Index
            stack.extend(e.args)
        elif kind == 4:  # Unary
            stack.append(e.operand)
        elif kind == 5:
            return True
    return False


# node type -> what `_has_aggregate` does with it (0, absent: a leaf)
_EXPR_KIND: dict[type, int] = {A.Binary: 1, A.IfThenElse: 2, A.Call: 3, A.Index: 3, A.Unary: 4, A.Aggregate: 5}


def _const_bound(t: A.TypeExpr) -> bool:
    return isinstance(t, A.IntType) and not (isinstance(t.lo, int) and isinstance(t.hi, int))


def _has_const_bound(stmt: A.ModelStmt) -> bool:
    if isinstance(stmt, (A.DomainDecl, A.InputDecl, A.VarDecl)):
        return _const_bound(stmt.type)
    if isinstance(stmt, A.TableDecl):
        return any(_const_bound(t) for t in stmt.key_types) or _const_bound(stmt.value_type)
    return False
