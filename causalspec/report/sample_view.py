"""Tables of `causalspec sample`: sampled inputs with every variable's value, or counterfactual
pairs, laid out to be read at the terminal's width.

Why this shape: a model with families (`input t[1..N]`, `var H[i in 1..N]`) has N variables per
family, and one column each made 20-column tables that rich squeezed into `…` at 80 columns. So
by default a family is one column holding its elements as a sequence (`H = [1, 2, 1, 3]`, in
index order), as `causalspec graph` draws it as one node; `expand=True` gives one column per
element (`H[1]`, `H[2]`, …), as `graph --expand` does. A table that still does not fit the
console is turned on its side (one row per variable, one column per sample) and, where even that
is too wide, cut into consecutive slices of samples; a pair table too wide for the console puts
one `name=value` per line in its cells when a value holds a space, so a row breaks between
values, never inside one, and where that is still too wide lays each pair down the page. A
table that fits is printed as it always was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from causalspec.semantics.domains import format_value
from causalspec.semantics.families import Families

# the width a table would take with no limit: what it needs to show every cell on one line
_UNLIMITED = 10 ** 6


@dataclass(frozen=True)
class Column:
    """One shown column: a variable, or a whole family (`label` is its name, `names` its
    elements in index order)."""

    label: str
    names: tuple[str, ...]
    family: bool = False

    def cell(self, row: Mapping[str, Any]) -> str:
        """The value; a family's as the sequence of its elements' values (`[1, 2, 1, 3]`)."""
        if not self.family:
            return format_value(row[self.names[0]])
        return "[" + ", ".join(format_value(row[n]) for n in self.names) + "]"


def columns(names: Sequence[str], families: Families, expand: bool = False) -> list[Column]:
    """The columns for `names` (in their order): each family once, where its first element
    stands, holding every element of it that `names` has; with `expand`, one per name."""
    out: list[Column] = []
    seen: set[str] = set()
    present = set(names)
    for name in names:
        fam = None if expand else families.family_of(name)
        if fam is None:
            out.append(Column(name, (name,)))
        elif fam not in seen:
            seen.add(fam)
            out.append(Column(fam, tuple(e for e in families.families[fam].elements if e in present), True))
    return out


def compact_names(names: Sequence[str], families: Families, expand: bool = False) -> list[str]:
    """Names with every whole family written as its name (`R[1], R[2], R[3], R[4]` -> `R`): how
    an interchange group is titled. A part of a family keeps its elements (`R[2]`)."""
    out: list[str] = []
    for col in columns(names, families, expand):
        whole = col.family and col.names == families.families[col.label].elements
        out.extend([col.label] if whole else col.names)
    return out


def fits(console: Console, table: Table) -> bool:
    """Whether the table shows every cell on one line within the console's width."""
    natural = Measurement.get(console, console.options.update_width(_UNLIMITED), table).maximum
    return natural <= console.width


def inputs_tables(console: Console, title: str, cols: Sequence[Column],
                  rows: Sequence[Mapping[str, Any]]) -> list[Table]:
    """Sampled rows as one table with a column per variable (or family); where that does not
    fit, turned on its side (a row per variable, a column per sample, numbered from 0), cut
    into slices of samples that fit."""
    wide = Table(title=title)
    for col in cols:
        wide.add_column(Text(col.label))
    for row in rows:
        wide.add_row(*[Text(col.cell(row)) for col in cols])
    if fits(console, wide):
        return [wide]
    tables: list[Table] = []
    start = 0
    while start < len(rows):
        stop = start + 1  # a slice holds at least one sample, fitting or not
        while stop < len(rows) and fits(console, _sideways(title, cols, rows, start, stop + 1)):
            stop += 1
        tables.append(_sideways(title, cols, rows, start, stop))
        start = stop
    return tables


def _sideways(title: str, cols: Sequence[Column], rows: Sequence[Mapping[str, Any]], start: int,
              stop: int) -> Table:
    part = "" if (start, stop) == (0, len(rows)) else (
        f" — sample {start}" if stop - start == 1 else f" — samples {start}–{stop - 1}")
    table = Table(title=title + part)
    table.add_column("")
    for i in range(start, stop):
        table.add_column(str(i))
    for col in cols:
        table.add_row(Text(col.label), *[Text(col.cell(rows[i])) for i in range(start, stop)])
    return table


def items(row: Mapping[str, Any], families: Families, expand: bool = False) -> list[str]:
    """`n=4`, `t=[a, b, c, a]` (a family as one sequence), or each element (`t[1]=a`, …)."""
    return [f"{col.label}={col.cell(row)}" for col in columns(list(row), families, expand)]


def pairs_table(console: Console, title: str, headers: Sequence[str], rows: Sequence[Sequence[Mapping[str, Any]]],
                changed: Sequence[bool], families: Families, expand: bool = False) -> Table:
    """Pairs as a table: `#`, one column per header (base, sources, expected, base output: a
    mapping of values each), `changed`.

    A cell is `W=5, X=17, …`; where the table is too wide for the console, rich wraps a cell
    at its spaces, which falls between values as long as no value holds a space. When one
    does (a family's `[a, b, c]`), each cell holds one `name=value` per line instead, and
    where that is still too wide, each pair is laid out down the page (`long_pairs_table`)."""
    cells = [[items(c, families, expand) for c in row] for row in rows]
    table = _pairs(title, headers, cells, changed, ", ")
    if fits(console, table) or not any(" " in i for row in cells for c in row for i in c):
        return table
    table = _pairs(title, headers, cells, changed, "\n")
    if fits(console, table):
        return table
    return long_pairs_table(title, headers, rows, changed, families, expand)


def long_pairs_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Mapping[str, Any]]],
                     changed: Sequence[bool], families: Families, expand: bool = False) -> Table:
    """Each pair down the page: a row per input (or family) with its value in the base and in
    each source, then the base's own output, the expected output and whether it changed (in
    the base's column). `headers` as for `pairs_table`: base, sources…, expected, base output."""
    n_inputs = len(headers) - 2
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("")
    for h in headers[:n_inputs]:
        table.add_column(h)
    blank = [""] * (n_inputs - 1)
    for i, (row, ch) in enumerate(zip(rows, changed)):
        inputs, expected, base_output = row[:n_inputs], row[n_inputs], row[n_inputs + 1]
        first = True
        for col in columns(list(inputs[0]), families, expand):
            table.add_row(str(i) if first else "", Text(col.label), *[Text(col.cell(r)) for r in inputs])
            first = False
        for label, values in ((headers[n_inputs + 1], base_output), (headers[n_inputs], expected)):
            for col in columns(list(values), families, expand):
                table.add_row("", Text(f"{col.label} ({label})"), Text(col.cell(values)), *blank)
        table.add_row("", "changed", "yes" if ch else "no", *blank, end_section=True)
    return table


def _pairs(title: str, headers: Sequence[str], cells: Sequence[Sequence[Sequence[str]]], changed: Sequence[bool],
           sep: str) -> Table:
    table = Table(title=title)
    table.add_column("#", justify="right")
    for h in headers:
        table.add_column(h)
    table.add_column("changed")
    for i, (row, ch) in enumerate(zip(cells, changed)):
        table.add_row(str(i), *[Text(sep.join(c)) for c in row], "yes" if ch else "no")
    return table
