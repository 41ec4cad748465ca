"""The report's training-loop options section, from loop_options.csv: each harness option against
the plain loop, and the plain loop against a bare one (the harness's own cost)."""
from __future__ import annotations

from pathlib import Path

from report.output import fmt, md_table

BARE = "bare loop"          # the measurement's row of the loop with nothing but the training
OVERHEAD_GOAL = 0.05


def overheads(lo) -> list[str]:
    """One line a (task, optimizer): the harness's time a step beyond the bare loop's, as a share of
    it (1 / the bare row's × plain − 1)."""
    bare = lo[lo.option == BARE]
    return [f"- `{r.task}` / `{r.optimizer}`: harness overhead {fmt(100 * (1 / r.ratio_to_plain - 1), 2)} % "
            f"of the bare loop's step ({'within' if 1 / r.ratio_to_plain - 1 <= OVERHEAD_GOAL else 'over'} "
            f"the goal of {OVERHEAD_GOAL:.0%})" for r in bare.itertuples()]


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
            "clipping where it binds. The monitor's row is its overhead (goal: under 3 %). The "
            "bare loop's row is the same training with nothing else (batch, zero_grad, forward, "
            "backward, optimizer.step(); no schedule, check, timer or per-step synchronisation, "
            "timed once over the steps after the warm-up): the harness's own cost is the plain "
            "row's time beyond it (goal: 5 %).", "",
            md_table(tab), "", *overheads(lo), ""]
