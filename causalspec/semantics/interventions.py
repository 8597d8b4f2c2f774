"""Interventions on the high-level model: do() and (multi-source) interchange interventions.

Why a layer over `CausalModel.run`: `run` trusts its caller (array representation, known
names). The checker and the CLI pass names from specs and values typed by people, so this
module validates names (an unknown variable is a ValueError, never silently ignored),
converts Python values to the array representation, and defines interchange precisely:

    interchange(base, sources, groups): for each group i, every variable in group i is fixed
    to the value it takes when the model runs (without intervention) on source i; the base is
    then re-run with those values fixed, so every descendant is recomputed.

Interchanging an *input* is allowed: it copies the source's input value into the base run
(the result env shows the source's value for that input). This is the same as running the
base with that input replaced, which is what an alignment of an input site means.
A variable may appear in at most one group (two sources for one variable are ambiguous).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from causalspec.diagnostics import did_you_mean
from causalspec.semantics.domains import Domain
from causalspec.semantics.model import CausalModel

Env = dict[str, np.ndarray]
Groups = Sequence[Sequence[str] | str]


def encode_value(domain: Domain, value: Any, what: str = "value") -> np.ndarray:
    """A value for one variable -> array representation (0-d for a scalar, 1-d for a batch).

    numpy arrays and numpy scalars are taken as already in the array representation (bool,
    int value, enum *index*) and range-checked; Python values (`True`, `7`, `"Mary"`, or a
    list/tuple of them) are encoded through the domain. So an enum index must be a numpy int.
    """
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        if arr.dtype.kind in "USO":
            return _encode_python(domain, arr.tolist(), what)
        if domain.kind == "bool":
            if arr.dtype.kind not in "biu":
                raise ValueError(f"{what}: expected a bool array, got dtype {arr.dtype}")
        elif arr.dtype.kind not in "iu":
            raise ValueError(f"{what}: expected an integer array for {domain.describe()}, got dtype {arr.dtype}")
        codes = domain.codes(arr)
        if arr.size and (codes.min() < 0 or codes.max() >= domain.size):
            bad = arr.ravel()[int(np.argmax((codes.ravel() < 0) | (codes.ravel() >= domain.size)))]
            raise ValueError(f"{what}: {bad} is outside {domain.describe()}"
                             + (" (enum arrays hold member indices)" if domain.kind == "enum" else ""))
        return arr.astype(domain.dtype())
    return _encode_python(domain, value, what)


def _encode_python(domain: Domain, value: Any, what: str) -> np.ndarray:
    try:
        if isinstance(value, (list, tuple)):
            return domain.encode(value)
        return domain.encode([value]).reshape(())
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def check_variable(model: CausalModel, name: str, what: str = "variable") -> None:
    if name not in model.variables:
        hint = did_you_mean(name, model.variables)
        raise ValueError(f"unknown {what} `{name}` in model `{model.name}`" + (f" ({hint})" if hint else ""))


def _batch(arrays: Mapping[str, np.ndarray]) -> int:
    """Common batch size; scalars and length-1 arrays broadcast."""
    sizes = {len(a) for a in arrays.values() if a.ndim > 0} - {1}
    if len(sizes) > 1:
        raise ValueError(f"batch arrays have different lengths {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def encode_batch(model: CausalModel, values: Mapping[str, Any], what: str = "input") -> Env:
    """Validate names and encode every entry (see `encode_value`)."""
    out = {}
    for name, value in values.items():
        check_variable(model, name, what)
        out[name] = encode_value(model.domain(name), value, f"{what} `{name}`")
    return out


def do(model: CausalModel, inputs: Mapping[str, Any],
       interventions: Mapping[str, Any] | None = None) -> Env:
    """Run the model on `inputs` with variables fixed by `interventions` (the do-operator).

    Values may be arrays in the array representation or Python values / lists (see
    `encode_value`); scalars broadcast over the batch. Unknown names raise ValueError.
    Intervening on an input replaces its value; on an output, fixes the output.
    """
    enc_inputs = encode_batch(model, inputs, "input")
    enc_do = encode_batch(model, interventions or {}, "intervened variable")
    missing = [n for n in model.inputs if n not in enc_inputs and n not in enc_do]
    if missing:
        raise ValueError(f"input(s) {', '.join(missing)} missing for model `{model.name}`")
    n = _batch({**enc_inputs, **enc_do})
    return model.run({k: _full(v, n) for k, v in enc_inputs.items()},
                     {k: _full(v, n) for k, v in enc_do.items()})


def _full(arr: np.ndarray, n: int) -> np.ndarray:
    return np.broadcast_to(arr.reshape(-1), (n,)).copy() if arr.ndim == 0 or len(arr) != n else arr


def normalize_groups(model: CausalModel, groups: Groups) -> list[list[str]]:
    """Groups as lists of names, validated: known variables, none in two groups, none empty.

    A bare string is a one-variable group: ["WX", "YZ"] means two groups (two sources), while
    [["WX", "YZ"]] is one group with one source.
    """
    out: list[list[str]] = []
    where: dict[str, int] = {}
    for i, group in enumerate(groups):
        names = [group] if isinstance(group, str) else list(group)
        if not names:
            raise ValueError(f"interchange group {i} is empty")
        for name in names:
            check_variable(model, name)
            if name in where:
                raise ValueError(f"`{name}` is interchanged by two groups ({where[name]} and {i}); "
                                 "a variable can take its value from one source only")
            where[name] = i
        out.append(names)
    return out


def source_values(model: CausalModel, sources: Sequence[Mapping[str, Any]], groups: Groups) -> Env:
    """The value each interchanged variable is set to: its value on its group's source run."""
    groups = normalize_groups(model, groups)
    if len(sources) != len(groups):
        raise ValueError(f"{len(groups)} interchange group(s) need {len(groups)} source batch(es), "
                         f"got {len(sources)}")
    fixed: Env = {}
    for group, source in zip(groups, sources):
        env = do(model, source)
        for name in group:
            fixed[name] = env[name]
    return fixed


def interchange(model: CausalModel, base_inputs: Mapping[str, Any],
                sources: Sequence[Mapping[str, Any]] | Mapping[str, Any], groups: Groups) -> Env:
    """Multi-source interchange intervention (see the module docstring). Returns the full env
    of the intervened base run. A single mapping is accepted as the one source of one group.
    """
    if isinstance(sources, Mapping):
        sources = [sources]
    fixed = source_values(model, sources, groups)
    base = encode_batch(model, base_inputs, "input")
    n, m = _batch(base), _batch(fixed)
    if n != m and 1 not in (n, m):
        raise ValueError(f"source batch has {m} rows, the base has {n}")
    return do(model, base, fixed)
