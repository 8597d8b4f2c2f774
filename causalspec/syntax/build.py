"""Turn lark's parse tree into our AST (frozen dataclasses with spans).

Why a Transformer keyed by rule name: the grammar's rule/alias names are the contract;
each method below builds exactly one AST node kind, so a grammar change that renames a
rule fails loudly (lark raises on an unhandled rule only for `?`-less rules we forgot —
tests/syntax/test_grammar_coverage.py checks every rule is exercised).
"""

from __future__ import annotations

import ast as _pyast
import math
from typing import Any

import lark.visitors
from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError
from lark.tree import Meta

from causalspec.codes import E0104, E0316, E0713
from causalspec.diagnostics import Diagnostic, Span, SpecError
from causalspec.syntax import ast as A

# lark's marker for @v_args(meta=True); private, so a lark without it uses lark's dispatch
_vargs_meta: object = getattr(lark.visitors, "_vargs_meta", object())


class TooDeep(Exception):
    """`AstBuilder.build` met a tree nested deeper than its limit."""


def unquote(token: Token, file: str) -> str:
    """Decode a string literal's escapes without evaluating anything.

    `ast.literal_eval` only accepts Python literals (never calls code); it is applied to a
    token our lexer already restricted to one double-quoted string.
    """
    try:
        value = _pyast.literal_eval(str(token))
    except (ValueError, SyntaxError) as exc:
        raise SpecError([Diagnostic(E0104, f"invalid string literal: {exc}", token_span(token, file),
                                    "cannot decode this string",
                                    help="use \\\" for a quote and \\\\ for a backslash")]) from exc
    if not isinstance(value, str):  # pragma: no cover - the lexer guarantees a str literal
        raise SpecError([Diagnostic(E0104, "invalid string literal", token_span(token, file),
                                    help="write a plain double-quoted string")])
    return value


# Integers are evaluated as int64 arrays; larger literals are refused where they are written
# (semantics/expr.py's INT_LIMIT is the same bound). Checking the digit count first keeps a
# 5,000-digit literal from reaching int(), which refuses strings over 4,300 digits.
INT_LIMIT = 2**62
_INT_DIGITS = len(str(INT_LIMIT))


def int_literal(token: Token, file: str, negative: bool = False) -> int:
    """An INT token's value, or `SpecError` E0104 when it is beyond 2^62."""
    text = str(token).lstrip("0") or "0"
    if len(text) <= _INT_DIGITS:
        value = int(text)
        if value <= INT_LIMIT:
            return -value if negative else value
    shown = text if len(text) <= 30 else f"{text[:12]}…{text[-6:]} ({len(text)} digits)"
    raise SpecError([Diagnostic(E0104, f"integer {'-' if negative else ''}{shown} is too large (at most 2^62)",
                                token_span(token, file), "too large",
                                help=f"integers in a spec are at most 2^62 = {INT_LIMIT}; every range, "
                                     "count and index is far smaller than that")])


def number_literal(token: Token, file: str) -> int | float:
    """A SIGNED_NUMBER token's value (an int when written without `.`/exponent), or E0104 when
    it is too large to be a finite float or an int within 2^62."""
    text = str(token)
    if text.lstrip("-").isdigit():
        return int_literal(Token.new_borrow_pos("INT", text.lstrip("-"), token), file, text.startswith("-"))
    value = float(text)
    if math.isfinite(value):
        return value
    shown = text if len(text) <= 30 else f"{text[:20]}…"
    raise SpecError([Diagnostic(E0104, f"number {shown} is too large (it overflows to infinity)",
                                token_span(token, file), "not a finite number",
                                help="write a finite number: thresholds are fractions like 0.9, "
                                     "weights and arguments small positive numbers")])


def token_span(token: Token, file: str) -> Span:
    return Span(file, token.line or 0, token.column or 0, token.end_line or 0, token.end_column or 0)


class AstBuilder(Transformer):
    def __init__(self, file: str, text: str):
        super().__init__(visit_tokens=False)
        self.file = file
        self.text = text
        self._dispatch: dict[str, tuple[Any, bool]] = {}

    def _entry(self, rule: str) -> tuple[Any, bool] | None:
        """The bound method for `rule` and whether it takes the meta, looked up once per rule:
        lark wraps a `@v_args(meta=True)` method anew on every call (a functools.update_wrapper
        each time), a measurable share of parsing a 10,000-variable spec. None: an unknown
        rule or another v_args form, which take lark's own path."""
        entry = self._dispatch.get(rule)
        if entry is None:
            attr = getattr(type(self), rule, None)
            wrapper = getattr(attr, "visit_wrapper", None)
            if wrapper is _vargs_meta and attr is not None:  # (a wrapper implies an attribute)
                entry = (attr.base_func.__get__(self), True)
            elif wrapper is None and attr is not None:
                entry = (getattr(self, rule), False)
            else:
                return None
            self._dispatch[rule] = entry
        return entry

    def _call_userfunc(self, tree, new_children=None):
        """lark's dispatch (used by `transform`), through `_entry`."""
        children = new_children if new_children is not None else tree.children
        entry = self._entry(tree.data)
        if entry is None:
            return super()._call_userfunc(tree, new_children)
        fn, with_meta = entry
        try:
            return fn(tree.meta, children) if with_meta else fn(children)
        except Exception as exc:  # as lark does: parse() unwraps a SpecError from VisitError
            raise VisitError(tree.data, tree, exc) from exc

    def build(self, tree: Tree, max_depth: int) -> Any:
        """`transform(tree)` (same methods, same order, same VisitError on a failure), as one
        tight recursive walk instead of lark's generator per node — a fifth of the time of
        parsing a 10,000-variable spec. Raises `TooDeep` on reaching a tree deeper than
        `max_depth` (the root is at depth 1), before building anything below it, so the
        recursion stays bounded: the parser then reports the nesting (E0102).

        The dispatch of `_call_userfunc` is inlined (one dict lookup per node, and a tree's
        meta read without lark's property unless it has none yet): the walk visits every
        node of the parse tree, ~110,000 on 10,000 variables."""
        entries = self._dispatch
        resolve = self._entry
        fallback = self._call_userfunc

        def walk(node: Tree, depth: int) -> Any:
            if depth > max_depth:
                raise TooDeep()
            depth += 1
            children = [walk(c, depth) if isinstance(c, Tree) else c for c in node.children]
            entry = entries.get(node.data) or resolve(node.data)
            if entry is None:
                return fallback(node, children)
            fn, with_meta = entry
            try:
                if with_meta:
                    meta = node._meta
                    return fn(meta if meta is not None else node.meta, children)
                return fn(children)
            except Exception as exc:  # as lark does: parse() unwraps a SpecError from VisitError
                raise VisitError(node.data, node, exc) from exc

        return walk(tree, 1)

    # helpers ---------------------------------------------------------------
    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.file)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _name(self, tok: Token | A.Name) -> A.Name:
        if isinstance(tok, A.Name):  # already built (`H[2]`, an element of a family)
            return tok
        return A.Name(str(tok), span=token_span(tok, self.file))

    def _int(self, tok: Token) -> int:
        return int_literal(tok, self.file)

    def _str(self, tok: Token) -> str:
        return unquote(tok, self.file)

    @staticmethod
    def _tokens(children: list, type_: str) -> list[Token]:
        return [c for c in children if isinstance(c, Token) and c.type == type_]

    # top level -------------------------------------------------------------
    @v_args(meta=True)
    def start(self, meta, children):
        return A.Spec(tuple(children), file=self.file, span=self._span(meta))

    # model -------------------------------------------------------------------
    @v_args(meta=True)
    def model(self, meta, c):
        return A.Model(self._name(c[0]), tuple(c[1:]), span=self._span(meta))

    @v_args(meta=True)
    def domain_decl(self, meta, c):
        return A.DomainDecl(self._name(c[0]), c[1], span=self._span(meta))

    @v_args(meta=True)
    def const_decl(self, meta, c):
        return A.ConstDecl(self._name(c[0]), c[1], span=self._span(meta))

    @v_args(meta=True)
    def input_decl(self, meta, c):
        entries, type_ = c[0], c[1]
        names = tuple(e[0] if isinstance(e, tuple) else self._name(e) for e in entries)
        families = tuple(e[1] if isinstance(e, tuple) else None for e in entries)
        if not any(families):
            families = ()
        dist = next((x for x in c[2:] if isinstance(x, (A.Uniform, A.Weighted))), None)
        where = next((x for x in c[2:] if isinstance(x, _Where)), None)
        return A.InputDecl(names, type_, dist, where.expr if where else None, families, span=self._span(meta))

    def input_names(self, c):
        return tuple(c)

    @v_args(meta=True)
    def input_family(self, meta, c):
        return (self._name(c[0]), A.FamilyRange(None, c[1], c[2], span=self._span(meta)))

    @v_args(meta=True)
    def family_index(self, meta, c):
        return A.FamilyRange(self._name(c[0]), c[1], c[2], span=self._span(meta))

    def _var(self, kind, meta, c):
        index = c[1] if isinstance(c[1], A.FamilyRange) else None
        rest = c[2:] if index is not None else c[1:]
        return A.VarDecl(kind, self._name(c[0]), rest[0], rest[1], index, span=self._span(meta))

    @v_args(meta=True)
    def var_decl(self, meta, c):
        return self._var("var", meta, c)

    @v_args(meta=True)
    def output_decl(self, meta, c):
        return self._var("output", meta, c)

    @v_args(meta=True)
    def elem_ref(self, meta, c):
        return A.Name(f"{c[0]}[{self._int(c[1])}]", span=self._span(meta))

    @v_args(meta=True)
    def table_decl(self, meta, c):
        return A.TableDecl(self._name(c[0]), c[1], c[2], tuple(c[3:]), span=self._span(meta))

    @v_args(meta=True)
    def sample_decl(self, meta, c):
        return A.SampleDecl(self._name(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def example_decl(self, meta, c):
        interventions: tuple = ()
        if isinstance(c[0], _Intervention):
            interventions, c = c[0].assignments, c[1:]
        return A.ExampleDecl(interventions, c[0], c[1], span=self._span(meta))

    def example_inputs(self, c):
        return tuple(c)

    def example_expect(self, c):
        return tuple(c)

    @v_args(meta=True)
    def edges_decl(self, meta, c):
        return A.EdgesDecl(tuple(c), span=self._span(meta))

    def type_list(self, c):
        return tuple(c)

    @v_args(meta=True)
    def uniform_dist(self, meta, c):
        return A.Uniform(span=self._span(meta))

    @v_args(meta=True)
    def weighted_dist(self, meta, c):
        return A.Weighted(tuple(c), span=self._span(meta))

    @v_args(meta=True)
    def weight(self, meta, c):
        return A.Weight(c[0], c[1], span=self._span(meta))

    def where_clause(self, c):
        return _Where(c[0])

    @v_args(meta=True)
    def table_entry(self, meta, c):
        return A.TableEntry(c[0], c[1], span=self._span(meta))

    def key_single(self, c):
        return (c[0],)

    def key_tuple(self, c):
        return tuple(c)

    def key_default(self, c):
        return None

    def intervention(self, c):
        return _Intervention(tuple(c))

    @v_args(meta=True)
    def assignment(self, meta, c):
        return A.Assignment(self._name(c[0]), c[1], span=self._span(meta))

    @v_args(meta=True)
    def edge(self, meta, c):
        return A.Edge(self._name(c[0]), self._name(c[1]), span=self._span(meta))

    # types -------------------------------------------------------------------
    @v_args(meta=True)
    def bool_type(self, meta, c):
        return A.BoolType(span=self._span(meta))

    @v_args(meta=True)
    def real_type(self, meta, c):
        return A.RealType(span=self._span(meta))

    @v_args(meta=True)
    def int_type(self, meta, c):
        return A.IntType(c[0], c[1], span=self._span(meta))

    @v_args(meta=True)
    def enum_type(self, meta, c):
        return A.EnumType(tuple(c), span=self._span(meta))

    @v_args(meta=True)
    def enum_file_type(self, meta, c):
        return A.EnumFileType(self._str(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def named_type(self, meta, c):
        return A.NamedType(self._name(c[0]), span=self._span(meta))

    def member_name(self, c):
        return str(c[0])

    def member_string(self, c):
        return self._str(c[0])

    # literals ----------------------------------------------------------------
    @v_args(meta=True)
    def int_lit(self, meta, c):
        return A.IntLit(c[0], span=self._span(meta))

    @v_args(meta=True)
    def frac_lit(self, meta, c):
        denominator = self._int(c[1])
        if denominator == 0:
            raise SpecError([Diagnostic(E0104, "fraction with denominator 0", self._span(meta), "divides by zero",
                                        help="write a fraction like `1/3` with a non-zero denominator")])
        return A.FracLit(c[0], denominator, span=self._span(meta))

    @v_args(meta=True)
    def true_lit(self, meta, c):
        return A.BoolLit(True, span=self._span(meta))

    @v_args(meta=True)
    def false_lit(self, meta, c):
        return A.BoolLit(False, span=self._span(meta))

    @v_args(meta=True)
    def str_lit(self, meta, c):
        return A.StrLit(self._str(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def symbol_lit(self, meta, c):
        return A.SymbolLit(str(c[0]), span=self._span(meta))

    def signed_int(self, c):
        return self._int(c[0])

    def neg_int(self, c):
        return int_literal(c[0], self.file, negative=True)

    @v_args(meta=True)
    def const_bound(self, meta, c):
        return A.NameRef(str(c[0]), span=self._span(meta))

    def expr_bound(self, c):
        return c[0]

    def number(self, c):
        return float(number_literal(c[0], self.file))

    # expressions -------------------------------------------------------------
    @v_args(meta=True)
    def if_expr(self, meta, c):
        return A.IfThenElse(c[0], c[1], c[2], span=self._span(meta))

    @v_args(meta=True)
    def or_op(self, meta, c):
        return A.Binary("or", c[0], c[1], span=self._span(meta))

    @v_args(meta=True)
    def and_op(self, meta, c):
        return A.Binary("and", c[0], c[1], span=self._span(meta))

    @v_args(meta=True)
    def not_op(self, meta, c):
        return A.Unary("not", c[0], span=self._span(meta))

    @v_args(meta=True)
    def compare(self, meta, c):
        return A.Binary(c[1], c[0], c[2], span=self._span(meta))

    @v_args(meta=True)
    def binary(self, meta, c):
        return A.Binary(c[1], c[0], c[2], span=self._span(meta))

    @v_args(meta=True)
    def neg(self, meta, c):
        return A.Unary("-", c[0], span=self._span(meta))

    def comp_op(self, c):
        return str(c[0])

    add_op = mul_op = bound_op = comp_op

    @v_args(meta=True)
    def int_expr(self, meta, c):
        return A.IntLit(self._int(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def true_expr(self, meta, c):
        return A.BoolLit(True, span=self._span(meta))

    @v_args(meta=True)
    def false_expr(self, meta, c):
        return A.BoolLit(False, span=self._span(meta))

    @v_args(meta=True)
    def str_expr(self, meta, c):
        return A.StrLit(self._str(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def name_expr(self, meta, c):
        return A.NameRef(str(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def call_expr(self, meta, c):
        return A.Call(self._name(c[0]), tuple(c[1:]), span=self._span(meta))

    @v_args(meta=True)
    def index_expr(self, meta, c):
        return A.Index(self._name(c[0]), tuple(c[1:]), span=self._span(meta))

    @v_args(meta=True)
    def aggregate_expr(self, meta, c):
        where = next((x.expr for x in c[4:-1] if isinstance(x, _Where)), None)
        return A.Aggregate(self._name(c[0]), self._name(c[1]), c[2], c[3], where, c[-1], span=self._span(meta))

    def agg_where(self, c):
        return _Where(c[0])

    # networks ----------------------------------------------------------------
    @v_args(meta=True)
    def network(self, meta, c):
        body = c[2] if len(c) > 2 else None
        return A.Network(self._name(c[0]), c[1], tuple(body or ()), braced=body is not None,
                         span=self._span(meta))

    def network_body(self, c):
        return list(c)

    @v_args(meta=True)
    def hf_backend(self, meta, c):
        return A.HFBackend(self._str(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def torch_backend(self, meta, c):
        return A.TorchBackend(self._str(c[0]), self._str(c[1]), span=self._span(meta))

    @v_args(meta=True)
    def hook_stmt(self, meta, c):
        return A.HookStmt(c[0], self._str(c[1]), span=self._span(meta))

    hook_kind = comp_op

    def _option(self, key, meta, c):
        tok = c[0]
        quoted = tok.type == "STRING"
        value = self._str(tok) if quoted else str(tok)
        return A.OptionStmt(key, value, quoted, span=self._span(meta))

    @v_args(meta=True)
    def device_stmt(self, meta, c):
        return self._option("device", meta, c)

    @v_args(meta=True)
    def dtype_stmt(self, meta, c):
        return self._option("dtype", meta, c)

    @v_args(meta=True)
    def class_stmt(self, meta, c):
        return self._option("class", meta, c)

    @v_args(meta=True)
    def flag_stmt(self, meta, c):
        return A.FlagStmt("trust_remote_code", span=self._span(meta))

    @v_args(meta=True)
    def device_map_stmt(self, meta, c):
        return self._option("device_map", meta, c)

    @v_args(meta=True)
    def engine_stmt(self, meta, c):
        remote = c[1] if len(c) > 1 else None  # ("remote", host or None)
        return A.EngineStmt(self._name(c[0]), remote is not None, remote[1] if remote else None,
                            span=self._span(meta))

    def remote_clause(self, c):
        return ("remote", self._str(c[0]) if c else None)

    @v_args(meta=True)
    def prompt_single(self, meta, c):
        return A.PromptDecl(None, self._str(c[0]), (), span=self._span(meta))

    @v_args(meta=True)
    def prompt_by(self, meta, c):
        return A.PromptDecl(self._name(c[0]), None, tuple(c[1:]), span=self._span(meta))

    @v_args(meta=True)
    def template_case(self, meta, c):
        return A.TemplateCase(c[0], self._str(c[1]), span=self._span(meta))

    @v_args(meta=True)
    def answer_decl(self, meta, c):
        return A.AnswerDecl(self._str(c[0]), c[1] if len(c) > 1 else None, span=self._span(meta))

    token_part = comp_op

    @v_args(meta=True)
    def position_decl(self, meta, c):
        if len(c) == 3:  # `position S[i in 1..3] = …`
            return A.PositionDecl(self._name(c[0]), c[2], c[1], span=self._span(meta))
        return A.PositionDecl(self._name(c[0]), c[1], span=self._span(meta))

    @v_args(meta=True)
    def position_list(self, meta, c):
        return A.PositionDecl(self._name(c[0]), c[2], c[1], tuple(c[2:]), span=self._span(meta))

    @v_args(meta=True)
    def slot_var_pos(self, meta, c):
        part = next((x for x in c[2:] if isinstance(x, str) and not isinstance(x, Token)), None)
        return A.SlotPos(self._name(c[0]), None, part, self._name(c[1]), span=self._span(meta))

    @v_args(meta=True)
    def elem_pos(self, meta, c):
        return A.ElemPos(self._name(c[0]), self._name(c[1]), span=self._span(meta))

    @v_args(meta=True)
    def elem_index_pos(self, meta, c):  # `S[2]`: the position family's element, a declared name
        return A.NamedPos(A.Name(f"{c[0]}[{self._int(c[1])}]", span=self._span(meta)), span=self._span(meta))

    @v_args(meta=True)
    def slot_pos(self, meta, c):
        occurrence = next((self._int(x) for x in c[1:] if isinstance(x, Token) and x.type == "INT"), None)
        part = next((x for x in c[1:] if isinstance(x, str) and not isinstance(x, Token)), None)
        return A.SlotPos(self._name(c[0]), occurrence, part, span=self._span(meta))

    @v_args(meta=True)
    def named_pos(self, meta, c):
        return A.NamedPos(self._name(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def offset_pos(self, meta, c):
        sign = -1 if c[1] == "-" else 1
        return A.OffsetPos(self._name(c[0]), sign * self._int(c[2]), span=self._span(meta))

    @v_args(meta=True)
    def index_pos(self, meta, c):
        return A.IndexPos(self._int(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def range_pos(self, meta, c):
        return A.RangePos(self._int(c[0]), self._int(c[1]), span=self._span(meta))

    # alignments --------------------------------------------------------------
    @v_args(meta=True)
    def align(self, meta, c):
        return A.Alignment(self._name(c[0]), self._name(c[1]), self._name(c[2]), tuple(c[3:]),
                           span=self._span(meta))

    @v_args(meta=True)
    def var_alignment(self, meta, c):
        name, index = self._target(c[0])
        return A.VarAlignment(name, tuple(c[1:]), index, span=self._span(meta))

    @v_args(meta=True)
    def output_alignment(self, meta, c):
        name, index = self._target(c[0])
        pos = next((x for x in c[1:] if isinstance(x, _Positions)), None)
        decoder = next((self._name(x) for x in c[1:] if isinstance(x, Token)), None)
        return A.OutputAlignment(name, decoder, pos.items if pos else None, pos.braced if pos else False, index,
                                 span=self._span(meta))

    def _target(self, t) -> tuple[A.Name, A.FamilyRange | None]:
        if isinstance(t, tuple):
            return t
        return self._name(t), None

    @v_args(meta=True)
    def family_target(self, meta, c):
        return (self._name(c[0]), A.FamilyRange(self._name(c[1]), None, None, span=self._span(meta)))

    @v_args(meta=True)
    def family_range_target(self, meta, c):
        return (self._name(c[0]), A.FamilyRange(self._name(c[1]), c[2], c[3], span=self._span(meta)))

    @v_args(meta=True)
    def site_ref(self, meta, c):
        site = c[0]
        pos = next((x for x in c[1:] if isinstance(x, _Positions)), None)
        feat = next((x for x in c[1:] if isinstance(x, (A.SliceFeaturizer, A.CallFeaturizer))), None)
        return A.SiteRef(site, pos.items if pos else None, pos.braced if pos else False, feat,
                         span=self._span(meta))

    @v_args(meta=True)
    def named_site(self, meta, c):
        path = c[0]
        index = next((x for x in c[1:] if isinstance(x, _Index)), None)
        part = next((x for x in c[1:] if isinstance(x, _Part)), None)
        return A.NamedSite(path, index.values if index else None, part.text if part else None,
                           span=self._span(meta))

    @v_args(meta=True)
    def module_site(self, meta, c):
        return A.ModuleSite(self._str(c[0]), c[1], span=self._span(meta))

    module_io = comp_op

    def dotted_name(self, c):
        return tuple(str(t) for t in c)

    def site_index(self, c):
        return _Index(tuple(self._int(t) for t in c))

    def site_part(self, c):
        return _Part(str(c[0]))

    @v_args(meta=True)
    def position(self, meta, c):
        # `@ {A}` and `@ A` differ only in braces; remember which for the printer.
        braced = len(c) != 1 or (not meta.empty and "{" in self.text[meta.start_pos:meta.end_pos])
        return _Positions(tuple(c), braced)

    @v_args(meta=True)
    def slice_featurizer(self, meta, c):
        return A.SliceFeaturizer(self._int(c[0]), self._int(c[1]), span=self._span(meta))

    @v_args(meta=True)
    def call_featurizer(self, meta, c):
        args = c[1] if len(c) > 1 else None
        return A.CallFeaturizer(self._name(c[0]), args, span=self._span(meta))

    def feat_args(self, c):
        return tuple(c)

    @v_args(meta=True)
    def pos_arg(self, meta, c):
        value, kind = c[0]
        return A.FeatArg(None, value, kind, span=self._span(meta))

    @v_args(meta=True)
    def kw_arg(self, meta, c):
        value, kind = c[1]
        return A.FeatArg(str(c[0]), value, kind, span=self._span(meta))

    def number_value(self, c):
        return number_literal(c[0], self.file), "number"

    def string_value(self, c):
        return self._str(c[0]), "string"

    def name_value(self, c):
        return str(c[0]), "name"

    def list_value(self, c):
        return tuple(number_literal(t, self.file) for t in c), "list"

    # checks ------------------------------------------------------------------
    @v_args(meta=True)
    def check(self, meta, c):
        alias = c[1] if len(c) > 1 and isinstance(c[1], _Alias) else None
        body = c[2:] if alias else c[1:]
        return A.Check(self._name(c[0]), alias.name if alias else None, tuple(body),
                       span=self._span(meta))

    def check_alias(self, c):
        return _Alias(self._name(c[0]))

    @v_args(meta=True)
    def interchange_stmt(self, meta, c):
        return A.Interchange(tuple(c), span=self._span(meta))

    @v_args(meta=True)
    def single_set(self, meta, c):
        return A.InterchangeSet(((self._name(c[0]),),), braced=False, span=self._span(meta))

    @v_args(meta=True)
    def braced_set(self, meta, c):
        return A.InterchangeSet(tuple(c), braced=True, span=self._span(meta))

    def source_group(self, c):
        return tuple(self._name(t) for t in c)

    @v_args(meta=True)
    def setting_stmt(self, meta, c):
        return A.Setting(c[0], self._int(c[1]), span=self._span(meta))

    setting = comp_op

    @v_args(meta=True)
    def locate_stmt(self, meta, c):
        pos = next((x for x in c[2:] if isinstance(x, _Positions)), None)
        feat = next((x for x in c[2:] if isinstance(x, (A.SliceFeaturizer, A.CallFeaturizer))), None)
        joint: tuple[tuple[A.Name, A.FamilyRange | None], ...] = ()
        if isinstance(c[0], _LocateSet):
            joint = c[0].items
            name, index = joint[0]
        else:
            name, index = self._target(c[0])
        return A.Locate(name, c[1], pos.items if pos else None, pos.braced if pos else False, feat, index, joint,
                        span=self._span(meta))

    def locate_set(self, c):
        return _LocateSet(tuple(self._target(t) for t in c))

    @v_args(meta=True)
    def locate_latents(self, meta, c):
        pos = next((x for x in c[3:] if isinstance(x, _Positions)), None)
        feat = next(x for x in c[3:] if isinstance(x, (A.SliceFeaturizer, A.CallFeaturizer)))
        if isinstance(c[0], (_LocateSet, tuple)):
            raise SpecError([Diagnostic(E0713, "`locate … over latents of` searches one variable's latents",
                                        self._span(meta), "a family or a set",
                                        help="name one variable or one element: `locate H[2] over latents of …`")])
        return A.LocateLatents(self._name(c[0]), c[2], feat, pos.items if pos else None,
                               pos.braced if pos else False, span=self._span(meta))

    @v_args(meta=True)
    def named_sweep(self, meta, c):
        ranges = next((x for x in c[1:] if isinstance(x, _Ranges)), None)
        part = next((x for x in c[1:] if isinstance(x, _Part)), None)
        return A.SweepSite(c[0], ranges.values if ranges else None, part.text if part else None,
                           span=self._span(meta))

    @v_args(meta=True)
    def module_sweep(self, meta, c):
        return A.SweepSite(None, None, None, self._str(c[0]), c[1], span=self._span(meta))

    def sweep_index(self, c):
        return _Ranges(tuple(c))

    def sweep_range(self, c):
        lo = self._int(c[0])
        return (lo, self._int(c[1]) if len(c) > 1 else lo)

    @v_args(meta=True)
    def controls_stmt(self, meta, c):
        args = tuple(a for _, a in c)
        return A.Controls(tuple(n for n, _ in c), args if any(a is not None for a in args) else (),
                          span=self._span(meta))

    def control_ref(self, c):
        return self._name(c[0]), (c[1] if len(c) > 1 else None)

    @v_args(meta=True)
    def expect_stmt(self, meta, c):
        return A.Expect(tuple(c), span=self._span(meta))

    @v_args(meta=True)
    def condition(self, meta, c):
        tolerances = [x for x in c[3:] if isinstance(x, A.Tolerance)]
        if len(tolerances) > 1:
            raise SpecError([Diagnostic(E0316, "a condition states its tolerance twice", tolerances[1].span,
                                        "second `within`", help="keep one `within` per condition")])
        modes = tuple(x for x in c[3:] if not isinstance(x, A.Tolerance))
        return A.Condition(c[0], c[1], c[2], modes, tolerances[0] if tolerances else None, span=self._span(meta))

    @v_args(meta=True)
    def tolerance(self, meta, c):
        return A.Tolerance(str(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def output_value_stmt(self, meta, c):
        return A.OutputValueStmt(self._str(c[0]) if c else None, span=self._span(meta))

    stat_mode = comp_op

    @v_args(meta=True)
    def metric(self, meta, c):
        return A.Metric(self._name(c[0]), self._name(c[1]) if len(c) > 1 else None,
                        span=self._span(meta))

    # circuits ------------------------------------------------------------------
    @v_args(meta=True)
    def circuit(self, meta, c):
        return A.Circuit(self._name(c[0]), self._name(c[1]), self._name(c[2]), self._name(c[3]),
                         tuple(c[4:]), span=self._span(meta))

    @v_args(meta=True)
    def group_decl(self, meta, c):
        pos = c[-1] if isinstance(c[-1], _Positions) else None
        nodes = c[1:-1] if pos else c[1:]
        return A.GroupDecl(self._name(c[0]), tuple(nodes), pos.items if pos else None,
                           pos.braced if pos else False, span=self._span(meta))

    @v_args(meta=True)
    def circuit_edges(self, meta, c):
        return A.CircuitEdges(tuple(c), span=self._span(meta))

    @v_args(meta=True)
    def circuit_edge(self, meta, c):
        return A.CircuitEdge(c[0], c[1], c[2] if len(c) > 2 else None, span=self._span(meta))

    def edge_score(self, c):
        return c[0]

    @v_args(meta=True)
    def endpoint(self, meta, c):
        return A.Endpoint(self._name(c[0]), self._name(c[1]) if len(c) > 1 else None,
                          span=self._span(meta))

    @v_args(meta=True)
    def ablate_stmt(self, meta, c):
        kind, dataset = c[0]
        return A.Ablate(kind, dataset, span=self._span(meta))

    def zero_ablation(self, c):
        return ("zero", None)

    def mean_ablation(self, c):
        return ("mean", self._name(c[0]))

    def resample_ablation(self, c):
        return ("resample", self._name(c[0]))

    @v_args(meta=True)
    def granularity_stmt(self, meta, c):
        return A.Granularity(c[0], span=self._span(meta))

    granularity = comp_op

    @v_args(meta=True)
    def convention_named(self, meta, c):
        return A.Convention("convention", self._name(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def convention_mlps(self, meta, c):
        return A.Convention("mlps", c[0], span=self._span(meta))

    @v_args(meta=True)
    def convention_input(self, meta, c):
        return A.Convention("input", c[0], span=self._span(meta))

    def mlps_mode(self, c):
        return self._name(c[0])

    def input_ablation(self, c):
        first = self._name(c[0])
        if len(c) == 1:
            return first
        return A.Name("".join(str(t) for t in c), span=first.span)

    @v_args(meta=True)
    def metric_stmt(self, meta, c):
        args = next((x for x in c[1:] if isinstance(x, _Args)), None)
        pos = next((x for x in c[1:] if isinstance(x, _Positions)), None)
        return A.MetricDecl(self._name(c[0]), args.items if args else None,
                            pos.items if pos else None, pos.braced if pos else False,
                            span=self._span(meta))

    def metric_args(self, c):
        return _Args(tuple(c))

    def metric_name_arg(self, c):
        return self._name(c[0])

    @v_args(meta=True)
    def metric_string_arg(self, meta, c):
        return A.StrLit(self._str(c[0]), span=self._span(meta))

    @v_args(meta=True)
    def dataset(self, meta, c):
        return A.Dataset(self._name(c[0]), self._name(c[1]), tuple(c[2:]), span=self._span(meta))


# Small carriers for optional parts, so a rule can tell which optional pieces were present.
class _Where:
    def __init__(self, expr):
        self.expr = expr


class _Intervention:
    def __init__(self, assignments):
        self.assignments = assignments


class _Index:
    def __init__(self, values):
        self.values = values


class _Part:
    def __init__(self, text):
        self.text = text


class _Ranges:
    def __init__(self, values):
        self.values = values


class _LocateSet:
    """`{A, H[i]}` after `locate`: the targets, each (name, family index or None)."""

    def __init__(self, items):
        self.items = items


class _Positions:
    def __init__(self, items, braced):
        self.items = items
        self.braced = braced


class _Alias:
    def __init__(self, name):
        self.name = name


class _Args:
    def __init__(self, items):
        self.items = items
