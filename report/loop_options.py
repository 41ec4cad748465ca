"""The report's training-loop options section, from loop_options.csv: each harness option against
the plain loop."""
from __future__ import annotations

from pathlib import Path

from report.output import fmt, md_table


def section(tables: dict, out: Path) -> list[str]:
    lo = tables["loop_options"]
    if not len(lo):
        return []
    tab = lo.assign(**{
        "step (ms)": (lo.median_step_seconds * 1e3).map(lambda x: fmt(x, 3)),
        "× plain": lo.ratio_to_plain.map(lambda x: fmt(x, 3)),
        "activations (MB)": (lo.activation_bytes / 1e6).map(lambda x: fmt(x, 3)),
        "peak device memory (MB)": (lo.peak_memory_bytes / 1e6).map(lambda x: fmt(x, 4) if x == x else "– (CPU)"),
        "loss gap to plain": lo.max_loss_gap_to_plain.map(lambda x: fmt(x, 2)),
    })[["task", "optimizer", "option", "step (ms)", "× plain", "activations (MB)", "peak device memory (MB)",
        "loss gap to plain"]]
    return ["## Training-loop options", "",
            "Each option of the harness against the plain loop on the same task, optimizer and seed, "
            "in alternating rounds: time per training step (forward, backward, step; a round's mean, "
            "the median over rounds), the bytes autograd keeps for backward from one forward (one "
            "micro-batch under accumulation; outside the recomputed blocks under activation "
            "checkpointing), peak device memory on CUDA, and the largest relative gap between the "
            "option's loss curve and the plain one: 0 where the option leaves the maths alone "
            "(checkpointing recomputes the same values), float rounding for accumulation (the mean "
            "of micro-batch gradients is the batch gradient), a change for the schedule, and for "
            "clipping where it binds. The monitor's row is its overhead (goal: under 3 %).", "",
            md_table(tab), ""]
