"""A memory-bandwidth floor for optimizer.step(): bytes it must move over bytes per second the device moves.

An elementwise optimizer step is memory-bound: per parameter it reads the parameter and its
gradient, reads and writes each state tensor, and writes the parameter. With fp32 parameters:

    bytes_moved = n_params * (4 read p + 4 read g + 4 write p) + 2 * state_bytes

where ``state_bytes`` is the registry's analytic model (every state tensor read once and
written once). AdamW fp32: 12 + 2 * 8 = 28 B/param; SGD without momentum: 12 B/param.

The bandwidth is measured, not looked up: an in-place ``a += b`` over two large buffers moves
3 x the buffer size (read a, read b, write a), and the best of a few repeats is kept (as STREAM
does). ``floor_seconds = bytes_moved / bandwidth`` is the time a step cannot beat; a measured
step at 100% of the floor makes one pass over its data. Caveats: the floor ignores compute
(Adafactor's row/column means, Shampoo's matrix roots, Muon's Newton-Schulz iterations are not
memory-bound), extra passes an implementation makes (torch's foreach and for-loop Adam run one
kernel per operation, each a pass over memory), and write-allocate traffic on CPUs (a store to
a line not in cache first reads it: ``a += b`` reads ``a`` anyway, so it is not affected, but a
step that writes fresh buffers is). The bandwidth is that of the calling thread pool:
``torch.get_num_threads()`` at the time of the call. On one core it is not a hard ceiling: a
core's bandwidth is limited by the misses it keeps in flight, and a kernel streaming more arrays
at once (fused AdamW: 7) can beat ``a += b`` (3), so a step can show more than 100% of its
floor; on a shared machine the bandwidth also moves with the load, so measure it next to the
timing it is compared with.
"""
from __future__ import annotations

import math
import time

import torch

import optimizers
from optimizers import itemsize
from workflows.engine import device as device_module


def bandwidth_bytes_per_s(device="cpu", n_bytes: int = 256 * 2**20, repeats: int = 10, warmup: int = 2) -> float:
    """Measured memory bandwidth of `device` in bytes/s: best of `repeats` in-place ``a += b``.

    `n_bytes` is the size of each of the two float32 buffers (default 256 MiB, far beyond a
    CPU's last-level cache); each add moves ``3 * n_bytes``.
    """
    device = device_module.get(device)
    n = max(1, n_bytes // 4)
    a = torch.zeros(n, dtype=torch.float32, device=device.tensors)
    b = torch.ones(n, dtype=torch.float32, device=device.tensors)
    for _ in range(warmup):
        a += b
    device.synchronize()
    best = math.inf
    for _ in range(repeats):
        t0 = device.wall_clock()
        a += b
        best = min(best, device.wall_clock() - t0)
    return 3 * n * 4 / best


def bytes_moved_per_step(optimizer_name: str, n_params: int | None = None, named_params=None,
                         dtype: torch.dtype = torch.float32) -> float:
    """Bytes one step of registry entry `optimizer_name` must move over `n_params` parameters.

    ``n_params * 3 * itemsize`` (read p, read g, write p) ``+ 2 * state_bytes`` (read and write
    every state tensor). Without `named_params` the state is the registry's per-parameter rate at
    a (4096, 4096) matrix of `dtype` (`optimizers.memory.state_rate`, per-tensor constants
    excluded), so AdamW fp32 gives exactly 28 B/param. With `named_params` ((name, tensor) pairs,
    as ``model.named_parameters()``) everything comes from those tensors: the parameter bytes from
    the trainable ones (their own dtypes; `n_params` is then ignored and may be 0 or None) and the
    state from the registry's exact model for them, fallback and shared state included
    (`optimizers.model_state_bytes`).
    """
    if named_params is not None:
        named_params = list(named_params)
        trainable = [p for _, p in named_params if p.requires_grad]
        params = sum(3 * p.numel() * p.element_size() for p in trainable)
        return params + 2 * optimizers.model_state_bytes(optimizer_name, named_params)
    if n_params is None:
        raise ValueError("bytes_moved_per_step needs n_params or named_params")
    from optimizers.memory import state_rate
    state = state_rate(optimizer_name, dtype)["bytes_per_param"] * n_params
    return n_params * 3 * itemsize(dtype) + 2 * state


def floor_seconds(optimizer_name: str, n_params: int | None, bandwidth: float, named_params=None) -> float:
    """The roofline floor of one step: `bytes_moved_per_step` over `bandwidth` (bytes/s)."""
    return bytes_moved_per_step(optimizer_name, n_params, named_params) / bandwidth
