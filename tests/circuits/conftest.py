"""Circuit tests run their small models single-threaded (causalspec.testing.tiny.single_thread:
on a busy 2-core machine intra-op threads only add contention)."""

from __future__ import annotations

import pytest

from causalspec.testing.tiny import single_thread


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield
