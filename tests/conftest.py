import os

import pytest

# No network at run time: every task builds its data from generators or bundled data.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# Torch threads per test: 1 by default (tiny tensors: threads only add contention, and CI has 2
# cores). OPTBENCH_TEST_THREADS=2 runs the suite with 2, which changes how reductions split their
# work: a test that holds only on one thread count fails then. (ATEN_CPU_CAPABILITY=default|avx2|
# avx512 likewise imitates other CPUs' kernels on one machine.)
TEST_THREADS = int(os.environ.get("OPTBENCH_TEST_THREADS", "1"))


@pytest.fixture(autouse=True)
def _test_threads():
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    yield
    torch.set_num_threads(n)
