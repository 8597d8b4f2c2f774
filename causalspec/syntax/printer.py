"""Print an AST back as canonical spec text: `parse(print_spec(ast)) == ast`.

Why a printer at all: reports show constructs back to the user exactly as they could have
written them, `causalspec fmt` rewrites files in this layout (through syntax/formatter.py),
and the round-trip contract (tested on the golden corpus and on random ASTs) keeps the
grammar, the builder and this module in agreement.

Layout: two-space indentation inside blocks, one statement per line, a blank line between
top-level items. `#` comments are not part of the AST and are not printed here: the
formatter keeps them (between items, and items with comments inside as written). Expressions
get the fewest parentheses that still parse back to the same tree.

Every public `print_*` helper returns the text of one construct (no trailing newline,
except `print_spec`), so report code can quote a single expression, type or site.

Invariants of a printable AST. ASTs built by the parser always satisfy them; a
hand-built AST that breaks one cannot be written as text, and the printer raises
`PrintError` (a `ValueError`) naming the construct instead of printing something that
parses differently:

* Identifiers (`Name.text`, `NameRef.name`, `SymbolLit.name`, site path parts, option
  values, ...) match `[A-Za-z_][A-Za-z0-9_]*`. Keywords are usable as names wherever the
  keyword itself cannot appear (contextual lexer); where both could appear the keyword wins,
  which makes these identifiers unprintable in these positions (see `RESERVED_IN`; the
  parser never produces them there either): `true`/`false` as a `SymbolLit`; as a `NameRef`,
  called function or table, `true`/`false` anywhere, `if` at the start of an expression and
  `not` at the start of an operand of `or`/`and`/`not` (a left operand starts where its
  parent does: `not + 1` is fine after `a *`); `_` as the single key of a table entry;
  `bool`/`int`/`enum` as a `NamedType`; `slot` as a `NamedPos`/`OffsetPos` base of a
  `position` declaration; `module` as the first part of a site, and `output` too for the
  first site after `->` of an alignment statement.
* `IntLit` inside an expression is non-negative: the expression grammar has no negative
  integer literal, `-3` is `Unary("-", IntLit(3))`. Literal positions (examples, tables,
  weights, template-case keys, `int lo..hi`) do take negative integers.
* Integers of positions (`IndexPos`, `RangePos`, slot occurrence), site indices, slice
  featurizer bounds and settings are non-negative; `NamedSite.index` has one or two parts.
* `NamedSite.part` (`.q`) needs an index: without one, `a.b` is read as the path `a.b`.
* Positions after `@` (sites, groups, metrics) are never `SlotPos`; several positions need
  `braced=True`.
* Floats (weights, thresholds, numeric featurizer arguments) are finite.
* Node-shape invariants: non-empty lists where the grammar repeats `x ("," x)*`; an
  unbraced `InterchangeSet` is one group of one name; `PromptDecl` has either `template`
  or `by` with at least one case; `Ablate("zero")` has no dataset and the others have one;
  a `Network` with a body is `braced`; `OptionStmt.value_quoted` only for `device` and
  `device_map`; `EngineStmt.host` only with `remote`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Union, cast

from causalspec.errors import CausalspecError
from causalspec.syntax import ast as A

__all__ = [
    "PrintError", "RESERVED_IN", "IDENT_RE",
    "print_spec", "print_item", "print_stmt", "print_node",
    "print_expr", "print_type", "print_literal", "print_string", "print_name",
    "print_site", "print_site_ref", "print_locate_latents", "print_positions", "print_position", "print_featurizer",
    "print_distribution", "print_assignment", "print_table_entry", "print_condition",
    "print_metric", "print_interchange_set", "print_endpoint", "print_number", "print_tolerance",
]

INDENT = "  "
# A table whose one-line form is longer than this is printed one entry per line.
INLINE_WIDTH = 88

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Identifiers that the contextual lexer reads as a keyword in a given position (the keyword
# is acceptable there too, and a keyword beats NAME). Everywhere else any identifier works.
# tests/syntax/test_printer.py checks this table against the parser for every keyword.
RESERVED_IN: dict[str, frozenset[str]] = {
    "symbol": frozenset({"true", "false"}),            # SymbolLit in any literal position
    "table_key": frozenset({"true", "false", "_"}),    # SymbolLit as a single table key
    # NameRef, Call/Index name at the start of an expression (after `(`, `if`, `then`, `else`,
    # `,`, `=`, `where`); after `or`, `and`, `not` only `not` (and `true`/`false`) are
    # reserved, after other operators only `true`/`false`: see `expr_reserved`.
    "expr_name": frozenset({"true", "false", "if", "not"}),
    "operand_name": frozenset({"true", "false", "not"}),  # ... of an `or`/`and`/`not` operand
    "type_name": frozenset({"bool", "int", "enum", "real"}),   # NamedType
    "decl_position": frozenset({"slot"}),              # NamedPos/OffsetPos in `position X =`
    "site_head": frozenset({"module"}),                # first part of a NamedSite
    # ... of a sweep site after `locate X over`: `latents` there starts `over latents of SITE`
    "sweep_head": frozenset({"module", "latents"}),
    "align_site_head": frozenset({"module", "output"}),  # ... of the first site after `->`
}


class PrintError(CausalspecError, ValueError):
    """The AST cannot be written as text that parses back to it (see the module docstring)."""


# ───────────────────────── atoms ─────────────────────────

def _fail(what: str, node: object) -> PrintError:
    return PrintError(f"cannot print {what}: {node!r}")


def check_ident(text: object, what: str = "identifier", reserved: frozenset[str] = frozenset()) -> str:
    if not isinstance(text, str) or not IDENT_RE.match(text):
        raise _fail(f"{what} (not an identifier)", text)
    if text in reserved:
        raise _fail(f"{what} (`{text}` is read as a keyword here)", text)
    return text


def print_name(name: A.Name, what: str = "name", reserved: frozenset[str] = frozenset()) -> str:
    if not isinstance(name, A.Name):
        raise _fail(what, name)
    return check_ident(name.text, what, reserved)


ELEM_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[([0-9]+)\]\Z")


def print_var_ref(name: A.Name, what: str = "name") -> str:
    """A variable, or one element of a family (`H[2]`, a Name whose text holds the index)."""
    if isinstance(name, A.Name) and isinstance(name.text, str):
        m = ELEM_RE.match(name.text)
        if m:
            return f"{check_ident(m.group(1), what)}[{int(m.group(2))}]"
    return print_name(name, what)


def _nonneg(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{what} (needs a non-negative integer)", value)
    return str(value)


def _int(value: object, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{what} (needs an integer)", value)
    return str(value)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def print_string(value: str) -> str:
    """A double-quoted string literal whose escapes decode (`ast.literal_eval`) to `value`.

    Non-ASCII printable characters stay as they are; other non-printable characters become
    `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN` escapes.
    """
    if not isinstance(value, str):
        raise _fail("string", value)
    out = []
    for ch in value:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            if code <= 0xFF:
                out.append(f"\\x{code:02x}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def print_number(value: float | int, as_float: bool = False) -> str:
    """A `SIGNED_NUMBER`. Numeric featurizer arguments keep int (`2`) vs float (`2.0`);
    weights and thresholds (`as_float`), always read back as floats, print as floats."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail("number", value)
    if isinstance(value, int) and not as_float:
        return str(value)
    try:
        value = float(value)
    except OverflowError:
        raise _fail("number (too large for a float)", value) from None
    if not math.isfinite(value):
        raise _fail("number (not finite)", value)
    return repr(value)  # '0.5', '1e-05', '1e+16', '-0.0': all match SIGNED_NUMBER


def print_literal(lit: A.Literal, reserved: frozenset[str] = RESERVED_IN["symbol"]) -> str:
    """A literal value (examples, tables, weights, template cases); negative ints allowed."""
    if isinstance(lit, A.BoolLit):
        return "true" if lit.value else "false"
    if isinstance(lit, A.IntLit):
        return _int(lit.value, "integer literal")
    if isinstance(lit, A.FracLit):
        if isinstance(lit.denominator, bool) or not isinstance(lit.denominator, int) or lit.denominator <= 0:
            raise _fail("fraction denominator", lit)
        return f"{_int(lit.numerator, 'fraction numerator')}/{lit.denominator}"
    if isinstance(lit, A.StrLit):
        return print_string(lit.value)
    if isinstance(lit, A.SymbolLit):
        return check_ident(lit.name, "symbol", reserved)
    raise _fail("literal", lit)


# ───────────────────────── expressions ─────────────────────────

# Binding strength, loosest first; an operand printed below the level its slot requires
# gets parentheses.
_IF, _OR, _AND, _NOT, _CMP, _SUM, _PROD, _NEG, _ATOM = range(9)
_COMPARE_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_BINARY: dict[str, tuple[int, int, int]] = {  # op -> (own level, left slot, right slot)
    "or": (_OR, _OR, _AND),
    "and": (_AND, _AND, _NOT),
    **{op: (_CMP, _SUM, _SUM) for op in _COMPARE_OPS},  # non-associative
    "+": (_SUM, _SUM, _PROD),
    "-": (_SUM, _SUM, _PROD),
    "*": (_PROD, _PROD, _NEG),
    "//": (_PROD, _PROD, _NEG),
    "%": (_PROD, _PROD, _NEG),
    "/": (_PROD, _PROD, _NEG),
}


def print_expr(expr: A.Expr) -> str:
    """An expression with the fewest parentheses that parse back to the same tree."""
    return _expr(expr, _IF, _IF)


def expr_reserved(start: int) -> frozenset[str]:
    """Names an atom cannot have when its text begins where the grammar expects an operand
    of binding level `start` (the lexer reads them as the keyword that can begin there)."""
    if start == _IF:
        return RESERVED_IN["expr_name"]
    if start <= _NOT:
        return RESERVED_IN["operand_name"]
    return RESERVED_IN["symbol"]


def _level(e: A.Expr) -> int:
    if isinstance(e, A.IfThenElse):
        return _IF
    if isinstance(e, A.Binary):
        if e.op not in _BINARY:
            raise _fail(f"binary operator `{e.op}`", e)
        return _BINARY[e.op][0]
    if isinstance(e, A.Unary):
        if e.op == "not":
            return _NOT
        if e.op == "-":
            return _NEG
        raise _fail(f"unary operator `{e.op}`", e)
    return _ATOM


def _expr(e: A.Expr, slot: int, start: int) -> str:
    """`e` in an operand position of binding level `slot`, its text beginning where the
    grammar expects an operand of level `start` (a left operand begins where its parent
    does: `not + 1` is fine after `a *`, not at the start of an expression)."""
    if _level(e) < slot:
        return f"({_expr_text(e, _IF)})"
    return _expr_text(e, start)


def _expr_text(e: A.Expr, start: int) -> str:
    if isinstance(e, A.IfThenElse):
        return f"if {_expr(e.cond, _IF, _IF)} then {_expr(e.then, _IF, _IF)} else {_expr(e.other, _IF, _IF)}"
    if isinstance(e, A.Binary):
        _, left, right = _BINARY[e.op]
        return f"{_expr(e.left, left, start)} {e.op} {_expr(e.right, right, right)}"
    if isinstance(e, A.Unary):
        if e.op == "not":
            return f"not {_expr(e.operand, _NOT, _NOT)}"
        operand = _expr(e.operand, _NEG, _NEG)
        return ("- " if operand.startswith("-") else "-") + operand
    if isinstance(e, A.IntLit):
        if isinstance(e.value, bool) or not isinstance(e.value, int) or e.value < 0:
            raise _fail("integer in an expression (must be non-negative; write "
                        "Unary('-', IntLit(n)) for a negative number)", e)
        return str(e.value)
    if isinstance(e, A.BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, A.StrLit):
        return print_string(e.value)
    if isinstance(e, A.NameRef):
        elem = ELEM_RE.match(e.name) if isinstance(e.name, str) else None
        if elem:  # an element of an expanded family (`H[2]`), as a report shows it
            return f"{check_ident(elem.group(1), 'family name', expr_reserved(start))}[{int(elem.group(2))}]"
        return check_ident(e.name, "name in an expression", expr_reserved(start))
    if isinstance(e, A.Call):
        func = print_name(e.func, "function name", expr_reserved(start))
        return f"{func}({', '.join(_expr(a, _IF, _IF) for a in e.args)})"
    if isinstance(e, A.Index):
        if not e.args:
            raise _fail("table lookup without keys", e)
        table = print_name(e.table, "table name", expr_reserved(start))
        return f"{table}[{', '.join(_expr(a, _IF, _IF) for a in e.args)}]"
    if isinstance(e, A.Aggregate):
        func = print_name(e.func, "aggregate", expr_reserved(start))
        index = print_name(e.var, "index name", RESERVED_IN["expr_name"])  # it follows `(`
        text = f"{func}({index} in {_range(e.lo, e.hi)}"
        if e.where is not None:
            text += f" where {_expr(e.where, _IF, _IF)}"
        return f"{text} : {_expr(e.body, _IF, _IF)})"
    raise _fail("expression", e)


def _range(lo: A.Expr | None, hi: A.Expr | None) -> str:
    """`lo..hi` of an index range: both ends are `sum`-level expressions in the grammar."""
    if lo is None or hi is None:
        raise _fail("index range without bounds", (lo, hi))
    return f"{_expr(lo, _SUM, _SUM)}..{_expr(hi, _SUM, _SUM)}"


def _family_range(r: A.FamilyRange) -> str:
    if r.var is None:
        return f"[{_range(r.lo, r.hi)}]"
    if r.lo is None and r.hi is None:
        return f"[{print_name(r.var, 'index name')}]"
    return f"[{print_name(r.var, 'index name')} in {_range(r.lo, r.hi)}]"


def _int_bound(b: object, low: bool = False) -> str:
    if isinstance(b, int):
        return _int(b, "int bound")
    if isinstance(b, A.NameRef) and not low:
        return check_ident(b.name, "int bound")
    return f"({_expr(b, _SUM, _SUM)})"  # type: ignore[arg-type]


# ───────────────────────── types and model statements ─────────────────────────

def _member(member: str) -> str:
    # An enum member is a plain string: bare when it is an identifier (any keyword works
    # there), quoted otherwise; both read back as the same string.
    if isinstance(member, str) and IDENT_RE.match(member):
        return member
    return print_string(member)


def print_type(t: A.TypeExpr) -> str:
    if isinstance(t, A.BoolType):
        return "bool"
    if isinstance(t, A.RealType):
        return "real"
    if isinstance(t, A.IntType):
        return f"int {_int_bound(t.lo, low=True)}..{_int_bound(t.hi)}"
    if isinstance(t, A.EnumType):
        return "enum {" + ", ".join(_member(m) for m in _nonempty(t.members, "enum members", t)) + "}"
    if isinstance(t, A.EnumFileType):
        return f"enum from {print_string(t.path)}"
    if isinstance(t, A.NamedType):
        return print_name(t.name, "type name", RESERVED_IN["type_name"])
    raise _fail("type", t)


def _nonempty(items, what: str, node: object):
    if not items:
        raise _fail(f"{what} (at least one is required)", node)
    return items


def _names(names: Iterable[A.Name], what: str = "name") -> str:
    return ", ".join(print_name(n, what) for n in names)


def print_distribution(d: A.Distribution) -> str:
    if isinstance(d, A.Uniform):
        return "~ uniform"
    if isinstance(d, A.Weighted):
        weights = [f"{print_literal(w.value)}: {print_number(w.weight, as_float=True)}"
                   for w in _nonempty(d.weights, "weights", d)]
        return "~ weighted {" + ", ".join(weights) + "}"
    raise _fail("distribution", d)


def print_assignment(a: A.Assignment) -> str:
    return f"{print_var_ref(a.name)} = {print_literal(a.value)}"


def print_table_entry(entry: A.TableEntry) -> str:
    value = print_literal(entry.value)
    if entry.keys is None:
        return f"_: {value}"
    if len(entry.keys) == 1:
        return f"{print_literal(entry.keys[0], RESERVED_IN['table_key'])}: {value}"
    if not entry.keys:
        raise _fail("table entry without keys", entry)
    return "(" + ", ".join(print_literal(k) for k in entry.keys) + f"): {value}"


def _block(header: str, lines: list[str], indent: str) -> list[str]:
    """`header {` ... `}` with each line one level deeper; `header {}` when empty."""
    if not lines:
        return [f"{indent}{header} {{}}"]
    return [f"{indent}{header} {{", *(f"{indent}{INDENT}{ln}" for ln in lines), f"{indent}}}"]


def _model_stmt(s: A.ModelStmt, indent: str) -> list[str]:
    if isinstance(s, A.DomainDecl):
        return [f"{indent}domain {print_name(s.name)} = {print_type(s.type)}"]
    if isinstance(s, A.ConstDecl):
        return [f"{indent}const {print_name(s.name)} = {print_expr(s.value)}"]
    if isinstance(s, A.InputDecl):
        names = _nonempty(s.names, 'input names', s)
        if s.families:
            if len(s.families) != len(names):
                raise _fail("input families (one entry per name)", s)
            listed = ", ".join(print_name(n) + (_family_range(f) if f is not None else "")
                               for n, f in zip(names, s.families))
        else:
            listed = _names(names)
        text = f"input {listed} : {print_type(s.type)}"
        if s.distribution is not None:
            text += " " + print_distribution(s.distribution)
        if s.where is not None:
            text += " where " + print_expr(s.where)
        return [indent + text]
    if isinstance(s, A.VarDecl):
        if s.kind not in ("var", "output"):
            raise _fail("variable kind", s)
        index = _family_range(s.index) if s.index is not None else ""
        return [f"{indent}{s.kind} {print_name(s.name)}{index} : {print_type(s.type)} = {print_expr(s.expr)}"]
    if isinstance(s, A.TableDecl):
        head = (f"table {print_name(s.name)} : "
                f"{', '.join(print_type(t) for t in _nonempty(s.key_types, 'key types', s))}"
                f" -> {print_type(s.value_type)} =")
        entries = [print_table_entry(e) for e in _nonempty(s.entries, "table entries", s)]
        inline = f"{indent}{head} {{" + ", ".join(entries) + "}"
        if len(inline) <= INLINE_WIDTH:
            return [inline]
        return [f"{indent}{head} {{", *(f"{indent}{INDENT}{e}," for e in entries), f"{indent}}}"]
    if isinstance(s, A.SampleDecl):
        return [f"{indent}sample balanced {print_name(s.balanced_on)}"]
    if isinstance(s, A.ExampleDecl):
        text = "example "
        if s.interventions:
            text += "do(" + ", ".join(print_assignment(a) for a in s.interventions) + ") "
        text += "{" + ", ".join(print_assignment(a) for a in s.inputs) + "} => "
        text += ", ".join(print_assignment(a) for a in _nonempty(s.expected, "expected values", s))
        return [indent + text]
    if isinstance(s, A.EdgesDecl):
        return _block("edges", [f"{print_name(e.src)} -> {print_name(e.dst)}" for e in s.edges], indent)
    raise _fail("model statement", s)


# ───────────────────────── networks and positions ─────────────────────────

def print_position(p: A.PositionExpr, in_declaration: bool = False) -> str:
    """One position; `in_declaration`: the right side of `position X = ...` (allows `slot`)."""
    reserved = RESERVED_IN["decl_position"] if in_declaration else frozenset()
    if isinstance(p, A.SlotPos):
        if not in_declaration:
            raise _fail("slot position after `@` (only `position X = slot(...)` allows it)", p)
        text = f"slot({print_name(p.slot, 'slot name')}"
        if p.occurrence_var is not None:
            if p.occurrence is not None:
                raise _fail("slot with both an occurrence and an index", p)
            text += ", " + print_name(p.occurrence_var, "index name")
        elif p.occurrence is not None:
            text += ", " + _nonneg(p.occurrence, "slot occurrence")
        text += ")"
        if p.part is not None:
            text += "." + _token_part(p.part, p)
        return text
    if isinstance(p, A.NamedPos):
        if isinstance(p.name, A.Name) and ELEM_RE.match(str(p.name.text)):  # `S[2]`, a position family's element
            return print_var_ref(p.name, "position name")
        return print_name(p.name, "position name", reserved)
    if isinstance(p, A.ElemPos):
        return f"{print_name(p.base, 'position name', reserved)}[{print_name(p.var, 'index name')}]"
    if isinstance(p, A.OffsetPos):
        base = print_name(p.base, "position name", reserved)
        offset = _int(p.offset, "position offset")
        return f"{base} - {-p.offset}" if p.offset < 0 else f"{base} + {offset}"
    if isinstance(p, A.IndexPos):
        return _nonneg(p.index, "token index")
    if isinstance(p, A.RangePos):
        return f"{_nonneg(p.lo, 'range start')}..{_nonneg(p.hi, 'range end')}"
    raise _fail("position", p)


def print_positions(positions: tuple[A.PositionExpr, ...], braced: bool) -> str:
    """`@ P` or `@ {P, Q}`."""
    _nonempty(positions, "positions", positions)
    if len(positions) > 1 and not braced:
        raise _fail("several positions without braces", positions)
    inner = ", ".join(print_position(p) for p in positions)
    return f"@ {{{inner}}}" if braced else f"@ {inner}"


_TOKEN_PARTS = ("first", "last", "all")


def _token_part(part: str, node: object) -> str:
    if part not in _TOKEN_PARTS:
        raise _fail("token part (first, last or all)", node)
    return part


def _template_case(c: A.TemplateCase) -> str:
    return f"{print_literal(c.key)}: {print_string(c.template)}"


def _prompt(p: A.PromptDecl, indent: str) -> list[str]:
    if p.by is None:
        if p.template is None or p.cases:
            raise _fail("prompt (needs a template, or `by` with cases)", p)
        return [f"{indent}prompt {print_string(p.template)}"]
    if p.template is not None:
        raise _fail("prompt with both a template and `by`", p)
    cases = [_template_case(c) for c in _nonempty(p.cases, "template cases", p)]
    return _block(f"prompt by {print_name(p.by)}", cases, indent)


def _option_value(s: A.OptionStmt) -> str:
    if s.value_quoted:
        if s.key not in ("device", "device_map"):
            raise _fail("quoted option value (only `device` and `device_map` take a string)", s)
        return print_string(s.value)
    return check_ident(s.value, f"{s.key} value")


def _network_stmt(s: A.NetworkStmt, indent: str) -> list[str]:
    if isinstance(s, A.HookStmt):
        if s.kind not in ("encode", "decode"):
            raise _fail("hook kind", s)
        return [f"{indent}{s.kind} {print_string(s.ref)}"]
    if isinstance(s, A.OptionStmt):
        if s.key not in ("device", "dtype", "class", "device_map"):
            raise _fail("network option", s)
        return [f"{indent}{s.key} {_option_value(s)}"]
    if isinstance(s, A.EngineStmt):
        text = f"backend {print_name(s.engine, 'engine name')}"
        if s.remote:
            text += " remote"
            if s.host is not None:
                text += " " + print_string(s.host)
        elif s.host is not None:
            raise _fail("engine host without `remote`", s)
        return [indent + text]
    if isinstance(s, A.OutputValueStmt):
        return [indent + "output : value" + ("" if s.logit is None else f" logit {print_string(s.logit)}")]
    if isinstance(s, A.FlagStmt):
        if s.flag != "trust_remote_code":
            raise _fail("network flag", s)
        return [indent + s.flag]
    if isinstance(s, A.PromptDecl):
        return _prompt(s, indent)
    if isinstance(s, A.AnswerDecl):
        text = f"answer {print_string(s.template)}"
        if s.tokens is not None:
            text += " " + _token_part(s.tokens, s)
        return [indent + text]
    if isinstance(s, A.PositionDecl):
        index = _family_range(s.index) if s.index is not None else ""
        if s.items:
            if s.index is None or s.items[0] != s.expr:
                raise _fail("position list without a family index, or whose first item is not its expr", s)
            listed = ", ".join(print_position(p, in_declaration=True) for p in s.items)
            return [f"{indent}position {print_name(s.name)}{index} = {{{listed}}}"]
        return [f"{indent}position {print_name(s.name)}{index} = {print_position(s.expr, in_declaration=True)}"]
    raise _fail("network statement", s)


def _backend(b) -> str:
    if isinstance(b, A.HFBackend):
        return f"hf {print_string(b.path)}"
    if isinstance(b, A.TorchBackend):
        return f"torch {print_string(b.builder)} weights {print_string(b.weights)}"
    raise _fail("network backend", b)


# ───────────────────────── sites and alignments ─────────────────────────

def print_site(site: A.Site, after_arrow: bool = False) -> str:
    """`resid.post[3]`, `head[9.9].q`, `module "layers.0" output`; `after_arrow`: the first
    site of an alignment statement, right after `->` (where `output` is a keyword)."""
    if isinstance(site, A.ModuleSite):
        if site.io not in ("input", "output"):
            raise _fail("module site direction (input or output)", site)
        return f"module {print_string(site.path)} {site.io}"
    if isinstance(site, A.NamedSite):
        path = _nonempty(site.path, "site path", site)
        head = RESERVED_IN["align_site_head" if after_arrow else "site_head"]
        text = ".".join(check_ident(p, "site name", head if i == 0 else frozenset())
                        for i, p in enumerate(path))
        if site.index is not None:
            if not 1 <= len(site.index) <= 2:
                raise _fail("site index (one or two integers)", site)
            text += "[" + ".".join(_nonneg(i, "site index") for i in site.index) + "]"
        if site.part is not None:
            if site.index is None:
                raise _fail("site part without an index (`a.b` reads as a path)", site)
            text += "." + check_ident(site.part, "site part")
        return text
    raise _fail("site", site)


def _feat_arg(a: A.FeatArg) -> str:
    if a.kind == "number":
        value = print_number(cast(Union[float, int], a.value))
    elif a.kind == "string":
        value = print_string(str(a.value))
    elif a.kind == "name":
        value = check_ident(a.value, "featurizer argument")
    elif a.kind == "list":
        items = cast(tuple[Union[float, int], ...], a.value)
        value = "[" + ", ".join(print_number(v) for v in items) + "]"
    else:
        raise _fail("featurizer argument kind", a)
    return value if a.key is None else f"{check_ident(a.key, 'argument name')}={value}"


def print_featurizer(f: A.Featurizer) -> str:
    """`: [0:8]`, `: argmax`, `: das(k=1)` (with the leading colon)."""
    if isinstance(f, A.SliceFeaturizer):
        return f": [{_nonneg(f.lo, 'slice start')}:{_nonneg(f.hi, 'slice end')}]"
    if isinstance(f, A.CallFeaturizer):
        text = ": " + print_name(f.name, "featurizer")
        if f.args is not None:
            text += "(" + ", ".join(_feat_arg(a) for a in f.args) + ")"
        return text
    raise _fail("featurizer", f)


def print_site_ref(ref: A.SiteRef, first: bool = True) -> str:
    """A site with its optional positions and featurizer: `resid.post[3] @ {S1, 4} : das(k=1)`;
    `first`: the first site of its alignment statement (see `print_site`)."""
    if not isinstance(ref, A.SiteRef):
        raise _fail("site reference", ref)
    parts = [print_site(ref.site, after_arrow=first)]
    if ref.positions is not None:
        parts.append(print_positions(ref.positions, ref.braced))
    elif ref.braced:
        raise _fail("braced site reference without positions", ref)
    if ref.featurizer is not None:
        parts.append(print_featurizer(ref.featurizer))
    return " ".join(parts)


def _align_target(s: A.VarAlignment | A.OutputAlignment) -> str:
    if s.index is None:
        return print_var_ref(s.var)
    return print_name(s.var) + _family_range(s.index)


def _align_stmt(s: A.AlignStmt) -> str:
    if isinstance(s, A.VarAlignment):
        sites = _nonempty(s.sites, "aligned sites", s)
        return f"{_align_target(s)} -> " + ", ".join(print_site_ref(r, first=i == 0)
                                                     for i, r in enumerate(sites))
    if isinstance(s, A.OutputAlignment):
        text = f"{_align_target(s)} -> output"
        if s.positions is not None:
            text += " " + print_positions(s.positions, s.braced)
        if s.decoder is not None:
            text += " : " + print_name(s.decoder, "decoder")
        return text
    raise _fail("alignment statement", s)


# ───────────────────────── checks ─────────────────────────

def print_interchange_set(s: A.InterchangeSet) -> str:
    """`WX`, `{WX}`, `{WX, YZ}` (one source) or `{WX | YZ}` (one source each)."""
    groups = _nonempty(s.groups, "interchange groups", s)
    for g in groups:
        _nonempty(g, "interchange group names", s)
    if not s.braced:
        if len(groups) != 1 or len(groups[0]) != 1:
            raise _fail("unbraced interchange set (one variable only)", s)
        return print_var_ref(groups[0][0])
    return "{" + " | ".join(", ".join(print_var_ref(n) for n in g) for g in groups) + "}"


_SETTINGS = ("pairs", "seed", "pool", "batch", "train", "steps")
_BOUND_OPS = (">=", "<=", ">", "<")
_STAT_MODES = ("lower95", "point", "each", "mean")


def _setting(s: A.Setting) -> str:
    if s.key not in _SETTINGS:
        raise _fail("setting", s)
    return f"{s.key} {_nonneg(s.value, 'setting value')}"


def print_metric(m: A.Metric) -> str:
    text = print_name(m.name, "metric")
    if m.arg is not None:
        text += f"({print_name(m.arg)})"
    return text


def print_condition(c: A.Condition) -> str:
    """`iia >= 0.95 each lower95`."""
    if c.op not in _BOUND_OPS:
        raise _fail("bound operator", c)
    for mode in c.modes:
        if mode not in _STAT_MODES:
            raise _fail("statistic mode", c)
    parts = [print_metric(c.metric), c.op, print_number(c.threshold, as_float=True), *c.modes]
    if c.tolerance is not None:
        parts += ["within", print_tolerance(c.tolerance)]
    return " ".join(parts)


_TOLERANCE_RE = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\Z")


def print_tolerance(t: A.Tolerance) -> str:
    """A tolerance as written (its text is what is read exactly, so it is kept, not reformatted)."""
    if not isinstance(t, A.Tolerance) or not isinstance(t.text, str) or not _TOLERANCE_RE.match(t.text):
        raise _fail("tolerance", t)
    return t.text


def _expect(s: A.Expect) -> str:
    return "expect " + " and ".join(print_condition(c) for c in _nonempty(s.conditions, "conditions", s))


def _control(name: A.Name, args: tuple[A.FeatArg, ...] | None) -> str:
    """One control of a `controls` statement: its name, then its arguments if it has any
    (None: written without parentheses)."""
    text = print_name(name, "control")
    return text if args is None else text + "(" + ", ".join(_feat_arg(a) for a in args) + ")"


def _check_stmt(s: A.CheckStmt) -> str:
    if isinstance(s, A.Interchange):
        sets = _nonempty(s.sets, "interchange sets", s)
        return "interchange " + ", ".join(print_interchange_set(x) for x in sets)
    if isinstance(s, A.Setting):
        return _setting(s)
    if isinstance(s, A.Controls):
        names = _nonempty(s.names, "controls", s)
        return "controls " + ", ".join(_control(n, s.args_of(i)) for i, n in enumerate(names))
    if isinstance(s, A.Expect):
        return _expect(s)
    if isinstance(s, A.Locate):
        return print_locate(s)
    if isinstance(s, A.LocateLatents):
        return print_locate_latents(s)
    raise _fail("check statement", s)


def print_sweep_site(site: A.SweepSite) -> str:
    """`resid.post[0..11]`, `head[9.0..11].z`, `module "layers.{0..2}" output`."""
    if not isinstance(site, A.SweepSite):
        raise _fail("sweep site", site)
    if site.module is not None:
        if site.io not in ("input", "output") or site.path is not None:
            raise _fail("module sweep (pattern and input or output)", site)
        return f"module {print_string(site.module)} {site.io}"
    path = _nonempty(site.path, "site path", site)
    text = ".".join(check_ident(p, "site name", RESERVED_IN["sweep_head"] if i == 0 else frozenset())
                    for i, p in enumerate(path))
    if site.ranges is not None:
        if not 1 <= len(site.ranges) <= 2:
            raise _fail("sweep index (one or two ranges)", site)
        parts = []
        for lo, hi in site.ranges:
            parts.append(_nonneg(lo, "sweep start") if lo == hi else
                         f"{_nonneg(lo, 'sweep start')}..{_nonneg(hi, 'sweep end')}")
        text += "[" + ".".join(parts) + "]"
    if site.part is not None:
        if site.ranges is None:
            raise _fail("site part without an index (`a.b` reads as a path)", site)
        text += "." + check_ident(site.part, "site part")
    return text


def print_locate(s: A.Locate) -> str:
    """`locate WX over resid.post[0..11] @ {S1, END} : das(k=1)`."""
    if s.joint:
        if (s.var, s.index) != s.joint[0]:
            raise _fail("joint locate whose first target is not its var", s)
        target = "{" + ", ".join(_locate_target(n, r) for n, r in s.joint) + "}"
    else:
        target = _locate_target(s.var, s.index)
    parts = [f"locate {target} over {print_sweep_site(s.site)}"]
    if s.positions is not None:
        parts.append(print_positions(s.positions, s.braced))
    elif s.braced:
        raise _fail("braced locate without positions", s)
    if s.featurizer is not None:
        parts.append(print_featurizer(s.featurizer))
    return " ".join(parts)


def _locate_target(name: A.Name, index: A.FamilyRange | None) -> str:
    """`WX`, `H[2]`, `H[i]` or `H[i in 2..4]`."""
    if index is None:
        return print_var_ref(name)
    if index.var is None:
        raise _fail("locate family index without a name", index)
    return print_name(name) + _family_range(index)


def print_locate_latents(s: A.LocateLatents) -> str:
    """`locate WX over latents of resid.post[3] @ END : sae("sae_dir")`."""
    parts = [f"locate {print_var_ref(s.var)} over latents of {print_site(s.site)}"]
    if s.positions is not None:
        parts.append(print_positions(s.positions, s.braced))
    elif s.braced:
        raise _fail("braced locate without positions", s)
    parts.append(print_featurizer(s.featurizer))
    return " ".join(parts)


# ───────────────────────── circuits and datasets ─────────────────────────

def print_endpoint(e: A.Endpoint) -> str:
    text = print_name(e.name)
    if e.port is not None:
        text += "." + print_name(e.port, "port")
    return text


def print_circuit_edge(e: A.CircuitEdge) -> str:
    """`a -> b.k`, with `: score 0.12` when the edge carries a score (printed as the float
    it is, so a file's scores come back bit for bit)."""
    text = f"{print_endpoint(e.src)} -> {print_endpoint(e.dst)}"
    if e.score is not None:
        text += " : score " + print_number(e.score, as_float=True)
    return text


def _metric_arg(a) -> str:
    if isinstance(a, A.Name):
        return print_name(a)
    if isinstance(a, A.StrLit):
        return print_string(a.value)
    raise _fail("metric argument", a)


def _circuit_stmt(s: A.CircuitStmt, indent: str) -> list[str]:
    if isinstance(s, A.GroupDecl):
        nodes = _nonempty(s.nodes, "group members", s)
        text = f"group {print_name(s.name)} = " + ", ".join(print_site(n) for n in nodes)
        if s.positions is not None:
            text += " " + print_positions(s.positions, s.braced)
        elif s.braced:
            raise _fail("braced group without positions", s)
        return [indent + text]
    if isinstance(s, A.CircuitEdges):
        return _block("edges", [print_circuit_edge(e) for e in s.edges], indent)
    if isinstance(s, A.Ablate):
        if s.kind == "zero" and s.dataset is None:
            how = "zero"
        elif s.kind == "mean" and s.dataset is not None:
            how = f"mean over {print_name(s.dataset)}"
        elif s.kind == "resample" and s.dataset is not None:
            how = f"resample from {print_name(s.dataset)}"
        else:
            raise _fail("ablation", s)
        return [f"{indent}ablate complement with {how}"]
    if isinstance(s, A.Granularity):
        if s.value not in ("node", "edge"):
            raise _fail("granularity", s)
        return [f"{indent}granularity {s.value}"]
    if isinstance(s, A.Convention):
        if s.aspect == "convention":
            return [f"{indent}convention {print_name(s.value)}"]
        if s.aspect == "mlps" and s.value.text in ("ablated", "kept"):
            return [f"{indent}mlps {s.value.text}"]
        if s.aspect == "input" and s.value.text in ("token", "token+position"):
            return [f"{indent}input ablation {s.value.text}"]
        raise _fail("convention", s)
    if isinstance(s, A.MetricDecl):
        text = "metric " + print_name(s.name, "metric")
        if s.args is not None:
            text += "(" + ", ".join(_metric_arg(a) for a in s.args) + ")"
        if s.positions is not None:
            text += " " + print_positions(s.positions, s.braced)
        elif s.braced:
            raise _fail("braced metric without positions", s)
        return [indent + text]
    if isinstance(s, A.Expect):
        return [indent + _expect(s)]
    if isinstance(s, A.Setting):
        return [indent + _setting(s)]
    raise _fail("circuit statement", s)


def _dataset_stmt(s, indent: str) -> list[str]:
    if isinstance(s, A.PromptDecl):
        return _prompt(s, indent)
    if isinstance(s, A.Setting):
        return [indent + _setting(s)]
    raise _fail("dataset statement", s)


# ───────────────────────── items and the whole spec ─────────────────────────

def _body(header: str, stmts, stmt: Callable[[Any, str], list[str]]) -> list[str]:
    lines = [ln for s in stmts for ln in stmt(s, INDENT)]
    if not lines:
        return [f"{header} {{}}"]
    return [f"{header} {{", *lines, "}"]


def _item_lines(item: A.Item) -> list[str]:
    if isinstance(item, A.Model):
        return _body(f"model {print_name(item.name)}", item.body, _model_stmt)
    if isinstance(item, A.Network):
        head = f"network {print_name(item.name)} = {_backend(item.backend)}"
        if not item.braced:
            if item.body:
                raise _fail("network with statements but without braces", item)
            return [head]
        return _body(head, item.body, _network_stmt)
    if isinstance(item, A.Alignment):
        head = f"align {print_name(item.model)} to {print_name(item.network)} as {print_name(item.name)}"
        return _body(head, item.body, lambda s, ind: [ind + _align_stmt(s)])
    if isinstance(item, A.Check):
        head = f"check {print_name(item.target)}"
        if item.name is not None:
            head += f" as {print_name(item.name)}"
        return _body(head, item.body, lambda s, ind: [ind + _check_stmt(s)])
    if isinstance(item, A.Circuit):
        head = (f"circuit {print_name(item.name)} on {print_name(item.network)} "
                f"for {print_name(item.model)}.{print_name(item.output)}")
        return _body(head, item.body, _circuit_stmt)
    if isinstance(item, A.Dataset):
        return _body(f"dataset {print_name(item.name)} from {print_name(item.model)}", item.body,
                     _dataset_stmt)
    raise _fail("top-level item", item)


def print_item(item: A.Item) -> str:
    """One top-level item (model, network, align, check, circuit, dataset), no final newline."""
    return "\n".join(_item_lines(item))


def print_spec(spec: A.Spec) -> str:
    """The whole spec: items separated by a blank line, ending in a newline (or empty)."""
    if not isinstance(spec, A.Spec):
        raise _fail("spec", spec)
    if not spec.items:
        return ""
    return "\n\n".join(print_item(i) for i in spec.items) + "\n"


def print_stmt(stmt: A.Node) -> str:
    """One statement of any block (model, network, align, check, circuit, dataset)."""
    if isinstance(stmt, (A.DomainDecl, A.ConstDecl, A.InputDecl, A.VarDecl, A.TableDecl, A.SampleDecl,
                         A.ExampleDecl, A.EdgesDecl)):
        return "\n".join(_model_stmt(stmt, ""))
    if isinstance(stmt, (A.HookStmt, A.OptionStmt, A.FlagStmt, A.EngineStmt, A.PromptDecl, A.AnswerDecl,
                         A.PositionDecl, A.OutputValueStmt)):
        return "\n".join(_network_stmt(stmt, ""))
    if isinstance(stmt, (A.VarAlignment, A.OutputAlignment)):
        return _align_stmt(stmt)
    if isinstance(stmt, (A.Interchange, A.Setting, A.Controls, A.Locate, A.LocateLatents)):
        return _check_stmt(stmt)
    if isinstance(stmt, (A.GroupDecl, A.CircuitEdges, A.Ablate, A.Granularity, A.Convention, A.MetricDecl,
                         A.Expect)):
        return "\n".join(_circuit_stmt(stmt, ""))
    raise _fail("statement", stmt)


def print_node(node: A.Node) -> str:
    """Any AST node as the text a user would write for it (for reports and diagnostics)."""
    if isinstance(node, A.Spec):
        return print_spec(node)
    if isinstance(node, (A.Model, A.Network, A.Alignment, A.Check, A.Circuit, A.Dataset)):
        return print_item(node)
    if isinstance(node, (A.IntLit, A.BoolLit, A.StrLit, A.NameRef, A.Unary, A.Binary,
                         A.IfThenElse, A.Call, A.Index, A.Aggregate)):
        if isinstance(node, A.IntLit) and isinstance(node.value, int) and node.value < 0:
            return str(node.value)  # a literal-position integer
        return print_expr(node)
    if isinstance(node, (A.SymbolLit, A.FracLit)):
        return print_literal(node)
    if isinstance(node, A.Name):
        return print_name(node)
    if isinstance(node, (A.BoolType, A.IntType, A.RealType, A.EnumType, A.EnumFileType, A.NamedType)):
        return print_type(node)
    if isinstance(node, (A.Uniform, A.Weighted)):
        return print_distribution(node)
    if isinstance(node, A.Weight):
        return f"{print_literal(node.value)}: {print_number(node.weight, as_float=True)}"
    if isinstance(node, A.TableEntry):
        return print_table_entry(node)
    if isinstance(node, A.Assignment):
        return print_assignment(node)
    if isinstance(node, A.Edge):
        return f"{print_name(node.src)} -> {print_name(node.dst)}"
    if isinstance(node, (A.HFBackend, A.TorchBackend)):
        return _backend(node)
    if isinstance(node, A.TemplateCase):
        return _template_case(node)
    if isinstance(node, (A.SlotPos, A.NamedPos, A.OffsetPos, A.IndexPos, A.RangePos, A.ElemPos)):
        return print_position(node, in_declaration=isinstance(node, A.SlotPos))
    if isinstance(node, (A.NamedSite, A.ModuleSite)):
        return print_site(node)
    if isinstance(node, (A.SliceFeaturizer, A.CallFeaturizer)):
        return print_featurizer(node)
    if isinstance(node, A.FeatArg):
        return _feat_arg(node)
    if isinstance(node, A.SiteRef):
        return print_site_ref(node)
    if isinstance(node, A.InterchangeSet):
        return print_interchange_set(node)
    if isinstance(node, A.Metric):
        return print_metric(node)
    if isinstance(node, A.Condition):
        return print_condition(node)
    if isinstance(node, A.Tolerance):
        return "within " + print_tolerance(node)
    if isinstance(node, A.Endpoint):
        return print_endpoint(node)
    if isinstance(node, A.CircuitEdge):
        return print_circuit_edge(node)
    return print_stmt(node)
