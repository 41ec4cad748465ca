import os

import pytest

# No network at run time: every task builds its data from generators or bundled data.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _single_thread():
    # Tiny tensors: threads only add contention (the suite shares 2 cores).
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
