import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # 2 threads on a loaded 2-core machine are several times slower than one.
    torch.set_num_threads(1)
