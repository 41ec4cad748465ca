import math

import pytest
import torch

import optimizers
from workflows.engine import roofline


def test_adamw_fp32_moves_28_bytes_per_param():
    # read p, g, m, v; write p, m, v: 7 x 4 B
    assert roofline.bytes_moved_per_step("adamw", 1_000_000) == 28 * 1_000_000


def test_sgd_without_momentum_moves_12_bytes_per_param():
    # read p, g; write p
    assert roofline.bytes_moved_per_step("sgd", 1_000_000) == 12 * 1_000_000


def test_momentum_moves_20_bytes_per_param():
    assert roofline.bytes_moved_per_step("momentum", 1_000) == 20 * 1_000


def test_exact_model_for_given_tensors_includes_per_tensor_state():
    named = [("w", torch.empty(64, 32, requires_grad=True)), ("b", torch.empty(32, requires_grad=True))]
    n = 64 * 32 + 32
    exact = roofline.bytes_moved_per_step("adamw", n, named_params=named)
    state = optimizers.model_state_bytes("adamw", named)
    assert exact == 12 * n + 2 * state
    assert exact > 28 * n  # the 0-d step tensors
    # with tensors given, the count comes from them (workflows/engine/measurements/steptime.py passes n_params=0)
    assert roofline.bytes_moved_per_step("adamw", 0, named_params=named) == exact
    frozen = named + [("f", torch.empty(1000))]  # not trainable: neither moved nor stateful
    assert roofline.bytes_moved_per_step("adamw", None, named_params=frozen) == exact


@pytest.mark.parametrize("name", optimizers.names())
def test_every_entry_has_a_finite_byte_count(name):
    b = roofline.bytes_moved_per_step(name, 10_000)
    assert math.isfinite(b) and b >= 12 * 10_000


def test_bandwidth_is_positive_and_finite():
    bw = roofline.bandwidth_bytes_per_s("cpu", n_bytes=8 * 2**20, repeats=3)
    assert math.isfinite(bw) and bw > 0
    assert roofline.floor_seconds("adamw", 1_000_000, bw) == pytest.approx(28e6 / bw)
