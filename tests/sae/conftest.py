"""SAE specs over the planted-subspace net (causalspec.testing.planted), in a temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import causalspec.testing.planted as planted
from causalspec.testing.sae import planted_sae
from causalspec.testing.specs import HIER_EQ_MODEL

PLANTED = Path(planted.__file__).resolve()
NETWORK = (f'network planted = torch "{PLANTED}:build_planted" weights "planted.safetensors" {{\n'
           f'  encode "{PLANTED}:encode"\n}}\n')


@pytest.fixture(scope="session")
def sae_dir(tmp_path_factory) -> Path:
    """A folder with the planted net's weights, its ground-truth SAE (`sae/`) and one whose two
    true latents read only half their direction (`sae_half/`)."""
    d = tmp_path_factory.mktemp("sae")
    planted.save_planted(d / "planted.safetensors")
    planted_sae(d / "sae")
    planted_sae(d / "sae_half", encoder_scale=0.5)
    return d


def write_spec(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(HIER_EQ_MODEL + NETWORK + body, encoding="utf-8")
    return path
