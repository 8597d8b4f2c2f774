"""`causalspec sample` output: families shown compactly, `--expand`, tables that fit the width.

A model with families (examples/zoo/reverse.cspec: `input t[1..4]`, `var L[i in 1..4]`, …) once
printed one column per element, which rich squeezed into `…` at 80 columns. Now a family is one
column (`t = [a, b, c, a]`), `--expand` gives one per element, and a table too wide for the
terminal is turned on its side (cut into slices of samples where needed). A model without
families whose table fits prints exactly what it printed before (the literal outputs below).
"""

from __future__ import annotations

import pytest

from causalspec.cli import main
from causalspec.report.sample_view import columns, compact_names
from causalspec.semantics.analyse import load

REVERSE = "examples/zoo/reverse.cspec"
HIER_EQ = "specs/hier_eq.cspec"

# `causalspec sample specs/hier_eq.cspec --n 4` at 80 columns, as printed before families were compacted
HIER_EQ_INPUTS = """\
HierEq: 4 input(s), seed 0
┏━━━━┳━━━━┳━━━━┳━━━━┳━━━━━━━┳━━━━━━━┳━━━━━━━┓
┃ W  ┃ X  ┃ Y  ┃ Z  ┃ WX    ┃ YZ    ┃ O     ┃
┡━━━━╇━━━━╇━━━━╇━━━━╇━━━━━━━╇━━━━━━━╇━━━━━━━┩
│ 5  │ 5  │ 10 │ 11 │ true  │ false │ false │
│ 0  │ 16 │ 11 │ 3  │ false │ false │ true  │
│ 12 │ 12 │ 16 │ 18 │ true  │ false │ false │
│ 0  │ 7  │ 4  │ 18 │ false │ false │ true  │
└────┴────┴────┴────┴───────┴───────┴───────┘
"""

# `... --interchange 'W|WX' --n 4` at 80 columns: too wide, so rich wraps the cells between values
HIER_EQ_PAIRS = """\
HierEq: interchange {W} | {WX} — 4 pair(s), seed 0
┏━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━┓
┃   ┃             ┃ source 1   ┃ source 2    ┃          ┃ base       ┃         ┃
┃ # ┃ base        ┃ (W)        ┃ (WX)        ┃ expected ┃ output     ┃ changed ┃
┡━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━┩
│ 0 │ W=5, X=5,   │ W=10,      │ W=14, X=11, │ O=true   │ O=false    │ yes     │
│   │ Y=10, Z=11  │ X=17,      │ Y=6, Z=0    │          │            │         │
│   │             │ Y=11, Z=7  │             │          │            │         │
│ 1 │ W=0, X=16,  │ W=18,      │ W=0, X=0,   │ O=false  │ O=true     │ yes     │
│   │ Y=11, Z=3   │ X=13, Y=7, │ Y=2, Z=4    │          │            │         │
│   │             │ Z=5        │             │          │            │         │
│ 2 │ W=12, X=12, │ W=12, X=5, │ W=17, X=5,  │ O=true   │ O=false    │ yes     │
│   │ Y=16, Z=18  │ Y=0, Z=0   │ Y=12, Z=12  │          │            │         │
│ 3 │ W=0, X=7,   │ W=14,      │ W=0, X=13,  │ O=true   │ O=true     │ no      │
│   │ Y=4, Z=18   │ X=14, Y=8, │ Y=14, Z=18  │          │            │         │
│   │             │ Z=17       │             │          │            │         │
└───┴─────────────┴────────────┴─────────────┴──────────┴────────────┴─────────┘
3 of 4 pair(s) change the output (O) under the interchange
"""


@pytest.fixture(autouse=True)
def columns_80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def sample(capsys, *argv: str) -> str:
    assert main(["sample", *argv]) == 0
    return capsys.readouterr().out


def fits_80(out: str) -> None:
    assert "…" not in out, out  # nothing cut off
    assert max(len(line) for line in out.splitlines()) <= 80, out


def side_rows(out: str) -> dict[str, list[str]]:
    """A sideways table's rows: label -> the cells of samples 0, 1, … (slices joined)."""
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("│"):
            label, *cells = [c.strip() for c in line.strip("│").split("│")]
            rows.setdefault(label, []).extend(cells)
    return rows


def test_a_model_without_families_prints_what_it_printed_before(capsys):
    assert sample(capsys, HIER_EQ, "--n", "4") == HIER_EQ_INPUTS
    assert sample(capsys, HIER_EQ, "--n", "4", "--interchange", "W|WX") == HIER_EQ_PAIRS
    assert sample(capsys, HIER_EQ, "--n", "4", "--expand") == HIER_EQ_INPUTS  # nothing to expand


def test_a_family_is_one_column_of_sequences_and_the_table_fits_80_columns(capsys):
    out = sample(capsys, REVERSE, "--n", "3")
    fits_80(out)
    rows = side_rows(out)  # 7 shown variables still do not fit across: one row per variable
    assert list(rows) == ["n", "t", "L", "Opp", "Opp1", "R", "O"]
    for name in ("t", "L", "Opp", "Opp1", "R"):
        assert all(c.startswith("[") and c.endswith("]") and c.count(",") == 3 for c in rows[name]), rows[name]
    # L[i] = n where n >= i, else 0: the sequence is in index order
    for n, seq in zip(rows["n"], rows["L"]):
        assert seq == "[" + ", ".join(n if int(n) >= i else "0" for i in range(1, 5)) + "]"


def test_expand_shows_every_element_with_the_same_values(capsys):
    compact = side_rows(sample(capsys, REVERSE, "--n", "3"))
    out = sample(capsys, REVERSE, "--n", "3", "--expand")
    fits_80(out)
    expanded = side_rows(out)
    assert "t" not in expanded and [f"t[{i}]" for i in range(1, 5)] == [k for k in expanded if k.startswith("t[")]
    for s in range(3):
        for fam in ("t", "R", "Opp1"):
            assert compact[fam][s] == "[" + ", ".join(expanded[f"{fam}[{i}]"][s] for i in range(1, 5)) + "]"


def test_a_table_that_fits_across_keeps_one_column_per_variable(capsys):
    out = sample(capsys, "examples/zoo/count_a.cspec", "--n", "3")
    header = next(line for line in out.splitlines() if line.startswith("┃"))
    assert [c.strip() for c in header.strip("┃").split("┃")] == ["t", "C", "O"]
    assert out.count("[") >= 6  # a family's sequence shown as written, not read as rich markup


def test_many_samples_are_cut_into_slices_that_fit(capsys):
    out = sample(capsys, REVERSE, "--n", "12")
    fits_80(out)
    titles = [line for line in out.splitlines() if line.startswith("Reverse: 12 input(s), seed 0 — sample")]
    assert len(titles) >= 2
    assert len(side_rows(out)["n"]) == 12  # every sample once, in order across the slices
    numbers = [c.strip() for line in out.splitlines() if line.startswith("┃")
               for c in line.strip("┃").split("┃")[1:]]
    assert numbers == [str(i) for i in range(12)]


def test_interchange_of_a_family_and_of_one_element(capsys):
    whole = sample(capsys, REVERSE, "--n", "3", "--interchange", "R")
    fits_80(whole)
    assert whole.startswith("Reverse: interchange {R} — 3 pair(s), seed 0")
    assert "t=[" in whole and "t[1]" not in whole
    one = sample(capsys, REVERSE, "--n", "3", "--interchange", "R[2]")
    assert one.startswith("Reverse: interchange {R[2]} — 3 pair(s)")
    multi = sample(capsys, REVERSE, "--n", "2", "--interchange", "R[2]|L")
    fits_80(multi)  # too wide across even with one value per line: each pair down the page
    assert "source 1 (R[2])" in multi and "source 2 (L)" in multi
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in multi.splitlines() if line.startswith("│")]
    assert [c[1] for c in cells[:5]] == ["n", "t", "O (base output)", "O (expected)", "changed"]
    assert cells[0][0] == "0" and all(c.startswith("[") and c.endswith("]") for c in cells[1][2:])
    assert cells[3][2].isdigit() and cells[4][2] in ("yes", "no")
    expanded = sample(capsys, REVERSE, "--n", "3", "--interchange", "R", "--expand")
    assert expanded.startswith("Reverse: interchange {R[1], R[2], R[3], R[4]}") and "t[1]=" in expanded


def test_interchange_on_a_model_without_inputs_is_a_usage_error(tmp_path, capsys):
    spec = tmp_path / "c.cspec"
    spec.write_text("model Constant {\n  output yes : bool = true\n  edges {}\n}\n", encoding="utf-8")
    assert main(["sample", str(spec), "--interchange", "yes"]) == 2
    assert "model `Constant` has no inputs, so it has no counterfactual pairs" in capsys.readouterr().err


def test_columns_and_group_titles_compact_whole_families_only():
    model = load(REVERSE).models["Reverse"]
    cols = columns(model.order, model.families)
    assert [c.label for c in cols] == ["n", "t", "L", "Opp", "Opp1", "R", "O"]
    assert cols[1].names == ("t[1]", "t[2]", "t[3]", "t[4]") and cols[1].family
    assert [c.label for c in columns(model.order, model.families, expand=True)] == list(model.order)
    assert compact_names(["R[1]", "R[2]", "R[3]", "R[4]"], model.families) == ["R"]
    assert compact_names(["R[2]", "L[1]", "L[2]", "L[3]", "L[4]"], model.families) == ["R[2]", "L"]
    assert compact_names(["R[1]", "R[2]"], model.families) == ["R[1]", "R[2]"]
    assert compact_names(["R[1]", "R[2]", "R[3]", "R[4]"], model.families, expand=True) == [f"R[{i}]" for i in
                                                                                          range(1, 5)]
