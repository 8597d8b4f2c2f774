"""The high-level causal model IR: typed variables, compiled mechanisms, a networkx graph.

The networkx graph (`CausalModel.graph`) is built on first use: importing networkx costs
~0.1 s, which `causalspec parse` and the DOT/Mermaid/JSON exports of `graph` do not need
(analysis orders the variables with the standard library's `graphlib`).

Why arrays everywhere: every later stage (sampling, counterfactual pairs, scoring buckets)
runs the model on thousands of inputs at once; `CausalModel.run` evaluates mechanisms in
topological order over a batch, with interventions fixing any variable's values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    import numpy as np
else:  # numpy loads when a value is first computed (lazy_numpy.py)
    from causalspec.semantics import lazy_numpy

    np = lazy_numpy.numpy.bind(globals(), "np")

from causalspec.diagnostics import Span
from causalspec.semantics.domains import Domain
from causalspec.semantics.expr import Compiled, Table
from causalspec.semantics.families import Families
from causalspec.syntax import ast as A

if TYPE_CHECKING:
    import networkx as nx


@dataclass
class Distribution:
    """Per-input sampling weights over its domain (uniform when `weights` is None)."""

    weights: np.ndarray | None = None  # aligned with domain.values, sums to 1


@dataclass
class Variable:
    name: str
    kind: str  # "input" | "var" | "output"
    domain: Domain
    span: Span
    mechanism: Compiled | None = None
    distribution: Distribution | None = None
    parents: tuple[str, ...] = ()

    @property
    def is_input(self) -> bool:
        return self.kind == "input"

    @property
    def compiled(self) -> Compiled:
        """A var's or output's mechanism. Analysis gives each one (or builds no model at all), so only a
        CausalModel assembled by hand can lack it: that is a ValueError naming the variable."""
        if self.mechanism is None:
            raise ValueError(f"`{self.name}` ({self.kind}) has no mechanism to compute it")
        return self.mechanism


@dataclass
class Example:
    """An `example` line: inputs, optional do(), expected values; checked at analysis."""

    inputs: dict[str, Any]
    interventions: dict[str, Any]
    expected: dict[str, Any]
    span: Span


@dataclass
class CausalModel:
    name: str
    span: Span
    variables: dict[str, Variable]
    order: tuple[str, ...]  # topological
    constraints: list[Compiled] = field(default_factory=list)
    balanced_on: str | None = None
    examples: list[Example] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)
    domains: dict[str, Domain] = field(default_factory=dict)
    ast: A.Model | None = None  # the model with its families expanded (semantics.families)
    families: Families = field(default_factory=Families)

    # views ---------------------------------------------------------------------
    @cached_property
    def graph(self) -> nx.DiGraph:
        """The model as a networkx DiGraph (nodes carry `kind`, `type`, `domain`, `mechanism`
        and `span`; an edge per parent), built on first use."""
        return build_graph(self.name, self.variables)

    @property
    def inputs(self) -> list[str]:
        return [n for n in self.order if self.variables[n].kind == "input"]

    @property
    def outputs(self) -> list[str]:
        return [n for n in self.order if self.variables[n].kind == "output"]

    @property
    def intermediates(self) -> list[str]:
        return [n for n in self.order if self.variables[n].kind == "var"]

    def domain(self, name: str) -> Domain:
        return self.variables[name].domain

    # execution -----------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray],
            interventions: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Evaluate every variable over a batch (array representation, see domains.py).

        `interventions` fixes variables (do-operator) to given arrays or scalars; an intervened
        variable's mechanism is not evaluated and its descendants see the fixed values.
        """
        interventions = dict(interventions or {})
        n = _batch_size(inputs, interventions)
        env: dict[str, np.ndarray] = {}
        for name in self.order:
            var = self.variables[name]
            if name in interventions:
                env[name] = _as_batch(interventions[name], var.domain, n)
            elif var.is_input:
                if name not in inputs:
                    raise KeyError(f"input `{name}` missing from the batch")
                env[name] = _as_batch(inputs[name], var.domain, n)
            else:
                env[name] = var.compiled.evaluate(env, n)
        return env

    def run_one(self, inputs: Mapping[str, Any], interventions: Mapping[str, Any] | None = None
                ) -> dict[str, Any] | None:
        """`run` on one row, in pure Python: every variable's value as a Python scalar of the
        array representation (`Domain.represent`). None when a mechanism has no one-row
        evaluator (`Compiled.one`); `run` then computes the row."""
        fixed = interventions or {}
        env: dict[str, Any] = {}
        for name in self.order:
            var = self.variables[name]
            if name in fixed:
                env[name] = fixed[name]
            elif var.is_input:
                env[name] = inputs[name]
            else:
                one = var.mechanism.one if var.mechanism is not None else None
                if one is None:
                    return None
                env[name] = one(env)
        return env

    def row_satisfies_constraints(self, row: Mapping[str, Any]) -> bool | None:
        """`satisfies_constraints` for one input row (`Domain.represent` values), in pure
        Python; None when a constraint has no one-row evaluator."""
        ones = [c.one for c in self.constraints if c.one is not None]
        if len(ones) != len(self.constraints):
            return None
        return all(one(row) for one in ones)

    def satisfies_constraints(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        n = _batch_size(inputs, {})
        ok = np.ones(n, dtype=bool)
        for c in self.constraints:
            ok &= c.evaluate(inputs, n).astype(bool)
        return ok

    def encode_inputs(self, values: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Python values (lists per input) -> array representation."""
        return {k: self.variables[k].domain.encode(v) for k, v in values.items()}

    def decode(self, env: Mapping[str, np.ndarray], names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Array representation -> one dict of Python values per row."""
        names = list(names or env.keys())
        cols = {k: self.variables[k].domain.decode(env[k]) for k in names}
        n = len(next(iter(cols.values()))) if cols else 0
        return [{k: cols[k][i] for k in names} for i in range(n)]

    def input_space_size(self) -> int:
        size = 1
        for name in self.inputs:
            size *= self.variables[name].domain.size
        return size

    def enumerate_inputs(self) -> dict[str, np.ndarray]:
        """Every input combination (the caller checks `input_space_size` first)."""
        names = self.inputs
        grids = np.meshgrid(*[np.arange(self.variables[n].domain.size) for n in names], indexing="ij")
        return {n: self.variables[n].domain.from_codes(g.ravel()) for n, g in zip(names, grids)}


def _batch_size(inputs: Mapping[str, Any], interventions: Mapping[str, Any]) -> int:
    for arr in list(inputs.values()) + list(interventions.values()):
        if np.ndim(arr) > 0:
            return len(arr)
    return 1


def _as_batch(value: Any, domain: Domain, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(n, arr, dtype=domain.dtype())
    if arr.shape != (n,):
        raise ValueError(f"batch of shape {arr.shape}, expected ({n},)")
    return arr.astype(domain.dtype(), copy=False)


def node_attributes(var: Variable) -> dict[str, Any]:
    """A variable's node data in the causal graph: kind, type, domain, mechanism (its AST,
    None for inputs) and span."""
    return {"kind": var.kind, "type": var.domain.describe(), "domain": var.domain,
            "mechanism": var.mechanism.ast if var.mechanism is not None else None, "span": var.span}


def build_graph(name: str, variables: Mapping[str, Variable]) -> nx.DiGraph:
    """The causal graph of `variables`: nodes in declaration order, an edge from each parent
    (in the order of `Variable.parents`) to its child. networkx is imported here, on first use."""
    import networkx as nx

    g = nx.DiGraph(name=name)
    for vname, var in variables.items():
        g.add_node(vname, **node_attributes(var))
    for vname, var in variables.items():
        for p in var.parents:
            if p in variables:
                g.add_edge(p, vname)
    return g
