"""Circuit tests run their small models single-threaded: on a busy 2-core machine intra-op
threads only add contention (a [16, 15, 192] GELU took 60 ms with threads, microseconds
without). Restored afterwards: the setting is process-wide."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
