"""optimizer.step() alone, on transformer-shaped parameters with fixed gradients.

    python -m pytest tests/benchmarks --benchmark-only -q
    OPTBENCH_BENCH_SIZES=10M,50M python -m pytest tests/benchmarks --benchmark-only

Every registry entry (new files in optimizers/ are picked up) and torch AdamW's three
implementations: the for-loop (one kernel per operation per tensor), foreach (one kernel per
operation over all tensors) and fused (one kernel for the whole update). Gradients are random,
set once; forward and backward are not timed. Each benchmark records in ``extra_info`` the bytes
the step must move by the registry's memory model (AdamW fp32: 28 B/param), the measured memory
bandwidth (in-place ``a += b``), the roofline floor and the step's % of it.

Skipped, with the reason: entries whose step needs a closure (it re-evaluates the loss, so a
step alone is not defined), entries that need sparse gradients (needs "sparse_only"; their
dense-gradient step raises), entries that fail to build (e.g. a missing library), entries whose
step takes longer than OPTBENCH_BENCH_MAX_STEP_S (probed in a forked child that is killed at the
limit), and fused AdamW where this torch has no fused kernel for the device.
"""
from __future__ import annotations

import math
import os
import signal
import time

import pytest
import torch

import optimizers
from optimizers.memory import parse_count
from workflows.engine.roofline import bytes_moved_per_step

# Environment: OPTBENCH_BENCH_SIZES ("10M" or "10M,50M"), OPTBENCH_BENCH_ROUNDS (timed rounds, 10),
# OPTBENCH_BENCH_THREADS (torch threads; default the suite's 1, see tests/conftest.py).
SIZES = [s.strip() for s in os.environ.get("OPTBENCH_BENCH_SIZES", "10M").split(",") if s.strip()]
ROUNDS = int(os.environ.get("OPTBENCH_BENCH_ROUNDS", "10"))
# A step slower than this is not timed (skipped with its time): at 10M on this 2-core CPU that is
# Muon (bfloat16 Newton-Schulz matmuls, ~25 s without native bf16) and Shampoo (an SVD of the
# 8192 x 8192 embedding factor every step). OPTBENCH_BENCH_BUDGET_S bounds each entry's timed
# rounds (never fewer than MIN_ROUNDS).
MAX_STEP_S = float(os.environ.get("OPTBENCH_BENCH_MAX_STEP_S", "5"))
BUDGET_S = float(os.environ.get("OPTBENCH_BENCH_BUDGET_S", "10"))
MIN_ROUNDS = 3

VOCAB = 8192        # a small-model vocabulary; the LM head is tied to the embedding
ASPECT = 64         # width / depth, as GPT-2 small (768 / 12)
WARMUP_STEPS = 3    # untimed steps after building: lazily allocated state, first-step branches
WARMUP_ROUNDS = 2   # and pytest-benchmark's own warm-up rounds


def transformer_shapes(total: int, vocab: int = VOCAB, aspect: int = ASPECT) -> list[tuple[str, tuple]]:
    """(name, shape) of a GPT-style decoder with about `total` parameters.

    Embedding [vocab, d]; per layer ln1 weight/bias [d], attention qkv [3d, d] and out [d, d],
    ln2 weight/bias [d], MLP [4d, d] and [d, 4d]; a final layer norm. d is a multiple of 64 and
    the depth is chosen so that d / depth is near `aspect` and the count near `total`.
    """
    def count(d, layers):
        return vocab * d + layers * (12 * d * d + 4 * d) + 2 * d

    best = None
    for d in range(64, 16385, 64):
        per_layer = 12 * d * d + 4 * d
        layers = round((total - vocab * d - 2 * d) / per_layer)
        if layers < 1:
            continue
        cost = abs(math.log(count(d, layers) / total)) + 0.25 * abs(math.log(d / layers / aspect))
        if best is None or cost < best[0]:
            best = (cost, d, layers)
    if best is None:  # too small for one layer: one layer of the widest d that fits
        best = (0, 64, 1)
    _, d, layers = best
    shapes = [("embed.weight", (vocab, d))]
    for i in range(layers):
        p = f"layers.{i}"
        shapes += [(f"{p}.ln1.weight", (d,)), (f"{p}.ln1.bias", (d,)),
                   (f"{p}.attn.qkv.weight", (3 * d, d)), (f"{p}.attn.out.weight", (d, d)),
                   (f"{p}.ln2.weight", (d,)), (f"{p}.ln2.bias", (d,)),
                   (f"{p}.mlp.fc1.weight", (4 * d, d)), (f"{p}.mlp.fc2.weight", (d, 4 * d))]
    shapes += [("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
    return shapes


def transformer_params(total: int, seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """(name, parameter) pairs of `transformer_shapes(total)`, each with a fixed random gradient.

    Weights ~ N(0, 0.02²), layer-norm weights 1 and biases 0; gradients ~ N(0, 1e-3²).
    """
    g = torch.Generator().manual_seed(seed)
    named = []
    for name, shape in transformer_shapes(total):
        if name.endswith(".bias"):
            p = torch.zeros(shape)
        elif len(shape) == 1:
            p = torch.ones(shape)
        else:
            p = torch.randn(shape, generator=g) * 0.02
        p.requires_grad_(True)
        p.grad = torch.randn(shape, generator=g) * 1e-3
        named.append((name, p))
    return named


_BASE: dict[int, list] = {}


def fresh_params(total: int) -> list[tuple[str, torch.Tensor]]:
    """A private copy (parameters and gradients) of the size's parameter set, generated once."""
    if total not in _BASE:
        _BASE.clear()  # one size in memory at a time
        _BASE[total] = transformer_params(total)
    out = []
    for name, p in _BASE[total]:
        q = p.detach().clone().requires_grad_(True)
        q.grad = p.grad.clone()
        out.append((name, q))
    return out


def size_params(label: str) -> int:
    return int(parse_count(label))


def probe_step_seconds(opt, limit: float) -> float | None:
    """Seconds of one step run in a forked child (copy-on-write: the parent's state is untouched),
    or None if it did not finish within `limit` (the child is killed) -- or math.nan if the child
    failed, so that the parent's own step raises the real error.

    A fork, not a signal: a slow step is often one long native op (Shampoo: an SVD of the
    8192 x 8192 embedding factor, ~300 s on one core) that no Python signal handler can interrupt.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            t0 = time.perf_counter()
            opt.step()
            os.write(write_fd, repr(time.perf_counter() - t0).encode())
            code = 0
        except BaseException:
            code = 1
        finally:
            os._exit(code)  # no pytest teardown in the child
    os.close(write_fd)
    deadline = time.monotonic() + limit
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                data = os.read(read_fd, 64)
                return float(data) if os.waitstatus_to_exitcode(status) == 0 and data else math.nan
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            time.sleep(0.01)
    finally:
        os.close(read_fd)


def first_step(opt, label: str) -> float:
    """Run (and time) the first step; skip the benchmark if it takes longer than MAX_STEP_S.

    Where fork exists the step is first probed in a child killed at the limit, so that a
    pathological entry costs MAX_STEP_S, not its step time.
    """
    if hasattr(os, "fork") and MAX_STEP_S > 0:
        probed = probe_step_seconds(opt, MAX_STEP_S)
        if probed is None:
            pytest.skip(f"{label}: one step takes more than OPTBENCH_BENCH_MAX_STEP_S={MAX_STEP_S:g} s "
                        f"(a forked probe step was killed at the limit)")
    t0 = time.perf_counter()
    opt.step()
    seconds = time.perf_counter() - t0
    if seconds > MAX_STEP_S:
        pytest.skip(f"{label}: one step took {seconds:.1f} s > OPTBENCH_BENCH_MAX_STEP_S={MAX_STEP_S:g} s")
    return seconds


def warm_up(opt, label: str) -> int:
    """WARMUP_STEPS untimed steps (the first one bounded by MAX_STEP_S); returns the rounds to time."""
    seconds = first_step(opt, label)
    for _ in range(WARMUP_STEPS - 1):
        opt.step()
    return max(MIN_ROUNDS, min(ROUNDS, int(BUDGET_S / max(seconds, 1e-9))))


def _time(benchmark, step, label: str, model_name: str, size: str, named, threads: int, bw: float,
          results: list, rounds: int) -> None:
    n = sum(p.numel() for _, p in named)
    moved = bytes_moved_per_step(model_name, n, named_params=named)
    floor = moved / bw
    benchmark.group = f"step {size}"
    benchmark.extra_info.update({
        "optimizer": label, "size": size, "n_params": n, "n_tensors": len(named), "threads": threads,
        "bytes_moved_per_step": moved, "bytes_per_param": moved / n, "bytes_model": model_name,
        "bandwidth_bytes_per_s": bw, "floor_seconds": floor, "rounds": rounds,
    })
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is None:  # --benchmark-disable: the step ran once, untimed
        return
    median = stats.median
    benchmark.extra_info.update({"median_seconds": median, "pct_of_floor": 100 * floor / median})
    results.append({"size": size_params(size), "name": label, "n_params": n, "median_ms": 1e3 * median,
                    "bytes/param": moved / n, "floor_ms": 1e3 * floor, "% of floor": 100 * floor / median,
                    "threads": threads, "bandwidth GB/s": bw / 1e9})


@pytest.mark.parametrize("name", optimizers.names())
@pytest.mark.parametrize("size", SIZES)  # sizes outermost: each size's parameters are built once
def test_registry_step(benchmark, name, size, threads, bandwidth, step_results):
    spec = optimizers.get(name)
    if "closure" in spec.needs:
        pytest.skip(f"{name}: step(closure) re-evaluates the loss; step() alone is not defined")
    if "sparse_only" in spec.needs:
        pytest.skip(f"{name} needs sparse gradients (needs 'sparse_only'); these benchmarks give dense ones")
    named = fresh_params(size_params(size))
    try:
        opt = optimizers.build_optimizer(name, named)
    except Exception as e:  # e.g. a library missing on this machine, or an entry being written
        pytest.skip(f"{name}: build failed: {type(e).__name__}: {e}")
    try:
        rounds = warm_up(opt, name)
    except RuntimeError as e:
        if "sparse" in spec.needs and "sparse" in str(e).lower():
            pytest.skip(f"{name} needs sparse gradients; with dense ones: {e}")
        raise
    _time(benchmark, opt.step, name, name, size, named, threads, bandwidth, step_results, rounds)


ADAMW_VARIANTS = {"loop": dict(foreach=False, fused=False), "foreach": dict(foreach=True, fused=False),
                  "fused": dict(foreach=False, fused=True)}


@pytest.mark.parametrize("variant", list(ADAMW_VARIANTS))
@pytest.mark.parametrize("size", SIZES)
def test_torch_adamw_step(benchmark, variant, size, threads, bandwidth, step_results):
    named = fresh_params(size_params(size))
    hp = optimizers.get("adamw").hparams()
    try:
        opt = torch.optim.AdamW([p for _, p in named], **hp, **ADAMW_VARIANTS[variant])
        rounds = warm_up(opt, f"torch-adamw-{variant}")
    except RuntimeError as e:
        if variant == "fused":
            pytest.skip(f"torch {torch.__version__} has no fused AdamW on CPU: {e}")
        raise
    _time(benchmark, opt.step, f"torch-adamw-{variant}", "adamw", size, named, threads, bandwidth, step_results,
          rounds)


def test_transformer_shapes_are_realistic():
    for total in (10_000_000, 50_000_000):
        shapes = dict(transformer_shapes(total))
        n = sum(math.prod(s) for s in shapes.values())
        assert abs(n / total - 1) < 0.25, n
        d = shapes["embed.weight"][1]
        assert shapes["layers.0.attn.qkv.weight"] == (3 * d, d)
        assert shapes["layers.0.mlp.fc2.weight"] == (d, 4 * d)

