"""The report's optimizer-state memory section, from runs.csv: the measured bytes of every state
tensor beside the registry's analytic model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from report.output import fmt, md_table


def section(tables: dict, out: Path) -> list[str]:
    runs = tables["runs"]
    if not len(runs):
        return []
    mem = runs.groupby(["task", "optimizer"]).agg(
        params=("n_params", "first"), measured=("state_bytes", "first"),
        model=("state_bytes_model", "first"), per_param=("state_bytes_per_param", "first")).reset_index()
    mem["matches model"] = np.where(mem.measured == mem.model, "yes", "NO")
    mem["per_param"] = mem["per_param"].map(lambda x: fmt(x, 4))
    return ["## Optimizer state memory", "", "Exact bytes of every state tensor (shared storage "
            "counted once) after the run, beside the registry's analytic model.", "", md_table(mem), ""]
