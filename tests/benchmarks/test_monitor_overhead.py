"""The monitor's cost on a bare training loop (goal: < 3 % at the pipeline's monitor_every).

    python -m pytest tests/benchmarks/test_monitor_overhead.py --benchmark-only

Two benchmarks over the same run (lm-stdlib at smoke size, Adam), monitor off and on every 10
steps; the ratio of their medians is the overhead (printed in the benchmark table's extra info).
"""
import pytest

from workflows.engine.harness import RunConfig, train

STEPS = 60


@pytest.mark.parametrize("monitor_every", [0, 10])
def test_monitor_overhead(benchmark, monitor_every):
    cfg = RunConfig("lm-stdlib", "adam", steps=STEPS, monitor_every=monitor_every, eval_every=STEPS)
    train(cfg)  # warm-up: first-call costs stay out of the timing
    record = benchmark.pedantic(train, args=(cfg,), rounds=5, iterations=1)
    benchmark.extra_info["monitor_every"] = monitor_every
    benchmark.extra_info["monitor_rows"] = len(record["monitor"])
