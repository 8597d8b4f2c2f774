"""Fixtures shared by the semantics tests."""

from __future__ import annotations

import pytest

from causalspec.testing.specs import HIER_EQ_MODEL, only_model


@pytest.fixture(scope="module")
def hier():
    """The hierarchical-equality model (test_interventions.py keeps a cached one of its own, for hypothesis)."""
    return only_model(HIER_EQ_MODEL)
