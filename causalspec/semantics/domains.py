"""Finite value domains of high-level variables, and how values are held in arrays.

Why one array representation per kind: mechanisms are evaluated vectorized over a batch.
`bool` values are numpy bool arrays, `int a..b` values are int64 arrays of the values
themselves (arithmetic needs them), and enum values are int64 arrays of *indices* into the
domain's member tuple (comparison is all an enum supports). `encode`/`decode` convert
between Python values (`True`, `7`, `"Mary"`) and that representation.

`real` values are exact: object arrays of `fractions.Fraction` (never floats: `1/3 + 1/3 +
1/3 == 1` in the model, so a zero tolerance means exactly equal). A `real` variable's domain is
open (`Domain.real()`, no members); a check that scores a real output builds a finite one
from the values its pairs produce (`Domain.reals_seen`) so that codes work as for other kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Rational
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    import numpy as np
else:  # numpy loads when a value is first computed (lazy_numpy.py)
    from causalspec.semantics import lazy_numpy

    np = lazy_numpy.numpy.bind(globals(), "np")


@dataclass(frozen=True)
class Domain:
    kind: str  # "bool" | "int" | "enum" | "real"
    values: tuple  # every member, in order (a real domain: the values seen, or () when open)
    name: str | None = field(default=None, compare=False)

    @staticmethod
    def boolean() -> Domain:
        return Domain("bool", (False, True))

    @staticmethod
    def integers(lo: int, hi: int, name: str | None = None) -> Domain:
        return Domain("int", tuple(range(lo, hi + 1)), name)

    @staticmethod
    def real() -> Domain:
        """The open domain of a `real` variable: any exact rational."""
        return Domain("real", ())

    @staticmethod
    def reals_seen(values: Iterable[Any]) -> Domain:
        """A finite real domain: the distinct values given, in increasing order."""
        return Domain("real", tuple(sorted({Fraction(v) for v in values})))

    @property
    def is_real(self) -> bool:
        return self.kind == "real"

    @staticmethod
    def enum(members: Sequence[str], name: str | None = None) -> Domain:
        return Domain("enum", tuple(members), name)

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def lo(self) -> int:
        return self.values[0] if self.kind == "int" else 0

    @property
    def hi(self) -> int:
        return self.values[-1] if self.kind == "int" else self.size - 1

    def describe(self) -> str:
        if self.kind == "bool":
            return "bool"
        if self.kind == "int":
            return f"int {self.lo}..{self.hi}"
        if self.kind == "real":
            return "real"
        shown = ", ".join(self.format(v) for v in self.values[:6]) + (", …" if self.size > 6 else "")
        prefix = f"{self.name} = " if self.name else ""
        return f"{prefix}enum {{{shown}}}"

    def contains(self, value: Any) -> bool:
        return self.lookup(value) is not None

    def lookup(self, value: Any) -> Any | None:
        """Normalise a Python value to this domain's member, or None if it is not one."""
        if self.kind == "bool":
            return value if isinstance(value, bool) else None
        if self.kind == "int":
            # `int` first: a numpy integer is only looked for (numpy imported) when it is not one
            if isinstance(value, bool) or not (isinstance(value, int) or isinstance(value, np.integer)):
                return None
            return int(value) if self.lo <= int(value) <= self.hi else None
        if self.kind == "real":
            if isinstance(value, bool) or not isinstance(value, Rational):
                return None
            value = Fraction(value)
            return value if not self.values or value in self._index else None
        return value if isinstance(value, str) and value in self._index else None

    @property
    def _index(self) -> dict:
        cache = self.__dict__.get("_index_cache")
        if cache is None:
            cache = {v: i for i, v in enumerate(self.values)}
            object.__setattr__(self, "_index_cache", cache)
        return cache

    def dtype(self):
        if self.kind == "real":
            return object
        return np.bool_ if self.kind == "bool" else np.int64

    def encode(self, values: Iterable[Any]) -> np.ndarray:
        """Python values -> array representation. Raises ValueError on a non-member."""
        out = []
        for v in values:
            m = self.lookup(v)
            if m is None:
                raise ValueError(f"{v!r} is not a value of {self.describe()}")
            out.append(self._index[m] if self.kind == "enum" else m)
        if self.kind == "real":
            arr = np.empty(len(out), dtype=object)
            arr[:] = out
            return arr
        return np.asarray(out, dtype=self.dtype())

    def represent(self, member: Any) -> Any:
        """One member (as `lookup` returns it) in the array representation, as a Python scalar
        (a bool, an int, an enum's index, a Fraction): the values of a one-row evaluation."""
        return self._index[member] if self.kind == "enum" else member

    def representations(self) -> Sequence[Any]:
        """Every member's `represent`, in order (an enum's are its indices)."""
        return range(self.size) if self.kind == "enum" else self.values

    def encode_one(self, value: Any) -> Any:
        return self.encode([value])[0]

    def decode(self, array: np.ndarray) -> list:
        if self.kind == "bool":
            return [bool(x) for x in array]
        if self.kind == "int":
            return [int(x) for x in array]
        if self.kind == "real":
            return [Fraction(x) for x in array]
        return [self.values[int(x)] for x in array]

    def codes(self, array: np.ndarray) -> np.ndarray:
        """Array representation -> 0-based member index (for tables, balancing, buckets)."""
        if self.kind == "bool":
            return array.astype(np.int64)
        if self.kind == "int":
            return array.astype(np.int64) - self.lo
        if self.kind == "real":
            index = self._index
            missing = [x for x in array if Fraction(x) not in index]
            if missing:
                raise ValueError(f"{format_real(Fraction(missing[0]))} is not among the values of this real "
                                 "domain (an open `real` domain has no codes)")
            return np.fromiter((index[Fraction(x)] for x in array), dtype=np.int64, count=len(array))
        return array.astype(np.int64)

    def from_codes(self, codes: np.ndarray) -> np.ndarray:
        if self.kind == "bool":
            return codes.astype(bool)
        if self.kind == "int":
            return codes.astype(np.int64) + self.lo
        if self.kind == "real":
            return self.encode([self.values[int(c)] for c in codes])
        return codes.astype(np.int64)

    def all_values_array(self) -> np.ndarray:
        return self.from_codes(np.arange(self.size))

    def format(self, value: Any) -> str:
        """A Python value as it is written in a spec (`true`, `7`, `ABB`, `"Mary Ann"`)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Fraction):
            return format_real(value)
        if isinstance(value, str):
            return value if value.isidentifier() else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(value)


def format_value(value: Any) -> str:
    return Domain.boolean().format(value)


def format_real(value: Fraction) -> str:
    """An exact real as a fraction in lowest terms (`1/3`, `-5/2`), or an integer (`1`)."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
