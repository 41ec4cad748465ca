"""Fixtures of the step benchmarks: thread count, a cached bandwidth, and an end-of-session summary.

The summary is a markdown table: median step time per optimizer and size, its ratio to torch
AdamW (foreach) at the same size, bytes moved per parameter, the roofline floor and the step's %
of it. Environment variables: see test_step_benchmark.py.
"""
from __future__ import annotations

import os

import pytest
import torch

from optimizers.memory import format_count
from workflows.engine.roofline import bandwidth_bytes_per_s

BASELINE = "torch-adamw-foreach"
BANDWIDTH_BUFFER_BYTES = 256 * 2**20   # each of a and b: far beyond the last-level cache

_RESULTS: list[dict] = []


@pytest.fixture
def threads() -> int:
    """Torch threads for the timed steps: OPTBENCH_BENCH_THREADS, else the suite's 1 (tests/conftest.py)."""
    if os.environ.get("OPTBENCH_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["OPTBENCH_BENCH_THREADS"]))
    return torch.get_num_threads()


@pytest.fixture
def bandwidth(threads) -> float:
    """Bytes/s of an in-place a += b (3 x buffer bytes, best of 10) at this thread count.

    Measured for every benchmark, just before its timing: on a shared machine the bandwidth
    moves with the load, and the floor should be taken under the step's own conditions.
    """
    return bandwidth_bytes_per_s("cpu", n_bytes=BANDWIDTH_BUFFER_BYTES)


@pytest.fixture
def step_results() -> list[dict]:
    """Rows the benchmarks append for the summary."""
    return _RESULTS


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    import pandas as pd
    df = pd.DataFrame(_RESULTS)
    base = df[df["name"] == BASELINE].groupby("size")["median_ms"].first()
    df["vs adamw-foreach"] = [m / base[s] if s in base.index else float("nan")
                              for s, m in zip(df["size"], df["median_ms"])]
    df = df.sort_values(["size", "median_ms"])
    df["size"] = df["size"].map(format_count)
    cols = ["size", "name", "median_ms", "vs adamw-foreach", "bytes/param", "floor_ms", "% of floor",
            "threads", "bandwidth GB/s"]
    terminalreporter.write_sep("=", "optimizer.step(): median of rounds; floor = bytes moved / (a += b) bandwidth")
    terminalreporter.write_line(df[cols].to_markdown(index=False, floatfmt=".4g"))
