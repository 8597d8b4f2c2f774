"""Mechanism expressions: type-check, compile to vectorized numpy, and build sympy objects.

Why our own evaluator: spec files are user text. We never `eval`, `sympify`, `parse_expr`
or `lambdify` anything a user wrote — every operation below is chosen from our own AST node
kinds and a whitelist of functions, so a name or a string can only ever be a name or a string.

Typing: `bool`, `int` (with a static range from interval arithmetic, used for diagnostics
and table indexing), `real` (exact rationals: object arrays of `fractions.Fraction`, with a
static range when it is known), `enum` (a Domain) and `symbol` (an enum member written bare or
as a string, whose domain is fixed by what it is compared with).

Reals: an int meets a real and becomes one (`+ - * /`, comparisons, `if` branches, `min`,
`max`, `abs`, `clip`); `/` always gives a real (1 / 3 is exactly one third, never a float);
a real is never an index, a table key, an enum value, an operand of `//`/`%` or of `==`/`!=`
(E0220: exact equality of computed fractions is what a check's tolerance is for).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from causalspec.codes import E0104, E0203, E0204, E0205, E0209, E0210, E0220, E0301, E0303, E0304
from causalspec.diagnostics import DiagnosticSink, did_you_mean
from causalspec.semantics.domains import Domain
from causalspec.syntax import ast as A

if TYPE_CHECKING:  # sympy takes ~0.3 s to import: only the LaTeX/symbolic paths below load it
    import numpy as np
    import sympy
else:  # numpy loads when a mechanism is first evaluated (lazy_numpy.py): nothing below may read
    # `np.<name>` while compiling, only inside the evaluators it builds
    from causalspec.semantics import lazy_numpy

    np = lazy_numpy.numpy.bind(globals(), "np")

Env = Mapping[str, "np.ndarray"]
Evaluator = Callable[[Env, int], "np.ndarray"]
OneEvaluator = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Ty:
    kind: str  # bool | int | real | enum | symbol | error
    lo: Any = 0  # int: the static range; real: a Fraction, or None when unknown
    hi: Any = 0
    domain: Domain | None = None
    symbol: str | None = None

    def describe(self) -> str:
        if self.kind == "int":
            return f"int (range {self.lo}..{self.hi})"
        if self.kind == "real":
            return "real" if self.lo is None or self.hi is None else f"real (range {self.lo}..{self.hi})"
        if self.kind == "enum":
            return self.domain.describe() if self.domain else "enum"
        if self.kind == "symbol":
            return f"enum value `{self.symbol}`"
        return self.kind

    @property
    def enum_domain(self) -> Domain:
        """An enum type's domain. Every `enum` Ty is built with one (the compiler's invariant: callers test
        `kind == "enum"` first), so a missing one is a bug here, never a spec's mistake."""
        assert self.domain is not None, f"a {self.kind} type has no domain"
        return self.domain

    @property
    def symbol_text(self) -> str:
        """A bare enum value's text. Every `symbol` Ty is built with one (callers test `kind == "symbol"`)."""
        assert self.symbol is not None, f"a {self.kind} type has no symbol"
        return self.symbol


BOOL = Ty("bool")
INT_LIMIT = 2 ** 62  # static int ranges beyond this could overflow int64 arithmetic
ERROR = Ty("error")

# Integers are evaluated as int64 arrays: larger literals and bounds are refused up front.
INT_LIMIT = 2**62


@dataclass(frozen=True)
class Table:
    """A declared lookup table, compiled to a dense numpy array over key codes."""

    name: str
    key_domains: tuple[Domain, ...]
    value_domain: Domain
    values: np.ndarray  # shape = tuple(d.size for d in key_domains), value representation


@dataclass(slots=True)
class Compiled:
    """A type-checked expression: its type, the variables it reads, and a batch evaluator.
    (Slots: one is built per expression node, ~80,000 for a 10,000-variable model.)"""

    ast: A.Expr
    ty: Ty
    names: frozenset[str]
    fn: Evaluator
    # The same value for one input row, in pure Python (bools, ints, enum codes): the analysis
    # checks `example` lines and finds a row satisfying `where` with it, without importing
    # numpy (~65 ms of `causalspec parse`). None where the expression uses anything beyond
    # bool/int/enum logic, comparisons, + - *, `if`, `count` (reals, tables, // and %, min/max/
    # clip/abs/xor/mean): the analysis then evaluates with `fn`. Both give the same values
    # (tests/semantics/test_one_row.py compares them on every row of generated models).
    one: OneEvaluator | None = None

    def evaluate(self, env: Env, n: int) -> np.ndarray:
        out = self.fn(env, n)
        return np.broadcast_to(out, (n,)).copy() if np.ndim(out) == 0 or out.shape != (n,) else out


def _fold(op, fns, env: Env, n: int) -> np.ndarray:
    """`op` (np.minimum, np.maximum) over every argument, pairwise: no stacked copy of the
    arguments (`np.minimum.reduce([...])` builds one, and was most of the domain check's time)."""
    out = op(fns[0](env, n), fns[1](env, n))
    for f in fns[2:]:
        out = op(out, f(env, n))
    return out


def _select_int(c: np.ndarray, t: np.ndarray, o: np.ndarray) -> np.ndarray:
    """`np.where(c, t, o)` for int arrays, without branches: `o + c * (t - o)`.

    Why: np.where branches per element, and on a condition with no pattern (any sampled
    one) the mispredictions made it 3-4x slower than three arithmetic ufuncs; it was most
    of the sampled domain check. The caller only uses it when the branches' static ranges
    keep `t - o` inside int64, so nothing wraps around. One buffer: fresh arrays of this
    size are page faults."""
    out = np.subtract(t, o)
    if out.ndim == 0:  # scalars: nothing to vectorise
        return np.where(c, t, o)
    np.multiply(out, c, out=out)
    return np.add(out, o, out=out)


def _select_bool(c: np.ndarray, t: np.ndarray, o: np.ndarray) -> np.ndarray:
    """`np.where(c, t, o)` for bool arrays, without branches (see `_select_int`)."""
    return np.logical_or(np.logical_and(c, t), np.logical_and(np.logical_not(c), o))


class _Ufuncs(dict):
    """numpy's functions by name, each read from numpy on its first use: an evaluator looks its
    ufunc up here when it runs (`_UFUNCS["less"](a, b)`, a dict hit after the first call), so
    compiling a mechanism does not import numpy."""

    def __missing__(self, name: str) -> Any:
        value = self[name] = getattr(np, name)
        return value


_UFUNCS = _Ufuncs()


def _one2(op: Callable[[Any, Any], Any], l: Compiled, r: Compiled) -> OneEvaluator | None:
    """The one-row evaluator of `l op r` (a bool for comparisons and logic), None without both sides'."""
    lo, ro = l.one, r.one
    if lo is None or ro is None:
        return None
    return lambda env: op(lo(env), ro(env))


def _one1(op: Callable[[Any], Any], x: Compiled) -> OneEvaluator | None:
    """The one-row evaluator of `op x`, None without the operand's."""
    xo = x.one
    if xo is None:
        return None
    return lambda env: op(xo(env))


def _one_count(args: Sequence[Compiled]) -> OneEvaluator | None:
    """The one-row `count(a, b, …)`: how many arguments are true, None without all of theirs."""
    ones = [a.one for a in args if a.one is not None]
    if len(ones) != len(args):
        return None
    return lambda env: sum(1 for one in ones if one(env))


def _one_if(c: Compiled, t: Compiled, o: Compiled) -> OneEvaluator | None:
    co, to, oo = c.one, t.one, o.one
    if co is None or to is None or oo is None:
        return None
    return lambda env: to(env) if co(env) else oo(env)


_PY_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_COMPARE = {"<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal"}  # numpy's ufunc names
_ARITY: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1), "mod": (2, 2), "clip": (3, 3), "xor": (2, 2), "min": (2, None), "max": (2, None),
    "count": (1, None), "mean": (1, None)}

NUMERIC = ("int", "real")
REAL = Ty("real", None, None)


def real_array(values: Any, n: int) -> np.ndarray:
    """An int, bool or real array (or scalar) as an object array of exact values (Python ints
    and Fractions: `Fraction + int` stays exact, `int / int` is never computed)."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = np.broadcast_to(arr, (n,))
    if arr.dtype == object:
        return arr
    out = np.empty(arr.shape, dtype=object)
    out[:] = [int(x) for x in arr.reshape(-1)]
    return out


def _div(a: Any, b: Any) -> Fraction:
    return Fraction(a) / b


@functools.cache
def _divider() -> Any:
    """Exact elementwise division of object arrays, built on first use."""
    return np.frompyfunc(_div, 2, 1)


def _DIVIDE(a: Any, b: Any) -> Any:
    return _divider()(a, b)


def _real_range(ty: Ty) -> tuple[Fraction, Fraction] | None:
    """A numeric type's static range as Fractions (None: unknown, i.e. a bound is unknown)."""
    if ty.kind == "int":
        return Fraction(ty.lo), Fraction(ty.hi)
    if ty.lo is None or ty.hi is None:
        return None
    return ty.lo, ty.hi


def _corners(op, a: Ty, b: Ty) -> Ty:
    """The real range of `a op b` for + - * / by interval arithmetic (unknown if a bound is)."""
    ra, rb = _real_range(a), _real_range(b)
    if ra is None or rb is None:
        return REAL
    (alo, ahi), (blo, bhi) = ra, rb
    if op == "+":
        return Ty("real", alo + blo, ahi + bhi)
    if op == "-":
        return Ty("real", alo - bhi, ahi - blo)
    if op == "*":
        vals = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
    else:  # "/": the caller made sure 0 is outside b's range
        vals = [alo / blo, alo / bhi, ahi / blo, ahi / bhi]
    return Ty("real", min(vals), max(vals))


def conversion_help(have: Ty, want: str, domain: Domain | None = None) -> str:
    """How to turn a value of type `have` into the `want` kind (bool, int, enum) a place needs."""
    if want == "bool":
        if have.kind == "int":
            return "compare it to get a bool, e.g. `x > 0` or `x == 1`"
        if have.kind in ("enum", "symbol"):
            return "compare the enum value, e.g. `x == red`"
    if want == "int":
        if have.kind == "bool":
            return "turn a bool into a number with `if c then 1 else 0`, or count bools with `count(a, b)`"
        if have.kind in ("enum", "symbol"):
            return "enum values are not numbers: declare the variable `int lo..hi`, or use a table"
    if want == "enum" and domain is not None:
        shown = ", ".join(domain.values[:4]) + (", …" if len(domain.values) > 4 else "")
        return f"use one of its values ({shown}) or `if … then … else …` over them"
    return f"write an expression of type {want}"


FUNCTIONS = {
    "abs": "abs(x): absolute value of an int",
    "min": "min(a, b, …): smallest of two or more ints",
    "max": "max(a, b, …): largest of two or more ints",
    "mod": "mod(a, b): a modulo b (same as a % b)",
    "clip": "clip(x, lo, hi): x limited to lo..hi",
    "count": "count(a, b, …): how many of the bools are true",
    "xor": "xor(a, b): exactly one of two bools is true",
    "mean": "mean(a, b, …): the average of numbers (a real), or the fraction of true bools",
}


class ExprCompiler:
    """Compiles expressions of one model. Errors go to the sink; evaluators stay total."""

    def __init__(self, sink: DiagnosticSink, variables: Mapping[str, Domain],
                 tables: Mapping[str, Table], enum_members: Mapping[str, list[Domain]],
                 context: str):
        self.sink = sink
        self.variables = variables
        self.tables = tables
        self.enum_members = enum_members
        self.context = context  # e.g. "mechanism of `O`", for messages
        self.expected: Domain | None = None  # the declared domain of the result, when known
        # the static range of real variables whose mechanism was compiled already (a divisor `/ r`
        # is allowed when its range excludes 0); unknown for the others
        self.real_types: Mapping[str, Ty] = {}
        # type, names and evaluator of each variable referenced so far (all but reals, whose
        # static range grows as mechanisms compile): a reference is the commonest node, and
        # building its type and closure anew each time was a third of compiling a large model
        self._refs: dict[str, tuple[Ty, frozenset[str], Evaluator, OneEvaluator]] = {}
        # the smallest and largest int value any node compiled since the caller last reset
        # them can take (static ranges): an evaluation whose int arrays all hold this range
        # computes exactly in a narrower integer type (the sampled domain check uses it)
        self.int_lo = 0
        self.int_hi = 0
        # whether to build one-row evaluators (`Compiled.one`): the analysis turns it off for the
        # mechanisms of a model without `example` lines, which nothing evaluates one row at a
        # time (~40,000 closures fewer at 10,000 variables)
        self.one_row = True

    # public ------------------------------------------------------------------
    def compile(self, expr: A.Expr) -> Compiled:
        return self._c(expr)

    def coerce(self, compiled: Compiled, target: Domain, what: str) -> Compiled:
        """Check that `compiled` can produce values of `target`; convert symbols to enum codes."""
        ty = compiled.ty
        if ty.kind == "error":
            return compiled
        if target.kind == "bool" and ty.kind == "bool":
            return compiled
        if target.kind == "int" and ty.kind == "int":
            return compiled
        if target.kind == "real" and ty.kind in NUMERIC:
            if ty.kind == "int":
                f = compiled.fn

                def as_real(env: Env, n: int) -> np.ndarray:
                    return real_array(f(env, n), n)

                return Compiled(compiled.ast, Ty("real", Fraction(ty.lo), Fraction(ty.hi)), compiled.names, as_real)
            return compiled
        if ty.kind == "real":
            self._real_refused(compiled, f"{what} is declared {target.describe()}")
            return Compiled(compiled.ast, ERROR, compiled.names, compiled.fn)
        if target.kind == "enum":
            if ty.kind == "enum" and ty.domain == target:
                return compiled
            if ty.kind == "symbol":
                if ty.symbol_text in target.values:
                    code = target.values.index(ty.symbol_text)

                    def member(env: Env, n: int) -> np.ndarray:
                        return np.full(n, code, dtype=np.int64)

                    return Compiled(compiled.ast, Ty("enum", domain=target), compiled.names, member,
                                    (lambda env: code) if self.one_row else None)
                self._unknown_member(compiled.ast, ty.symbol_text, target)
                return Compiled(compiled.ast, ERROR, compiled.names, compiled.fn)
        self.sink.error(E0301, f"{what} has type {ty.describe()}, but {target.describe()} is declared",
                        compiled.ast.span, f"this is {ty.describe()}",
                        help=conversion_help(ty, target.kind, target))
        return Compiled(compiled.ast, ERROR, compiled.names, compiled.fn)

    # dispatch ----------------------------------------------------------------
    def _c(self, e: A.Expr) -> Compiled:
        method = _DISPATCH.get(type(e))
        out = getattr(self, "_" + type(e).__name__)(e) if method is None else method(self, e)
        ty = out.ty
        if ty.kind == "int":
            if ty.lo < self.int_lo:
                self.int_lo = ty.lo
            if ty.hi > self.int_hi:
                self.int_hi = ty.hi
        return out

    def _error(self, e, names=frozenset()) -> Compiled:
        return Compiled(e, ERROR, frozenset(names), lambda env, n: np.zeros(n, dtype=np.int64))

    def _IntLit(self, e: A.IntLit) -> Compiled:
        v = e.value
        if abs(v) > INT_LIMIT:
            self.sink.error(E0104, f"integer {v} is too large (at most 2^62)", e.span, "too large",
                            help="mechanisms compute with 64-bit integers; use a smaller number")
            return self._error(e)
        return Compiled(e, Ty("int", v, v), frozenset(), lambda env, n: np.full(n, v, dtype=np.int64),
                        (lambda env: v) if self.one_row else None)

    def _BoolLit(self, e: A.BoolLit) -> Compiled:
        v = e.value
        return Compiled(e, BOOL, frozenset(), lambda env, n: np.full(n, v, dtype=bool),
                        (lambda env: v) if self.one_row else None)

    def _StrLit(self, e: A.StrLit) -> Compiled:
        return self._symbol(e, e.value)

    def _symbol(self, e, text: str) -> Compiled:
        # Evaluating a bare symbol is impossible without a domain; `coerce`/comparisons fix it.
        return Compiled(e, Ty("symbol", symbol=text), frozenset(),
                        lambda env, n: np.full(n, -1, dtype=np.int64))

    def _NameRef(self, e: A.NameRef) -> Compiled:
        name = e.name
        hit = self._refs.get(name)
        if hit is not None:
            return Compiled(e, hit[0], hit[1], hit[2], hit[3] if self.one_row else None)
        is_member = name in self.enum_members
        if name in self.variables:
            if is_member:
                self.sink.error(E0210, f"`{name}` is both a variable and an enum value", e.span,
                                "ambiguous", help=f"write the enum value as a string: \"{name}\", "
                                                  "or rename the variable")
                return self._error(e, {name})
            dom = self.variables[name]
            kind = dom.kind
            names = frozenset((name,))

            def fn(env: Env, n: int, k: str = name) -> np.ndarray:
                return env[k]

            if kind == "real":
                return Compiled(e, self.real_types.get(name, REAL), names, fn)
            ty = BOOL if kind == "bool" else Ty("int", dom.lo, dom.hi) if kind == "int" else Ty("enum", domain=dom)
            one = operator.itemgetter(name)
            self._refs[name] = (ty, names, fn, one)
            return Compiled(e, ty, names, fn, one if self.one_row else None)
        if is_member:
            return self._symbol(e, name)
        self.sink.error(E0203, f"unknown variable `{name}` in {self.context}", e.span,
                        "not declared in this model",
                        help=did_you_mean(name, list(self.variables) + list(self.enum_members),
                                         "variables and enum values"))
        return self._error(e)

    def _Unary(self, e: A.Unary) -> Compiled:
        x = self._c(e.operand)
        if x.ty.kind == "error":
            return self._error(e, x.names)
        if e.op == "not":
            if not self._expect(x, "bool", "operand of `not`"):
                return self._error(e, x.names)
            return Compiled(e, BOOL, x.names, lambda env, n: np.logical_not(x.fn(env, n)),
                            _one1(operator.not_, x))
        if x.ty.kind == "real":
            lo, hi = x.ty.lo, x.ty.hi
            ty = REAL if lo is None or hi is None else Ty("real", -hi, -lo)
            return Compiled(e, ty, x.names, lambda env, n: -x.fn(env, n))
        if not self._expect(x, "int", "operand of unary `-`"):
            return self._error(e, x.names)
        return Compiled(e, Ty("int", -x.ty.hi, -x.ty.lo), x.names, lambda env, n: -x.fn(env, n),
                        _one1(operator.neg, x))

    def _Binary(self, e: A.Binary) -> Compiled:
        right = e.right
        if (e.op == "//" and isinstance(right, A.NameRef) and right.name not in self.variables
                and right.name not in self.enum_members):
            # `o = a // copy of a`: a C-style comment that happened to parse as a division.
            self.sink.error(E0203, f"unknown variable `{right.name}` after `//` in {self.context}", right.span,
                            "not declared in this model",
                            help="comments start with `#`, not `//` (`//` is integer division)")
            return self._error(e, self._c(e.left).names)
        if e.op in ("==", "!="):
            misspelt = self._misspelt_member(e)
            if misspelt is not None:
                return misspelt
        l, r = self._c(e.left), self._c(e.right)
        names = l.names | r.names
        if l.ty.kind == "error" or r.ty.kind == "error":
            return self._error(e, names)
        op = e.op
        if op in ("and", "or"):
            ok = (l.ty.kind == "bool" and r.ty.kind == "bool") or (
                self._expect(l, "bool", f"left side of `{op}`") & self._expect(r, "bool", f"right side of `{op}`"))
            if not ok:
                return self._error(e, names)
            logic = "logical_and" if op == "and" else "logical_or"
            return Compiled(e, BOOL, names, lambda env, n: _UFUNCS[logic](l.fn(env, n), r.fn(env, n)),
                            _one2(operator.and_ if op == "and" else operator.or_, l, r))
        if op in ("==", "!="):
            for side in (l, r):
                if side.ty.kind == "real":
                    self._real_refused(side, f"`{op}` compares exact values",
                                       help="compare reals with `<`, `<=`, `>`, `>=` (a check compares a real "
                                            "output within its tolerance); or compare the ints it is computed "
                                            "from, e.g. `2 * count(…) == i` for `mean(…) == 1/2`")
                    return self._error(e, names)
            return self._equality(e, l, r, names)
        if l.ty.kind == "real" or r.ty.kind == "real" or op == "/":
            return self._real_binary(e, op, l, r, names)
        if op in ("<", "<=", ">", ">="):
            ok = (l.ty.kind == "int" and r.ty.kind == "int") or (
                self._expect(l, "int", f"left side of `{op}`") & self._expect(r, "int", f"right side of `{op}`"))
            if not ok:
                return self._error(e, names)
            f = _COMPARE[op]
            lf, rf = l.fn, r.fn
            return Compiled(e, BOOL, names, lambda env, n: _UFUNCS[f](lf(env, n), rf(env, n)),
                            _one2(_PY_COMPARE[op], l, r))
        ok = (l.ty.kind == "int" and r.ty.kind == "int") or (
                self._expect(l, "int", f"left side of `{op}`") & self._expect(r, "int", f"right side of `{op}`"))
        if not ok:
            return self._error(e, names)
        return self._arith(e, op, l, r, names)

    def _real_binary(self, e, op: str, l: Compiled, r: Compiled, names) -> Compiled:
        """An operator with a real operand, or `/` (whose result is always real)."""
        for side, where in ((l, "left"), (r, "right")):
            if side.ty.kind == "real" and op in ("//", "%"):
                self._real_refused(side, f"`{op}` is integer arithmetic",
                                   help="use `/` for an exact division of reals")
                return self._error(e, names)
            if side.ty.kind not in NUMERIC:
                self.sink.error(E0301, f"{where} side of `{op}` must be a number (int or real), got "
                                f"{side.ty.describe()}", side.ast.span, "expected a number",
                                help=conversion_help(side.ty, "int"))
                return self._error(e, names)
        lf, rf = l.fn, r.fn
        if op in ("<", "<=", ">", ">="):
            f = _COMPARE[op]
            return Compiled(e, BOOL, names, lambda env, n: _UFUNCS[f](real_array(lf(env, n), n),
                                                                      real_array(rf(env, n), n)).astype(bool))
        if op == "/":
            rb = _real_range(r.ty)
            if rb is None or rb[0] <= 0 <= rb[1]:
                rng = "unknown" if rb is None else f"{rb[0]}..{rb[1]}"
                self.sink.error(E0301, f"divisor of `/` can be zero (its range is {rng})", r.ast.span, "may be 0",
                                help="divide by an expression whose range excludes 0, e.g. `max(d, 1)` for an "
                                     "int `d`, or narrow its domain")
                return self._error(e, names)
            return Compiled(e, _corners("/", l.ty, r.ty), names,
                            lambda env, n: _DIVIDE(real_array(lf(env, n), n), real_array(rf(env, n), n)))
        arith = {"+": "add", "-": "subtract", "*": "multiply"}[op]
        return Compiled(e, _corners(op, l.ty, r.ty), names,
                        lambda env, n: _UFUNCS[arith](real_array(lf(env, n), n), real_array(rf(env, n), n)))

    def _arith(self, e, op: str, l: Compiled, r: Compiled, names) -> Compiled:
        out = self._arith_unchecked(e, op, l, r, names)
        if out.ty.kind == "int" and max(abs(out.ty.lo), abs(out.ty.hi)) > INT_LIMIT:
            # Values are int64 arrays; a range this wide could wrap around silently.
            self.sink.error(E0301, f"`{op}` can reach {out.ty.lo}..{out.ty.hi}, beyond the 64-bit integers "
                            "mechanisms are computed with", e.span, "may overflow",
                            help="narrow the operands' domains or clip intermediate values")
            return self._error(e, names)
        return out

    def _arith_unchecked(self, e, op: str, l: Compiled, r: Compiled, names) -> Compiled:
        a, b = l.ty, r.ty
        if op == "+":
            return Compiled(e, Ty("int", a.lo + b.lo, a.hi + b.hi), names, lambda env, n: l.fn(env, n) + r.fn(env, n),
                            _one2(operator.add, l, r))
        if op == "-":
            return Compiled(e, Ty("int", a.lo - b.hi, a.hi - b.lo), names, lambda env, n: l.fn(env, n) - r.fn(env, n),
                            _one2(operator.sub, l, r))
        if op == "*":
            corners = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            return Compiled(e, Ty("int", min(corners), max(corners)), names, lambda env, n: l.fn(env, n) * r.fn(env, n),
                            _one2(operator.mul, l, r))
        # // and %: a divisor range that includes 0 could divide by zero on some input.
        if b.lo <= 0 <= b.hi:
            self.sink.error(E0301, f"divisor of `{op}` can be zero (its range is {b.lo}..{b.hi})",
                            r.ast.span, "may be 0", help="guard it, e.g. `max(d, 1)`, or narrow its domain")
            return self._error(e, names)
        if op == "//":
            corners = [a.lo // b.lo, a.lo // b.hi, a.hi // b.lo, a.hi // b.hi]
            return Compiled(e, Ty("int", min(corners), max(corners)), names,
                            lambda env, n: np.floor_divide(l.fn(env, n), r.fn(env, n)))
        mag = max(abs(b.lo), abs(b.hi)) - 1
        lo, hi = (0, mag) if b.lo > 0 else (-mag, 0)
        return Compiled(e, Ty("int", lo, hi), names, lambda env, n: np.mod(l.fn(env, n), r.fn(env, n)))

    def _equality(self, e, l: Compiled, r: Compiled, names) -> Compiled:
        f = "equal" if e.op == "==" else "not_equal"
        a, b = l.ty, r.ty
        if a.kind == "symbol" and b.kind == "symbol":
            self.sink.error(E0301, f"`{e.op}` compares two enum values and no variable", e.span,
                            "always the same result", help="compare a variable with a value")
            return self._error(e, names)
        if a.kind == "symbol" or b.kind == "symbol":
            var, sym = (r, l) if a.kind == "symbol" else (l, r)
            if var.ty.kind != "enum":
                self.sink.error(E0301, f"`{sym.ty.symbol}` is an enum value but is compared with "
                                f"{var.ty.describe()}", sym.ast.span, "not comparable",
                                help=f"compare `{sym.ty.symbol}` with a variable of its enum; an "
                                     f"{var.ty.kind} compares with "
                                     f"{'true/false' if var.ty.kind == 'bool' else 'numbers'}")
                return self._error(e, names)
            sym = self.coerce(sym, var.ty.enum_domain, "value")
            if sym.ty.kind == "error":
                return self._error(e, names)
            return Compiled(e, BOOL, names, lambda env, n: _UFUNCS[f](var.fn(env, n), sym.fn(env, n)),
                            _one2(operator.eq if e.op == "==" else operator.ne, var, sym))
        same = (a.kind == b.kind and (a.kind != "enum" or a.domain == b.domain))
        if not same:
            self.sink.error(E0301, f"`{e.op}` compares {a.describe()} with {b.describe()}", e.span,
                            "types differ", help="compare values of one type: an int with an int, a value of "
                                                 "one enum with a value of the same enum, a bool with a bool")
            return self._error(e, names)
        return Compiled(e, BOOL, names, lambda env, n: _UFUNCS[f](l.fn(env, n), r.fn(env, n)),
                        _one2(operator.eq if e.op == "==" else operator.ne, l, r))

    def _IfThenElse(self, e: A.IfThenElse) -> Compiled:
        c, t, o = self._c(e.cond), self._c(e.then), self._c(e.other)
        names = c.names | t.names | o.names
        if c.ty.kind == "error" or t.ty.kind == "error" or o.ty.kind == "error":
            return self._error(e, names)
        if not self._expect(c, "bool", "condition of `if`"):
            return self._error(e, names)
        # A bare enum value in one branch takes the other branch's enum domain.
        if t.ty.kind == "symbol" and o.ty.kind == "enum":
            t = self.coerce(t, o.ty.enum_domain, "`then` branch")
        elif o.ty.kind == "symbol" and t.ty.kind == "enum":
            o = self.coerce(o, t.ty.enum_domain, "`else` branch")
        if t.ty.kind == "error" or o.ty.kind == "error":
            return self._error(e, names)
        a, b = t.ty, o.ty
        if a.kind == "symbol" and b.kind == "symbol":
            # Both branches are bare values: the declared type decides later; keep symbols.
            return self._symbol_choice(e, c, a.symbol_text, b.symbol_text, names)
        if "real" in (a.kind, b.kind) and a.kind in NUMERIC and b.kind in NUMERIC:
            ra, rb = _real_range(a), _real_range(b)
            ty = REAL if ra is None or rb is None else Ty("real", min(ra[0], rb[0]), max(ra[1], rb[1]))
            tf, of = t.fn, o.fn
            return Compiled(e, ty, names, lambda env, n: np.where(c.fn(env, n), real_array(tf(env, n), n),
                                                                  real_array(of(env, n), n)))
        if a.kind != b.kind or (a.kind == "enum" and a.domain != b.domain):
            self.sink.error(E0301, f"`if` branches differ: {a.describe()} vs {b.describe()}", e.span,
                            "branches must have one type",
                            help="make both branches the declared type, e.g. `if c then 1 else 0` for an int")
            return self._error(e, names)
        ty = Ty("int", min(a.lo, b.lo), max(a.hi, b.hi)) if a.kind == "int" else a
        cf, tf, of = c.fn, t.fn, o.fn
        one = _one_if(c, t, o)
        if a.kind == "bool":
            return Compiled(e, ty, names, lambda env, n: _select_bool(cf(env, n), tf(env, n), of(env, n)), one)
        if a.kind == "enum" or (a.kind == "int" and max(a.hi - b.lo, b.hi - a.lo) < 2**63):
            return Compiled(e, ty, names, lambda env, n: _select_int(cf(env, n), tf(env, n), of(env, n)), one)
        return Compiled(e, ty, names, lambda env, n: np.where(cf(env, n), tf(env, n), of(env, n)), one)

    def _symbol_choice(self, e, c: Compiled, s1: str, s2: str, names) -> Compiled:
        candidates = [d for d in self.enum_members.get(s1, []) if s2 in d.values]
        # Prefer the domain the result is declared with (`output c : Color = if … then red else
        # green` must not pick another enum that happens to contain red and green).
        if self.expected is not None and s1 in self.expected.values and s2 in self.expected.values:
            candidates = [self.expected]
        if not candidates:
            self.sink.error(E0301, f"`{s1}` and `{s2}` are not values of one enum", e.span, "no common enum",
                            help="both branches must be values of the enum the result is declared with")
            return self._error(e, names)
        dom = candidates[0]
        i1, i2 = dom.values.index(s1), dom.values.index(s2)
        cf, step, co = c.fn, i1 - i2, c.one
        return Compiled(e, Ty("enum", domain=dom), names,
                        lambda env, n: np.multiply(cf(env, n), step, dtype=np.int64) + i2,
                        None if co is None else lambda env: i1 if co(env) else i2)

    def _Call(self, e: A.Call) -> Compiled:
        fname = e.func.text
        args = [self._c(a) for a in e.args]
        names = frozenset().union(*[a.names for a in args]) if args else frozenset()
        if fname not in FUNCTIONS:
            hint = did_you_mean(fname, FUNCTIONS) or "allowed functions: " + ", ".join(sorted(FUNCTIONS))
            extra = f"; `{fname}` is a table, look it up with `{fname}[…]`" if fname in self.tables else ""
            self.sink.error(E0204, f"unknown function `{fname}`{extra}", e.func.span, "not a known function",
                            help=hint)
            return self._error(e, names)
        if any(a.ty.kind == "error" for a in args):
            return self._error(e, names)
        lo_n, hi_n = _ARITY[fname]
        if len(args) < lo_n or (hi_n is not None and len(args) > hi_n):
            want = str(lo_n) if lo_n == hi_n else f"at least {lo_n}"
            self.sink.error(E0304, f"`{fname}` takes {want} argument(s), got {len(args)}", e.span,
                            FUNCTIONS[fname], help=f"call it as {FUNCTIONS[fname].split(':')[0]}")
            return self._error(e, names)
        if fname == "mean" or (fname in ("abs", "min", "max", "clip") and any(a.ty.kind == "real" for a in args)):
            return self._real_call(e, fname, args, names)
        want_kind = "bool" if fname in ("count", "xor") else "int"
        ok = all(a.ty.kind == want_kind for a in args) or all(
            [self._expect(a, want_kind, f"argument {i + 1} of `{fname}`") for i, a in enumerate(args)])
        if not ok:
            return self._error(e, names)
        fns = [a.fn for a in args]
        tys = [a.ty for a in args]
        if fname == "abs":
            lo, hi = tys[0].lo, tys[0].hi
            rng = (0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
            return Compiled(e, Ty("int", *rng), names, lambda env, n: np.abs(fns[0](env, n)))
        if fname == "min":
            return Compiled(e, Ty("int", min(t.lo for t in tys), min(t.hi for t in tys)), names,
                            lambda env, n: _fold(np.minimum, fns, env, n))
        if fname == "max":
            return Compiled(e, Ty("int", max(t.lo for t in tys), max(t.hi for t in tys)), names,
                            lambda env, n: _fold(np.maximum, fns, env, n))
        if fname == "mod":
            return self._arith(e, "%", args[0], args[1], names)
        if fname == "clip":
            # min(max(x, lo), hi) is monotone in each argument: the bounds are exact. (The
            # domain check trusts them to skip variables that cannot leave their range.)
            lo = min(max(tys[0].lo, tys[1].lo), tys[2].lo)
            hi = min(max(tys[0].hi, tys[1].hi), tys[2].hi)
            return Compiled(e, Ty("int", lo, hi), names,
                            lambda env, n: np.minimum(np.maximum(fns[0](env, n), fns[1](env, n)), fns[2](env, n)))
        if fname == "count":
            return Compiled(e, Ty("int", 0, len(args)), names,
                            lambda env, n: np.sum([f(env, n).astype(np.int64) for f in fns], axis=0),
                            _one_count(args))
        return Compiled(e, BOOL, names, lambda env, n: np.logical_xor(fns[0](env, n), fns[1](env, n)))

    def _real_call(self, e: A.Call, fname: str, args: list[Compiled], names) -> Compiled:
        """`mean(…)`, and `abs`/`min`/`max`/`clip` with a real argument: exact real results."""
        kinds = {a.ty.kind for a in args}
        if fname == "mean" and kinds == {"bool"}:  # the fraction of true ones
            fns = [a.fn for a in args]
            k = len(args)
            return Compiled(e, Ty("real", Fraction(0), Fraction(1)), names,
                            lambda env, n: _DIVIDE(real_array(np.sum([f(env, n).astype(np.int64) for f in fns],
                                                                     axis=0), n), k))
        for i, a in enumerate(args):
            if a.ty.kind not in NUMERIC:
                self.sink.error(E0301, f"argument {i + 1} of `{fname}` must be a number (int or real)"
                                + (" — or every argument a bool" if fname == "mean" else "")
                                + f", got {a.ty.describe()}", a.ast.span, "expected a number",
                                help=conversion_help(a.ty, "int"))
                return self._error(e, names)
        maybe = [_real_range(a.ty) for a in args]
        ranges = [r for r in maybe if r is not None]
        known = len(ranges) == len(maybe)  # every argument's range is known (`ranges` is used only then)
        fns = [a.fn for a in args]

        def reals(env, n):
            return [real_array(f(env, n), n) for f in fns]

        if fname == "mean":
            k = len(args)
            ty = Ty("real", sum(lo for lo, _ in ranges) / k, sum(hi for _, hi in ranges) / k) if known else REAL
            return Compiled(e, ty, names, lambda env, n: _DIVIDE(np.sum(reals(env, n), axis=0), k))
        if fname == "abs":
            ty = REAL
            if known:
                lo, hi = ranges[0]
                ty = Ty("real", Fraction(0) if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
            return Compiled(e, ty, names, lambda env, n: np.abs(reals(env, n)[0]))
        if fname in ("min", "max"):
            pick = min if fname == "min" else max
            ty = Ty("real", pick(lo for lo, _ in ranges), pick(hi for _, hi in ranges)) if known else REAL
            pick_name = "minimum" if fname == "min" else "maximum"

            def fold(env, n):
                vals = reals(env, n)
                out = vals[0]
                for v in vals[1:]:
                    out = _UFUNCS[pick_name](out, v)
                return out

            return Compiled(e, ty, names, fold)
        if fname == "clip":
            ty = REAL
            if known:
                (xl, xh), (ll, lh), (hl, hh) = ranges
                ty = Ty("real", min(max(xl, ll), hl), min(max(xh, lh), hh))
            return Compiled(e, ty, names,
                            lambda env, n: (lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi))(*reals(env, n)))
        for a in args:  # mod, count, xor: discrete only
            if a.ty.kind == "real":
                self._real_refused(a, f"`{fname}` takes {'bools' if fname in ('count', 'xor') else 'ints'}")
                return self._error(e, names)
        return self._error(e, names)  # pragma: no cover - only abs/min/max/clip/mean come here

    def _Index(self, e: A.Index) -> Compiled:
        tname = e.table.text
        args = [self._c(a) for a in e.args]
        names = frozenset().union(*[a.names for a in args])
        table = self.tables.get(tname)
        if table is None:
            self.sink.error(E0205, f"unknown table `{tname}`", e.table.span, "not a declared table",
                            help=did_you_mean(tname, self.tables, "tables"))
            return self._error(e, names)
        if any(a.ty.kind == "error" for a in args):
            return self._error(e, names)
        if len(args) != len(table.key_domains):
            self.sink.error(E0304, f"table `{tname}` takes {len(table.key_domains)} key(s), got {len(args)}",
                            e.span, "wrong number of keys",
                            help=f"look it up with {len(table.key_domains)} key(s): "
                                 f"`{tname}[{', '.join(f'k{i + 1}' for i in range(len(table.key_domains)))}]`")
            return self._error(e, names)
        coded = []
        for i, (a, dom) in enumerate(zip(args, table.key_domains)):
            if a.ty.kind == "real":
                self._real_refused(a, f"key {i + 1} of table `{tname}` must be {dom.describe()}")
                return self._error(e, names)
            if dom.kind == "enum":
                a = self.coerce(a, dom, f"key {i + 1} of `{tname}`")
            elif a.ty.kind != dom.kind:
                self.sink.error(E0301, f"key {i + 1} of `{tname}` must be {dom.describe()}, got {a.ty.describe()}",
                                a.ast.span, "wrong key type",
                                help=conversion_help(a.ty, dom.kind, dom))
                return self._error(e, names)
            elif dom.kind == "int" and (a.ty.lo < dom.lo or a.ty.hi > dom.hi):
                self.sink.error(E0303, f"key {i + 1} of `{tname}` ranges over {a.ty.lo}..{a.ty.hi}, "
                                f"outside the table's {dom.describe()}", a.ast.span, "may be out of range",
                                help=f"clip it: `clip(…, {dom.lo}, {dom.hi})`")
                return self._error(e, names)
            if a.ty.kind == "error":
                return self._error(e, names)
            coded.append((a.fn, dom))
        vdom = table.value_domain
        ty = {"bool": BOOL, "int": Ty("int", vdom.lo, vdom.hi)}.get(vdom.kind) or Ty("enum", domain=vdom)
        values = table.values

        def lookup(env, n):
            idx = tuple(dom.codes(np.broadcast_to(fn(env, n), (n,))) for fn, dom in coded)
            return values[idx]

        return Compiled(e, ty, names, lookup)

    # helpers -----------------------------------------------------------------
    def _misspelt_member(self, e: A.Binary) -> Compiled | None:
        """`order == ABC` where ABC is no name at all: report it against the enum's values."""
        for unknown, other in ((e.right, e.left), (e.left, e.right)):
            if (isinstance(unknown, A.NameRef) and unknown.name not in self.variables
                    and unknown.name not in self.enum_members):
                probe = ExprCompiler(DiagnosticSink(), self.variables, self.tables, self.enum_members,
                                     self.context).compile(other)
                if probe.ty.kind == "enum":
                    self._c(other)  # report the other side's own problems, if any
                    self._unknown_member(unknown, unknown.name, probe.ty.enum_domain)
                    return self._error(e, probe.names)
        return None

    def _expect(self, c: Compiled, kind: str, what: str) -> bool:
        if c.ty.kind == kind:
            return True
        if c.ty.kind == "real":
            self._real_refused(c, f"{what} must be {kind}")
            return False
        self.sink.error(E0301, f"{what} must be {kind}, got {c.ty.describe()}", c.ast.span,
                        f"expected {kind}", help=conversion_help(c.ty, kind))
        return False

    def _real_refused(self, c: Compiled, why: str, help: str | None = None) -> None:
        """E0220: a real where only a discrete value (bool, int, enum) can go."""
        self.sink.error(E0220, f"{why}, but this is a real value", c.ast.span, "a real",
                        help=help or "reals are exact fractions that a check compares within a tolerance; an "
                                     "index, a table key, an enum value or an int needs a discrete value: "
                                     "compute it from the ints (`count(…)`, `sum(…)`, `//`) instead")

    def _unknown_member(self, e, symbol: str, domain: Domain) -> None:
        self.sink.error(E0209, f"`{symbol}` is not a value of {domain.describe()}", e.span,
                        "unknown enum value", help=did_you_mean(symbol, domain.values, "values"))


# node type -> method: one dict lookup per node (building "_" + the type's name and a getattr
# for every node was measurable on large models)
_DISPATCH: dict[type, Callable[[ExprCompiler, Any], Compiled]] = {
    A.IntLit: ExprCompiler._IntLit, A.BoolLit: ExprCompiler._BoolLit, A.StrLit: ExprCompiler._StrLit,
    A.NameRef: ExprCompiler._NameRef, A.Unary: ExprCompiler._Unary, A.Binary: ExprCompiler._Binary,
    A.IfThenElse: ExprCompiler._IfThenElse, A.Call: ExprCompiler._Call, A.Index: ExprCompiler._Index,
}


# ───────────────────────── sympy (analysis and printing only) ─────────────────────────

def to_sympy(expr: A.Expr, tables: Mapping[str, object] | None = None) -> sympy.Basic:
    """Build a sympy object from our AST (never from text): for LaTeX and symbolic analysis.

    Variables and enum values become `sympy.Symbol`s (a Symbol's name is inert data, it is
    never parsed); tables become undefined functions applied to their keys. sympy is imported
    here, not at module level: `causalspec parse` and `graph` must not pay its import time.
    """
    import sympy
    from sympy.core.function import AppliedUndef

    def truth(x):
        """A condition: a table or family element read as a bool (`Prev[i]`, an undefined
        function applied) is not a sympy Boolean, so it is compared with True."""
        return sympy.Eq(x, sympy.true, evaluate=False) if isinstance(x, AppliedUndef) else x

    def go(e):
        if isinstance(e, A.IntLit):
            return sympy.Integer(e.value)
        if isinstance(e, A.BoolLit):
            return sympy.true if e.value else sympy.false
        if isinstance(e, A.StrLit):
            return sympy.Symbol(e.value)
        if isinstance(e, A.NameRef):
            return sympy.Symbol(e.name)
        if isinstance(e, A.Unary):
            x = go(e.operand)
            return sympy.Not(truth(x)) if e.op == "not" else -x
        if isinstance(e, A.IfThenElse):
            return sympy.Piecewise((go(e.then), truth(go(e.cond))), (go(e.other), True))
        if isinstance(e, A.Call):
            args = [go(a) for a in e.args]
            f = e.func.text
            if f == "abs":
                return sympy.Abs(args[0])
            if f == "min":
                return sympy.Min(*args)
            if f == "max":
                return sympy.Max(*args)
            if f == "mod":
                return sympy.Mod(*args)
            if f == "clip":
                return sympy.Min(sympy.Max(args[0], args[1]), args[2])
            if f == "count":
                return sympy.Add(*[sympy.Piecewise((1, truth(a)), (0, True)) for a in args])
            if f == "xor":
                return sympy.Xor(*args)
            if f == "mean":
                return sympy.Add(*[sympy.Piecewise((1, a), (0, True)) if isinstance(a, sympy.logic.boolalg.Boolean)
                                   else a for a in args]) / len(args)
            return sympy.Function(f)(*args)
        if isinstance(e, A.Index):
            return sympy.Function(e.table.text)(*[go(a) for a in e.args])
        if isinstance(e, A.Aggregate):  # a family's mechanism as written, e.g. for a graph's family node
            j = sympy.Symbol(e.var.text, integer=True)
            body = go(e.body)
            if e.func.text == "count":
                body = sympy.Piecewise((1, truth(body)), (0, True))
            if e.where is not None:
                body = sympy.Piecewise((body, truth(go(e.where))), (0, True))
            if e.func.text in ("count", "sum"):
                return sympy.Sum(body, (j, go(e.lo), go(e.hi)))
            return sympy.Function(e.func.text)(body, sympy.Tuple(j, go(e.lo), go(e.hi)))
        if isinstance(e, A.Binary):
            a, b = go(e.left), go(e.right)
            op = e.op
            if op == "and":
                return sympy.And(truth(a), truth(b))
            if op == "or":
                return sympy.Or(truth(a), truth(b))
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "//":
                return sympy.floor(a / b)
            if op == "/":
                return a / b
            if op == "%":
                return sympy.Mod(a, b)
            rel = {"==": sympy.Eq, "!=": sympy.Ne, "<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt,
                   ">=": sympy.Ge}[op]
            return rel(a, b, evaluate=False)
        raise TypeError(f"not an expression node: {type(e).__name__}")

    return go(expr)


def to_latex(expr: A.Expr) -> str:
    import sympy  # lazy, see to_sympy

    return sympy.latex(to_sympy(expr))
