"""AST nodes compare, hash and print as the dataclass-generated methods did (syntax/ast.py
defines them once on `Node`, not per class, for start-up time): same class and equal compared
fields in order (never the span), the hash of the compared fields' tuple, and
`Class(field=value, ...)` over the repr fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from causalspec.diagnostics import Span
from causalspec.syntax import ast as A
from causalspec.syntax.parser import parse_file

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(ROOT.glob("specs/*.cspec")) + sorted(ROOT.glob("examples/**/*.cspec"))
ELSEWHERE = Span("elsewhere.cspec", 99, 9)


def _nodes(x):
    if isinstance(x, A.Node):
        yield x
        for f in dataclasses.fields(x):
            yield from _nodes(getattr(x, f.name))
    elif isinstance(x, tuple):
        for y in x:
            yield from _nodes(y)


def _compared(node) -> tuple:
    return tuple(getattr(node, f.name) for f in dataclasses.fields(node) if f.compare)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_node_of_the_shipped_specs_compares_hashes_and_prints_as_a_dataclass(spec):
    kinds = set()
    for node in _nodes(parse_file(spec)):
        kinds.add(type(node))
        moved = dataclasses.replace(node, span=ELSEWHERE)
        assert node == moved and not (node != moved) and hash(node) == hash(moved)  # spans never count
        assert hash(node) == hash(_compared(node))
        assert (node == object()) is False and node.__eq__(object()) is NotImplemented
        shown = ", ".join(f"{f.name}={getattr(node, f.name)!r}" for f in dataclasses.fields(node) if f.repr)
        assert repr(node) == f"{type(node).__qualname__}({shown})"
    assert len(kinds) > 10


def test_equality_needs_the_same_class_and_every_compared_field():
    assert A.IntLit(3) == A.IntLit(3, span=ELSEWHERE) and A.IntLit(3) != A.IntLit(4)
    assert A.NameRef("x") != A.SymbolLit("x")  # same fields, another class
    assert A.Binary("+", A.IntLit(1), A.IntLit(2)) != A.Binary("+", A.IntLit(2), A.IntLit(1))  # field order
    assert len({A.Name("a"), A.Name("a", span=ELSEWHERE), A.Name("b")}) == 2


def test_repr_shows_repr_fields_only_and_a_spec_its_file():
    assert repr(A.Name("a", span=ELSEWHERE)) == "Name(text='a')"
    spec = A.Spec((), file="x.cspec")
    assert repr(spec) == "Spec(items=(), file='x.cspec')"
    assert spec == A.Spec((), file="y.cspec")  # the file is shown, not compared


def test_nodes_stay_frozen():
    node = A.Name("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.text = "b"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del node.text
