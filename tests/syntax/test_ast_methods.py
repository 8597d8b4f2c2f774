"""AST nodes are the frozen dataclasses they are declared as, though syntax/ast.py has
`dataclass` generate only `__init__`, `__setattr__` and `__delattr__` (start-up time, issue
15; `Node` defines `__eq__`, `__hash__` and `__repr__` once): every class's constructor,
signature, docstring, fields and `__match_args__` equal those of a real frozen dataclass with
the same fields (its twin), instances stay frozen, and they compare, hash and print as the
twin does: same class and equal compared fields in order (never the span), the hash of the
compared fields' tuple, `Class(field=value, ...)` over the repr fields."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from pathlib import Path

import pytest

from causalspec.diagnostics import NO_SPAN, Span
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


NODE_CLASSES = sorted((c for c in vars(A).values() if isinstance(c, type) and issubclass(c, A.Node)),
                      key=lambda c: c.__name__)


def _twin(cls: type) -> type:
    """A real `@dataclass(frozen=True)` with `cls`'s name, fields and docstring."""
    specs = [(f.name, f.type, dataclasses.field(default=f.default, compare=f.compare, repr=f.repr, kw_only=f.kw_only))
             for f in dataclasses.fields(cls)]
    generated = cls.__doc__.startswith(cls.__name__ + "(")  # the docstring dataclass writes for an undocumented class
    namespace = {} if generated else {"__doc__": cls.__doc__}
    namespace.update({k: v for k, v in vars(cls).items() if k == "__post_init__"})
    twin = dataclasses.make_dataclass(cls.__name__, specs, frozen=True, namespace=namespace)
    twin.__qualname__ = cls.__qualname__
    return twin


def _args(cls: type) -> tuple[list, dict]:
    """Arguments for every required parameter (distinct strings), and a span."""
    positional = [f"<{f.name}>" for f in dataclasses.fields(cls) if not f.kw_only and f.default is dataclasses.MISSING]
    return positional, {"span": ELSEWHERE}


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=lambda c: c.__name__)
def test_each_class_is_what_a_frozen_dataclass_would_be(cls):
    twin = _twin(cls)
    assert str(inspect.signature(cls)) == str(inspect.signature(twin))
    assert cls.__doc__ == twin.__doc__
    assert cls.__match_args__ == twin.__match_args__
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    assert cls.__init__.__annotations__ == twin.__init__.__annotations__
    assert cls.__dataclass_params__.frozen
    args, kwargs = _args(cls)
    ours, theirs = cls(*args, **kwargs), twin(*args, **kwargs)
    assert list(vars(ours).items()) == list(vars(theirs).items())  # same values, set in the same order
    assert repr(ours) == repr(theirs) and hash(ours) == hash(theirs)
    assert dataclasses.replace(ours, span=NO_SPAN) == ours and pickle.loads(pickle.dumps(ours)) == ours
    for call in (lambda c: c(*args, *["extra"] * 10, **kwargs), lambda c: c(*args, nonsense=1)):
        with pytest.raises(TypeError) as ours_error:
            call(cls)
        with pytest.raises(TypeError) as their_error:
            call(twin)
        assert str(ours_error.value) == str(their_error.value)
    for attribute in ("span", "anything"):
        with pytest.raises(dataclasses.FrozenInstanceError) as ours_error:
            setattr(ours, attribute, 1)
        with pytest.raises(dataclasses.FrozenInstanceError) as their_error:
            setattr(theirs, attribute, 1)
        assert str(ours_error.value) == str(their_error.value)


def test_post_init_runs_as_in_a_dataclass():
    assert A.Controls((A.Name("a"),), (None,)).args == ()  # every argument absent: one form


def test_a_bare_node_compared_first_does_not_decide_for_its_subclasses():
    assert A.Node() == A.Node(span=ELSEWHERE) and hash(A.Node()) == hash(())
    assert A.Tolerance("a") != A.Tolerance("b") and hash(A.Tolerance("a")) == hash(("a",))
