"""Specs over the planted-subspace net (causalspec.testing.planted), written into a temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import causalspec.testing.planted as planted
from causalspec.testing.specs import HIER_EQ_MODEL

PLANTED = Path(planted.__file__).resolve()


def network(name: str = "planted", weights: str = "planted.safetensors") -> str:
    return (f'network {name} = torch "{PLANTED}:build_planted" weights "{weights}" {{\n'
            f'  encode "{PLANTED}:encode"\n}}\n')


@pytest.fixture(scope="session")
def planted_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("planted")
    planted.save_planted(d / "planted.safetensors")
    return d


def write_spec(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(HIER_EQ_MODEL + network() + body, encoding="utf-8")
    return path
