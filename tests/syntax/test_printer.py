"""The printer's contract: `parse(print_spec(ast)) == ast` for every printable AST.

Checked on the golden corpus (every `*.cspec` in tests/syntax/ok/ and specs/), on random
ASTs of every node kind (tests/syntax/strategies.py), and on every keyword of the grammar
put in every identifier position of the kitchen-sink spec.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path

import pytest
from hypothesis import find, given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from causalspec.diagnostics import SpecError  # noqa: E402
from causalspec.syntax import ast as A  # noqa: E402
from causalspec.syntax import printer  # noqa: E402
from causalspec.syntax.parser import lark_parser, parse  # noqa: E402
from causalspec.syntax.printer import (  # noqa: E402
    IDENT_RE, PrintError, print_expr, print_node, print_site_ref, print_spec, print_string,
    print_type,
)
from tests.syntax import strategies as S  # noqa: E402

FUZZ = int(os.environ.get("CAUSALSPEC_FUZZ_EXAMPLES", "300"))
# The same examples on every run (CI must not turn red by chance); CAUSALSPEC_FUZZ_RANDOM=1 draws new
# ones each run to hunt for printer bugs (a failure prints the falsifying AST to turn into a test).
DERANDOMIZE = os.environ.get("CAUSALSPEC_FUZZ_RANDOM") != "1"
OK_DIR = ROOT / "tests" / "syntax" / "ok"
KITCHEN_SINK = OK_DIR / "kitchen_sink.cspec"
CORPUS = sorted(OK_DIR.glob("*.cspec")) + sorted((ROOT / "specs").rglob("*.cspec"))


def roundtrip(spec: A.Spec) -> str:
    text = print_spec(spec)
    back = parse(text)
    assert back == spec, f"printed text parses to a different AST:\n{text}"
    assert print_spec(back) == text, "printing is not idempotent"
    return text


# ───────────────────────── golden corpus ─────────────────────────

def test_corpus_is_not_empty():
    assert KITCHEN_SINK in CORPUS


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_corpus_roundtrip(path: Path):
    spec = parse(path.read_text(encoding="utf-8"), str(path))
    text = roundtrip(spec)
    # canonical text is a fixed point of parse ∘ print
    assert print_spec(parse(text)) == text


def test_bad_corpus_roundtrip():
    """The semantically bad specs of tests/syntax/bad/ that parse also round-trip."""
    for path in sorted((ROOT / "tests" / "syntax" / "bad").glob("*.cspec")):
        try:
            spec = parse(path.read_text(encoding="utf-8"), str(path))
        except SpecError:
            continue
        roundtrip(spec)


def test_kitchen_sink_layout():
    text = print_spec(parse(KITCHEN_SINK.read_text(encoding="utf-8")))
    lines = text.splitlines()
    assert lines[0] == "model HierEq {"
    assert "  input W, X, Y, Z : Obj ~ uniform" in lines
    assert "  example do(WX = false) {W = 1, X = 1, Y = 2, Z = 3} => O = true" in lines
    assert "  interchange WX, YZ, {WX, YZ}, {WX | YZ}" in lines
    assert ("  YZ -> module \"layers.0\" output : [8:16], "
            "resid.post[3] @ {S1, S2 - 1, 4, last} : das(k=1)") in lines
    assert "  position S2 = slot(S, 2).last" in lines
    assert "  group mover = head[9.9], head[9.6], head[10.0] @ END" in lines
    # a blank line between items, none inside, indentation in steps of two
    assert text.count("\n\n") == len(parse(text).items) - 1 == 6
    assert all((len(ln) - len(ln.lstrip(" "))) % 2 == 0 for ln in lines)
    assert text.endswith("}\n") and not text.endswith("\n\n")


def test_empty_spec():
    assert print_spec(A.Spec(())) == ""
    roundtrip(A.Spec(()))


# ───────────────────────── random ASTs ─────────────────────────

@settings(max_examples=FUZZ, deadline=None, derandomize=DERANDOMIZE)
@given(S.specs)
def test_random_spec_roundtrip(spec):
    roundtrip(spec)


def test_a_sweep_site_named_latents_is_refused_not_printed_as_a_latent_search():
    """`locate x over latents` reads as the start of `over latents of SITE`: a sweep site whose
    first part is `latents` has no text that parses back to it (found by the fuzzer above)."""
    locate = A.Locate(A.Name("x"), A.SweepSite(("latents",), None, None, None, None), None, False, None)
    spec = A.Spec((A.Check(A.Name("x"), None, (locate,)),))
    with pytest.raises(PrintError, match="latents"):
        print_spec(spec)
    other = dataclasses.replace(locate, site=A.SweepSite(("resid", "latents"), None, None, None, None))
    roundtrip(A.Spec((A.Check(A.Name("x"), None, (other,)),)))


def _in_model(expr: A.Expr) -> A.Spec:
    return A.Spec((A.Model(A.Name("M"), (A.VarDecl("var", A.Name("v"), A.BoolType(), expr),)),))


@settings(max_examples=FUZZ, deadline=None, derandomize=DERANDOMIZE)
@given(S.exprs)
def test_random_expr_roundtrip(expr):
    roundtrip(_in_model(expr))


@settings(max_examples=FUZZ, deadline=None, derandomize=DERANDOMIZE)
@given(S.site_refs())
def test_random_site_ref_roundtrip(ref):
    spec = A.Spec((A.Alignment(A.Name("M"), A.Name("n"), A.Name("N"),
                               (A.VarAlignment(A.Name("v"), (ref, ref)),)),))
    roundtrip(spec)


@settings(max_examples=FUZZ, deadline=None, derandomize=DERANDOMIZE)
@given(S.texts | st.text())
def test_random_string_roundtrip(text):
    spec = A.Spec((A.Network(A.Name("n"), A.HFBackend(text), (A.AnswerDecl(text),), braced=True),))
    roundtrip(spec)


def _kinds_in(node) -> set[type]:
    out: set[type] = set()
    _node_types(node, out)
    return out


def _node_types(node, seen: set[type]) -> None:
    if isinstance(node, tuple):
        for x in node:
            _node_types(x, seen)
    elif isinstance(node, A.Node):
        seen.add(type(node))
        for f in dataclasses.fields(node):
            _node_types(getattr(node, f.name), seen)


def test_strategies_cover_every_node_kind():
    """tests/syntax/strategies.py builds every AST class (so the random specs can hold it)."""
    import ast as pyast
    import inspect

    tree = pyast.parse(inspect.getsource(S))
    built = {node.attr for node in pyast.walk(tree)
             if isinstance(node, pyast.Attribute) and isinstance(node.value, pyast.Name)
             and node.value.id == "A"}
    every = {name for name, c in vars(A).items()
             if isinstance(c, type) and issubclass(c, A.Node) and c is not A.Node}
    assert every - built == set()


def test_random_specs_reach_every_node_kind():
    """... and 500 derandomized random specs do contain every one of them."""
    seen: set[type] = set()

    @settings(max_examples=500, deadline=None, derandomize=True, database=None)
    @given(S.specs)
    def collect(spec):
        _node_types(spec, seen)

    collect()
    every = {c for c in vars(A).values()
             if isinstance(c, type) and issubclass(c, A.Node) and c is not A.Node}
    # Which kinds 500 draws happen to hit depends on the hypothesis version; a kind that was
    # missed must still be reachable: search for a spec containing it (fails if none exists).
    for kind in sorted(every - seen, key=lambda c: c.__name__):
        found = find(S.specs, lambda spec, k=kind: k in _kinds_in(spec),
                     settings=settings(max_examples=20_000, deadline=None, database=None))
        _node_types(found, seen)
    assert every - seen == set()


# ───────────────────────── keywords as names ─────────────────────────

KEYWORDS = sorted({t.pattern.value for t in lark_parser().terminals
                   if t.pattern.type == "str" and IDENT_RE.match(t.pattern.value)})


def test_keyword_list_matches_grammar():
    assert KEYWORDS == sorted(S.KEYWORDS)


def _identifier_slots(node, path=()):
    """Paths to every identifier in the AST (a Name's text, a site path part, ...)."""
    if isinstance(node, tuple):
        for i, x in enumerate(node):
            yield from _identifier_slots(x, path + (i,))
        return
    if not isinstance(node, A.Node):
        return
    for f in dataclasses.fields(node):
        if f.name == "span":
            continue
        v, p = getattr(node, f.name), path + (f.name,)
        if (isinstance(node, A.Name) and f.name == "text"
                or isinstance(node, (A.NameRef, A.SymbolLit)) and f.name == "name"
                or isinstance(node, A.NamedSite) and f.name == "part" and v is not None
                or isinstance(node, A.OptionStmt) and f.name == "value" and not node.value_quoted
                or isinstance(node, A.FeatArg) and f.name == "key" and v is not None
                or isinstance(node, A.FeatArg) and f.name == "value" and node.kind == "name"):
            yield p
        elif isinstance(node, A.NamedSite) and f.name == "path" or isinstance(node, A.EnumType):
            yield from (p + (i,) for i in range(len(v)))
        else:
            yield from _identifier_slots(v, p)


def _replace(node, path, value):
    if not path:
        return value
    k, rest = path[0], path[1:]
    if isinstance(k, int):
        items = list(node)
        items[k] = _replace(items[k], rest, value)
        return tuple(items)
    return dataclasses.replace(node, **{k: _replace(getattr(node, k), rest, value)})


# Constructs the kitchen sink lacks: statements after one ending in a site or position,
# quoted options, featurizer arguments of every kind, every ablation and metric form.
CORNERS = """
model M {
  input A : enum {x, "y z"} ~ weighted { -1: 1e-05, x: 2 } where not A
  var V : Dom = f() + g(A) * T[0, 1] - -x
  var E : bool = if a or b and not c then (d or e) * f // -g else h == i + j % k
  table T : Obj -> Obj = { x: y, (a, b): c, "s": -2 }
  example do(A = x) { B = y } => C = z
}
network n = hf "p"
network k = hf "q" { device "cuda:1" device_map "balanced" backend nnsight remote answer "x"
                     prompt by A { x: "a", 1: "b" }
                     position P = slot(S).first position Q = slot(S, 3) position R = P - 2 }
align M to n as N {
  A -> resid @ {P}
  B -> resid[1] @ P
  C -> resid[1].q, module "x" input, a.b
  D -> resid : g(), module "x" input : h(a, "b", 1.5, -2, k=v)
  E -> output
  F -> x
  G -> output : d
}
check N { interchange {A}, A }
circuit C on n for M.O {
  group g = module "m" input, a.b @ {P, Q}
  group h = a[1] @ P
  ablate complement with zero
  ablate complement with resample from D
  granularity node
  metric m
  metric m2() @ {P}
  metric m3(a, "b")
  edges { a.b -> c }
  expect a(b) < -1.5 point mean and c > 2
}
dataset D from M { prompt by X { a: "b" } seed 3 }
"""


def _around(item, path):
    """The item cut down to the statement holding `path` (and the one before it when `path`
    is the statement's first identifier, whose reading may depend on what precedes it),
    with the path adjusted: a smaller text to parse, for speed."""
    if len(path) > 1 and path[0] == "body":
        k = path[1]
        leading = next(_identifier_slots(item.body[k]), None) == path[2:]
        lo = max(0, k - 1) if leading else k
        return dataclasses.replace(item, body=item.body[lo:k + 1]), ("body", k - lo) + path[2:]
    return dataclasses.replace(item, body=()), path


def _context_key(item, path) -> tuple:
    """Slots with the same key sit in the same grammatical context."""
    key: list = [type(item).__name__, tuple(type(x).__name__ for x in getattr(item, "body", ()))]
    node = item
    for k in path:
        key.append(min(k, 1) if isinstance(k, int) else (type(node).__name__, k))
        node = node[k] if isinstance(k, int) else getattr(node, k)
    return tuple(key)


def _parses_back(spec: A.Spec, text: str) -> bool:
    try:
        return parse(text) == spec
    except SpecError:
        return False


def test_every_keyword_in_every_identifier_position(monkeypatch):
    """Each keyword, put in each identifier slot of the kitchen sink (and of CORNERS),
    either prints text that parses back to the same AST, or is refused with PrintError —
    and then only because the text it would print indeed reads back differently."""
    spec = parse(KITCHEN_SINK.read_text(encoding="utf-8"))
    spec = A.Spec(spec.items + parse(CORNERS).items)
    ident = printer.check_ident

    def print_ignoring_keywords(node: A.Spec) -> str:
        with monkeypatch.context() as m:
            m.setattr(printer, "check_ident", lambda text, what="", reserved=frozenset(): ident(text, what))
            return print_spec(node)

    refused = printed = 0
    contexts = set()
    for i, whole in enumerate(spec.items):
        for path in _identifier_slots(whole):
            item, path = _around(whole, path)
            if _context_key(item, path) in contexts:
                continue
            contexts.add(_context_key(item, path))
            for kw in KEYWORDS:
                new = A.Spec((_replace(item, path, kw),))
                try:
                    text = print_spec(new)
                except PrintError:
                    refused += 1
                    forced = print_ignoring_keywords(new)
                    assert not _parses_back(new, forced), \
                        f"`{kw}` at item {i} {path} is refused, but would print fine:\n{forced}"
                    continue
                printed += 1
                try:
                    back = parse(text)
                except SpecError as exc:  # pragma: no cover - a failure message
                    pytest.fail(f"`{kw}` at item {i} {path}: printed text does not parse: {exc}\n{text}")
                assert back == new, f"`{kw}` at item {i} {path} reads back differently:\n{text}"
    assert printed > 20 * refused > 0


# ───────────────────────── expressions: parentheses ─────────────────────────

def n(name: str) -> A.NameRef:
    return A.NameRef(name)


def i(value: int) -> A.IntLit:
    return A.IntLit(value)


def b(op, left, right) -> A.Binary:
    return A.Binary(op, left, right)


@pytest.mark.parametrize("expr, text", [
    (b("-", n("a"), b("-", n("b"), n("c"))), "a - (b - c)"),
    (b("-", b("-", n("a"), n("b")), n("c")), "a - b - c"),
    (b("==", b("==", n("a"), n("b")), n("c")), "(a == b) == c"),
    (b("<", n("a"), b("!=", n("b"), n("c"))), "a < (b != c)"),
    (A.Unary("-", A.Unary("-", n("x"))), "- -x"),
    (A.Unary("-", i(3)), "-3"),
    (A.Unary("-", A.Unary("-", i(3))), "- -3"),
    (A.Unary("not", A.Unary("not", n("x"))), "not not x"),
    (A.Unary("-", b("+", n("a"), n("b"))), "-(a + b)"),
    (A.Unary("not", b("and", n("a"), n("b"))), "not (a and b)"),
    (A.Unary("not", b("==", n("a"), n("b"))), "not a == b"),
    (b("==", A.Unary("not", n("a")), n("b")), "(not a) == b"),
    (b("+", A.IfThenElse(n("c"), i(1), i(2)), i(1)), "(if c then 1 else 2) + 1"),
    (b("+", i(1), A.IfThenElse(n("c"), i(1), i(2))), "1 + (if c then 1 else 2)"),
    (A.IfThenElse(A.IfThenElse(n("a"), n("b"), n("c")), n("d"), A.IfThenElse(n("e"), i(1), i(2))),
     "if if a then b else c then d else if e then 1 else 2"),
    (b("or", n("a"), b("and", n("b"), n("c"))), "a or b and c"),
    (b("and", b("or", n("a"), n("b")), n("c")), "(a or b) and c"),
    (b("and", n("a"), b("and", n("b"), n("c"))), "a and (b and c)"),
    (b("*", b("+", n("a"), n("b")), b("%", n("c"), n("d"))), "(a + b) * (c % d)"),
    (b("//", b("*", n("a"), n("b")), A.Unary("-", n("c"))), "a * b // -c"),
    (A.Call(A.Name("f"), (A.IfThenElse(n("a"), i(0), i(1)), b("or", n("x"), n("y")))),
     "f(if a then 0 else 1, x or y)"),
    (A.Call(A.Name("f"), ()), "f()"),
    (A.Index(A.Name("T"), (n("a"), i(2))), "T[a, 2]"),
    (A.StrLit('a"b\\c\nd\té'), '"a\\"b\\\\c\\nd\\té"'),
])
def test_expr_text(expr, text):
    assert print_expr(expr) == text
    assert print_node(expr) == text
    roundtrip(_in_model(expr))


@pytest.mark.parametrize("expr, text", [
    (b("+", n("a"), b("*", n("not"), n("if"))), "a + not * if"),
    (b("or", n("a"), b("and", n("if"), A.Unary("-", n("not")))), "a or if and -not"),
    (b("and", A.Call(A.Name("then"), ()), A.Index(A.Name("else"), (n("and"),))), "then() and else[and]"),
    (A.Unary("not", b("+", n("if"), n("x"))), "not if + x"),
])
def test_keywords_as_names_in_expressions(expr, text):
    """`if`/`not` are names where the grammar cannot begin an `if`/`not` there."""
    assert print_expr(expr) == text
    assert parse(f"model M {{\n  var v : bool = {text}\n}}") == _in_model(expr)
    roundtrip(_in_model(expr))


@pytest.mark.parametrize("expr, text", [
    (b("*", n("a"), b("+", n("not"), n("x"))), "a * (not + x)"),   # `(` begins an expression
    (b("+", n("if"), n("x")), "if + x"),
    (A.Unary("not", b("or", n("not"), n("x"))), "not (not or x)"),
])
def test_keywords_where_the_keyword_can_begin_are_refused(expr, text):
    with pytest.raises(PrintError, match="keyword"):
        print_expr(expr)
    with pytest.raises(SpecError):
        parse(f"model M {{ var v : bool = {text} }}")


def test_negative_int_in_expression_is_refused():
    with pytest.raises(PrintError, match="non-negative"):
        print_expr(b("+", n("a"), i(-3)))
    # ... but literal positions take negative integers
    assert print_type(A.IntType(-3, -1)) == "int -3..-1"


# ───────────────────────── strings, numbers, enum members ─────────────────────────

@pytest.mark.parametrize("value", [
    "", "plain", 'q"uote', "back\\slash", "nl\nx", "tab\t", "\r\x00\x7f", "\u2028\x85\ufeff",
    "ünïcødé ✓ 🎉", "\ud800", "{S} gave", "# not a comment",
])
def test_string_escapes(value):
    import ast as pyast
    text = print_string(value)
    assert pyast.literal_eval(text) == value
    assert "\n" not in text
    if value.isprintable():
        assert text == '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.parametrize("threshold", [0.95, 1e-05, 1e16, 5e-324, -0.0, -2.5, 1.7976931348623157e308, 3])
def test_threshold_numbers(threshold):
    cond = A.Condition(A.Metric(A.Name("iia")), ">=", threshold)
    spec = A.Spec((A.Check(A.Name("C"), None, (A.Expect((cond,)),)),))
    text = roundtrip(spec)
    assert float(text.split(">=")[1].split()[0]) == threshold


def test_non_finite_numbers_are_refused():
    for bad in (math.inf, math.nan):
        cond = A.Condition(A.Metric(A.Name("iia")), ">=", bad)
        with pytest.raises(PrintError):
            print_spec(A.Spec((A.Check(A.Name("C"), None, (A.Expect((cond,)),)),)))


def test_enum_members_bare_or_quoted():
    t = A.EnumType(("ABB", "model", "_", "two words", "", "1x", "é"))
    assert print_type(t) == 'enum {ABB, model, _, "two words", "", "1x", "é"}'
    roundtrip(A.Spec((A.Model(A.Name("M"), (A.DomainDecl(A.Name("D"), t),)),)))


# ───────────────────────── optional parts and braces ─────────────────────────

def _align(*refs: A.SiteRef) -> A.Spec:
    return A.Spec((A.Alignment(A.Name("M"), A.Name("n"), A.Name("N"), (A.VarAlignment(A.Name("v"), refs),)),))


@pytest.mark.parametrize("ref, text", [
    (A.SiteRef(A.NamedSite(("resid",)), (A.NamedPos(A.Name("END")),), False), "resid @ END"),
    (A.SiteRef(A.NamedSite(("resid",)), (A.NamedPos(A.Name("END")),), True), "resid @ {END}"),
    (A.SiteRef(A.NamedSite(("a", "b"), (1, 2), "q"), (A.OffsetPos(A.Name("S"), -1), A.RangePos(1, 3)), True,
               A.CallFeaturizer(A.Name("f"))), "a.b[1.2].q @ {S - 1, 1..3} : f"),
    (A.SiteRef(A.ModuleSite("m", "input"), None, False, A.CallFeaturizer(A.Name("f"), ())),
     'module "m" input : f()'),
    (A.SiteRef(A.NamedSite(("x",), (0,)), None, False, A.CallFeaturizer(A.Name("f"), (
        A.FeatArg(None, 1, "number"), A.FeatArg("k", 1.0, "number"), A.FeatArg(None, "s", "string"),
        A.FeatArg("z", "name", "name"), A.FeatArg(None, -1e-07, "number")))),
     'x[0] : f(1, k=1.0, "s", z=name, -1e-07)'),
    (A.SiteRef(A.NamedSite(("x",)), None, False, A.SliceFeaturizer(0, 8)), "x : [0:8]"),
])
def test_site_ref_text(ref, text):
    assert print_site_ref(ref) == text
    roundtrip(_align(ref))


def test_feature_arg_int_vs_float_survives():
    ref = A.SiteRef(A.NamedSite(("x",)), None, False, A.CallFeaturizer(A.Name("f"), (
        A.FeatArg(None, 2, "number"), A.FeatArg(None, 2.0, "number"))))
    back = parse(print_spec(_align(ref)))
    args = back.items[0].body[0].sites[0].featurizer.args
    assert [type(a.value) for a in args] == [int, float]


@pytest.mark.parametrize("iset, text", [
    (A.InterchangeSet(((A.Name("WX"),),), braced=False), "WX"),
    (A.InterchangeSet(((A.Name("WX"),),), braced=True), "{WX}"),
    (A.InterchangeSet(((A.Name("WX"), A.Name("YZ")),)), "{WX, YZ}"),
    (A.InterchangeSet(((A.Name("WX"),), (A.Name("YZ"),))), "{WX | YZ}"),
])
def test_interchange_sets(iset, text):
    spec = A.Spec((A.Check(A.Name("N"), None, (A.Interchange((iset,)),)),))
    assert print_spec(spec) == f"check N {{\n  interchange {text}\n}}\n"
    roundtrip(spec)


def test_controls_with_and_without_arguments():
    # args_of(i) is None for a control written bare, () for one written with empty parentheses
    n = A.FeatArg("n", 20, "number")
    controls = A.Controls((A.Name("random_subspace"), A.Name("heldout"), A.Name("random_init")),
                          ((n,), None, ()))
    spec = A.Spec((A.Check(A.Name("N"), None, (controls, A.Controls((A.Name("heldout"),)))),))
    assert print_spec(spec) == ("check N {\n  controls random_subspace(n=20), heldout, random_init()\n"
                                "  controls heldout\n}\n")
    roundtrip(spec)


def test_network_braces_and_metric_args():
    bare = A.Network(A.Name("n"), A.HFBackend("gpt2"))
    empty = A.Network(A.Name("n"), A.HFBackend("gpt2"), (), braced=True)
    assert print_spec(A.Spec((bare,))) == 'network n = hf "gpt2"\n'
    assert print_spec(A.Spec((empty,))) == 'network n = hf "gpt2" {}\n'
    metrics = (A.MetricDecl(A.Name("m")), A.MetricDecl(A.Name("m"), ()),
               A.MetricDecl(A.Name("m"), (A.Name("IO"), A.StrLit("S")), (A.IndexPos(0),), True))
    circuit = A.Circuit(A.Name("C"), A.Name("n"), A.Name("M"), A.Name("O"), metrics)
    text = roundtrip(A.Spec((bare, empty, circuit)))
    assert '  metric m\n  metric m()\n  metric m(IO, "S") @ {0}\n' in text


def test_long_table_breaks_lines():
    entries = tuple(A.TableEntry((A.IntLit(k),), A.StrLit(f"value {k}")) for k in range(12))
    table = A.TableDecl(A.Name("T"), (A.IntType(0, 11),), A.NamedType(A.Name("Word")), entries)
    text = roundtrip(A.Spec((A.Model(A.Name("M"), (table,)),)))
    assert '    0: "value 0",\n' in text


# ───────────────────────── unprintable ASTs ─────────────────────────

@pytest.mark.parametrize("node", [
    A.NamedSite(("a",), None, "q"),                                   # part needs an index
    A.NamedSite(("a",), (1, 2, 3)),
    A.NamedSite(("module",)),
    A.SiteRef(A.NamedSite(("a",)), (A.SlotPos(A.Name("S")),)),       # slot after @
    A.SiteRef(A.NamedSite(("a",)), (A.IndexPos(1), A.IndexPos(2)), braced=False),
    A.InterchangeSet(((A.Name("a"), A.Name("b")),), braced=False),
    A.Binary("**", n("a"), n("b")),
    A.NameRef("true"),
    A.NameRef("two words"),
    A.SymbolLit("false"),
    A.NamedType(A.Name("int")),
    A.Ablate("zero", A.Name("D")),
    A.Ablate("mean"),
    A.PromptDecl(None, None, ()),
    A.OptionStmt("dtype", "float32", value_quoted=True),
    A.EngineStmt(A.Name("nnsight"), remote=False, host="https://ndif.example.org"),  # host needs remote
    A.TableEntry((), A.IntLit(1)),
    A.TableEntry((A.SymbolLit("_"),), A.IntLit(1)),
])
def test_unprintable_nodes_raise(node):
    with pytest.raises(PrintError):
        print_node(node)
