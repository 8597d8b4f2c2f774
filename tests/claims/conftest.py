"""Fixtures shared by the claims tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def copier(tmp_path_factory) -> Path:
    """A folder holding `copier/`: a tiny hf token-level head that copies each colour token
    (red, green, blue) to its own position (causalspec.testing.tiny.build_token_copier)."""
    from causalspec.testing.tiny import build_token_copier

    tmp = tmp_path_factory.mktemp("copier")
    build_token_copier(["red", "green", "blue"], tmp / "copier")
    return tmp
