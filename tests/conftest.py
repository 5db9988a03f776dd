"""Suite-wide test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Test tensors are tiny: intra-op threads only fight each other (and DataLoader workers) on 2 cores;
    a tiny fit took 150 s with 2 threads vs 7 s with 1 on this project's CI-sized machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
