"""Red team (2): a random control that scores as high as the claim is flagged
(causalspec/claims/stress.py, `control_matches_claim`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import causalspec.testing.planted as planted
from causalspec.claims.runner import CheckOptions, NetworkCache, run_checks
from causalspec.semantics.analyse import load
from causalspec.testing.specs import HIER_EQ_MODEL

PLANTED = Path(planted.__file__).resolve()

WIDE = f"""
network planted = torch "{PLANTED}:build_planted" weights "planted.safetensors" {{
  encode "{PLANTED}:encode"
}}
align HierEq to planted as Wide {{
  WX -> module "layers.0" output : [0:38]
  O  -> output : argmax
}}
check Wide {{
  interchange WX
  pairs 256 seed 0
  controls random_subspace(n=3)
  expect iia >= 0.5
}}
"""


@pytest.fixture(scope="module")
def planted_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("planted")
    planted.save_planted(d / "planted.safetensors")
    return d


def test_a_random_subspace_as_good_as_the_claim_is_flagged(planted_dir):
    """38 of 40 dims: any random 38-dim subspace carries WX about as well, so the claim's IIA says
    nothing about these coordinates. Unbounded, the control does not fail the claim, but the
    result says so."""
    path = planted_dir / "wide.cspec"
    path.write_text(HIER_EQ_MODEL + WIDE, encoding="utf-8")
    [r] = run_checks(load(path), CheckOptions(), NetworkCache())
    [control] = [c for c in r.controls if c.name == "random_subspace"]
    [claim] = [c for c in r.claims if c.kind == "declared"]
    print(r.status, claim.iia, control.values, r.warnings)
    assert control.values[0] >= claim.iia.lower
    assert any("does not single out the alignment" in w for w in r.warnings), r.warnings
