"""The AST of a spec file: frozen dataclasses, one per construct, each with a source span.

Why spans are excluded from equality: the printer's contract is `parse(print(ast)) == ast`;
printed text lays things out differently, so positions differ while meaning does not.
Identifiers that diagnostics point at are `Name` nodes (text + span), not bare strings.

Why the classes say `eq=False, repr=False`: `dataclass` compiles each method it generates
with its own `exec`, and six methods for each of ~90 classes were a fifth of the start-up
time of `causalspec parse` (issue 15). `Node` defines `__eq__`, `__hash__` and `__repr__`
once, with the meaning the generated ones have: equal when of the same class with equal
compared fields (in order; `span` is never compared), the hash of those fields' tuple, and
`Class(field=value, ...)` over the repr fields ("..." for a node inside itself).
tests/syntax/test_ast_methods.py checks every class against a frozen dataclass generating
all six (`__init__`, `__setattr__` and `__delattr__` are still dataclass's: making them
without an `exec` per class would cost every node's construction, or an `exec` of our own).
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, Callable, Union

from causalspec.diagnostics import NO_SPAN, Span

_COMPARED: dict[type, Callable[[Any], tuple]] = {}  # class -> its compared fields' tuple, made on first use


def _compared(cls: type) -> Callable[[Any], tuple]:
    """The tuple of `cls`'s compared fields, as a function of a node."""
    key = _COMPARED.get(cls)
    if key is not None:
        return key
    names = tuple(f.name for f in fields(cls) if f.compare)
    if len(names) > 1:
        key = attrgetter(*names)
    elif names:
        one = attrgetter(names[0])

        def key(node: Any) -> tuple:
            return (one(node),)
    else:
        def key(node: Any) -> tuple:
            return ()
    _COMPARED[cls] = key
    return key


@dataclass(frozen=True, eq=False, repr=False)
class Node:
    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            key = _compared(self.__class__)
            return key(self) == key(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(_compared(self.__class__)(self))

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{self.__class__.__qualname__}({shown})"


@dataclass(frozen=True, eq=False, repr=False)
class Name(Node):
    text: str

    def __str__(self) -> str:
        return self.text


# ───────────────────────── literals and expressions ─────────────────────────

@dataclass(frozen=True, eq=False, repr=False)
class IntLit(Node):
    value: int


@dataclass(frozen=True, eq=False, repr=False)
class FracLit(Node):
    """`1/3`, `-5/2` in a literal position (examples, do()): an exact real value."""

    numerator: int
    denominator: int


@dataclass(frozen=True, eq=False, repr=False)
class BoolLit(Node):
    value: bool


@dataclass(frozen=True, eq=False, repr=False)
class StrLit(Node):
    value: str


@dataclass(frozen=True, eq=False, repr=False)
class SymbolLit(Node):
    """A bare identifier used as a value: an enum member such as `ABB`."""

    name: str


Literal = Union[IntLit, FracLit, BoolLit, StrLit, SymbolLit]


@dataclass(frozen=True, eq=False, repr=False)
class NameRef(Node):
    """A name inside an expression: a variable, or an enum member (resolved in analysis)."""

    name: str


@dataclass(frozen=True, eq=False, repr=False)
class Unary(Node):
    op: str  # "-" | "not"
    operand: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Binary(Node):
    op: str  # + - * // % == != < <= > >= and or
    left: Expr
    right: Expr


@dataclass(frozen=True, eq=False, repr=False)
class IfThenElse(Node):
    cond: Expr
    then: Expr
    other: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Call(Node):
    func: Name
    args: tuple[Expr, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Index(Node):
    """A table lookup `T[a, b]`."""

    table: Name
    args: tuple[Expr, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Aggregate(Node):
    """`count(j in 1..N where C : E)`: an aggregate over an index range (issue 13).

    `func` is one of count, sum, any, all, min, max, argmax, mean; `where` is the optional
    condition that selects the indices taken into account."""

    func: Name
    var: Name
    lo: Expr
    hi: Expr
    where: Expr | None
    body: Expr


Expr = Union[IntLit, BoolLit, StrLit, NameRef, Unary, Binary, IfThenElse, Call, Index, Aggregate]


# ───────────────────────── types ─────────────────────────

@dataclass(frozen=True, eq=False, repr=False)
class BoolType(Node):
    pass


@dataclass(frozen=True, eq=False, repr=False)
class IntType(Node):
    """`int a..b`; a bound may be an expression of `const`s (`int 0..N`) until the model's
    families are expanded (semantics.families), which replaces it by its value."""

    lo: int | Expr
    hi: int | Expr


@dataclass(frozen=True, eq=False, repr=False)
class RealType(Node):
    """`real`: an exact rational value computed by a mechanism (never an input's type)."""


@dataclass(frozen=True, eq=False, repr=False)
class EnumType(Node):
    members: tuple[str, ...]


@dataclass(frozen=True, eq=False, repr=False)
class EnumFileType(Node):
    path: str


@dataclass(frozen=True, eq=False, repr=False)
class NamedType(Node):
    name: Name


TypeExpr = Union[BoolType, IntType, RealType, EnumType, EnumFileType, NamedType]


# ───────────────────────── model ─────────────────────────

@dataclass(frozen=True, eq=False, repr=False)
class Uniform(Node):
    pass


@dataclass(frozen=True, eq=False, repr=False)
class Weight(Node):
    value: Literal
    weight: float


@dataclass(frozen=True, eq=False, repr=False)
class Weighted(Node):
    weights: tuple[Weight, ...]


Distribution = Union[Uniform, Weighted]


@dataclass(frozen=True, eq=False, repr=False)
class DomainDecl(Node):
    name: Name
    type: TypeExpr


@dataclass(frozen=True, eq=False, repr=False)
class FamilyRange(Node):
    """The index range of a family: `[i in 1..N]` (a var) or `[1..N]` (an input, `var` None)."""

    var: Name | None
    lo: Expr | None  # None only in an alignment `H[i] -> …`: the family's own range
    hi: Expr | None


@dataclass(frozen=True, eq=False, repr=False)
class ConstDecl(Node):
    """`const N = 5`: a named integer of the model."""

    name: Name
    value: Expr


@dataclass(frozen=True, eq=False, repr=False)
class InputDecl(Node):
    names: tuple[Name, ...]
    type: TypeExpr
    distribution: Distribution | None = None
    where: Expr | None = None
    # one entry per name when some name is a family (`input t[1..N]`), else empty
    families: tuple[FamilyRange | None, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class VarDecl(Node):
    """`var` (intermediate) or `output` variable with its mechanism."""

    kind: str  # "var" | "output"
    name: Name
    type: TypeExpr
    expr: Expr
    index: FamilyRange | None = None  # `var H[i in 1..N]`: a family, one variable per index


@dataclass(frozen=True, eq=False, repr=False)
class TableEntry(Node):
    keys: tuple[Literal, ...] | None  # None: the default entry `_`
    value: Literal


@dataclass(frozen=True, eq=False, repr=False)
class TableDecl(Node):
    name: Name
    key_types: tuple[TypeExpr, ...]
    value_type: TypeExpr
    entries: tuple[TableEntry, ...]


@dataclass(frozen=True, eq=False, repr=False)
class SampleDecl(Node):
    balanced_on: Name


@dataclass(frozen=True, eq=False, repr=False)
class Assignment(Node):
    name: Name
    value: Literal


@dataclass(frozen=True, eq=False, repr=False)
class ExampleDecl(Node):
    interventions: tuple[Assignment, ...]
    inputs: tuple[Assignment, ...]
    expected: tuple[Assignment, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Edge(Node):
    src: Name
    dst: Name


@dataclass(frozen=True, eq=False, repr=False)
class EdgesDecl(Node):
    edges: tuple[Edge, ...]


ModelStmt = Union[DomainDecl, ConstDecl, InputDecl, VarDecl, TableDecl, SampleDecl, ExampleDecl, EdgesDecl]


@dataclass(frozen=True, eq=False, repr=False)
class Model(Node):
    name: Name
    body: tuple[ModelStmt, ...]


# ───────────────────────── networks and encodings ─────────────────────────

@dataclass(frozen=True, eq=False, repr=False)
class HFBackend(Node):
    path: str


@dataclass(frozen=True, eq=False, repr=False)
class TorchBackend(Node):
    builder: str
    weights: str


@dataclass(frozen=True, eq=False, repr=False)
class HookStmt(Node):
    kind: str  # "encode" | "decode"
    ref: str


@dataclass(frozen=True, eq=False, repr=False)
class OptionStmt(Node):
    """`device X`, `dtype X`, `class X`, `device_map X`; `value_quoted` keeps `device "cuda:1"`
    and `device_map "auto"` printable."""

    key: str  # "device" | "dtype" | "class" | "device_map"
    value: str
    value_quoted: bool = False


@dataclass(frozen=True, eq=False, repr=False)
class FlagStmt(Node):
    flag: str  # "trust_remote_code"


@dataclass(frozen=True, eq=False, repr=False)
class EngineStmt(Node):
    """`backend nnsight remote "https://host"`: the engine that runs the checks (`torch` hooks or
    `nnsight` traces), and whether on NDIF (`remote`, optionally at a self-hosted `host`).
    Not the network kind (`hf`/`torch`), which `Network.backend` holds."""

    engine: Name
    remote: bool = False
    host: str | None = None  # only with `remote`


@dataclass(frozen=True, eq=False, repr=False)
class TemplateCase(Node):
    key: Literal
    template: str


@dataclass(frozen=True, eq=False, repr=False)
class PromptDecl(Node):
    """A prompt template, or one per value of `by`."""

    by: Name | None
    template: str | None
    cases: tuple[TemplateCase, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class AnswerDecl(Node):
    template: str
    tokens: str | None = None  # "first" (default) | "last" | "all"


@dataclass(frozen=True, eq=False, repr=False)
class SlotPos(Node):
    """`slot(S, 2).last`: the 2nd occurrence of slot S, its last token."""

    slot: Name
    occurrence: int | None = None
    part: str | None = None
    # `slot(x, i)` in a position family: the occurrence is the family's index
    occurrence_var: Name | None = None


@dataclass(frozen=True, eq=False, repr=False)
class NamedPos(Node):
    """A named position (`END`), or the built-ins `last` and `all`."""

    name: Name


@dataclass(frozen=True, eq=False, repr=False)
class OffsetPos(Node):
    base: Name
    offset: int


@dataclass(frozen=True, eq=False, repr=False)
class IndexPos(Node):
    index: int


@dataclass(frozen=True, eq=False, repr=False)
class ElemPos(Node):
    """`S[i]` after an at sign in a family alignment: element i of the position family S (the
    index replaced per element; `S[2]` is written as the named position `S[2]`)."""

    base: Name
    var: Name


@dataclass(frozen=True, eq=False, repr=False)
class RangePos(Node):
    lo: int
    hi: int


PositionExpr = Union[SlotPos, NamedPos, OffsetPos, IndexPos, RangePos, ElemPos]


@dataclass(frozen=True, eq=False, repr=False)
class PositionDecl(Node):
    name: Name
    expr: PositionExpr
    index: FamilyRange | None = None  # `position S[i in 1..3] = …`: a position family
    # `position S[i in 1..3] = {C1, C2, C3}`: element k is the k-th item (`expr` is the first)
    items: tuple[PositionExpr, ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class OutputValueStmt(Node):
    """`output : value` (the network's output is one number per example) or `output : value logit
    " yes"` (the logit of that token, hf networks)."""

    logit: str | None = None


NetworkStmt = Union[OutputValueStmt, HookStmt, OptionStmt, FlagStmt, EngineStmt, PromptDecl, AnswerDecl, PositionDecl]


@dataclass(frozen=True, eq=False, repr=False)
class Network(Node):
    name: Name
    backend: HFBackend | TorchBackend
    body: tuple[NetworkStmt, ...] = ()
    braced: bool = False


# ───────────────────────── alignments ─────────────────────────

@dataclass(frozen=True, eq=False, repr=False)
class NamedSite(Node):
    """`resid.post[9]`, `head[9.9].q`, `embed`, `mlp[3]` — validated in analysis."""

    path: tuple[str, ...]
    index: tuple[int, ...] | None = None
    part: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class ModuleSite(Node):
    path: str
    io: str  # "input" | "output"


Site = Union[NamedSite, ModuleSite]


@dataclass(frozen=True, eq=False, repr=False)
class SliceFeaturizer(Node):
    lo: int
    hi: int


@dataclass(frozen=True, eq=False, repr=False)
class FeatArg(Node):
    key: str | None
    value: float | int | str | tuple[float | int, ...]
    kind: str  # "number" | "string" | "name" | "list" (a bracketed list of numbers: `latents=[3, 7]`)


@dataclass(frozen=True, eq=False, repr=False)
class CallFeaturizer(Node):
    name: Name
    args: tuple[FeatArg, ...] | None = None  # None: written without parentheses


Featurizer = Union[SliceFeaturizer, CallFeaturizer]


@dataclass(frozen=True, eq=False, repr=False)
class SiteRef(Node):
    site: Site
    positions: tuple[PositionExpr, ...] | None = None
    braced: bool = False  # `@ {A, B}` vs `@ A`
    featurizer: Featurizer | None = None


@dataclass(frozen=True, eq=False, repr=False)
class VarAlignment(Node):
    var: Name  # a variable, a family element `H[2]`, or a family `H` with `index`
    sites: tuple[SiteRef, ...]
    index: FamilyRange | None = None  # `H[i] -> …` (lo/hi None: the family's range) or `H[i in 1..3]`


@dataclass(frozen=True, eq=False, repr=False)
class OutputAlignment(Node):
    var: Name
    decoder: Name | None = None
    positions: tuple[PositionExpr, ...] | None = None  # `O -> output @ 3`: read at a position
    braced: bool = False
    index: FamilyRange | None = None


AlignStmt = Union[VarAlignment, OutputAlignment]


@dataclass(frozen=True, eq=False, repr=False)
class Alignment(Node):
    model: Name
    network: Name
    name: Name
    body: tuple[AlignStmt, ...]


# ───────────────────────── checks ─────────────────────────

@dataclass(frozen=True, eq=False, repr=False)
class InterchangeSet(Node):
    """Variables intervened together. Each group draws its own source (multi-source)."""

    groups: tuple[tuple[Name, ...], ...]
    braced: bool = True


@dataclass(frozen=True, eq=False, repr=False)
class Interchange(Node):
    sets: tuple[InterchangeSet, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Setting(Node):
    key: str  # pairs | seed | pool | batch
    value: int


@dataclass(frozen=True, eq=False, repr=False)
class Controls(Node):
    """`controls random_subspace(n=20), heldout`: `args[i]` are the arguments written after
    `names[i]` (None: none written); `args` may be empty when no control has any."""

    names: tuple[Name, ...]
    args: tuple[tuple[FeatArg, ...] | None, ...] = ()

    def __post_init__(self) -> None:
        if self.args and all(a is None for a in self.args):  # one form for "no arguments anywhere"
            object.__setattr__(self, "args", ())

    def args_of(self, i: int) -> tuple[FeatArg, ...] | None:
        return self.args[i] if i < len(self.args) else None


@dataclass(frozen=True, eq=False, repr=False)
class Metric(Node):
    name: Name
    arg: Name | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Tolerance(Node):
    """`within 0.01`: the number as written (`text`), so that it is read exactly (a Fraction)."""

    text: str


@dataclass(frozen=True, eq=False, repr=False)
class Condition(Node):
    metric: Metric
    op: str
    threshold: float
    modes: tuple[str, ...] = ()
    tolerance: Tolerance | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Expect(Node):
    conditions: tuple[Condition, ...]


@dataclass(frozen=True, eq=False, repr=False)
class SweepSite(Node):
    """The sites a `locate` sweeps: `resid.post[0..11]` (`ranges` per index part, inclusive),
    `head[9.0..11].z`, or `module "layers.{0..2}" output` (`module` is the pattern)."""

    path: tuple[str, ...] | None = None
    ranges: tuple[tuple[int, int], ...] | None = None
    part: str | None = None
    module: str | None = None
    io: str | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Locate(Node):
    """`locate VAR over SITES @ POSITIONS : FEATURIZER` in a check: a localization sweep."""

    var: Name
    site: SweepSite
    positions: tuple[PositionExpr, ...] | None = None
    braced: bool = False
    featurizer: Featurizer | None = None
    # `locate H[i] …` / `H[i in 2..4]`: the family index of `var` (each element its own column)
    index: FamilyRange | None = None
    # `locate {A, H[i]} …`: every target of the set, bound jointly (var/index are the first's)
    joint: tuple[tuple[Name, FamilyRange | None], ...] = ()


@dataclass(frozen=True, eq=False, repr=False)
class LocateLatents(Node):
    """`locate VAR over latents of SITE @ POSITIONS : sae("DIR")` in a check: rank the SAE's
    latents at one site by the IIA of patching each alone."""

    var: Name
    site: Site
    featurizer: Featurizer
    positions: tuple[PositionExpr, ...] | None = None
    braced: bool = False


CheckStmt = Union[Interchange, Setting, Controls, Expect, Locate, LocateLatents]


@dataclass(frozen=True, eq=False, repr=False)
class Check(Node):
    target: Name
    name: Name | None
    body: tuple[CheckStmt, ...]


# ───────────────────────── circuits and datasets ─────────────────────────

@dataclass(frozen=True, eq=False, repr=False)
class GroupDecl(Node):
    name: Name
    nodes: tuple[NamedSite | ModuleSite, ...]
    positions: tuple[PositionExpr, ...] | None = None
    braced: bool = False


@dataclass(frozen=True, eq=False, repr=False)
class Endpoint(Node):
    name: Name
    port: Name | None = None


@dataclass(frozen=True, eq=False, repr=False)
class CircuitEdge(Node):
    src: Endpoint
    dst: Endpoint
    score: float | None = None  # `: score 0.12` (an attribution score, kept for circuit-file round trips)


@dataclass(frozen=True, eq=False, repr=False)
class CircuitEdges(Node):
    edges: tuple[CircuitEdge, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Ablate(Node):
    kind: str  # zero | mean | resample
    dataset: Name | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Granularity(Node):
    value: str  # node | edge


@dataclass(frozen=True, eq=False, repr=False)
class Convention(Node):
    """`convention mib`, `mlps ablated|kept`, `input ablation token|token+position`."""

    aspect: str  # convention | mlps | input
    value: Name  # the name (`mib`), `ablated`/`kept`, `token`/`token+position`


@dataclass(frozen=True, eq=False, repr=False)
class MetricDecl(Node):
    name: Name
    args: tuple[Name | StrLit, ...] | None = None
    positions: tuple[PositionExpr, ...] | None = None
    braced: bool = False


CircuitStmt = Union[GroupDecl, CircuitEdges, Ablate, Granularity, Convention, MetricDecl, Expect, Setting]


@dataclass(frozen=True, eq=False, repr=False)
class Circuit(Node):
    name: Name
    network: Name
    model: Name
    output: Name
    body: tuple[CircuitStmt, ...]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset(Node):
    name: Name
    model: Name
    body: tuple[PromptDecl | Setting, ...]


Item = Union[Model, Network, Alignment, Check, Circuit, Dataset]


@dataclass(frozen=True, eq=False, repr=False)
class Spec(Node):
    items: tuple[Item, ...]
    file: str = field(default="<string>", compare=False)
