"""The report's step-time section, from steptime.csv: `optimizer.step()` alone against the baseline."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from report.output import fmt, md_table


def baseline_name(steptime: pd.DataFrame) -> str:
    """The step-time baseline as the report names it (the profile's `steptime.baseline`)."""
    return str(steptime["baseline"].iloc[0]) if len(steptime) else "baseline"


def section(tables: dict, out: Path) -> list[str]:
    steptime = tables["steptime"]
    if not len(steptime):
        return []
    base = baseline_name(steptime)
    tab = steptime.assign(**{
        "median (µs)": (steptime.median_seconds * 1e6).map(lambda x: fmt(x, 3)),
        "p10–p90 (µs)": [f"{fmt(a * 1e6, 3)}–{fmt(b * 1e6, 3)}" for a, b in zip(steptime.p10_seconds, steptime.p90_seconds)],
        f"{base} (µs)": (steptime.baseline_median_seconds * 1e6).map(lambda x: fmt(x, 3)),
        f"ratio to {base}": steptime.ratio_to_baseline.map(lambda x: fmt(x, 3)),
        "% of roofline": steptime.percent_of_floor.map(lambda x: fmt(x, 3)),
    })[["task", "optimizer", "n_params", "median (µs)", "p10–p90 (µs)", f"{base} (µs)", f"ratio to {base}",
        "% of roofline"]]
    bw = ", ".join(f"{fmt(x, 3)}" for x in sorted(steptime.bandwidth_GBps.round(1).unique())[:1])
    return ["## Step time", "", "`optimizer.step()` alone on fixed gradients, after warm-up, "
            f"interleaved with {base} in the same job (machines are noisy; the ratio holds). "
            "*% of roofline*: the time floor (bytes the step must move: read p and g, write p, read "
            "and write every state tensor; over the bandwidth of an in-place add measured in the "
            f"same job, e.g. {bw} GB/s) as a share of the measured step. Steps that compute "
            "(Newton–Schulz, matrix roots, factored moments) or make several passes sit far below "
            "100 %.", "",
            md_table(tab), ""]
