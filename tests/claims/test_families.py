"""Families end to end (issue 13): a family spec and its unrolled form give the same results on
the same seed, and a [batch, positions, classes] torch network is checked per position."""

from __future__ import annotations

from pathlib import Path

import pytest

import causalspec.testing.histogram as hist
from causalspec.claims.runner import CheckOptions, run_checks
from causalspec.semantics.analyse import load_text

NET = (f'network hist = torch "{hist.__file__}:build" weights "hist.safetensors" '
       f'{{ encode "{hist.__file__}:encode" }}\n')

FAMILY = """
model Hist {
  const N = 5
  domain Tok = enum {a, b, c}
  input t[1..N] : Tok
  var H[i in 1..N] : int 0..N = count(j in 1..N : t[j] == t[i])
  output O[i in 1..N] : int 0..N = H[i]
}
""" + NET + """
align Hist to hist as PerPos {
  H[i] -> module "hist" output @ i
  O[3] -> output @ 3
}
align Hist to hist as Slice {
  H[i] -> module "hist" output @ i : [0:1]
  O[3] -> output @ 3
}
check PerPos {
  interchange H, H[3], {H[3] | H[1]}
  pairs 128 seed 1
  expect iia >= 0.99 each
}
check Slice {
  interchange H
  pairs 128 seed 1
  expect iia >= 0.99
}
"""

_H = "\n".join(f"  var H{i} : int 0..5 = count({', '.join(f't{j} == t{i}' for j in range(1, 6))})"
               for i in range(1, 6))
UNROLLED = """
model Hist {
  domain Tok = enum {a, b, c}
  input t1, t2, t3, t4, t5 : Tok
""" + _H + "\n" + "\n".join(f"  output O{i} : int 0..5 = H{i}" for i in range(1, 6)) + """
}
""" + NET + """
align Hist to hist as PerPos {
""" + "\n".join(f'  H{i} -> module "hist" output @ {i}' for i in range(1, 6)) + """
  O3 -> output @ 3
}
align Hist to hist as Slice {
""" + "\n".join(f'  H{i} -> module "hist" output @ {i} : [0:1]' for i in range(1, 6)) + """
  O3 -> output @ 3
}
check PerPos {
  interchange {H1, H2, H3, H4, H5}, H3, {H3 | H1}
  pairs 128 seed 1
  expect iia >= 0.99 each
}
check Slice {
  interchange {H1, H2, H3, H4, H5}
  pairs 128 seed 1
  expect iia >= 0.99
}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hist")
    hist.save(tmp / "hist.safetensors")
    return tmp


def _run(text: str, folder: Path):
    ir = load_text(text, str(folder / "spec.cspec"), base_dir=folder)
    return {r.name: r for r in run_checks(ir, CheckOptions())}


def _numbers(result) -> list[tuple]:
    return [(c.sampled, c.kept, c.changed, c.moved, c.iia.successes, c.iia.trials) for c in result.claims]


def test_per_position_output_of_a_sequence_network_passes_where_the_value_lives(folder):
    r = _run(FAMILY, folder)
    per_pos, sliced = r["PerPos"], r["Slice"]
    assert per_pos.status == "passed", per_pos.reason
    for claim in per_pos.claims:
        assert claim.iia.successes == claim.iia.trials == 128
        assert claim.moved > 0  # the patch moves the output at position 3
    assert sliced.status == "failed"  # one coordinate of the one-hot does not carry H[i]


def test_family_and_unrolled_specs_give_identical_results_on_one_seed(folder):
    fam, unrolled = _run(FAMILY, folder), _run(UNROLLED, folder)
    for name in ("PerPos", "Slice"):
        assert fam[name].status == unrolled[name].status
        assert _numbers(fam[name]) == _numbers(unrolled[name])
    assert _numbers(fam["PerPos"])[0][2] > 0  # pairs whose expected output changed


def test_interchanging_an_element_the_output_does_not_read_cannot_pass(folder):
    text = FAMILY.replace("interchange H, H[3], {H[3] | H[1]}", "interchange H[2]")
    r = _run(text, folder)["PerPos"]
    assert r.status == "failed" and "changes the expected output on none" in r.reason
