"""Real outputs: a network's float read against the model's exact values, within a tolerance.

Why a table of codes: everything after the network's forward pass (the correctness filter, IIA,
the no-intervention baseline, counterexamples, controls, learned featurizers) compares output
*codes*. A real output gets codes too: the distinct exact values (Fractions) the model gives the
output on the check's inputs and pairs are numbered as they are met, and a network's float is
given the code of the model value it lies within the tolerance of. So "the code equals the
label" means exactly `|network value − model value| <= tolerance`, and nothing downstream changes.

The comparison is exact: the float is turned into the Fraction it represents (`Fraction(0.1)` is
not 1/10) and compared with the rational model value, so `within 0` passes only when the network
outputs the model's value exactly — possible for values a float represents (1/2, 3/4, 5/8), never
for 1/3. A float within the tolerance of two model values would count as both: that is a check
error naming the two values and the tolerance (choose one below half their distance).

A float within the tolerance of no model value gets a code of its own below the run layer's
reserved ones (UNDECODABLE, NAN_OUTPUT, INF_OUTPUT): never equal to a label, equal for equal
floats (so "the intervention moved the output" stays exact), and reported as the float itself
in counterexamples (`value_of`).
"""

from __future__ import annotations

import bisect
from fractions import Fraction
from typing import Any, Iterable

import numpy as np

from causalspec.errors import CheckError
from causalspec.run.patching import INF_OUTPUT, NAN_OUTPUT, UNDECODABLE
from causalspec.semantics.domains import format_real

OFF_TABLE = min(UNDECODABLE, NAN_OUTPUT, INF_OUTPUT) - 1  # the first code of a float matching no value


class ValueTable:
    """The exact values of a real output met so far (their codes: the order met) and the
    check's tolerance. Duck-types the parts of `Domain` the claims use (`codes`, `values`, `size`)."""

    kind = "real"

    def __init__(self, tolerance: Fraction):
        self.tolerance = Fraction(tolerance)
        self.values: list[Fraction] = []
        self._index: dict[Fraction, int] = {}
        self._sorted: list[Fraction] = []
        self.unmatched: list[float] = []  # floats within the tolerance of no value: codes OFF_TABLE, OFF_TABLE - 1, …
        self._unmatched: dict[float, int] = {}

    @property
    def size(self) -> int:
        return len(self.values)

    def add(self, values: Iterable[Any]) -> None:
        for v in values:
            f = Fraction(v)
            if f not in self._index:
                self._index[f] = len(self.values)
                self.values.append(f)
                bisect.insort(self._sorted, f)

    def codes(self, array: Any) -> np.ndarray:
        """Model values (an object array of exact values) -> codes, registering new values."""
        values = [Fraction(x) for x in np.asarray(array, dtype=object).reshape(-1)]
        self.add(values)
        return np.fromiter((self._index[v] for v in values), dtype=np.int64, count=len(values))

    def match(self, floats: np.ndarray, network: str) -> np.ndarray:
        """Network values (finite floats) -> the code of the model value each lies within the
        tolerance of, an off-table code (the float's own) where none does; a CheckError where
        one lies within it of two."""
        out = np.full(len(floats), UNDECODABLE, dtype=np.int64)
        tol = self.tolerance
        for i, x in enumerate(np.asarray(floats, dtype=np.float64).tolist()):
            if x != x or x in (float("inf"), float("-inf")):
                continue  # flagged as NaN / inf by the caller
            f = Fraction(x)
            lo = bisect.bisect_left(self._sorted, f - tol)
            hi = bisect.bisect_right(self._sorted, f + tol)
            if hi - lo == 1:
                out[i] = self._index[self._sorted[lo]]
            elif hi == lo:
                if x not in self._unmatched:
                    self._unmatched[x] = OFF_TABLE - len(self.unmatched)
                    self.unmatched.append(x)
                out[i] = self._unmatched[x]
            else:
                a, b = self._sorted[lo], self._sorted[lo + 1]
                raise CheckError(f"network `{network}` output {x:g}, within the tolerance {format_real(tol)} "
                                 f"({float(tol):g}) of two values of the model, {format_real(a)} and "
                                 f"{format_real(b)}: it cannot count as one of them — use a tolerance below half "
                                 f"their distance ({float((b - a) / 2):g})")
        return out

    def value_of(self, code: int) -> Fraction | float | None:
        """What a code stands for: a model value (exact), a network's float that matched none,
        or None (undecodable, NaN, inf)."""
        if 0 <= code < len(self.values):
            return self.values[code]
        if code <= OFF_TABLE and OFF_TABLE - code < len(self.unmatched):
            return self.unmatched[OFF_TABLE - code]
        return None

    def recode(self, codes: np.ndarray, other: ValueTable) -> np.ndarray:
        """Codes of `other` (another table of the same output's values) → this table's: a model
        value's code is re-coded (registered if new); a code that is no value (off the table, NaN,
        undecodable: negative) is kept — it equals no value's code in either table."""
        flat = np.asarray(codes, dtype=np.int64).reshape(-1)
        mapping = {int(c): int(self.codes([other.value_of(int(c))])[0]) if c >= 0 else int(c) for c in np.unique(flat)}
        return np.fromiter((mapping[int(c)] for c in flat), dtype=np.int64, count=len(flat)).reshape(np.shape(codes))

    def as_floats(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> the model values as float64 (regression targets for learned featurizers)."""
        return np.asarray([float(self.values[int(c)]) for c in codes], dtype=np.float64)
