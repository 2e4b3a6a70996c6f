"""Shared by the SNN training tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: extra intra-op threads only add synchronisation, which on a shared,
    loaded 2-core machine made these tests 5-40x slower (measured 22 s vs 3.7 s). Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
