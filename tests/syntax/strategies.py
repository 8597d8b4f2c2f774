"""Hypothesis strategies for random causalspec ASTs, one per node kind.

Import as `from tests.syntax import strategies as S` (the tests put the repository root on
`sys.path`). The ASTs are purely syntactic: names need not resolve, types need not match,
but every AST drawn here can be written as text (`causalspec.syntax.printer`) and parses
back to itself. The invariants that makes necessary (see the printer's docstring) are kept
here: identifiers avoid the keywords a position reads as keywords (`RESERVED_IN`), integers
inside expressions are non-negative, `NamedSite.part` comes with an index, positions after
`@` are never `slot(...)`, floats are finite, and repeated parts are non-empty where the
grammar demands it.

Identifiers are drawn from a pool that includes every keyword of the grammar, since the
contextual lexer lets keywords serve as names almost everywhere.
"""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from causalspec.syntax import ast as A
from causalspec.syntax.printer import RESERVED_IN

KEYWORDS = (
    "_ ablate ablated ablation align all and answer as backend balanced batch bool by check circuit class "
    "complement const convention "
    "controls dataset decode device device_map do domain dtype each edge edges else encode enum example "
    "expect false first for from granularity group hf if in input int interchange kept last latents locate logit "
    "lower95 "
    "mean metric mlps model module network node not of on or output over pairs point pool position "
    "prompt real remote resample sample score seed slot steps table then to token torch train true trust_remote_code "
    "uniform value var weighted weights where with within zero"
).split()

SAFE_NAMES = ("x", "y", "W", "X", "WX", "order", "S1", "END", "_tmp", "a1_b2", "resid", "head")

NOTHING: frozenset[str] = frozenset()

_random_idents = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)


@functools.cache
def identifiers(reserved: frozenset[str] = NOTHING) -> st.SearchStrategy[str]:
    """An identifier that reads as NAME in a position whose keywords are `reserved`."""
    pool = st.sampled_from(SAFE_NAMES) | st.sampled_from(KEYWORDS) | _random_idents
    return pool.filter(lambda s: s not in reserved)


@functools.cache
def names(reserved: frozenset[str] = NOTHING) -> st.SearchStrategy[A.Name]:
    return identifiers(reserved).map(A.Name)


def _tuples(elements, min_size=1, max_size=3):
    return st.lists(elements, min_size=min_size, max_size=max_size).map(tuple)


def name_tuples(min_size=1, max_size=3):
    return _tuples(names(), min_size, max_size)


# Any unicode text, control characters included (the printer escapes them).
texts = st.text(max_size=12)
# Integer literals are at most 2^62 in magnitude (a larger one is diagnostic E0104 at parse).
nonneg_ints = st.integers(min_value=0, max_value=10**6) | st.integers(min_value=0, max_value=2**62)
ints = st.integers(min_value=-10**6, max_value=10**6) | st.integers(min_value=-2**62, max_value=2**62)
floats = st.floats(allow_nan=False, allow_infinity=False)


# ───────────────────────── literals and expressions ─────────────────────────

@functools.cache
def literals(reserved: frozenset[str] = RESERVED_IN["symbol"]) -> st.SearchStrategy[A.Literal]:
    """A literal value (examples, tables, weights, template keys): negative ints allowed."""
    return st.one_of(
        st.builds(A.IntLit, ints),
        st.builds(A.FracLit, ints, st.integers(1, 10**6)),
        st.builds(A.BoolLit, st.booleans()),
        st.builds(A.StrLit, texts),
        st.builds(A.SymbolLit, identifiers(reserved)),
    )


# Names in expressions: anything but true/false at first; `_keyword_names` then renames
# the `if`/`not` that the lexer would read as keywords where they stand.
_expr_idents = identifiers(RESERVED_IN["symbol"])
expr_names = _expr_idents.map(A.Name)
_expr_atoms = st.one_of(
    st.builds(A.IntLit, nonneg_ints),
    st.builds(A.BoolLit, st.booleans()),
    st.builds(A.StrLit, texts),
    st.builds(A.NameRef, _expr_idents),
)
BINARY_OPS = ("or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "//", "%", "/")


def _expr_extend(children):
    return st.one_of(
        st.builds(A.Unary, st.sampled_from(("-", "not")), children),
        st.builds(A.Binary, st.sampled_from(BINARY_OPS), children, children),
        st.builds(A.IfThenElse, children, children, children),
        st.builds(A.Call, expr_names, _tuples(children, 0, 3)),
        st.builds(A.Index, expr_names, _tuples(children, 1, 3)),
        st.builds(A.Aggregate, expr_names, names(RESERVED_IN["expr_name"]), children, children,
                  st.none() | children, children),
    )


# Grammar levels: which keyword may begin the text at a point where the grammar expects
# `expr` (if, not), `or_expr`/`and_expr`/`not_expr` (not) or anything tighter (neither).
_EXPR, _OR, _AND, _NOT, _CMP, _SUM, _PROD, _UNARY, _ATOM = range(9)
_OPS = {"or": (_OR, _OR, _AND), "and": (_AND, _AND, _NOT),
        **{op: (_CMP, _SUM, _SUM) for op in ("==", "!=", "<", "<=", ">", ">=")},
        "+": (_SUM, _SUM, _PROD), "-": (_SUM, _SUM, _PROD),
        "*": (_PROD, _PROD, _UNARY), "//": (_PROD, _PROD, _UNARY), "%": (_PROD, _PROD, _UNARY),
        "/": (_PROD, _PROD, _UNARY)}


def _own_level(e) -> int:
    if isinstance(e, A.IfThenElse):
        return _EXPR
    if isinstance(e, A.Binary):
        return _OPS[e.op][0]
    if isinstance(e, A.Unary):
        return _NOT if e.op == "not" else _UNARY
    return _ATOM


def _keyword_names(e, slot: int = _EXPR, start: int = _EXPR):
    """Rename names that would lex as `if`/`not` where the printed text puts them."""
    if _own_level(e) < slot:
        start = _EXPR  # parenthesized: a fresh expression starts after `(`
    bad = {"if", "not"} if start == _EXPR else {"not"} if start <= _NOT else set()

    def fix(name: str) -> str:
        return name + "_" if name in bad else name

    if isinstance(e, A.IfThenElse):
        return A.IfThenElse(*(_keyword_names(x) for x in (e.cond, e.then, e.other)))
    if isinstance(e, A.Binary):
        _, left, right = _OPS[e.op]
        return A.Binary(e.op, _keyword_names(e.left, left, start), _keyword_names(e.right, right, right))
    if isinstance(e, A.Unary):
        level = _NOT if e.op == "not" else _UNARY
        return A.Unary(e.op, _keyword_names(e.operand, level, level))
    if isinstance(e, A.NameRef):
        return A.NameRef(fix(e.name))
    if isinstance(e, (A.Call, A.Index)):
        return type(e)(A.Name(fix(e.func.text if isinstance(e, A.Call) else e.table.text)),
                       tuple(_keyword_names(a) for a in e.args))
    if isinstance(e, A.Aggregate):  # bounds are printed at `sum` level, the rest after `where`/`:`
        return A.Aggregate(A.Name(fix(e.func.text)), e.var, _keyword_names(e.lo, _SUM, _SUM),
                           _keyword_names(e.hi, _SUM, _SUM),
                           None if e.where is None else _keyword_names(e.where), _keyword_names(e.body))
    return e


exprs = st.recursive(_expr_atoms, _expr_extend, max_leaves=12).map(_keyword_names)


# ───────────────────────── types and the model ─────────────────────────

_members = st.one_of(identifiers(), texts, st.sampled_from(KEYWORDS))
types = st.one_of(
    st.builds(A.BoolType),
    st.builds(A.RealType),
    st.builds(A.IntType, ints, ints),
    st.builds(A.EnumType, _tuples(_members, 1, 4)),
    st.builds(A.EnumFileType, texts),
    st.builds(A.NamedType, names(RESERVED_IN["type_name"])),
)

distributions = st.one_of(
    st.builds(A.Uniform),
    st.builds(A.Weighted, _tuples(st.builds(A.Weight, literals(), floats), 1, 3)),
)
assignments = st.builds(A.Assignment, names(), literals())
table_entries = st.builds(
    A.TableEntry,
    st.one_of(
        st.none(),
        literals(RESERVED_IN["table_key"]).map(lambda k: (k,)),
        _tuples(literals(), 2, 3),
    ),
    literals(),
)
edges = st.builds(A.Edge, names(), names())

def _sum_level(e):
    return _keyword_names(e, _SUM, _SUM)


family_ranges = st.builds(A.FamilyRange, names(), exprs.map(_sum_level), exprs.map(_sum_level))
input_families = st.builds(A.FamilyRange, st.none(), exprs.map(_sum_level), exprs.map(_sum_level))


@st.composite
def _family_inputs(draw):
    names_ = draw(name_tuples())
    fams = tuple(draw(st.none() | input_families) for _ in names_)
    return A.InputDecl(names_, draw(types), draw(st.none() | distributions), draw(st.none() | exprs),
                       fams if any(fams) else ())


model_stmts = st.one_of(
    st.builds(A.DomainDecl, names(), types),
    st.builds(A.ConstDecl, names(), exprs),
    st.builds(A.InputDecl, name_tuples(), types, st.none() | distributions, st.none() | exprs),
    _family_inputs(),
    st.builds(A.VarDecl, st.sampled_from(("var", "output")), names(), types, exprs, st.none() | family_ranges),
    st.builds(A.TableDecl, names(), _tuples(types, 1, 2), types, _tuples(table_entries, 1, 4)),
    st.builds(A.SampleDecl, names()),
    st.builds(A.ExampleDecl, _tuples(assignments, 0, 2), _tuples(assignments, 0, 3),
              _tuples(assignments, 1, 2)),
    st.builds(A.EdgesDecl, _tuples(edges, 0, 3)),
)
models = st.builds(A.Model, names(), _tuples(model_stmts, 0, 5))


# ───────────────────────── networks and positions ─────────────────────────

@functools.cache
def pos_atoms(reserved: frozenset[str] = NOTHING) -> st.SearchStrategy[A.PositionExpr]:
    """A position as written after `@` (and in declarations, with `reserved` = {slot})."""
    return st.one_of(
        st.builds(A.NamedPos, names(reserved)),
        st.builds(A.OffsetPos, names(reserved), ints),
        st.builds(A.IndexPos, nonneg_ints),
        st.builds(A.RangePos, nonneg_ints, nonneg_ints),
        st.builds(A.ElemPos, names(reserved), names()),
        st.builds(lambda n, k: A.NamedPos(A.Name(f"{n.text}[{k}]")), names(reserved), nonneg_ints),
    )


TOKEN_PARTS = ("first", "last", "all")
slot_positions = st.one_of(
    st.builds(A.SlotPos, names(), st.none() | nonneg_ints, st.none() | st.sampled_from(TOKEN_PARTS)),
    st.builds(lambda n, part, var: A.SlotPos(n, None, part, var), names(),
              st.none() | st.sampled_from(TOKEN_PARTS), names()),
)
declared_positions = st.one_of(slot_positions, slot_positions, pos_atoms(RESERVED_IN["decl_position"]))

template_cases = st.builds(A.TemplateCase, literals(), texts)
prompts = st.one_of(
    st.builds(A.PromptDecl, st.none(), texts, st.just(())),
    st.builds(A.PromptDecl, names(), st.none(), _tuples(template_cases, 1, 3)),
)
options = st.one_of(
    st.builds(A.OptionStmt, st.sampled_from(("device", "dtype", "class", "device_map")), identifiers(),
              st.just(False)),
    st.builds(A.OptionStmt, st.sampled_from(("device", "device_map")), texts, st.just(True)),
)
engines = st.one_of(
    st.builds(A.EngineStmt, names(), st.just(False), st.none()),
    st.builds(A.EngineStmt, names(), st.just(True), st.none() | texts),
)
network_stmts = st.one_of(
    st.builds(A.HookStmt, st.sampled_from(("encode", "decode")), texts),
    options,
    st.builds(A.FlagStmt, st.just("trust_remote_code")),
    engines,
    prompts,
    st.builds(A.AnswerDecl, texts, st.none() | st.sampled_from(TOKEN_PARTS)),
    st.builds(A.PositionDecl, names(), declared_positions),
    st.builds(A.OutputValueStmt, st.none() | texts),
    st.builds(A.PositionDecl, names(), declared_positions, family_ranges),
    st.builds(lambda n, items, r: A.PositionDecl(n, items[0], r, tuple(items)), names(),
              st.lists(declared_positions, min_size=1, max_size=3), family_ranges),
)
backends = st.one_of(st.builds(A.HFBackend, texts), st.builds(A.TorchBackend, texts, texts))
networks = st.one_of(
    st.builds(A.Network, names(), backends, st.just(()), st.just(False)),
    st.builds(A.Network, names(), backends, _tuples(network_stmts, 0, 5), st.just(True)),
)


# ───────────────────────── sites and alignments ─────────────────────────

@functools.cache
def named_sites(after_arrow: bool = False) -> st.SearchStrategy[A.NamedSite]:
    """`after_arrow`: the first site of an alignment statement (`output` is a keyword)."""
    head = identifiers(RESERVED_IN["align_site_head" if after_arrow else "site_head"])
    path = st.tuples(head, _tuples(identifiers(), 0, 2)).map(lambda t: (t[0], *t[1]))
    index = _tuples(nonneg_ints, 1, 2)

    def build(draw_path, draw_index, draw_part):
        return A.NamedSite(draw_path, draw_index, draw_part if draw_index is not None else None)

    return st.builds(build, path, st.none() | index, st.none() | identifiers())


module_sites = st.builds(A.ModuleSite, texts, st.sampled_from(("input", "output")))


@functools.cache
def sites(after_arrow: bool = False) -> st.SearchStrategy[A.Site]:
    return named_sites(after_arrow) | module_sites


@functools.cache
def position_lists() -> st.SearchStrategy[tuple[tuple[A.PositionExpr, ...], bool]]:
    """(positions, braced) as written after `@`: several positions need braces."""
    return st.one_of(
        st.tuples(_tuples(pos_atoms(), 1, 1), st.booleans()),
        st.tuples(_tuples(pos_atoms(), 2, 3), st.just(True)),
    )


feat_args = st.one_of(
    st.builds(A.FeatArg, st.none() | identifiers(), nonneg_ints | ints | floats, st.just("number")),
    st.builds(A.FeatArg, st.none() | identifiers(), texts, st.just("string")),
    st.builds(A.FeatArg, st.none() | identifiers(), identifiers(), st.just("name")),
    st.builds(A.FeatArg, st.none() | identifiers(), _tuples(nonneg_ints | ints, 0, 3), st.just("list")),
)
featurizers = st.one_of(
    st.builds(A.SliceFeaturizer, nonneg_ints, nonneg_ints),
    st.builds(A.CallFeaturizer, names(), st.none() | _tuples(feat_args, 0, 3)),
)


@functools.cache
def site_refs(first: bool = True) -> st.SearchStrategy[A.SiteRef]:
    """`first`: the first site of an alignment statement, right after `->`."""
    return st.builds(
        lambda site, pos, feat: A.SiteRef(site, *(pos or (None, False)), feat),
        sites(after_arrow=first), st.none() | position_lists(), st.none() | featurizers,
    )


align_stmts = st.one_of(
    st.builds(A.VarAlignment, names(), st.tuples(site_refs(first=True), _tuples(site_refs(first=False), 0, 2))
              .map(lambda t: (t[0], *t[1]))),
    st.builds(A.OutputAlignment, names(), st.none() | names()),
    st.builds(A.VarAlignment, names(), site_refs(first=True).map(lambda r: (r,)),
              st.builds(A.FamilyRange, names(), st.none(), st.none()) | family_ranges),
    st.builds(lambda n, pos, dec: A.OutputAlignment(n, dec, (pos,), False), names(), pos_atoms(), st.none() | names()),
)
alignments = st.builds(A.Alignment, names(), names(), names(), _tuples(align_stmts, 0, 4))


# ───────────────────────── checks ─────────────────────────

interchange_sets = st.one_of(
    names().map(lambda n: A.InterchangeSet(((n,),), braced=False)),
    st.builds(A.InterchangeSet, _tuples(name_tuples(1, 3), 1, 3), st.just(True)),
)
settings = st.builds(A.Setting, st.sampled_from(("pairs", "seed", "pool", "batch", "train", "steps")), nonneg_ints)
metrics = st.builds(A.Metric, names(), st.none() | names())
conditions = st.builds(
    A.Condition, metrics, st.sampled_from((">=", "<=", ">", "<")), floats,
    _tuples(st.sampled_from(("lower95", "point", "each", "mean")), 0, 2),
    st.none() | st.builds(A.Tolerance, st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{0,3})?", fullmatch=True)),
)
expects = st.builds(A.Expect, _tuples(conditions, 1, 3))
_sweep_ranges = st.tuples(nonneg_ints, nonneg_ints).map(lambda t: (min(t), max(t)))
sweep_sites = st.one_of(
    st.builds(lambda path, ranges, part: A.SweepSite(path, ranges, part if ranges is not None else None),
              named_sites().map(lambda s: s.path).filter(lambda path: path[0] not in RESERVED_IN["sweep_head"]),
              st.none() | _tuples(_sweep_ranges, 1, 2),
              st.none() | identifiers()),
    st.builds(lambda pattern, io: A.SweepSite(None, None, None, pattern, io), texts,
              st.sampled_from(("input", "output"))),
)
_locate_targets = st.tuples(names(), st.none() | st.builds(A.FamilyRange, names(), st.none(), st.none())
                            | family_ranges)
locates = st.builds(
    lambda var, site, pos, feat, joint: A.Locate(
        *(joint[0] if joint else var)[:1], site, *(pos or (None, False)), feat,
        (joint[0] if joint else var)[1], tuple(joint)),
    _locate_targets, sweep_sites, st.none() | position_lists(), st.none() | featurizers,
    st.just(()) | st.lists(_locate_targets, min_size=1, max_size=3),
)
locate_latents = st.builds(
    lambda var, site, pos, feat: A.LocateLatents(var, site, feat, *(pos or (None, False))),
    names(), sites(), st.none() | position_lists(), featurizers,
)
check_stmts = st.one_of(
    st.builds(A.Interchange, _tuples(interchange_sets, 1, 4)),
    settings,
    st.builds(A.Controls, name_tuples())
    | name_tuples().flatmap(lambda ns: st.builds(A.Controls, st.just(ns),
                                                 _tuples(st.none() | _tuples(feat_args, 0, 2), len(ns), len(ns))))
    | locates | locate_latents,
    expects,
)
checks = st.builds(A.Check, names(), st.none() | names(), _tuples(check_stmts, 0, 4))


# ───────────────────────── circuits and datasets ─────────────────────────

group_decls = st.builds(
    lambda name, nodes, pos: A.GroupDecl(name, nodes, *(pos or (None, False))),
    names(), _tuples(sites(), 1, 3), st.none() | position_lists(),
)
metric_decls = st.builds(
    lambda name, args, pos: A.MetricDecl(name, args, *(pos or (None, False))),
    names(), st.none() | _tuples(names() | st.builds(A.StrLit, texts), 0, 3), st.none() | position_lists(),
)


endpoints = st.builds(A.Endpoint, names(), st.none() | names())
ablations = st.one_of(
    st.builds(A.Ablate, st.just("zero"), st.none()),
    st.builds(A.Ablate, st.sampled_from(("mean", "resample")), names()),
)
circuit_stmts = st.one_of(
    group_decls,
    st.builds(A.CircuitEdges, _tuples(st.builds(A.CircuitEdge, endpoints, endpoints, st.none() | floats), 0, 3)),
    ablations,
    st.builds(A.Granularity, st.sampled_from(("node", "edge"))),
    st.sampled_from([A.Convention(aspect, A.Name(value)) for aspect, value in
                     (("convention", "mib"), ("convention", "causalspec"), ("mlps", "ablated"), ("mlps", "kept"),
                      ("input", "token"), ("input", "token+position"))]),
    metric_decls,
    expects,
)
circuits = st.builds(A.Circuit, names(), names(), names(), names(), _tuples(circuit_stmts, 0, 5))
datasets = st.builds(A.Dataset, names(), names(), _tuples(prompts | settings, 0, 3))

items = st.one_of(models, networks, alignments, checks, circuits, datasets)
specs = st.builds(A.Spec, _tuples(items, 0, 4))
