"""Training tests run torch on one thread: on a shared 2-core machine a second OpenMP thread that gets descheduled
stalls every parallel region (measured 10× slower steps), and these batches are too small to gain from two."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
